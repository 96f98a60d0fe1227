"""One LLM replica pool served for real: `python -m lepton_sim.validation.llm_server` (started by `run`).

It reads its configuration as one JSON line on stdin, builds the transformer of `kernels.transformer`
(weights from the seed), times its decoder GEMMs at the row counts the simulation's iteration-time
model reads (one BLAS thread, back to back: the kernel profile of this machine now), listens on a
loopback port and prints one JSON line: the port and those timings. It then serves until stdin
closes, and prints one JSON line of what it did: every iteration (start and end on the machine's
monotonic clock, which `time.perf_counter` reads in every process alike; tokens, samples,
attention pairs, KV tokens read, sequences, running sequences, KV blocks in use) and every
request (enqueued, first token sent, last token sent, preemptions).

A request frame's payload is its output token count (4 bytes, network order) and its prompt's
token ids (int32, `token_bytes` each). Each replica (one thread, one BLAS thread) runs the
scheduling policy of the simulator's `lepton_sim.sim.llm` (see its module docstring), written out
again here for real sequences and a real clock:

- a request goes to the replica with the fewest outstanding tokens (prompt + output of the
  requests it holds and has not finished), ties round robin from the replica after the last one
  picked; or, with `least-kv`, the most free KV cache less its waiting prompts;
- an idle replica with work schedules an iteration: the running sequences in admission order, each
  with its next token or the rest of its prompt (a chunk when the `max_batched_tokens` budget runs
  out and `chunked_prefill` is on, or when recomputing a preempted sequence); a sequence that needs
  a KV block when none is free preempts the newest running one (recomputed later); then, if
  nothing was preempted, waiting requests in FIFO order within `max_num_seqs`, the token budget and
  the free blocks beyond a watermark of 1% of them;
- the iteration runs (`kernels.transformer.iteration`: every new token in single GEMMs, attention
  per sequence against its cache); a sequence whose cache then holds all its tokens samples one:
  the first goes back at once (4 bytes), and the last finishes the request, sending the rest of
  the output (output - 1 token ids; a one-token answer is done with its first).

A request that could never fit the replica's KV cache, even alone, is answered at once with an
empty frame (dropped, as the simulator drops it).
"""
from __future__ import annotations

import json
import struct
import sys
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from lepton_sim.validation import cores, wire

OUTPUT = struct.Struct("!I")  # the request's output token count, before its prompt's token ids
ITERATION_FIELDS = ("sched", "start", "end", "sent", "tokens", "samples", "attn_pairs", "kv_tokens", "seqs", "running",
                    "kv_blocks", "replica")
WATERMARK_SHARE = 100  # admissions keep ceil(blocks / 100) blocks free: vLLM's default 1 % watermark


def pack_request(rid: int, prompt_ids: np.ndarray, output: int) -> bytes:
    return wire.pack(rid, OUTPUT.pack(output) + np.asarray(prompt_ids, dtype=">i4").tobytes())


def unpack_request(payload: bytes) -> tuple[list[int], int]:
    (output,) = OUTPUT.unpack_from(payload)
    return np.frombuffer(payload, dtype=">i4", offset=OUTPUT.size).astype(np.int64).tolist(), output


class Seq:
    __slots__ = ("rid", "prompt", "output", "gen", "blocks", "done", "state", "peer", "t_enq", "t_first", "t_last",
                 "preemptions", "sampled")

    def __init__(self, rid: int, prompt_ids: list[int], output: int, peer: Any, cfg: Any) -> None:
        from kernels.transformer import new_sequence

        self.rid, self.prompt, self.output = rid, len(prompt_ids), output
        self.gen = 0
        self.blocks = 0
        self.done = False
        self.state = new_sequence(cfg, prompt_ids, output)
        self.peer = peer
        self.t_enq = time.perf_counter()
        self.t_first = self.t_last = float("nan")
        self.preemptions = 0
        self.sampled: list[int] = []

    @property
    def kv(self) -> int:
        return self.state.kv


class Replica:
    def __init__(self, index: int, blocks: int) -> None:
        self.index = index
        self.running: list[Seq] = []
        self.waiting: deque[Seq] = deque()
        self.free = blocks
        self.tokens_out = 0
        self.busy = False


class LLMServer:
    def __init__(self, cfg: dict[str, Any], model: Any) -> None:
        from lepton_sim.servicetime.llm import attention_terms

        self.attention_terms = attention_terms
        self.cfg = cfg
        self.model = model
        self.bt = int(cfg["block_tokens"])
        self.total_blocks = int(cfg["kv_tokens"]) // self.bt
        self.watermark = -(-self.total_blocks // WATERMARK_SHARE)
        self.max_seqs = int(cfg["max_num_seqs"])
        self.max_tokens = int(cfg["max_batched_tokens"])
        self.chunked = bool(cfg["chunked_prefill"])
        self.by_kv = cfg.get("replica_routing") == "least-kv"
        self.replicas = [Replica(i, self.total_blocks) for i in range(int(cfg["count"]))]
        self.rr = 0
        self.cond = threading.Condition()
        self.closing = False
        # scheduling start, forward start, forward end, responses sent, tokens, samples, attn pairs, kv tokens
        # read, sequences, running, blocks used, replica (ITERATION_FIELDS)
        self.iterations: list[tuple[float, ...]] = []
        self.requests: list[tuple[int, float, float, float, int]] = []  # id, enqueued, first sent, last sent, preemptions
        self.dropped = 0
        self.preempted = 0
        self.worker_cores: list[list[int]] = []  # each replica thread's cores, as it saw them

    # --- arrivals -----------------------------------------------------------------------------

    def reader(self, conn: Any) -> None:
        send_lock = threading.Lock()
        peer = (conn, send_lock)
        for rid, payload in wire.requests(conn, send_lock):
            ids, output = unpack_request(payload)
            seq = Seq(rid, ids, output, peer, self.model.cfg)
            if -(-(seq.prompt + seq.output) // self.bt) > self.total_blocks:  # never fits, even alone
                with self.cond:
                    self.dropped += 1
                with send_lock:
                    conn.sendall(wire.pack(rid, b""))
                continue
            with self.cond:
                r = self._pick()
                r.tokens_out += seq.prompt + seq.output
                r.waiting.append(seq)
                self.cond.notify_all()

    def _pick(self) -> Replica:
        reps = self.replicas
        n = len(reps)
        order = [reps[(self.rr + k) % n] for k in range(n)]
        if self.by_kv:
            best = max(order, key=lambda r: r.free * self.bt - sum(s.prompt for s in r.waiting))
        else:
            best = min(order, key=lambda r: r.tokens_out)
        self.rr = best.index + 1
        return best

    # --- the scheduler (lepton_sim.sim.llm's policy) -----------------------------------------------

    def _preempt(self, r: Replica) -> Seq:
        victim = r.running.pop()
        r.free += victim.blocks
        victim.blocks = 0
        victim.state.reset()
        victim.preemptions += 1
        self.preempted += 1
        r.waiting.appendleft(victim)
        return victim

    def schedule(self, r: Replica) -> tuple[list[tuple[Seq, int]], tuple[int, int, float, float]]:
        """The next iteration's (sequence, new tokens) and its (tokens, samples, attn pairs, kv tokens)."""
        while True:
            bt = self.bt
            budget = self.max_tokens
            sched: list[tuple[Seq, int]] = []
            tokens = samples = 0
            pairs = kv_read = 0.0
            running = r.running
            preempted = False
            i = 0
            while i < len(running):
                s = running[i]
                need = s.prompt + s.gen - s.kv
                n = need if need <= budget else (budget if self.chunked or s.gen else 0)
                if n <= 0:
                    i += 1
                    continue
                want = -(-(s.kv + n) // bt) - s.blocks
                gone = False
                while want > r.free:
                    preempted = True
                    if self._preempt(r) is s:
                        gone = True
                        break
                if gone:
                    break
                r.free -= want
                s.blocks += want
                sched.append((s, n))
                budget -= n
                tokens += n
                samples += n == need
                a, k = self.attention_terms(s.kv, n)
                pairs += a
                kv_read += k
                i += 1
            waiting = r.waiting
            if not preempted:
                while waiting and len(running) < self.max_seqs and budget > 0:
                    s = waiting[0]
                    need = s.prompt + s.gen - s.kv
                    if need <= budget:
                        n = need
                    elif self.chunked or s.gen:
                        n = budget
                    else:
                        break
                    want = -(-n // bt)
                    if (-(-need // bt) if s.gen else want) > r.free - self.watermark:
                        break
                    waiting.popleft()
                    running.append(s)
                    r.free -= want
                    s.blocks = want
                    sched.append((s, n))
                    budget -= n
                    tokens += n
                    samples += n == need
                    a, k = self.attention_terms(0, n)
                    pairs += a
                    kv_read += k
            if not sched and preempted and (running or waiting):
                continue  # everything running was preempted: start again from the queue
            return sched, (tokens, samples, pairs, kv_read)

    # --- the replica's loop ------------------------------------------------------------------------

    def worker(self, r: Replica) -> None:
        from kernels.transformer import iteration

        cpus = self.cfg.get("cpus") or []
        if cpus:
            cores.pin([cpus[r.index]])
        with self.cond:
            self.worker_cores.append(cores.current())

        while True:
            with self.cond:
                while True:
                    if self.closing:
                        return
                    t_s = time.perf_counter()
                    sched, (tokens, samples, pairs, kv_read) = self.schedule(r)
                    if sched:
                        break
                    r.busy = False
                    self.cond.wait()
                r.busy = True
                levels = (len(r.running), self.total_blocks - r.free)
            t0 = time.perf_counter()
            sampled = iteration(self.model, [(s.state, n) for s, n in sched])
            t1 = time.perf_counter()
            sends: list[tuple[Seq, bytes]] = []
            finished = False
            with self.cond:
                for (s, _), tok in zip(sched, sampled):
                    if tok is None:
                        continue
                    s.state.tokens.append(tok)
                    s.sampled.append(tok)
                    s.gen += 1
                    if s.gen == 1:
                        sends.append((s, np.asarray([tok], dtype=">i4").tobytes()))
                    if s.gen >= s.output:
                        s.done = finished = True
                        r.free += s.blocks
                        s.blocks = 0
                        r.tokens_out -= s.prompt + s.output
                        if s.output > 1:
                            sends.append((s, np.asarray(s.sampled[1:], dtype=">i4").tobytes()))
                if finished:
                    r.running = [s for s in r.running if not s.done]
            for s, body in sends:
                conn, lock = s.peer
                t = time.perf_counter()
                with lock:
                    conn.sendall(wire.pack(s.rid, body))
                if s.gen == 1 and np.isnan(s.t_first):
                    s.t_first = t
                if s.done:
                    s.t_last = t
            t2 = time.perf_counter()
            done = [(s.rid, s.t_enq, s.t_first, s.t_last, s.preemptions) for s, _ in sched if s.done]
            with self.cond:
                self.iterations.append((t_s, t0, t1, t2, tokens, samples, pairs, kv_read, len(sched), levels[0],
                                        levels[1], r.index))
                self.requests.extend(done)

    def serve(self, sock: Any) -> None:
        workers = [threading.Thread(target=self.worker, args=(r,), daemon=True) for r in self.replicas]
        wire.serve_until_stdin_closes(sock, self.reader, workers, self.stop)
        for w in workers:
            w.join(timeout=10)

    def stop(self) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify_all()


def time_gemms(model: Any, rows: list[int], budget_s: float = 0.12) -> list[dict[str, Any]]:
    """Each decoder GEMM (QKV, attention output, gate+up, down) at each row count, as the iteration runs them.

    One BLAS thread, every layer's own weights in model order, so that each GEMM finds its weights
    as an iteration does: evicted by the other layers' since it last ran (the model's 60+ MB of
    weights do not stay in any cache). A GEMM's time is its median over passes, averaged over layers.
    """
    names = ("qkv", "o_proj", "gate_up", "down")
    mats = [(blk.wqkv, blk.wo, blk.wgu, blk.wdown) for blk in model.blocks]
    rng = np.random.default_rng(0)
    out = []
    for m in rows:
        xs = [rng.standard_normal((m, w.shape[0])).astype(np.float32) for w in mats[0]]
        samples: list[list[float]] = []
        t_begin = time.perf_counter()
        for rep in range(12):
            one = []
            for ws in mats:
                for x, w in zip(xs, ws):
                    t = time.perf_counter()
                    x @ w
                    one.append(time.perf_counter() - t)
            if rep:  # the first pass warms up
                samples.append(one)
            if len(samples) >= 3 and time.perf_counter() - t_begin > budget_s:
                break
        a = np.asarray(samples).reshape(len(samples), len(mats), len(names))
        for j, name in enumerate(names):
            per = a[:, :, j].mean(axis=1)  # per pass, the layers' mean
            q1, med, q3 = (float(v) for v in np.quantile(per, [0.25, 0.5, 0.75]))
            w = mats[0][j]
            out.append({"name": name, "m": int(m), "k": int(w.shape[0]), "n": int(w.shape[1]),
                        "timing": {"median_s": med, "q1_s": min(q1, med), "q3_s": max(q3, med),
                                   "repeats": len(per), "inner": 1}})
    return out


def profile_iterations(model: Any, max_num_seqs: int, max_batched_tokens: int, longest: int,
                       budget_s: float = 4.0) -> list[list[float]]:
    """The engine's own iterations timed before serving: a designed grid of batches like those the
    load will form (decode steps of 1 to 8 sequences at short and long contexts, prefills of one
    prompt from 16 tokens to the budget, prefills beside decodes), each the median of 3 runs, one
    BLAS thread. Rows in ITERATION_FIELDS order (times from 0), as the served iterations are: the
    forecast fits its iteration-time model to these, the as-served simulation to those."""
    from kernels.transformer import iteration, new_sequence

    cfg = model.cfg
    top = max(2, min(longest, max_batched_tokens))
    contexts = sorted({min(c, max(1, longest)) for c in (32, 128, max(1, longest))})
    batches = sorted({b for b in (1, 2, 3, 4, 6, 8) if b <= max_num_seqs})
    prefills = sorted({n for n in (16, 64, 128, 256, top) if n <= top})
    plans: list[tuple[list[int], int]] = []  # (decode contexts, prefill tokens)
    plans += [([c] * b, 0) for c in contexts for b in batches]
    plans += [([], n) for n in prefills]
    plans += [([contexts[len(contexts) // 2]] * b, n) for b in batches[:3] for n in prefills[1:3]
              if b + 1 <= max_num_seqs and n + b <= max_batched_tokens]
    rows: list[list[float]] = []
    t_begin = time.perf_counter()
    for ctx, prefill in plans:
        seqs = []
        for c in ctx:  # a decoding sequence with c tokens cached: one new token
            st = new_sequence(cfg, [1] * (c + 1), 1)
            st.kv = c
            seqs.append((st, 1))
        if prefill:
            seqs.append((new_sequence(cfg, [1] * prefill, 1), prefill))
        times = []
        for _ in range(3):
            for st, n in seqs:
                st.kv = len(st.tokens) - n
            t = time.perf_counter()
            iteration(model, seqs)
            times.append(time.perf_counter() - t)
        dt = float(np.median(times))
        tokens = sum(n for _, n in seqs)
        pairs = sum(n * ((len(st.tokens) - n) + (n + 1) / 2) for st, n in seqs)
        kv = sum(len(st.tokens) for st, _ in seqs)
        rows.append([0.0, 0.0, dt, dt, tokens, len(seqs), pairs, kv, len(seqs), len(seqs), 0, 0])
        if time.perf_counter() - t_begin > budget_s and len(rows) >= 12:
            break
    return rows


def ceilings() -> dict[str, float]:
    """One BLAS thread's best fp32 GEMM rate, copy bandwidth (bytes read + written) and a tiny numpy call."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1024, 1024)).astype(np.float32)
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        a @ a
        ts.append(time.perf_counter() - t)
    gflops = 2 * 1024 ** 3 / min(ts) / 1e9
    src = np.ones(1 << 24, np.float32)  # 64 MiB
    dst = np.empty_like(src)
    ts = []
    for _ in range(7):
        t = time.perf_counter()
        np.copyto(dst, src)
        ts.append(time.perf_counter() - t)
    gbps = 2 * src.nbytes / float(np.median(ts)) / 1e9
    one = np.ones(1, np.float32)
    t = time.perf_counter()
    for _ in range(2000):
        np.multiply(one, one)
    call = (time.perf_counter() - t) / 2000
    return {"gemm_gflops_fp32": gflops, "memory_bandwidth_gbps": gbps, "call_overhead_s": call}


def main() -> None:
    cfg = json.loads(sys.stdin.readline())
    from threadpoolctl import threadpool_limits

    from kernels.transformer import Config, build

    threadpool_limits(1)  # one BLAS thread per replica
    sys.setswitchinterval(2e-4)
    cores.pin((cfg.get("cpus") or [])[:1])  # time on a core a replica will serve on
    model = build(Config(**cfg["model"]), int(cfg["seed"]))
    gemms = time_gemms(model, [int(m) for m in cfg["gemm_rows"]])
    ceil = ceilings()
    profiled = profile_iterations(model, int(cfg["max_num_seqs"]), int(cfg["max_batched_tokens"]),
                                  int(cfg.get("longest_prompt", cfg["max_batched_tokens"])))
    cores.pin(cfg.get("harness_cpus"))  # connection readers start from this thread: the harness's cores
    server = LLMServer(cfg, model)
    sock = wire.listen()
    print(json.dumps({"port": sock.getsockname()[1], "gemm": gemms, "weight_bytes": model.weight_bytes,
                      "kv_blocks": server.total_blocks, "ceilings": ceil, "iteration_profile": profiled}), flush=True)
    server.serve(sock)
    print(json.dumps({"iterations": server.iterations, "requests": server.requests, "dropped": server.dropped,
                      "preempted": server.preempted, "worker_cores": server.worker_cores}), flush=True)


if __name__ == "__main__":
    main()

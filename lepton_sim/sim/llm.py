"""LLM pools: replicas that serve token by token with iteration-level continuous batching.

Each replica (``tensor_parallel`` devices of one node, one vLLM-style engine) keeps its own
running list and FIFO waiting queue; a request routed to the pool goes to the replica with the
fewest outstanding tokens (prompt plus output tokens of the requests it holds and has not
finished) or, with ``replica_routing: least-kv``, the most free KV cache. An idle replica with
work starts an iteration, scheduled as vLLM's scheduler does with chunked prefill:

1. the running sequences in admission order, each with what it still has to process: one token
   when decoding, or the rest of its prompt (a chunk of it when the token budget runs out, with
   ``chunked_prefill``). A sequence that needs a KV-cache block when none is free preempts the
   newest running sequence (its blocks are freed; it goes back to the head of the waiting queue
   and is recomputed later, prompt and generated tokens together), itself if it is the newest;
2. then, if nothing was preempted, waiting requests in FIFO order while the iteration has fewer
   than ``max_num_seqs`` sequences, budget left of ``max_batched_tokens`` tokens and free blocks
   for the prompt (or its first chunk; for a preempted sequence, for all it must recompute) beyond
   a watermark of 1% of the blocks (vLLM's default). The head of the queue blocks those behind it.

The iteration takes ``LLMReplicaModel.seconds(tokens, samples, attn_pairs, kv_tokens)`` from the
shared service-time model (`lepton_sim.servicetime.llm`). At its end every sequence whose cache
now holds all its known tokens samples one more token: the first one goes back to the demand
site at once (`Simulation._first_token`), and the last one finishes the request
(`Simulation._llm_done`). A request that could never fit the replica's KV cache, even alone, is
dropped on arrival.
"""
from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import simpy

from lepton_sim.scenario.schema import LognormalTokens, Replicas, Tokens, UniformTokens
from lepton_sim.servicetime.llm import attention_terms
from lepton_sim.sim.common import TIME_BINS, Request

if TYPE_CHECKING:
    from lepton_sim.sim.engine import Simulation


class Seq:
    """One LLM request's sequence on its replica (mutable, engine-internal)."""

    __slots__ = ("req", "prompt", "output", "kv", "gen", "blocks", "done", "t_first_back", "preemptions", "lost")

    def __init__(self, req: Request, prompt: int, output: int) -> None:
        self.req = req
        self.prompt, self.output = prompt, output
        self.kv = 0  # tokens whose K and V are in the cache
        self.gen = 0  # output tokens sampled so far
        self.blocks = 0  # KV-cache blocks held
        self.done = False
        self.t_first_back = -1.0  # when the first token reached the demand site
        self.preemptions = 0
        self.lost = False  # a part of its output was lost on a failed link: the request failed


class Replica:
    """One replica's scheduler state."""

    __slots__ = ("index", "running", "waiting", "free", "busy", "sched", "tokens_out", "live", "gen", "end",
                 "levels")

    def __init__(self, index: int, blocks: int) -> None:
        self.index = index
        self.live = True
        self.gen = 0  # bumped when the replica fails, so its pending iteration is ignored
        self.end = 0.0  # when the running iteration ends
        self.levels = (0, 0)  # the running iteration's sequences running and KV blocks in use
        self.running: list[Seq] = []
        self.waiting: deque[Seq] = deque()
        self.free = blocks
        self.busy = False
        self.sched: list[tuple[Seq, int]] = []
        self.tokens_out = 0  # prompt + output tokens of the requests it holds and has not finished


def mean_tokens(tokens: Tokens) -> tuple[float, float]:
    """The mean prompt and output tokens of a service's requests (a trace's over its rows)."""
    if tokens.trace is not None:
        pairs = tokens.trace.pairs
        return sum(p for p, _ in pairs) / len(pairs), sum(o for _, o in pairs) / len(pairs)

    def mean(d: Any) -> float:
        if isinstance(d, UniformTokens):
            return (d.low + d.high) / 2
        if isinstance(d, LognormalTokens):
            return d.mean  # before clipping
        return float(d.n)

    return mean(tokens.prompt), mean(tokens.output)


class LLMPool:
    """`count` replicas of an LLM variant, each with its own continuous-batching scheduler."""

    def __init__(self, sim: Simulation, index: int, line: Replicas, svc: Any, model: Any, kv_tokens: int,
                 window: int | None = None) -> None:
        self.sim, self.env, self.index, self.line = sim, sim.env, index, line
        self.id = f"{line.service}@{line.site}/{line.hardware}/{line.variant}"
        sched = svc.scheduler_or_default
        self.model = model  # the replica's `LLMReplicaModel`
        self.batch_times = None
        self.block_tokens = sched.block_tokens
        self.total_blocks = kv_tokens // sched.block_tokens
        self.watermark = -(-self.total_blocks // 100)  # vLLM's default: admissions keep 1% of the blocks free
        self.max_seqs = sched.max_num_seqs
        self.max_tokens = sched.max_batched_tokens
        self.chunked = sched.chunked_prefill
        self.by_kv = sched.replica_routing == "least-kv"
        self.window = window  # sliding-window attention: a token attends to at most this many keys
        n = line.count
        self.replicas = [Replica(i, self.total_blocks) for i in range(n)]
        self.rr = 0  # where the next tie-break starts
        # What routing between pools reads (`routing._load`): requests routed here and not finished,
        # times a request's modelled seconds alone on a replica (its mean prompt's prefill, then
        # its mean output's decode steps one at a time), per live replica.
        p, o = mean_tokens(svc.tokens)
        pi, oi = max(1, round(p)), max(1, round(o))
        prefill, kv = 0.0, 0
        while kv < pi:
            chunk = min(pi - kv, self.max_tokens)
            prefill += model.seconds(chunk, int(kv + chunk == pi), chunk * (kv + (chunk + 1) / 2), kv + chunk)
            kv += chunk
        self.per_request_s = prefill + (oi - 1) * model.seconds(1, 1, pi + oi / 2, pi + oi / 2)
        self.outstanding = 0
        self.n_live = n
        # tallies inside the measured window
        self.busy = [0.0] * n
        self.down_s = [0.0] * n
        self.bins = [0.0] * TIME_BINS
        self.run_bins = [0.0] * TIME_BINS  # running sequences x seconds
        self.kv_bins = [0.0] * TIME_BINS  # KV blocks in use x seconds
        self.tok_bins = [0.0] * TIME_BINS  # output tokens sampled
        self.batches = 0  # iterations started
        self.batched = 0  # sequences in them
        self.batch_tokens = 0  # tokens processed in them
        self.running_s = 0.0  # running sequences x seconds, summed over replicas
        self.kv_block_s = 0.0  # KV blocks in use x seconds, summed over replicas
        self.kv_peak = 0  # the most KV blocks any replica had in use at once (over the whole run)
        self.preempted = 0
        self.output_tokens = 0
        self.finished = 0  # requests whose last token was sampled inside the window
        self.too_long = 0  # requests that could never fit a replica's KV cache
        self.failures = 0
        self.retried = 0  # requests moved to another replica because theirs failed (their cache lost)
        self.down_since = [0.0] * n
        self.orphans: list[Seq] = []  # requests of failed replicas while no replica is live

    # --- arrivals ---------------------------------------------------------------------------

    def enqueue(self, req: Request) -> None:
        seq: Seq = req.llm
        if -(-(seq.prompt + seq.output) // self.block_tokens) > self.total_blocks:  # never fits, even alone
            if req.counted:
                self.too_long += 1
            self.outstanding -= 1
            self.sim._drop(req)
            return
        if self.n_live == 0:
            self.orphans.append(seq)  # every replica is down: it waits for a repair
            return
        self._assign(seq)

    def _assign(self, seq: Seq) -> None:
        r = self._pick()
        r.tokens_out += seq.prompt + seq.output
        r.waiting.append(seq)
        if not r.busy:
            self._step(r)

    def _pick(self) -> Replica:
        """The live replica with the fewest outstanding tokens (or the most free KV cache, less what
        its waiting prompts will take); ties go round robin, from the replica after the last one picked."""
        reps = self.replicas
        n = len(reps)
        order = [r for r in (reps[(self.rr + k) % n] for k in range(n)) if r.live]
        if self.by_kv:
            best = max(order, key=lambda r: r.free * self.block_tokens - sum(s.prompt for s in r.waiting))
        else:
            best = min(order, key=lambda r: r.tokens_out)
        self.rr = best.index + 1
        return best

    # --- iterations -------------------------------------------------------------------------

    def _preempt(self, r: Replica) -> Seq:
        """Free the newest running sequence's blocks and put it back at the head of the queue."""
        victim = r.running.pop()
        r.free += victim.blocks
        victim.blocks = 0
        victim.kv = 0
        victim.preemptions += 1
        r.waiting.appendleft(victim)
        if self.sim.window.in_window(self.env.now):
            self.preempted += 1
        self.sim._preempted(victim.req)
        return victim

    def _step(self, r: Replica) -> None:
        """Schedule and start one iteration on the idle replica `r`, or leave it idle."""
        bt = self.block_tokens
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
            # Past the budget only a chunk: with chunked_prefill, or a preempted sequence's recompute
            # (prompts themselves fit the budget without chunking: the loader checks it).
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
            if self.window is None:
                pairs += n * (s.kv + (n + 1) / 2)
                kv_read += s.kv + n
            else:
                a, k = attention_terms(s.kv, n, self.window)
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
                # A recomputed sequence comes back only when its whole cache fits (else it would be
                # preempted again at once); every admission leaves vLLM's watermark of blocks free.
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
                a, k = attention_terms(0, n, self.window)
                pairs += a
                kv_read += k
        if not sched:
            if preempted and (running or waiting):
                self._step(r)  # everything running was preempted: start again from the queue
                return
            r.busy = False
            return
        r.busy = True
        r.sched = sched
        dt = self.model.seconds(tokens, samples, pairs, kv_read)
        now = self.env.now
        r.end = now + dt
        r.levels = (len(running), self.total_blocks - r.free)
        win = self.sim.window
        w = win.overlap(now, now + dt)
        self.busy[r.index] += w
        win.add_bins(self.bins, now, now + dt)
        used = self.total_blocks - r.free
        if used > self.kv_peak:
            self.kv_peak = used
        self.running_s += len(running) * w
        self.kv_block_s += used * w
        win.add_bins(self.run_bins, now, now + dt, len(running))
        win.add_bins(self.kv_bins, now, now + dt, used)
        if win.start <= now < win.end:
            self.batches += 1
            self.batched += len(sched)
            self.batch_tokens += tokens
        ev = self.env.timeout(dt, (r, r.gen))
        ev.callbacks.append(self._on_iteration)
        self.sim.events += 1

    def _on_iteration(self, ev: simpy.Event) -> None:
        r, gen = ev._value
        if gen != r.gen:
            return  # the replica failed during this iteration
        now = self.env.now
        win = self.sim.window
        counted = win.in_window(now)
        finished = False
        for s, n in r.sched:
            s.kv += n
            if s.kv == s.prompt + s.gen:
                s.gen += 1
                if counted:
                    self.output_tokens += 1
                if now < win.end:
                    self.tok_bins[int(now / win.bin_w)] += 1
                if s.gen == 1:
                    self.sim._first_token(s.req)
                if s.gen >= s.output:
                    s.done = finished = True
                    r.free += s.blocks
                    s.blocks = 0
                    r.tokens_out -= s.prompt + s.output
                    self.outstanding -= 1
                    if counted:
                        self.finished += 1
                    self.sim._llm_done(s.req)
        r.sched = []
        if finished:
            r.running = [s for s in r.running if not s.done]
        self._step(r)

    # --- what the engine asks of every pool ---------------------------------------------------

    def fail(self, replica: int) -> None:
        """The replica goes down with its KV cache: its requests, running and waiting, move to the
        other live replicas (each recomputes what it had; tokens already sent stay sent), or wait
        for a repair when none is live. The failed iteration's unserved time is not busy time."""
        r = self.replicas[replica]
        now = self.env.now
        win = self.sim.window
        self.n_live -= 1
        r.live = False
        self.down_since[replica] = now
        if win.in_window(now):
            self.failures += 1
        r.gen += 1
        if r.busy and r.end > now:
            running, used = r.levels
            self.busy[replica] -= win.overlap(now, r.end)
            win.add_bins(self.bins, now, r.end, -1.0)
            self.running_s -= running * win.overlap(now, r.end)
            self.kv_block_s -= used * win.overlap(now, r.end)
            win.add_bins(self.run_bins, now, r.end, -running)
            win.add_bins(self.kv_bins, now, r.end, -used)
        moved = r.running + list(r.waiting)
        r.running, r.sched, r.busy, r.free, r.tokens_out = [], [], False, self.total_blocks, 0
        r.waiting.clear()
        for s in moved:
            s.kv = s.blocks = 0
            if s.req.counted:
                self.retried += 1
            if self.n_live:
                self._assign(s)
            else:
                self.orphans.append(s)

    def repair(self, replica: int) -> None:
        r = self.replicas[replica]
        self.n_live += 1
        r.live = True
        self.down_s[replica] += self.sim.window.overlap(self.down_since[replica], self.env.now)
        orphans, self.orphans = self.orphans, []
        for s in orphans:
            self._assign(s)

    def close(self, end: float) -> None:
        """Account down time still open when the run ends."""
        for i, r in enumerate(self.replicas):
            if not r.live:
                self.down_s[i] += self.sim.window.overlap(self.down_since[i], end)

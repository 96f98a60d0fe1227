"""One replica pool served for real: `python -m lepton_sim.validation.server` (started by `run`).

It reads its configuration as one JSON line on stdin, builds the model variant's forward pass
(`kernels.forward.compile_forward`, weights He-initialised from the seed: timing does not depend on
their values), times it at the batch sizes the simulation needs (back to back, and after idle gaps
at the smallest and largest, from the notify that wakes the worker), listens on a loopback port and
prints one JSON line: the port and those timings. It then serves until stdin closes, and prints
one JSON line of what it did (every batch's times, on the machine's monotonic clock, which
`time.perf_counter` reads in every process alike, and the forward pass timed back to back again
after the load, at the smallest and largest batch: the host's drift during the run).

A request frame's payload is the request's bytes on the wire: decompressed first when the service
has a payload codec (in the connection's reader thread, as the simulator decompresses on arrival at
the pool) and checked against the model's `input_bytes`; the forward pass runs on fixed float32
input rows of the model's input size. The
queue is one FIFO for the pool; an idle worker takes the first `max_batch` requests when that many
wait, or when the oldest has waited `max_wait_ms`, else waits for whichever comes first
(`lepton_sim.sim.pools.Pool`). Each response is the output row's bytes, padded or cut to the
model's `output_bytes`.

Requests of stream 0 (`wire.REHEARSAL`, sent before the load) take the same path through the queue
and a worker but get their response without a forward pass; their times are reported apart.

With `cpus` in its configuration (`lepton_sim.validation.cores`), the forward pass is timed on the
first of them, each worker thread serves on its own, and the connection readers run on
`harness_cpus`; each worker reports the cores it ran on.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from lepton_sim.validation import cores, wire


def _forward(cfg: dict[str, Any]) -> tuple[Any, int]:
    """The forward callable and the bytes of the weight arrays it reads (cast, quantised or packed)."""
    from kernels.forward import compile_forward, init_params, prepare_dense

    params = init_params(cfg["layers"], np.random.default_rng(cfg["seed"]))
    nbytes = sum(prepare_dense(p, cfg["precision"]).nbytes for p in params if p is not None)
    return compile_forward(cfg["layers"], params, cfg["precision"]), nbytes


def _time_batches(forward: Any, features: int, batches: list[int]) -> dict[int, dict[str, float]]:
    """The forward pass back to back at each batch size, timed in rounds over the sizes (`time_rounds`:
    a burst of the host's other work lands on every size alike)."""
    from kernels.timing import TimingPolicy, time_rounds

    policy = TimingPolicy(warmup=3, repeats=9, min_sample_s=2e-3, budget_s=0.3, min_repeats=5)
    rng = np.random.default_rng(0)
    xs = {b: rng.standard_normal((b, features)).astype(np.float32) for b in batches}
    got = time_rounds({b: (lambda x=xs[b]: forward(x)) for b in batches}, policy)
    return {b: got[b].as_dict() for b in batches}


IDLE_GAPS_S = (0.5e-3, 2e-3, 8e-3, 32e-3)
IDLE_SAMPLES = 11


def _time_after_idle(forward: Any, features: int, batches: list[int],
                     notifier_cores: list[int] | None = None) -> list[dict[str, Any]]:
    """The forward pass after idling each of IDLE_GAPS_S, timed as a serving worker meets it (median kept).

    Back-to-back timing keeps the weights in caches; a serving replica that waited for work finds
    them partly evicted (on a virtual machine, by other tenants too) and runs slower. And it waited
    in a condition wait that a connection reader's notify ends, on another core: the time runs from
    that notify (by a thread on `notifier_cores`, the harness's, as the readers are) to the forward
    pass's end, so the worker's wake-up is in it too (the simulation charges it to the batch, during
    which the replica is not free either).
    """
    rng = np.random.default_rng(0)
    cond = threading.Condition()
    state: dict[str, Any] = {"waiting": False, "go": None}
    plan = [gap for _ in batches for gap in IDLE_GAPS_S for _ in range(IDLE_SAMPLES)]

    def notifier() -> None:
        cores.pin(notifier_cores)
        for gap in plan:
            with cond:
                while not state["waiting"]:
                    cond.wait()
                state["waiting"] = False
            time.sleep(gap)  # the worker sits in its condition wait meanwhile
            with cond:
                state["go"] = time.perf_counter()
                cond.notify_all()

    th = threading.Thread(target=notifier, daemon=True)
    th.start()
    out = []
    for b in batches:
        x = rng.standard_normal((b, features)).astype(np.float32)
        forward(x)
        for gap in IDLE_GAPS_S:
            ts = []
            for _ in range(IDLE_SAMPLES):
                with cond:
                    state["waiting"] = True
                    cond.notify_all()
                    while state["go"] is None:
                        cond.wait()
                    t, state["go"] = state["go"], None
                forward(x)
                ts.append(time.perf_counter() - t)
            q1, med, q3 = (float(v) for v in np.quantile(ts, [0.25, 0.5, 0.75]))
            out.append({"batch": b, "gap_s": gap, "timing": {"median_s": med, "q1_s": q1, "q3_s": q3,
                                                               "repeats": IDLE_SAMPLES, "inner": 1}})
    th.join()
    return out


class Server:
    def __init__(self, cfg: dict[str, Any], forward: Any) -> None:
        self.cfg = cfg
        self.forward = forward
        self.features = int(cfg["features"])
        self.out_bytes = int(cfg["output_bytes"])
        self.max_batch = int(cfg["max_batch"])
        self.max_wait = float(cfg["max_wait_ms"]) / 1e3
        self.codec = cfg.get("codec")
        self.in_bytes = int(cfg["input_bytes"])
        # The forward pass reads fixed float32 rows: payload bytes (images, text) read as floats could
        # hold denormals, which slow the kernels down and would time something else than the profile.
        self.rows = np.random.default_rng(1).standard_normal((self.max_batch, self.features)).astype(np.float32)
        self.queue: deque[tuple[float, int, Any]] = deque()
        self.cond = threading.Condition()
        self.closing = False
        self.batches: list[tuple[float, float, float, float, int]] = []  # take, forward start/end, sent, size
        self.waited: list[bool] = []  # per batch: whether its worker sat idle before it (`take`)
        self.worker_of: list[int] = []  # per batch: which worker ran it
        self.decode_s: list[float] = []
        self.requests: list[tuple[int, float, float, float]] = []  # id, enqueued, taken, response sending
        self.lock = threading.Lock()
        self.worker_cores: list[list[int]] = []  # each worker's cores, as it saw them
        self.rehearsal: list[tuple[int, float, float, float]] = []  # as `requests`, the rehearsal's
        self.rehearsal_batches: list[tuple[float, float, int]] = []  # taken, last response sent, size

    def decode(self, payload: bytes) -> None:
        """What arrival at the pool does to a payload: decompress it (with a codec), check its size."""
        if self.codec is not None:
            from kernels.codecs import decompress

            t = time.perf_counter()
            payload = decompress(self.codec, payload)
            self.decode_s.append(time.perf_counter() - t)
        if len(payload) != self.in_bytes:
            raise ValueError(f"request of {len(payload)} bytes, expected {self.in_bytes}")

    def reader(self, conn: Any) -> None:
        send_lock = threading.Lock()
        peer = (conn, send_lock)
        for rid, payload in wire.requests(conn, send_lock):
            if not wire.is_rehearsal(rid):
                self.decode(payload)
            with self.cond:
                self.queue.append((time.perf_counter(), rid, peer))
                self.cond.notify()

    def take(self) -> tuple[list[tuple[float, int, Any]], bool] | None:
        """The next batch, and whether the worker waited for it (sat idle: an empty queue, or a
        batch filling under `max_wait_ms`) rather than taking it as it finished the last."""
        waited = False
        with self.cond:
            while True:
                if self.closing:
                    return None
                q = self.queue
                if not q:
                    waited = True
                    self.cond.wait()
                    continue
                n = len(q)
                if n < self.max_batch and self.max_wait > 0.0:
                    left = q[0][0] + self.max_wait - time.perf_counter()
                    if left > 0:
                        waited = True
                        self.cond.wait(left)
                        continue
                b = min(n, self.max_batch)
                batch = [q.popleft() for _ in range(b)]
                if q:
                    self.cond.notify()  # another idle worker may start on what is left
                return batch, waited

    def worker(self, cpu: int | None = None, index: int = 0) -> None:
        if cpu is not None:
            cores.pin([cpu])
        with self.lock:
            self.worker_cores.append(cores.current())
        while True:
            got = self.take()
            if got is None:
                return
            batch, waited = got
            t_take = time.perf_counter()
            if all(wire.is_rehearsal(rid) for _, rid, _ in batch):
                self.answer_rehearsal(batch, t_take)
                continue
            x = self.rows[: len(batch)]
            t0 = time.perf_counter()
            y = self.forward(x)
            t1 = time.perf_counter()
            raw = np.ascontiguousarray(y, dtype=np.float32)
            done = []
            for i, (t_enq, rid, (conn, send_lock)) in enumerate(batch):
                body = raw[i].tobytes()[: self.out_bytes]
                body += bytes(self.out_bytes - len(body))
                t_send = time.perf_counter()
                with send_lock:
                    conn.sendall(wire.pack(rid, body))
                done.append((rid, t_enq, t_take, t_send))
            t2 = time.perf_counter()
            self.requests.extend(done)
            with self.lock:
                self.batches.append((t_take, t0, t1, t2, len(batch)))
                self.waited.append(waited)
                self.worker_of.append(index)

    def answer_rehearsal(self, batch: list[tuple[float, int, Any]], t_take: float) -> None:
        """Rehearsal requests (before the load): the same path through the queue and the worker, no
        forward pass; their times are kept apart from the run's."""
        body = bytes(self.out_bytes)
        for t_enq, rid, (conn, send_lock) in batch:
            t_send = time.perf_counter()
            with send_lock:
                conn.sendall(wire.pack(rid, body))
            self.rehearsal.append((rid, t_enq, t_take, t_send))
        with self.lock:
            self.rehearsal_batches.append((t_take, time.perf_counter(), len(batch)))

    def serve(self, sock: Any) -> None:
        cpus = self.cfg.get("cpus") or [None] * int(self.cfg["count"])
        workers = [threading.Thread(target=self.worker, args=(c, i), daemon=True) for i, c in enumerate(cpus)]
        wire.serve_until_stdin_closes(sock, self.reader, workers, self.stop)

    def stop(self) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify_all()


def main() -> None:
    cfg = json.loads(sys.stdin.readline())
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one BLAS thread per worker: `count` workers use `count` cores
    # A thread waiting for the interpreter lock gets it within 0.2 ms instead of the default 5 ms, so a
    # worker done with its forward pass is not held up behind another thread's Python code.
    sys.setswitchinterval(2e-4)
    cpus = cfg.get("cpus") or []
    cores.pin(cpus[:1])  # time the forward pass on a core a worker will serve on
    forward, weight_bytes = _forward(cfg)
    timings = _time_batches(forward, int(cfg["features"]), [int(b) for b in cfg["time_batches"]])
    idle = _time_after_idle(forward, int(cfg["features"]), sorted({1, int(cfg["max_batch"])}),
                            cfg.get("harness_cpus"))
    cores.pin(cfg.get("harness_cpus"))  # connection readers start from this thread: the harness's cores
    server = Server(cfg, forward)
    sock = wire.listen()
    print(json.dumps({"port": sock.getsockname()[1], "timings": {str(k): v for k, v in timings.items()},
                      "after_idle": idle, "weight_bytes": weight_bytes}), flush=True)
    server.serve(sock)
    # The same back-to-back timing again, after the load: how far the host drifted during the run.
    cores.pin(cpus[:1])
    after = _time_batches(forward, int(cfg["features"]), sorted({1, int(cfg["max_batch"])}))
    print(json.dumps({"batches": server.batches, "waited": server.waited, "workers": server.worker_of, "decode_s": server.decode_s, "requests": server.requests,
                      "worker_cores": server.worker_cores, "rehearsal": server.rehearsal, "rehearsal_batches": server.rehearsal_batches,
                      "timings_after": {str(k): v for k, v in after.items()}}),
          flush=True)


if __name__ == "__main__":
    main()

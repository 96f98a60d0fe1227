"""A real data-parallel training step on this machine: two worker processes, each one thread, each
running forward and backward of a dense network (numpy) on its micro-batch, then ring-all-reducing
the gradients in buckets over loopback TCP (full duplex: a sender thread per rank), written here.

`benchmarks/training_real.py` measures it and simulates the same job (the `this-machine` profile
for compute, the measured loopback bandwidth and per-message latency for the collective) to set
the two side by side; `tests/test_training_real.py` checks that the all-reduce sums the
gradients and that the harness runs.

The network: `dense` layers (weights `in x out` plus a bias) with ReLU between them, squared error
against a random target. Backward per layer: dW = x^T dy, db = sum(dy), dx = dy W^T (masked by the
ReLU), so a layer's backward is two GEMMs of the forward's size: about 2x its forward.
"""
from __future__ import annotations

import multiprocessing as mp
import queue
import socket
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

HEADER = 8


def _recv_exact(sock: socket.socket, n: int, buf: bytearray | None = None) -> bytearray:
    out = buf if buf is not None else bytearray(n)
    view = memoryview(out)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise ConnectionError("peer closed")
        got += k
    return out


def _pair(rank: int, port: int) -> socket.socket:
    if rank == 0:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(1)
        conn, _ = srv.accept()
        srv.close()
    else:
        deadline = time.monotonic() + 20
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port))
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


class Duplex:
    """Full-duplex exchanges on one socket: a sender thread that lives as long as the socket (one
    thread made per exchange costs a bucket's worth of time on small buckets) sends while the
    caller receives, straight into the buffer the data is wanted in."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._out: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
        self._sent = threading.Semaphore(0)
        self._thread = threading.Thread(target=self._send, daemon=True)
        self._thread.start()

    def _send(self) -> None:
        while (buf := self._out.get()) is not None:
            self.sock.sendall(buf)
            self._sent.release()

    def exchange(self, send: np.ndarray, recv: np.ndarray) -> None:
        """Send `send` and receive into `recv` at once (both contiguous)."""
        self._out.put(memoryview(send).cast("B"))
        _recv_exact(self.sock, recv.nbytes, memoryview(recv).cast("B"))  # type: ignore[arg-type]
        self._sent.acquire()

    def close(self) -> None:
        self._out.put(None)
        self._thread.join()
        self.sock.close()


def ring_allreduce_2(link: Duplex, rank: int, grad: np.ndarray, scratch: np.ndarray) -> None:
    """In place: `grad` (contiguous) becomes the sum over both ranks: reduce-scatter (send the half
    the peer owns, receive this rank's half of the peer's into `scratch`, add), then all-gather
    (send the reduced half, receive the peer's reduced half straight into place)."""
    half = len(grad) // 2
    mine, theirs = (grad[:half], grad[half:]) if rank == 0 else (grad[half:], grad[:half])
    incoming = scratch[:len(mine)]
    link.exchange(theirs, incoming)
    np.add(mine, incoming, out=mine)
    link.exchange(mine, theirs)


def make_net(widths: list[int], seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    # the scale as a float32: an fp32 array divided by numpy's float64 `sqrt` would be float64, and
    # every GEMM of the step would then run at double precision
    return [(rng.standard_normal((a, b), dtype=np.float32) * np.float32(1.0 / np.sqrt(a)), np.zeros(b, np.float32))
            for a, b in zip(widths, widths[1:])]


def forward_backward(net: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The flat gradient of the squared error over the batch (weights then bias, layer by layer)."""
    acts = [x]
    h = x
    for i, (w, b) in enumerate(net):
        h = h @ w + b
        if i < len(net) - 1:
            h = np.maximum(h, 0.0)
        acts.append(h)
    dy = (acts[-1] - target) * (2.0 / len(x))
    grads: list[np.ndarray] = []
    for i in range(len(net) - 1, -1, -1):
        w, _ = net[i]
        grads.append(dy.sum(axis=0))
        grads.append((acts[i].T @ dy).ravel())
        if i:
            dy = (dy @ w.T) * (acts[i] > 0)
    return np.concatenate(grads[::-1]).astype(np.float32, copy=False)  # one copy into the flat buffer, as DDP's buckets


def forward(net: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    h = x
    for i, (w, b) in enumerate(net):
        h = h @ w + b
        if i < len(net) - 1:
            h = np.maximum(h, 0.0)
    return h


@dataclass(frozen=True)
class StepTimes:
    forward_s: float  # median forward alone, one thread
    compute_s: float  # median forward + backward
    communication_s: float  # median all-reduce of every bucket
    iteration_s: float  # median whole step
    grad_bytes: int
    buckets: int


def _worker(rank: int, port: int, widths: list[int], batch: int, iters: int, warmup: int, bucket_bytes: int,
            out: Any) -> None:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        net = make_net(widths, seed=0)  # the same weights on both ranks
        rng = np.random.default_rng(100 + rank)
        x = rng.standard_normal((batch, widths[0]), dtype=np.float32)
        target = rng.standard_normal((batch, widths[-1]), dtype=np.float32)
        link = Duplex(_pair(rank, port))
        fwd, comp, comm, step = [], [], [], []
        grad = np.zeros(0, np.float32)
        per = max(1, bucket_bytes // 4)
        scratch = np.empty(per, np.float32)
        for k in range(warmup + iters):
            t0 = time.perf_counter()
            forward(net, x)
            t1 = time.perf_counter()
            t2 = time.perf_counter()
            grad = forward_backward(net, x, target)
            t3 = time.perf_counter()
            for i in range(0, len(grad), per):
                ring_allreduce_2(link, rank, grad[i:i + per], scratch)  # a view: reduced in place
            t4 = time.perf_counter()
            if k >= warmup:
                fwd.append(t1 - t0)
                comp.append(t3 - t2)
                comm.append(t4 - t3)
                step.append(t4 - t2)
        link.close()
        out.put((rank, fwd, comp, comm, step, grad[:64].tolist(), int(grad.nbytes),
                 -(-len(grad) // max(1, bucket_bytes // 4))))


def run_step(widths: list[int], batch: int, iters: int = 20, warmup: int = 3, bucket_mb: float = 4.0,
             port: int = 0) -> tuple[StepTimes, list[list[float]]]:
    """Run the 2-rank job; (median times of rank 0, the first 64 reduced gradient values of each rank)."""
    if port == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, port, widths, batch, iters, warmup, int(bucket_mb * 1e6), q))
             for r in (0, 1)]
    for p in procs:
        p.start()
    results = {}
    for _ in procs:
        r = q.get(timeout=600)
        results[r[0]] = r
    for p in procs:
        p.join(timeout=60)
    _, fwd, comp, comm, step, _, nbytes, nb = results[0]
    med = statistics.median
    return (StepTimes(med(fwd), med(comp), med(comm), med(step), nbytes, nb),
            [results[0][5], results[1][5]])


def _sink(port: int, n: int) -> None:
    sock = _pair(1, port)
    buf = bytearray(n)
    for _ in range(3):
        _recv_exact(sock, n, buf)
        sock.sendall(b"k")
    for _ in range(200):
        _recv_exact(sock, 1)
        sock.sendall(b"p")
    link = Duplex(sock)
    data = np.zeros(n // 4, np.float32)
    into = np.empty(n // 4, np.float32)
    for _ in range(3):
        link.exchange(data, into)
    link.close()


@dataclass(frozen=True)
class Loopback:
    """Loopback TCP between two processes, measured."""

    one_way_bps: float  # bytes per second, one direction busy (best of 3 bulk transfers)
    duplex_bps: float  # bytes per second each way with both directions busy at once, as in an all-reduce
    latency_s: float  # one way: half the median round trip of 1-byte messages


def loopback_measured(n_bytes: int = 64 * 1024 * 1024) -> Loopback:
    """Loopback TCP between two processes: a bulk transfer one way, round trips of 1-byte messages,
    and bulk transfers both ways at once (each process sending while it receives)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    p = ctx.Process(target=_sink, args=(port, n_bytes))
    p.start()
    sock = _pair(0, port)
    data = bytes(n_bytes)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        sock.sendall(data)
        _recv_exact(sock, 1)
        best = min(best, time.perf_counter() - t0)
    rtts = []
    for _ in range(200):
        t0 = time.perf_counter()
        sock.sendall(b"x")
        _recv_exact(sock, 1)
        rtts.append(time.perf_counter() - t0)
    n4 = n_bytes // 4
    link = Duplex(sock)
    data = np.zeros(n4, np.float32)
    into = np.empty(n4, np.float32)
    both = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        link.exchange(data, into)
        both = min(both, time.perf_counter() - t0)
    link.close()
    p.join(timeout=30)
    return Loopback(n_bytes / best, n4 * 4 / both, statistics.median(rtts) / 2)

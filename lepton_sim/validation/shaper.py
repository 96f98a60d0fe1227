"""Links emulated for real: `python -m lepton_sim.validation.shaper` (started by `run`).

Configuration is one JSON line on stdin: the link directions (bandwidth in bit/s, propagation
delay in s) and the routes (for each, the directions crossed there and back, and the server port
at the end). A load-generator connection opens with a frame naming its route; the shaper connects
to that route's server and relays both ways.

Each link direction is one FIFO channel, as `lepton_sim.sim.links.LinkDir`: a thread takes frames
in arrival order and holds each for its payload's bits / bandwidth (the link is busy meanwhile),
then a timer thread delivers it after the propagation delay, to the next direction on the route
or to the socket at its end (store and forward at every hop, as the simulator does). Sleeps
overshoot a little; the shaper measures by how much, per frame, and reports it on exit.
"""
from __future__ import annotations

import heapq
import itertools
import json
import queue
import sys
import threading
import time
from typing import Any, Callable

from lepton_sim.validation import wire

Deliver = Callable[[bytes], None]


class Timer:
    """Calls each callback at its due time (one thread, a heap); records how late each call was."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, Deliver, bytes]] = []
        self.cond = threading.Condition()
        self.seq = itertools.count()
        self.late_s: list[float] = []
        threading.Thread(target=self.loop, daemon=True).start()

    def at(self, due: float, fn: Deliver, frame: bytes) -> None:
        with self.cond:
            heapq.heappush(self.heap, (due, next(self.seq), fn, frame))
            self.cond.notify()

    def loop(self) -> None:
        while True:
            with self.cond:
                while not self.heap or self.heap[0][0] > time.perf_counter():
                    self.cond.wait(None if not self.heap else self.heap[0][0] - time.perf_counter())
                due, _, fn, frame = heapq.heappop(self.heap)
            self.late_s.append(time.perf_counter() - due)
            fn(frame)


class Direction:
    """One direction of one link: FIFO serialisation at the bandwidth, then the propagation delay."""

    def __init__(self, bandwidth_bps: float, latency_s: float, timer: Timer) -> None:
        self.bps, self.latency, self.timer = bandwidth_bps, latency_s, timer
        self.q: queue.SimpleQueue[tuple[float, bytes, Deliver]] = queue.SimpleQueue()
        self.late_s: list[float] = []
        threading.Thread(target=self.loop, daemon=True).start()

    def send(self, frame: bytes, then: Deliver) -> None:
        self.q.put((time.perf_counter(), frame, then))

    def loop(self) -> None:
        free_at = 0.0
        while True:
            arrived, frame, then = self.q.get()
            # The link's own clock: a frame starts when it arrived or when the one before it ended,
            # whichever is later, however late this thread woke up; so sleep overshoots do not add up.
            start = max(arrived, free_at)
            done = start + (len(frame) - wire.HEADER.size) * 8.0 / self.bps  # the payload's bits, as simulated
            left = done - time.perf_counter()
            if left > 0:
                time.sleep(left)
            self.late_s.append(time.perf_counter() - done)
            free_at = done
            self.timer.at(done + self.latency, then, frame)


def _chain(dirs: list[Direction], end: Deliver) -> Deliver:
    """A callable that sends a frame across `dirs` in order, then hands it to `end`."""
    fn = end
    for d in reversed(dirs):
        fn = (lambda d, nxt: (lambda frame: d.send(frame, nxt)))(d, fn)
    return fn


def _sender(sock: Any) -> Deliver:
    lock = threading.Lock()

    def send(frame: bytes) -> None:
        with lock:
            try:
                sock.sendall(frame)
            except OSError:
                pass
    return send


def _pump(src: Any, into: Deliver, done: Callable[[], None] | None = None) -> None:
    while True:
        frame = wire.recv_frame(src)
        if frame is None:
            if done is not None:
                done()
            return
        into(wire.pack(*frame))


def main() -> None:
    cfg = json.loads(sys.stdin.readline())
    timer = Timer()
    dirs = {key: Direction(float(d["bandwidth_bps"]), float(d["latency_s"]), timer)
            for key, d in cfg["directions"].items()}
    routes = cfg["routes"]
    sock = wire.listen()

    def handle(client: Any) -> None:
        hello = wire.recv_frame(client)
        if hello is None:
            return
        route = routes[hello[1].decode()]
        server = wire.connect(int(route["port"]))
        there = _chain([dirs[k] for k in route["there"]], _sender(server))
        back = _chain([dirs[k] for k in route["back"]], _sender(client))
        threading.Thread(target=_pump, args=(server, back), daemon=True).start()
        _pump(client, there)

    wire.accept_in_background(sock, handle)
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    sys.stdin.read()
    sock.close()
    print(json.dumps({"serialise_late_s": {k: d.late_s for k, d in dirs.items()},
                      "deliver_late_s": timer.late_s}), flush=True)


if __name__ == "__main__":
    main()

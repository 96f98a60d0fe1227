"""Replica pools: one FIFO queue per deployment line, served by its replicas with dynamic batching."""
from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from heapq import heappush
from typing import TYPE_CHECKING

import simpy

from lepton_sim.scenario.schema import Replicas
from lepton_sim.servicetime import BatchTimes
from lepton_sim.servicetime.roofline import LOCAL_SAMPLES
from lepton_sim.sim.common import BIN_SURE, EPS_S, NORMAL, TIME_BINS, Call, Request
from lepton_sim.sim.streams import Uniforms, stream

if TYPE_CHECKING:
    from lepton_sim.sim.engine import Simulation


class DrawnTimes:
    """A batch's time drawn from measured samples (`BatchTimes.samples_s`), one uniform per draw: of
    size b, from those measured after idle (`idle_samples_s`) when the replica sat idle before it and
    there are any, else from the back-to-back ones.

    Each list is cut, in the order its samples were taken (`samples_at_s`; one block without
    times), into blocks of LOCAL_SAMPLES, and a batch draws from the block whose span (from its
    first sample's time to the next block's) holds its start, without replacement until the block
    is used up (then with). Each sample is then drawn about once where the simulation forms about
    as many batches as the run did, so a stall the real run met once is met about once (drawn with
    replacement, the few stalls of a run are a lottery: at 60-73 % utilisation the p99 came out from
    -20 % to +184 % of the measured), and a slow spell of the host is slow in the simulation at
    about the same time."""

    __slots__ = ("lists", "uniform")

    def __init__(self, times: BatchTimes, uniform: Uniforms) -> None:
        assert times.samples_s is not None
        n = len(times.samples_s)
        at = times.samples_at_s or tuple(() for _ in range(n))
        hot = [_Blocks(row, row_at) for row, row_at in zip(times.samples_s, at)]
        idle = times.idle_samples_s or tuple(() for _ in range(n))
        idle_at = times.idle_samples_at_s or tuple(() for _ in range(n))
        cold = [_Blocks(row, row_at) if row else h for row, row_at, h in zip(idle, idle_at, hot)]
        self.lists = (hot, cold)
        self.uniform = uniform

    def __call__(self, b: int, after_idle: bool, now: float) -> float:
        return self.lists[after_idle][b - 1].draw(now, self.uniform)


class _Blocks:
    """One list of `DrawnTimes`: its samples in blocks, each with the part not yet drawn."""

    __slots__ = ("values", "at", "left")

    def __init__(self, values: tuple[float, ...], at: tuple[float, ...]) -> None:
        k = LOCAL_SAMPLES if at else max(1, len(values))  # without times: one block
        self.values = [list(values[i:i + k]) for i in range(0, len(values), k)]
        self.at = list(at[::k][1:])  # the first time of each block after the first
        self.left = [list(v) for v in self.values]

    def draw(self, now: float, uniform: Uniforms) -> float:
        i = bisect_right(self.at, now)  # the block whose span holds `now`
        left = self.left[i]
        if left:
            j = int(uniform() * len(left))
            v = left[j]
            left[j] = left[-1]
            left.pop()
            return v
        block = self.values[i]
        return block[int(uniform() * len(block))]


class Pool:
    """`count` replicas behind one FIFO queue.

    An idle replica takes the queue's first `max_batch` requests at once when that many wait, or
    when the oldest has waited `max_wait_ms`; otherwise it waits for whichever comes first. The
    batch's compute time is `times[b-1]` from the service-time model (times its after-idle factor
    for the time the replica has been idle, where the measured profile timed one:
    `BatchTimes.idle_factor`), or one draw of the service's `service_time` distribution, or, where
    the times carry measured samples (`BatchTimes.samples_s`), one draw from those of size b
    (`DrawnTimes`: from the after-idle ones when the replica sat idle before the batch). A replica
    that fails mid-batch puts the batch back at the head of the queue (the requests are retried by
    the next live replica) and takes no work until repaired.
    """

    __slots__ = ("sim", "env", "index", "line", "events_q", "eid", "batch_times", "batched", "batches", "bins", "busy", "cur", "down_s", "down_since", "draw", "drawn", "failures", "free", "gen", "id", "idle", "last_end", "live", "max_batch", "max_queue", "max_wait", "n_live", "on_done", "on_timer", "outstanding", "per_request_s", "queue", "retried", "running", "sure", "timer_due", "times")

    def __init__(self, sim: Simulation, index: int, line: Replicas, max_batch: int, max_wait_s: float,
                 max_queue: int | None, times: BatchTimes | None, draw: Callable[[], float] | None,
                 per_request_s: float) -> None:
        self.sim, self.env, self.index, self.line = sim, sim.env, index, line
        self.id = f"{line.service}@{line.site}/{line.hardware}/{line.variant}"
        self.times = list(times.times_s) if times is not None else None
        self.batch_times = times
        self.draw = draw
        self.per_request_s = per_request_s  # batch-1 compute time, the unit of "queued work"
        self.max_batch = max_batch
        self.max_wait = max_wait_s
        self.max_queue = max_queue
        n = line.count
        # A measured profile may say how much longer a batch runs after its replica idled (weights
        # evicted from caches others share): then each replica remembers when its last batch ended.
        self.idle = times if getattr(times, "after_idle", None) is not None else None
        self.drawn: DrawnTimes | None = None
        if getattr(times, "samples_s", None) is not None:
            assert times is not None
            self.drawn = DrawnTimes(times, Uniforms(stream(sim.seed, f"samples/{index}/{line.service}@{line.site}/{line.hardware}")))
            self.idle = None  # the samples were measured with it
        self.last_end = [-math.inf] * n
        self.queue: deque[Request] = deque()
        self.free: deque[int] = deque(range(n))  # idle, live replicas
        self.outstanding = 0  # routed here and not yet served: in transit, queued or in service
        self.timer_due = -1.0
        self.events_q, self.eid = sim.env._queue, sim.env._eid  # for `after` in line
        self.on_done, self.on_timer = self._on_done, self._on_timer  # bound once, not once per event
        self.cur = 0  # the time bin the last batch started in, and below `sure` a batch lies
        self.sure = -1.0  # inside both it and the window for certain (`_tally`)
        self.busy = [0.0] * n
        self.bins = [0.0] * TIME_BINS
        self.batches = 0
        self.batched = 0
        # failures
        self.n_live = n
        self.live = [True] * n
        self.gen = [0] * n  # bumped when a replica fails, so its pending completion is ignored
        self.running: list[tuple[float, float, list[Request], bool] | None] = [None] * n
        self.down_s = [0.0] * n
        self.down_since = [0.0] * n
        self.failures = 0
        self.retried = 0

    def enqueue(self, req: Request) -> None:
        q = self.queue
        if self.max_queue is not None and len(q) >= self.max_queue:
            self.outstanding -= 1
            self.sim._drop(req)
            return
        req.t_enq = self.env._now
        q.append(req)
        if self.free:
            self._dispatch()

    def _dispatch(self) -> None:
        q = self.queue
        free = self.free
        now = self.env._now
        max_batch = self.max_batch
        while free and q:
            n = len(q)
            if n < max_batch and self.max_wait > 0.0:
                due = q[0].t_enq + self.max_wait
                if now < due - EPS_S:
                    if self.timer_due != due:  # wait for the batch to fill, at most until `due`
                        self.timer_due = due
                        # `after(env, due - now, self._on_timer)` in line
                        heappush(self.events_q, (now + (due - now), NORMAL, next(self.eid), Call(self.on_timer, None)))
                        self.sim.events += 1
                    return
            if n == 1 or max_batch == 1:
                b = 1
                batch = [q.popleft()]
            else:
                b = n if n < max_batch else max_batch
                batch = [q.popleft() for _ in range(b)]
            replica = free.popleft()
            if self.drawn is not None:
                dt = self.drawn(b, now > self.last_end[replica], now)
            else:
                dt = self.times[b - 1] if self.draw is None else self.draw()
                if self.idle is not None:
                    dt *= self.idle.idle_factor(b, now - self.last_end[replica])
            end = now + dt
            if end < self.sure:
                # inside the window and inside the time bin the last batch started in (starts only
                # grow), for certain: `Window.overlap` is the whole batch, `Window.add_bins` one segment
                self.busy[replica] += end - now
                self.bins[self.cur] += end - now
                self.batches += 1
                self.batched += b
                counted = True
            else:
                counted = self._tally(now, end, b, replica)
            self.running[replica] = (now, end, batch, counted)
            # `after(env, dt, self._on_done, (replica, self.gen[replica]))` in line
            heappush(self.events_q, (now + dt, NORMAL, next(self.eid), Call(self.on_done, (replica, self.gen[replica]))))
            self.sim.events += 1

    def _tally(self, now: float, end: float, b: int, replica: int) -> bool:
        """A batch's busy seconds, time bins and count, from `now` to `end` (`_dispatch`); whether it
        started inside the window. Sets where the next batches may take the short way, and takes it
        itself when the batch lies inside its own start's bin (`Window.sure_below`: a short run's
        bins are as short as a batch, and most batches start in a bin of their own)."""
        win = self.sim.window
        i = int(now / win.bin_w)
        if win.start <= now and i < TIME_BINS:
            self.cur = i
            edge = (i + 1) * win.bin_w  # `Window.sure_below(i)` in line
            sure = self.sure = (edge if edge < win.end else win.end) * BIN_SURE
            if end < sure:  # the short way of `_dispatch`: the same sums
                self.busy[replica] += end - now
                self.bins[i] += end - now
                self.batches += 1
                self.batched += b
                return True
        else:
            self.sure = -1.0
        self.busy[replica] += win.overlap(now, end)
        win.add_bins(self.bins, now, end)
        counted = win.start <= now < win.end
        if counted:
            self.batches += 1
            self.batched += b
        return counted

    def _on_timer(self, ev: simpy.Event) -> None:
        self.timer_due = -1.0
        self._dispatch()

    def _on_done(self, ev: simpy.Event) -> None:
        replica, gen = ev._value
        if gen != self.gen[replica]:
            return  # the replica failed during this batch
        run = self.running[replica]
        self.running[replica] = None
        batch = run[2]  # type: ignore[index]
        self.last_end[replica] = self.env.now
        self.free.append(replica)
        self.outstanding -= len(batch)
        respond = self.sim._respond
        for req in batch:
            respond(req)
        if self.queue:
            self._dispatch()

    def fail(self, replica: int) -> None:
        """The replica goes down; a batch it was running goes back to the head of the queue."""
        now = self.env.now
        win = self.sim.window
        self.n_live -= 1
        self.live[replica] = False
        self.down_since[replica] = now
        if win.in_window(now):
            self.failures += 1
        if replica in self.free:
            self.free.remove(replica)
            return
        run = self.running[replica]
        self.gen[replica] += 1
        self.running[replica] = None
        if run is not None:
            _, end, batch, counted = run
            self.busy[replica] -= win.overlap(now, end)
            win.add_bins(self.bins, now, end, -1.0)
            if counted:
                self.batches -= 1
                self.batched -= len(batch)
            self.retried += len(batch)
            self.queue.extendleft(reversed(batch))
        if self.free and self.queue:
            self._dispatch()

    def repair(self, replica: int) -> None:
        now = self.env.now
        self.n_live += 1
        self.live[replica] = True
        self.down_s[replica] += self.sim.window.overlap(self.down_since[replica], now)
        self.free.append(replica)
        if self.queue:
            self._dispatch()

    def close(self, end: float) -> None:
        """Account down time still open when the run ends."""
        for r, live in enumerate(self.live):
            if not live:
                self.down_s[r] += self.sim.window.overlap(self.down_since[r], end)

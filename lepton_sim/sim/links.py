"""Link directions: how a transfer waits for, shares and crosses one direction of a link."""
from __future__ import annotations

import heapq
from heapq import heappush
from typing import TYPE_CHECKING

import simpy

from lepton_sim.scenario.schema import Link
from lepton_sim.sim.common import BIN_SURE, NORMAL, TIME_BINS, Call, Request, after

if TYPE_CHECKING:
    from lepton_sim.sim.engine import Simulation


class LinkDir:
    """One direction of a link, FIFO: transfers go one at a time at full bandwidth, then propagate.

    With FIFO at a fixed bandwidth a transfer's departure is known when it arrives (the direction
    is free at `free_at`), so each hop costs one event. A failure (`fail`) loses every transfer on
    the wire or waiting (their `epoch` no longer matches) until `repair`.
    """

    __slots__ = ("sim", "env", "bps", "prop", "id", "free_at", "busy", "bytes", "transfers", "bins", "up", "epoch",
                 "w_start", "w_end", "bin_w", "queue", "eid", "hop_done", "cur", "sure")

    def __init__(self, sim: Simulation, link: Link, src: str, dst: str) -> None:
        self.sim = sim
        self.env = sim.env
        self.bps = link.bandwidth_gbps * 1e9
        self.prop = link.latency_ms / 1e3
        self.id = f"{src}->{dst}"
        self.free_at = 0.0
        self.busy = 0.0
        self.bytes = 0.0
        self.transfers = 0
        self.bins = [0.0] * TIME_BINS
        self.up = True
        self.epoch = 0
        win = sim.window  # fixed for the run: read once
        self.w_start, self.w_end, self.bin_w = win.start, win.end, win.bin_w
        self.queue, self.eid = sim.env._queue, sim.env._eid  # for `after` in line
        self.hop_done = sim._hop_done
        self.cur = 0  # the time bin the last transfer started in, and below `sure` a transfer
        self.sure = -1.0  # lies inside both it and the window for certain (`_tally`)

    def transmit(self, req: Request) -> None:
        """Start (or queue) `req`'s transfer; the far end receives it after serialisation + propagation."""
        if not self.up:
            self.sim._lose(req)
            return
        now = self.env._now
        bits = req.bits
        start = self.free_at
        if start < now:
            start = now
        end = start + bits / self.bps
        self.free_at = end
        if end < self.sure:
            # inside the window and inside the time bin the last transfer started in (starts only
            # grow), for certain: `Window.overlap` is the whole transfer, `Window.add_bins` one segment
            self.bytes += bits / 8
            self.transfers += 1
            self.busy += end - start
            self.bins[self.cur] += end - start
        else:
            self._tally(start, end, bits)
        req.epoch = self.epoch
        # `after(env, end + self.prop - now, self.sim._hop_done, req)` in line
        heappush(self.queue, (now + (end + self.prop - now), NORMAL, next(self.eid), Call(self.hop_done, req)))
        self.sim.events += 1

    def _tally(self, start: float, end: float, bits: float) -> None:
        """A transfer's bytes, busy seconds and time bins, from `start` to `end` (`transmit`).

        Sets where the next transfers may take the short way: ending below the end of this start's
        bin and of the window, when this one started inside the window (starts only grow, and a
        failure resets this); takes it itself when this transfer lies inside that bin."""
        w_start, w_end = self.w_start, self.w_end
        i = int(start / self.bin_w)
        if w_start <= start and i < TIME_BINS:
            self.cur = i
            edge = (i + 1) * self.bin_w  # `Window.sure_below(i)` in line
            sure = self.sure = (edge if edge < w_end else w_end) * BIN_SURE
            if end < sure:  # the short way of `transmit`: the same sums
                self.bytes += bits / 8
                self.transfers += 1
                self.busy += end - start
                self.bins[i] += end - start
                return
        else:
            self.sure = -1.0
        if w_start <= start < w_end:
            self.bytes += bits / 8
            self.transfers += 1
        lo = start if start > w_start else w_start  # `Window.overlap(start, end)`
        hi = end if end < w_end else w_end
        self.busy += hi - lo if hi > lo else 0.0
        self.sim.window.add_bins(self.bins, start, end)

    def fail(self) -> None:
        """Go down: transfers queued or on the wire are lost; their unserved time is not busy time."""
        now = self.env.now
        self.up = False
        self.epoch += 1
        self.sure = -1.0  # the next transfer may start before the last one did
        if self.free_at > now:
            win = self.sim.window
            self.busy -= win.overlap(now, self.free_at)
            win.add_bins(self.bins, now, self.free_at, -1.0)
            self.free_at = now

    def repair(self) -> None:
        self.up = True

    def close(self, end: float) -> None:
        """Account for anything still open when the run ends (nothing, for FIFO)."""


class FairLinkDir(LinkDir):
    """One direction of a link shared equally by the transfers in flight (processor sharing).

    Virtual time `v` is the number of bits every active transfer has received since the direction
    last went busy; it grows at bandwidth / active-count, and a transfer's finish tag is `v` at its
    arrival plus its bits. A heap of tags gives the next departure.

    Two things keep this exact however long the run. `v` restarts from 0 with each busy period,
    so its size, and its rounding, is that of one busy period, not of every bit the run has carried.
    And a departure is decided by the schedule, not by comparing `v` with a tag to a tolerance
    (one relative to `v` grew past a whole transfer after ~1,000 s at 1 Gb/s, releasing unfinished
    ones): an event counts only if nothing arrived or left since it was scheduled for the head
    transfer, so the head is due; it leaves with any transfers tagged no later than it, and one that
    rounding leaves a hair short gets its own event an instant later. So no transfer leaves before
    its bits have crossed at its share of the bandwidth (never more than all of it: never sooner
    than its own serialisation), and every departure that fires retires a transfer, even where the
    clock is too coarse to advance by the last sliver of one (a tick is 4.5e-13 s at t = 3,000 s).
    """

    __slots__ = ("v", "last", "heap", "seq", "gen", "busy_since")

    def __init__(self, sim: Simulation, link: Link, src: str, dst: str) -> None:
        super().__init__(sim, link, src, dst)
        self.v = 0.0
        self.last = 0.0
        self.heap: list[tuple[float, int, Request]] = []
        self.seq = 0
        self.gen = 0
        self.busy_since = 0.0

    def _advance(self, now: float) -> None:
        if self.heap:
            self.v += (now - self.last) * self.bps / len(self.heap)
        self.last = now

    def transmit(self, req: Request) -> None:
        if not self.up:
            self.sim._lose(req)
            return
        now = self.env.now
        if self.heap:
            self._advance(now)
        else:  # a busy period starts: virtual time counts afresh from it
            self.v, self.last, self.busy_since = 0.0, now, now
        if self.sim.window.in_window(now):
            self.bytes += req.bits / 8
            self.transfers += 1
        self.seq += 1
        req.epoch = self.epoch
        heapq.heappush(self.heap, (self.v + req.bits, self.seq, req))
        self._schedule()

    def _schedule(self) -> None:
        self.gen += 1
        if self.heap:
            dt = (self.heap[0][0] - self.v) * len(self.heap) / self.bps
            after(self.env, max(dt, 0.0), self._departure, self.gen)
            self.sim.events += 1

    def _departure(self, ev: simpy.Event) -> None:
        if ev._value != self.gen:
            return  # superseded by a later arrival or departure
        now = self.env.now
        self._advance(now)
        # scheduled for the head and nothing changed since: it is due, whatever rounding left of
        # its tag; transfers tagged no later than it (ties, or `v` already past them) leave with it
        due = max(self.v, self.heap[0][0])
        while self.heap and self.heap[0][0] <= due:
            _, _, req = heapq.heappop(self.heap)
            after(self.env, self.prop, self.sim._hop_done, req)
            self.sim.events += 1
        if not self.heap:
            self._end_busy(now)
        self._schedule()

    def _end_busy(self, now: float) -> None:
        win = self.sim.window
        self.busy += win.overlap(self.busy_since, now)
        win.add_bins(self.bins, self.busy_since, now)

    def fail(self) -> None:
        now = self.env.now
        self._advance(now)
        self.up = False
        self.epoch += 1
        if self.heap:
            self._end_busy(now)
            lost = [req for _, _, req in self.heap]
            self.heap.clear()
            for req in lost:
                self.sim._lose(req)
        self._schedule()

    def close(self, end: float) -> None:
        if self.heap:  # a busy period still open at the end
            self._end_busy(end)

"""Link directions: how a transfer waits for, shares and crosses one direction of a link."""
from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

import simpy

from lepton_sim.scenario.schema import Link
from lepton_sim.sim.common import TIME_BINS, Request

if TYPE_CHECKING:
    from lepton_sim.sim.engine import Simulation


class LinkDir:
    """One direction of a link, FIFO: transfers go one at a time at full bandwidth, then propagate.

    With FIFO at a fixed bandwidth a transfer's departure is known when it arrives (the direction
    is free at `free_at`), so each hop costs one event. A failure (`fail`) loses every transfer on
    the wire or waiting (their `epoch` no longer matches) until `repair`.
    """

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

    def transmit(self, req: Request) -> None:
        """Start (or queue) `req`'s transfer; the far end receives it after serialisation + propagation."""
        if not self.up:
            self.sim._lose(req)
            return
        env = self.env
        now = env.now
        ser = req.bits / self.bps
        start = self.free_at if self.free_at > now else now
        end = start + ser
        self.free_at = end
        win = self.sim.window
        if win.start <= start < win.end:
            self.bytes += req.bits / 8
            self.transfers += 1
        self.busy += win.overlap(start, end)
        win.add_bins(self.bins, start, end)
        req.epoch = self.epoch
        ev = env.timeout(end + self.prop - now, req)
        ev.callbacks.append(self.sim._hop_done)
        self.sim.events += 1

    def fail(self) -> None:
        """Go down: transfers queued or on the wire are lost; their unserved time is not busy time."""
        now = self.env.now
        self.up = False
        self.epoch += 1
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
            ev = self.env.timeout(max(dt, 0.0), self.gen)
            ev.callbacks.append(self._departure)
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
            done = self.env.timeout(self.prop, req)
            done.callbacks.append(self.sim._hop_done)
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

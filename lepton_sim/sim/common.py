"""What the engine's parts share: the request record, the measured window and its time bins."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lepton_sim.sim.engine import DemandState

TIME_BINS = 120  # utilisation-over-time resolution: the horizon is cut into this many bins
EPS_S = 1e-9  # float slack when comparing event times (1 ns)


class Request:
    """One inference request in flight (mutable, engine-internal)."""

    __slots__ = ("created", "svc", "counted", "pool", "path", "hop", "bits", "then", "back", "t_enq", "epoch", "llm")

    def __init__(self, created: float, svc: DemandState, counted: bool) -> None:
        self.created = created
        self.svc = svc
        self.counted = counted


class Window:
    """The measured window [warmup, duration] and a fixed grid of time bins over [0, duration]."""

    def __init__(self, warmup: float, end: float) -> None:
        self.start, self.end = warmup, end
        self.bin_w = end / TIME_BINS

    def overlap(self, s: float, e: float) -> float:
        """Seconds of [s, e] inside the measured window."""
        lo = s if s > self.start else self.start
        hi = e if e < self.end else self.end
        return hi - lo if hi > lo else 0.0

    def in_window(self, t: float) -> bool:
        return self.start <= t < self.end

    def add_bins(self, bins: list[float], s: float, e: float, sign: float = 1.0) -> None:
        """Add (or with sign -1 remove) the busy interval [s, e) to the per-bin busy seconds; with any
        other `sign`, that level times the seconds (running sequences x seconds, say)."""
        w = self.bin_w
        i = int(s / w)
        while i < TIME_BINS and s < e:
            edge = (i + 1) * w
            seg_end = e if e < edge else edge
            bins[i] += sign * (seg_end - s)
            s = seg_end
            i += 1



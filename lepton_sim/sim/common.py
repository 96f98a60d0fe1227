"""What the engine's parts share: the request record, the measured window and its time bins, and
callbacks scheduled on SimPy's event queue without a `simpy.Timeout` each (`Call`, `after`)."""
from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from typing import TYPE_CHECKING, Any

import simpy
from simpy.events import NORMAL, URGENT

__all__ = ["BIN_SURE", "EPS_S", "NORMAL", "TIME_BINS", "Call", "Request", "Window", "after", "run_until"]

if TYPE_CHECKING:
    from lepton_sim.sim.engine import DemandState

TIME_BINS = 120  # utilisation-over-time resolution: the horizon is cut into this many bins
EPS_S = 1e-9  # float slack when comparing event times (1 ns)
# Below this fraction of a time bin's right edge a time is inside the bin for certain (t / bin_w
# rounds far more finely): the engine then places it without the division.
BIN_SURE = 1.0 - 1e-12


class Request:
    """One inference request in flight (mutable, engine-internal)."""

    __slots__ = ("created", "svc", "counted", "pool", "path", "hop", "bits", "then", "back", "t_enq", "epoch", "llm")

    def __init__(self, created: float, svc: DemandState, counted: bool) -> None:
        self.created = created
        self.svc = svc
        self.counted = counted


class Call:
    """A callback due at a time, put straight on SimPy's event queue (`after`).

    It carries its one callback (``fn``) and the value the callback reads (``_value``), and no more:
    an event per hop and per iteration is the engine's commonest allocation, and a `simpy.Timeout`
    costs several times as much to make. `run_until` calls ``fn`` directly; for
    `simpy.Environment.step` it also reads as an event (``callbacks``, made when asked, ``_ok``).
    """

    __slots__ = ("fn", "_value")
    _ok = True

    def __init__(self, callback: Callable[[Any], None], value: Any) -> None:
        self.fn = callback
        self._value = value

    @property
    def callbacks(self) -> list[Callable[[Any], None]]:
        return [self.fn]

    @callbacks.setter
    def callbacks(self, value: Any) -> None:
        """`Environment.step` sets an event's callbacks to None once it has taken them."""


def after(env: simpy.Environment, delay: float, callback: Callable[[Any], None], value: Any = None) -> None:
    """Call ``callback(event)`` `delay` seconds from now (``event._value`` is `value`): the time,
    priority and place in the queue of ``env.timeout(delay, value)`` made now (SimPy 4.1's queue of
    (time, priority, event id, event)), so the order of events is SimPy's own."""
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), Call(callback, value)))


def run_until(env: simpy.Environment, until: float) -> None:
    """`env.run(until=until)` stepping the queue in line: the same stop event (urgent, at `until`),
    the same order, and a failed event raises as SimPy's `step` would."""
    if until <= env._now:
        raise ValueError(f"until ({until}) must be greater than the current simulation time")
    queue = env._queue
    stop = Call(None, None)  # type: ignore[arg-type]
    heappush(queue, (env._now + (until - env._now), URGENT, next(env._eid), stop))
    pop = heappop
    call = Call
    while True:
        env._now, _, _, ev = pop(queue)
        if ev.__class__ is call:  # the engine's own: one callback, always ok, referenced nowhere else
            if ev is stop:
                return
            ev.fn(ev)
            continue
        callbacks, ev.callbacks = ev.callbacks, None
        for callback in callbacks:
            callback(ev)
        if not ev._ok and not hasattr(ev, "_defused"):
            exc = type(ev._value)(*ev._value.args)
            exc.__cause__ = ev._value
            raise exc


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

    def sure_below(self, i: int) -> float:
        """A time below which an interval that starts in bin `i`, inside the window, certainly ends
        in that bin and inside the window (`BIN_SURE` of the nearer of the bin's edge and the
        window's end): the engine's parts then tally it without `overlap` and `add_bins`."""
        edge = (i + 1) * self.bin_w
        return (edge if edge < self.end else self.end) * BIN_SURE

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



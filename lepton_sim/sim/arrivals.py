"""Arrival processes: each kind is an iterator of absolute arrival times (seconds), drawn in blocks.

`rate_rps` is the long-run mean rate. For mmpp and trace arrivals, a given `rate_rps` rescales the
pattern so that its mean equals it (a trace's gaps are scaled; its first stamp stays where it is);
without it the pattern's own rates are used.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from lepton_sim.scenario.rates import mean_rate, mmpp_mean, trace_mean
from lepton_sim.scenario.schema import MMPP, Constant, Demand, Diurnal, Poisson, Trace

# mean_rate is shared with the planner, so it lives below both; it stays importable from here
__all__ = ["arrival_blocks", "arrival_chunks", "arrival_times", "mean_rate"]

BLOCK = 4096
FIRST = 64  # the first piece of a Poisson or constant stream's first block (`_pieces`)
# A block's times are handed out as Python floats CHUNK at a time: a whole block as a list would
# hold about 130 kB per demand line (10,000-site fleets have tens of thousands of lines), and the
# values are the block's own either way.
CHUNK = 256


def arrival_times(demand: Demand, rng: np.random.Generator) -> Iterator[float]:
    """Absolute arrival times for one demand line, an infinite non-decreasing sequence (each block's
    values as Python floats, converted CHUNK at a time)."""
    for chunk in arrival_chunks(demand, rng):
        yield from chunk


def arrival_chunks(demand: Demand, rng: np.random.Generator) -> Iterator[list[float]]:
    """The times of `arrival_times` as lists of at most CHUNK Python floats (the same values, in
    order; a list may be empty): the event engine reads each list with its own iterator, one C call
    per arrival, not a generator frame."""
    for times in arrival_blocks(demand, rng):
        for i in range(0, len(times), CHUNK):
            yield times[i:i + CHUNK].tolist()


def arrival_blocks(demand: Demand, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """The times of `arrival_times` as the arrays they are drawn in (the same values, in order)."""
    a = demand.arrival
    if isinstance(a, Poisson):
        return _poisson(float(demand.rate_rps or 0), rng)
    if isinstance(a, Constant):
        return _constant(float(demand.rate_rps or 0), rng)
    if isinstance(a, MMPP):
        return _mmpp(a, demand.rate_rps, rng)
    if isinstance(a, Diurnal):
        return _diurnal(a, float(demand.rate_rps or 0), rng)
    if isinstance(a, Trace):
        return _trace(a, demand.rate_rps)
    raise TypeError(f"unknown arrival kind {a!r}")


def _pieces() -> Iterator[tuple[int, int]]:
    """The first block as (start, stop) pieces of FIRST, FIRST, 2 FIRST, ... up to BLOCK, then whole blocks.

    A short run (a fleet of thousands of demand lines, each with a few dozen arrivals in the horizon)
    then draws a few dozen values per line, not a whole block. The pieces' values are the whole
    block's: a generator's draws are sequential whatever the sizes of the calls, and a running sum
    carried across pieces adds in the same order as `np.cumsum` over the block."""
    start, size = 0, FIRST
    while start < BLOCK:
        yield start, start + size
        start, size = start + size, min(start + size, BLOCK - start - size)
    while True:
        yield 0, BLOCK


def _poisson(rate: float, rng: np.random.Generator) -> Iterator[np.ndarray]:
    t = 0.0  # where the block starts
    scale = 1.0 / rate
    run = 0.0  # the block's running sum so far
    for lo, hi in _pieces():
        gaps = rng.exponential(scale, hi - lo)
        if lo:  # the sum carried in: the same additions, in the same order, as the block's cumsum
            sums = np.cumsum(np.concatenate(((run,), gaps)))[1:]
        else:
            sums = np.cumsum(gaps)
        times = t + sums
        yield times
        run = float(sums[-1])
        if hi == BLOCK:
            t, run = float(times[-1]), 0.0


def _constant(rate: float, rng: np.random.Generator) -> Iterator[np.ndarray]:
    gap = 1.0 / rate
    phase = float(rng.random()) * gap  # a random phase, so that constant streams do not align
    k = 0
    for lo, hi in _pieces():  # phase + k * gap, k = 0, 1, ... (the same float operations as in Python)
        yield phase + np.arange(k, k + hi - lo, dtype=np.int64).astype(np.float64) * gap
        k += hi - lo


def _mmpp(a: MMPP, rate_rps: float | None, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """States visited in cyclic order; dwell times exponential; Poisson arrivals within a state."""
    scale = 1.0 if rate_rps is None else rate_rps / mmpp_mean(a)
    rates = [r * scale for r in a.rates_rps]
    n = len(rates)
    weights = np.asarray(a.mean_dwell_s) / sum(a.mean_dwell_s)
    state = int(rng.choice(n, p=weights))  # start in the stationary time-share of states
    t = 0.0
    while True:
        end = t + float(rng.exponential(a.mean_dwell_s[state]))
        r = rates[state]
        if r > 0:
            while True:
                times = t + np.cumsum(rng.exponential(1.0 / r, BLOCK))
                inside = times[times < end]
                yield inside
                if len(inside) < BLOCK:
                    break  # memoryless: the overshoot is discarded, the next state starts at `end`
                t = float(times[-1])
        t = end
        state = (state + 1) % n


def _diurnal(a: Diurnal, rate: float, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Non-homogeneous Poisson by thinning (Lewis and Shedler 1979) against the peak rate."""
    peak = rate * (1.0 + a.amplitude)
    t = 0.0
    w = 2.0 * math.pi / a.period_s
    while True:
        cand = t + np.cumsum(rng.exponential(1.0 / peak, BLOCK))
        lam = rate * (1.0 + a.amplitude * np.sin(w * (cand - a.phase_s)))
        keep = rng.random(BLOCK) * peak < lam
        yield cand[keep]
        t = float(cand[-1])


def _trace(a: Trace, rate_rps: float | None) -> Iterator[np.ndarray]:
    """The trace's stamps; with `rate_rps`, its gaps scaled by its mean rate / rate_rps.

    Scaling the gaps, not the clock, keeps the first arrival at the trace's own first stamp (a
    trace that starts at 100 s still starts at 100 s) and makes the rate from there on `rate_rps`.
    A looped trace repeats with a period of its (scaled) span plus one (scaled) mean gap, so that
    it keeps that rate across the seams.
    """
    times = np.asarray(a.times_s, dtype=float)
    first, n = float(times[0]), len(times)
    if rate_rps is not None and times[-1] > first:  # a trace all at one instant has no rate to scale
        times = first + (times - first) * (trace_mean(a.times_s) / rate_rps)
    span = float(times[-1]) - first
    period = span + span / max(n - 1, 1)
    offset = 0.0
    while True:
        yield times + offset
        if not a.loop:
            return
        offset += period

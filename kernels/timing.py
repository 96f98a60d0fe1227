"""Timing of one kernel: warm-up calls, then repeated samples; the median and the inter-quartile range.

A sample times ``inner`` back-to-back calls and divides by ``inner``, so that kernels of a few
microseconds are not swamped by the timer's own resolution; ``inner`` is chosen from the warm-up.

Inside `guarded()`, a kernel timed while the machine was slowed by other work is timed again
(`Guard`): on a virtual machine whose CPUs the host shares, a single-threaded kernel runs up to
1.8x slower for seconds at a time while something else uses the same core, with nothing in the
guest to show for it. Measurements kept from the undisturbed moments are what a profile and a
direct timing can be compared on.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Callable, TypeVar

import numpy as np

T = TypeVar("T")
K = TypeVar("K")


@dataclass(frozen=True)
class TimingPolicy:
    """How hard to time: calls discarded first, samples kept, the least wall time per sample, a cap per kernel."""

    warmup: int = 2
    repeats: int = 9
    min_sample_s: float = 2e-3
    budget_s: float = 1.5  # stop adding samples (keeping at least `min_repeats`) once a kernel took this long
    min_repeats: int = 3


FULL = TimingPolicy()
QUICK = TimingPolicy(warmup=1, repeats=5, min_sample_s=1e-3, budget_s=0.25, min_repeats=3)


@dataclass(frozen=True)
class Measured:
    """Seconds per call of one kernel: median and quartiles over `repeats` samples of `inner` calls."""

    median_s: float
    q1_s: float
    q3_s: float
    repeats: int
    inner: int

    @property
    def iqr_rel(self) -> float:
        """Inter-quartile range relative to the median (the run-to-run spread)."""
        return (self.q3_s - self.q1_s) / self.median_s

    def as_dict(self) -> dict[str, float | int]:
        return {"median_s": self.median_s, "q1_s": self.q1_s, "q3_s": self.q3_s,
                "repeats": self.repeats, "inner": self.inner}


@dataclass
class Guard:
    """Tells undisturbed moments from slowed ones by a probe, and re-times kernels timed in slowed ones.

    The probe is a fixed run of small numpy calls, bound by the core's own speed (no cache misses,
    no BLAS): its fastest time so far is the machine's undisturbed speed, and a probe `slow` times
    that or more says another process or VM shares the core. A kernel whose timing had a slowed
    probe either side is timed again after `pause_s`, as long as the time spent re-timing stays
    within `share` of all the time spent timing; otherwise, or after `retries`, the fastest of its
    timings is kept. Counts of kernels re-timed and of kernels kept slowed are kept for the record.
    """

    slow: float = 1.3
    share: float = 0.25
    retries: int = 3
    pause_s: float = 0.05
    best_s: float = math.inf
    timed_s: float = 0.0
    retimed_s: float = 0.0
    kernels: int = 0
    retimed: int = 0
    kept_slowed: int = 0
    _last: tuple[float, bool] | None = field(default=None, repr=False)

    _x = np.ones(1024, np.float32)
    _y = np.empty(1024, np.float32)

    def probe_s(self) -> float:
        """The probe's time: the faster of two runs of 50 small ufunc calls, after 20 to warm up.

        A core coming back from a sleep or a large kernel runs the first calls slower.
        """
        for _ in range(20):
            np.maximum(self._x, 0, out=self._y)
        best = math.inf
        for _ in range(2):
            t = time.perf_counter()
            for _ in range(50):
                np.maximum(self._x, 0, out=self._y)
            best = min(best, time.perf_counter() - t)
        return best

    def calm(self) -> bool:
        """Whether the machine runs at its undisturbed speed now (a probe of the last 20 ms is reused)."""
        now = time.perf_counter()
        if self._last is not None and now - self._last[0] < 0.02:
            return self._last[1]
        t = self.probe_s()
        self.best_s = min(self.best_s, t)
        ok = t <= self.slow * self.best_s
        self._last = (time.perf_counter(), ok)
        return ok

    def measure(self, once: Callable[[], Measured]) -> Measured:
        """`once()`, again while its timing had a slowed moment either side and the budget allows."""
        if not math.isfinite(self.best_s):
            for _ in range(4):
                self.calm()
                self._last = None
        self.kernels += 1
        attempts: list[Measured] = []
        for attempt in range(1 + self.retries):
            before = self.calm()
            t = time.perf_counter()
            m = once()
            spent = time.perf_counter() - t
            self._last = None
            after = self.calm()
            attempts.append(m)
            self.timed_s += spent
            if before and after:
                return m
            if attempt == self.retries or self.retimed_s + spent > self.share * self.timed_s:
                break
            self.retimed += attempt == 0
            time.sleep(self.pause_s)
            self.retimed_s += spent + self.pause_s
        self.kept_slowed += 1
        return min(attempts, key=lambda a: a.median_s)

    def note(self) -> str | None:
        """A finding for the profile's notes when kernels had to be re-timed or were kept slowed."""
        if not self.retimed and not self.kept_slowed:
            return None
        text = (f"{self.retimed} of {self.kernels} kernels were timed again because a probe showed the CPU "
                "slowed by other work (on a shared host this need not show in the guest's CPU use)")
        if self.kept_slowed:
            text += (f"; {self.kept_slowed} kept a slowed timing once the re-timing budget was spent: "
                     "measure again on an idle machine")
        return text


_GUARD: Guard | None = None


@contextlib.contextmanager
def guarded(guard: Guard | None = None) -> Iterator[Guard]:
    """Within the block, `time_call` re-times kernels timed while the machine was slowed (see `Guard`)."""
    global _GUARD
    outer, _GUARD = _GUARD, guard or Guard()
    try:
        yield _GUARD
    finally:
        _GUARD = outer


def current_guard() -> Guard | None:
    """The guard of the enclosing `guarded()` block, for timings that do not go through `time_call`."""
    return _GUARD


def time_call(fn: Callable[[], object], policy: TimingPolicy = FULL) -> Measured:
    """Time ``fn()`` under ``policy``; the result is per call. Inside `guarded()`, only undisturbed timings count."""
    if _GUARD is not None:
        return _GUARD.measure(lambda: _time_call(fn, policy))
    return _time_call(fn, policy)


def _warm(fn: Callable[[], object], policy: TimingPolicy) -> int:
    """Run the warm-up calls; the calls per sample (``inner``) that make a sample last ``min_sample_s``."""
    one = float("inf")
    for _ in range(max(1, policy.warmup)):
        t0 = time.perf_counter()
        fn()
        one = min(one, time.perf_counter() - t0)
    return max(1, int(policy.min_sample_s / max(one, 1e-9)))


def _measured(samples: list[float], inner: int) -> Measured:
    q1, med, q3 = np.percentile(samples, [25, 50, 75])
    return Measured(float(med), float(q1), float(q3), len(samples), inner)


def _time_call(fn: Callable[[], object], policy: TimingPolicy) -> Measured:
    inner = _warm(fn, policy)
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < policy.repeats:
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t) / inner)
        if len(samples) >= policy.min_repeats and time.perf_counter() - start > policy.budget_s:
            break
    return _measured(samples, inner)


def time_rounds(fns: dict[K, Callable[[], object]], policy: TimingPolicy = FULL) -> dict[K, Measured]:
    """Time several kernels in rounds: each round takes one sample of every kernel in turn, until each
    has ``policy.repeats`` samples (or, with at least ``min_repeats``, the rounds took ``budget_s``
    per kernel). A burst of the machine's other work then lands on every kernel alike, where timing
    them one after another leaves it on the few timed while it lasted (a 16-size batch sweep once
    timed batch 2 at 9.7 ms and batch 16 at 4.6 ms). Warm-up and ``inner`` as `time_call`."""
    inner = {key: _warm(fn, policy) for key, fn in fns.items()}
    samples: dict[K, list[float]] = {key: [] for key in fns}
    start = time.perf_counter()
    budget = policy.budget_s * len(fns)
    for r in range(policy.repeats):
        for key, fn in fns.items():
            n = inner[key]
            t = time.perf_counter()
            for _ in range(n):
                fn()
            samples[key].append((time.perf_counter() - t) / n)
        if r + 1 >= policy.min_repeats and time.perf_counter() - start > budget:
            break
    return {key: _measured(xs, inner[key]) for key, xs in samples.items()}


def time_runs(fn: Callable[[], T], runs: int) -> tuple[Measured, T]:
    """Time `runs` calls of a long, deterministic job (training) without warm-up; also return its result.

    A run of a second or more amortises any first-call effects, so no call is discarded.
    """
    samples: list[float] = []
    result: T | None = None
    for _ in range(max(1, runs)):
        t = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - t)
    q1, med, q3 = np.percentile(samples, [25, 50, 75])
    assert result is not None
    return Measured(float(med), float(q1), float(q3), len(samples), 1), result

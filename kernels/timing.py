"""Timing of one kernel: warm-up calls, then repeated samples; the median and the inter-quartile range.

A sample times ``inner`` back-to-back calls and divides by ``inner``, so that kernels of a few
microseconds are not swamped by the timer's own resolution; ``inner`` is chosen from the warm-up.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, TypeVar

import numpy as np

T = TypeVar("T")


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


def time_call(fn: Callable[[], object], policy: TimingPolicy = FULL) -> Measured:
    """Time ``fn()`` under ``policy``; the result is per call."""
    one = float("inf")
    for _ in range(max(1, policy.warmup)):
        t0 = time.perf_counter()
        fn()
        one = min(one, time.perf_counter() - t0)
    inner = max(1, int(policy.min_sample_s / max(one, 1e-9)))
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < policy.repeats:
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t) / inner)
        if len(samples) >= policy.min_repeats and time.perf_counter() - start > policy.budget_s:
            break
    q1, med, q3 = np.percentile(samples, [25, 50, 75])
    return Measured(float(med), float(q1), float(q3), len(samples), inner)


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

"""Latency sketch figures: add_many throughput (values/s), memory for 10^7 values, worst quantile error.

Run: python benchmarks/sketch_speed.py [--n 10000000] [--seed 1]
"""
from __future__ import annotations

import argparse
import json
import math
import pickle
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

from lepton_sim.sketch import LatencySketch, LatencySummary

FLUSH = 65536  # the simulator's per-service buffer size (lepton_sim.sim.engine.FLUSH)
QS = np.unique(np.concatenate([np.linspace(0, 1, 201), [1e-4, 1e-3, 0.5, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999]]))


def _best_of(repeats: int, run: Callable[[], object]) -> float:
    """Fastest wall time of `repeats` runs (s): the least disturbed by the rest of the machine."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def _sketch_whole(x: np.ndarray) -> LatencySketch:
    s = LatencySketch()
    s.add_many(x)
    return s


def _sketch_chunked(x: np.ndarray) -> LatencySketch:
    s = LatencySketch()
    for i in range(0, x.size, FLUSH):
        s.add_many(x[i:i + FLUSH])
    return s


def _summary_chunked(x: np.ndarray) -> LatencySummary:
    s = LatencySummary(thresholds=[0.05])
    for i in range(0, x.size, FLUSH):
        s.add_many(x[i:i + FLUSH])
    return s


def _distributions(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    bimodal = np.where(rng.random(n) < 0.7, rng.lognormal(math.log(0.005), 0.2, n), rng.lognormal(math.log(0.3), 0.5, n))
    return {
        "lognormal (median 20 ms, sigma 1)": rng.lognormal(math.log(0.02), 1.0, n),
        "exponential (mean 10 ms)": rng.exponential(0.01, n),
        "pareto (1 ms scale, tail index 1.2)": 1e-3 * (1 + rng.pareto(1.2, n)),
        "bimodal (70 % at 5 ms, 30 % at 300 ms)": bimodal,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10**7, help="lognormal values for the speed and memory figures")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    x = rng.lognormal(math.log(0.02), 1.0, args.n)  # seconds: median 20 ms

    print(f"add_many throughput, {args.n:,} lognormal values (best of 3)")
    for label, fn in [
        ("LatencySketch, one call", _sketch_whole),
        (f"LatencySketch, {FLUSH}-value chunks", _sketch_chunked),
        (f"LatencySummary, {FLUSH}-value chunks, 1 threshold", _summary_chunked),
    ]:
        t = _best_of(3, lambda: fn(x))
        print(f"  {label:<48} {args.n / t / 1e6:8.1f} M values/s  ({t:.3f} s)")

    tracemalloc.start()
    s = _sketch_whole(x)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    offset, counts = s.bucket_counts()
    print(f"memory of a sketch holding {s.count:,} values (raw float64 would be {x.nbytes / 1e6:.0f} MB)")
    print(f"  bucket array: {counts.size:,} buckets (keys {offset}..{offset + counts.size - 1}), {s.nbytes:,} bytes")
    print(f"  to_dict as JSON: {len(json.dumps(s.to_dict())):,} bytes; pickled: {len(pickle.dumps(s)):,} bytes")
    print(f"  peak working memory during add_many: {peak / 1e6:.2f} MB")
    summ = _summary_chunked(x)
    print(f"  LatencySummary after {summ.count:,} values: exact={summ.exact}, relative_error={summ.relative_error}")

    print(f"worst relative quantile error, 10^6 values each, {QS.size} quantiles in [0, 1], alpha = {s.alpha}")
    for name, v in _distributions(np.random.default_rng(args.seed + 1), 10**6).items():
        sk = _sketch_whole(v)
        worst = []
        for method in ("inverted_cdf", "lower"):
            true = np.quantile(v, QS, method=method)
            worst.append(float(np.max(np.abs(np.array(sk.quantiles(QS, method)) - true) / true)))
        print(f"  {name:<40} inverted_cdf {worst[0]:.6f}   lower {worst[1]:.6f}")


if __name__ == "__main__":
    main()

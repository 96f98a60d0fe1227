"""The planner's one-pool simulation (`lepton_sim.poolsim`) against the engine's own `Pool`.

The engine's pool is driven directly, with the same arrivals and batch times, through a SimPy
environment and the least of the engine around it (a window, a response hook): every request must
leave at the same moment in both, for batching and not, with and without a batch-fill wait, with
fixed batch times and with drawn ones. The tail quantile the probes read is numpy's, to the bit.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from lepton_sim.poolsim import PoolRun, block_quantiles, completions, upper_quantile
from lepton_sim.scenario.schema import Replicas
from lepton_sim.sim.common import Request, Window
from lepton_sim.sim.pools import Pool


class _Harness:
    """What `Pool` uses of the engine: the environment, the window, the response and drop hooks."""

    def __init__(self, horizon: float) -> None:
        self.env = simpy.Environment()
        self.window = Window(0.0, horizon)
        self.events = 0
        self.left: dict[int, float] = {}

    def _respond(self, req: Request) -> None:
        self.left[req.hop] = self.env.now

    def _drop(self, req: Request) -> None:  # pragma: no cover - no queue limit here
        raise AssertionError("dropped")


def _engine(arrivals: np.ndarray, count: int, max_batch: int, max_wait_s: float, times_s, draws) -> np.ndarray:
    h = _Harness(float(arrivals[-1]) + 10.0)
    line = Replicas(service="s", site="x", hardware="h", variant="v", count=count)
    it = iter(draws) if draws is not None else None
    pool = Pool(h, 0, line, max_batch, max_wait_s, None, None if draws is not None else _Times(times_s),
                (lambda: next(it)) if it is not None else None, 1e-3)

    def source():
        for i, t in enumerate(arrivals):
            yield h.env.timeout(float(t) - h.env.now)
            req = Request(float(t), None, True)
            req.hop = i
            pool.enqueue(req)

    h.env.process(source())
    h.env.run()
    return np.array([h.left[i] for i in range(len(arrivals))])


class _Times:
    def __init__(self, times_s):
        self.times_s = tuple(times_s)


CASES = [  # count, max_batch, max_wait_s, load (of full-batch throughput)
    (1, 1, 0.0, 0.8), (3, 1, 0.0, 0.9), (1, 8, 0.0, 0.7), (2, 8, 0.002, 0.6), (4, 4, 0.005, 0.9),
    (3, 16, 0.001, 0.3), (2, 4, 0.02, 0.05),
]


@pytest.mark.parametrize("count,max_batch,max_wait_s,load", CASES)
@pytest.mark.parametrize("drawn", [False, True])
def test_every_request_leaves_when_the_engine_says(count, max_batch, max_wait_s, load, drawn):
    rng = np.random.default_rng(count * 100 + max_batch)
    times = [0.004 + 0.0015 * b for b in range(max_batch)]  # t(b) = 4 ms + 1.5 ms per request
    rate = load * count * max_batch / times[-1]
    arrivals = np.cumsum(rng.exponential(1.0 / rate, 3000))
    draws = rng.lognormal(math.log(0.006), 0.8, 3000).tolist() if drawn else None
    ours = completions(arrivals, count, max_batch, max_wait_s, None if drawn else times, draws)
    theirs = _engine(arrivals, count, max_batch, max_wait_s, times, draws)
    assert np.max(np.abs(ours - theirs)) < 1e-9
    assert np.all(ours >= arrivals + (min(draws) if drawn else times[0]) - 1e-12)


def test_common_random_numbers_make_the_miss_share_fall_with_the_rate():
    """On one stream, a lower rate never has a larger miss share by much (M/D/1 with batching)."""
    run = PoolRun(60_000, seed=3)
    times = [0.002 + 0.0005 * b for b in range(8)]
    shares = [run.probe(r, 1, 8, 0.001, times, 0.012, 0.01).miss for r in (800, 1200, 1600, 2000, 2400)]
    assert shares == sorted(shares)
    assert shares[0] < 0.01 < shares[-1]


def test_an_mm1_pool_matches_theory():
    """Batch 1, exponential service: P(T > t) = exp(-(mu - lambda) t) (M/M/1 sojourn)."""
    run = PoolRun(200_000, seed=5, draws_kind="exponential", mean_s=0.01)
    p = run.probe(70.0, 1, 1, 0.0, None, 0.1, 0.01)
    exact = math.exp(-(100.0 - 70.0) * 0.1)
    assert abs(p.miss - exact) < 4 * p.stderr, (p.miss, exact, p.stderr)


@pytest.mark.parametrize("p", [0.875, 0.9, 0.99, 0.999, 0.9999, 1.0])
def test_the_tail_quantile_is_numpys(p):
    """`upper_quantile` (a heap of the largest values) equals `np.quantile` exactly: whole arrays and slices,
    continuous values and ties, lengths from 2 up."""
    rng = np.random.default_rng(11)
    for trial in range(300):
        n = int(rng.integers(2, 5000))
        x = rng.exponential(1.0, n)
        if trial % 3 == 0:
            x = np.round(x, 1)  # ties
        lo = int(rng.integers(0, n // 2)) if trial % 2 else 0
        hi = int(rng.integers(lo + 2, n + 1)) if trial % 2 else n
        assert upper_quantile(x, p, lo, hi) == float(np.quantile(x[lo:hi], p)), (n, lo, hi)
    x = rng.exponential(1.0, 20_017)
    assert np.array_equal(block_quantiles(x, p, 20), np.quantile(x[:20_000].reshape(20, -1), p, axis=1))

"""Trace arrivals rescaled by `rate_rps`: the gaps are scaled, not the clock.

A trace whose stamps start at 100 s keeps its first arrival at 100 s whatever `rate_rps` says, and
from there on delivers `rate_rps`; looped, it repeats with the scaled span plus one scaled mean gap.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lepton_sim.scenario import parse_scenario
from lepton_sim.scenario.rates import mean_rate
from lepton_sim.scenario.schema import Scenario
from lepton_sim.sim import simulate
from lepton_sim.sim.arrivals import arrival_times

FIRST_S = 100.0  # the trace's own offset
N_STAMPS = 251
RATE = 50.0  # what the scenario asks for
OWN_RATES = [100.0, 25.0]  # the trace's own: gaps doubled (a scaled clock starts it at 200 s) or halved (50 s)
HORIZON_S = 600.0  # of arrivals after FIRST_S

BOX = {"kind": "cpu", "peak_tflops": {"fp32": 1.0}, "memory_bandwidth_gbps": 50, "memory_gb": 16,
       "power_w": 100, "idle_power_w": 40, "cost_per_hour": 0.5}


def _stamps(own_rate: float) -> np.ndarray:
    """An irregular trace from FIRST_S at `own_rate`: jittered about an even grid, so its mean rate is exact."""
    rng = np.random.default_rng(7)
    gap = 1.0 / own_rate
    grid = FIRST_S + np.arange(N_STAMPS) * gap
    inner = grid[1:-1] + rng.uniform(-0.4 * gap, 0.4 * gap, N_STAMPS - 2)
    return np.concatenate(([grid[0]], np.sort(inner), [grid[-1]]))


def _scenario(tmp_path: Path, own_rate: float, rate: float | None, loop: bool = True) -> Scenario:
    (tmp_path / "trace.csv").write_text("\n".join(repr(float(t)) for t in _stamps(own_rate)) + "\n")
    arrival: dict[str, Any] = {"kind": "trace", "file": "trace.csv", "loop": loop}
    demand: dict[str, Any] = {"site": "dc", "arrival": arrival}
    if rate is not None:
        demand["rate_rps"] = rate
    d = {
        "name": "trace", "seed": 1,
        # the window opens at the trace's own first stamp
        "horizon": {"duration_s": FIRST_S + HORIZON_S, "warmup_s": FIRST_S, "drain_s": 1},
        "hardware": {"box": dict(BOX)},
        "sites": {"dc": {"capacity": {"box": 4}}},
        "models": {"m": {"layers": [{"op": "dense", "in": 8, "out": 8}], "input_bytes": 100, "output_bytes": 10}},
        "services": {"svc": {"model": "m", "slo": {"percentile": 99, "latency_ms": 50},
                             "service_time": {"dist": "deterministic", "ms": 1},
                             "demand": [demand]}},
        "deployment": {"replicas": [{"service": "svc", "site": "dc", "hardware": "box", "variant": "fp32",
                                     "count": 4}]},
    }
    return parse_scenario(d, base_dir=tmp_path)


def _times(s: Scenario, until: float) -> np.ndarray:
    it = arrival_times(s.services["svc"].demand[0], np.random.default_rng(0))
    return np.fromiter(itertools.takewhile(lambda t: t < until, it), dtype=float)


def _discrepancy(times: np.ndarray, rate: float) -> float:
    """The most a count over [first, t) can differ from rate x (t - first) within one pass of the trace."""
    k = np.arange(len(times))
    return float(np.max(np.abs(k - rate * (times - times[0])))) + 1.0


@pytest.mark.parametrize("own_rate", OWN_RATES)
def test_rescaled_trace_keeps_its_offset_and_delivers_the_rate(tmp_path: Path, own_rate: float) -> None:
    s = _scenario(tmp_path, own_rate, RATE)
    assert mean_rate(s.services["svc"].demand[0]) == RATE
    times = _times(s, FIRST_S + HORIZON_S)
    assert times[0] == FIRST_S  # not moved by the scaling
    # a deterministic trace: the count misses rate x time only by how unevenly one pass is spread
    one_pass = FIRST_S + (_stamps(own_rate) - FIRST_S) * (own_rate / RATE)
    slack = _discrepancy(one_pass, RATE)
    assert slack < 0.01 * RATE * HORIZON_S
    assert abs(len(times) - RATE * HORIZON_S) <= slack, f"{len(times) / HORIZON_S:.3f} rps, asked {RATE:g}"
    # every pass is the first shifted by one period (scaled span plus one scaled mean gap)
    period = N_STAMPS / RATE  # (N - 1) gaps of the span, plus one
    passes = len(times) // N_STAMPS
    assert passes > 100
    for j in (1, passes - 1):
        np.testing.assert_allclose(times[j * N_STAMPS:(j + 1) * N_STAMPS], one_pass + j * period, rtol=0, atol=1e-9)
    # across a seam the gap is the scaled mean gap, 1 / RATE
    assert times[N_STAMPS] - times[N_STAMPS - 1] == pytest.approx(1.0 / RATE, rel=1e-9)


def test_unscaled_trace_is_replayed_as_written(tmp_path: Path) -> None:
    s = _scenario(tmp_path, OWN_RATES[0], None, loop=False)
    times = _times(s, float("inf"))
    np.testing.assert_array_equal(times, _stamps(OWN_RATES[0]))


@pytest.mark.parametrize("own_rate", OWN_RATES)
def test_simulated_rate_of_a_rescaled_trace(tmp_path: Path, own_rate: float) -> None:
    """Through the engine: requests created in the window (it opens at the trace's first stamp) / its length."""
    s = _scenario(tmp_path, own_rate, RATE)
    svc = simulate(s).services["svc"]
    assert svc.arrived / HORIZON_S == pytest.approx(RATE, rel=0.005)
    assert svc.completed == svc.arrived

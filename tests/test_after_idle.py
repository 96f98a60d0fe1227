"""A measured profile's after-idle timings: a replica that waited for work runs its next batch longer.

The closed forms: with constant arrivals far apart every batch follows a long gap, so its time is
the back-to-back time times the factor timed after the longest gap; closer together, the gap g
and the factor f(g) settle where g = period - t1 * f(g); without after-idle timings, nothing changes.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from lepton_sim.metrics import build_metrics
from lepton_sim.profiles import reference_profile_path
from lepton_sim.scenario import load_scenario
from lepton_sim.servicetime.roofline import BatchTimes
from lepton_sim.sim import Simulation

LAYERS = [{"op": "dense", "in": 64, "out": 64}]
T1, T2 = 1e-3, 1.5e-3  # back to back, batch 1 and 2
F = {1e-3: 1.2, 1e-2: 1.5}  # after-idle factor at 1 ms and 10 ms


def _timing(s: float) -> dict:
    return {"median_s": s, "q1_s": s, "q3_s": s, "repeats": 5, "inner": 1}


def _scenario(tmp_path: Path, rate: float, idle: bool) -> Path:
    prof = json.loads(reference_profile_path().read_text())
    run = {"model": "m", "variant": "fp32", "precision": "fp32", "layers": LAYERS, "weight_bytes": 16640,
           "batches": [{"batch": 1, "timing": _timing(T1)}, {"batch": 2, "timing": _timing(T2)}]}
    if idle:
        run["after_idle"] = [{"batch": b, "gap_s": g, "timing": _timing(t * f)}
                             for b, t in ((1, T1), (2, T2)) for g, f in F.items()]
    prof["models"] = [run]
    (tmp_path / "profile.json").write_text(json.dumps(prof))
    doc = {"name": "idle", "seed": 1, "horizon": {"duration_s": 20, "warmup_s": 2},
           "hardware": {"cpu": {"from": "this-machine", "profile": "profile.json"}},
           "sites": {"here": {"capacity": {"cpu": 1}}},
           "models": {"m": {"layers": LAYERS, "input_bytes": 256, "output_bytes": 40}},
           "services": {"s": {"model": "m", "slo": {"percentile": 99, "latency_ms": 50},
                              "demand": [{"site": "here", "rate_rps": rate, "arrival": {"kind": "constant"}}]}},
           "deployment": {"replicas": [{"service": "s", "site": "here", "hardware": "cpu", "variant": "fp32",
                                        "count": 1}]}}
    path = tmp_path / "idle.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _mean_ms(path: Path) -> float:
    s = load_scenario(path)
    m = build_metrics(s, Simulation(s).run())
    return float(m["services"]["s"]["latency_ms"]["mean"])


def test_far_apart_every_batch_pays_the_longest_gaps_factor(tmp_path: Path) -> None:
    assert _mean_ms(_scenario(tmp_path, 10, idle=True)) == pytest.approx(T1 * 1.5 * 1e3, rel=1e-9)


def test_closer_together_the_gap_and_its_factor_settle_at_the_fixed_point(tmp_path: Path) -> None:
    period = 6e-3
    f = 1.4
    for _ in range(50):  # g = period - T1 f(g), f log-linear in g between the timed gaps
        g = period - T1 * f
        f = 1.2 + (1.5 - 1.2) * math.log(g / 1e-3) / math.log(10)
    assert _mean_ms(_scenario(tmp_path, 1 / period, idle=True)) == pytest.approx(T1 * f * 1e3, rel=1e-6)


def test_without_after_idle_timings_nothing_changes(tmp_path: Path) -> None:
    assert _mean_ms(_scenario(tmp_path, 10, idle=False)) == pytest.approx(T1 * 1e3, rel=1e-9)


def test_the_factor_curve() -> None:
    bt = BatchTimes((1.0,), "measured", "", after_idle=((1e-3, 1e-2), ((1.2, 1.5),)))
    assert bt.idle_factor(1, 0.0) == 1.0
    assert bt.idle_factor(1, 0.5e-3) == pytest.approx(1.1)  # linear from 1 below the first gap
    assert bt.idle_factor(1, math.sqrt(1e-5)) == pytest.approx(1.35)  # log-linear between gaps
    assert bt.idle_factor(1, 5.0) == 1.5  # held beyond the last
    assert BatchTimes((1.0,), "measured", "").idle_factor(1, 1.0) == 1.0

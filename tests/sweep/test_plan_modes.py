"""Sweeps in plan and plan+verify modes: plan.json metrics per row, infeasible points as answers."""
from __future__ import annotations

from pathlib import Path

import pytest

from lepton_sim.errors import ScenarioError
from lepton_sim.sweeps import load_sweep, sweep
from sweep_fixtures import write_sweep

DEFAULT = Path(__file__).resolve().parents[2] / "scenarios" / "default.yaml"
GRID = {"horizon.duration_s": [30], "services.classify-text.slo.latency_ms": [4, 40]}  # 4 ms: below the 5 ms batch wait


def test_plan_mode_collects_plan_json_and_an_infeasible_point_is_an_answer(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"base": str(DEFAULT), "mode": "plan", "grid": GRID,
                                  "collect": ["plan.status", "usd_per_hour", "predicted.classify-text.latency_ms",
                                              "deployment.routing", "gap"]})
    rows = sweep(path, workers=1).to_pylist()
    tight, loose = rows
    assert tight["status"] == "ok" and tight["plan.status"] == "infeasible" and tight["usd_per_hour"] is None
    assert loose["status"] == "ok" and loose["plan.status"] in ("optimal", "feasible")
    assert loose["usd_per_hour"] > 0 and loose["predicted.classify-text.latency_ms"] <= 40
    assert loose["deployment.routing"] == "weighted"


def test_plan_verify_mode_collects_the_verifying_simulation(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"base": str(DEFAULT), "mode": "plan+verify", "seeds": [1], "grid": GRID})
    spec = load_sweep(path)
    assert spec.collect[0] == "plan.status" and "metrics.cost.usd_per_hour" in spec.collect
    rows = sweep(path, out=tmp_path / "out", workers=2).to_pylist()
    tight, loose = rows
    assert tight["status"] == "ok" and tight["metrics.services.detect.latency_ms.p99"] is None
    assert loose["status"] == "ok" and loose["metrics.services.classify-text.latency_ms.p99"] > 0
    assert loose["metrics.cost.usd_per_hour"] == pytest.approx(loose["usd_per_hour"], rel=0.05)  # egress is simulated


def test_a_bare_status_path_would_shadow_the_rows_status(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"base": str(DEFAULT), "mode": "plan", "collect": ["status"]})
    with pytest.raises(ScenarioError, match="write plan.status"):
        load_sweep(path)

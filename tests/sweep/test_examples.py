"""The example sweeps in scenarios/sweeps/ are valid, and a point of each runs."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from lepton_sim.sweeps import load_sweep
from lepton_sim.sweeps.points import expand
from lepton_sim.sweeps.runner import run_task

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "scenarios" / "sweeps").glob("*.yaml"))


def test_there_are_a_load_sweep_and_an_slo_cost_sweep() -> None:
    assert {p.stem for p in EXAMPLES} >= {"load", "slo-cost"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_an_example_sweep_loads_and_its_last_point_runs(path: Path) -> None:
    spec = load_sweep(path)
    tasks = expand(spec)
    assert len(tasks) == len(spec.seeds) * math.prod(len(values) for _, values in spec.grid)
    record = run_task(tasks[-1])  # the last point: the highest load, the loosest target
    assert record["status"] == "ok", record["error"]
    assert all(record["values"][m] is not None for m in spec.collect)

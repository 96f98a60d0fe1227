"""Helpers for the report tests: a simulated run directory and sweep directories, made quickly."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lepton_sim.fileio import write_json_atomic
from lepton_sim.metrics import build_metrics
from lepton_sim.report import report_data
from lepton_sim.scenario import load_scenario, parse_scenario, parse_yaml
from lepton_sim.sim import simulate
from lepton_sim.sweeps import sweep

ROOT = Path(__file__).resolve().parents[2]
MM1 = ROOT / "scenarios" / "queueing" / "mm1.yaml"


def make_run(out: Path, scenario: Path = ROOT / "scenarios" / "default.yaml", duration_s: float = 30,
             with_data: bool = True) -> dict[str, Any]:
    """Simulate `scenario` over a shortened horizon and write what `simulate --out` writes."""
    raw = parse_yaml(scenario.read_text(), str(scenario))
    raw["horizon"] = {"duration_s": duration_s, "warmup_s": duration_s / 6}
    s = parse_scenario(raw, file=str(scenario), base_dir=scenario.parent)
    rec = simulate(s, 3)
    metrics = build_metrics(s, rec)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "metrics.json", metrics)
    if with_data:
        write_json_atomic(out / "report-data.json", report_data(s, rec))
    return metrics


def make_sweep(out: Path, grid: dict[str, list[Any]], collect: list[str], seeds: tuple[int, ...] = (1, 2)) -> Path:
    """Sweep the M/M/1 scenario (shortened) over `grid` into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    spec = {"base": str(MM1), "seeds": list(seeds), "grid": {"horizon.duration_s": [300], **grid},
            "collect": collect}
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    sweep(path, out=out, workers=2)
    return out




def make_plan(out: Path, scenario: Path = ROOT / "scenarios" / "default.yaml", verified: bool = True) -> dict[str, Any]:
    """`lepton-sim plan [--verify] --out` on `scenario` with a shortened horizon; returns plan.json."""
    import json

    from lepton_sim.cli import main

    raw = parse_yaml(scenario.read_text(), str(scenario))
    raw["horizon"] = {"duration_s": 30, "warmup_s": 5}
    source = out.parent / f"{out.name}-scenario.yaml"
    source.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["plan", str(source), "--out", str(out), *(["--verify", "--seed", "1"] if verified else [])]) == 0
    return dict(json.loads((out / "plan.json").read_text()))


__all__ = ["MM1", "ROOT", "load_scenario", "make_plan", "make_run", "make_sweep"]

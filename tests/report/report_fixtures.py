"""Helpers for the report tests: a simulated run directory and sweep directories, made quickly."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from lepton_sim.cli import write_json_atomic
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
    """Plan (and verify) `scenario` with a shortened horizon; write plan.json, scenario.planned.yaml, metrics.json."""
    from lepton_sim.planner import plan
    from lepton_sim.planner.verify import verify
    from lepton_sim.sweeps.plandoc import plan_document

    raw = parse_yaml(scenario.read_text(), str(scenario))
    raw["horizon"] = {"duration_s": 30, "warmup_s": 5}
    s = parse_scenario(raw, file=str(scenario), base_dir=scenario.parent)
    out.mkdir(parents=True, exist_ok=True)
    if verified:
        v = verify(s, seed=1)
        doc = plan_document(v.final.plan, v)
        write_json_atomic(out / "metrics.json", v.final.metrics)
        deployment = v.final.plan.deployment()
    else:
        result = plan(s)
        doc = plan_document(result)
        deployment = result.deployment()
    write_json_atomic(out / "plan.json", doc)
    (out / "scenario.planned.yaml").write_text(yaml.safe_dump({**raw, "deployment": deployment}, sort_keys=False))
    return doc


__all__ = ["MM1", "ROOT", "load_scenario", "make_plan", "make_run", "make_sweep"]

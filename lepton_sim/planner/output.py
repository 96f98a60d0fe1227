"""Files `plan --out DIR` writes: DIR/plan.json and DIR/scenario.planned.yaml, each atomically.

The planned scenario is the input file's own mapping (so `from:` entries and the user's keys stay as
written) with `deployment` replaced by the plan's; a relative trace file is rewritten relative to the
new location (absolute if no relative path exists), so `simulate DIR/scenario.planned.yaml` runs as is.
Without the input file, the validated scenario is dumped instead (aliases such as a dense layer's
`in`, no unset keys).
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from lepton_sim.fileio import atomic_write, write_json_atomic
from lepton_sim.scenario import parse_yaml
from lepton_sim.scenario.schema import Scenario

PLAN_FILE = "plan.json"
PLANNED_FILE = "scenario.planned.yaml"


def write_plan(out_dir: Path, doc: dict[str, Any]) -> Path:
    path = out_dir / PLAN_FILE
    write_json_atomic(path, doc)
    return path


def planned_mapping(scenario: Scenario, deployment: dict[str, Any], out_dir: Path,
                    source: Path | None = None) -> dict[str, Any]:
    """The scenario mapping to write: the source file's (or the dumped scenario) with the plan's deployment."""
    if source is not None:
        raw = copy.deepcopy(parse_yaml(source.read_text(encoding="utf-8"), str(source)))
        base = source.resolve().parent
    else:
        raw = scenario.model_dump(mode="json", by_alias=True, exclude_none=True)
        base = Path.cwd()
    if deployment:
        raw["deployment"] = deployment
    for name, job in scenario.jobs.items():  # each job as planned: its placement and sync
        entry = (raw.get("jobs") or {}).get(name)
        if isinstance(entry, dict):
            entry["placement"] = job.placement.model_dump(mode="json", exclude_none=True)
            entry["sync"] = job.sync.model_dump(mode="json", exclude_none=True)
    # files the scenario names relative to itself, named relative to where the planned copy goes
    def relocate(entry: Any, key: str) -> None:
        if isinstance(entry, dict) and isinstance(entry.get(key), str) and not Path(entry[key]).is_absolute():
            entry[key] = _relocated(base / entry[key], out_dir)

    for svc in (raw.get("services") or {}).values():
        for d in svc.get("demand") or []:
            arrival = d.get("arrival") or {}
            if isinstance(arrival, dict) and arrival.get("kind") == "trace":
                relocate(arrival, "file")
        relocate((svc.get("tokens") or {}).get("trace"), "file")
        relocate(svc.get("payload"), "profile")
    for hw in (raw.get("hardware") or {}).values():
        relocate(hw, "profile")
        relocate(hw, "calibration")
    return raw


def _relocated(target: Path, out_dir: Path) -> str:
    try:
        return Path(os.path.relpath(target.resolve(), out_dir.resolve())).as_posix()
    except ValueError:  # another drive: no relative path
        return str(target.resolve())


def write_planned_scenario(out_dir: Path, scenario: Scenario, deployment: dict[str, Any],
                           source: Path | None = None) -> Path:
    path = out_dir / PLANNED_FILE
    mapping = planned_mapping(scenario, deployment, out_dir, source)
    header = f"# {scenario.name}: planned by `lepton-sim plan` (deployment replaced; routing weighted)\n"
    atomic_write(path, header + yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True))
    return path

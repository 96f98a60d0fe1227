"""Find out what a directory holds, build its report, write it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lepton_sim.errors import InputError
from lepton_sim.report.data import FILE as DATA_FILE
from lepton_sim.report.document import Report, ReportPaths, write

KINDS = ("sweep", "plan", "validation", "run")


def detect_kind(run_dir: Path) -> str:
    """'sweep' (sweep.json and a results table), 'plan' (plan.json) or 'run' (metrics.json)."""
    if (run_dir / "sweep.json").is_file() and ((run_dir / "results.parquet").is_file()
                                               or (run_dir / "journal.jsonl").is_file()):
        return "sweep"
    if (run_dir / "plan.json").is_file():
        return "plan"
    if (run_dir / "validation.json").is_file():
        return "validation"
    if (run_dir / "metrics.json").is_file():
        return "run"
    raise InputError(f"{run_dir}: not a run directory: expected metrics.json (simulate --out), plan.json "
                     "(plan --out) or sweep.json with results.parquet (sweep --out)")


def build_report(run_dir: Path) -> Report:
    """The report of whatever `run_dir` holds."""
    kind = detect_kind(run_dir)
    if kind == "sweep":
        from lepton_sim.report.sweep import sweep_report

        return sweep_report(run_dir)
    if kind == "plan":
        from lepton_sim.report.plan import plan_report

        return plan_report(run_dir)
    if kind == "validation":
        from lepton_sim.report.validation import validation_report

        return validation_report(run_dir)
    from lepton_sim.report.run import run_report

    data_path = run_dir / DATA_FILE
    return run_report(read_json(run_dir / "metrics.json"), read_json(data_path) if data_path.is_file() else None)


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> ReportPaths:
    """Write report.html, report.md and the figures' PNGs for `run_dir` into `out_dir` (default: run_dir)."""
    src = Path(run_dir)
    if not src.is_dir():
        raise InputError(f"{run_dir}: no such directory")
    dst = Path(out_dir) if out_dir is not None else src
    if dst.exists() and not dst.is_dir():
        raise InputError(f"--out {dst}: exists and is not a directory")
    report = build_report(src)
    try:
        return write(report, dst)
    except OSError as exc:
        raise InputError(f"--out {dst}: cannot write the report: {exc.strerror or exc}") from None


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None

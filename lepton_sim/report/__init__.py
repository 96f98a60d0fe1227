"""Reports: matplotlib figures rendered into a self-contained report.html and a report.md.

`write_report(run_dir, out_dir)` recognises a simulation run (metrics.json), a plan (plan.json)
or a sweep (sweep.json + results.parquet) by its files.
"""
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported on first use (`__getattr__`): the CLI registers `report` without matplotlib
    from lepton_sim.report.build import detect_kind, write_report
    from lepton_sim.report.data import report_data
    from lepton_sim.report.document import ReportPaths

_WHERE = {"report_data": "data", "ReportPaths": "document", "detect_kind": "build", "write_report": "build"}

__all__ = ["ReportPaths", "detect_kind", "report_data", "write_report"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'lepton_sim.report' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"lepton_sim.report.{_WHERE[name]}"), name)

"""Reports: matplotlib figures rendered into a self-contained report.html and a report.md.

`write_report(run_dir, out_dir)` recognises a simulation run (metrics.json), a plan (plan.json)
or a sweep (sweep.json + results.parquet) by its files.
"""
from lepton_sim.report.data import report_data
from lepton_sim.report.document import ReportPaths
from lepton_sim.report.build import detect_kind, write_report

__all__ = ["ReportPaths", "detect_kind", "report_data", "write_report"]

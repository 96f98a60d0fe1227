"""A sweep records its base scenario's SLOs, so its report draws them wherever the run directory goes."""
from __future__ import annotations

import json
from pathlib import Path

from lepton_sim.report.sweep import base_slos
from lepton_sim.sweeps import sweep
from sweep_fixtures import write_base, write_sweep


def test_sweep_json_carries_the_slos_and_the_report_needs_no_base_file(tmp_path: Path) -> None:
    write_base(tmp_path, duration_s=20)
    spec = write_sweep(tmp_path, {"base": "base.yaml", "grid": {"services.q.demand[0].rate_rps": [10]},
                                  "collect": ["services.q.latency_ms.p99"]})
    out = tmp_path / "out"
    sweep(spec, out=out, workers=1)
    header = json.loads((out / "sweep.json").read_text())
    assert header["slos"] == {"q": {"percentile": 99.0, "latency_ms": 60.0}}  # sweep_fixtures.BASE
    (tmp_path / "base.yaml").unlink()
    moved = tmp_path / "elsewhere"
    out.rename(moved)
    assert base_slos(header, moved) == {"q": (99.0, 60.0)}

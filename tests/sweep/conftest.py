"""Fixtures for the sweep tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from sweep_fixtures import write_base, write_sweep


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return write_base(tmp_path)


@pytest.fixture
def load_sweep_file(tmp_path: Path, base: Path) -> Path:
    """Three rates (one invalid: failing points) x two replica counts x two seeds: 12 rows."""
    return write_sweep(tmp_path, {
        "base": base.name, "mode": "simulate", "seeds": [1, 2],
        "grid": {"services.q.demand[0].rate_rps": [30, 60, -5], "deployment.replicas[0].count": [1, 2]},
        "collect": ["services.q.latency_ms.p99", "services.q.slo.met", "services.q.by_site.edge.latency_ms.mean",
                    "cost.usd_per_hour", "energy_kwh"],
    })

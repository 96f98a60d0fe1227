"""What a run directory needs beside metrics.json for its report: latency CDFs and the scenario's shape.

`report_data(scenario, record)` is written by `simulate --out` as ``report-data.json``: the latency
quantiles of every service (and demand site) on a fixed grid, dense in the tail, taken from the
run's `LatencySummary` (exact, or within the sketch's relative error), and the parts of the
scenario the report draws (sites, links, hardware, services, deployment).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from lepton_sim.scenario.schema import Scenario
from lepton_sim.sim.record import ServiceTally, SimRecord
from lepton_sim.sketch import LatencySummary

FILE = "report-data.json"
# quantiles 0, 0.005, ..., 0.995, then the tail a p99/p99.9 SLO lives in, then the maximum
QUANTILES: tuple[float, ...] = tuple(
    [round(float(q), 4) for q in np.arange(0, 0.995 + 1e-9, 0.005)]
    + [0.996, 0.997, 0.998, 0.999, 0.9995, 0.9999, 1.0]
)


def report_data(scenario: Scenario, record: SimRecord) -> dict[str, Any]:
    """The JSON object of report-data.json for one run."""
    return {
        "kind": "lepton-sim report data",
        "scenario": scenario_shape(scenario),
        "latency_cdf": cdf_points(record),
    }


def cdf_points(record: SimRecord) -> dict[str, Any]:
    """Latency (ms) at each of `QUANTILES`, per service and per demand site; null where nothing completed."""
    return {
        "quantiles": list(QUANTILES),
        "services": {name: {**_series(t), "by_site": {site: _series(st) for site, st in t.by_site.items()}}
                     for name, t in record.services.items()},
    }


def _series(t: ServiceTally) -> dict[str, Any]:
    lat: LatencySummary = t.latency_s
    values = [round(q * 1e3, 6) for q in lat.quantiles(QUANTILES)] if lat.count else None
    return {"count": lat.count, "exact": lat.exact, "latency_ms": values}


def scenario_shape(s: Scenario) -> dict[str, Any]:
    """Sites, links, hardware, services and deployment: what the report draws and labels."""
    return {
        "name": s.name,
        "description": s.description,
        "horizon": s.horizon.model_dump(mode="json"),
        "sites": {name: site.model_dump(mode="json") for name, site in s.sites.items()},
        "links": [link.model_dump(mode="json") for link in s.links],
        "hardware": {name: {"kind": hw.kind, "cost_per_hour": hw.cost_per_hour, "power_w": hw.power_w,
                            "idle_power_w": hw.idle_power_w} for name, hw in s.hardware.items()},
        "services": {name: {"model": svc.model, "slo": svc.slo.model_dump(mode="json"),
                            "demand": [{"site": d.site, "rate_rps": d.rate_rps, "arrival": d.arrival.kind}
                                       for d in svc.demand]}
                     for name, svc in s.services.items()},
        "deployment": s.deployment.model_dump(mode="json", exclude_none=True) if s.deployment else None,
    }

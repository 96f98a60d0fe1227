"""What a run directory needs beside metrics.json for its report: latency CDFs and the scenario's shape.

`report_data(scenario, record)` is written by `simulate --out` as ``report-data.json``: the latency
quantiles of every service (and demand site) on a fixed grid, dense in the tail, taken from the
run's `LatencySummary` (exact, or within the sketch's relative error), and the parts of the
scenario the report draws (sites, links, hardware, services, deployment). A run with LLM services
adds ``ttft_cdf`` and ``tpot_cdf`` of the same shape, over those services only: their time to first
token and time per output token, from the record's `LLMServiceTally`.
"""
from __future__ import annotations

from collections.abc import Callable
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


Measure = Callable[[ServiceTally], LatencySummary | None]


def end_to_end(t: ServiceTally) -> LatencySummary:
    return t.latency_s


def ttft(t: ServiceTally) -> LatencySummary | None:
    """An LLM service's time to first token (None for any other service)."""
    return t.llm.ttft_s if t.llm is not None else None


def tpot(t: ServiceTally) -> LatencySummary | None:
    """An LLM service's time per output token after the first (None for any other service)."""
    return t.llm.tpot_s if t.llm is not None else None


def report_data(scenario: Scenario, record: SimRecord) -> dict[str, Any]:
    """The JSON object of report-data.json for one run."""
    data: dict[str, Any] = {
        "kind": "lepton-sim report data",
        "scenario": scenario_shape(scenario),
        "latency_cdf": cdf_points(record),
    }
    if any(t.llm is not None for t in record.services.values()):
        data["ttft_cdf"] = cdf_points(record, ttft)
        data["tpot_cdf"] = cdf_points(record, tpot)
    return data


def cdf_points(record: SimRecord, measure: Measure = end_to_end) -> dict[str, Any]:
    """`measure` (ms; by default end-to-end latency) at each of `QUANTILES`, per service and per demand
    site, for the services that have it; ``latency_ms`` null where nothing was measured."""
    services = {}
    for name, t in record.services.items():
        lat = measure(t)
        if lat is None:
            continue
        services[name] = {**_series(lat),
                          "by_site": {site: _series(measure(st)) for site, st in t.by_site.items()}}
    return {"quantiles": list(QUANTILES), "services": services}


def _series(lat: LatencySummary | None) -> dict[str, Any]:
    if lat is None:  # a demand site of an LLM service without its token tallies: nothing measured
        return {"count": 0, "exact": True, "latency_ms": None}
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

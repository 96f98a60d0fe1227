"""Metric paths into a point's outputs (metrics.json, plan.json): defaults, checks, and reading them.

A path is read in the mode's main document (metrics.json for `simulate`, plan.json for `plan` and
`plan+verify`), or in a named one with a prefix: ``metrics.services.detect.latency_ms.p99``,
``plan.status``. The prefix is needed where a bare path would be a column the table already has.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lepton_sim.sweeps.keypath import KeyPathError, get_path, parse_path

# top-level keys of metrics.json (SCENARIO.md) and of plan.json (lepton_sim/planner/document.py)
METRICS_KEYS = ("scenario", "seed", "duration_s", "warmup_s", "services", "pools", "nodes", "links", "cost",
                "energy_kwh", "energy_kwh_by", "timeseries", "events", "wall_s")
PLAN_KEYS = ("scenario", "status", "usd_per_hour", "cost", "deployment", "routing", "predicted", "pools", "demand",
             "solver", "solve_s", "build_s", "gap", "bound_usd_per_hour", "plan_source", "model", "baselines",
             "verify", "assumptions", "reasons")
RESERVED = ("point", "seed", "run_seed", "status", "error")  # the table's own columns
_KEYS = {"metrics": METRICS_KEYS, "plan": PLAN_KEYS}


def documents_for(mode: str) -> dict[str, str]:
    """Path prefix -> the output document it reads, for one mode ('' is the mode's main document)."""
    if mode == "simulate":
        return {"": "metrics", "metrics.": "metrics"}
    if mode == "plan":
        return {"": "plan", "plan.": "plan"}
    return {"": "plan", "plan.": "plan", "metrics.": "metrics"}


def split(path: str, mode: str) -> tuple[str, str]:
    """(document, path inside it) for a metric path."""
    docs = documents_for(mode)
    prefix = max((p for p in docs if path.startswith(p)), key=len)
    return docs[prefix], path[len(prefix):]


def default_collect(mode: str, services: list[str]) -> tuple[str, ...]:
    """What a sweep collects when its file names nothing: the figures a capacity planner compares."""
    sim = [p for s in services for p in (f"services.{s}.latency_ms.p50", f"services.{s}.latency_ms.p99",
                                          f"services.{s}.slo_attainment", f"services.{s}.slo.met")]
    sim += ["cost.usd_per_hour", "energy_kwh"]
    plan = ["plan.status", "usd_per_hour", *(f"predicted.{s}.latency_ms" for s in services)]
    if mode == "simulate":
        return tuple(sim)
    if mode == "plan":
        return tuple(plan)
    return tuple(plan + [f"metrics.{p}" for p in sim])


def check_collect_path(path: str, mode: str, services: list[str]) -> str | None:
    """Why `path` cannot name a metric in this mode's outputs, or None when it can."""
    try:
        parse_path(path)
    except KeyPathError as exc:
        return str(exc)
    doc, inner = split(path, mode)
    if not inner:
        return f"{path!r} names a whole document; add the metric's key path"
    parts = parse_path(inner)
    top = parts[0]
    if top not in _KEYS[doc]:
        return (f"unknown metric {path!r} for mode {mode}: {doc}.json has no key {top!r}; it has: "
                f"{', '.join(_KEYS[doc])}")
    if inner == path and top in RESERVED:
        return f"{path!r} would be read as the table's own {top!r} column; write {doc}.{path}"
    if top in ("services", "predicted") and len(parts) > 1 and parts[1] not in services:
        return f"unknown service {parts[1]!r}; services are: {', '.join(services)}"
    return None


def collect_values(outputs: Mapping[str, Any], paths: tuple[str, ...], mode: str) -> tuple[dict[str, Any], list[str]]:
    """The value at every path (JSON text when not a scalar) and the paths not found in a document that exists."""
    values: dict[str, Any] = {}
    missing: list[str] = []
    for path in paths:
        doc, inner = split(path, mode)
        if outputs.get(doc) is None:  # e.g. no simulation of an infeasible plan: nothing to read, no error
            values[path] = None
            continue
        try:
            v = get_path(outputs[doc], inner)
        except KeyPathError:
            values[path] = None
            if outputs[doc].get("status") != "infeasible":  # an infeasible plan has no deployment to read
                missing.append(path)
            continue
        values[path] = v if v is None or isinstance(v, (bool, int, float, str)) else json.dumps(v, sort_keys=True)
    return values, missing

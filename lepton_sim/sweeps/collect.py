"""Metric paths into a point's outputs (metrics.json, plan.json): defaults, checks, and reading them.

A path is read in the mode's main document (metrics.json for `simulate`, plan.json for `plan` and
`plan+verify`), or in a named one with a prefix: ``metrics.services.detect.latency_ms.p99``,
``plan.status``. The prefix is needed where a bare path would be a column the table already has.

Paths are checked before anything runs. Into metrics.json they are checked against its shape for
the scenario swept (`metric_shapes`: `build_metrics` of a zero-length simulation of the point, so
every pool, link, demand site and field is there under the name a run gives it); into plan.json,
and where no shape is known, by their first key and service name. A bad path names the valid
paths nearest to it.
"""
from __future__ import annotations

import copy
import difflib
import itertools
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lepton_sim.errors import LeptonError
from lepton_sim.sweeps.keypath import KeyPathError, format_path, get_path, parse_path, set_path

# top-level keys of metrics.json (SCENARIO.md) and of plan.json (lepton_sim/planner/document.py)
METRICS_KEYS = ("scenario", "seed", "duration_s", "warmup_s", "services", "pools", "nodes", "links", "cost",
                "energy_kwh", "energy_kwh_by", "timeseries", "jobs", "engine", "events", "wall_s")
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


def default_collect(mode: str, services: list[str], llm: Collection[str] = ()) -> tuple[str, ...]:
    """What a sweep collects when its file names nothing: the figures a capacity planner compares
    (for an LLM service, in `llm`: TTFT and TPOT at p99 and goodput instead of the latency)."""
    sim = [p for s in services for p in (
        (f"services.{s}.ttft_ms.p99", f"services.{s}.tpot_ms.p99", f"services.{s}.goodput_rps") if s in llm else
        (f"services.{s}.latency_ms.p50", f"services.{s}.latency_ms.p99")) + (
        f"services.{s}.slo_attainment", f"services.{s}.slo.met")]
    sim += ["cost.usd_per_hour", "energy_kwh"]
    plan = ["plan.status", "usd_per_hour", *(f"predicted.{s}.latency_ms" for s in services)]
    if mode == "simulate":
        return tuple(sim)
    if mode == "plan":
        return tuple(plan)
    return tuple(plan + [f"metrics.{p}" for p in sim])


def check_collect_path(path: str, mode: str, services: list[str],
                       shapes: MetricShapes | None = None) -> str | None:
    """Why `path` cannot name a metric in this mode's outputs, or None when it can.

    `shapes` (from `metric_shapes`) lets a metrics.json path be checked to its last key.
    """
    try:
        parse_path(path)
    except KeyPathError as exc:
        return str(exc)
    doc, inner = split(path, mode)
    if not inner:
        return f"{path!r} names a whole document; add the metric's key path"
    parts = parse_path(inner)
    top = parts[0]
    known = _known_paths(mode, services, shapes)
    if top not in _KEYS[doc]:
        return (f"unknown metric {path!r} for mode {mode}: {doc}.json has no key {top!r}; it has: "
                f"{', '.join(_KEYS[doc])}{_nearest(path, known)}")
    if inner == path and top in RESERVED:
        return f"{path!r} would be read as the table's own {top!r} column; write {doc}.{path}"
    if top in ("services", "predicted") and len(parts) > 1 and parts[1] not in services:
        return f"unknown service {parts[1]!r}; services are: {', '.join(services)}{_nearest(path, known)}"
    if doc != "metrics" or shapes is None or not shapes.documents:
        return None
    if mode != "simulate" and top != "services":
        return None  # the planner chooses the deployment: pools, nodes and links are not known yet
    misses = []
    for shape in shapes.documents:
        try:
            get_path(shape, inner)
            return None
        except KeyPathError as exc:
            misses.append(str(exc))
    if not shapes.complete:
        return None  # some points' shapes were not computed: the path may be one of theirs
    return f"unknown metric {path!r} for mode {mode}: in metrics.json, {misses[0]}{_nearest(path, known)}"


class MetricShapes:
    """The metrics.json shapes of a sweep's points (one per distinct structure), for checking paths.

    `complete` is False when some points' shapes were not computed (too many structures, or a point
    that is not a valid scenario): a path found in none is then not refused.
    """

    def __init__(self, documents: Sequence[Mapping[str, Any]], complete: bool) -> None:
        self.documents = tuple(documents)
        self.complete = complete
        self.paths = sorted({p for d in self.documents for p in _leaf_paths(d)})


MAX_SHAPES = 32  # distinct point structures whose metrics shape is computed before a sweep


def metric_shapes(base: Mapping[str, Any], grid: Sequence[tuple[str, Sequence[Any]]], *, base_file: str,
                  base_dir: Path) -> MetricShapes:
    """The metrics.json shape of every distinct structure among the sweep's points.

    Only grid parameters that can change which names metrics.json holds (the deployment, links,
    demand sites, services' payloads) make points differ here; a rate or a price changes values,
    not keys. Each structure is validated and simulated for zero seconds (a few milliseconds).
    """
    structural = [(path, list(values)) for path, values in grid if _structural(path)]
    combos = list(itertools.islice(itertools.product(*(v for _, v in structural)), MAX_SHAPES + 1))
    complete = len(combos) <= MAX_SHAPES
    documents = []
    for combo in combos[:MAX_SHAPES]:
        raw = copy.deepcopy(dict(base))
        try:
            for (path, _), value in zip(structural, combo):
                set_path(raw, path, value)
            shape = _zero_length_metrics(raw, base_file, base_dir)
        except (LeptonError, KeyPathError):
            complete = False  # an invalid point: its row will say why
            continue
        if shape is None:
            complete = False
        else:
            documents.append(shape)
    return MetricShapes(documents, complete)


def _zero_length_metrics(raw: dict[str, Any], base_file: str, base_dir: Path) -> dict[str, Any] | None:
    """metrics.json of the scenario simulated for no time: every key a run has (None without a deployment)."""
    from lepton_sim.metrics import build_metrics
    from lepton_sim.scenario import parse_scenario
    from lepton_sim.scenario.schema import Horizon
    from lepton_sim.sim import simulate

    scenario = parse_scenario(raw, file=base_file, base_dir=base_dir)
    if scenario.deployment is None:
        return None
    instant = scenario.model_copy(update={"horizon": Horizon(duration_s=1e-6, warmup_s=0.0, drain_s=0.0)})
    return build_metrics(instant, simulate(instant, scenario.seed))


# grid parameters that change values, never the names in metrics.json
_VALUES_ONLY = ("name", "description", "seed", "horizon", "hardware", "sites", "models", "failures")


def _structural(path: str) -> bool:
    """Can setting `path` change which keys a point's metrics.json has?"""
    parts = parse_path(path)
    if parts[0] in _VALUES_ONLY:
        return False
    if parts[0] != "services":
        return True  # the deployment, links, and anything this list does not know
    return (len(parts) <= 2 or "payload" in parts or parts[-1] in ("site", "demand")
            or (len(parts) == 4 and parts[2] == "demand"))


def _leaf_paths(doc: Any, parts: tuple[Any, ...] = ()) -> Iterator[str]:
    """Every key path in a document, inner keys included (lists are leaves: their entries are not named)."""
    if parts:
        yield format_path(list(parts))
    if isinstance(doc, Mapping):
        for k, v in doc.items():
            yield from _leaf_paths(v, (*parts, str(k)))


def _known_paths(mode: str, services: list[str], shapes: MetricShapes | None) -> list[str]:
    """Valid paths to suggest from: the mode's defaults, its documents' keys, and the metrics shape's paths."""
    docs = documents_for(mode)
    out = list(default_collect(mode, services))
    for prefix, doc in docs.items():
        out += [f"{prefix}{k}" for k in _KEYS[doc] if not (prefix == "" and k in RESERVED)]
        if doc == "metrics" and shapes is not None:
            out += [f"{prefix}{p}" for p in shapes.paths
                    if mode == "simulate" or p.startswith("services.")]
    return list(dict.fromkeys(out))


def _nearest(path: str, known: list[str]) -> str:
    """The (up to 3) valid paths closest to `path`, compared without their document prefixes."""
    def bare(p: str) -> str:
        return p.split(".", 1)[1] if p.split(".", 1)[0] in _KEYS and "." in p else p

    by_bare: dict[str, str] = {}
    for k in known:
        by_bare.setdefault(bare(k), k)  # the first spelling: unprefixed where that is valid
    near = difflib.get_close_matches(bare(path), list(by_bare), n=3, cutoff=0.6)
    return f"; nearest valid paths: {', '.join(by_bare[n] for n in near)}" if near else ""


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

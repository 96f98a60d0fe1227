"""The report of a sweep directory: the grid, each metric against the parameters, the frontier, the table."""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lepton_sim.errors import InputError, LeptonError
from lepton_sim.report.document import Block, Figure, Report, Section, Table, Text
from lepton_sim.report.style import fmt
from lepton_sim.report.sweepfigs import (SloOf, frontier_png, frontier_points, heatmaps_png, is_boolean,
                                         is_number, lines_png, numeric_metrics)
from lepton_sim.report.units import latency_service

MAX_TABLE_ROWS = 200


def sweep_report(run_dir: Path) -> Report:
    from lepton_sim.report.build import read_json

    header = read_json(run_dir / "sweep.json")
    rows = read_rows(run_dir)
    params, metrics = list(header["parameters"]), list(header["collect"])
    ok = sum(1 for r in rows if r["status"] == "ok")
    facts = (("mode", header["mode"]), ("grid points", fmt(header["points"])),
             ("seeds per point", fmt(len(header["seeds"]))), ("rows finished", f"{len(rows)} of {header['tasks']}"),
             ("rows failed", fmt(len(rows) - ok)))
    subtitle = (f"Base scenario {header['base_file']}, sweep file {header['sweep_file']}. Every row is one "
                "(grid point, seed); its run seed derives from both.")
    slos = base_slos(header, run_dir)
    sections = [grid_section(header), *metric_sections(rows, params, metrics, slos, header.get("base_file", "")),
                table_section(rows, params, metrics)]
    failures = failure_section(rows)
    if failures is not None:
        sections.append(failures)
    return Report(f"lepton-sim sweep: {header['name']}", subtitle, tuple(sections), facts)


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "results.parquet"
    if not path.is_file():
        raise InputError(f"{run_dir}: no results.parquet yet (the sweep writes it as rows finish)")
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None


def grid_section(header: Mapping[str, Any]) -> Section:
    rows = tuple((path, ", ".join(fmt(v) if is_number(v) else str(v) for v in values))
                 for path, values in header["grid"].items())
    blocks: list[Block] = [Table("Varied parameters (key paths into the base scenario)", ("parameter", "values"),
                                 rows or (("(none)", "the base scenario as is"),)),
                           Text(f"Seeds: {', '.join(map(str, header['seeds']))}. Collected: "
                                f"{', '.join(header['collect'])}.")]
    return Section("Grid", tuple(blocks))


def base_slos(header: Mapping[str, Any], run_dir: Path) -> dict[str, tuple[float, float | None]] | None:
    """Each service's SLO (percentile, end-to-end latency target in ms, None for an LLM service without
    one) in the base scenario: as sweep.json records it, or, for a sweep written before it did, read from
    the base file (None when that can no longer be read). The file's path is as the sweep was started
    with: relative to the directory it was started in, which is tried first, then each directory above
    `run_dir`."""
    from lepton_sim.scenario import load_scenario

    recorded = header.get("slos")
    if isinstance(recorded, Mapping):
        out: dict[str, tuple[float, float | None]] = {}
        for name, v in recorded.items():
            out[name] = (float(v["percentile"]), None if v.get("latency_ms") is None else float(v["latency_ms"]))
            for key in ("ttft", "tpot"):  # an LLM service's token targets
                if isinstance(v.get(key), Mapping):
                    out[f"{name}.{key}"] = (float(v[key]["percentile"]), float(v[key]["latency_ms"]))
        return out
    base = Path(str(header.get("base_file", "")))
    if not str(base):
        return None
    found = next((p for p in (base, *(d / base for d in run_dir.resolve().parents)) if p.is_file()), None)
    if found is None:
        return None
    try:
        scenario = load_scenario(found)
    except (LeptonError, OSError):
        return None
    return {name: (svc.slo.percentile, svc.slo.latency_ms) for name, svc in scenario.services.items()}


def slo_lookup(base: Mapping[str, tuple[float, float | None]] | None) -> SloOf:
    """The SLO of a service at a grid point: the base scenario's, with the point's own values where the grid
    varies ``services.NAME.slo.latency_ms`` or ``.percentile``."""
    def slo_of(service: str, point: Mapping[str, Any]) -> tuple[float, float] | None:
        pct, ms = (base or {}).get(service, (99.0, None))
        name, _, token = service.partition(".")  # "NAME.ttft": services.NAME.slo.ttft.latency_ms
        slo = f"services.{name}.slo.{token}" if token else f"services.{name}.slo"
        ms = point.get(f"{slo}.latency_ms", ms)
        pct = point.get(f"{slo}.percentile", pct)
        return (float(pct), float(ms)) if is_number(ms) and is_number(pct) else None

    return slo_of


def metric_sections(rows: Sequence[Mapping[str, Any]], params: Sequence[str], metrics: Sequence[str],
                    slos: Mapping[str, tuple[float, float | None]] | None = None,
                    base_file: str = "") -> list[Section]:
    nums = numeric_metrics(rows, metrics)
    if not rows or not nums or not params:
        return []
    out = []
    varied = [p for p in params if len({repr(r[p]) for r in rows}) > 1] or list(params)
    slo_of = slo_lookup(slos)
    heat = len(varied) == 2
    notes = []
    if any(is_boolean(rows, m) for m in nums):
        notes.append("a yes/no metric is " + ("yes where every seed says yes, no where none does"
                                              if heat else "the fraction of seeds that say yes"))
    if any(latency_service(m) for m in nums):
        if slos is None:
            notes.append(f"the base scenario {base_file} could not be read, so latency is drawn without its SLO")
        else:
            notes.append("a latency cell over its service's SLO target is framed in red" if heat
                         else "red dotted: the service's SLO latency target")
    tail = "".join(f"; {n}" for n in notes) + "."
    if heat:
        fig = Figure("sweep-heatmaps", "Metrics over the two parameters", heatmaps_png(rows, varied, nums, slo_of),
                     f"Mean over seeds of each collected metric; rows {varied[0]}, columns {varied[1]}; "
                     "– where no row has a value (failed, or an infeasible plan)" + tail)
    else:
        fig = Figure("sweep-lines", "Metrics against the parameters", lines_png(rows, varied, nums, slo_of),
                     f"Mean over seeds (line), seeds' range (band) and each seed (dots) against {varied[0]}"
                     + (f"; one line per value of {', '.join(varied[1:])}" if len(varied) > 1 else "") + tail)
    out.append(Section("Metrics against the parameters", (fig,)))
    frontier = frontier_section(rows, params, metrics)
    if frontier is not None:
        out.append(frontier)
    return out


# a grid parameter that is an SLO's latency target: services.NAME.slo[.ttft|.tpot].latency_ms
SLO_TARGET = re.compile(r"(^|\.)slo(\.(ttft|tpot))?\.latency_ms$")


def frontier_section(rows: Sequence[Mapping[str, Any]], params: Sequence[str],
                     metrics: Sequence[str]) -> Section | None:
    """Present when the sweep varies an SLO's latency target (end-to-end, or an LLM service's TTFT or
    TPOT target) and collects a cost in US$ per hour."""
    target = next((p for p in params if SLO_TARGET.search(p)), None)
    cost = next((m for m in metrics if m.endswith("usd_per_hour")), None)
    if target is None or cost is None:
        return None
    checks = [m for m in metrics if m.endswith("slo.met") or m.endswith("plan.status")]
    if not checks:
        return Section("Cost-latency frontier", (Text(
            f"The sweep varies {target} but collects nothing that says whether a run met its SLO: collect "
            "services.NAME.slo.met (simulate) or plan.status (plan) to draw the frontier."),))
    conditions = [p for p in params if p != target and not p.startswith("deployment")
                  and len({repr(r[p]) for r in rows}) > 1]  # a parameter with one value is no condition
    fig = Figure("frontier", "Cost against the latency target",
                 frontier_png(rows, target, cost, checks, conditions),
                 f"For each value of {target}, the cheapest {cost} (mean over seeds) among the grid points whose "
                 f"every seed meets: {', '.join(checks)}. Deployment parameters are choices (the cheapest is "
                 "taken); " + (f"one line (and marker shape) per value of {', '.join(conditions)}"
                               if conditions else "no other parameter varies")
                 + ". Prices label the targets where a line's cost changes; small grey marks are every run"
                 + ("; crosses in the strip below, targets that nothing meets." if any(
                     failed for _, failed in frontier_points(rows, target, cost, checks, conditions).values())
                    else "."))
    return Section("Cost-latency frontier", (fig,))


def table_section(rows: Sequence[Mapping[str, Any]], params: Sequence[str], metrics: Sequence[str]) -> Section:
    header = ("point", *params, "seed", *metrics, "status")
    body = tuple(tuple(_cell(r.get(c)) for c in header) for r in rows[:MAX_TABLE_ROWS])
    note = (f"First {MAX_TABLE_ROWS} of {len(rows)} rows; results.csv and results.parquet hold all of them."
            if len(rows) > MAX_TABLE_ROWS else "The same rows as results.csv and results.parquet (run_seed there).")
    return Section("Results", (Table("", header, body, note),))


def failure_section(rows: Sequence[Mapping[str, Any]]) -> Section | None:
    errors = Counter(r["error"] for r in rows if r["status"] != "ok")
    if not errors:
        return None
    body = tuple((fmt(n), str(msg)) for msg, n in errors.most_common())
    return Section("Failed rows", (Table("", ("rows", "error"), body),))


def _cell(v: Any) -> str:
    return fmt(v) if is_number(v) or isinstance(v, bool) else ("-" if v is None else str(v))

"""The report of a sweep directory: the grid, each metric against the parameters, the frontier, the table."""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lepton_sim.errors import InputError
from lepton_sim.report.document import Block, Figure, Report, Section, Table, Text
from lepton_sim.report.style import fmt
from lepton_sim.report.sweepfigs import frontier_png, heatmaps_png, is_number, lines_png, numeric_metrics

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
    sections = [grid_section(header), *metric_sections(rows, params, metrics), table_section(rows, params, metrics)]
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


def metric_sections(rows: Sequence[Mapping[str, Any]], params: Sequence[str], metrics: Sequence[str]) -> list[Section]:
    nums = numeric_metrics(rows, metrics)
    if not rows or not nums or not params:
        return []
    out = []
    varied = [p for p in params if len({repr(r[p]) for r in rows}) > 1] or list(params)
    if len(varied) == 2:
        fig = Figure("sweep-heatmaps", "Metrics over the two parameters", heatmaps_png(rows, varied, nums),
                     f"Mean over seeds of each collected metric; rows {varied[0]}, columns {varied[1]}; "
                     "– where no row has a value (failed, or an infeasible plan).")
    else:
        fig = Figure("sweep-lines", "Metrics against the parameters", lines_png(rows, varied, nums),
                     f"Mean over seeds (line), seeds' range (band) and each seed (dots) against {varied[0]}"
                     + (f"; one line per value of {', '.join(varied[1:])}." if len(varied) > 1 else "."))
    out.append(Section("Metrics against the parameters", (fig,)))
    frontier = frontier_section(rows, params, metrics)
    if frontier is not None:
        out.append(frontier)
    return out


def frontier_section(rows: Sequence[Mapping[str, Any]], params: Sequence[str],
                     metrics: Sequence[str]) -> Section | None:
    """Present when the sweep varies an SLO's latency target and collects a cost in US$ per hour."""
    target = next((p for p in params if p.endswith("slo.latency_ms")), None)
    cost = next((m for m in metrics if m.endswith("usd_per_hour")), None)
    if target is None or cost is None:
        return None
    checks = [m for m in metrics if m.endswith("slo.met") or m.endswith("plan.status")]
    if not checks:
        return Section("Cost-latency frontier", (Text(
            f"The sweep varies {target} but collects nothing that says whether a run met its SLO: collect "
            "services.NAME.slo.met (simulate) or plan.status (plan) to draw the frontier."),))
    conditions = [p for p in params if p != target and not p.startswith("deployment")]
    fig = Figure("frontier", "Cost against the latency target",
                 frontier_png(rows, target, cost, checks, conditions),
                 f"For each value of {target}, the cheapest {cost} (mean over seeds) among the grid points whose "
                 f"every seed meets: {', '.join(checks)}. Deployment parameters are choices (the cheapest is "
                 "taken); " + (f"one line per value of {', '.join(conditions)}." if conditions
                               else "no other parameter varies."))
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

"""The readable summary `plan` prints: chosen pools, routing, predicted (vs simulated) latency, baselines.

Simulated figures come from above the planner (`lepton_sim.verification`), as any objects with
`simulated_ms`, `attainment` and `met`: the planner does not depend on the simulator.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from rich.console import Console

from lepton_sim.planner.errors import Infeasible
from lepton_sim.planner.result import PlanResult
from lepton_sim.termtable import Col, print_table
from lepton_sim.termtable import console as make_console


def _f(v: float | None, fmt: str = ".2f") -> str:
    return "-" if v is None else format(v, fmt)


class Simulated(Protocol):
    """A simulated verdict at the SLO percentile, for a service or one of its demand sites."""

    @property
    def simulated_ms(self) -> float | None: ...

    @property
    def attainment(self) -> float | None: ...

    @property
    def met(self) -> bool: ...

    def simulated_of(self, metric: str) -> float | None: ...


def print_plan(result: PlanResult, console: Console | None = None, *,
               simulated: Mapping[str, Simulated] | None = None,
               simulated_by_site: Mapping[str, Mapping[str, Simulated]] | None = None,
               baselines: bool = True) -> None:
    """The plan's figures and tables; with `simulated`, the latency table compares; baselines last (or apart)."""
    c = console or make_console()
    s = result.solve
    gap = "-" if s.gap is None else f"{s.gap:.4%}"
    source = "" if s.source == "milp" else f" (from the {s.source} baseline, cheaper than the MILP incumbent)"
    c.print(f"[bold]{result.scenario}[/bold]  plan [bold]{s.status.value}[/bold]{source}  "
            f"${result.usd_per_hour:.4f}/h (replicas ${result.costs.replicas:.4f}/h, egress "
            f"${result.costs.egress:.6f}/h)  {s.solver} {s.solve_s:.2f} s solve + {s.build_s:.2f} s build, gap {gap}")
    c.print(f"model: {s.size.variables:,} variables ({s.size.integer_variables:,} integer), {s.size.constraints:,} "
            f"constraints in {s.groups} group(s), {s.rounds} lazy round(s); {result.candidates:,} candidate pools, "
            f"{result.arcs:,} routes after pruning")

    llm = any(p.tpot_s is not None for p in result.pools)
    cols = [Col("pool", "left"), Col("replicas", group="size")]
    cols += [Col("GPUs", group="size")] if llm else []  # devices per replica
    cols += [Col("planned rps", group="size"), Col("capacity rps", group="size"),
             Col("pool budget ms", group="latency"), Col("pool predicted ms", group="latency")]
    cols += [Col("TPOT ms", group="latency")] if llm else []
    cols += [Col("$/h", group="size")]
    rows = []
    for p in result.pools:
        row = [p.id, str(p.count)] + ([str(p.tensor_parallel)] if llm else [])
        row += [_f(p.planned_rps, ".1f"), _f(p.capacity_rps, ".1f"), _f(p.budget_s * 1e3), _f(p.sojourn_s * 1e3)]
        row += [_f(p.tpot_s * 1e3 if p.tpot_s is not None else None)] if llm else []
        row += [_f(p.count * p.tensor_parallel * result.replica_usd_per_hour[p.key[2]], ".4f")]
        rows.append(row)
    print_table(c, "Pools (planned at peak rates)", tuple(cols), rows)
    if llm:
        c.print("LLM pools: GPUs per replica (tensor parallel); budget and predicted are the TTFT the pool may add "
                "and its TTFT at that percentile, TPOT its TPOT at the target's percentile (measured replica curves)")

    print_table(c, "Routing (fraction of each demand site's requests)",
                (Col("service / demand site", "left", wrap=True), Col("pool", "left"), Col("fraction")),
                [[f"{name} from {site}", pid, f"{frac:.3f}"]
                 for name, sites in result.routing.items() for site, pools in sites.items()
                 for pid, frac in sorted(pools.items(), key=lambda kv: -kv[1])])

    last = simulated is not None
    by_site = simulated_by_site or {}
    cols = [Col("service / demand site", "left", wrap=True), Col("SLO"), Col("predicted")]
    cols += [Col("simulated"), Col("attained"), Col("met")] if last else []
    rows = []
    for name, first in result.predicted.items():
        for pred in (first,) if first.tpot is None else (first, first.tpot):
            what = "" if pred.metric == "latency" else f" {pred.metric.upper()}"
            lines = [(f"[bold]{name}[/bold]{what}", pred.latency_ms,
                      simulated.get(name) if simulated is not None else None)]
            lines += [(f"  from {site}", ms, by_site.get(name, {}).get(site))
                      for site, ms in pred.by_site.items()] if len(pred.by_site) > 1 else []
            for label, ms, chk in lines:
                cells = [label, f"p{pred.percentile:g}<={pred.slo_ms:g}", _f(ms)]
                if last:
                    ok = chk is not None and chk.met
                    cells += [_f(chk.simulated_of(pred.metric)) if chk else "-",
                              _f(chk.attainment, ".2%") if chk else "-",
                              "[green]yes[/green]" if ok else "[red]no[/red]"]
                rows.append(cells)
    print_table(c, "Latency at the SLO percentile (ms): predicted" + (" vs simulated" if last else ""),
                cols, rows)

    if baselines:
        print_baselines(result, c)


def print_baselines(result: PlanResult, console: Console | None = None) -> None:
    """The baselines' cost and what the plan saves against each."""
    c = console or make_console()
    if result.baselines:
        rows = []
        for b in result.baselines:
            cost = b.usd_per_hour
            saves = None if cost is None or cost <= 0 else (cost - result.usd_per_hour) / cost
            rows.append([b.name, _f(cost, ".4f"), _f(saves, ".1%"), b.note if cost is None else ""])
        print_table(c, "Baselines (same model)",
                    (Col("baseline", "left", wrap=True), Col("$/h"), Col("plan saves"), Col("note", "left", wrap=True)),
                    rows)


def print_infeasible(error: Infeasible, console: Console | None = None) -> None:
    c = console or make_console(stderr=True)
    print_table(c, "Infeasible: who cannot be served, and why",
                (Col("service", "left"), Col("demand site", "left"), Col("reason", "left", wrap=True),
                 Col("detail", "left", wrap=True)),
                [[r.service, r.site, r.why.value, r.message] for r in error.reasons], keys=2)

"""The readable summary `plan` prints: chosen pools, routing, predicted vs simulated, baselines, solve figures."""
from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from lepton_sim.planner.errors import Infeasible
from lepton_sim.planner.result import PlanResult
from lepton_sim.planner.verify import Verified


def _f(v: float | None, fmt: str = ".2f") -> str:
    return "-" if v is None else format(v, fmt)


def print_plan(result: PlanResult, verified: Verified | None = None, console: Console | None = None) -> None:
    c = console or Console(width=None if sys.stdout.isatty() else 120)
    s = result.solve
    gap = "-" if s.gap is None else f"{s.gap:.4%}"
    source = "" if s.source == "milp" else f" (from the {s.source} baseline, cheaper than the MILP incumbent)"
    c.print(f"[bold]{result.scenario}[/bold]  plan [bold]{s.status.value}[/bold]{source}  "
            f"${result.usd_per_hour:.4f}/h (replicas ${result.costs.replicas:.4f}/h, egress "
            f"${result.costs.egress:.6f}/h)  {s.solver} {s.solve_s:.2f} s solve + {s.build_s:.2f} s build, gap {gap}")
    c.print(f"model: {s.size.variables:,} variables ({s.size.integer_variables:,} integer), {s.size.constraints:,} "
            f"constraints in {s.groups} group(s), {s.rounds} lazy round(s); {result.candidates:,} candidate pools, "
            f"{result.arcs:,} routes after pruning")

    t = Table(title="Pools (planned at peak rates)", title_justify="left")
    for col in ("pool", "replicas", "planned rps", "capacity rps", "pool budget ms", "pool bound ms", "$/h"):
        t.add_column(col, justify="left" if col == "pool" else "right")
    for p in result.pools:
        t.add_row(p.id, str(p.count), _f(p.planned_rps, ".1f"), _f(p.capacity_rps, ".1f"), _f(p.budget_s * 1e3),
                  _f(p.sojourn_s * 1e3), _f(p.count * result.replica_usd_per_hour[p.key[2]], ".4f"))
    c.print(t)

    t = Table(title="Routing (fraction of each demand site's requests)", title_justify="left")
    for col in ("service / demand site", "pool", "fraction"):
        t.add_column(col, justify="right" if col == "fraction" else "left")
    for name, sites in result.routing.items():
        for site, pools in sites.items():
            for pid, frac in sorted(pools.items(), key=lambda kv: -kv[1]):
                t.add_row(f"{name} from {site}", pid, f"{frac:.3f}")
    c.print(t)

    last = verified.final if verified is not None else None
    t = Table(title="Latency at the SLO percentile (ms): predicted bound" + (" vs simulated" if last else ""),
              title_justify="left")
    cols = ["service / demand site", "SLO", "predicted"] + (["simulated", "attained", "met"] if last else [])
    for col in cols:
        t.add_column(col, justify="left" if col.startswith("service") else "right")
    for name, pred in result.predicted.items():
        rows = [(f"[bold]{name}[/bold]", pred.latency_ms, last.services.get(name) if last else None)]
        rows += [(f"  from {site}", ms, last.by_site.get(name, {}).get(site) if last else None)
                 for site, ms in pred.by_site.items()] if len(pred.by_site) > 1 else []
        for label, ms, chk in rows:
            cells = [label, f"p{pred.percentile:g}<={pred.slo_ms:g}", _f(ms)]
            if last:
                ok = chk is not None and chk.met
                cells += [_f(chk.simulated_ms) if chk else "-", _f(chk.attainment, ".2%") if chk else "-",
                          "[green]yes[/green]" if ok else "[red]no[/red]"]
            t.add_row(*cells)
    c.print(t)

    if verified is not None:
        for r in verified.rounds:
            missed = [n for n, chk in r.services.items() if not chk.met]
            tight = ", ".join(f"{name}'s pools to x{f:.3g} of the modelled capacity" for name, f in r.tightened.items())
            c.print(f"verify round {r.index}: ${r.plan.usd_per_hour:.4f}/h, "
                    + ("every SLO met" if not missed else f"missed: {', '.join(missed)}; tightened {tight or '-'}"))

    if result.baselines:
        t = Table(title="Baselines (same model)", title_justify="left")
        for col in ("baseline", "$/h", "plan saves", "note"):
            t.add_column(col, justify="right" if col in ("$/h", "plan saves") else "left")
        for b in result.baselines:
            cost = b.usd_per_hour
            saves = None if cost is None or cost <= 0 else (cost - result.usd_per_hour) / cost
            t.add_row(b.name, _f(cost, ".4f"), _f(saves, ".1%"), b.note if cost is None else "")
        c.print(t)


def print_infeasible(error: Infeasible, console: Console | None = None) -> None:
    c = console or Console(stderr=True, width=None if sys.stderr.isatty() else 120)
    t = Table(title="Infeasible: who cannot be served, and why", title_justify="left")
    for col in ("service", "demand site", "reason", "detail"):
        t.add_column(col)
    for r in error.reasons:
        t.add_row(r.service, r.site, r.why.value, r.message)
    c.print(t)

"""The human-readable summary `simulate` prints: one table per concern, from the metrics object."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from lepton_sim.metrics import hardware_bases
from lepton_sim.scenario.schema import Scenario
from lepton_sim.termtable import Col, print_table
from lepton_sim.termtable import console as make_console


MAX_SITE_ROWS = 6  # per-site rows shown under a service; beyond, only its three slowest sites

# Services table columns. On a narrow terminal they split into tables by group, in rank order: the
# first keeps p50, p90, p99, the SLO, attained and met; then the other latency figures; then the counts.
SERVICE_COLS = (
    Col("service / demand site", "left", wrap=True), Col("requests", rank=10, group="counts"),
    Col("dropped", rank=11, group="counts"), Col("failed", rank=12, group="counts"),
    Col("mean", rank=9, group="tail"), Col("p50", rank=1, group="key"), Col("p90", rank=5, group="key"),
    Col("p95", rank=7, group="tail"), Col("p99", rank=2, group="key"), Col("max", rank=8, group="tail"),
    Col("SLO", rank=3, group="key"), Col("attained", rank=6, group="key"), Col("met", rank=4, group="key"),
)


def _f(v: Any, fmt: str = ".1f") -> str:
    return "-" if v is None else format(v, fmt)


def _service_cells(label: str, s: dict[str, Any]) -> list[str]:
    lat, slo = s["latency_ms"], s["slo"]
    colour = "green" if slo["met"] else "red"
    return [label, f"{s['arrived']:,}", f"{s['dropped']:,}", f"{s['failed']:,}", _f(lat["mean"]), _f(lat["p50"]),
            _f(lat["p90"]), _f(lat["p95"]), _f(lat["p99"]), _f(lat["max"]),
            f"p{slo['percentile']:g}<={slo['latency_ms']:g}", f"[{colour}]{_f(s['slo_attainment'], '.2%')}[/{colour}]",
            f"[{colour}]{'yes' if slo['met'] else 'no'}[/{colour}]"]


def slo_verdicts(m: dict[str, Any]) -> list[str]:
    """One line per service that misses its SLO, over all its requests or from one of its demand sites:
    by how much, and from which sites (what `plan` promises is every site within the target)."""
    lines = []
    for name, s in m["services"].items():
        sites = sorted(((site, st) for site, st in s["by_site"].items() if not st["slo"]["met"]),
                       key=lambda kv: kv[1]["slo_attainment"] or 0.0) if len(s["by_site"]) > 1 else []
        if s["slo"]["met"] and not sites:
            continue
        shown = "".join(f"; from {site} {_miss(st, short=True)}" for site, st in sites[:3])
        more = f"; {len(sites) - 3} more sites miss" if len(sites) > 3 else ""
        if s["slo"]["met"]:
            n = len(sites)
            lines.append(f"SLO missed at {n} demand site{'s' if n > 1 else ''}: {name} meets it over all its "
                         f"requests ({_miss(s, short=True)}){shown}{more}")
        else:
            lines.append(f"SLO missed: {name} {_miss(s)}{shown}{more}")
    return lines


def _miss(s: dict[str, Any], *, short: bool = False) -> str:
    """How a group of requests misses: its latency at the SLO percentile against the target, and the
    share within it (dropped, failed and unfinished requests count as misses)."""
    slo = s["slo"]
    pct, at, target = f"p{slo['percentile']:g}", slo["latency_at_percentile_ms"], slo["latency_ms"]
    if s["slo_attainment"] is None:
        return "no request arrived in the measured window"
    share = f"{s['slo_attainment']:.2%}"
    if short:
        return f"{pct} {_f(at)} ms, {share} within {target:g} ms"
    lost = s["dropped"] + s["failed"] + s["in_flight"]
    if at is None:
        verdict = f"no request completed ({lost:,} dropped, failed or unfinished)"
    elif at > target:
        verdict = f"{pct} {at:.1f} ms > target {target:g} ms"
    else:  # the completed requests are fast enough; the lost and unfinished ones make the miss
        verdict = f"{pct} {at:.1f} ms of the completed, but {lost:,} dropped, failed or unfinished"
    return f"{verdict}; {share} of requests within {target:g} ms, needs {slo['percentile']:g}%"


def print_summary(scenario: Scenario, m: dict[str, Any], console: Console | None = None) -> None:
    c = console or make_console()
    c.print(f"[bold]{m['scenario']}[/bold]  seed {m['seed']}  measured {m['warmup_s']:g}-{m['duration_s']:g} s "
            f"of simulated time  ({m['events']:,} events in {m['wall_s']:.2f} s wall)")

    rows = []
    for name, s in m["services"].items():
        rows.append(_service_cells(f"[bold]{name}[/bold]", s))
        sites = list(s["by_site"].items())
        if len(sites) > MAX_SITE_ROWS:  # many sites: show the worst by tail latency
            sites = sorted(sites, key=lambda kv: -(kv[1]["slo"]["latency_at_percentile_ms"] or float("inf")))
            shown, hidden = sites[:3], len(sites) - 3
        else:
            shown, hidden = (sites if len(sites) > 1 else []), 0
        rows += [_service_cells(f"  from {site}", st) for site, st in shown]
        if hidden:
            rows.append([f"  [dim]+{hidden} more sites[/dim]", *[""] * (len(SERVICE_COLS) - 1)])
    print_table(c, "Services: end-to-end latency (ms) of requests created after the warm-up", SERVICE_COLS, rows)
    if any(len(s["by_site"]) > MAX_SITE_ROWS for s in m["services"].values()):
        c.print(f"[dim]a service with more than {MAX_SITE_ROWS} demand sites shows its 3 slowest; "
                "every site is in metrics.json (services.*.by_site)[/dim]")
    missed = slo_verdicts(m)
    for line in missed:
        c.print(f"[bold red]{line}[/bold red]")
    if m["services"] and not missed:
        c.print("[green]every service met its SLO[/green]")
    unfinished = sum(s["in_flight"] for s in m["services"].values())
    if unfinished:
        c.print(f"[yellow]{unfinished:,} requests were still in flight when the run ended "
                "(counted as SLO misses)[/yellow]")

    print_table(c, "Pools (one FIFO queue each)",
                (Col("pool", "left"), Col("replicas"), Col("utilization"), Col("availability"), Col("mean batch"),
                 Col("throughput rps"), Col("compute time", "left")),
                [[pid, str(p["replicas"]), _f(p["utilization"], ".1%"), _f(p["availability"], ".2%"),
                  _f(p["mean_batch"], ".2f"), _f(p["throughput_rps"], ".1f"), p["compute"]["source"]]
                 for pid, p in m["pools"].items()])

    print_table(c, "Nodes", (Col("node", "left"), Col("pool", "left"), Col("utilization"), Col("availability")),
                [[nid, n["pool"], _f(n["utilization"], ".1%"), _f(n["availability"], ".2%")]
                 for nid, n in m["nodes"].items()])

    if m["links"]:
        print_table(c, "Links (per direction)",
                    (Col("link", "left"), Col("direction", "left"), Col("sharing", "left"), Col("utilization"),
                     Col("availability"), Col("GB")),
                    [[lid, d, link["sharing"], _f(v["utilization"], ".1%"), _f(link["availability"], ".2%"),
                      _f(v["gb"], ".3f")]
                     for lid, link in m["links"].items() for d, v in link["directions"].items()])

    cost = m["cost"]
    c.print(f"cost: ${cost['usd_per_hour']:.2f}/h (replicas ${cost['replicas_usd_per_hour']:.2f}/h, egress "
            f"${cost['egress_usd_per_hour']:.4f}/h); ${cost['usd_total']:.4f} over the measured window; "
            f"energy {m['energy_kwh']:.4f} kWh")
    sources = sorted({p["compute"]["source"] for p in m["pools"].values()})
    if "roofline" in sources:
        c.print("[dim]compute times marked 'roofline' come from datasheet peaks with efficiency figures (sources in "
                "the hardware catalogue; details in metrics.json pools.*.compute); what each type's figures rest "
                "on:[/dim]")
    for hw, basis in hardware_bases(m):
        c.print(f"[dim]{hw}: {escape(basis)}[/dim]")

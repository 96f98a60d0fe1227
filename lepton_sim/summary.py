"""The human-readable summary `simulate` prints: one table per concern, from the metrics object."""
from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from lepton_sim.scenario.schema import Scenario


MAX_SITE_ROWS = 6  # per-site rows shown under a service; beyond, only its three slowest sites


def _f(v: Any, fmt: str = ".1f") -> str:
    return "-" if v is None else format(v, fmt)


def _service_cells(label: str, s: dict[str, Any]) -> list[str]:
    lat, slo = s["latency_ms"], s["slo"]
    colour = "green" if slo["met"] else "red"
    return [label, f"{s['arrived']:,}", f"{s['dropped']:,}", f"{s['failed']:,}", _f(lat["mean"]), _f(lat["p50"]), _f(lat["p95"]),
            _f(lat["p99"]), _f(lat["max"]), f"p{slo['percentile']:g}<={slo['latency_ms']:g}",
            f"[{colour}]{_f(s['slo_attainment'], '.2%')}[/{colour}]"]


def print_summary(scenario: Scenario, m: dict[str, Any], console: Console | None = None) -> None:
    c = console or Console(width=None if sys.stdout.isatty() else 120)
    c.print(f"[bold]{m['scenario']}[/bold]  seed {m['seed']}  measured {m['warmup_s']:g}-{m['duration_s']:g} s "
            f"of simulated time  ({m['events']:,} events in {m['wall_s']:.2f} s wall)")

    t = Table(title="Services: end-to-end latency (ms) of requests created after the warm-up", title_justify="left")
    for col in ("service / demand site", "requests", "dropped", "failed", "mean", "p50", "p95", "p99", "max", "SLO",
                "attained"):
        t.add_column(col, justify="left" if col.startswith("service") else "right")
    for name, s in m["services"].items():
        t.add_row(*_service_cells(f"[bold]{name}[/bold]", s))
        sites = list(s["by_site"].items())
        if len(sites) > MAX_SITE_ROWS:  # many sites: show the worst by tail latency
            sites = sorted(sites, key=lambda kv: -(kv[1]["slo"]["latency_at_percentile_ms"] or float("inf")))
            shown, hidden = sites[:3], len(sites) - 3
        else:
            shown, hidden = (sites if len(sites) > 1 else []), 0
        for site, st in shown:
            t.add_row(*_service_cells(f"  from {site}", st))
        if hidden:
            t.add_row(f"  [dim]{hidden} more sites in metrics.json[/dim]", *[""] * 10)
    c.print(t)
    unfinished = sum(s["in_flight"] for s in m["services"].values())
    if unfinished:
        c.print(f"[yellow]{unfinished:,} requests were still in flight when the run ended (counted as SLO misses)[/yellow]")

    t = Table(title="Pools (one FIFO queue each)", title_justify="left")
    for col in ("pool", "replicas", "utilization", "availability", "mean batch", "throughput rps", "compute time"):
        t.add_column(col, justify="left" if col in ("pool", "compute time") else "right")
    for pid, p in m["pools"].items():
        t.add_row(pid, str(p["replicas"]), _f(p["utilization"], ".1%"), _f(p["availability"], ".2%"),
                  _f(p["mean_batch"], ".2f"), _f(p["throughput_rps"], ".1f"), p["compute"]["source"])
    c.print(t)

    t = Table(title="Nodes", title_justify="left")
    t.add_column("node")
    t.add_column("pool")
    t.add_column("utilization", justify="right")
    t.add_column("availability", justify="right")
    for nid, n in m["nodes"].items():
        t.add_row(nid, n["pool"], _f(n["utilization"], ".1%"), _f(n["availability"], ".2%"))
    c.print(t)

    if m["links"]:
        t = Table(title="Links (per direction)", title_justify="left")
        for col in ("link", "direction", "sharing", "utilization", "availability", "GB"):
            t.add_column(col, justify="left" if col in ("link", "direction", "sharing") else "right")
        for lid, link in m["links"].items():
            for d, v in link["directions"].items():
                t.add_row(lid, d, link["sharing"], _f(v["utilization"], ".1%"), _f(link["availability"], ".2%"),
                          _f(v["gb"], ".3f"))
        c.print(t)

    cost = m["cost"]
    c.print(f"cost: ${cost['usd_per_hour']:.2f}/h (replicas ${cost['replicas_usd_per_hour']:.2f}/h, egress "
            f"${cost['egress_usd_per_hour']:.4f}/h); ${cost['usd_total']:.4f} over the measured window; "
            f"energy {m['energy_kwh']:.4f} kWh")
    sources = sorted({p["compute"]["source"] for p in m["pools"].values()})
    if "roofline" in sources:
        c.print("[dim]compute times marked 'roofline' are modelled from datasheet peaks with efficiency factors "
                "(sources in the hardware catalogue; details in metrics.json pools.*.compute)[/dim]")

"""The human-readable summary `simulate` prints: one table per concern, from the metrics object."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from lepton_sim.metrics import engine_line, hardware_bases
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


LLM_COLS = (
    Col("LLM service / demand site", "left", wrap=True), Col("requests", rank=10, group="counts"),
    Col("TTFT p50", rank=3, group="key"), Col("TTFT p99", rank=1, group="key"), Col("TTFT SLO", rank=5, group="key"),
    Col("TPOT p50", rank=4, group="key"), Col("TPOT p99", rank=2, group="key"), Col("TPOT SLO", rank=6, group="key"),
    Col("out tok/s", rank=9, group="tail"), Col("goodput rps", rank=8, group="tail"),
    Col("preempted", rank=11, group="counts"), Col("attained", rank=7, group="key"), Col("met", rank=7, group="key"),
)


def _is_llm(s: dict[str, Any]) -> bool:
    return "ttft_ms" in s


def _llm_cells(label: str, s: dict[str, Any]) -> list[str]:
    ttft, tpot, a, b = s["ttft_ms"], s["tpot_ms"], s["ttft_slo"], s["tpot_slo"]
    colour = "green" if s["slo"]["met"] else "red"
    return [label, f"{s['arrived']:,}", _f(ttft["p50"]), _f(ttft["p99"]), f"p{a['percentile']:g}<={a['latency_ms']:g}",
            _f(tpot["p50"], ".2f"), _f(tpot["p99"], ".2f"), f"p{b['percentile']:g}<={b['latency_ms']:g}",
            _f(s["output_tokens_per_s"], ",.0f"), _f(s["goodput_rps"], ".2f"), f"{s['preempted']:,}",
            f"[{colour}]{_f(s['slo_attainment'], '.2%')}[/{colour}]",
            f"[{colour}]{'yes' if s['slo']['met'] else 'no'}[/{colour}]"]


def _rows(services: dict[str, Any], cells: Any, width: int) -> list[list[str]]:
    """A row per service, and under it a row per demand site when there are several (the slowest few of many)."""
    rows = []
    for name, s in services.items():
        rows.append(cells(f"[bold]{name}[/bold]", s))
        sites = list(s["by_site"].items())
        if len(sites) > MAX_SITE_ROWS:  # many sites: show the worst by tail latency
            sites = sorted(sites, key=lambda kv: -(kv[1]["slo"]["latency_at_percentile_ms"] or float("inf")))
            shown, hidden = sites[:3], len(sites) - 3
        else:
            shown, hidden = (sites if len(sites) > 1 else []), 0
        rows += [cells(f"  from {site}", st) for site, st in shown]
        if hidden:
            rows.append([f"  [dim]+{hidden} more sites[/dim]", *[""] * (width - 1)])
    return rows


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
    if s["slo_attainment"] is None:
        return "no request arrived in the measured window"
    if _is_llm(s):
        return _llm_miss(s)
    slo = s["slo"]
    pct, at, target = f"p{slo['percentile']:g}", slo["latency_at_percentile_ms"], slo["latency_ms"]
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


def _llm_miss(s: dict[str, Any]) -> str:
    """Which of an LLM service's targets miss, and the share of requests meeting both."""
    parts = []
    for key, name in (("ttft_slo", "TTFT"), ("tpot_slo", "TPOT"), ("slo", "end to end")):
        t = s[key]
        if t.get("latency_ms") is None or t.get("met") is not False:
            continue
        at = t["latency_at_percentile_ms"]
        parts.append(f"{name} p{t['percentile']:g} {_f(at)} ms > {t['latency_ms']:g} ms" if at is not None and
                     at > t["latency_ms"] else f"{name}: too few requests within {t['latency_ms']:g} ms")
    return f"{'; '.join(parts) or 'targets met by too few requests'}; {s['slo_attainment']:.2%} of requests meet both"


def print_summary(scenario: Scenario, m: dict[str, Any], console: Console | None = None) -> None:
    c = console or make_console()
    c.print(f"[bold]{m['scenario']}[/bold]  seed {m['seed']}  measured {m['warmup_s']:g}-{m['duration_s']:g} s "
            f"of simulated time  ({m['events']:,} events in {m['wall_s']:.2f} s wall)")
    line = engine_line(m)
    if line:
        c.print(f"[dim]{escape(line)}[/dim]", highlight=False)

    plain = {n: s for n, s in m["services"].items() if not _is_llm(s)}
    llm = {n: s for n, s in m["services"].items() if _is_llm(s)}
    if plain or not (llm or m.get("jobs")):
        print_table(c, "Services: end-to-end latency (ms) of requests created after the warm-up", SERVICE_COLS,
                    _rows(plain, _service_cells, len(SERVICE_COLS)))
    if llm:
        print_table(c, "LLM services: time to first token and per output token (ms), requests created after the "
                       "warm-up; attained = both targets met", LLM_COLS, _rows(llm, _llm_cells, len(LLM_COLS)))
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

    llm_pools = {pid: p for pid, p in m["pools"].items() if "running_mean" in p}
    if llm_pools:
        print_table(c, "LLM pools (continuous batching per replica)",
                    (Col("pool", "left"), Col("replicas x TP"), Col("utilization"), Col("running"),
                     Col("KV cache"), Col("KV tokens"), Col("batch tokens"), Col("out tok/s"), Col("$/M out tok"),
                     Col("J/out tok"), Col("preempted")),
                    [[pid, f"{p['replicas']} x {p['tensor_parallel']}", _f(p["utilization"], ".1%"),
                      _f(p["running_mean"], ".1f"), _f(p["kv_cache_utilization"], ".1%"), f"{p['kv_cache_tokens']:,}",
                      _f(p["batch_tokens_mean"], ".0f"), _f(p["output_tokens_per_s"], ",.0f"),
                      _f(p["usd_per_million_output_tokens"], ".3f"), _f(p["joules_per_output_token"], ".3f"),
                      f"{p['preempted']:,}"] for pid, p in llm_pools.items()])
    if m.get("jobs"):
        print_jobs(c, m["jobs"])
    if m["pools"] or not m.get("jobs"):
        print_table(c, "Pools (one FIFO queue each)" if not llm_pools else "Pools",
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

    _print_cost(c, m)


def print_jobs(c: Console, jobs: dict[str, Any]) -> None:
    """Training jobs: iteration, its parts, throughput, scaling, time to complete, cost."""
    print_table(c, "Training jobs: iterations started after the warm-up (ms)",
                (Col("job", "left"), Col("devices"), Col("sync", "left"), Col("iteration"), Col("p99"),
                 Col("compute"), Col("comm"), Col("exposed"), Col("samples/s"), Col("scaling"),
                 Col("done in h"), Col("deadline"), Col("US$")),
                [[name, f"{j['devices']} {j['hardware']}", j["sync"], _f(j["iteration_ms"]["mean"], ".2f"),
                  _f(j["iteration_ms"]["p99"], ".2f"), _f(j["compute_ms"], ".2f"), _f(j["communication_ms"], ".2f"),
                  _f(j["exposed_communication_ms"], ".2f"), _f(j["samples_per_s"], ",.0f"),
                  _f(j["scaling_efficiency"], ".1%"), _f(j["time_to_complete_h"], ".3f"),
                  "-" if j["deadline_met"] is None else ("met" if j["deadline_met"] else "MISSED"),
                  _f(j["usd_total"], ",.2f")] for name, j in jobs.items()])
    for name, j in jobs.items():
        if j.get("failures"):
            n = j.get("rerouted_iterations")
            rerouted = f", {n:,} run again over another route" if n else ""
            c.print(f"[yellow]{escape(name)}: {j['failures']} failures in the window (devices, servers or links "
                    f"it needs), {j['lost_iterations']:,} iterations run again from the last checkpoint{rerouted}, "
                    f"running {j['availability']:.2%} of the time[/yellow]")
        if j["time_to_complete_basis"] != "simulated":
            c.print(f"[dim]{escape(name)}: time to complete {escape(j['time_to_complete_basis'])}[/dim]")
        c.print(f"[dim]{escape(name)}: compute {escape(j['compute'])}; {escape(j['communication'])} "
                "(modelled)[/dim]")


def _print_cost(c: Console, m: dict[str, Any]) -> None:
    cost = m["cost"]
    if m.get("jobs") and not m["pools"] and not cost["egress_usd_per_hour"]:
        return  # training jobs only: their cost is in their table
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

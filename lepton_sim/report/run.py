"""The report of one simulation run: topology, latency, LLM services and pools, utilisation over time,
cost and energy.

Sites keep one colour across the figures (`style.site_colours` over the scenario's sites). The
Latency section is end to end: every service but an LLM service without an end-to-end target, whose
figures are in the LLM sections (`report.llm`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lepton_sim.metrics import engine_line, hardware_bases
from lepton_sim.report.document import Block, Figure, Report, Section, Table, Text
from lepton_sim.report.latency import cdf_png
from lepton_sim.report.llm import is_llm_pool, is_llm_service, llm_services
from lepton_sim.report.llm import pools_section as llm_pools_section
from lepton_sim.report.llm import services_section as llm_services_section
from lepton_sim.report.style import energy, fmt, pct, site_colours
from lepton_sim.report.topology import caption as topology_caption
from lepton_sim.report.training import jobs_section
from lepton_sim.report.topology import topology_png
from lepton_sim.report.usage import breakdown_png, utilisation_png


def run_report(metrics: Mapping[str, Any], data: Mapping[str, Any] | None) -> Report:
    """A run's report from its metrics.json and, when present, its report-data.json."""
    shape = data["scenario"] if data else shape_from_metrics(metrics)
    services = metrics["services"]
    met = sum(1 for s in services.values() if s["slo"]["met"])
    facts: tuple[tuple[str, str], ...] = ()
    if services or metrics["links"]:
        facts += (("US$ per hour", f"${fmt(metrics['cost']['usd_per_hour'])}"),
                  ("energy over the window", energy(metrics["energy_kwh"])))
    if services:
        facts += (("services meeting their SLO", f"{met} of {len(services)}"),)
    jobs = metrics.get("jobs") or {}
    if jobs:
        on_time = sum(1 for j in jobs.values() if j["deadline_met"])
        timed = sum(1 for j in jobs.values() if j["deadline_met"] is not None)
        facts += (("training jobs", str(len(jobs))),) + ((("jobs meeting their deadline", f"{on_time} of {timed}"),)
                                                         if timed else ())
    facts += (
              ("measured window", f"{fmt(metrics['warmup_s'])}–{fmt(metrics['duration_s'])} s"),
              ("simulated events", fmt(metrics.get("events"))))
    if metrics.get("engine"):
        facts += (("engine", engine_line(metrics).removeprefix("engine: ")),)
    llm = llm_services(metrics)
    if llm:
        facts += (("LLM output tokens per second", fmt(sum(s["output_tokens_per_s"] for s in llm.values()))),)
    subtitle = (f"Scenario {metrics['scenario']!r}, seed {metrics['seed']}. "
                + (shape.get("description") or "").strip())
    colours = site_colours(shape["sites"])
    sections = (topology_section(shape, metrics, complete=data is not None, colours=colours),
                *simulated_sections(metrics, data, colours))
    return Report(f"lepton-sim run: {metrics['scenario']}", subtitle, sections, facts)


def simulated_sections(metrics: Mapping[str, Any], data: Mapping[str, Any] | None,
                       colours: Mapping[str, str] | None = None) -> tuple[Section, ...]:
    """What a simulation shows after the topology (a run's, a plan's check): latency, the LLM services and
    pools when there are any, utilisation, cost and energy."""
    sections = (latency_section(metrics, data, colours) if metrics["services"] else None,
                llm_services_section(metrics, data, colours), llm_pools_section(metrics, colours),
                jobs_section(metrics), utilisation_section(metrics, colours) if metrics["pools"] or metrics["links"]
                else None, cost_section(metrics, colours) if metrics["pools"] or metrics["links"] else None)
    return tuple(section for section in sections if section is not None)


def topology_section(shape: Mapping[str, Any], metrics: Mapping[str, Any] | None, *, complete: bool = True,
                     colours: Mapping[str, str] | None = None) -> Section:
    util = {lid: link["utilization"] for lid, link in (metrics or {}).get("links", {}).items()}
    blocks: list[Block] = [Figure("topology", "Topology", topology_png(shape, util, colours),
                                  topology_caption(shape, util))]
    if not complete:
        blocks.append(Text("This run directory has no report-data.json, so the picture is drawn from metrics.json "
                           "alone: link bandwidths, latencies and demand are not shown."))
    return Section("Topology", tuple(blocks))


def latency_section(metrics: Mapping[str, Any], data: Mapping[str, Any] | None,
                    colours: Mapping[str, str] | None = None) -> Section | None:
    """End-to-end latency: the CDF of every service with an end-to-end target, and the percentiles of every
    service but an LLM service (whose SLO attainment counts its TTFT and TPOT; its end-to-end percentiles
    are in the LLM services section). None when every service is an LLM service without one."""
    services = metrics["services"]
    drawn = [name for name, s in services.items() if not is_llm_service(s) or s["slo"]["latency_ms"] is not None]
    if not drawn and services:
        return None
    blocks: list[Block] = []
    if data and data.get("latency_cdf"):
        slos = {name: services[name]["slo"] for name in drawn}
        blocks.append(Figure("latency-cdf", "Latency CDF per service",
                             cdf_png(data["latency_cdf"], slos, colours, only=drawn),
                             "End-to-end latency of requests created in the measured window (network both ways, "
                             "queueing, batching, compute): solid, all requests of the service; dashed, those from "
                             "each demand site (of a service with more than one) in the site's colour. Dotted red: the SLO's latency target and "
                             "percentile. Request counts are in the table below."))
    else:
        blocks.append(Text("No report-data.json in this run directory: the latency CDF needs it "
                           "(`simulate --out` writes it); the percentiles below come from metrics.json."))
    rows = []
    for name, s in services.items():
        if is_llm_service(s):
            continue
        rows.append(_latency_row(name, "all", s))
        for site, ss in s.get("by_site", {}).items():
            rows.append(_latency_row(name, site, ss))
    header = ("service", "from", "requests", "dropped", "in flight", "mean ms", "p50 ms", "p90 ms", "p95 ms",
              "p99 ms", "max ms", "SLO", "within SLO", "met")
    if rows or not drawn:
        blocks.append(Table("Latency percentiles", header, tuple(rows),
                            "Dropped and unfinished requests count as SLO misses."))
    llm = [name for name in drawn if is_llm_service(services[name])]
    if llm:
        blocks.append(Text(f"The end-to-end percentiles of {', '.join(llm)} (LLM, last token back) and their requests "
                           "are in the LLM services section, with the time to first token and per output token."))
    return Section("Latency", tuple(blocks))


def _latency_row(name: str, site: str, s: Mapping[str, Any]) -> tuple[str, ...]:
    lat = s["latency_ms"]
    slo = s["slo"]
    return (name, site, fmt(s["arrived"]), fmt(s["dropped"]), fmt(s["in_flight"]), fmt(lat["mean"]),
            fmt(lat["p50"]), fmt(lat["p90"]), fmt(lat["p95"]), fmt(lat["p99"]), fmt(lat["max"]),
            f"p{fmt(slo['percentile'])} ≤ {fmt(slo['latency_ms'])} ms", pct(s["slo_attainment"]),
            "yes" if slo["met"] else "no")


def utilisation_section(metrics: Mapping[str, Any], colours: Mapping[str, str] | None = None) -> Section:
    blocks: list[Block] = []
    ts = metrics.get("timeseries")
    if ts:
        blocks.append(Figure("utilisation", "Utilisation over simulated time",
                             utilisation_png(ts, metrics["warmup_s"], metrics["duration_s"], colours),
                             f"Busy fraction per {fmt(ts['bin_s'])} s bin; the shaded warm-up is simulated but "
                             "not measured. A pool is in the colour of its site, a link direction in that of "
                             "the site it leaves."))
    pools = tuple((pid, fmt(p["replicas"]), pct(p["utilization"]), fmt(p["mean_batch"]), fmt(p["throughput_rps"]),
                   p["compute"]["source"]) for pid, p in metrics.get("pools", {}).items())
    llm = any(is_llm_pool(p) for p in metrics.get("pools", {}).values())
    blocks.append(Table("Replica pools", ("pool", "replicas", "utilisation", "mean batch", "requests/s",
                                          "compute times"), pools,
                        "An LLM pool's batches are its iterations: its mean batch is the sequences in one, its "
                        "requests/s those finished, its utilisation the time its replicas iterate." if llm else ""))
    bases = hardware_bases(metrics)
    if bases:
        blocks.append(Table("What each hardware type's compute times rest on", ("hardware", "basis"), tuple(bases)))
    links = tuple((d, link_id, pct(dd["utilization"]), fmt(dd["gb"]), fmt(dd["transfers"]))
                  for link_id, link in metrics.get("links", {}).items() for d, dd in link["directions"].items())
    if links:
        blocks.append(Table("Link directions", ("direction", "link", "utilisation", "GB", "transfers"), links))
    return Section("Utilisation", tuple(blocks))


def cost_section(metrics: Mapping[str, Any], colours: Mapping[str, str] | None = None) -> Section:
    cost = metrics["cost"]
    fig = Figure("cost-energy", "Cost and energy breakdown",
                 breakdown_png(cost, metrics.get("energy_kwh_by", {}), colours),
                 "Replica-hours at each hardware type's price plus egress per GB crossing a link; energy is busy "
                 "time at power_w plus the rest of the window at idle_power_w. Sites in their colours.")
    totals = (("total", f"${fmt(cost['usd_per_hour'])}", f"${fmt(cost['usd_total'])}"),
              ("replicas", f"${fmt(cost['replicas_usd_per_hour'])}", ""),
              ("egress", f"${fmt(cost['egress_usd_per_hour'])}", ""))
    prices = tuple((hw, f"${fmt(p['usd_per_hour'])}", p["source"]) for hw, p in cost.get("prices", {}).items())
    blocks: list[Block] = [fig, Table("Cost", ("", "US$ per hour", "US$ over the window"), totals)]
    if prices:
        blocks.append(Table("Prices", ("hardware", "US$ per hour", "source"), prices))
    return Section("Cost and energy", tuple(blocks))


def shape_from_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A topology shape recovered from metrics.json alone (no bandwidths, latencies or demand)."""
    sites: dict[str, dict[str, Any]] = {}
    replicas = []
    for p in metrics.get("pools", {}).values():
        sites.setdefault(p["site"], {"kind": "site"})
        replicas.append({k: p[k] for k in ("service", "site", "hardware", "variant")} | {"count": p["replicas"]})
    links = []
    for link_id in metrics.get("links", {}):
        a, b = link_id.split("--", 1)
        for s in (a, b):
            sites.setdefault(s, {"kind": "site"})
        links.append({"between": [a, b]})
    return {"name": metrics["scenario"], "sites": sites, "links": links, "services": {},
            "deployment": {"replicas": replicas}}

"""The LLM parts of a run's report: time to first token and per output token against their targets,
per service and demand site, and the continuous-batching pools (KV cache, running sequences, tokens).

An LLM service is one whose metrics.json entry has ``ttft_ms``; an LLM pool one with ``running_mean``.
The CDFs come from report-data.json's ``ttft_cdf`` and ``tpot_cdf``, drawn by the same figure as
the end-to-end latency (`latency.cdf_png`); the time series from metrics.json's
``timeseries.llm_pools``, by the same figure as utilisation (`usage.timeseries_png`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lepton_sim.report.document import Block, Figure, Section, Table, Text
from lepton_sim.report.latency import cdf_png
from lepton_sim.report.style import fmt, pct
from lepton_sim.report.usage import llm_pools_png

# (metrics.json key of the figures, of the target, what the table calls it)
MEASURES = (("ttft_ms", "ttft_slo", "time to first token"), ("tpot_ms", "tpot_slo", "time per output token"))
TTFT_CAPTION = ("Time from a request's creation at its demand site to its first token's arrival back there (network "
                "both ways, waiting for a batch slot and KV-cache blocks, prefill), requests created in the measured "
                "window: solid, all requests of the service; dashed, those from each demand site (of a service with "
                "more than one) in the site's colour. Dotted red: the TTFT target's latency and percentile.")
TPOT_CAPTION = ("Time per output token after the first: (last token back - first token back) / (output tokens - 1), "
                "per completed request with two output tokens or more; solid, all requests of the service; dashed, "
                "those from each demand site (of a service with more than one). Dotted red: the TPOT target's "
                "latency and percentile.")


def is_llm_service(s: Mapping[str, Any]) -> bool:
    return "ttft_ms" in s


def is_llm_pool(p: Mapping[str, Any]) -> bool:
    return "running_mean" in p


def llm_services(metrics: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {name: s for name, s in metrics["services"].items() if is_llm_service(s)}


def services_section(metrics: Mapping[str, Any], data: Mapping[str, Any] | None,
                     colours: Mapping[str, str] | None = None) -> Section | None:
    """TTFT and TPOT CDFs with their targets, and per LLM service its targets' table and its tokens' (None
    when the run has no LLM service)."""
    services = llm_services(metrics)
    if not services:
        return None
    blocks: list[Block] = []
    if data and data.get("ttft_cdf") and data.get("tpot_cdf"):
        for key, target, title, xlabel, caption in (
                ("ttft_cdf", "ttft_slo", "Time to first token (TTFT) CDF per LLM service", "time to first token (ms)",
                 TTFT_CAPTION),
                ("tpot_cdf", "tpot_slo", "Time per output token (TPOT) CDF per LLM service",
                 "time per output token (ms)", TPOT_CAPTION)):
            slos = {name: s[target] for name, s in services.items()}
            blocks.append(Figure(key.replace("_", "-"), title,
                                 cdf_png(data[key], slos, colours, xlabel=xlabel,
                                         target=target.split("_")[0].upper() + " target"), caption))
    elif data:
        blocks.append(Text("This run directory's report-data.json has no TTFT and TPOT distributions (`simulate "
                           "--out` writes them for LLM services): the percentiles below come from metrics.json."))
    else:
        blocks.append(Text("No report-data.json in this run directory: the TTFT and TPOT CDFs need it (`simulate "
                           "--out` writes it); the percentiles below come from metrics.json."))
    for name, s in services.items():
        groups = [("all", s), *(s["by_site"].items() if len(s.get("by_site", {})) > 1 else ())]
        blocks.append(Table(f"{name}: time to first token, per output token and end to end",
                            ("from", "measure", "mean ms", "p50 ms", "p90 ms", "p99 ms", "max ms", "target",
                             "at the target's percentile ms", "within target", "met"),
                            tuple(row for site, g in groups for row in _latency_rows(site, g)),
                            "Within target: the share of the requests that arrived in the measured window; dropped "
                            "and unfinished requests miss. A request with one output token has no TPOT and meets "
                            "that target. End to end is the last token's arrival back at the demand site."))
        blocks.append(Table(f"{name}: requests, goodput and tokens",
                            ("from", "requests", "completed", "dropped", "in flight", "both targets met",
                             "goodput requests/s", "output tokens/s", "prompt tokens/s", "preempted", "SLO met"),
                            tuple(_token_row(site, g) for site, g in groups),
                            "Both targets met: the share of requests whose TTFT and TPOT are both within target; "
                            "goodput is their rate. Tokens are those of the completed requests, per second of the "
                            "measured window. Preempted: times a running request was evicted from the KV cache "
                            "and later recomputed."))
    return Section("LLM services", tuple(blocks))


def _target(t: Mapping[str, Any] | None) -> str:
    if not t or t.get("latency_ms") is None:
        return "none"
    return f"p{fmt(t['percentile'])} ≤ {fmt(t['latency_ms'])} ms"


def _latency_rows(site: str, s: Mapping[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for key, target, what in MEASURES:
        lat, t = s[key], s[target]
        rows.append((site, what, fmt(lat["mean"]), fmt(lat["p50"]), fmt(lat["p90"]), fmt(lat["p99"]), fmt(lat["max"]),
                     _target(t), fmt(t["latency_at_percentile_ms"]), pct(t["attainment"]), fmt(t["met"])))
    lat, slo = s["latency_ms"], s["slo"]
    # an end-to-end target's attainment is not kept apart from the service's (both targets) in metrics.json
    rows.append((site, "end to end", fmt(lat["mean"]), fmt(lat["p50"]), fmt(lat["p90"]), fmt(lat["p99"]),
                 fmt(lat["max"]), _target(slo),
                 fmt(slo["latency_at_percentile_ms"]) if slo.get("latency_ms") is not None else "-", "-", "-"))
    return rows


def _token_row(site: str, s: Mapping[str, Any]) -> tuple[str, ...]:
    return (site, fmt(s["arrived"]), fmt(s["completed"]), fmt(s["dropped"]), fmt(s["in_flight"]),
            pct(s["slo_attainment"]), fmt(s["goodput_rps"]), fmt(s["output_tokens_per_s"]),
            fmt(s["prompt_tokens_per_s"]), fmt(s["preempted"]), fmt(s["slo"]["met"]))


def pools_section(metrics: Mapping[str, Any], colours: Mapping[str, str] | None = None) -> Section | None:
    """The LLM pools' scheduler figures and, over simulated time, their tokens, KV cache and running sequences
    (None when the run has no LLM pool)."""
    pools = {pid: p for pid, p in metrics.get("pools", {}).items() if is_llm_pool(p)}
    if not pools:
        return None
    blocks: list[Block] = []
    ts = metrics.get("timeseries")
    if ts and ts.get("llm_pools"):
        blocks.append(Figure("llm-pools", "LLM pools over simulated time",
                             llm_pools_png(ts, metrics["warmup_s"], metrics["duration_s"], colours),
                             f"Per {fmt(ts['bin_s'])} s bin: tokens sampled per second over the pool's replicas, "
                             "the share of a replica's KV-cache blocks in use and its running sequences (mean over "
                             "replicas); the shaded warm-up is simulated but not measured. A pool is in the colour "
                             "of its site, the line style telling apart those of one site."))
    rows = tuple((pid, fmt(p["replicas"]), fmt(p["tensor_parallel"]), fmt(p["devices"]), fmt(p["iterations"]),
                  fmt(p["running_mean"]), pct(p["kv_cache_utilization"]), fmt(p["kv_cache_tokens"]),
                  fmt(p["batch_tokens_mean"]), fmt(p["output_tokens_per_s"]), fmt(p["preempted"]), fmt(p["too_long"]),
                  _usd(p["usd_per_million_output_tokens"]), fmt(p["joules_per_output_token"]))
                 for pid, p in pools.items())
    blocks.append(Table("LLM pools (continuous batching per replica)",
                        ("pool", "replicas", "tensor parallel", "devices", "iterations", "running sequences",
                         "KV cache in use", "KV cache tokens", "batch tokens", "output tokens/s", "preempted",
                         "too long", "US$ per million output tokens", "J per output token"), rows,
                        "A replica is tensor parallel GPUs of one node; devices = replicas x tensor parallel. "
                        "Running sequences, KV cache in use and its capacity (tokens, in the memory left after "
                        "the weights) are per replica; batch tokens is the mean per iteration. Too long: requests "
                        "dropped because they could never fit a replica's KV cache. Cost counts every device over "
                        "the measured window, energy its busy time at power_w and the rest at idle_power_w."))
    return Section("LLM pools", tuple(blocks))


def _usd(v: float | None) -> str:
    return "-" if v is None else f"${fmt(v)}"

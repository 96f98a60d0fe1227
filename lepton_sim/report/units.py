"""What a metric or parameter key path measures, for axis labels, and which SLO a latency metric has.

Key paths are those of sweep files: into metrics.json (``services.detect.latency_ms.p99``), into
plan.json (``usd_per_hour``, ``predicted.detect.latency_ms``, ``metrics.services....``) or into the
scenario (``services.detect.demand[0].rate_rps``, ``hardware.l4.cost_per_hour``).
"""
from __future__ import annotations

import re

# (pattern on the path's last key or keys, what it measures with its unit, the unit alone), first match wins
_UNITS: tuple[tuple[str, str, str], ...] = (
    (r"slo\.met|verify\.met|\.met$", "yes / no", ""),
    (r"slo_attainment$", "fraction within the SLO", "fraction"),
    (r"(ttft|tpot)_slo\.attainment$", "fraction within the target", "fraction"),
    (r"(latency_ms|_ms)(\.\w+)?$", "latency (ms)", "ms"),
    (r"tokens_per_s$", "tokens per second", "tokens/s"),
    (r"usd_per_million_output_tokens$", "US$ per million output tokens", "US$/M tokens"),
    (r"joules_per_output_token$", "J per output token", "J/token"),
    (r"kv_cache_utili[sz]ation$", "fraction of the KV cache in use (0-1)", "fraction"),
    (r"kv_cache_tokens$", "tokens", "tokens"),
    (r"batch_tokens_mean$", "tokens per iteration", "tokens"),
    (r"running_mean$", "running sequences", "sequences"),
    (r"(preempted|too_long|iterations)$", "count", ""),
    (r"(tensor_parallel|devices)$", "GPUs", "GPUs"),
    (r"usd_per_hour$|cost_per_hour$", "US$ per hour", "US$/h"),
    (r"usd_total$", "US$", "US$"),
    (r"cost_per_gb$", "US$ per GB", "US$/GB"),
    (r"energy_kwh$", "kWh", "kWh"),
    (r"utili[sz]ation$", "busy fraction (0-1)", "fraction"),
    (r"availability$", "fraction of time up (0-1)", "fraction"),
    (r"_rps$", "requests per second", "requests/s"),
    (r"bandwidth_gbps$", "Gb/s", "Gb/s"),
    (r"(^|\.)gb$", "GB", "GB"),
    (r"power_w$|_w$", "W", "W"),
    (r"(^|\.)gap$", "optimality gap (fraction)", "fraction"),
    (r"_s$", "seconds", "s"),
    (r"mean_batch$|max_batch$", "requests per batch", "requests"),
    (r"(replicas|count)$", "replicas", "replicas"),
    (r"(arrived|completed|dropped|failed|in_flight|retried)$", "requests", "requests"),
    (r"(failures|transfers|events)$", "count", ""),
)


def unit(path: str) -> str:
    """What the value at `path` measures, with its unit ("latency (ms)", "US$ per hour"); "" when unknown."""
    return next((what for pattern, what, _ in _UNITS if re.search(pattern, path)), "")


def _short(path: str) -> str:
    return next((short for pattern, _, short in _UNITS if re.search(pattern, path)), "")


def wrap_path(path: str, width: int = 36) -> str:
    """A key path broken after its dots into lines of at most `width` characters where it can be."""
    lines = [""]
    for part in re.findall(r"[^.]+\.?", path):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    return "\n".join(lines)


def axis_label(path: str) -> str:
    """A parameter's axis label: its key path and, when known, its unit."""
    short = _short(path)
    return f"{path} ({short})" if short else path


_LATENCY = (re.compile(r"(?:^|\.)services\.([^.\[\]]+)\.(?:by_site\.[^.]+\.)?"
                       r"(?:latency_ms\.\w+|slo\.latency_at_percentile_ms)$"),
            re.compile(r"^predicted\.([^.\[\]]+)\.latency_ms$"))
# An LLM service's TTFT and TPOT: their targets are keyed "NAME.ttft" and "NAME.tpot" (`base_slos`).
_TOKEN_LATENCY = re.compile(r"(?:^|\.)services\.([^.\[\]]+)\.(?:by_site\.[^.]+\.)?"
                            r"(?:(ttft|tpot)_ms\.\w+|(ttft|tpot)_slo\.latency_at_percentile_ms)$")


def latency_service(path: str) -> str | None:
    """The service whose end-to-end latency the metric at `path` is, if it is one (its SLO applies);
    for an LLM service's TTFT or TPOT, "NAME.ttft" or "NAME.tpot" (that target applies)."""
    for pattern in _LATENCY:
        m = pattern.search(path)
        if m:
            return m.group(1)
    m = _TOKEN_LATENCY.search(path)
    if m:
        return f"{m.group(1)}.{m.group(2) or m.group(3)}"
    return None

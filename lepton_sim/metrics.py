"""Metrics from a run's immutable record: latency percentiles, SLO attainment, utilisation, cost, energy.

All figures cover the measured window [warmup_s, duration_s]: requests created in it, busy time
inside it, replica-hours of it. The output shape is the `metrics.json` contract of SCENARIO.md.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from lepton_sim.scenario.schema import Scenario
from lepton_sim.sim.record import ServiceTally, SimRecord

PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}


def build_metrics(scenario: Scenario, rec: SimRecord) -> dict[str, Any]:
    """The metrics object for one run (everything but `wall_s` is a pure function of the inputs)."""
    window_s = rec.duration_s - rec.warmup_s
    out: dict[str, Any] = {
        "scenario": rec.scenario,
        "seed": rec.seed,
        "duration_s": rec.duration_s,
        "warmup_s": rec.warmup_s,
        "services": _services(scenario, rec, window_s),
        "pools": _pools(scenario, rec, window_s),
        "nodes": _nodes(rec, window_s),
        "links": _links(scenario, rec, window_s),
    }
    out["cost"] = _cost(scenario, rec, window_s)
    out["energy_kwh"], out["energy_kwh_by"] = _energy(scenario, rec, window_s)
    out["timeseries"] = _timeseries(scenario, rec)
    if rec.jobs:
        out["jobs"] = _jobs(scenario, rec)
    out["engine"] = dict(rec.engines)  # service -> "fast" or "event[: why the fast path did not run it]"
    out["events"] = rec.events
    out["wall_s"] = round(rec.wall_s, 3)
    return _round(out)


def engine_line(m: dict[str, Any]) -> str:
    """Which engine ran which service: the exact fast path, or the event engine and why."""
    eng = m.get("engine") or {}
    fast = sorted(n for n, e in eng.items() if e == "fast")
    slow: dict[str, list[str]] = {}
    for n, e in sorted(eng.items()):
        if e != "fast":
            slow.setdefault(e.partition(": ")[2], []).append(n)
    parts = [f"fast path (exact): {', '.join(fast)}"] if fast else []
    for why, names in slow.items():
        parts.append(f"event engine: {', '.join(names)}" + (f" ({why})" if why else ""))
    return "engine: " + "; ".join(parts) if parts else ""


def hardware_bases(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(hardware type, what its compute times rest on) for each type the pools of ``metrics`` run on, by name."""
    bases: dict[str, str] = {}
    for p in metrics.get("pools", {}).values():
        if p["compute"].get("basis"):
            bases.setdefault(p["hardware"], p["compute"]["basis"])
    return sorted(bases.items())


def _services(scenario: Scenario, rec: SimRecord, window_s: float) -> dict[str, Any]:
    out = {}
    for name, t in rec.services.items():
        slo = scenario.services[name].slo
        entry = _entry(t, slo, window_s)
        entry["by_site"] = {site: _entry(st, slo, window_s) for site, st in t.by_site.items()}
        payload = scenario.services[name].payload
        if payload is not None and payload.codec != "none":
            c = payload.model
            in_bytes = scenario.models[scenario.services[name].model].input_bytes
            entry["payload"] = {"codec": payload.codec, "level": payload.level, "data": payload.data,
                                "ratio": c.ratio, "wire_bytes": in_bytes / c.ratio,
                                "compress_ms": in_bytes * c.compress_s_per_byte * 1e3,
                                "decompress_ms": in_bytes * c.decompress_s_per_byte * 1e3, "source": c.source}
        out[name] = entry
    return out


def _entry(t: ServiceTally, slo: Any, window_s: float) -> dict[str, Any]:
    if t.llm is None:
        return _service_entry(t, slo.latency_ms, slo.percentile, window_s)
    return _llm_entry(t, slo, window_s)


def _summary_ms(lat: Any) -> dict[str, Any]:
    """Mean, percentiles and max of a latency summary (seconds) in milliseconds; None when empty."""
    if not lat.count:
        return {k: None for k in ("mean", *PERCENTILES, "max")}
    qs = lat.quantiles(list(PERCENTILES.values()))
    return {"mean": lat.mean * 1e3, **{k: q * 1e3 for k, q in zip(PERCENTILES, qs)}, "max": lat.max * 1e3}


def _target(lat: Any, target: Any, attainment: float | None) -> dict[str, Any]:
    at = lat.quantiles([target.percentile / 100])[0] * 1e3 if lat.count else None
    return {"percentile": target.percentile, "latency_ms": target.latency_ms, "latency_at_percentile_ms": at,
            "attainment": attainment, "met": attainment is not None and attainment >= target.percentile / 100}


def _llm_entry(t: ServiceTally, slo: Any, window_s: float) -> dict[str, Any]:
    """An LLM service's entry: the common counts and end-to-end latency, TTFT, TPOT, tokens, goodput.

    A request meets the SLO when both its TTFT and its TPOT are within target (a one-token answer
    has no TPOT and meets that part); dropped, failed and unfinished requests miss.
    """
    llm = t.llm
    assert llm is not None
    entry = _service_entry(t, slo.latency_ms, slo.percentile, window_s)
    if slo.latency_ms is not None:  # the end-to-end target's own figures, before both-targets replaces them
        entry["e2e_slo"] = {**entry["slo"], "attainment": entry["slo_attainment"]}
    attainment = llm.met / t.arrived if t.arrived else None
    ttft_within = llm.ttft_s.fraction_at_most(slo.ttft.latency_ms / 1e3) * llm.ttft_s.count if llm.ttft_s.count else 0
    # TPOT: requests with one output token have none and meet it; the others by their measured TPOT.
    single = t.completed - llm.tpot_s.count
    tpot_within = single + (llm.tpot_s.fraction_at_most(slo.tpot.latency_ms / 1e3) * llm.tpot_s.count
                            if llm.tpot_s.count else 0)
    entry.update({
        "ttft_ms": _summary_ms(llm.ttft_s),
        "tpot_ms": _summary_ms(llm.tpot_s),
        "output_tokens_per_s": llm.output_tokens / window_s,
        "prompt_tokens_per_s": llm.prompt_tokens / window_s,
        "goodput_rps": llm.met / window_s,
        "preempted": llm.preempted,
        "slo_attainment": attainment,
        "ttft_slo": _target(llm.ttft_s, slo.ttft, round(ttft_within) / t.arrived if t.arrived else None),
        "tpot_slo": _target(llm.tpot_s, slo.tpot, round(tpot_within) / t.arrived if t.arrived else None),
    })
    entry["slo"]["met"] = attainment is not None and entry["ttft_slo"]["met"] and entry["tpot_slo"]["met"] and \
        (slo.latency_ms is None or entry["slo"]["met"])
    return entry


def _service_entry(t: ServiceTally, slo_ms: float | None, percentile: float, window_s: float) -> dict[str, Any]:
    """Counts, latency percentiles (ms) and SLO attainment of one group of requests (no target: None)."""
    lat = t.latency_s
    if slo_ms is None:
        within = 0
    else:
        within = round(lat.fraction_at_most(slo_ms / 1e3) * lat.count) if lat.count else 0
    attainment = within / t.arrived if t.arrived and slo_ms is not None else None  # dropped, failed, unfinished requests miss
    if lat.count:
        qs = lat.quantiles([*PERCENTILES.values(), percentile / 100])
        latency: dict[str, Any] = {"mean": lat.mean * 1e3, **{k: q * 1e3 for k, q in zip(PERCENTILES, qs)},
                                   "max": lat.max * 1e3}
        at_pct = qs[-1] * 1e3
    else:
        latency, at_pct = {k: None for k in ("mean", *PERCENTILES, "max")}, None
    return {
        "arrived": t.arrived,
        "completed": t.completed,
        "dropped": t.dropped,
        "failed": t.failed,
        "in_flight": t.in_flight,
        "throughput_rps": t.completed / window_s,
        "latency_ms": latency,
        "slo_attainment": attainment,
        "slo": {
            "percentile": percentile,
            "latency_ms": slo_ms,
            "latency_at_percentile_ms": at_pct,
            "met": attainment is not None and attainment >= percentile / 100,
        } if slo_ms is not None else {"percentile": percentile, "latency_ms": None,
                                       "latency_at_percentile_ms": at_pct, "met": None},
        "percentiles": "exact" if lat.exact else f"sketch, relative error <= {lat.relative_error:g}",
    }


def _pools(scenario: Scenario, rec: SimRecord, window_s: float) -> dict[str, Any]:
    out = {}
    for p in rec.pools:
        line = p.line
        busy = sum(p.busy_s)
        out[p.id] = {
            "service": line.service, "site": line.site, "hardware": line.hardware, "variant": line.variant,
            "replicas": line.count,
            "utilization": busy / (window_s * line.count),
            "availability": 1 - sum(p.down_s) / (window_s * line.count),
            "failures": p.failures,
            "retried": p.retried,
            "batches": p.batches,
            "mean_batch": p.batched / p.batches if p.batches else None,
            "throughput_rps": p.batched / window_s,
            "compute": {"source": p.compute_source, "detail": p.compute_detail, "basis": p.compute_basis},
        }
        if p.llm is not None:
            out[p.id].update(_llm_pool(scenario, p, window_s))
    return out


def _llm_pool(scenario: Scenario, p: Any, window_s: float) -> dict[str, Any]:
    """An LLM pool's scheduler figures: batches are iterations, mean_batch their sequences."""
    t, line = p.llm, p.line
    hw = scenario.hardware[line.hardware]
    devices = line.count * t.tensor_parallel
    busy = sum(p.busy_s)
    usd = devices * hw.cost_per_hour * window_s / 3600
    joules = sum(b * hw.power_w + (window_s - b) * hw.idle_power_w for b in p.busy_s) * t.tensor_parallel
    return {
        "tensor_parallel": t.tensor_parallel,
        "devices": devices,
        "iterations": p.batches,
        "running_mean": t.running_s / (window_s * line.count),
        "kv_cache_utilization": t.kv_block_s / (window_s * line.count * t.kv_blocks) if t.kv_blocks else None,
        "kv_cache_peak_utilization": t.kv_blocks_peak / t.kv_blocks if t.kv_blocks else None,
        "kv_cache_tokens": t.kv_blocks * t.block_tokens,
        "batch_tokens_mean": t.batch_tokens / p.batches if p.batches else None,
        "output_tokens_per_s": t.output_tokens / window_s,
        "preempted": t.preempted,
        "too_long": t.too_long,
        "usd_per_million_output_tokens": usd / t.output_tokens * 1e6 if t.output_tokens else None,
        "joules_per_output_token": joules / t.output_tokens if t.output_tokens else None,
        "utilization": busy / (window_s * line.count),  # the fraction of time its replicas iterate
        "throughput_rps": t.finished / window_s,
    }


def node_ids(rec: SimRecord) -> list[tuple[str, str, float, float]]:
    """(node id, pool id, busy s, down s) per replica; ids number replicas per (site, hardware) in deployment order."""
    seen: dict[tuple[str, str], int] = defaultdict(int)
    out = []
    for p in rec.pools:
        for busy, down in zip(p.busy_s, p.down_s):
            key = (p.line.site, p.line.hardware)
            out.append((f"{key[0]}/{key[1]}/{seen[key]}", p.id, busy, down))
            seen[key] += 1
    return out


def _nodes(rec: SimRecord, window_s: float) -> dict[str, Any]:
    return {nid: {"pool": pid, "utilization": busy / window_s, "availability": 1 - down / window_s}
            for nid, pid, busy, down in node_ids(rec)}


def _links(scenario: Scenario, rec: SimRecord, window_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t in rec.links:
        entry = out.setdefault(t.id, {"utilization": 0.0, "gb": 0.0, "availability": 1 - t.down_s / window_s,
                                      "failures": t.failures, "directions": {}})
        u = t.busy_s / window_s
        entry["directions"][t.direction] = {"utilization": u, "gb": t.bytes / 1e9, "transfers": t.transfers}
        entry["utilization"] = max(entry["utilization"], u)  # the busier direction
        entry["gb"] += t.bytes / 1e9
        entry["sharing"] = scenario.links[t.link_index].sharing
    return out


def _cost(scenario: Scenario, rec: SimRecord, window_s: float) -> dict[str, Any]:
    hours = window_s / 3600
    by_site: dict[str, float] = defaultdict(float)
    by_hw: dict[str, float] = defaultdict(float)
    by_svc: dict[str, float] = defaultdict(float)
    for p in rec.pools:
        usd_h = p.line.count * p.line.tensor_parallel * scenario.hardware[p.line.hardware].cost_per_hour
        by_site[p.line.site] += usd_h
        by_hw[p.line.hardware] += usd_h
        by_svc[p.line.service] += usd_h
    replicas_h = sum(by_site.values())
    egress_usd = sum(t.bytes / 1e9 * scenario.links[t.link_index].cost_per_gb for t in rec.links)
    egress_h = egress_usd / hours
    return {
        "usd_per_hour": replicas_h + egress_h,
        "usd_total": (replicas_h + egress_h) * hours,
        "replicas_usd_per_hour": replicas_h,
        "egress_usd_per_hour": egress_h,
        "by_site_usd_per_hour": dict(by_site),
        "by_hardware_usd_per_hour": dict(by_hw),
        "by_service_usd_per_hour": dict(by_svc),
        "prices": {hw: {"usd_per_hour": spec.cost_per_hour, "source": spec.sources.get("cost_per_hour", "set in the scenario file")}
                   for hw, spec in scenario.hardware.items()},
    }


def _energy(scenario: Scenario, rec: SimRecord, window_s: float) -> tuple[float, dict[str, Any]]:
    """Busy seconds at `power_w`, up-and-idle seconds at `idle_power_w`, failed seconds at 0, per replica; in kWh."""
    by_site: dict[str, float] = defaultdict(float)
    by_hw: dict[str, float] = defaultdict(float)
    by_svc: dict[str, float] = defaultdict(float)
    for p in rec.pools:
        hw = scenario.hardware[p.line.hardware]
        joules = sum(b * hw.power_w + (window_s - b - d) * hw.idle_power_w
                     for b, d in zip(p.busy_s, p.down_s)) * p.line.tensor_parallel  # each replica's devices
        kwh = joules / 3.6e6
        by_site[p.line.site] += kwh
        by_hw[p.line.hardware] += kwh
        by_svc[p.line.service] += kwh
    by = {"site": dict(by_site), "hardware": dict(by_hw), "service": dict(by_svc)}
    return sum(by_site.values()), by


def _timeseries(scenario: Scenario, rec: SimRecord) -> dict[str, Any]:
    """Utilisation per pool (averaged over its replicas) and per link direction, per time bin."""
    w = rec.bin_s
    out: dict[str, Any] = {
        "bin_s": w,
        "pools": {p.id: [b / (w * p.line.count) for b in p.bins_busy_s] for p in rec.pools},
        "links": {t.direction: [b / w for b in t.bins_busy_s] for t in rec.links},
    }
    llm = [p for p in rec.pools if p.llm is not None]
    if llm:  # per LLM pool, per bin: running sequences and KV use per replica, output tokens per second
        out["llm_pools"] = {p.id: {
            "running": [b / (w * p.line.count) for b in p.llm.bins_running_s],
            "kv_cache_utilization": [b / (w * p.line.count * p.llm.kv_blocks) if p.llm.kv_blocks else None
                                     for b in p.llm.bins_kv_block_s],
            "output_tokens_per_s": [b / w for b in p.llm.bins_output_tokens],
        } for p in llm}
    return out


def _jobs(scenario: Scenario, rec: SimRecord) -> dict[str, Any]:
    """Per training job: its iterations inside the window, throughput, scaling, time, cost, energy.

    Scaling efficiency is against one device running the same micro-batch with nothing to combine
    (weak scaling): the modelled compute time over the mean iteration. Time to complete is the
    simulated end when the run reached it, else the run's end plus the iterations left at the mean
    iteration (`time_to_complete_basis` says which). Cost and energy count the job's devices (busy
    at `power_w` while computing, `idle_power_w` the rest of an iteration) and its parameter servers
    over the time to complete."""
    import numpy as np

    out: dict[str, Any] = {}
    for t in rec.jobs:
        job = scenario.jobs[t.name]
        hw = scenario.hardware[job.placement.hardware]
        d = np.asarray(t.durations_s)
        entry: dict[str, Any] = {"devices": t.devices, "nodes": t.nodes, "hardware": job.placement.hardware,
                                 "site": job.placement.site, "sites": [p.site for p in job.placements],
                                 "sync": job.sync.kind, "micro_batch": t.micro_batch,
                                 "iterations": len(d), "iterations_needed": t.iterations_needed,
                                 "gradient_mb": t.grad_bytes / 1e6, "buckets": t.buckets,
                                 "compute": t.compute_detail, "communication": t.sync_detail,
                                 "scaling": [{"devices": n, "iteration_ms": it * 1e3, "samples_per_s": sps,
                                              "efficiency": t.model_compute_s / it} for n, it, sps in t.scaling]}
        if not len(d):
            entry.update({"iteration_ms": {"mean": None, "p99": None}, "compute_ms": None, "communication_ms": None,
                          "exposed_communication_ms": None, "samples_per_s": None, "scaling_efficiency": None,
                          "time_to_complete_h": None, "time_to_complete_basis": "no iteration started inside the "
                          "measured window: lengthen the horizon", "usd_total": None, "energy_kwh": None,
                          "deadline_h": job.deadline_h, "deadline_met": None})
            out[t.name] = entry
            continue
        mean = float(d.mean())
        compute = float(np.mean(t.compute_s))
        if t.end_s is not None:
            ttc_s, basis = t.end_s, "simulated"
        else:
            left = t.iterations_needed - t.completed
            factor = 1.0
            for per_s, repair_s, _what in t.hazards:
                # first order: failures of each kind (devices, servers, links of the route) at their
                # rate, each costing its repair, the restart and half a checkpoint interval of
                # iterations run again; a link with a way round costs half an iteration on average
                if repair_s is None:
                    factor += per_s * mean / 2
                else:
                    factor += per_s * (repair_s + job.restart_s + job.checkpoint_every / 2 * mean)
            ttc_s = rec.end_s + left * mean * factor
            basis = (f"extrapolated: {t.completed} of {t.iterations_needed} iterations simulated, the other "
                     f"{left} at the mean iteration" + (f" x {factor:.4g} for the expected failures of "
                                                        f"{', '.join(w for _, _, w in t.hazards)} (first order: "
                                                        "repair, restart, half a checkpoint interval each; "
                                                        "half an iteration for a link with a way round)"
                                                        if t.hazards else ""))
        hours = ttc_s / 3600.0
        usd_h = hw.cost_per_hour * t.devices
        watts = t.devices * (hw.power_w * compute / mean + hw.idle_power_w * (1.0 - compute / mean))
        if job.sync.kind == "parameter-server":
            shw = scenario.hardware[job.sync.hardware or ""]
            usd_h += shw.cost_per_hour * (job.sync.servers or 1)
            watts += shw.power_w * (job.sync.servers or 1)
        entry.update({
            "iteration_ms": {"mean": mean * 1e3, "p99": float(np.quantile(d, 0.99, method="inverted_cdf")) * 1e3},
            "compute_ms": compute * 1e3,
            "communication_ms": float(np.mean(t.communication_s)) * 1e3,
            "exposed_communication_ms": float(np.mean(t.exposed_s)) * 1e3,
            "samples_per_s": job.global_batch / mean,
            "scaling_efficiency": t.model_compute_s / mean,
            "time_to_complete_h": hours, "time_to_complete_basis": basis,
            "usd_per_hour": usd_h, "usd_total": usd_h * hours, "energy_kwh": watts * hours / 1e3,
            "deadline_h": job.deadline_h,
            "deadline_met": None if job.deadline_h is None else hours <= job.deadline_h,
            "failures": t.failures, "lost_iterations": t.lost_iterations, "rerouted_iterations": t.rerouted,
            "availability": 1.0 - t.stopped_s / max(1e-12, min(rec.duration_s, t.end_s if t.end_s is not None
                                                               else rec.duration_s) - rec.warmup_s),
        })
        out[t.name] = entry
    return out


def _round(v: Any) -> Any:
    """Round floats to 6 significant digits: the model is not more precise, and diffs stay readable."""
    if isinstance(v, float):
        if v == 0.0 or not math.isfinite(v):
            return v
        return round(v, 5 - int(math.floor(math.log10(abs(v)))))
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_round(x) for x in v]
    return v

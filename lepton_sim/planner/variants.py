"""Which variants a service may use, and the batch profile of each on each hardware type."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

from lepton_sim.scenario.schema import Deterministic, Exponential, HardwareSpec, Lognormal, Scenario, Service, Variant
from lepton_sim.servicetime import BatchTimes, UnsupportedPrecision, batch_times, weight_bytes
from lepton_sim.planner.capacity import BatchProfile

PRECISION_RANK = {"fp32": 0, "bf16": 1, "fp16": 1, "fp8": 2, "int8": 2, "int4": 3}  # lower = less compressed


def allowed_variants(scenario: Scenario, service: Service) -> tuple[list[str], str]:
    """(variants within the service's list that meet its accuracy floor, why the rest do not)."""
    model = scenario.models[service.model]
    names = list(service.variants or model.variants)
    floor = service.min_accuracy
    if floor is None:
        return names, ""
    ok = [v for v in names if (model.variants[v].accuracy or -1.0) >= floor]
    known = {v: model.variants[v].accuracy for v in names}
    detail = ", ".join(f"{v} {a:g}" if a is not None else f"{v} (accuracy unknown)" for v, a in known.items())
    return ok, f"no allowed variant reaches min_accuracy {floor:g} ({detail})"


def compression_order(variant: Variant, accuracy_default: float = 0.0) -> tuple[int, int, int, float]:
    """Sort key, least compressed first: precision, then no sparsity, no distillation, higher accuracy."""
    # an LLM variant has no sparsity or distillation; weight-only quantisation keeps the math at high precision
    return (PRECISION_RANK[variant.precision], getattr(variant, "sparsity", None) is not None,
            getattr(variant, "layers", None) is not None,
            -(variant.accuracy if variant.accuracy is not None else accuracy_default))


@dataclass
class ProfileCache:
    """Memoised service-time model: batch times by (model, variant, hardware, max_batch), weights by (model, variant)."""

    times: dict[tuple[str, str, str, int], BatchTimes | None] = field(default_factory=dict)
    weights: dict[tuple[str, str], float] = field(default_factory=dict)


def profile(scenario: Scenario, service: Service, hw: HardwareSpec, variant: str, miss: float,
            cache: ProfileCache | None = None) -> BatchProfile | None:
    """Batch times of `variant` on `hw` for the queueing bound, or None when it does not run or fit there.

    `cache` memoises the service-time model by (model, variant, hardware, max_batch) across services.
    """
    cache = cache if cache is not None else ProfileCache()
    model = scenario.models[service.model]
    v = model.variants[variant]
    wkey = (service.model, variant)
    if wkey not in cache.weights:
        cache.weights[wkey] = weight_bytes(model, v)
    if cache.weights[wkey] > hw.memory_gb * 1e9:
        return None
    b = service.batching
    st = service.service_time
    if st is not None:  # the loader runs overrides on any hardware the weights fit
        t = _override_s(st, miss)
        return BatchProfile(t, t, b.max_batch, b.max_wait_ms / 1e3, "service_time override")
    key = (service.model, variant, hw.name, b.max_batch)
    if key not in cache.times:
        try:
            cache.times[key] = batch_times(model, v, hw, b.max_batch)
        except UnsupportedPrecision:
            cache.times[key] = None
    times = cache.times[key]
    if times is None:
        return None
    return BatchProfile(max(times.times_s), times.times_s[0], b.max_batch, b.max_wait_ms / 1e3, times.source,
                        times_s=tuple(times.times_s))


def _override_s(st: Deterministic | Exponential | Lognormal, miss: float) -> float:
    """A `service_time` override as one batch time: the value itself, or its (1 - miss)-quantile if random."""
    if isinstance(st, Deterministic):
        return st.ms / 1e3
    if isinstance(st, Exponential):
        return st.mean_ms / 1e3 * math.log(1.0 / miss)
    sigma = math.sqrt(math.log1p(st.cv**2))
    mu = math.log(st.mean_ms / 1e3) - sigma**2 / 2
    return math.exp(mu + sigma * NormalDist().inv_cdf(1.0 - miss))

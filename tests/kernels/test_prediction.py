"""The measured service-time model against a direct timing of the same layers in the same process.

Tolerance: each ratio predicted / directly timed must lie within [1/1.4, 1.4]. The prediction sums
medians taken by the quick profile; the direct timing is a separate run seconds later. On this
machine one run of a kernel differs from the next by 10-15% (FACTS.md; the profiles' own
inter-quartile ranges agree), so two independent runs can disagree by up to 1.15 / 0.85 = 1.35
before the model contributes any error; the remaining 5% covers interpolation between measured
grid points. A model error that matters (a missing layer, a wrong batch scaling, a unit slip) is
a factor of 2 or more and fails this test.
"""
from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from kernels.forward import compile_forward, init_params
from kernels.timing import FULL, time_call
from lepton_sim.catalogue import hardware_entry
from lepton_sim.metrics import build_metrics
from lepton_sim.profiles import Profile, measured_batch_times, this_machine_entry
from lepton_sim.scenario.load import parse_scenario
from lepton_sim.scenario.schema import ModelSpec, Variant
from lepton_sim.sim import Simulation

TOLERANCE = 1.4
# The scenario language's own example of an inline model; not among the whole models the profile times.
TINY: list[dict[str, Any]] = [{"op": "dense", "in": 64, "out": 256}, {"op": "relu"},
                              {"op": "dense", "in": 256, "out": 10}]
WIDER: list[dict[str, Any]] = [{"op": "dense", "in": 100, "out": 300}, {"op": "gelu"},
                               {"op": "dense", "in": 300, "out": 200}, {"op": "sigmoid"},
                               {"op": "dense", "in": 200, "out": 10}, {"op": "softmax"}]


def direct_seconds(layers: list[dict[str, Any]], precision: str, batch: int, threads: int) -> float:
    """Median seconds of a forward pass of `layers` over `batch` rows, timed here and now."""
    forward = compile_forward(layers, init_params(layers, np.random.default_rng(0)), precision)
    x = np.random.default_rng(1).standard_normal((batch, layers[0]["in"])).astype(np.float32)
    with threadpool_limits(limits=threads):
        return time_call(partial(forward, x), FULL).median_s


def local(profile: Profile) -> dict[str, Any]:
    return this_machine_entry(profile, hardware_entry("generic-server-cpu"))


@pytest.mark.parametrize("layers, precision", [(TINY, "fp32"), (WIDER, "fp32"), (TINY, "int8")])
def test_measured_model_predicts_a_direct_timing(quick_profile: Profile, blas_threads: int,
                                                 layers: list[dict[str, Any]], precision: str) -> None:
    from lepton_sim.scenario.schema import HardwareSpec

    model = ModelSpec.model_validate({"layers": layers, "input_bytes": 4, "output_bytes": 4})
    hw = HardwareSpec.model_validate(local(quick_profile)).model_copy(update={"name": "local"})
    batches = (1, 4, 16, 64) if precision == "fp32" else (1, 4, 16)
    predicted = measured_batch_times(quick_profile, model, Variant(precision=precision), hw, max(batches))
    assert predicted.source == "measured", predicted.detail
    assert "whole-model" not in predicted.detail  # built layer by layer, not looked up
    for b in batches:
        # another process taking a core stretches a direct timing (never shortens it): time again,
        # up to three times, and keep the least disturbed (fastest) median
        direct = direct_seconds(layers, precision, b, blas_threads)
        for _ in range(2):
            if predicted.times_s[b - 1] / direct >= 1 / TOLERANCE:
                break
            direct = min(direct, direct_seconds(layers, precision, b, blas_threads))
        ratio = predicted.times_s[b - 1] / direct
        assert 1 / TOLERANCE <= ratio <= TOLERANCE, f"batch {b}: predicted / direct = {ratio:.2f}"


def test_simulated_compute_time_matches_a_direct_timing(quick_profile: Profile, blas_threads: int) -> None:
    """At low load with no network, a request's latency is its batch-1 compute time."""
    scenario = parse_scenario({
        "name": "this-machine-check", "seed": 1, "horizon": {"duration_s": 20, "warmup_s": 1},
        "hardware": {"local": local(quick_profile)},
        "sites": {"here": {"kind": "edge", "capacity": {"local": 1}}},
        "models": {"tiny": {"layers": TINY, "input_bytes": 256, "output_bytes": 40}},
        "services": {"tiny": {"model": "tiny", "slo": {"latency_ms": 100},
                              "demand": [{"site": "here", "rate_rps": 5, "arrival": {"kind": "constant"}}]}},
        "deployment": {"replicas": [{"service": "tiny", "site": "here", "hardware": "local", "variant": "fp32",
                                     "count": 1}]},
    })
    sim = Simulation(scenario, batch_times_fn=partial(measured_batch_times, quick_profile))
    metrics = build_metrics(scenario, sim.run())
    tiny = metrics["services"]["tiny"]
    assert tiny["completed"] >= 90 and tiny["dropped"] == 0
    compute_s = sim.pools[0].times[0]
    assert tiny["latency_ms"]["mean"] / 1e3 == pytest.approx(compute_s, rel=1e-5)  # metrics keep 6 digits
    assert "measured" in str(metrics)  # the metrics say where the compute time came from
    ratio = compute_s / direct_seconds(TINY, "fp32", 1, blas_threads)
    assert 1 / TOLERANCE <= ratio <= TOLERANCE, f"simulated / direct = {ratio:.2f}"

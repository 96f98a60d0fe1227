"""Roofline service times: hand-computed cases, regimes, sparsity, errors and monotonicity."""
from __future__ import annotations

from types import SimpleNamespace as NS
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from lepton_sim.catalogue import hardware_entry, hardware_names, zoo_model
from lepton_sim.layers import Layer, model_summary
from lepton_sim.servicetime import KIND_DEFAULTS, UnsupportedPrecision, batch_times, weight_bytes

LAYERS = TypeAdapter(list[Layer])
TWO_FOUR = NS(pattern="2:4", ratio=0.5)


def model(layers: list[dict]) -> NS:
    return NS(layers=LAYERS.validate_python(layers), input_bytes=4096, output_bytes=4096)


def variant(precision: str, sparsity: Any = None, layers: list[dict] | None = None) -> NS:
    return NS(precision=precision, sparsity=sparsity, layers=LAYERS.validate_python(layers) if layers else None)


def hardware(**overrides: Any) -> NS:
    """A custom accelerator with round numbers, so the arithmetic can be done by hand."""
    fields = dict(name="test-npu", kind="accelerator", peak_tflops={"fp32": 10.0, "fp16": 100.0, "int8": 200.0},
                  memory_bandwidth_gbps=1000.0, sparse_2_4=False, compute_efficiency=0.5,
                  memory_efficiency=0.8, kernel_overhead_us=10.0)
    fields.update(overrides)
    return NS(**fields)


def catalogue_hardware(name: str) -> NS:
    entry = hardware_entry(name)
    del entry["sources"]
    return NS(name=name, compute_efficiency=None, memory_efficiency=None, kernel_overhead_us=None, **entry)


ONE_DENSE = [{"op": "dense", "in": 1024, "out": 1024, "bias": False}]


def test_one_layer_by_hand() -> None:
    # dense 1024 -> 1024 at fp16, no bias:
    #   math per request   = 2 * 1024 * 1024 FLOPs / (100e12 * 0.5)   = 4.194304e-8 s
    #   weights per batch  = 1024 * 1024 * 2 B                        = 2,097,152 B
    #   activations/request = (1024 in + 1024 out) * 2 B              = 4,096 B
    #   memory(b)          = (2,097,152 + 4,096 b) / (1000e9 * 0.8)
    #   the two meet at b = 2.62144e-6 / (4.194304e-8 - 5.12e-9) = 71.2
    times = batch_times(model(ONE_DENSE), variant("fp16"), hardware(), 128).times_s
    assert len(times) == 128
    assert times[0] == pytest.approx(10e-6 + (2_097_152 + 4_096) / 8e11, rel=1e-12)  # memory-bound
    assert times[63] == pytest.approx(10e-6 + (2_097_152 + 4_096 * 64) / 8e11, rel=1e-12)  # memory-bound
    assert times[127] == pytest.approx(10e-6 + 128 * 2 * 1024 * 1024 / 50e12, rel=1e-12)  # compute-bound


def test_regimes_respond_to_the_right_resource() -> None:
    base = batch_times(model(ONE_DENSE), variant("fp16"), hardware(), 128).times_s
    fast_math = batch_times(model(ONE_DENSE), variant("fp16"),
                            hardware(peak_tflops={"fp32": 10.0, "fp16": 400.0}), 128).times_s
    fast_memory = batch_times(model(ONE_DENSE), variant("fp16"), hardware(memory_bandwidth_gbps=4000.0), 128).times_s
    # Batch 1 is memory-bound: more math does nothing, more bandwidth helps.
    assert fast_math[0] == pytest.approx(base[0], rel=1e-12)
    assert fast_memory[0] < base[0]
    # Batch 128 is compute-bound: the reverse.
    assert fast_memory[127] == pytest.approx(base[127], rel=1e-12)
    # With 4x the math the 128-batch turns memory-bound: 1.34e-6 s of math < 3.28e-6 s of traffic.
    assert fast_math[127] == pytest.approx(10e-6 + (2_097_152 + 4_096 * 128) / 8e11, rel=1e-12)
    assert fast_math[127] < base[127]


def test_two_four_sparsity_speeds_math_only_on_sparse_hardware() -> None:
    m = model(ONE_DENSE)
    dense_t = batch_times(m, variant("int8"), hardware(), 512).times_s
    plain_hw = batch_times(m, variant("int8", TWO_FOUR), hardware(sparse_2_4=False), 512).times_s
    sparse_hw = batch_times(m, variant("int8", TWO_FOUR), hardware(sparse_2_4=True), 512).times_s
    # Compute-bound at 512 (int8 math 2*1024^2/(200e12*0.5) = 2.1e-8 s/request vs 2.6e-9 s of
    # activations): the math halves only where the tensor cores skip the zeros.
    assert plain_hw[511] == pytest.approx(dense_t[511], rel=1e-12)
    assert sparse_hw[511] - 10e-6 == pytest.approx((dense_t[511] - 10e-6) / 2, rel=1e-12)
    # Memory-bound at batch 1: the compressed weights (0.625 B each) help on any hardware.
    expected = 10e-6 + (1024 * 1024 * 0.625 + 2048) / 8e11
    assert plain_hw[0] == pytest.approx(expected, rel=1e-12)
    assert sparse_hw[0] == pytest.approx(expected, rel=1e-12)


def test_unstructured_sparsity_never_speeds_math() -> None:
    m = model(ONE_DENSE)
    dense_t = batch_times(m, variant("int8"), hardware(sparse_2_4=True), 512).times_s
    pruned = batch_times(m, variant("int8", NS(pattern="unstructured", ratio=0.8)), hardware(sparse_2_4=True), 512)
    assert pruned.times_s[511] == pytest.approx(dense_t[511], rel=1e-12)
    assert pruned.times_s[0] < dense_t[0]


def test_attention_matmuls_are_not_sped_up_by_weight_sparsity() -> None:
    m = model([{"op": "attention", "seq": 128, "heads": 4, "dim": 256}])
    slow = hardware(sparse_2_4=True, peak_tflops={"fp32": 1.0, "int8": 1.0})
    plain = batch_times(m, variant("int8"), slow, 64).times_s
    sparse = batch_times(m, variant("int8", TWO_FOUR), slow, 64).times_s
    assert sparse == plain
    # Compute-bound here: 4 * 128^2 * 256 matmul + 5 * 4 * 128^2 softmax FLOPs at 1e12 * 0.5.
    assert plain[0] == pytest.approx(10e-6 + (4 * 128 ** 2 * 256 + 5 * 4 * 128 ** 2) / 0.5e12, rel=1e-12)


def test_epilogue_ops_fuse_into_the_matmul() -> None:
    # relu after the dense adds its math at the vector (fp32) rate, 1024 FLOPs / (10e12 * 0.5) per
    # request, but no kernel launch and no activation traffic.
    alone = batch_times(model(ONE_DENSE), variant("fp16"), hardware(), 128).times_s
    fused = batch_times(model(ONE_DENSE + [{"op": "relu"}]), variant("fp16"), hardware(), 128).times_s
    assert fused[0] == pytest.approx(alone[0], rel=1e-12)
    assert fused[127] == pytest.approx(alone[127] + 128 * 1024 / 5e12, rel=1e-12)
    # A softmax is a reduction: its own kernel, with overhead and a read + write of 1024 fp16 values.
    split = batch_times(model(ONE_DENSE + [{"op": "softmax"}]), variant("fp16"), hardware(), 1).times_s
    assert split[0] == pytest.approx(alone[0] + 10e-6 + 2 * 1024 * 2 / 8e11, rel=1e-12)


def test_embedding_tables_are_gathered_not_streamed() -> None:
    small = model([{"op": "embedding", "vocab": 1000, "dim": 64, "seq": 16}])
    huge = model([{"op": "embedding", "vocab": 10_000_000, "dim": 64, "seq": 16}])
    assert batch_times(small, variant("fp16"), hardware(), 4).times_s == \
        batch_times(huge, variant("fp16"), hardware(), 4).times_s
    assert weight_bytes(huge, variant("fp16")) == 10_000_000 * 64 * 2


def test_unsupported_precision() -> None:
    m = model(ONE_DENSE)
    with pytest.raises(UnsupportedPrecision, match=r"nvidia-t4.*bf16"):
        batch_times(m, variant("bf16"), catalogue_hardware("nvidia-t4"), 4)
    with pytest.raises(UnsupportedPrecision, match=r"amd-alveo-u55c.*fp16"):
        batch_times(m, variant("fp16"), catalogue_hardware("amd-alveo-u55c"), 4)
    assert issubclass(UnsupportedPrecision, ValueError)


def test_entry_factors_override_kind_defaults() -> None:
    m = model(ONE_DENSE)
    half = batch_times(m, variant("fp16"), hardware(compute_efficiency=0.25), 512).times_s
    full = batch_times(m, variant("fp16"), hardware(compute_efficiency=0.5), 512).times_s
    assert half[511] - 10e-6 == pytest.approx(2 * (full[511] - 10e-6), rel=1e-12)
    defaults = batch_times(m, variant("fp16"), hardware(compute_efficiency=None, memory_efficiency=None,
                                                        kernel_overhead_us=None), 1)
    kind = KIND_DEFAULTS["accelerator"]
    assert defaults.times_s[0] == pytest.approx(
        kind.kernel_overhead_us * 1e-6 + (2_097_152 + 4_096) / (1e12 * kind.memory_efficiency), rel=1e-12)


def test_kind_defaults_are_documented() -> None:
    assert set(KIND_DEFAULTS) == {"gpu", "fpga", "cpu", "edge", "accelerator"}
    for kind in KIND_DEFAULTS.values():
        assert 0 < kind.compute_efficiency <= 1 and 0 < kind.memory_efficiency <= 1
        assert kind.kernel_overhead_us > 0 and kind.why.startswith("modelled")


def test_distilled_student_replaces_the_layers() -> None:
    teacher = model(ONE_DENSE + [{"op": "dense", "in": 1024, "out": 1024, "bias": False}])
    student = variant("fp16", layers=ONE_DENSE)
    assert batch_times(teacher, student, hardware(), 8).times_s == \
        batch_times(model(ONE_DENSE), variant("fp16"), hardware(), 8).times_s
    assert weight_bytes(teacher, student) == 1024 * 1024 * 2
    assert weight_bytes(teacher, variant("int8", TWO_FOUR)) == pytest.approx(2 * 1024 * 1024 * 0.625)


def test_record_says_what_it_is() -> None:
    result = batch_times(model(ONE_DENSE), variant("int8"), catalogue_hardware("nvidia-l4"), 2)
    assert result.source == "roofline"
    assert "nvidia-l4" in result.detail and "int8" in result.detail and "modelled" in result.detail  # no calibration here
    with pytest.raises(ValueError):
        batch_times(model(ONE_DENSE), variant("int8"), catalogue_hardware("nvidia-l4"), 0)


def check_monotone(times: tuple[float, ...]) -> None:
    assert all(t > 0 for t in times)
    assert all(a <= b for a, b in zip(times, times[1:]))
    throughput = [(i + 1) / t for i, t in enumerate(times)]
    assert all(a <= b * (1 + 1e-12) for a, b in zip(throughput, throughput[1:]))


def zoo_cases() -> list[tuple[str, str, str]]:
    cases = []
    for name in ("resnet50", "mobilenet-v2", "bert-base", "digits-mlp"):
        for vname in zoo_model(name)["variants"]:
            for hw in hardware_names():
                cases.append((name, vname, hw))
    return cases


@pytest.mark.parametrize("name, vname, hw", zoo_cases())
def test_zoo_times_on_catalogue_are_monotone(name: str, vname: str, hw: str) -> None:
    z = zoo_model(name, **({"seq_len": 32} if name == "bert-base" else {}))
    v = z["variants"][vname]
    var = variant(v["precision"], NS(**v["sparsity"]) if v.get("sparsity") else None, v.get("layers"))
    try:
        result = batch_times(model(z["layers"]), var, catalogue_hardware(hw), 16)
    except UnsupportedPrecision:
        assert v["precision"] not in hardware_entry(hw)["peak_tflops"]
        return
    check_monotone(result.times_s)


def test_faster_hardware_is_faster_at_scale() -> None:
    z = zoo_model("resnet50")
    m = model(z["layers"])
    h100 = batch_times(m, variant("int8"), catalogue_hardware("nvidia-h100-sxm"), 64).times_s
    t4 = batch_times(m, variant("int8"), catalogue_hardware("nvidia-t4"), 64).times_s
    nano = batch_times(m, variant("int8"), catalogue_hardware("nvidia-jetson-orin-nano"), 64).times_s
    assert h100[63] < t4[63] < nano[63]
    # The model's math alone bounds the batch time from below on any hardware.
    flops = model_summary(m.layers, "int8").tensor_flops
    assert t4[63] > 64 * flops / (130e12 * 0.45)


@settings(max_examples=60, deadline=None)
@given(
    widths=st.lists(st.integers(1, 4096), min_size=2, max_size=6),
    precision=st.sampled_from(["fp32", "fp16", "int8"]),
    peak=st.floats(0.01, 5000),
    bandwidth=st.floats(1, 10000),
    overhead=st.floats(0, 50),
    sparse=st.booleans(),
    max_batch=st.integers(1, 96),
)
def test_random_chains_are_monotone(widths: list[int], precision: str, peak: float, bandwidth: float,
                                    overhead: float, sparse: bool, max_batch: int) -> None:
    layers: list[dict] = []
    for a, b in zip(widths, widths[1:]):
        layers += [{"op": "dense", "in": a, "out": b}, {"op": "gelu"}]
    hw = hardware(peak_tflops={"fp32": peak / 8, precision: peak}, memory_bandwidth_gbps=bandwidth,
                  kernel_overhead_us=overhead, sparse_2_4=sparse)
    result = batch_times(model(layers), variant(precision, TWO_FOUR if sparse else None), hw, max_batch)
    assert len(result.times_s) == max_batch
    check_monotone(result.times_s)


def test_on_chip_memory_keeps_activations_off_dram_while_they_fit() -> None:
    # dense 1024 -> 1024 at fp16 (as in test_one_layer_by_hand), on a device holding 1 MB on chip:
    # activations move 4,096 B per request, so up to 244 requests' activations stay on chip and only
    # the excess (4,096 b - 1e6 bytes) reaches DRAM. Up to batch 62 the weights' 2.6 us of traffic
    # outlast the math (4.2e-8 s per request), so the kernel is memory-bound on weights alone.
    on_chip = batch_times(model(ONE_DENSE), variant("fp16"), hardware(on_chip_mb=1.0), 512).times_s
    plain = batch_times(model(ONE_DENSE), variant("fp16"), hardware(), 512).times_s
    assert on_chip[0] == pytest.approx(10e-6 + 2_097_152 / 8e11, rel=1e-12)  # weights only
    assert on_chip[31] == pytest.approx(10e-6 + 2_097_152 / 8e11, rel=1e-12)  # 32 x 4,096 B < 1 MB
    assert plain[31] == pytest.approx(10e-6 + (2_097_152 + 32 * 4_096) / 8e11, rel=1e-12)
    # Past the crossover the batch is compute-bound either way: the same time.
    assert on_chip[511] == pytest.approx(plain[511], rel=1e-12)


def test_weights_that_fit_on_chip_stay_there_between_batches() -> None:
    # dense 1024 -> 1024 at fp16: 2,097,152 B of weights, 4,096 B of activations per request. The
    # working set at batch b is the weights plus b x 4,096 B; a cache holds it all up to half its
    # capacity, none of it from twice it.
    m, v = model(ONE_DENSE), variant("fp16")
    roomy = batch_times(m, v, hardware(on_chip_mb=8.0), 512).times_s
    assert roomy[0] == pytest.approx(10e-6 + 4.194304e-8, rel=1e-12)  # no DRAM traffic: the math alone
    # A capacity equal to the batch-1 working set keeps half the weights (log-linear from 1/2 to 2x),
    # and the half on chip leaves room for the activations: DRAM reads the other half only.
    exact = (2_097_152 + 4_096) / 1e6
    half = batch_times(m, v, hardware(on_chip_mb=exact), 1).times_s
    assert half[0] == pytest.approx(10e-6 + 1_048_576 / 8e11, rel=1e-12)
    # Weights of four times the capacity are read from DRAM in full, as without on-chip memory.
    small = batch_times(m, v, hardware(on_chip_mb=exact / 4), 1).times_s
    assert small[0] == pytest.approx(10e-6 + 2_097_152 / 8e11, rel=1e-12)
    check_monotone(roomy)


def test_a_batch_that_spills_is_not_charged_more_per_request_than_a_smaller_one() -> None:
    # A memory-bound chain on a small cache: batch 2 spills what batch 1 kept on chip. Per request,
    # the larger batch takes the best smaller batch's time (it runs as such sub-batches).
    layers = [{"op": "dense", "in": 64, "out": 4096}, {"op": "relu"}, {"op": "dense", "in": 4096, "out": 64}]
    hw = hardware(on_chip_mb=0.04, peak_tflops={"fp32": 1000.0, "fp16": 1000.0})
    times = batch_times(model(layers), variant("fp16"), hw, 64).times_s
    check_monotone(times)
    per_request = [t / (i + 1) for i, t in enumerate(times)]
    assert min(per_request) == pytest.approx(per_request[-1], rel=1e-12)


def test_compute_efficiency_per_precision_and_the_rule_for_the_others() -> None:
    m = model(ONE_DENSE)
    hw = hardware(compute_efficiency={"int8": 0.25, "fp16": 0.5})
    int8 = batch_times(m, variant("int8"), hw, 512)
    fp16 = batch_times(m, variant("fp16"), hw, 512)
    assert int8.times_s[511] - 10e-6 == pytest.approx(512 * 2 * 1024 * 1024 / (200e12 * 0.25), rel=1e-12)
    assert fp16.times_s[511] - 10e-6 == pytest.approx(512 * 2 * 1024 * 1024 / (100e12 * 0.5), rel=1e-12)
    # fp32 has no figure of its own: it takes the lowest one given (int8's), and says so.
    fp32 = batch_times(m, variant("fp32"), hw, 512)
    assert fp32.times_s[511] - 10e-6 == pytest.approx(512 * 2 * 1024 * 1024 / (10e12 * 0.25), rel=1e-12)
    assert "lowest figure given (int8; none for fp32)" in fp32.detail


def test_calibrated_catalogue_entries_say_what_they_rest_on() -> None:
    from lepton_sim.calibration import calibrated_hardware, datasheet_hardware

    m = model(zoo_model("resnet50")["layers"])
    calibrated = batch_times(m, variant("int8"), calibrated_hardware("nvidia-l4"), 8)
    assert calibrated.basis.startswith("calibrated to 2 int8 points") and calibrated.basis in calibrated.detail
    bare = batch_times(m, variant("int8"), datasheet_hardware("nvidia-l4"), 8)
    assert bare.basis.startswith("not calibrated") and "modelled" in bare.basis
    uncalibrated = batch_times(m, variant("int8"), calibrated_hardware("nvidia-jetson-orin-nano"), 8)
    assert uncalibrated.basis.startswith("not calibrated")

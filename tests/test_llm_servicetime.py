"""LLM service times: parameter and KV-cache counts against FACTS.md, closed forms of the roofline
regimes, tensor parallelism, weight-only math, fit checks, the zoo entries, and published
TensorRT-LLM first-token latencies the model was not fitted to."""
from __future__ import annotations

import math
import pickle
from types import SimpleNamespace as NS
from typing import Any

import pytest

from lepton_sim.calibration.hardware import calibrated_hardware
from lepton_sim.catalogue import hardware_entry, zoo_model
from lepton_sim.scenario.schema import LLMModelSpec, LLMVariant
from lepton_sim.servicetime.llm import (
    ALPHA_NVLINK_S, ALPHA_PCIE_S, UnsupportedPrecision, attention_terms, fit_problem, kv_bytes_per_token,
    llm_params, llm_replica_model,
)

LLMS = ["llama-2-7b", "llama-3-8b", "llama-2-70b", "mistral-7b", "qwen2-7b"]
# FACTS.md "LLM facts" (from the Hugging Face configs).
FACTS_PARAMS = {"llama-2-7b": 6.74e9, "llama-3-8b": 8.03e9, "llama-2-70b": 68.98e9, "mistral-7b": 7.24e9,
                "qwen2-7b": 7.62e9}
FACTS_KV_FP16 = {"llama-2-7b": 524_288, "llama-3-8b": 131_072, "llama-2-70b": 327_680}


def zoo(name: str) -> LLMModelSpec:
    return LLMModelSpec.model_validate(zoo_model(name)).model_copy(update={"name": name})


def npu(**overrides: Any) -> NS:
    """A made-up accelerator with round figures and no per-kernel overhead or on-chip memory, so the
    regimes can be written down by hand."""
    fields = dict(name="test-npu", kind="accelerator", peak_tflops={"fp32": 50.0, "fp16": 100.0, "fp8": 200.0,
                                                                       "int8": 200.0},
                  memory_bandwidth_gbps=1000.0, memory_gb=200.0, compute_efficiency=0.5, memory_efficiency=0.8,
                  kernel_overhead_us=0.0, on_chip_mb=None, interconnect_gbps=400.0, sparse_2_4=False, measured=None)
    fields.update(overrides)
    return NS(**fields)


@pytest.mark.parametrize("name", LLMS)
def test_parameter_counts_match_facts(name: str) -> None:
    assert llm_params(zoo(name))["total"] == pytest.approx(FACTS_PARAMS[name], rel=0.01)


def test_parameter_count_of_llama_2_7b_by_hand() -> None:
    p = llm_params(zoo("llama-2-7b"))
    # 32 x (4 x 4096^2 attention + 3 x 4096 x 11008 FFN + 2 x 4096 norms) + 2 x 32000 x 4096 + 4096.
    assert p["total"] == 32 * (4 * 4096 ** 2 + 3 * 4096 * 11008 + 2 * 4096) + 2 * 32000 * 4096 + 4096 == 6_738_415_616
    assert p["embedding"] == p["lm_head"] == 32000 * 4096


@pytest.mark.parametrize("name", sorted(FACTS_KV_FP16))
def test_kv_bytes_per_token_match_facts(name: str) -> None:
    m = zoo(name)
    assert kv_bytes_per_token(m, m.variants["fp16"]) == FACTS_KV_FP16[name]
    assert kv_bytes_per_token(m, m.variants["fp8"]) == FACTS_KV_FP16[name] / 2  # fp8 variants keep an fp8 cache
    assert kv_bytes_per_token(m, LLMVariant(precision="fp8", kv_precision="fp16")) == FACTS_KV_FP16[name]


@pytest.mark.parametrize("name", LLMS)
def test_zoo_llm_entries(name: str) -> None:
    entry = zoo_model(name)
    assert entry["kind"] == "llm" and entry["source"]
    assert set(entry["variants"]) == {"fp16", "bf16", "fp8", "int8", "int4-awq"}
    v = entry["variants"]
    assert (v["fp8"]["precision"], v["int8"]["precision"], v["int4-awq"]["precision"]) == ("fp8", "int8", "int4")
    assert v["int4-awq"]["weight_only"] is True and not v["int8"].get("weight_only", False)
    for variant in v.values():
        assert variant["accuracy_source"]
        if variant["accuracy"] is None:
            assert "give your own" in variant["accuracy_source"]
        else:
            assert 0 < variant["accuracy"] <= 1
    assert v["fp16"]["accuracy"] is not None
    assert v["bf16"]["accuracy_source"].startswith("modelled")
    zoo(name)  # the schema accepts it


def test_llama_2_70b_quantised_accuracy_is_the_published_mmlu() -> None:
    v = zoo_model("llama-2-70b")["variants"]
    # TensorRT-LLM's quantisation blog: FP16 69.1, FP8 68.5, INT8-SQ 67.2, INT4-AWQ 68.4.
    assert [v[k]["accuracy"] for k in ("fp16", "fp8", "int8", "int4-awq")] == [0.691, 0.685, 0.672, 0.684]


# --- closed forms ---------------------------------------------------------------------------


def test_decode_at_one_token_reads_the_weights() -> None:
    m = zoo("llama-2-70b")
    hw = npu()
    r = llm_replica_model(m, m.variants["fp16"], hw, 1, 64)
    streamed = r.weight_bytes_per_device / (1000e9 * 0.8)  # the embedding table is gathered, not streamed
    t = r.seconds(1, 1, 1.0, 1.0)
    assert t == pytest.approx(streamed, rel=0.01)
    assert t > streamed * (1 - 0.005)  # and its math at one token is far below its memory time


def test_prefill_of_many_tokens_is_compute_bound() -> None:
    m = zoo("llama-2-70b")
    r = llm_replica_model(m, m.variants["fp16"], npu(), 1, 8192)
    p = llm_params(m)
    flops = 2 * 8192 * (p["layers"] - 80 * p["norms_per_layer"])  # 2 x tokens x GEMM weights
    t = r.seconds(8192, 0, 0.0, 0.0)
    assert t == pytest.approx(flops / (100e12 * 0.5), rel=0.02)
    # Exactly: the GEMMs at their math time, plus the memory-bound kernels' bytes (fp16 activations):
    # 161 fused add+norms (4 x hidden per token), 80 SwiGLU activations (3 x ffn), the embedding's
    # rows (hidden, read and written) and attention's Q, K, V in, output and new K, V out.
    bytes_ = 8192 * 2 * ((2 * 80 + 1) * 4 * 8192 + 80 * 3 * 28672 + 2 * 8192
                         + 80 * ((8192 + 2 * 1024) + 8192 + 2 * 1024))
    assert t == pytest.approx(flops / (100e12 * 0.5) + bytes_ / (1000e9 * 0.8), rel=1e-9)
    # Causal attention over the prompt: 4 x head_dim x heads FLOPs per pair and layer, compute-bound
    # here, so it replaces the attention kernel's memory time (its activations, counted above).
    pairs = 8192 * 8193 / 2
    extra = r.seconds(8192, 0, pairs, 8192) - t
    attention_bytes = 80 * 8192 * 2 * ((8192 + 2 * 1024) + 8192 + 2 * 1024)
    assert extra == pytest.approx(80 * 4 * 128 * 64 * pairs / (100e12 * 0.5) - attention_bytes / (1000e9 * 0.8),
                                  rel=1e-9)


@pytest.mark.parametrize("hw_name", ["nvidia-h100-sxm", "nvidia-l4"])
def test_time_never_decreases_in_any_argument(hw_name: str) -> None:
    m = zoo("llama-3-8b")
    r = llm_replica_model(m, m.variants["fp8"], calibrated_hardware(hw_name), 1, 4096, 256)
    last = 0.0
    for t in range(1, 4097):
        s = r.seconds(t, min(t, 256), 0.0, 0.0)
        assert s >= last
        last = s
    for t in (1, 64, 2048):
        times = [r.seconds(t, 1, pairs, kv) for pairs in (0.0, 1e3, 1e6, 1e8) for kv in (0.0, 1e3, 1e5, 1e7)]
        grid = [times[i * 4:(i + 1) * 4] for i in range(4)]
        assert all(row == sorted(row) for row in grid)  # non-decreasing in kv_tokens
        assert all([grid[i][j] for i in range(4)] == sorted(grid[i][j] for i in range(4)) for j in range(4))
    assert r.seconds(64, 1, 0.0, 0.0) < r.seconds(64, 64, 0.0, 0.0)  # the LM head runs per sampled sequence


def test_tensor_parallel_halves_gemm_weights_and_adds_its_all_reduces() -> None:
    m = zoo("llama-2-70b")
    one = llm_replica_model(m, m.variants["fp16"], npu(), 1, 64)
    two = llm_replica_model(m, m.variants["fp16"], npu(), 2, 64)
    gemms = ("qkv", "o_proj", "gate_up", "down")
    a, b = one.breakdown(1, 1, 1.0, 1.0), two.breakdown(1, 1, 1.0, 1.0)
    assert sum(b[k] for k in gemms) == pytest.approx(sum(a[k] for k in gemms) / 2, rel=1e-3)
    assert a["allreduce"] == 0.0
    assert sum(b.values()) == pytest.approx(two.seconds(1, 1, 1.0, 1.0), rel=1e-12)  # the parts add up
    # Ring all-reduce of T x hidden x 2 bytes, twice per layer and once after the embedding.
    for tokens in (1, 64):
        expected = (2 * 80 + 1) * (2 * (2 - 1) / 2 * tokens * 8192 * 2 / 400e9 + 2 * (2 - 1) * ALPHA_NVLINK_S)
        assert two.breakdown(tokens, 1, 1.0, 1.0)["allreduce"] == pytest.approx(expected, rel=1e-12)
    assert two.weight_bytes_per_device == pytest.approx(one.weight_bytes_per_device / 2, rel=1e-4)
    # A PCIe-class link (64 GB/s or less per direction) takes the modelled PCIe latency per step.
    pcie = llm_replica_model(m, m.variants["fp16"], npu(interconnect_gbps=32.0), 4, 64)
    expected = (2 * 80 + 1) * (2 * 3 / 4 * 8192 * 2 / 32e9 + 2 * 3 * ALPHA_PCIE_S)
    assert pcie.breakdown(1, 1, 1.0, 1.0)["allreduce"] == pytest.approx(expected, rel=1e-12)


def test_weight_only_int4_reads_a_quarter_and_computes_in_fp16() -> None:
    m = zoo("llama-2-7b")
    hw = npu()
    fp16 = llm_replica_model(m, m.variants["fp16"], hw, 1, 8192)
    awq = llm_replica_model(m, m.variants["int4-awq"], hw, 1, 8192)
    gemm_params = llm_params(m)["layers"] - 32 * llm_params(m)["norms_per_layer"]
    assert fp16.weight_bytes - awq.weight_bytes == pytest.approx(gemm_params * (2.0 - 0.5), rel=1e-12)
    gemms = ("qkv", "o_proj", "gate_up", "down")
    low = [sum(r.breakdown(1, 1, 1.0, 1.0)[k] for k in gemms) for r in (fp16, awq)]
    assert low[1] == pytest.approx(low[0] / 4, rel=0.01)  # memory-bound decode: a quarter of the bytes
    high = [sum(r.breakdown(8192, 1, 0.0, 0.0)[k] for k in gemms) for r in (fp16, awq)]
    assert high[1] == pytest.approx(high[0], rel=1e-12)  # compute-bound: the same fp16 math
    with pytest.raises(UnsupportedPrecision, match="test-npu.*fp16.*it has: fp32, int8"):
        llm_replica_model(m, m.variants["int4-awq"], npu(peak_tflops={"fp32": 50.0, "int8": 200.0}), 1, 16)


def test_w8a8_runs_at_its_own_peak_and_a_missing_peak_is_refused() -> None:
    m = zoo("llama-2-7b")
    fp16 = llm_replica_model(m, m.variants["fp16"], npu(), 1, 8192)
    int8 = llm_replica_model(m, m.variants["int8"], npu(), 1, 8192)
    gemms = ("qkv", "o_proj", "gate_up", "down")
    t16, t8 = (sum(r.breakdown(8192, 1, 0.0, 0.0)[k] for k in gemms) for r in (fp16, int8))
    assert t8 == pytest.approx(t16 / 2, rel=1e-12)  # 200 vs 100 peak, compute-bound
    with pytest.raises(UnsupportedPrecision, match="nvidia-a100-80gb.*fp8.*it has: fp32, fp16, bf16, int8, int4"):
        llm_replica_model(m, m.variants["fp8"], calibrated_hardware("nvidia-a100-80gb"), 1, 16)


def test_kv_capacity() -> None:
    m = zoo("llama-2-7b")
    r = llm_replica_model(m, m.variants["fp16"], npu(), 2, 4096, 256)
    assert pickle.loads(pickle.dumps(r)).seconds(64, 8, 1e5, 1e4) == r.seconds(64, 8, 1e5, 1e4)
    # Activation reserve per device: 4096 tokens x (2 x 4096 + 3 x 11008 / 2) x 2 B, plus fp32 logits of
    # 256 sequences over 32000 tokens.
    assert r.activation_reserve_bytes == 4096 * (2 * 4096 + 3 * 11008 // 2) * 2 + 256 * 32000 * 4
    free = (80e9 * 0.9 - r.weight_bytes_per_device - r.activation_reserve_bytes) * 2
    assert r.kv_capacity_tokens(80, 0.9) == math.floor(free / 524_288)
    assert r.kv_capacity_tokens(1, 0.5) == 0  # never negative


def test_attention_terms() -> None:
    assert attention_terms(0, 128) == (128 * 129 / 2, 128)
    assert attention_terms(1000, 1) == (1001, 1001)
    for context, new, window in ((0, 10, 4), (3, 5, 4), (10, 1, 4), (2, 2, 8), (100, 7, 16)):
        pairs = sum(min(p + 1, window) for p in range(context, context + new))
        keys = {k for p in range(context, context + new) for k in range(max(0, p - window + 1), p + 1)}
        assert attention_terms(context, new, window) == (pairs, len(keys))


# --- fit -------------------------------------------------------------------------------------


def test_llama_2_70b_fp16_needs_two_h100s() -> None:
    m = zoo("llama-2-70b")
    hw = calibrated_hardware("nvidia-h100-sxm")
    why = fit_problem(m, m.variants["fp16"], hw, 1, 0.9)
    assert why is not None and "137.95 GB per device" in why and "72.00 GB usable" in why and "80 GB" in why
    assert fit_problem(m, m.variants["fp16"], hw, 2, 0.9) is None
    assert fit_problem(m, m.variants["fp8"], hw, 1, 0.9) is None  # 69 GB of fp8 weights fit one


def test_fit_refuses_tensor_parallel_it_cannot_run() -> None:
    m = zoo("llama-2-7b")
    orin = calibrated_hardware("nvidia-jetson-agx-orin")
    why = fit_problem(m, m.variants["fp16"], orin, 2, 0.9)
    assert why is not None and "interconnect_gbps" in why and "nvidia-jetson-agx-orin" in why
    with pytest.raises(ValueError, match="interconnect_gbps"):
        llm_replica_model(m, m.variants["fp16"], orin, 2, 16)
    why = fit_problem(zoo("qwen2-7b"), zoo("qwen2-7b").variants["fp16"], calibrated_hardware("nvidia-h100-sxm"), 7,
                      0.9)
    assert why is not None and "does not divide" in why and "kv_heads (4)" in why
    assert "fp8" in (fit_problem(m, m.variants["fp8"], calibrated_hardware("nvidia-t4"), 1, 0.9) or "")
    # 13.48 GB of fp16 weights fit the 21.6 GB usable of an L4; with the activations of 65,536-token
    # iterations (5.4 GB, and 8.4 GB of fp32 logits for as many sequences) no KV cache is left.
    l4 = calibrated_hardware("nvidia-l4")
    assert fit_problem(m, m.variants["fp16"], l4, 1, 0.9, max_tokens=8192, max_seqs=256) is None
    why = fit_problem(m, m.variants["fp16"], l4, 1, 0.9, max_tokens=65536)
    assert why is not None and "leave no KV cache" in why and "13.48 GB" in why


def test_catalogue_interconnects() -> None:
    # Datasheet totals of both directions, halved: NVLink 900 and 600 GB/s; PCIe Gen4 x16 64, Gen3 x16 32.
    assert {n: hardware_entry(n).get("interconnect_gbps") for n in
            ("nvidia-h100-sxm", "nvidia-a100-80gb", "nvidia-l4", "nvidia-t4", "nvidia-jetson-agx-orin")} == {
        "nvidia-h100-sxm": 450, "nvidia-a100-80gb": 300, "nvidia-l4": 32, "nvidia-t4": 16,
        "nvidia-jetson-agx-orin": None}
    assert hardware_entry("nvidia-h100-sxm")["peak_tflops"]["fp8"] == pytest.approx(3958 / 2, rel=0.01)
    assert hardware_entry("nvidia-l4")["peak_tflops"]["fp8"] == pytest.approx(485 / 2, rel=0.01)
    assert "fp8" not in hardware_entry("nvidia-a100-80gb")["peak_tflops"]


# --- published results the model was not fitted to -------------------------------------------

# TensorRT-LLM v0.6.1 docs/source/performance.md, Llama-2-7B first-token latency at batch 1 (ms).
TRT_LLM_FIRST_TOKEN = [("nvidia-h100-sxm", "fp8", 128, 7.0), ("nvidia-h100-sxm", "fp8", 2048, 36.0),
                       ("nvidia-a100-80gb", "fp16", 128, 16.0), ("nvidia-a100-80gb", "fp16", 2048, 133.0)]


@pytest.mark.parametrize("hw_name, variant, prompt, published_ms", TRT_LLM_FIRST_TOKEN)
def test_first_token_latency_against_tensorrt_llm(hw_name: str, variant: str, prompt: int,
                                                  published_ms: float) -> None:
    m = zoo("llama-2-7b")
    r = llm_replica_model(m, m.variants[variant], calibrated_hardware(hw_name), 1, 2048)
    ms = r.seconds(prompt, 1, prompt * (prompt + 1) / 2, prompt) * 1e3
    # A generous band: the calibration saw ResNet-50 only (benchmarks/llm_fidelity.py prints the ratios).
    assert 0.4 < ms / published_ms < 2.5, ms


# --- a measured profile ----------------------------------------------------------------------


def test_measured_profile_times_the_gemms() -> None:
    from lepton_sim.catalogue import THIS_MACHINE
    from lepton_sim.profiles import load_profile_cached, reference_profile_path

    entry = hardware_entry(THIS_MACHINE)
    entry.pop("sources")
    hw = NS(name=THIS_MACHINE, compute_efficiency=None, memory_efficiency=None, kernel_overhead_us=None,
            interconnect_gbps=None, measured=load_profile_cached(reference_profile_path()), **entry)
    tiny = LLMModelSpec(kind="llm", layers=2, hidden=256, heads=8, kv_heads=2, ffn=512, vocab=1000,
                        variants={"fp32": LLMVariant(precision="fp32")})
    r = llm_replica_model(tiny, tiny.variants["fp32"], hw, 1, 256)
    assert r.source == "measured" and "measured kernel profile" in r.detail
    times = [r.seconds(t, 1, t * (t + 1) / 2, t) for t in range(1, 257)]
    assert all(b >= a for a, b in zip(times, times[1:])) and all(math.isfinite(t) and t > 0 for t in times)
    # A shape the profile's grid does not reach keeps the roofline and says so.
    big = tiny.model_copy(update={"hidden": 8192, "heads": 64, "kv_heads": 8, "ffn": 8192})
    r = llm_replica_model(big, big.variants["fp32"], hw, 1, 16)
    assert r.source in ("roofline", "measured+roofline") and "roofline" in r.detail



def test_decode_seconds_are_the_iterations_seconds_one_by_one() -> None:
    # the simulator times planned runs of decode-only iterations with decode_seconds: each must be
    # exactly seconds(n, n, kv, kv) of its step
    from lepton_sim.calibration import datasheet_hardware
    from lepton_sim.catalogue import zoo_model
    from lepton_sim.scenario.schema import LLMModelSpec
    from lepton_sim.servicetime.llm import llm_replica_model

    spec = LLMModelSpec.model_validate(zoo_model("llama-3-8b"))
    m = llm_replica_model(spec, spec.variants["fp16"], datasheet_hardware("nvidia-h100-sxm"), 1, 512, max_seqs=64)
    for n, first in ((1, 130), (7, 7 * 900), (64, 64 * 3000)):  # memory- and compute-bound attention alike
        got = m.decode_seconds(n, first, 40)
        assert got == [m.seconds(n, n, float(first + n * j), float(first + n * j)) for j in range(40)]

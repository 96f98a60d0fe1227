"""Roofline service-time model: per kernel, the slower of math at an efficient peak and memory traffic.

For a batch of b requests, each kernel takes

    t(b) = overhead + max(flops * b / (peak * eff_c), (weight_bytes + act_bytes * b) / (bw * eff_m))

and the batch takes the sum over kernels. Weights are read once per batch, activations once per
request. A kernel is one layer, except that batchnorm, activations and residual adds directly
after a conv or dense layer are fused into it (their math counts; their launch and activation
round trip do not), as inference runtimes do.

Tensor ops (dense, conv, attention matmuls) run at the precision's peak; other ops (activations,
norms, pooling, add) at the device's vector peak, taken as its fp32 figure (a GPU's CUDA-core
rate) or, on a device without fp32 (an INT8 FPGA overlay), the precision's peak. 2:4 sparsity
halves the math of weight-bearing tensor ops only on hardware with ``sparse_2_4``; attention's
activation-by-activation matmuls have no pruned operand and stay dense.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from lepton_sim.layers import (
    ACT_BYTES, WEIGHT_BYTES, bytes_per_weight, layer_costs, model_summary, prunable,
)


class UnsupportedPrecision(ValueError):
    """The hardware has no peak rate for the variant's precision."""


@dataclass(frozen=True)
class BatchTimes:
    """Seconds to run one batch, per batch size."""

    times_s: tuple[float, ...]  # times_s[b-1] = seconds to run one batch of b requests, b = 1..max_batch
    source: str  # "roofline" (modelled) or "measured"
    detail: str  # how the times were obtained, for reports


@dataclass(frozen=True)
class KindDefaults:
    """Default efficiency factors of a hardware kind; a hardware entry's own values override them."""

    compute_efficiency: float  # achieved fraction of the datasheet peak on real layer shapes
    memory_efficiency: float  # achieved fraction of the datasheet memory bandwidth
    kernel_overhead_us: float  # fixed cost per kernel (launch / dispatch), microseconds
    why: str


# All modelled: round figures for inference kernels as run by vendor runtimes (TensorRT, oneDNN,
# Vitis AI), to be replaced by measured profiles where a machine was measured.
KIND_DEFAULTS: dict[str, KindDefaults] = {
    "gpu": KindDefaults(0.45, 0.70, 5.0, (
        "modelled: tuned GEMM/conv kernels keep roughly half the tensor-core peak busy across a "
        "whole CNN or encoder (small late layers, epilogues, tails); streaming kernels reach "
        "70-90% of datasheet HBM/GDDR bandwidth; a CUDA kernel launch plus its ramp costs a few us")),
    "edge": KindDefaults(0.35, 0.60, 10.0, (
        "modelled: Jetson-class SoCs run below peak clocks under their power caps and share LPDDR "
        "between CPU and GPU; launches are issued from slower Arm cores")),
    "fpga": KindDefaults(0.50, 0.60, 3.0, (
        "modelled: a DPU-style systolic overlay fills about half its DSP array on typical layer "
        "shapes; HBM/DDR reach about 60% of theoretical with many AXI masters (UG1393); per-layer "
        "instruction dispatch inside the overlay costs a few us")),
    "cpu": KindDefaults(0.30, 0.60, 2.0, (
        "modelled: oneDNN-class GEMM approaches 60-80% of the SIMD peak only on large matrices and "
        "much less on small convolutions at batch 1; two-socket STREAM reaches about 60-75% of "
        "theoretical DDR bandwidth; framework op dispatch costs 1-3 us")),
    "accelerator": KindDefaults(0.50, 0.70, 5.0, (
        "modelled: a middle-of-the-road default for an unnamed NPU; give the entry's own factors")),
}


# Inference runtimes (TensorRT, oneDNN, OpenVINO, Vitis AI) fold batchnorm into the preceding
# conv/dense and run activations and residual adds in its epilogue: no extra kernel, no extra
# activation round trip (an add still reads its residual operand).
EPILOGUE_HEADS = frozenset({"conv2d", "dense"})
EPILOGUE_OPS = frozenset({"batchnorm", "relu", "gelu", "sigmoid", "tanh", "add"})


def _layers_of(model: Any, variant: Any) -> Sequence[Any]:
    """The variant's distilled student if it has one, else the model's layers."""
    student: Sequence[Any] | None = getattr(variant, "layers", None)
    return student if student is not None else model.layers


def weight_bytes(model: Any, variant: Any) -> float:
    """Bytes of stored weights of the variant (precision and sparse compression applied)."""
    return model_summary(_layers_of(model, variant), variant.precision, variant.sparsity).weight_bytes


def _factor(hardware: Any, name: str, default: float) -> float:
    value = getattr(hardware, name, None)
    value = default if value is None else float(value)
    if value < 0 or (name != "kernel_overhead_us" and not 0 < value <= 1):
        raise ValueError(f"hardware {hardware.name!r}: {name} = {value} is out of range")
    return value


def _rate(precision: str, tflops: float) -> str:
    unit = "TOPS" if precision.startswith("int") else "TFLOPS"
    return f"{tflops:g} {unit}"


def batch_times(model: Any, variant: Any, hardware: Any, max_batch: int) -> BatchTimes:
    """Roofline seconds per batch of 1..max_batch requests of ``variant`` on ``hardware``."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    precision = variant.precision
    if precision not in WEIGHT_BYTES:
        raise ValueError(f"unknown precision {precision!r}")
    peaks = {k: float(v) for k, v in hardware.peak_tflops.items()}
    if peaks.get(precision, 0.0) <= 0:
        raise UnsupportedPrecision(
            f"hardware {hardware.name!r} has no {precision} peak (it has: {', '.join(peaks) or 'none'})")
    if hardware.kind not in KIND_DEFAULTS:
        raise ValueError(f"hardware {hardware.name!r}: unknown kind {hardware.kind!r}")
    defaults = KIND_DEFAULTS[hardware.kind]
    eff_c = _factor(hardware, "compute_efficiency", defaults.compute_efficiency)
    eff_m = _factor(hardware, "memory_efficiency", defaults.memory_efficiency)
    overhead_s = _factor(hardware, "kernel_overhead_us", defaults.kernel_overhead_us) * 1e-6

    layers = _layers_of(model, variant)
    costs = layer_costs(layers)
    if not costs:
        raise ValueError("model has no layers")
    sparsity = variant.sparsity
    sparse_math = bool(sparsity is not None and sparsity.pattern == "2:4" and hardware.sparse_2_4)
    tensor_rate = peaks[precision] * 1e12 * eff_c
    vector_rate = peaks.get("fp32", peaks[precision]) * 1e12 * eff_c
    bw = float(hardware.memory_bandwidth_gbps) * 1e9 * eff_m
    act_bytes = ACT_BYTES[precision]

    # Per kernel: seconds of math per request, weight bytes per batch, activation bytes per request.
    math_s: list[float] = []
    w_bytes: list[float] = []
    a_bytes: list[float] = []
    fusable = False  # the last kernel is a conv/dense whose epilogue can absorb what follows
    last_branch = False
    for layer, c in zip(layers, costs):
        math = c.flops * (0.5 if sparse_math and prunable(c) else 1.0) / (
            tensor_rate if c.tensor_op else vector_rate)
        if fusable and c.op in EPILOGUE_OPS and layer.branch == last_branch:
            math_s[-1] += math
            if c.op == "add":
                a_bytes[-1] += c.act_elems / 3 * act_bytes  # the residual operand (add moves 3 x size)
        else:
            math_s.append(math)
            # An embedding table is gathered row by row (counted in act_elems), never streamed whole.
            w_bytes.append(0.0 if c.op == "embedding" else
                           c.weight_params * bytes_per_weight(precision, sparsity, prune=prunable(c)))
            a_bytes.append(c.act_elems * act_bytes)
            fusable = c.op in EPILOGUE_HEADS
        last_branch = layer.branch

    b = np.arange(1, max_batch + 1, dtype=float)
    per_kernel = np.maximum(np.outer(math_s, b), (np.array(w_bytes)[:, None] + np.outer(a_bytes, b)) / bw)
    times = per_kernel.sum(axis=0) + overhead_s * len(math_s)

    detail = (f"roofline: {hardware.name} {precision} peak {_rate(precision, peaks[precision])} x eff "
              f"{eff_c:g}, {float(hardware.memory_bandwidth_gbps):g} GB/s x eff {eff_m:g}, "
              f"{overhead_s * 1e6:g} us/kernel x {len(math_s)} kernels"
              f"{', 2:4 sparse math' if sparse_math else ''} (modelled)")
    return BatchTimes(times_s=tuple(float(t) for t in times), source="roofline", detail=detail)

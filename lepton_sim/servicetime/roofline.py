"""Roofline service-time model: per kernel, the slower of math at an efficient peak and memory traffic.

For a batch of b requests, each kernel takes

    t(b) = overhead + max(flops * b / (peak * eff_c), (weight_bytes + act_bytes * b) / (bw * eff_m))

and the batch takes the sum over kernels. Weights are read once per batch, activations once per
request. A kernel is one layer, except that batchnorm, activations and residual adds directly
after a conv or dense layer are fused into it (their math counts; their launch and activation
round trip do not), as inference runtimes do.

On-chip memory: a device with ``on_chip_mb`` (a GPU's L2, an FPGA's block RAM, a datasheet
figure) keeps data on chip while it fits. The weights, read once per batch pass after pass, stay
there between batches while the model's working set (all its weights plus the largest kernel's
activations) fits; ``evicted(b)`` is the fraction that does not (0 up to half the capacity, 1 from
twice it, `evicted_fraction`). Of a kernel's ``act_bytes * b`` bytes of activations read and
written, only the part beyond the room the resident weights leave goes to DRAM:

    dram_bytes(b) = evicted(b) * weight_bytes + max(0, act_bytes * b - room(b))
    room(b)       = max(0, on_chip_bytes - (1 - evicted(b)) * total_weight_bytes)

Without it, every activation byte crosses DRAM: then even at 100% of its datasheet compute and
bandwidth an L4 (48 MB of L2) would run ResNet-50 int8 at 9,889/s at most (any batch to 2,048),
against the 12,882/s MLPerf measured. Without the resident weights, ResNet-50 int8 (25.6 MB of
weights) at batch 1 streams its weights from DRAM on an L4 as BERT-large (334 MB) must, and a fit
to both regimes at once pins the wrong memory efficiency: BERT-large at batch 1, held out, came
out at 0.81 of its published latency, 0.96 with them. A batch that spills is never charged more
per request than the best smaller batch (`Kernels.seconds`).

The efficiency figures (``compute_efficiency`` per precision or one for all, ``memory_efficiency``,
``kernel_overhead_us``) are the hardware type's own (fitted by ``lepton-sim calibrate`` to
published or measured throughput, see `lepton_sim.calibration`) or, where it has none, its kind's
modelled defaults below. A precision without its own fitted figure takes the lowest figure fitted
for the others (the conservative choice: a precision is not assumed to run closer to its peak
than the measured ones do).

Tensor ops (dense, conv, attention matmuls) run at the precision's peak; other ops (activations,
norms, pooling, add) at the device's vector peak, taken as its fp32 figure (a GPU's CUDA-core
rate) or, on a device without fp32 (an INT8 FPGA overlay), the precision's peak. 2:4 sparsity
halves the math of weight-bearing tensor ops only on hardware with ``sparse_2_4``; attention's
activation-by-activation matmuls have no pruned operand and stay dense.
"""
from __future__ import annotations

import math
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
    # What the hardware type's figures rest on: datasheet only, calibrated to N points with this
    # error, or measured here (one line, for reports).
    basis: str = ""
    # Where measured: how much longer a batch runs after its replica idled, as (gaps_s, factors) with
    # factors[b-1][i] the time after an idle gap of gaps_s[i] over times_s[b-1] (1 back to back).
    after_idle: tuple[tuple[float, ...], tuple[tuple[float, ...], ...]] | None = None
    # Measured times to draw from instead of `times_s`: samples_s[b-1] holds seconds that batches of
    # b took for real (`lepton-sim validate`'s simulation as served); a batch draws one of them, from
    # idle_samples_s[b-1] instead when its replica sat idle before it (and that list has any).
    # `after_idle` does not apply to drawn times: the samples were measured with it. With
    # `samples_at_s` / `idle_samples_at_s` (the same shape: when each sample was taken, increasing
    # within a list, on the simulation's clock) a batch draws from the block of LOCAL_SAMPLES
    # samples of its list taken around its own start, so that a slow spell of the host (seconds
    # long, on a shared machine) is slow in the simulation too (`lepton_sim.sim.pools.DrawnTimes`).
    samples_s: tuple[tuple[float, ...], ...] | None = None
    idle_samples_s: tuple[tuple[float, ...], ...] | None = None
    samples_at_s: tuple[tuple[float, ...], ...] | None = None
    idle_samples_at_s: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self) -> None:
        for name in ("samples_s", "idle_samples_s"):
            rows = getattr(self, name)
            if rows is not None and (len(rows) != len(self.times_s)
                                     or (name == "samples_s" and not all(rows))
                                     or any(x <= 0 for row in rows for x in row)):
                raise ValueError(f"BatchTimes.{name} must hold one list of positive seconds per batch size "
                                 f"1..{len(self.times_s)}" + (", none empty" if name == "samples_s" else ""))
            at = getattr(self, name.replace("samples_s", "samples_at_s"))
            if at is None and rows is not None and self.samples_at_s is not None:
                raise ValueError("BatchTimes.idle_samples_at_s must be given with samples_at_s and idle_samples_s")
            if at is not None and (rows is None or [len(r) for r in at] != [len(r) for r in rows]
                                   or any(b < a for r in at for a, b in zip(r, r[1:]))):
                raise ValueError(f"BatchTimes.{name.replace('samples_s', 'samples_at_s')} must give, increasing, "
                                 f"the time of each of {name}")

    def idle_factor(self, b: int, gap_s: float) -> float:
        """times_s[b-1] is multiplied by this after an idle gap (`idle_factor_at`)."""
        if self.after_idle is None:
            return 1.0
        gaps, factors = self.after_idle
        return idle_factor_at(b, gap_s, gaps, factors)


LOCAL_SAMPLES = 200  # drawn batch times: the samples of one block (`BatchTimes.samples_at_s`)


def idle_factor_at(b: int, gap_s: float, gaps: Any, factors: Any) -> float:
    """The after-idle factor of batch size `b` after an idle gap of `gap_s`: 1 at no gap, linear up
    to the first measured gap, log-linear between measured gaps, the last measured factor beyond.
    Plain arithmetic on indexable `gaps` and rows of `factors`, so that `lepton_sim.sim.fast`
    compiles this same function with Numba."""
    if gap_s <= 0.0:
        return 1.0
    f = factors[b - 1]
    if gap_s <= gaps[0]:
        return 1.0 + (f[0] - 1.0) * gap_s / gaps[0]
    for i in range(1, len(gaps)):
        if gap_s <= gaps[i]:
            w = math.log(gap_s / gaps[i - 1]) / math.log(gaps[i] / gaps[i - 1])
            return f[i - 1] + (f[i] - f[i - 1]) * w
    return f[len(gaps) - 1]


@dataclass(frozen=True)
class KindDefaults:
    """Default efficiency factors of a hardware kind; a hardware entry's own values override them."""

    compute_efficiency: float  # achieved fraction of the datasheet peak on real layer shapes
    memory_efficiency: float  # achieved fraction of the datasheet memory bandwidth
    kernel_overhead_us: float  # fixed cost per kernel (launch / dispatch), microseconds
    why: str


# All modelled: round figures for inference kernels as run by vendor runtimes (TensorRT, oneDNN,
# Vitis AI). A hardware type's own figures (fitted by `lepton-sim calibrate`) replace them, and
# a measured kernel profile replaces the roofline altogether. They are also the fit's prior.
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


# A working set looped over once per pass stays in a cache up to about half its capacity and is
# gone from twice it, log-linear between: caches do not evict strictly least recently used (which
# would keep all of a set that fits and none of one that does not), and others share them.
RESIDENT_UP_TO, EVICTED_FROM = 0.5, 2.0


def evicted_fraction(footprint_bytes: Any, capacity_bytes: float | None) -> Any:
    """The fraction of a working set of ``footprint_bytes``, reused pass after pass, that a cache of
    ``capacity_bytes`` no longer holds on the next pass: 0 (all of it stays) to 1 (none does).

    Elementwise over an array of footprints; an unknown or zero capacity gives 0 (see the callers).
    """
    fp = np.asarray(footprint_bytes, dtype=float)
    if capacity_bytes:
        over = np.maximum(fp / (RESIDENT_UP_TO * float(capacity_bytes)), 1.0)
        f = np.minimum(np.log(over) / np.log(EVICTED_FROM / RESIDENT_UP_TO), 1.0)
    else:
        f = np.zeros_like(fp)
    return float(f) if f.ndim == 0 else f


def _layers_of(model: Any, variant: Any) -> Sequence[Any]:
    """The variant's distilled student if it has one, else the model's layers."""
    student: Sequence[Any] | None = getattr(variant, "layers", None)
    return student if student is not None else model.layers


def weight_bytes(model: Any, variant: Any) -> float:
    """Bytes of stored weights of the variant (precision and sparse compression applied)."""
    return model_summary(_layers_of(model, variant), variant.precision, variant.sparsity).weight_bytes


def activation_elems(model: Any, variant: Any) -> float:
    """Activation elements each layer of the variant reads and writes per sample, summed."""
    return float(sum(c.act_elems for c in layer_costs(_layers_of(model, variant))))


def param_count(model: Any, variant: Any) -> int:
    """Weights of the variant (its distilled student's where it has one), counted one by one."""
    return model_summary(_layers_of(model, variant), variant.precision, variant.sparsity).params


def _factor(hardware: Any, name: str, default: float) -> float:
    value = getattr(hardware, name, None)
    value = default if value is None else float(value)
    if value < 0 or (name != "kernel_overhead_us" and not 0 < value <= 1):
        raise ValueError(f"hardware {hardware.name!r}: {name} = {value} is out of range")
    return value


@dataclass(frozen=True)
class Efficiency:
    """The efficiency figures that apply to one precision on one hardware type, and where each came from."""

    compute: float  # fraction of the precision's datasheet peak achieved by tensor (and vector) math
    memory: float  # fraction of the datasheet DRAM bandwidth achieved
    overhead_s: float  # fixed seconds per kernel
    on_chip_bytes: float  # activations that stay on chip per kernel (0: none)
    compute_how: str  # "fitted", "the lowest fitted figure (no int4 point)", "kind default (modelled)", ...


def efficiency(hardware: Any, precision: str) -> Efficiency:
    """The compute/memory efficiency, per-kernel overhead and on-chip capacity of ``hardware`` at ``precision``."""
    if hardware.kind not in KIND_DEFAULTS:
        raise ValueError(f"hardware {hardware.name!r}: unknown kind {hardware.kind!r}")
    defaults = KIND_DEFAULTS[hardware.kind]
    given = getattr(hardware, "compute_efficiency", None)
    if isinstance(given, dict):
        if not given:
            raise ValueError(f"hardware {hardware.name!r}: compute_efficiency is an empty mapping")
        for p, v in given.items():
            if not 0 < float(v) <= 1:
                raise ValueError(f"hardware {hardware.name!r}: compute_efficiency.{p} = {v} is out of range")
        if precision in given:
            eff_c, how = float(given[precision]), "its own figure"
        else:
            low = min(given, key=lambda p: float(given[p]))
            eff_c, how = float(given[low]), f"the lowest figure given ({low}; none for {precision})"
    elif given is not None:
        eff_c, how = _factor(hardware, "compute_efficiency", defaults.compute_efficiency), "its own figure"
    else:
        eff_c, how = defaults.compute_efficiency, f"the {hardware.kind} default (modelled)"
    on_chip = getattr(hardware, "on_chip_mb", None)
    if on_chip is not None and float(on_chip) < 0:
        raise ValueError(f"hardware {hardware.name!r}: on_chip_mb = {on_chip} is out of range")
    return Efficiency(
        compute=eff_c,
        memory=_factor(hardware, "memory_efficiency", defaults.memory_efficiency),
        overhead_s=_factor(hardware, "kernel_overhead_us", defaults.kernel_overhead_us) * 1e-6,
        on_chip_bytes=float(on_chip or 0.0) * 1e6,
        compute_how=how,
    )


def _rate(precision: str, tflops: float) -> str:
    unit = "TOPS" if precision.startswith("int") else "TFLOPS"
    return f"{tflops:g} {unit}"


@dataclass(frozen=True)
class Kernels:
    """Per-kernel costs of a model variant on a hardware type, before any efficiency figure applies."""

    math_s: np.ndarray  # seconds of math per request at 100% of the datasheet peaks
    weight_bytes: np.ndarray  # bytes of weights read per batch
    act_bytes: np.ndarray  # bytes of activations read and written per request
    bandwidth: float  # datasheet DRAM bytes per second
    precision: str
    peak_tflops: float  # the precision's datasheet peak
    sparse_math: bool  # 2:4 sparsity halves the weight-bearing math here

    def seconds(self, eff: Efficiency, max_batch: int) -> np.ndarray:
        """Seconds per batch of 1..max_batch requests with efficiency figures ``eff``.

        A batch is never slower per request than a smaller one: where on-chip memory makes a
        small batch cheaper per request than a large one that spills to DRAM, the large batch
        takes the best smaller batch's time per request (a runtime runs it as such sub-batches,
        or picks its kernels per batch size as TensorRT's optimisation profiles do). Without
        on-chip memory the raw roofline already has this property and is unchanged.
        """
        b = np.arange(1, max_batch + 1, dtype=float)
        act = np.outer(self.act_bytes, b)
        weights = np.outer(self.weight_bytes, np.ones_like(b))
        if eff.on_chip_bytes > 0:
            total = float(self.weight_bytes.sum())
            evicted = evicted_fraction(total + float(self.act_bytes.max()) * b, eff.on_chip_bytes)
            room = np.maximum(eff.on_chip_bytes - (1.0 - evicted) * total, 0.0)
            weights = weights * evicted
            act = np.maximum(act - room, 0.0)
        math = np.outer(self.math_s, b) / eff.compute
        memory = (weights + act) / (self.bandwidth * eff.memory)
        raw = np.maximum(math, memory).sum(axis=0) + eff.overhead_s * len(self.math_s)
        per = raw / b
        best = np.minimum.accumulate(per)
        # raw where it is itself the best so far (bit-identical to the plain roofline), and times kept
        # non-decreasing against the last bit of rounding in b * best.
        return np.asarray(np.maximum.accumulate(np.where(per <= best, raw, b * best)))


def kernels(model: Any, variant: Any, hardware: Any) -> Kernels:
    """The fused kernels of ``variant`` on ``hardware`` with their math, weight and activation costs."""
    precision = variant.precision
    if precision not in WEIGHT_BYTES:
        raise ValueError(f"unknown precision {precision!r}")
    peaks = {k: float(v) for k, v in hardware.peak_tflops.items()}
    if peaks.get(precision, 0.0) <= 0:
        raise UnsupportedPrecision(
            f"hardware {hardware.name!r} has no {precision} peak (it has: {', '.join(peaks) or 'none'})")
    layers = _layers_of(model, variant)
    costs = layer_costs(layers)
    if not costs:
        raise ValueError("model has no layers")
    sparsity = variant.sparsity
    sparse_math = bool(sparsity is not None and sparsity.pattern == "2:4" and hardware.sparse_2_4)
    tensor_rate = peaks[precision] * 1e12
    vector_rate = peaks.get("fp32", peaks[precision]) * 1e12
    act_size = ACT_BYTES[precision]

    # Per kernel: seconds of math per request, weight bytes per batch, activation bytes per request.
    math_s: list[float] = []
    w_bytes: list[float] = []
    a_bytes: list[float] = []
    fusable = False  # the last kernel is a conv/dense whose epilogue can absorb what follows
    last_branch = False
    for layer, c in zip(layers, costs):
        math = c.flops * (0.5 if sparse_math and prunable(c) else 1.0) / (
            tensor_rate if c.tensor_op else vector_rate)
        if fusable and c.op in EPILOGUE_OPS and layer.branch == last_branch and layer.reads is None:
            math_s[-1] += math
            if c.op == "add":
                a_bytes[-1] += c.act_elems / 3 * act_size  # the residual operand (add moves 3 x size)
        else:
            math_s.append(math)
            # An embedding table is gathered row by row (counted in act_elems), never streamed whole.
            w_bytes.append(0.0 if c.op == "embedding" else
                           c.weight_params * bytes_per_weight(precision, sparsity, prune=prunable(c)))
            a_bytes.append(c.act_elems * act_size)
            fusable = c.op in EPILOGUE_HEADS
        last_branch = layer.branch
    return Kernels(np.array(math_s), np.array(w_bytes), np.array(a_bytes),
                   float(hardware.memory_bandwidth_gbps) * 1e9, precision, peaks[precision], sparse_math)


def basis(hardware: Any) -> str:
    """What the hardware type's efficiency figures rest on, in one line (its ``sources`` say it)."""
    sources = getattr(hardware, "sources", None) or {}
    said = str(sources.get("calibration") or "")
    if said and (getattr(hardware, "calibration", None) or said.startswith("not calibrated")):
        return said
    if any(getattr(hardware, k, None) is not None for k in ("compute_efficiency", "memory_efficiency",
                                                               "kernel_overhead_us")):
        return "efficiency figures set for this hardware type (not calibrated here)"
    return (f"not calibrated: datasheet peaks with the modelled {hardware.kind} defaults "
            f"(lepton_sim/servicetime/roofline.py KIND_DEFAULTS)")


def batch_times(model: Any, variant: Any, hardware: Any, max_batch: int) -> BatchTimes:
    """Roofline seconds per batch of 1..max_batch requests of ``variant`` on ``hardware``."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    k = kernels(model, variant, hardware)
    eff = efficiency(hardware, variant.precision)
    times = k.seconds(eff, max_batch)
    precision = variant.precision
    on_chip = f", {eff.on_chip_bytes / 1e6:g} MB on chip" if eff.on_chip_bytes else ""
    detail = (f"roofline: {hardware.name} {precision} peak {_rate(precision, k.peak_tflops)} x eff "
              f"{eff.compute:.4g} ({eff.compute_how}), {float(hardware.memory_bandwidth_gbps):g} GB/s x eff "
              f"{eff.memory:.4g}{on_chip}, {eff.overhead_s * 1e6:.4g} us/kernel x {len(k.math_s)} kernels"
              f"{', 2:4 sparse math' if k.sparse_math else ''}; {basis(hardware)}")
    return BatchTimes(times_s=tuple(float(t) for t in times), source="roofline", detail=detail,
                      basis=basis(hardware))

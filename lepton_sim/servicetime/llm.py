"""LLM service-time model: seconds per iteration of a continuous-batching replica of a decoder-only transformer.

A replica is ``tp`` devices of one node running tensor parallelism (Megatron-style: QKV and the
FFN's up projections split by columns, the attention output and FFN down projections by rows, the
embedding and LM head by vocabulary rows). One iteration processes ``tokens`` new tokens of all
running sequences (prefill chunks plus one per decoding sequence) and samples ``samples`` of them.
On one device it takes

    t = embedding(T) + allreduce(T)
      + layers x [ qkv(T) + o_proj(T) + ffn(T) + 2 norm(T) + act(T) + attention + 2 allreduce(T) ]
      + norm(T) + lm_head(S) + gather(S)

with T = tokens and S = samples. Every kernel is a roofline kernel of `lepton_sim.servicetime.roofline`:

    kernel = overhead + max(flops / (peak * eff_c), dram_bytes / (bandwidth * eff_m))

- Dense GEMMs (1/tp of each matrix per device): flops 2 K N T, bytes K N x weight bytes (read once
  per iteration, whatever T) plus (K + N) T activations. Grouped-query attention shrinks K and V's
  N to kv_heads x head_dim. SwiGLU runs gate and up as one GEMM (2 x ffn columns) and down; GeLU up
  and down. QKV bias (Qwen2) and norm weights are read at 16 bits.
- Attention is its own kernel per layer: math 4 x head_dim x heads/tp FLOPs per causal query-key
  pair (QK^T and PV, 2 each), ``attn_pairs`` pairs; bytes ``kv_tokens`` x 2 x kv_heads/tp x
  head_dim x KV bytes (each sequence's cached K and V read once, FlashAttention/paged-attention
  style; a sliding window caps what is read, see `attention_terms`), plus reading Q, K, V,
  writing its output and the new tokens' K and V into the cache.
- Norms (a fused residual add + RMSNorm, 4 x hidden elements per token: the branch and the
  residual in, the new residual and the normalised state out) and the gated activation (3 x
  ffn/tp per token for SwiGLU, 2 for GeLU) are memory-bound kernels; the embedding gathers T rows.
- Tensor parallelism adds two all-reduces per layer (after o_proj and down) and one after the
  vocabulary-parallel embedding, each of T x hidden x 2 bytes (16-bit, fp32 for fp32 models), as a
  ring: 2 (tp-1)/tp x S / B + 2 (tp-1) x alpha (NCCL's alpha-beta model, nccl-tests
  doc/PERFORMANCE.md), B = the hardware's ``interconnect_gbps`` per direction at its datasheet
  figure, alpha 1 us per step on NVLink (FACTS.md, "Training facts"); over PCIe alpha is modelled at
  5 us (the top of the 1-5 us that figure gives for InfiniBand, an off-board link through NICs or
  the root complex, as PCIe peer transfers go), taken for links of 64 GB/s per direction or less
  (PCIe 5.0 x16, the fastest PCIe in service, is 64 GB/s per direction; NVLink 3 is 300). The LM
  head's logits are gathered to one device ((tp-1)/tp x S x vocab x 2 bytes + (tp-1) alpha).
  Collectives do not overlap compute (vLLM and TensorRT-LLM run them in line by default).
- The LM head runs only for the S sequences that sample, at 16 bits (fp32 for fp32 models).

Precision (modelled after how runtimes deploy each recipe): weights of the decoder's GEMMs are
stored at the variant's precision (layers.WEIGHT_BYTES; int4 group scales are not counted, +3.9%
for AWQ's fp16 scale per 128 weights); the embedding, LM head, norms and biases stay at 16 bits
(AWQ, SmoothQuant and TensorRT-LLM's FP8 recipe leave them unquantised). W8A8 (int8, fp8) runs its
GEMMs at that precision's peak; weight-only variants (AWQ W4A16) dequantise to fp16 and run at the
fp16 peak with fp16 activations. Attention runs at fp8 for an fp8 variant with an fp8 KV cache
(Hopper's FP8 attention) and at 16 bits otherwise; activations between kernels are ACT_BYTES of
the math precision. The KV cache holds 2 x layers x kv_heads x head_dim bytes-per-element per
token at ``kv_precision`` (default fp8 for fp8, fp32 for fp32, else fp16).

What is datasheet and what is modelled: peaks, bandwidth, on-chip memory and interconnect are the
hardware type's datasheet figures (`lepton_sim/catalogue/hardware.yaml`). The efficiency figures
(``eff_c`` per precision, ``eff_m``, the per-kernel overhead) come from `roofline.efficiency`: the
hardware type's own, fitted by ``lepton-sim calibrate`` to published results (MLPerf ResNet-50 for
the catalogue GPUs), else its kind's modelled defaults. That is where calibration enters: an LLM
iteration uses the same figures as every other model on that hardware. On-chip memory keeps
activations on chip as `roofline` does (weights stay resident only when the whole model fits, which
no catalogue LLM does); KV cache reads always go to DRAM. Not modelled: sampling, the host's
scheduling between iterations, CUDA graphs, tile and wave quantisation of small GEMMs beyond the
per-kernel overhead, and FlashAttention re-reading K and V per query block on long prompts.

Where the hardware carries a measured kernel profile (``hardware.measured``, e.g. `this-machine`),
the dense GEMMs are timed from the profile's GEMM table at M = tokens rows
(`lepton_sim.profiles.measured.predicted_seconds` on one dense layer of the GEMM's shape, evaluated
at the profile's row counts and powers of two, log-log interpolated between them as the profile's
grid itself is); shapes it cannot time keep the roofline, and attention, norms, the LM head and
collectives always do. ``source`` then says "measured" or "measured+roofline".

`LLMReplicaModel.seconds` is O(1): per-token costs are tabled over tokens 1..max_tokens and
samples 0..max_seqs at construction; attention is three multiply-adds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lepton_sim.layers import ACT_BYTES, WEIGHT_BYTES
from lepton_sim.servicetime.roofline import UnsupportedPrecision, basis, efficiency, evicted_fraction

__all__ = ["LLMReplicaModel", "UnsupportedPrecision", "attention_terms", "fit_problem", "kv_bytes_per_token",
           "llm_params", "llm_replica_model"]

# NCCL's per-step latency (alpha) on NVLink: about 1 us (nccl-tests doc/PERFORMANCE.md, FACTS.md
# "Training facts"). Over PCIe: modelled, 5 us (see the module docstring).
ALPHA_NVLINK_S = 1e-6
ALPHA_PCIE_S = 5e-6
# Links at or below this many GB/s per direction are taken as PCIe (PCIe 5.0 x16: 64 GB/s per direction).
PCIE_MAX_GBPS = 64.0


def _dims(model: Any) -> dict[str, int]:
    heads = int(model.heads)
    kv_heads = getattr(model, "kv_heads", None)
    head_dim = getattr(model, "head_dim", None)
    return {
        "layers": int(model.layers), "hidden": int(model.hidden), "heads": heads,
        "kv_heads": heads if kv_heads is None else int(kv_heads),
        "head_dim": int(model.hidden) // heads if head_dim is None else int(head_dim),
        "ffn": int(model.ffn), "vocab": int(model.vocab),
        "ffn_mats": 2 if getattr(model, "ffn_kind", "swiglu") == "gelu" else 3,
    }


def llm_params(model: Any) -> dict[str, int]:
    """Parameter counts of a decoder-only LLM: ``total``, ``embedding``, ``per_layer`` (with its parts
    ``attention_per_layer``, ``ffn_per_layer``, ``norms_per_layer``, ``bias_per_layer``), ``layers``
    (all decoder blocks), ``final_norm`` and ``lm_head`` (0 with tied embeddings)."""
    d = _dims(model)
    h, kvh, hd, hidden = d["heads"], d["kv_heads"], d["head_dim"], d["hidden"]
    attention = hidden * (h + 2 * kvh) * hd + h * hd * hidden
    bias = (h + 2 * kvh) * hd if getattr(model, "qkv_bias", False) else 0
    ffn = d["ffn_mats"] * hidden * d["ffn"]
    norms = 2 * hidden
    per_layer = attention + bias + ffn + norms
    embedding = d["vocab"] * hidden
    lm_head = 0 if getattr(model, "tied_embeddings", False) else d["vocab"] * hidden
    layers = d["layers"] * per_layer
    return {"total": embedding + layers + hidden + lm_head, "embedding": embedding, "per_layer": per_layer,
            "attention_per_layer": attention, "ffn_per_layer": ffn, "norms_per_layer": norms,
            "bias_per_layer": bias, "layers": layers, "final_norm": hidden, "lm_head": lm_head}


def _high(precision: str) -> str:
    """The 16-bit (or fp32) precision the unquantised parts of a variant run at."""
    return precision if precision in ("fp32", "bf16") else "fp16"


def _kv_precision(variant: Any) -> str:
    kv = getattr(variant, "kv_precision", None)
    if kv is not None:
        return str(kv)
    return {"fp8": "fp8", "fp32": "fp32"}.get(variant.precision, "fp16")


def kv_bytes_per_token(model: Any, variant: Any) -> float:
    """KV cache bytes per token of the whole replica: 2 (K and V) x layers x kv_heads x head_dim x bytes."""
    d = _dims(model)
    return 2.0 * d["layers"] * d["kv_heads"] * d["head_dim"] * WEIGHT_BYTES[_kv_precision(variant)]


def attention_terms(context: int, new: int, window: int | None = None) -> tuple[float, int]:
    """(attn_pairs, kv_tokens) of one sequence with ``context`` tokens cached and ``new`` tokens this
    iteration: each new token at position p attends to the min(p + 1, window) keys before and at it,
    and the keys read are those any of them attends to. Sum these over sequences for `seconds`."""
    if context < 0 or new < 0:
        raise ValueError(f"context and new must be non-negative, got {context}, {new}")
    end = context + new
    if window is None or end <= window:
        return new * (context + (new + 1) / 2.0), end
    # Positions q = context+1 .. end attend to min(q, window) keys.
    below = max(0, min(end, window) - context)  # positions with q <= window
    first = context + 1
    pairs = below * (first + first + below - 1) / 2.0 + (new - below) * window
    return pairs, min(end, new + window - 1)


def _interconnect(hardware: Any) -> float | None:
    v = getattr(hardware, "interconnect_gbps", None)
    return None if v is None else float(v)


def _structure_problem(model: Any, hardware: Any, tp: int) -> str | None:
    d = _dims(model)
    if tp < 1:
        return f"tensor_parallel must be at least 1, got {tp}"
    if tp > 1 and _interconnect(hardware) is None:
        return (f"hardware {hardware.name!r} has no interconnect_gbps: tensor_parallel {tp} needs a link "
                f"between the devices of one node for its all-reduces")
    for what in ("heads", "kv_heads", "ffn"):
        if d[what] % tp:
            return f"tensor_parallel {tp} does not divide the model's {what} ({d[what]})"
    return None


def _peak(hardware: Any, precision: str, why: str) -> float:
    peaks = {k: float(v) for k, v in hardware.peak_tflops.items()}
    if peaks.get(precision, 0.0) <= 0:
        raise UnsupportedPrecision(f"hardware {hardware.name!r} has no {precision} peak, which {why} needs "
                                   f"(it has: {', '.join(peaks) or 'none'})")
    return peaks[precision] * 1e12


def _weights(model: Any, variant: Any, tp: int) -> tuple[float, float]:
    """(stored weight bytes of the whole model, of one device) for ``variant``."""
    p = llm_params(model)
    d = _dims(model)
    wb, hb = WEIGHT_BYTES[variant.precision], WEIGHT_BYTES[_high(variant.precision)]
    gemm = p["attention_per_layer"] + p["ffn_per_layer"]
    split = d["layers"] * (gemm * wb + p["bias_per_layer"] * hb) + (p["embedding"] + p["lm_head"]) * hb
    replicated = (d["layers"] * p["norms_per_layer"] + p["final_norm"]) * hb
    return split + replicated, split / tp + replicated


def fit_problem(model: Any, variant: Any, hardware: Any, tp: int, gpu_memory_utilization: float,
                max_tokens: int | None = None, max_seqs: int | None = None) -> str | None:
    """Why ``variant`` cannot be served by ``tp`` devices of ``hardware``, or None if it can.

    Checks tensor parallelism (an interconnect for tp > 1; tp dividing heads, kv_heads and ffn), the
    precisions the hardware runs, and memory: the weights per device against memory_gb x
    gpu_memory_utilization, and, given ``max_tokens`` (and ``max_seqs``), that the activation
    reserve of such an iteration still leaves room for KV cache.
    """
    if not 0 < gpu_memory_utilization <= 1:
        return f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}"
    why = _structure_problem(model, hardware, tp)
    if why is not None:
        return why
    try:
        _precisions(variant, hardware)
    except UnsupportedPrecision as exc:
        return str(exc)
    _, per_device = _weights(model, variant, tp)
    usable = float(hardware.memory_gb) * 1e9 * gpu_memory_utilization
    if per_device > usable:
        return (f"weights of {per_device / 1e9:.2f} GB per device (tensor_parallel {tp}) exceed the "
                f"{usable / 1e9:.2f} GB usable of {hardware.name!r}'s {float(hardware.memory_gb):g} GB "
                f"(gpu_memory_utilization {gpu_memory_utilization:g})")
    if max_tokens is not None:
        reserve = _activation_reserve(model, variant, tp, max_tokens, max_seqs or max_tokens)
        if per_device + reserve >= usable:
            return (f"weights of {per_device / 1e9:.2f} GB and an activation reserve of {reserve / 1e9:.2f} GB "
                    f"per device (an iteration of {max_tokens} tokens) leave no KV cache in the "
                    f"{usable / 1e9:.2f} GB usable of {hardware.name!r}")
    return None


def _activation_reserve(model: Any, variant: Any, tp: int, max_tokens: int, max_seqs: int) -> float:
    """Modelled bytes per device an iteration of ``max_tokens`` tokens holds at its peak, besides weights
    and KV cache (what vLLM's profiling run measures before sizing the cache): at the FFN, the residual
    and the normalised hidden state (2 x hidden), the up projection's output (2 x ffn/tp for SwiGLU's
    gate and up, 1 for GeLU) and the activation's (ffn/tp), at 16 bits; plus fp32 logits of
    ``max_seqs`` sampled sequences over the whole vocabulary (gathered on one device)."""
    d = _dims(model)
    ab = ACT_BYTES[_high(variant.precision)]
    up = (d["ffn_mats"] - 1) * d["ffn"] // tp
    per_token = (2 * d["hidden"] + up + d["ffn"] // tp) * ab
    return float(max_tokens * per_token + max_seqs * d["vocab"] * 4.0)


def _precisions(variant: Any, hardware: Any) -> tuple[str, str, str]:
    """(GEMM math precision, attention precision, LM head precision); raises UnsupportedPrecision."""
    precision = variant.precision
    if precision not in WEIGHT_BYTES:
        raise ValueError(f"unknown precision {precision!r}")
    weight_only = bool(getattr(variant, "weight_only", False))
    math_p = "fp16" if weight_only else precision
    what = (f"weight-only {precision} (dequantised to fp16 math)" if weight_only
            else f"the {precision} variant's GEMMs")
    _peak(hardware, math_p, what)
    high = _high(precision)
    peaks = hardware.peak_tflops
    attn = "fp8" if precision == "fp8" and _kv_precision(variant) == "fp8" and not weight_only else high
    if attn not in peaks:  # e.g. an int8-only device: attention at the GEMMs' precision
        attn = math_p
    head = high if high in peaks else math_p
    return math_p, attn, head


@dataclass(frozen=True)
class LLMReplicaModel:
    """Seconds per continuous-batching iteration of one tensor-parallel replica of an LLM variant."""

    tp: int
    weight_bytes: float  # the whole model's stored weights (all TP shards)
    weight_bytes_per_device: float
    kv_bytes_per_token: float  # KV cache bytes per token for the whole replica
    source: str  # "roofline", "measured" or "measured+roofline"
    detail: str  # how the times are obtained, one line
    basis: str  # what the hardware type's efficiency figures rest on (roofline.basis)
    max_tokens: int = 0
    max_seqs: int = 0
    activation_reserve_bytes: float = 0.0  # per device, see _activation_reserve
    layers: int = 0
    _dense: tuple[float, ...] = field(default=(), repr=False)  # [T]: everything but attention and the LM head
    _head: tuple[float, ...] = field(default=(), repr=False)  # [S]: LM head and logits gather (0 at S = 0)
    _attn: tuple[float, float, float, float] = field(default=(0.0, 0.0, 0.0, 0.0), repr=False)
    # Seconds per kernel group: indexed by T, except "lm_head" by S (for `breakdown`).
    _groups: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def seconds(self, tokens: int, samples: int, attn_pairs: float, kv_tokens: float) -> float:
        """One iteration: ``tokens`` new tokens (1..max_tokens), ``samples`` of them sampled
        (0..min(tokens, max_seqs)), ``attn_pairs`` causal query-key pairs and ``kv_tokens`` cached
        tokens read, summed over the sequences (see `attention_terms`)."""
        if not 1 <= tokens <= self.max_tokens:
            raise ValueError(f"tokens must be between 1 and max_tokens ({self.max_tokens}), got {tokens}")
        if not 0 <= samples <= min(tokens, self.max_seqs):
            raise ValueError(f"samples must be between 0 and min(tokens, max_seqs) "
                             f"({min(tokens, self.max_seqs)}), got {samples}")
        c_math, c_kv, c_act, overhead = self._attn
        attention = overhead + max(c_math * attn_pairs, c_kv * kv_tokens + c_act * tokens)
        return self._dense[tokens] + self._head[samples] + self.layers * attention

    def unchecked_seconds(self, tokens: int, samples: int, attn_pairs: float, kv_tokens: float) -> float:
        """`seconds` without its argument checks, for the simulator's scheduler (which keeps them)."""
        c_math, c_kv, c_act, overhead = self._attn
        a, b = c_math * attn_pairs, c_kv * kv_tokens + c_act * tokens
        attention = overhead + (a if a >= b else b)  # max(a, b), the first of equals, without a call
        return self._dense[tokens] + self._head[samples] + self.layers * attention

    def decode_seconds(self, n: int, kv_first: int, steps: int) -> list[float]:
        """`seconds` of ``steps`` successive iterations of ``n`` decoding sequences only (n tokens, n
        samples), whose cached tokens read sum to ``kv_first`` in the first and grow by n an
        iteration (attention pairs are the same sums)."""
        c_math, c_kv, c_act, overhead = self._attn
        fixed = self._dense[n] + self._head[n]
        layers, act = float(self.layers), c_act * n  # a float layer count multiplies as the int does
        kvs = range(kv_first, kv_first + n * steps, n)
        if c_math <= c_kv:
            # math never above memory: c_math kv <= c_kv kv <= c_kv kv + act after rounding too
            # (rounding is monotone and act >= 0), so `max` is the memory term at every kv
            return [fixed + layers * (overhead + (c_kv * kv + act)) for kv in map(float, kvs)]
        if steps > 0:
            # Attention's math (c_math kv) and memory (c_kv kv + act) terms are linear in kv, so which
            # one is the larger changes at most once over the run; where it does not, and the two
            # are apart by far more than their rounding at both ends, that term is `max` throughout.
            lo, hi = float(kvs[0]), float(kvs[-1])
            d_lo, d_hi = c_math * lo - (c_kv * lo + act), c_math * hi - (c_kv * hi + act)
            margin = 1e-9 * (c_math * hi + c_kv * hi + act)
            if d_lo > margin and d_hi > margin:
                return [fixed + layers * (overhead + c_math * kv) for kv in map(float, kvs)]
            if d_lo < -margin and d_hi < -margin:
                return [fixed + layers * (overhead + (c_kv * kv + act)) for kv in map(float, kvs)]
        out = []
        for kv in map(float, kvs):
            a, b = c_math * kv, c_kv * kv + act
            out.append(fixed + layers * (overhead + (a if a >= b else b)))  # max(a, b): the first of equals
        return out

    def breakdown(self, tokens: int, samples: int, attn_pairs: float, kv_tokens: float) -> dict[str, float]:
        """Seconds per kernel group of one iteration (they sum to `seconds`), for reports."""
        self.seconds(tokens, samples, attn_pairs, kv_tokens)  # validates
        parts = {k: float(v[samples if k == "lm_head" else tokens]) for k, v in self._groups.items()}
        c_math, c_kv, c_act, overhead = self._attn
        parts["attention"] = self.layers * (overhead + max(c_math * attn_pairs, c_kv * kv_tokens + c_act * tokens))
        return parts

    def kv_capacity_tokens(self, memory_gb: float, gpu_memory_utilization: float) -> int:
        """Tokens of KV cache the replica holds: tp x memory x utilisation, less the weights and the
        activation reserve of every device, over the KV bytes per token; never negative."""
        free = (memory_gb * 1e9 * gpu_memory_utilization - self.weight_bytes_per_device
                - self.activation_reserve_bytes) * self.tp
        return max(0, math.floor(free / self.kv_bytes_per_token))


def _alpha(bandwidth_gbps: float) -> float:
    return ALPHA_NVLINK_S if bandwidth_gbps > PCIE_MAX_GBPS else ALPHA_PCIE_S


def _measured_gemm(profile: Any, k: int, n: int, precision: str, m: np.ndarray) -> np.ndarray | None:
    """Seconds of a K x N GEMM at each row count in ``m`` from the kernel profile, or None if it cannot time it."""
    # Imported here: lepton_sim.profiles imports the roofline module of this package.
    from lepton_sim.profiles.measured import predicted_seconds

    top = int(m[-1])
    rows = sorted({int(g.m) for g in profile.gemm if int(g.m) <= top} | {2 ** i for i in range(top.bit_length())}
                  | {1, top})
    layer = [{"op": "dense", "in": int(k), "out": int(n), "bias": False}]
    times = []
    for r in rows:
        t = predicted_seconds(profile, layer, precision, r)
        if t is None or t <= 0:
            return None
        times.append(t)
    out = np.exp(np.interp(np.log(m), np.log(np.array(rows, dtype=float)), np.log(np.array(times))))
    return np.asarray(np.maximum.accumulate(out))


def llm_replica_model(model: Any, variant: Any, hardware: Any, tp: int, max_tokens: int,
                      max_seqs: int | None = None) -> LLMReplicaModel:
    """The iteration-time model of ``variant`` on ``tp`` devices of ``hardware``, for iterations of up to
    ``max_tokens`` tokens of which up to ``max_seqs`` (default max_tokens) sample.

    Raises ValueError for a tensor-parallel layout that cannot run (see `fit_problem`) and
    UnsupportedPrecision when the hardware has no peak for the precision the math needs. Memory is
    not checked here: call `fit_problem`.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    max_seqs = max_tokens if max_seqs is None else int(max_seqs)
    if max_seqs < 1:
        raise ValueError(f"max_seqs must be at least 1, got {max_seqs}")
    why = _structure_problem(model, hardware, tp)
    if why is not None:
        raise ValueError(why)
    math_p, attn_p, head_p = _precisions(variant, hardware)
    d = _dims(model)
    L, hidden, h, kvh, hd, ffn, vocab = (d[k] for k in ("layers", "hidden", "heads", "kv_heads", "head_dim",
                                                         "ffn", "vocab"))
    precision = variant.precision
    high = _high(precision)
    wb, hb = WEIGHT_BYTES[precision], WEIGHT_BYTES[high]
    ab, hab = ACT_BYTES[math_p], ACT_BYTES[high]
    kvb = WEIGHT_BYTES[_kv_precision(variant)]
    eff, eff_attn, eff_head = efficiency(hardware, math_p), efficiency(hardware, attn_p), efficiency(hardware, head_p)
    peak = _peak(hardware, math_p, "the GEMMs")
    peak_attn, peak_head = _peak(hardware, attn_p, "attention"), _peak(hardware, head_p, "the LM head")
    bw = float(hardware.memory_bandwidth_gbps) * 1e9
    link = _interconnect(hardware)
    ovh, on_chip = eff.overhead_s, eff.on_chip_bytes
    total_w, per_dev_w = _weights(model, variant, tp)

    bias = (h + 2 * kvh) * hd // tp if getattr(model, "qkv_bias", False) else 0
    # Per layer on one device: (name, K, N, bias elements).
    gemms = [("qkv", hidden, (h + 2 * kvh) * hd // tp, bias), ("o_proj", h * hd // tp, hidden, 0)]
    if d["ffn_mats"] == 3:
        gemms += [("gate_up", hidden, 2 * ffn // tp, 0), ("down", ffn // tp, hidden, 0)]
    else:
        gemms += [("up", hidden, ffn // tp, 0), ("down", ffn // tp, hidden, 0)]
    act_elems = 3 * ffn // tp if d["ffn_mats"] == 3 else 2 * ffn // tp  # gated activation in and out
    norm_elems = 4 * hidden
    reduce_bytes = float(hidden * (4.0 if precision == "fp32" else 2.0))  # per token
    profile = getattr(hardware, "measured", None)
    # GEMMs the measured kernel profile times, tabled over T = 1..max_tokens (index T - 1).
    timed: dict[str, np.ndarray | None] = {}
    if profile is not None:
        rows = np.arange(1, max_tokens + 1, dtype=float)
        timed = {name: _measured_gemm(profile, k, n, math_p, rows) for name, k, n, _ in gemms}

    def allreduce(nbytes: np.ndarray) -> np.ndarray:
        if tp == 1:
            return np.zeros_like(nbytes)
        assert link is not None
        return ovh + 2.0 * (tp - 1) / tp * nbytes / (link * 1e9) + 2 * (tp - 1) * _alpha(link)

    def parts_at(T: np.ndarray, S: np.ndarray) -> dict[str, np.ndarray]:
        T = T.astype(float)
        S = S.astype(float)
        # The largest activation set of one kernel at T rows, for what on-chip memory keeps (roofline rule).
        act_max = T * max([(k + n) * ab for _, k, n, _ in gemms] + [norm_elems * hab, act_elems * hab])
        if on_chip > 0:
            evicted = evicted_fraction(per_dev_w + act_max, on_chip)
            room = np.maximum(on_chip - (1.0 - evicted) * per_dev_w, 0.0)
        else:  # no on-chip memory: every byte crosses DRAM
            evicted, room = np.ones_like(T), np.zeros_like(T)

        def memory(w: float, act: np.ndarray) -> np.ndarray:
            return (evicted * w + np.maximum(act - room, 0.0)) / (bw * eff.memory)

        out: dict[str, np.ndarray] = {}
        for name, k, n, b in gemms:
            table = timed.get(name)
            if table is not None:
                out[name] = L * table[T.astype(int) - 1]
            else:
                out[name] = L * (ovh + np.maximum(2.0 * k * n * T / (peak * eff.compute),
                                                  memory(k * n * wb + b * hb, (k + n) * ab * T)))
        out["norms"] = L * 2 * (ovh + memory(0.0, norm_elems * hab * T)) + ovh + memory(0.0, norm_elems * hab * T)
        out["activation"] = L * (ovh + memory(0.0, act_elems * hab * T))
        out["embedding"] = ovh + memory(0.0, T * hidden * (hb / tp + hab))
        out["allreduce"] = (2 * L + 1) * allreduce(T * reduce_bytes)
        head_w = hidden * vocab // tp * hb
        head = ovh + np.maximum(2.0 * hidden * (vocab // tp) * S / (peak_head * eff_head.compute),
                                (head_w + (hidden + vocab // tp) * hab * S) / (bw * eff_head.memory))
        if tp > 1:
            assert link is not None
            head = head + ovh + (tp - 1) / tp * S * vocab * hab / (link * 1e9) + (tp - 1) * _alpha(link)
        out["lm_head"] = np.where(S > 0, head, 0.0)
        return out

    tokens = np.arange(0, max_tokens + 1)
    samples = np.arange(0, max_seqs + 1)
    # Row 0 of the token table is never used (an iteration has a token); it is filled from T = 1.
    groups = parts_at(np.maximum(tokens, 1), np.zeros_like(tokens))
    groups["lm_head"] = parts_at(np.ones_like(samples), samples)["lm_head"]
    dense = np.maximum.accumulate(sum(v for k, v in groups.items() if k != "lm_head"))
    head = np.maximum.accumulate(groups["lm_head"])

    c_math = 4.0 * hd * (h // tp) / (peak_attn * eff_attn.compute)
    c_kv = 2.0 * (kvh // tp) * hd * kvb / (bw * eff_attn.memory)
    c_act = ((h + 2 * kvh) * hd // tp * ab + h * hd // tp * ab + 2 * (kvh // tp) * hd * kvb) / (bw * eff_attn.memory)

    hit = [name for name, t in timed.items() if t is not None]
    miss = [name for name, t in timed.items() if t is None]
    source = "roofline" if not hit else ("measured" if not miss else "measured+roofline")
    gemm_how = (f"GEMMs {', '.join(hit)} from the measured kernel profile's GEMM table at M = tokens rows; "
                if hit else "")
    if miss:
        gemm_how += f"GEMMs {', '.join(miss)} outside the profile's shapes: roofline; "
    rate = "TOPS" if math_p.startswith("int") else "TFLOPS"
    weights = f"{precision} weights" + (" (weight-only, fp16 math)" if getattr(variant, "weight_only", False) else "")
    tp_how = (f", tp {tp} over {link:g} GB/s per direction (ring all-reduce, alpha {_alpha(link) * 1e6:g} us)"
              if tp > 1 and link is not None else "")
    on_chip_how = f", {on_chip / 1e6:g} MB on chip" if on_chip else ""
    detail = (f"{gemm_how}roofline: {hardware.name} {math_p} peak {peak / 1e12:g} {rate} x eff {eff.compute:.4g} "
              f"({eff.compute_how}), attention at {attn_p} x eff {eff_attn.compute:.4g}, "
              f"{float(hardware.memory_bandwidth_gbps):g} GB/s x eff {eff.memory:.4g}{on_chip_how}, "
              f"{ovh * 1e6:.4g} us/kernel x {8 * L + 3} kernels{tp_how}; {weights}, KV cache {_kv_precision(variant)}; "
              f"{basis(hardware)}")
    return LLMReplicaModel(
        tp=tp, weight_bytes=total_w, weight_bytes_per_device=per_dev_w,
        kv_bytes_per_token=kv_bytes_per_token(model, variant), source=source, detail=detail,
        basis=basis(hardware), max_tokens=max_tokens, max_seqs=max_seqs,
        activation_reserve_bytes=_activation_reserve(model, variant, tp, max_tokens, max_seqs), layers=L,
        _dense=tuple(float(x) for x in dense), _head=tuple(float(x) for x in head),
        _attn=(c_math, c_kv, c_act, eff_attn.overhead_s), _groups=groups,
    )

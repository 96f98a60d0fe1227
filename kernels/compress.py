"""Model compression transforms and the storage size of their results.

Quantisation is symmetric per output channel (int8: codes in [-127, 127]; int4: [-7, 7], packed two
per byte). Pruning zeroes weights of dense layers only (biases are kept): unstructured magnitude
pruning removes exactly round(ratio x size) weights of each layer; 2:4 keeps the two largest of
every four consecutive weights along the input (reduction) dimension, as sparse tensor cores need.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from kernels import ops
from kernels.forward import DenseWeights, Params

# Sparse storage as `lepton_sim.layers` counts it: kept fp32 values plus a presence bitmap
# (unstructured) or a 2-bit position index per kept value (2:4).
BITMAP_BITS = 1
INDEX_24_BITS = 2


def magnitude_mask(w: np.ndarray, ratio: float) -> np.ndarray:
    """A 0/1 float32 mask zeroing exactly round(ratio * w.size) weights of smallest magnitude."""
    k = int(round(ratio * w.size))
    mask = np.ones(w.size, np.float32)
    if k:
        mask[np.argpartition(np.abs(w).ravel(), k - 1)[:k]] = 0.0
    return mask.reshape(w.shape)


def mask_2_4(w: np.ndarray) -> np.ndarray:
    """A 0/1 float32 mask keeping the 2 largest of every 4 consecutive weights along axis 0 (K)."""
    k, n = w.shape
    if k % 4:
        raise ValueError(f"2:4 pruning needs the input size to be a multiple of 4, got {k}")
    groups = np.abs(w).reshape(k // 4, 4, n)
    drop = np.argsort(groups, axis=1, kind="stable")[:, :2, :]
    mask = np.ones_like(groups, dtype=np.float32)
    np.put_along_axis(mask, drop, 0.0, axis=1)
    return mask.reshape(k, n)


def prune(params: Params, how: str, ratio: float = 0.5) -> tuple[Params, list[np.ndarray | None]]:
    """Pruned copies of the dense weights and their masks; `how` is "magnitude" or "2:4"."""
    masks: list[np.ndarray | None] = []
    out: Params = []
    for p in params:
        if p is None:
            masks.append(None)
            out.append(None)
            continue
        m = magnitude_mask(p.w, ratio) if how == "magnitude" else mask_2_4(p.w)
        masks.append(m)
        out.append(DenseWeights(p.w * m, p.b.copy()))
    return out, masks


def quantise(params: Params, bits: int) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Per-channel codes (packed for int4) and scales of every dense layer."""
    out: list[tuple[np.ndarray, np.ndarray] | None] = []
    for p in params:
        if p is None:
            out.append(None)
            continue
        codes, scale = ops.quantise_per_channel(p.w, bits)
        out.append((ops.pack_int4(codes) if bits == 4 else codes, scale))
    return out


def dequantise(params: Params, bits: int) -> Params:
    """Float weights as the quantised model sees them (codes x scale), for error checks."""
    out: Params = []
    for p in params:
        if p is None:
            out.append(None)
            continue
        codes, scale = ops.quantise_per_channel(p.w, bits)
        out.append(DenseWeights(codes.astype(np.float32) * scale, p.b))
    return out


def storage_bytes(params: Params, precision: str, sparsity: dict[str, Any] | None = None) -> int:
    """Bytes to store the dense layers at `precision` (per-channel fp32 scales for int), sparse formats applied."""
    total = 0.0
    for p in params:
        if p is None:
            continue
        k, n = p.w.shape
        bias = p.b.size * 4
        if precision in ("int8", "int4"):
            per = 1.0 if precision == "int8" else 0.5
            total += math.ceil(k * per) * n + 4 * n + bias
            continue
        item = {"fp64": 8, "fp32": 4, "fp16": 2}[precision]
        if sparsity is None:
            total += p.w.size * item + p.b.size * item
        elif sparsity["pattern"] == "2:4":
            kept = p.w.size // 2
            total += kept * item + math.ceil(kept * INDEX_24_BITS / 8) + p.b.size * item
        else:
            nnz = int(np.count_nonzero(p.w))
            total += nnz * item + math.ceil(p.w.size * BITMAP_BITS / 8) + p.b.size * item
    return int(total)


def param_counts(params: Params) -> tuple[int, int]:
    """(all parameters, non-zero parameters) of the dense layers, biases included."""
    total = sum(p.w.size + p.b.size for p in params if p is not None)
    nonzero = sum(int(np.count_nonzero(p.w)) + p.b.size for p in params if p is not None)
    return total, nonzero


def zero_fraction(params: Params) -> float:
    """Fraction of dense weights (not biases) that are zero."""
    size = sum(p.w.size for p in params if p is not None)
    zeros = sum(p.w.size - int(np.count_nonzero(p.w)) for p in params if p is not None)
    return zeros / size


def student_layers(teacher: Sequence[dict[str, Any]], hidden: int) -> list[dict[str, Any]]:
    """A one-hidden-layer student with the teacher's input and output sizes."""
    dense = [layer for layer in teacher if layer["op"] == "dense"]
    return [{"op": "dense", "in": dense[0]["in"], "out": hidden}, {"op": "relu"},
            {"op": "dense", "in": hidden, "out": dense[-1]["out"]}]

"""The inference kernels as they really run on this machine: numpy over OpenBLAS.

Activations are (rows, features) or NHWC. Dense layers in fp32/fp64/fp16 are `x @ w + b` in that
dtype (numpy's fp16 matmul has no BLAS path). The int8 path quantises activations per tensor at
run time, multiplies int8 by int8 into int32 (numpy's integer matmul) and rescales with per-channel
weight scales (W8A8). int4 weights are stored packed two per byte and unpacked per call (W4A8).
Convolution is im2col (a strided window view copied into columns) followed by one GEMM.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

GELU_C = math.sqrt(2.0 / math.pi)
LAYERNORM_EPS = 1e-5


# --- dense ------------------------------------------------------------------------------------


def dense(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Float dense layer in the dtype of its operands."""
    y = x @ w
    y += b
    return y


def quantise_per_channel(w: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel quantisation of a (K, N) weight: int8 codes in [-q, q] and N scales."""
    qmax = 2 ** (bits - 1) - 1
    amax = np.abs(w).max(axis=0)
    scale = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
    codes = np.clip(np.rint(w / scale), -qmax, qmax).astype(np.int8)
    return codes, scale


def quantise_activations(x: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """Dynamic symmetric per-tensor int8 quantisation of activations: codes and one scale."""
    amax = np.float32(np.abs(x).max())
    scale = np.float32(amax / 127.0) if amax > 0 else np.float32(1.0)
    codes = np.rint(x * (np.float32(1.0) / scale))
    np.clip(codes, -127, 127, out=codes)
    return codes.astype(np.int8), scale


def dense_int8(x: np.ndarray, codes: np.ndarray, w_scale: np.ndarray, b: np.ndarray) -> np.ndarray:
    """W8A8 dense: quantise x, int8 x int8 -> int32 matmul, rescale per output channel, add bias (fp32 out)."""
    xq, sx = quantise_activations(x)
    acc = np.matmul(xq, codes, dtype=np.int32)
    y = acc.astype(np.float32)
    y *= sx * w_scale
    y += b
    return y


def pack_int4(codes: np.ndarray) -> np.ndarray:
    """Pack int8 codes in [-8, 7] of shape (K, N) two per byte along K: (ceil(K/2), N) uint8."""
    k = codes.shape[0]
    if k % 2:
        codes = np.concatenate([codes, np.zeros((1,) + codes.shape[1:], np.int8)])
    u = codes.view(np.uint8)
    return (u[0::2] & 0x0F) | ((u[1::2] & 0x0F) << 4)


def unpack_int4(packed: np.ndarray, k: int) -> np.ndarray:
    """Inverse of `pack_int4`: sign-extended int8 codes of shape (k, N)."""
    lo = (packed << 4).view(np.int8) >> 4  # arithmetic shift sign-extends the low nibble
    hi = packed.view(np.int8) >> 4
    out = np.empty((2 * packed.shape[0],) + packed.shape[1:], np.int8)
    out[0::2] = lo
    out[1::2] = hi
    return out[:k]


def dense_int4(x: np.ndarray, packed: np.ndarray, k: int, w_scale: np.ndarray, b: np.ndarray) -> np.ndarray:
    """W4A8 dense: unpack the int4 weights, then the int8 path."""
    return dense_int8(x, unpack_int4(packed, k), w_scale, b)


# --- elementwise and normalisation ---------------------------------------------------------------


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation (Hendrycks and Gimpel 2016), as BERT implementations use it."""
    inner = x * x
    inner *= x
    inner *= 0.044715
    inner += x
    inner *= GELU_C
    np.tanh(inner, out=inner)
    inner += 1
    inner *= x
    inner *= 0.5
    return inner


def tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    y = np.negative(x)
    np.exp(y, out=y)
    y += 1
    np.reciprocal(y, out=y)
    return y


def add(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return x + y


def batchnorm(x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Inference batchnorm folded to a per-channel scale and shift over the last axis."""
    y = x * scale
    y += shift
    return y


def layernorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Layer normalisation over the last axis."""
    mean = x.mean(axis=-1, keepdims=True)
    y = x - mean
    var = np.mean(y * y, axis=-1, keepdims=True)
    y /= np.sqrt(var + LAYERNORM_EPS)
    y *= gamma
    y += beta
    return y


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the row maximum."""
    y = x - x.max(axis=-1, keepdims=True)
    np.exp(y, out=y)
    y /= y.sum(axis=-1, keepdims=True)
    return y


def _same_pad(hw: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """Output size ceil(hw/stride) and the (low, high) padding that gives it."""
    out = -(-hw // stride)
    total = max((out - 1) * stride + kernel - hw, 0)
    return out, total // 2, total - total // 2


def _windows(x: np.ndarray, kernel: int, stride: int, fill: float) -> np.ndarray:
    """Strided (B, Ho, Wo, C, k, k) window view of an NHWC tensor padded to "same" output size."""
    out, lo, hi = _same_pad(x.shape[1], kernel, stride)
    if lo or hi:
        x = np.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)), constant_values=fill)
    win = sliding_window_view(x, (kernel, kernel), axis=(1, 2))
    return win[:, ::stride, ::stride][:, :out, :out]


def maxpool(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    return _windows(x, kernel, stride, -np.inf).max(axis=(-2, -1))


def avgpool(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    return _windows(x, kernel, stride, 0.0).mean(axis=(-2, -1))


def global_avgpool(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=(1, 2))


def embedding(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.take(table, ids, axis=0)


def copy(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    np.copyto(dst, src)
    return dst


# --- convolution and attention --------------------------------------------------------------------


def conv2d(x: np.ndarray, w: np.ndarray, kernel: int, stride: int, groups: int = 1) -> np.ndarray:
    """NHWC convolution, "same" padding, no bias. `w` is (in_ch/groups * k * k, out_ch).

    groups == 1: im2col then one GEMM. Depthwise (groups == in_ch == out_ch): a weighted sum over
    each window (einsum). Other groupings: im2col and one GEMM per group.
    """
    b, _, _, c = x.shape
    win = _windows(x, kernel, stride, 0.0)  # (B, Ho, Wo, C, k, k)
    ho, wo = win.shape[1], win.shape[2]
    out_ch = w.shape[1]
    if groups == 1:
        cols = win.reshape(b * ho * wo, c * kernel * kernel)
        return (cols @ w).reshape(b, ho, wo, out_ch)
    if groups == c == out_ch:
        return np.einsum("bhwckl,ckl->bhwc", win, w.T.reshape(c, kernel, kernel), optimize=True)
    cg, og = c // groups, out_ch // groups
    outs = []
    for g in range(groups):
        cols = win[:, :, :, g * cg:(g + 1) * cg].reshape(b * ho * wo, cg * kernel * kernel)
        outs.append(cols @ w[:, g * og:(g + 1) * og])
    return np.concatenate(outs, axis=1).reshape(b, ho, wo, out_ch)


def attention(qkv: np.ndarray, heads: int) -> np.ndarray:
    """Multi-head self-attention core over a fused (B, seq, 3*dim) QKV tensor: (B, seq, dim) out."""
    b, seq, three_dim = qkv.shape
    dim = three_dim // 3
    dh = dim // heads
    q, k, v = (qkv[:, :, i * dim:(i + 1) * dim].reshape(b, seq, heads, dh).transpose(0, 2, 1, 3)
               for i in range(3))
    scores = q @ k.transpose(0, 1, 3, 2)
    scores *= 1.0 / math.sqrt(dh)
    probs = softmax(scores)
    return (probs @ v).transpose(0, 2, 1, 3).reshape(b, seq, dim)

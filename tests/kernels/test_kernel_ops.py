"""Every kernel against a naive reference: loops over the definition, in float64 or exact integers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from kernels import ops


def naive_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Triple loop in Python integers or float64."""
    m, k = a.shape
    n = b.shape[1]
    integer = np.issubdtype(a.dtype, np.integer)
    out = np.zeros((m, n), np.int64 if integer else np.float64)
    for i in range(m):
        for j in range(n):
            acc = 0 if integer else 0.0
            for t in range(k):
                acc += (int(a[i, t]) * int(b[t, j])) if integer else float(a[i, t]) * float(b[t, j])
            out[i, j] = acc
    return out


def naive_conv(x: np.ndarray, w: np.ndarray, kernel: int, stride: int, groups: int) -> np.ndarray:
    """NHWC convolution with "same" padding by explicit loops; w is (in_ch/groups * k * k, out_ch)."""
    b, hw, _, c = x.shape
    out_ch = w.shape[1]
    cg, og = c // groups, out_ch // groups
    out_hw = -(-hw // stride)
    pad = max((out_hw - 1) * stride + kernel - hw, 0) // 2
    wr = w.reshape(cg, kernel, kernel, out_ch)
    y = np.zeros((b, out_hw, out_hw, out_ch))
    for n in range(b):
        for i in range(out_hw):
            for j in range(out_hw):
                for o in range(out_ch):
                    g = o // og
                    acc = 0.0
                    for ci in range(cg):
                        for di in range(kernel):
                            for dj in range(kernel):
                                r, s = i * stride + di - pad, j * stride + dj - pad
                                if 0 <= r < hw and 0 <= s < hw:
                                    acc += x[n, r, s, g * cg + ci] * wr[ci, di, dj, o]
                    y[n, i, j, o] = acc
    return y


RNG = np.random.default_rng(42)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_dense_matches_naive(dtype: type, tol: float) -> None:
    x, w, b = (RNG.standard_normal(s).astype(dtype) for s in ((5, 7), (7, 3), (3,)))
    expect = naive_matmul(x, w) + b
    np.testing.assert_allclose(ops.dense(x, w, b), expect, rtol=tol, atol=tol)


def test_fp16_dense_within_half_precision_bound() -> None:
    x, w, b = (RNG.standard_normal(s) for s in ((4, 32), (32, 8), (8,)))
    x16, w16, b16 = (a.astype(np.float16) for a in (x, w, b))
    got = ops.dense(x16, w16, b16).astype(np.float64)
    exact = naive_matmul(x16, w16) + b16.astype(np.float64)  # same rounded inputs
    # Each of the K products and the K-1 sums rounds once in fp16 (unit roundoff 2^-11):
    # |error| <= (K+1) u sum |x||w| (Higham, Accuracy and Stability, eq. 3.5), plus the bias add.
    u = 2.0 ** -11
    bound = (32 + 2) * u * (np.abs(x16.astype(np.float64)) @ np.abs(w16.astype(np.float64)) + np.abs(b16))
    assert np.all(np.abs(got - exact) <= bound)


def test_int8_matmul_accumulates_exactly_in_int32() -> None:
    a = RNG.integers(-127, 128, (6, 40), dtype=np.int8)
    b = RNG.integers(-127, 128, (40, 5), dtype=np.int8)
    assert np.array_equal(np.matmul(a, b, dtype=np.int32), naive_matmul(a, b))


@pytest.mark.parametrize("bits", [8, 4])
def test_per_channel_quantisation_rounds_to_nearest(bits: int) -> None:
    w = RNG.standard_normal((33, 6)).astype(np.float32) * np.array([1, 10, 0.1, 3, 0.01, 1], np.float32)
    codes, scale = ops.quantise_per_channel(w, bits)
    qmax = 2 ** (bits - 1) - 1
    assert codes.dtype == np.int8 and codes.min() >= -qmax and codes.max() <= qmax
    assert np.allclose(scale, np.abs(w).max(axis=0) / qmax)
    assert np.all(np.abs(codes * scale - w) <= scale / 2 * (1 + 1e-6))


@pytest.mark.parametrize("bits", [8, 4])
def test_quantised_dense_error_within_its_bound(bits: int) -> None:
    x = RNG.standard_normal((9, 48)).astype(np.float32)
    w = RNG.standard_normal((48, 7)).astype(np.float32)
    b = RNG.standard_normal(7).astype(np.float32)
    codes, sw = ops.quantise_per_channel(w, bits)
    if bits == 8:
        got = ops.dense_int8(x, codes, sw, b)
    else:
        got = ops.dense_int4(x, ops.pack_int4(codes), 48, sw, b)
    exact = naive_matmul(x, w) + b
    sx = np.abs(x).max() / 127
    # Rounding: |dx| <= sx/2 per activation, |dw| <= sw/2 per weight; the integer product is exact.
    # |y - y_q| <= sum_k (|x_k| sw/2 + |w_k| sx/2 + sx sw / 4), plus fp32 rescaling of the int32 sum.
    bound = (np.abs(x) @ np.ones((48, 7)) * sw / 2 + sx / 2 * np.abs(w).sum(axis=0) + 48 * sx * sw / 4)
    bound = bound * (1 + 1e-5) + 1e-5 * np.abs(exact)
    assert np.all(np.abs(got - exact) <= bound)


@pytest.mark.parametrize("k", [1, 2, 7, 16])
def test_int4_pack_round_trips_every_code(k: int) -> None:
    codes = RNG.integers(-8, 8, (k, 5)).astype(np.int8)
    codes[0, :] = np.array([-8, -1, 0, 1, 7])[: codes.shape[1]]
    packed = ops.pack_int4(codes)
    assert packed.dtype == np.uint8 and packed.shape == ((k + 1) // 2, 5)
    assert np.array_equal(ops.unpack_int4(packed, k), codes)


@pytest.mark.parametrize("kernel, stride, groups, in_ch, out_ch", [
    (3, 1, 1, 3, 4), (3, 2, 1, 2, 3), (1, 1, 1, 4, 2), (7, 2, 1, 2, 2), (3, 1, 4, 4, 4), (3, 2, 2, 4, 6),
])
def test_conv2d_matches_naive(kernel: int, stride: int, groups: int, in_ch: int, out_ch: int) -> None:
    x = RNG.standard_normal((2, 7, 7, in_ch)).astype(np.float32)
    w = RNG.standard_normal((in_ch // groups * kernel * kernel, out_ch)).astype(np.float32)
    got = ops.conv2d(x, w, kernel, stride, groups)
    np.testing.assert_allclose(got, naive_conv(x, w, kernel, stride, groups), rtol=1e-4, atol=1e-4)


def test_attention_matches_per_head_loops() -> None:
    b, seq, heads, dim = 2, 5, 2, 8
    qkv = RNG.standard_normal((b, seq, 3 * dim)).astype(np.float64)
    got = ops.attention(qkv, heads)
    dh = dim // heads
    expect = np.zeros((b, seq, dim))
    for n in range(b):
        for h in range(heads):
            cols = slice(h * dh, (h + 1) * dh)
            q, k, v = qkv[n, :, cols], qkv[n, :, dim:][:, cols], qkv[n, :, 2 * dim:][:, cols]
            for i in range(seq):
                scores = [sum(q[i, t] * k[j, t] for t in range(dh)) / math.sqrt(dh) for j in range(seq)]
                top = max(scores)
                e = [math.exp(s - top) for s in scores]
                for t in range(dh):
                    expect[n, i, h * dh + t] = sum(e[j] * v[j, t] for j in range(seq)) / sum(e)
    np.testing.assert_allclose(got, expect, rtol=1e-10, atol=1e-12)


def _gelu(v: float) -> float:
    return 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))


@pytest.mark.parametrize("op, ref", [
    (ops.relu, lambda v: max(v, 0.0)), (ops.gelu, _gelu), (ops.tanh, math.tanh),
    (ops.sigmoid, lambda v: 1 / (1 + math.exp(-v))),
])
def test_elementwise_matches_the_formula(op, ref) -> None:  # type: ignore[no-untyped-def]
    x = RNG.standard_normal((3, 11)) * 3
    np.testing.assert_allclose(op(x), np.vectorize(ref)(x), rtol=1e-12, atol=1e-12)
    assert op(x.astype(np.float16)).dtype == np.float16  # fp16 kernels stay in fp16


def test_add_batchnorm_layernorm_softmax_match_definitions() -> None:
    x, y = RNG.standard_normal((4, 6)), RNG.standard_normal((4, 6))
    scale, shift = RNG.standard_normal(6), RNG.standard_normal(6)
    assert np.array_equal(ops.add(x, y), x + y)
    np.testing.assert_allclose(ops.batchnorm(x, scale, shift), [[x[i, j] * scale[j] + shift[j] for j in range(6)] for i in range(4)])
    gamma, beta = RNG.standard_normal(6), RNG.standard_normal(6)
    for i, row in enumerate(ops.layernorm(x, gamma, beta)):
        mu = sum(x[i]) / 6
        var = sum((v - mu) ** 2 for v in x[i]) / 6
        expect = [(x[i, j] - mu) / math.sqrt(var + ops.LAYERNORM_EPS) * gamma[j] + beta[j] for j in range(6)]
        np.testing.assert_allclose(row, expect, rtol=1e-10)
    for i, row in enumerate(ops.softmax(x)):
        e = [math.exp(v) for v in x[i]]
        np.testing.assert_allclose(row, [v / sum(e) for v in e], rtol=1e-12)


@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 2), (3, 1)])
def test_pooling_matches_window_loops(kernel: int, stride: int) -> None:
    x = RNG.standard_normal((2, 7, 7, 3))
    out_hw = -(-7 // stride)
    pad = max((out_hw - 1) * stride + kernel - 7, 0) // 2
    mx, av = ops.maxpool(x, kernel, stride), ops.avgpool(x, kernel, stride)
    assert mx.shape == av.shape == (2, out_hw, out_hw, 3)
    for n in range(2):
        for i in range(out_hw):
            for j in range(out_hw):
                for c in range(3):
                    vals = [x[n, r, s, c] for r in range(i * stride - pad, i * stride - pad + kernel)
                            for s in range(j * stride - pad, j * stride - pad + kernel) if 0 <= r < 7 and 0 <= s < 7]
                    assert mx[n, i, j, c] == max(vals)
                    # Zero padding counts in the average (count_include_pad, as PyTorch's default).
                    assert av[n, i, j, c] == pytest.approx(sum(vals) / (kernel * kernel))
    np.testing.assert_allclose(ops.global_avgpool(x), x.sum(axis=(1, 2)) / 49)


def test_embedding_and_copy() -> None:
    table = RNG.standard_normal((10, 4))
    ids = np.array([3, 0, 9, 3])
    assert np.array_equal(ops.embedding(table, ids), np.stack([table[i] for i in ids]))
    dst = np.empty(5)
    src = np.arange(5.0)
    assert np.array_equal(ops.copy(dst, src), src)

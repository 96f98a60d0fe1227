"""Inference microbenchmarks: GEMM per precision, memory-bound kernels, convolution, attention, ceilings.

Each `*_jobs` function returns `Job`s: a label and a callable that measures one kernel and
returns its profile record (a dict in the `lepton_sim.profiles` format, minus figures that need
the machine ceilings, which the suite adds at the end).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import numpy as np

from kernels import ops
from kernels.forward import DenseWeights, dense_step
from kernels.timing import TimingPolicy, time_call

Record = dict[str, Any]


@dataclass(frozen=True)
class Job:
    """One measurement: `run()` returns the record to store under `section`."""

    section: str
    label: str
    run: Callable[[], Record]


@dataclass(frozen=True)
class Grid:
    """Which shapes to measure: GEMM rows M, and inner K and output N sizes, per precision; FLOP caps; sizes."""

    gemm_m: dict[str, tuple[int, ...]]
    gemm_kn: dict[str, tuple[int, ...]]  # K and N each take these values (all pairs)
    gemm_max_flops: dict[str, float]
    ceiling_n: tuple[int, ...]
    copy_mb: int
    elems: tuple[int, ...]
    elementwise_ops: dict[str, tuple[str, ...]]  # precision -> ops
    pool_shapes: tuple[tuple[int, int], ...]  # (batch, hw) at 64 channels
    convs: tuple[tuple[int, int, int, int, int, int], ...]  # in_ch, out_ch, kernel, stride, groups, in_hw
    conv_batches: tuple[int, ...]
    attentions: tuple[tuple[int, int, int], ...]  # seq, heads, dim
    attention_batches: tuple[int, ...]


_POW2 = tuple(2 ** i for i in range(11))  # 1 .. 1024
_POW4 = (1, 4, 16, 64, 256, 1024, 4096)
_FLOAT_OPS = ("relu", "add", "copy", "batchnorm", "sigmoid", "tanh", "gelu", "layernorm", "softmax",
              "maxpool", "avgpool", "global_avgpool", "embedding")

FULL_GRID = Grid(
    gemm_m={"fp32": _POW2, "fp64": _POW4[:6], "fp16": _POW4[:5], "int8": _POW2, "int4": _POW4[:6]},
    gemm_kn={"fp32": _POW4, "fp64": _POW4, "fp16": _POW4[:5], "int8": _POW4[:6], "int4": _POW4[:6]},
    gemm_max_flops={"fp32": 2 ** 34, "fp64": 2 ** 33, "fp16": 2 ** 25, "int8": 2 ** 28, "int4": 2 ** 28},
    ceiling_n=(2048, 3072),
    copy_mb=256,
    elems=tuple(4 ** i for i in range(1, 13)),  # 4 .. 16M
    elementwise_ops={"fp32": _FLOAT_OPS, "fp16": ("relu", "add", "gelu", "tanh", "sigmoid", "layernorm", "softmax")},
    pool_shapes=((1, 8), (1, 16), (1, 32), (1, 64), (1, 128), (4, 128), (16, 128)),
    convs=((3, 64, 7, 2, 1, 224), (64, 64, 3, 1, 1, 56), (64, 256, 1, 1, 1, 56), (128, 128, 3, 2, 1, 56),
           (256, 256, 3, 1, 1, 14), (512, 512, 3, 1, 1, 7), (144, 144, 3, 1, 144, 56), (32, 32, 3, 1, 1, 16)),
    conv_batches=(1, 2, 4, 8),
    attentions=((128, 12, 768), (64, 4, 256), (256, 8, 512)),
    attention_batches=(1, 2, 4, 8),
)

QUICK_GRID = Grid(
    gemm_m={"fp32": _POW2[:9], "fp64": (1, 16, 256), "fp16": (1, 16), "int8": _POW4[:5], "int4": (1, 16)},
    gemm_kn={"fp32": _POW4[:6], "fp64": (64, 1024), "fp16": (4, 16, 64), "int8": _POW4[:5], "int4": (4, 16, 64)},
    gemm_max_flops={"fp32": 2 ** 31, "fp64": 2 ** 30, "fp16": 2 ** 20, "int8": 2 ** 24, "int4": 2 ** 20},
    ceiling_n=(1024,),
    copy_mb=128,
    elems=tuple(4 ** i for i in range(1, 11)),  # 4 .. 1M
    elementwise_ops={"fp32": _FLOAT_OPS, "fp16": ("relu",)},
    pool_shapes=((1, 16), (1, 32), (1, 64)),
    convs=((64, 64, 3, 1, 1, 56),),
    conv_batches=(1, 4),
    attentions=((64, 4, 256),),
    attention_batches=(1, 4),
)

_FLOAT_DT = {"fp64": np.float64, "fp32": np.float32, "fp16": np.float16}
# How each kernel family runs on this machine (the profile's `paths`).
PATHS = {
    "gemm fp64": "numpy float64 matmul (OpenBLAS dgemm) + bias",
    "gemm fp32": "numpy float32 matmul (OpenBLAS sgemm) + bias",
    "gemm fp16": "numpy float16 matmul (no BLAS half path: numpy's own loop) + bias",
    "gemm int8": "W8A8: per-tensor dynamic activation quantisation, numpy int8 x int8 -> int32 matmul "
                 "(no BLAS integer path), per-channel rescale + bias in fp32",
    "gemm int4": "W4A8: int4 weights packed two per byte, unpacked per call, then the int8 path",
    "conv": "numpy im2col (strided window view copied to columns) + one float32 GEMM; depthwise by einsum",
    "attention": "numpy batched matmuls QK^T and AV per head, softmax over the last axis",
    "elementwise": "numpy ufuncs on (rows, features) arrays; pooling over strided NHWC window views",
    "models": "kernels.forward: a Python loop over the layer steps, each one of the kernels above",
}


def _rec(t: Any) -> Record:
    return t.as_dict()


def _dense_kernel(precision: str, m: int, k: int, n: int, rng: np.random.Generator) -> Callable[[], object]:
    """A zero-argument call of the dense step at this shape and precision, exactly as `kernels.forward` runs it."""
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    if precision in _FLOAT_DT:
        x = x.astype(_FLOAT_DT[precision])
    return partial(dense_step(DenseWeights(w, b), precision), x)


def gemm_job(precision: str, m: int, k: int, n: int, policy: TimingPolicy) -> Job:
    def run() -> Record:
        fn = _dense_kernel(precision, m, k, n, np.random.default_rng(m * 7919 + k * 31 + n))
        t = time_call(fn, policy)
        return {"precision": precision, "m": m, "k": k, "n": n, "timing": _rec(t),
                "gflops": 2.0 * m * k * n / t.median_s / 1e9}
    return Job("gemm", f"gemm {precision} {m}x{k}x{n}", run)


def gemm_jobs(grid: Grid, policy: TimingPolicy) -> list[Job]:
    """The GEMM grid: rows M x inner K x outputs N per precision, within each precision's FLOP cap."""
    jobs = []
    for precision, ms in grid.gemm_m.items():
        sizes = grid.gemm_kn[precision]
        for k in sizes:
            for n in sizes:
                for m in ms:
                    if 2.0 * m * k * n <= grid.gemm_max_flops[precision]:
                        jobs.append(gemm_job(precision, m, k, n, policy))
    for n in grid.ceiling_n:
        for precision in ("fp32", "fp64"):
            jobs.append(gemm_job(precision, n, n, n, policy))
    return jobs


def copy_job(grid: Grid, policy: TimingPolicy) -> Job:
    """Memory bandwidth: a large float32 copy, counting bytes read plus bytes written."""
    def run() -> Record:
        n = grid.copy_mb * 2 ** 20 // 4
        src = np.ones(n, np.float32)
        dst = np.empty_like(src)
        t = time_call(partial(ops.copy, dst, src), policy)
        return {"copy_bytes": src.nbytes, "timing": _rec(t), "gbps": 2 * src.nbytes / t.median_s / 1e9}
    return Job("copy", f"copy {grid.copy_mb} MiB", run)


def overhead_job(policy: TimingPolicy) -> Job:
    """The floor under every kernel: one numpy ufunc call on a single element."""
    def run() -> Record:
        x = np.ones(1, np.float32)
        return {"timing": _rec(time_call(partial(ops.relu, x), policy))}
    return Job("overhead", "call overhead", run)


FEATURES = 256  # last-axis size for the norms, softmax and embedding rows
POOL_CHANNELS = 64


def _elementwise_call(op: str, precision: str, elems: int, rng: np.random.Generator) -> tuple[Callable[[], object], int, dict[str, int]]:
    """A zero-argument call of `op` over `elems` input elements, the bytes it moves, and its parameters."""
    dt = _FLOAT_DT[precision]
    size = np.dtype(dt).itemsize
    f = min(FEATURES, elems)
    rows = max(1, elems // f)
    x = rng.standard_normal(elems).astype(dt)
    x2 = x[: rows * f].reshape(rows, f)  # (rows, features), as activations reach these ops
    if op in ("relu", "gelu", "tanh", "sigmoid"):
        fn = {"relu": ops.relu, "gelu": ops.gelu, "tanh": ops.tanh, "sigmoid": ops.sigmoid}[op]
        return partial(fn, x2), 2 * x2.size * size, {"features": f}
    if op == "add":
        return partial(ops.add, x2, x2[::-1].copy()), 3 * x2.size * size, {"features": f}
    if op == "copy":
        return partial(ops.copy, np.empty_like(x), x), 2 * elems * size, {}
    if op == "batchnorm":
        x2 = x.reshape(-1, POOL_CHANNELS) if elems >= POOL_CHANNELS else x.reshape(1, -1)
        c = x2.shape[1]
        return partial(ops.batchnorm, x2, np.ones(c, dt), np.zeros(c, dt)), 2 * elems * size, {"channels": c}
    if op in ("layernorm", "softmax"):
        if op == "softmax":
            return partial(ops.softmax, x2), 2 * x2.size * size, {"features": f}
        return partial(ops.layernorm, x2, np.ones(f, dt), np.zeros(f, dt)), 2 * x2.size * size, {"features": f}
    if op == "embedding":
        table = rng.standard_normal((4096, f)).astype(dt)
        ids = rng.integers(0, 4096, elems // f)
        return partial(ops.embedding, table, ids), 2 * elems * size + ids.nbytes, {"features": f}
    raise ValueError(op)


def elementwise_job(op: str, precision: str, elems: int, policy: TimingPolicy) -> Job:
    def run() -> Record:
        fn, nbytes, params = _elementwise_call(op, precision, elems, np.random.default_rng(elems))
        t = time_call(fn, policy)
        return {"op": op, "precision": precision, "elems": elems, "params": params, "timing": _rec(t),
                "gbps": nbytes / t.median_s / 1e9}
    return Job("elementwise", f"{op} {precision} {elems}", run)


def pool_job(op: str, batch: int, hw: int, kernel: int, stride: int, policy: TimingPolicy) -> Job:
    def run() -> Record:
        x = np.random.default_rng(hw).standard_normal((batch, hw, hw, POOL_CHANNELS)).astype(np.float32)
        if op == "global_avgpool":
            fn: Callable[[], object] = partial(ops.global_avgpool, x)
            params: dict[str, int] = {}
            out = batch * POOL_CHANNELS
        else:
            fn = partial(ops.maxpool if op == "maxpool" else ops.avgpool, x, kernel, stride)
            params = {"kernel": kernel, "stride": stride}
            out = batch * POOL_CHANNELS * (-(-hw // stride)) ** 2
        t = time_call(fn, policy)
        return {"op": op, "precision": "fp32", "elems": x.size, "params": params, "timing": _rec(t),
                "gbps": 4 * (x.size + out) / t.median_s / 1e9}
    return Job("elementwise", f"{op} {batch}x{hw}x{hw}x{POOL_CHANNELS}", run)


def elementwise_jobs(grid: Grid, policy: TimingPolicy) -> list[Job]:
    """Memory-bound kernels over a range of sizes, per precision; pooling over NHWC feature maps."""
    jobs = []
    for precision, op_names in grid.elementwise_ops.items():
        for op in op_names:
            if op in ("maxpool", "avgpool", "global_avgpool"):
                continue
            jobs += [elementwise_job(op, precision, e, policy) for e in grid.elems]
    pools = [op for op in grid.elementwise_ops["fp32"] if op.endswith("pool")]
    for batch, hw in grid.pool_shapes:
        for op in pools:
            windows = [(0, 0)] if op == "global_avgpool" else [(3, 2), (2, 2)] if op == "maxpool" else [(2, 2)]
            jobs += [pool_job(op, batch, hw, k, s, policy) for k, s in windows]
    return jobs


def conv_job(shape: tuple[int, int, int, int, int, int], batch: int, policy: TimingPolicy) -> Job:
    in_ch, out_ch, kernel, stride, groups, hw = shape

    def run() -> Record:
        rng = np.random.default_rng(in_ch * hw + batch)
        x = rng.standard_normal((batch, hw, hw, in_ch)).astype(np.float32)
        w = rng.standard_normal((in_ch // groups * kernel * kernel, out_ch)).astype(np.float32)
        t = time_call(partial(ops.conv2d, x, w, kernel, stride, groups), policy)
        out_hw = -(-hw // stride)
        flops = 2.0 * batch * out_hw * out_hw * out_ch * (in_ch // groups) * kernel * kernel
        return {"in_ch": in_ch, "out_ch": out_ch, "kernel": kernel, "stride": stride, "groups": groups,
                "in_hw": hw, "batch": batch, "precision": "fp32", "timing": _rec(t),
                "gflops": flops / t.median_s / 1e9}
    return Job("conv", f"conv {in_ch}->{out_ch} k{kernel}s{stride}g{groups} @{hw} b{batch}", run)


def attention_job(shape: tuple[int, int, int], batch: int, policy: TimingPolicy) -> Job:
    seq, heads, dim = shape

    def run() -> Record:
        qkv = np.random.default_rng(seq + batch).standard_normal((batch, seq, 3 * dim)).astype(np.float32)
        t = time_call(partial(ops.attention, qkv, heads), policy)
        flops = batch * 4.0 * seq * seq * dim
        return {"seq": seq, "heads": heads, "dim": dim, "batch": batch, "precision": "fp32",
                "timing": _rec(t), "gflops": flops / t.median_s / 1e9}
    return Job("attention", f"attention seq{seq} h{heads} d{dim} b{batch}", run)


def structure_jobs(grid: Grid, policy: TimingPolicy) -> list[Job]:
    """Convolutions and attention blocks at their shapes and batch sizes."""
    jobs = [conv_job(s, b, policy) for s in grid.convs for b in grid.conv_batches]
    jobs += [attention_job(s, b, policy) for s in grid.attentions for b in grid.attention_batches]
    return jobs

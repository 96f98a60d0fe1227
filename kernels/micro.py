"""Inference microbenchmarks: GEMM per precision, memory-bound kernels, convolution, attention, ceilings.

Each `*_jobs` function returns `Job`s: a label and a callable that measures one kernel and
returns its profile record (a dict in the `lepton_sim.profiles` format, minus figures that need
the machine ceilings, which the suite adds at the end).
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, Callable

import numpy as np

from kernels import ops
from kernels.forward import DenseWeights, PreparedDense, compile_steps, init_params, prepare_dense
from kernels.timing import TimingPolicy, current_guard, time_call

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
    gemm_min_m: dict[str, int]  # rows M up to this are measured whatever the FLOP cap
    gemm_cold_m: dict[str, tuple[int, ...]]  # rows M also timed with cold weights (see `cold_gemm_job`)
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
# GEMM inner and output sizes: factors of 2 from 16 up. Between grid points the time is interpolated
# log-log; across a factor of 4 that was off by up to 22% for fp32 (at 128 and 512, where the
# weights move between L2 and L3) and by up to 48% for int8 (numpy's integer loop, whose speed
# depends on how its column walks fit the caches). Across a factor of 2 it stays within a few per cent.
_KN = (1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_FLOAT_OPS = ("relu", "add", "copy", "batchnorm", "sigmoid", "tanh", "gelu", "layernorm", "softmax",
              "maxpool", "avgpool", "global_avgpool", "embedding")

FULL_GRID = Grid(
    gemm_m={"fp32": _POW2, "fp64": _POW4[:6], "fp16": _POW4[:5], "int8": _POW2, "int4": _POW4[:6]},
    gemm_kn={"fp32": _KN, "fp64": _POW4, "fp16": _POW4[:5], "int8": _KN, "int4": _POW4[:6]},
    gemm_max_flops={"fp32": 2 ** 34, "fp64": 2 ** 33, "fp16": 2 ** 25, "int8": 2 ** 27, "int4": 2 ** 28},
    gemm_min_m={"int8": 4},
    gemm_cold_m={"fp32": _POW2[:7]},
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
    gemm_m={"fp32": _POW2[:9], "fp64": (1, 16, 256), "fp16": (1, 16), "int8": _POW4[:4], "int4": (1, 16)},
    gemm_kn={"fp32": _KN, "fp64": (64, 1024), "fp16": (4, 16, 64), "int8": _KN, "int4": (4, 16, 64)},
    gemm_max_flops={"fp32": 2 ** 31, "fp64": 2 ** 30, "fp16": 2 ** 20, "int8": 2 ** 25, "int4": 2 ** 20},
    gemm_min_m={"int8": 4},
    gemm_cold_m={"fp32": _POW2[:7]},
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


@lru_cache(maxsize=1)
def _layer(precision: str, k: int, n: int) -> PreparedDense:
    """A (k, n) dense layer with random weights, prepared at `precision` as `kernels.forward` prepares it.

    Kept for the next job: the grid runs every M of a shape in a row, and drawing and quantising
    16 M weights takes longer than timing them.
    """
    rng = np.random.default_rng(k * 31 + n)
    w = rng.standard_normal((k, n), dtype=np.float32)
    b = rng.standard_normal(n, dtype=np.float32)
    return prepare_dense(DenseWeights(w, b), precision)


def _input(precision: str, m: int, k: int) -> np.ndarray:
    """An (m, k) input in the dtype the dense step receives (fp32 ahead of the int8/int4 paths)."""
    x = np.random.default_rng(m * 7919 + k).standard_normal((m, k), dtype=np.float32)
    return x.astype(_FLOAT_DT[precision]) if precision in _FLOAT_DT else x


def _dense_kernel(precision: str, m: int, k: int, n: int) -> Callable[[], object]:
    """A zero-argument call of the dense step at this shape and precision, exactly as `kernels.forward` runs it."""
    return partial(_layer(precision, k, n).step(), _input(precision, m, k))


def gemm_job(precision: str, m: int, k: int, n: int, policy: TimingPolicy) -> Job:
    def run() -> Record:
        fn = _dense_kernel(precision, m, k, n)
        t = time_call(fn, policy)
        return {"precision": precision, "m": m, "k": k, "n": n, "timing": _rec(t),
                "gflops": 2.0 * m * k * n / t.median_s / 1e9}
    return Job("gemm", f"gemm {precision} {m}x{k}x{n}", run)


COLD_MIN_BYTES = 256 * 2 ** 10
DEFAULT_LLC_BYTES = 32 * 2 ** 20  # assumed where the OS does not say


def rotation_bytes(llc_bytes: int) -> int:
    """Bytes of weight copies cycled through for a cold timing: twice the last-level cache (64 MiB at least).

    Each copy is reused only after all the others were read, so it has left every cache by then.
    """
    return max(2 * llc_bytes, 64 * 2 ** 20)


def warm_rotation_bytes(private_bytes: int) -> int:
    """Bytes of weight copies cycled through for a warm timing: four times a core's private cache.

    Each copy is reused only after the others were read, so it has left the private cache (L2) but
    is still in the shared last level: the weights of a chain whose layers fit the L2 one at a time
    but not together.
    """
    return 4 * private_bytes


def rotated_steps(layer: PreparedDense, total_bytes: int) -> list[Callable[[np.ndarray], np.ndarray]]:
    """Steps of `layer` and of enough copies of it to fill `total_bytes`."""
    copies = max(2, math.ceil(total_bytes / max(layer.nbytes, 1)))
    return [layer.step()] + [layer.copy().step() for _ in range(copies - 1)]


def cold_kernel(x: np.ndarray, steps: list[Callable[[np.ndarray], np.ndarray]]) -> Callable[[], object]:
    """A zero-argument call of the dense step whose weights are in no cache: each call reads the next copy."""
    it = itertools.cycle(steps)
    return lambda: next(it)(x)


def cold_gemm_job(precision: str, k: int, n: int, ms: tuple[int, ...], llc_bytes: int, policy: TimingPolicy) -> Job:
    """The dense step at rows `ms` with its weights fetched from memory on every call ("cold").

    The GEMM grid times each shape on its own, calling it again and again, so weights that fit a
    cache are served from it (hot). In a chain every layer's weights are read once per forward
    pass, and when all of them together outgrow the last-level cache each layer finds its
    weights evicted by the others': then its time is this cold one. One job per (k, n): the
    weight copies are made once and serve every M.
    """
    return _rotated_job("gemm_cold", "cold", precision, k, n, ms, rotation_bytes(llc_bytes), policy)


def warm_gemm_job(precision: str, k: int, n: int, ms: tuple[int, ...], private_bytes: int,
                  policy: TimingPolicy) -> Job:
    """The dense step at rows `ms` with its weights fetched from the shared last-level cache ("warm").

    A shape whose weights fit a core's private cache (L2) is timed hot from it; in a chain whose
    layers fit the L2 one at a time but not together, each layer finds its weights evicted from the
    L2 by the others' and reads them from the last level: then its time is this warm one.
    """
    return _rotated_job("gemm_warm", "warm", precision, k, n, ms, warm_rotation_bytes(private_bytes), policy)


def _rotated_job(section: str, what: str, precision: str, k: int, n: int, ms: tuple[int, ...], total_bytes: int,
                 policy: TimingPolicy) -> Job:
    def run() -> Record:
        steps = rotated_steps(_layer(precision, k, n), total_bytes)
        rows = []
        for m in ms:
            rows.append({"m": m, "timing": _rec(time_call(cold_kernel(_input(precision, m, k), steps), policy))})
        return {"precision": precision, "k": k, "n": n, "rows": rows}
    return Job(section, f"gemm {precision} {what} {k}x{n}", run)


def warm_applies(private_bytes: int | None, llc_bytes: int) -> bool:
    """Is there a shared last level to time warm weights from: a private cache size known, and the
    last level at least eight times it (room for the warm rotation with half of it to spare)?"""
    return private_bytes is not None and 8 * private_bytes <= llc_bytes


def weight_bytes(precision: str, k: int, n: int) -> int:
    """Bytes of a prepared (k, n) dense layer's weights at `precision` (codes, scales and bias included)."""
    per = {"fp64": 8.0, "fp32": 4.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5}[precision]
    extra = n * (8 if precision.startswith("int") else per)  # bias (and per-channel scales)
    return int(k * n * per + extra)


def gemm_jobs(grid: Grid, policy: TimingPolicy, llc_bytes: int | None = None,
              private_bytes: int | None = None) -> list[Job]:
    """The GEMM grid: rows M x inner K x outputs N per precision, within each precision's FLOP cap.

    Every shape is measured at rows up to `grid.gemm_min_m` at least, so that the measured model
    has two row counts of it to carry on from (`lepton_sim.profiles.measured.scaled_in_m`) where
    the cap leaves larger batches unmeasured: numpy's int8 loop runs at a fifth of its small-shape
    rate on 4096 x 4096, so no other shape's rate stands in for it.

    Where `grid.gemm_cold_m` names a precision, the shapes whose weights are between
    `COLD_MIN_BYTES` and the last-level cache are timed cold as well (`cold_gemm_job`): larger
    weights are cold in the grid's own timing already, smaller ones cost a few microseconds to fetch.
    Where a core's private cache size is known and well below the last level, the shapes whose
    weights are between `COLD_MIN_BYTES` and it are timed warm too (`warm_gemm_job`).
    """
    llc = llc_bytes or DEFAULT_LLC_BYTES
    jobs = []
    for precision, ms in grid.gemm_m.items():
        sizes = grid.gemm_kn[precision]
        cap = grid.gemm_max_flops[precision]
        cold_ms = grid.gemm_cold_m.get(precision, ())
        min_m = grid.gemm_min_m.get(precision, 0)
        for k in sizes:
            for n in sizes:
                here = [m for m in ms if 2.0 * m * k * n <= cap or m <= min_m]
                jobs += [gemm_job(precision, m, k, n, policy) for m in here]
                cold_here = tuple(m for m in cold_ms if m in here)
                if cold_here and COLD_MIN_BYTES <= weight_bytes(precision, k, n) <= llc:
                    jobs.append(cold_gemm_job(precision, k, n, cold_here, llc, policy))
                    if warm_applies(private_bytes, llc) and weight_bytes(precision, k, n) <= private_bytes:
                        jobs.append(warm_gemm_job(precision, k, n, cold_here, private_bytes, policy))  # type: ignore[arg-type]
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


# A small chain of the kind whose steps take microseconds each (not a model the profile times whole).
CHAIN_LAYERS: list[dict[str, Any]] = [{"op": "dense", "in": 64, "out": 128}, {"op": "relu"},
                                      {"op": "dense", "in": 128, "out": 128}, {"op": "gelu"},
                                      {"op": "dense", "in": 128, "out": 16}]
CHAIN_ROUNDS = 15
CHAIN_CALLS = 100


def chain_job(policy: TimingPolicy) -> Job:
    """What a chain costs beyond the sum of its steps timed one at a time, per layer (`chain_step_s`).

    A step timed on its own runs again and again with its code, branch history and data hot; in a
    chain each step follows a different one. For steps of a few microseconds that costs a few
    tenths of a microsecond each, which the per-layer sum misses. The difference of two timings
    is small next to either, so it is taken within each of CHAIN_ROUNDS short rounds (the chain,
    then each step, CHAIN_CALLS calls apiece, a few milliseconds in all, so that both see the
    machine alike) and the median over rounds kept: over the rounds a `kernels.timing.Guard`
    found undisturbed either side, where at least three were. The input cast before the first
    layer is counted in, spread over the layers. `policy` sets the warm-up calls.
    """
    def run() -> Record:
        steps = compile_steps(CHAIN_LAYERS, init_params(CHAIN_LAYERS, np.random.default_rng(5)), "fp32")
        x = np.random.default_rng(6).standard_normal((1, CHAIN_LAYERS[0]["in"])).astype(np.float32)
        inputs, cur = [], x
        for step in steps:
            inputs.append(cur)
            cur = step(cur)

        def chain() -> np.ndarray:
            y = x
            for step in steps:
                y = step(y)
            return y

        calls = [chain] + [partial(step, inp) for step, inp in zip(steps[1:], inputs[1:])]
        for fn in calls:
            for _ in range(max(1, policy.warmup)):
                fn()
        guard = current_guard()
        rounds: list[tuple[float, float, bool]] = []  # chain, excess per layer, undisturbed
        for _ in range(CHAIN_ROUNDS):
            before = guard is None or guard.calm()
            per = []
            for fn in calls:
                t = time.perf_counter()
                for _ in range(CHAIN_CALLS):
                    fn()
                per.append((time.perf_counter() - t) / CHAIN_CALLS)
            calm = before and (guard is None or guard.calm())
            rounds.append((per[0], (per[0] - sum(per[1:])) / (len(calls) - 1), calm))
        kept = [r for r in rounds if r[2]]
        kept = kept if len(kept) >= 3 else rounds
        whole, step_s = float(np.median([r[0] for r in kept])), float(np.median([r[1] for r in kept]))
        return {"layers": CHAIN_LAYERS, "batch": 1, "whole_s": whole, "step_s": max(0.0, step_s)}
    return Job("chain", "chain of small layers", run)


def structure_jobs(grid: Grid, policy: TimingPolicy) -> list[Job]:
    """Convolutions and attention blocks at their shapes and batch sizes."""
    jobs = [conv_job(s, b, policy) for s in grid.convs for b in grid.conv_batches]
    jobs += [attention_job(s, b, policy) for s in grid.attentions for b in grid.attention_batches]
    return jobs

"""Whole-model forward passes of flat layer chains (MLPs) built from the kernels in `kernels.ops`.

A model is a list of scenario layer dicts plus one `DenseWeights` per dense layer. `compile_forward`
turns it into a callable for one precision, doing every weight transform (cast, quantise, pack)
once up front, so that a call runs only what inference runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np

from kernels import ops

Forward = Callable[[np.ndarray], np.ndarray]
EXECUTABLE_OPS = ("dense", "relu", "gelu", "tanh", "sigmoid", "softmax", "layernorm")
_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": ops.relu, "gelu": ops.gelu, "tanh": ops.tanh, "sigmoid": ops.sigmoid, "softmax": ops.softmax,
}
_FLOAT = {"fp64": np.float64, "fp32": np.float32, "fp16": np.float16}


@dataclass(frozen=True)
class DenseWeights:
    """Float32 weights of one dense layer: w is (in, out), b is (out,)."""

    w: np.ndarray
    b: np.ndarray


Params = list[DenseWeights | None]  # one entry per layer; None for layers without weights


def layer_dicts(layers: Sequence[Any]) -> list[dict[str, Any]]:
    """Scenario layer dicts (``in`` spelled as in YAML) from dicts or pydantic layer objects."""
    out = []
    for layer in layers:
        if isinstance(layer, dict):
            out.append(dict(layer))
        else:
            out.append(layer.model_dump(by_alias=True, exclude_defaults=True) | {"op": layer.op})
    return out


def check_executable(layers: Sequence[dict[str, Any]]) -> None:
    """ValueError unless every layer is one the runner executes (a flat MLP-like chain)."""
    for i, layer in enumerate(layers):
        op = layer["op"]
        if op not in EXECUTABLE_OPS:
            raise ValueError(f"layers[{i}]: the kernels runner executes {', '.join(EXECUTABLE_OPS)}; got {op!r}")
        if op == "dense" and layer.get("tokens", 1) != 1:
            raise ValueError(f"layers[{i}]: the kernels runner executes dense layers with tokens=1 only")
        if layer.get("branch") or layer.get("reads") is not None or layer.get("weights_of") is not None:
            raise ValueError(f"layers[{i}]: the kernels runner executes plain chains, not branches, "
                             f"reads or weights_of")


def init_params(layers: Sequence[dict[str, Any]], rng: np.random.Generator) -> Params:
    """He-initialised float32 weights for every dense layer, zero biases."""
    params: Params = []
    for layer in layers:
        if layer["op"] == "dense":
            k, n = layer["in"], layer["out"]
            w = (rng.standard_normal((k, n)) * np.sqrt(2.0 / k)).astype(np.float32)
            params.append(DenseWeights(w, np.zeros(n, np.float32)))
        else:
            params.append(None)
    return params


def _features(layers: Sequence[dict[str, Any]], i: int) -> int:
    """Feature size reaching layer i (the last dense layer's output before it, or its own `size`)."""
    for layer in reversed(layers[:i]):
        if layer["op"] == "dense":
            return int(layer["out"])
    size = layers[i].get("size")
    if size is None:
        raise ValueError(f"layers[{i}]: first layer needs `size`")
    return int(size)


@dataclass(frozen=True)
class PreparedDense:
    """A dense layer's arrays as its step at one precision reads them on every call.

    Cast weights and bias (fp64/fp32/fp16), or quantised codes, per-channel scales and an fp32
    bias (int8), with the codes packed two per byte (int4); `k` is the layer's input size.
    """

    precision: str
    arrays: tuple[np.ndarray, ...]
    k: int

    @property
    def nbytes(self) -> int:
        """Bytes a call reads besides its input: what has to come from memory when nothing is cached."""
        return sum(a.nbytes for a in self.arrays)

    def copy(self) -> PreparedDense:
        """The same layer in fresh memory (the microbenchmarks rotate copies to time it with cold caches)."""
        return PreparedDense(self.precision, tuple(a.copy() for a in self.arrays), self.k)

    def step(self) -> Callable[[np.ndarray], np.ndarray]:
        if self.precision in _FLOAT:
            w, b = self.arrays
            return lambda x: ops.dense(x, w, b)
        if self.precision == "int8":
            codes, scale, b32 = self.arrays
            return lambda x: ops.dense_int8(x, codes, scale, b32)
        packed, scale, b32 = self.arrays
        k = self.k
        return lambda x: ops.dense_int4(x, packed, k, scale, b32)


def prepare_dense(p: DenseWeights, precision: str) -> PreparedDense:
    """Every weight transform of a dense layer at `precision` (cast, quantise, pack), done once."""
    k = int(p.w.shape[0])
    if precision in _FLOAT:
        dt = _FLOAT[precision]
        return PreparedDense(precision, (p.w.astype(dt), p.b.astype(dt)), k)
    b32 = p.b.astype(np.float32)
    if precision == "int8":
        codes, scale = ops.quantise_per_channel(p.w, 8)
        return PreparedDense(precision, (codes, scale, b32), k)
    if precision == "int4":
        codes, scale = ops.quantise_per_channel(p.w, 4)
        return PreparedDense(precision, (ops.pack_int4(codes), scale, b32), k)
    raise ValueError(f"the kernels runner has no {precision} path")


def dense_step(p: DenseWeights, precision: str) -> Callable[[np.ndarray], np.ndarray]:
    """The dense layer as a forward step at `precision`, weights transformed once (cast, quantise, pack).

    The microbenchmarks time this same step, so a chain's time is the sum of its steps' times.
    """
    return prepare_dense(p, precision).step()


def _layernorm_step(gamma: np.ndarray, beta: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: ops.layernorm(x, gamma, beta)


def compile_steps(layers: Sequence[dict[str, Any]], params: Params,
                  precision: str) -> list[Callable[[np.ndarray], np.ndarray]]:
    """The steps a forward pass of the chain runs in order: the cast of the input, then one per layer."""
    check_executable(layers)
    act = _FLOAT.get(precision, np.float32)  # int8/int4 dense layers dequantise to fp32
    steps: list[Callable[[np.ndarray], np.ndarray]] = [partial(np.asarray, dtype=act)]
    for i, (layer, p) in enumerate(zip(layers, params)):
        op = layer["op"]
        if op == "dense":
            assert p is not None
            steps.append(dense_step(p, precision))
        elif op == "layernorm":
            f = _features(layers, i)
            steps.append(_layernorm_step(np.ones(f, act), np.zeros(f, act)))
        else:
            steps.append(_ACTIVATIONS[op])
    return steps


def compile_forward(layers: Sequence[dict[str, Any]], params: Params, precision: str) -> Forward:
    """A forward callable of the chain at `precision` (fp64, fp32, fp16, int8 or int4)."""
    steps = compile_steps(layers, params, precision)

    def forward(x: np.ndarray) -> np.ndarray:
        for step in steps:
            x = step(x)
        return x

    return forward

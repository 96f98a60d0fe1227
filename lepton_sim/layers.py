"""Layer operations of a model, their shapes and their per-sample cost.

A model is a flat chain of layers. Each layer reads the previous layer's output, except layers
marked ``branch: true``, which form a side path (a ResNet projection shortcut, BERT's position
embeddings): the first branch layer reads the same tensor as the main chain, later branch layers
read the branch, and the next ``add`` merges the branch into the main chain (checking both sides
have the same size). An ``add`` with no pending branch is an identity residual connection.

Two fields let a chain express a network that is not one: ``reads: N`` makes a main-chain layer
read the output of ``layers[N]`` (an earlier main-chain layer) instead of the previous layer's,
as a feature pyramid's lateral convolutions read the backbone's stages; ``weights_of: N`` makes a
conv or dense layer run with the weights of ``layers[N]`` (same op and shape), as a detection
head runs on every pyramid level: the weights are stored once, so the layer counts none, and a
runtime keeps them in cache between the levels, so it reads none.

Costs are per sample: FLOPs count a multiply-add as 2; activation traffic counts elements read
plus written as if the layer ran alone; the service-time model decides what fuses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NoReturn, Sequence, Union

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt

# Bytes per stored weight; int4 packs two weights per byte.
WEIGHT_BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
# Bytes per activation element: int4 models keep 8-bit activations (W4A8), as deployed runtimes do.
ACT_BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 1.0}
PRECISIONS = tuple(WEIGHT_BYTES)

# Metadata of 2:4 sparsity: a 2-bit position index per kept value (NVIDIA Ampere sparse tensor cores).
SPARSE_24_INDEX_BITS = 2
# Unstructured sparsity is stored as the kept values plus a 1-bit-per-weight presence bitmap.
UNSTRUCTURED_BITMAP_BITS = 1

# Modelled FLOPs per element for non-matmul ops; these ops are memory-bound, so the exact count
# barely matters.
_ELEMENTWISE_FLOPS = {"relu": 1.0, "tanh": 4.0, "sigmoid": 4.0, "gelu": 8.0, "add": 1.0}
_NORM_FLOPS = {"batchnorm": 2.0, "layernorm": 5.0, "softmax": 5.0}


class _LayerBase(BaseModel):
    """Fields shared by every op: ``branch`` puts the layer on the side path merged by the next add;
    ``reads`` and ``weights_of`` name an earlier layer whose output or weights it uses (module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    branch: bool = False
    reads: NonNegativeInt | None = None
    weights_of: NonNegativeInt | None = None


class Dense(_LayerBase):
    """Fully connected layer ``in -> out`` applied to ``tokens`` rows (a sequence) per sample.

    ``in`` must equal the previous layer's feature size (its last dimension) or its whole output
    (a flatten); ``tokens`` may be fewer than the rows available (e.g. BERT's pooler reads [CLS]).
    """

    op: Literal["dense"] = "dense"
    in_: PositiveInt = Field(alias="in")
    out: PositiveInt
    tokens: PositiveInt = 1
    bias: bool = True


class Conv2d(_LayerBase):
    """2-D convolution over a square ``in_hw`` x ``in_hw`` input with "same" padding.

    Output size is ceil(in_hw / stride). ``groups`` = ``in_ch`` gives a depthwise convolution.
    ``in_hw`` may be omitted after a spatial layer, which supplies it. No bias (a batchnorm follows).
    """

    op: Literal["conv2d"] = "conv2d"
    in_ch: PositiveInt
    out_ch: PositiveInt
    kernel: PositiveInt
    stride: PositiveInt = 1
    groups: PositiveInt = 1
    in_hw: PositiveInt | None = None


class Relu(_LayerBase):
    """ReLU (or ReLU6): elementwise; ``size`` (elements per sample) only needed as a first layer."""

    op: Literal["relu"] = "relu"
    size: PositiveInt | None = None


class Gelu(_LayerBase):
    """GELU: elementwise; ``size`` only needed as a first layer."""

    op: Literal["gelu"] = "gelu"
    size: PositiveInt | None = None


class Sigmoid(_LayerBase):
    """Sigmoid: elementwise; ``size`` only needed as a first layer."""

    op: Literal["sigmoid"] = "sigmoid"
    size: PositiveInt | None = None


class Tanh(_LayerBase):
    """Tanh (BERT's pooler activation): elementwise; ``size`` only needed as a first layer."""

    op: Literal["tanh"] = "tanh"
    size: PositiveInt | None = None


class Add(_LayerBase):
    """Elementwise sum of the main chain and a pending branch (or an identity shortcut)."""

    op: Literal["add"] = "add"
    size: PositiveInt | None = None


class BatchNorm(_LayerBase):
    """Inference batchnorm (scale and shift per channel, 2 parameters per channel)."""

    op: Literal["batchnorm"] = "batchnorm"


class LayerNorm(_LayerBase):
    """Layer normalisation over the feature dimension (2 parameters per feature)."""

    op: Literal["layernorm"] = "layernorm"
    size: PositiveInt | None = None


class Softmax(_LayerBase):
    """Softmax over the feature dimension; ``size`` only needed as a first layer."""

    op: Literal["softmax"] = "softmax"
    size: PositiveInt | None = None


class MaxPool(_LayerBase):
    """Max pooling with a ``kernel`` x ``kernel`` window; ``stride`` defaults to ``kernel``."""

    op: Literal["maxpool"] = "maxpool"
    kernel: PositiveInt
    stride: PositiveInt | None = None


class AvgPool(_LayerBase):
    """Average pooling with a ``kernel`` x ``kernel`` window; ``stride`` defaults to ``kernel``."""

    op: Literal["avgpool"] = "avgpool"
    kernel: PositiveInt
    stride: PositiveInt | None = None


class GlobalAvgPool(_LayerBase):
    """Average over the whole spatial extent: C x H x W -> C."""

    op: Literal["global_avgpool"] = "global_avgpool"


class Attention(_LayerBase):
    """Multi-head self-attention core: QK^T, softmax, and AV over ``seq`` tokens.

    ``dim`` is the model width (heads x head size). The input is the fused Q, K, V projection
    (3 x seq x dim elements per sample); the projections themselves are separate dense layers.
    """

    op: Literal["attention"] = "attention"
    seq: PositiveInt
    heads: PositiveInt
    dim: PositiveInt


class Embedding(_LayerBase):
    """Table lookup of ``seq`` token ids into a ``vocab`` x ``dim`` table; reads the model input."""

    op: Literal["embedding"] = "embedding"
    vocab: PositiveInt
    dim: PositiveInt
    seq: PositiveInt


AnyLayer = Union[
    Dense, Conv2d, Relu, Gelu, Sigmoid, Tanh, Add, BatchNorm, LayerNorm, Softmax,
    MaxPool, AvgPool, GlobalAvgPool, Attention, Embedding,
]
# The type to embed in schemas: validates a dict by its ``op`` key.
Layer = Annotated[AnyLayer, Field(discriminator="op")]


class LayerShapeError(ValueError):
    """A layer's size cannot be inferred or does not match its input; ``index`` names the layer."""

    def __init__(self, index: int, op: str, detail: str) -> None:
        self.index = index
        self.detail = detail
        super().__init__(f"layers[{index}] ({op}): {detail}")


@dataclass(frozen=True)
class LayerCost:
    """Per-sample cost of one layer."""

    op: str
    flops: float  # per sample, multiply-add = 2 FLOPs
    weight_params: int
    act_elems: float  # activation elements read + written per sample
    tensor_op: bool  # dense/conv/attention matmul math, eligible for tensor-core peaks and 2:4 sparsity
    shares_weights: bool = False  # runs with an earlier layer's weights (weights_of): counts none of its own


@dataclass(frozen=True)
class ModelCost:
    """Totals of a layer chain at one precision and sparsity."""

    flops: float  # per sample
    tensor_flops: float  # the part of ``flops`` done by tensor ops
    params: int
    weight_bytes: float  # stored weights at the precision, after sparse compression


@dataclass(frozen=True)
class _Shape:
    """Per-sample output of a layer: element count, feature (last) size, spatial size, rows."""

    elems: int
    features: int
    hw: int | None = None
    rows: int = 1


def _flat(size: int) -> _Shape:
    return _Shape(elems=size, features=size)


class _Mismatch(Exception):
    """Raised inside shape inference; ``layer_costs`` adds the layer index."""


def _fail(detail: str) -> NoReturn:
    raise _Mismatch(detail)


def _cost(layer: AnyLayer, x: _Shape | None) -> tuple[LayerCost, _Shape]:
    """Cost and output shape of ``layer`` given its input shape ``x`` (None: it is the first)."""
    op = layer.op
    if isinstance(layer, Embedding):
        out = layer.seq * layer.dim
        # A gather: reads the ids and seq table rows, writes seq rows. Only the rows touched move.
        return (LayerCost(op, 0.0, layer.vocab * layer.dim, float(layer.seq + 2 * out), False),
                _Shape(out, layer.dim, None, layer.seq))

    if isinstance(layer, Dense):
        if x is not None:
            if layer.in_ == x.features:
                rows = x.elems // x.features
            elif layer.in_ == x.elems:
                rows = 1
            else:
                _fail(f"in={layer.in_} matches neither the previous layer's {x.features} features "
                     f"nor its {x.elems} elements per sample")
            if layer.tokens > rows:
                _fail(f"tokens={layer.tokens} but the previous layer gives only {rows} rows of {layer.in_}")
        macs = layer.tokens * layer.in_ * layer.out
        params = layer.in_ * layer.out + (layer.out if layer.bias else 0)
        acts = layer.tokens * (layer.in_ + layer.out)
        return (LayerCost(op, 2.0 * macs, params, float(acts), True),
                _Shape(layer.tokens * layer.out, layer.out, None, layer.tokens))

    if isinstance(layer, Conv2d):
        in_hw = layer.in_hw
        if x is not None:
            if x.hw is not None:
                if in_hw is None:
                    in_hw = x.hw
                if (x.features, x.hw) != (layer.in_ch, in_hw):
                    _fail(f"expects {layer.in_ch} channels at {in_hw}x{in_hw}, previous layer gives "
                         f"{x.features} channels at {x.hw}x{x.hw}")
            elif in_hw is None or x.elems != layer.in_ch * in_hw * in_hw:
                _fail(f"previous layer gives {x.elems} elements, not in_ch x in_hw^2")
        if in_hw is None:
            _fail("in_hw is required when the input is not the output of a spatial layer")
        if layer.in_ch % layer.groups or layer.out_ch % layer.groups:
            _fail(f"groups={layer.groups} must divide in_ch={layer.in_ch} and out_ch={layer.out_ch}")
        out_hw = math.ceil(in_hw / layer.stride)
        params = layer.out_ch * (layer.in_ch // layer.groups) * layer.kernel ** 2
        macs = params * out_hw * out_hw
        acts = layer.in_ch * in_hw * in_hw + layer.out_ch * out_hw * out_hw
        return (LayerCost(op, 2.0 * macs, params, float(acts), True),
                _Shape(layer.out_ch * out_hw * out_hw, layer.out_ch, out_hw, out_hw * out_hw))

    if isinstance(layer, Attention):
        if layer.dim % layer.heads:
            _fail(f"dim={layer.dim} is not a multiple of heads={layer.heads}")
        qkv = 3 * layer.seq * layer.dim
        if x is not None and x.elems != qkv:
            _fail(f"expects the fused Q, K, V projection (3 x seq x dim = {qkv} elements), "
                 f"previous layer gives {x.elems}")
        scores = layer.heads * layer.seq * layer.seq
        # QK^T and AV: seq^2 x dim multiply-adds each; softmax over the scores.
        flops = 4.0 * layer.seq * layer.seq * layer.dim + _NORM_FLOPS["softmax"] * scores
        # Unfused: Q, K, V read, output written, scores written + read, probabilities written + read.
        acts = qkv + layer.seq * layer.dim + 4 * scores
        return (LayerCost(op, flops, 0, float(acts), True),
                _Shape(layer.seq * layer.dim, layer.dim, None, layer.seq))

    if isinstance(layer, (MaxPool, AvgPool, GlobalAvgPool)):
        if x is None or x.hw is None:
            _fail("needs a spatial input (a conv2d or pooling layer before it)")
        channels = x.features
        if isinstance(layer, GlobalAvgPool):
            return (LayerCost(op, float(x.elems), 0, float(x.elems + channels), False),
                    _Shape(channels, channels, 1, 1))
        out_hw = math.ceil(x.hw / (layer.stride or layer.kernel))
        out = channels * out_hw * out_hw
        return (LayerCost(op, float(out * layer.kernel ** 2), 0, float(x.elems + out), False),
                _Shape(out, channels, out_hw, out_hw * out_hw))

    # Shape-preserving ops: elementwise activations, add, norms, softmax.
    size = getattr(layer, "size", None)
    if x is None:
        if size is None:
            _fail("first layer: give `size` (elements per sample), it cannot be inferred")
        x = _flat(size)
    elif size is not None and size != x.elems:
        _fail(f"size={size} but the previous layer gives {x.elems} elements per sample")
    if isinstance(layer, BatchNorm):
        params = 2 * x.features
    elif isinstance(layer, LayerNorm):
        params = 2 * x.features
    else:
        params = 0
    per_elem = _ELEMENTWISE_FLOPS.get(op) or _NORM_FLOPS[op]
    reads = 2 if isinstance(layer, Add) else 1
    return LayerCost(op, per_elem * x.elems, params, float((reads + 1) * x.elems), False), x


def layer_costs(layers: Sequence[Layer]) -> list[LayerCost]:
    """Per-sample cost of each layer, inferring shapes through the chain; LayerShapeError on mismatch."""
    main: _Shape | None = None
    side: _Shape | None = None
    side_start = 0
    costs: list[LayerCost] = []
    outputs: list[_Shape | None] = []  # each main-chain layer's output (None for a branch layer)
    for i, layer in enumerate(layers):
        try:
            if layer.reads is not None:
                if layer.branch or side is not None:
                    _fail("a layer that reads an earlier layer's output (reads) cannot be on or inside a branch")
                if layer.reads >= i or outputs[layer.reads] is None:
                    _fail(f"reads={layer.reads} must name an earlier main-chain layer (0..{i - 1})")
                main = outputs[layer.reads]
            if layer.branch:
                if isinstance(layer, Add):
                    _fail("an add merges a branch; it cannot itself be on a branch")
                if side is None:
                    side_start = i
                cost, side = _cost(layer, side if side is not None else main)
            else:
                if isinstance(layer, Add) and side is not None:
                    if main is None or side.elems != main.elems:
                        _fail(f"branch gives {side.elems} elements per sample, main chain gives "
                             f"{main.elems if main else 0}")
                    side = None
                cost, main = _cost(layer, main)
            if layer.weights_of is not None:
                cost = _shared(layer, cost, i, layers, costs)
        except _Mismatch as exc:
            raise LayerShapeError(i, layer.op, str(exc)) from None
        costs.append(cost)
        outputs.append(None if layer.branch else main)
    if side is not None:
        raise LayerShapeError(side_start, layers[side_start].op, "branch is never merged by an add")
    return costs


def _shared(layer: AnyLayer, cost: LayerCost, i: int, layers: Sequence[Layer], costs: list[LayerCost]) -> LayerCost:
    """The cost of a layer that runs with an earlier layer's weights: the same, without its weights."""
    j = layer.weights_of
    assert j is not None
    if not isinstance(layer, (Conv2d, Dense)):
        _fail("weights_of applies to conv2d and dense layers only")
    if j >= i:
        _fail(f"weights_of={j} must name an earlier layer (0..{i - 1})")
    other = layers[j]
    mine = layer.model_dump(exclude={"branch", "reads", "weights_of", "in_hw", "tokens"})
    theirs = other.model_dump(exclude={"branch", "reads", "weights_of", "in_hw", "tokens"})
    if mine != theirs or costs[j].weight_params == 0:
        _fail(f"weights_of={j}: layers[{j}] ({other.op}) does not hold weights of this layer's op and shape")
    return LayerCost(cost.op, cost.flops, 0, cost.act_elems, cost.tensor_op, shares_weights=True)


def prunable(cost: LayerCost) -> bool:
    """Whether sparsity applies to the layer's weights: matmul weights (dense, conv), not tables or norms."""
    return cost.tensor_op and (cost.weight_params > 0 or cost.shares_weights)


def bytes_per_weight(precision: str, sparsity: Any = None, *, prune: bool = True) -> float:
    """Stored bytes per (dense-count) weight at ``precision``, after sparse compression.

    2:4: half the values kept, each with a 2-bit index. Unstructured ratio r: (1 - r) of the values
    plus a 1-bit-per-weight bitmap, or the dense layout if that is smaller (low r, int4).
    ``sparsity`` is None or has ``.pattern`` ("2:4" | "unstructured") and ``.ratio``.
    """
    if precision not in WEIGHT_BYTES:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    dense = WEIGHT_BYTES[precision]
    if sparsity is None or not prune:
        return dense
    pattern, ratio = sparsity.pattern, float(sparsity.ratio)
    if pattern == "2:4":
        if ratio != 0.5:
            raise ValueError(f"2:4 sparsity keeps half the weights: ratio must be 0.5, got {ratio}")
        return 0.5 * (dense + SPARSE_24_INDEX_BITS / 8)
    if pattern == "unstructured":
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"unstructured sparsity ratio must be in [0, 1), got {ratio}")
        return min(dense, (1.0 - ratio) * dense + UNSTRUCTURED_BITMAP_BITS / 8)
    raise ValueError(f"unknown sparsity pattern {pattern!r}; expected '2:4' or 'unstructured'")


def model_summary(layers: Sequence[Layer], precision: str, sparsity: Any = None) -> ModelCost:
    """Total per-sample FLOPs, parameters and stored weight bytes of a layer chain.

    Sparsity shrinks stored bytes only; whether 2:4 also halves math depends on the hardware and
    is decided by the service-time model.
    """
    costs = layer_costs(layers)
    return ModelCost(
        flops=sum(c.flops for c in costs),
        tensor_flops=sum(c.flops for c in costs if c.tensor_op),
        params=sum(c.weight_params for c in costs),
        weight_bytes=sum(c.weight_params * bytes_per_weight(precision, sparsity, prune=prunable(c))
                         for c in costs),
    )

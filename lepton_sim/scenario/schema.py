"""Typed scenario objects: the scenario language of SCENARIO.md as pydantic models.

Every model forbids unknown keys and is frozen. Units live in the key names. Cross-references
(a service naming a model, a link naming a site) are checked by `lepton_sim.scenario.load`, which
also resolves `from:` catalogue and zoo entries before these models see the data.
"""
from __future__ import annotations

import math
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, field_validator, model_validator

from lepton_sim.layers import Layer

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$", max_length=64)]
Precision = Literal["fp32", "fp16", "bf16", "fp8", "int8", "int4"]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Strict(BaseModel):
    """Base: unknown keys are errors, objects are immutable after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- horizon -------------------------------------------------------------------------------


class Horizon(Strict):
    """Simulated time: arrivals run for `duration_s`; the first `warmup_s` are excluded from metrics.

    After the last arrival the simulation keeps running for at most `drain_s` so that requests
    already in the system finish; those still unfinished then are reported as in flight.
    """

    duration_s: PositiveFloat
    warmup_s: NonNegFloat = 0.0
    drain_s: NonNegFloat = 60.0

    @model_validator(mode="after")
    def _warmup_before_end(self) -> Horizon:
        if self.warmup_s >= self.duration_s:
            raise ValueError(f"warmup_s ({self.warmup_s}) must be less than duration_s ({self.duration_s})")
        return self


# --- hardware ------------------------------------------------------------------------------


Fraction = Annotated[float, Field(gt=0, le=1)]


class HardwareSpec(Strict):
    """A node type: peak rates per precision, memory, power and price (after `from:` is resolved)."""

    kind: Literal["gpu", "fpga", "cpu", "edge", "accelerator"]
    peak_tflops: dict[Precision, PositiveFloat] = Field(min_length=1)  # int8/int4 in TOPS
    memory_bandwidth_gbps: PositiveFloat  # gigaBYTES per second, as datasheets give it
    memory_gb: PositiveFloat
    power_w: NonNegFloat
    idle_power_w: NonNegFloat
    cost_per_hour: NonNegFloat
    sparse_2_4: bool = False
    # One fraction of peak for every precision, or one per precision (what `calibrate` fits).
    compute_efficiency: Fraction | dict[Precision, Fraction] | None = None
    memory_efficiency: Fraction | None = None
    kernel_overhead_us: NonNegFloat | None = None
    # Device-to-device bandwidth inside one node (NVLink, PCIe), gigaBYTES per second per direction:
    # the per-layer all-reduce of a tensor-parallel LLM replica crosses it.
    interconnect_gbps: PositiveFloat | None = None
    on_chip_mb: NonNegFloat | None = None  # on-chip cache/SRAM: activations between layers, weights between batches while they fit
    profile: str | None = None  # a measured kernel profile (path relative to the scenario file)
    # A file written by `lepton-sim calibrate`; the loader has already applied its fitted figures.
    calibration: str | None = None
    sources: dict[str, str] = Field(default_factory=dict)
    name: str = Field(default="", exclude=True)  # set by the loader from the mapping key
    _measured: Any = PrivateAttr(default=None)  # the loaded `lepton_sim.profiles.Profile`

    @property
    def measured(self) -> Any:
        """The loaded kernel profile whose measurements give this type's compute times, or None."""
        return self._measured

    @model_validator(mode="after")
    def _idle_below_busy(self) -> HardwareSpec:
        if self.idle_power_w > self.power_w:
            raise ValueError(f"idle_power_w ({self.idle_power_w}) exceeds power_w ({self.power_w})")
        return self


# --- sites and links -----------------------------------------------------------------------


class Site(Strict):
    """A place with hardware: how many nodes of each hardware type it can host."""

    kind: Literal["datacenter", "edge"] = "datacenter"
    capacity: dict[Name, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    # Between the nodes of this site, gigaBITS per second per node (a training job's nodes cross it).
    fabric_gbps: PositiveFloat | None = None
    fabric_latency_us: NonNegFloat = 5.0  # one way, per step of a collective between nodes


class Link(Strict):
    """An undirected network link; each direction is a separate shared channel."""

    between: tuple[Name, Name]
    bandwidth_gbps: PositiveFloat  # gigaBITS per second
    latency_ms: NonNegFloat  # one way, propagation
    cost_per_gb: NonNegFloat = 0.0  # USD per GB crossing the link, either direction
    sharing: Literal["fifo", "fair"] = "fifo"


# --- models and variants -------------------------------------------------------------------


class Sparsity(Strict):
    """Weight sparsity: structured 2:4 (ratio 0.5) or unstructured at `ratio`."""

    pattern: Literal["2:4", "unstructured"]
    ratio: Annotated[float, Field(gt=0, lt=1)]

    @model_validator(mode="after")
    def _two_four_is_half(self) -> Sparsity:
        if self.pattern == "2:4" and abs(self.ratio - 0.5) > 1e-9:
            raise ValueError("2:4 sparsity keeps 2 of every 4 weights: ratio must be 0.5")
        return self


class Variant(Strict):
    """A compression level of a model: precision, optional sparsity, optional distilled layer list."""

    precision: Precision = "fp32"
    sparsity: Sparsity | None = None
    layers: list[Layer] | None = Field(default=None, min_length=1)  # a distilled student
    accuracy: Annotated[float, Field(ge=0, le=1)] | None = None
    accuracy_source: str | None = None


class ModelSpec(Strict):
    """A model: layer shapes, request and response sizes, and its variants."""

    layers: list[Layer] = Field(min_length=1)
    input_bytes: Annotated[int, Field(gt=0)]
    output_bytes: Annotated[int, Field(gt=0)]
    variants: dict[Name, Variant] = Field(default_factory=lambda: {"fp32": Variant()})
    source: str | None = None
    name: str = Field(default="", exclude=True)


class LLMVariant(Strict):
    """A precision of a decoder-only LLM: weights (and, unless `weight_only`, the math) at `precision`.

    `weight_only` stores the weights at `precision` and dequantises them to fp16 for the math
    (AWQ/GPTQ W4A16); otherwise the math runs at `precision` (fp8, SmoothQuant int8 W8A8). The KV
    cache is kept at `kv_precision` (default: fp8 for fp8 variants, fp32 for fp32, else fp16).
    """

    precision: Precision = "fp16"
    weight_only: bool = False
    kv_precision: Precision | None = None
    accuracy: Annotated[float, Field(ge=0, le=1)] | None = None
    accuracy_source: str | None = None
    # What the non-LLM code paths read of a variant: an LLM variant has neither.
    sparsity: None = Field(default=None, exclude=True)
    layers: None = Field(default=None, exclude=True)


PosInt = Annotated[int, Field(ge=1)]


class LLMModelSpec(Strict):
    """A decoder-only transformer served token by token (`kind: llm`): Llama-style blocks of
    grouped-query attention and a gated (SwiGLU) or plain (GELU) FFN."""

    kind: Literal["llm"]
    layers: PosInt  # decoder blocks
    hidden: PosInt
    heads: PosInt
    kv_heads: PosInt | None = None  # grouped-query attention; default: heads (multi-head)
    head_dim: PosInt | None = None  # default: hidden // heads
    ffn: PosInt
    vocab: PosInt
    ffn_kind: Literal["swiglu", "gelu"] = "swiglu"  # three FFN matrices, or two
    qkv_bias: bool = False
    tied_embeddings: bool = False
    sliding_window: PosInt | None = None
    max_context: PosInt | None = None
    token_bytes: PosInt = 4  # bytes per token id on the wire, each way
    variants: dict[Name, LLMVariant] = Field(default_factory=lambda: {"fp16": LLMVariant()})
    source: str | None = None
    name: str = Field(default="", exclude=True)

    @model_validator(mode="after")
    def _heads_divide(self) -> LLMModelSpec:
        kv = self.kv_heads if self.kv_heads is not None else self.heads
        if self.heads % kv:
            raise ValueError(f"heads ({self.heads}) must be a multiple of kv_heads ({kv})")
        if self.head_dim is None and self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) is not a multiple of heads ({self.heads}); give head_dim")
        return self

    @property
    def n_kv_heads(self) -> int:
        return self.kv_heads if self.kv_heads is not None else self.heads

    @property
    def dim_per_head(self) -> int:
        return self.head_dim if self.head_dim is not None else self.hidden // self.heads


def _model_tag(v: Any) -> str:
    kind = v.get("kind") if isinstance(v, dict) else getattr(v, "kind", None)
    return "llm" if kind == "llm" else MODEL_TAG


MODEL_TAG = "layered"  # the union tag of a layer-list model: never a key in the file
AnyModel = Annotated[Union[Annotated[ModelSpec, Tag(MODEL_TAG)], Annotated[LLMModelSpec, Tag("llm")]],
                     Discriminator(_model_tag)]


def is_llm(model: Any) -> bool:
    """Whether a model entry is a token-level LLM (`kind: llm`)."""
    return isinstance(model, LLMModelSpec)


# --- services ------------------------------------------------------------------------------


class Poisson(Strict):
    kind: Literal["poisson"] = "poisson"


class Constant(Strict):
    kind: Literal["constant"]


class MMPP(Strict):
    """Markov-modulated Poisson: state i emits at rates_rps[i] for an exponential dwell of mean mean_dwell_s[i]."""

    kind: Literal["mmpp"]
    rates_rps: list[NonNegFloat] = Field(min_length=2)
    mean_dwell_s: list[PositiveFloat] = Field(min_length=2)

    @model_validator(mode="after")
    def _same_length(self) -> MMPP:
        if len(self.rates_rps) != len(self.mean_dwell_s):
            raise ValueError(
                f"rates_rps has {len(self.rates_rps)} states but mean_dwell_s has {len(self.mean_dwell_s)}"
            )
        if not any(r > 0 for r in self.rates_rps):
            raise ValueError("at least one of rates_rps must be positive")
        return self


class Diurnal(Strict):
    """Poisson with rate rate_rps * (1 + amplitude * sin(2 pi (t - phase_s) / period_s))."""

    kind: Literal["diurnal"]
    period_s: PositiveFloat = 86400.0
    amplitude: Annotated[float, Field(ge=0, le=1)] = 0.5
    phase_s: float = 0.0


class Trace(Strict):
    """Arrival timestamps (seconds) from a CSV file, relative to the scenario file."""

    kind: Literal["trace"]
    file: str
    column: str | int = 0
    loop: bool = False
    _times_s: tuple[float, ...] = PrivateAttr(default=())  # read by the loader

    @property
    def times_s(self) -> tuple[float, ...]:
        return self._times_s


ARRIVALS: tuple[type[Strict], ...] = (Poisson, Constant, MMPP, Diurnal, Trace)
Arrival = Annotated[Union[Poisson, Constant, MMPP, Diurnal, Trace], Field(discriminator="kind")]


def arrival_from_kind(kind: str) -> dict[str, Any]:
    """`arrival: constant` is short for `arrival: {kind: constant}`, for a kind that needs nothing more.

    A kind that needs more keys (mmpp, trace) is an error saying which; an unknown kind is left for
    the discriminated union to report with the known ones.
    """
    for model in ARRIVALS:
        if kind in typing.get_args(model.model_fields["kind"].annotation):
            needs = [n for n, f in model.model_fields.items() if n != "kind" and f.is_required()]
            if needs:
                example = ", ".join(f"{n}: ..." for n in needs)
                raise ValueError(f"arrival {kind!r} needs {' and '.join(needs)}: write {{kind: {kind}, {example}}}")
    return {"kind": kind}


class Demand(Strict):
    """Requests for a service created at a site; `rate_rps` is the long-run mean rate.

    For mmpp and trace arrivals `rate_rps` is optional: when given, the arrival pattern is scaled
    so that its long-run mean equals it (the shape is kept); when omitted, the pattern is used as is.
    `arrival: constant` (a bare kind) is short for `arrival: {kind: constant}` (`arrival_from_kind`).
    """

    site: Name
    rate_rps: PositiveFloat | None = None
    arrival: Arrival = Field(default_factory=Poisson)

    @field_validator("arrival", mode="before")
    @classmethod
    def _bare_kind(cls, v: Any) -> Any:
        return arrival_from_kind(v) if isinstance(v, str) else v


class Exponential(Strict):
    dist: Literal["exponential"]
    mean_ms: PositiveFloat


class Deterministic(Strict):
    dist: Literal["deterministic"]
    ms: PositiveFloat


class Lognormal(Strict):
    dist: Literal["lognormal"]
    mean_ms: PositiveFloat
    cv: PositiveFloat


ServiceTime = Annotated[Union[Exponential, Deterministic, Lognormal], Field(discriminator="dist")]


class TokenSLO(Strict):
    """An LLM target: `percentile` of requests within `latency_ms` (time to first token, or per output token)."""

    percentile: Annotated[float, Field(gt=0, lt=100)] = 99.0
    latency_ms: PositiveFloat


class SLO(Strict):
    """`percentile` of requests within `latency_ms` end to end; an LLM service sets `ttft` and `tpot`
    instead (and `latency_ms` only if it also has an end-to-end target)."""

    percentile: Annotated[float, Field(gt=0, lt=100)] = 99.0
    latency_ms: PositiveFloat | None = None
    ttft: TokenSLO | None = None  # time to first token, from creation at the demand site to its arrival back
    tpot: TokenSLO | None = None  # time per output token after the first, per request


class Batching(Strict):
    """Dynamic batching: a replica takes up to max_batch queued requests, waiting at most max_wait_ms for them.

    With max_batch 1 there is nothing to wait for: a wait given with it is kept in `unused_wait_ms`
    (the loader notes it) and `max_wait_ms` is 0, so that the simulator and the planner both treat
    the service exactly as max_batch 1 without a wait (a sweep over max_batch may keep one wait).
    """

    max_batch: Annotated[int, Field(ge=1, le=4096)] = 1
    max_wait_ms: NonNegFloat = 0.0
    _unused_wait_ms: float = PrivateAttr(default=0.0)

    @property
    def unused_wait_ms(self) -> float:
        """The max_wait_ms given with max_batch 1, which has no effect (0 when none was)."""
        return self._unused_wait_ms

    @model_validator(mode="wrap")
    @classmethod
    def _no_wait_without_a_batch(cls, data: Any, handler: Any) -> Batching:
        b = handler(data)
        if b.max_batch == 1 and b.max_wait_ms > 0:
            unused = b.max_wait_ms
            b = b.model_copy(update={"max_wait_ms": 0.0})
            b._unused_wait_ms = unused
        return b


class Payload(Strict):
    """Compression of the request payload: at the demand site before sending, undone at the pool.

    Ratio and speeds are measured by `lepton-sim kernels measure` on `data` (the kind of payload)
    and taken from `profile` (default: the reference machine's profile).
    """

    codec: Literal["none", "zlib", "lzma", "zstd", "lz4"]
    level: int = 3
    data: Literal["uint8-images", "float32-activations", "text"] = "uint8-images"
    profile: str | None = None
    _codec: Any = PrivateAttr(default=None)  # the measured `lepton_sim.profiles.Codec`, set by the loader

    @property
    def model(self) -> Any:
        """The codec's measured ratio and seconds per byte."""
        return self._codec


class FixedTokens(Strict):
    dist: Literal["fixed"]
    n: PosInt


class UniformTokens(Strict):
    """Integers uniform on [low, high]."""

    dist: Literal["uniform"]
    low: PosInt
    high: PosInt

    @model_validator(mode="after")
    def _ordered(self) -> UniformTokens:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) exceeds high ({self.high})")
        return self


class LognormalTokens(Strict):
    """Lognormal with this mean and coefficient of variation, rounded, clipped to [min, max]."""

    dist: Literal["lognormal"]
    mean: PositiveFloat
    cv: PositiveFloat
    max: PosInt | None = None
    min: PosInt = 1

    @model_validator(mode="after")
    def _ordered(self) -> LognormalTokens:
        if self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) exceeds max ({self.max})")
        return self


TokenDist = Annotated[Union[FixedTokens, UniformTokens, LognormalTokens], Field(discriminator="dist")]


class TokenTrace(Strict):
    """Prompt and output token counts per request from a CSV file (relative to the scenario file),
    replayed in file order, from the start again after the last row."""

    file: str
    prompt_column: str | int = "prompt_tokens"
    output_column: str | int = "output_tokens"
    _pairs: tuple[tuple[int, int], ...] = PrivateAttr(default=())  # read by the loader

    @property
    def pairs(self) -> tuple[tuple[int, int], ...]:
        return self._pairs


class Tokens(Strict):
    """An LLM service's request sizes: prompt and output tokens from distributions, or a trace."""

    prompt: TokenDist | None = None
    output: TokenDist | None = None
    trace: TokenTrace | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Tokens:
        if self.trace is not None and (self.prompt is not None or self.output is not None):
            raise ValueError("give either trace or prompt and output, not both")
        if self.trace is None and (self.prompt is None or self.output is None):
            raise ValueError("give prompt and output (token distributions), or a trace")
        return self

    def means(self) -> tuple[float, float]:
        """The mean prompt and output tokens of a request: a trace's own; a distribution's as drawn (uniform
        integers, lognormals rounded and clipped, by quadrature at 4,000 midpoint quantiles)."""
        if self.trace is not None:
            pairs = self.trace.pairs
            if not pairs:
                return 0.0, 0.0
            return sum(p for p, _ in pairs) / len(pairs), sum(o for _, o in pairs) / len(pairs)
        assert self.prompt is not None and self.output is not None
        return _dist_mean(self.prompt), _dist_mean(self.output)

    def max_tokens(self) -> tuple[int | None, int | None]:
        """The largest prompt and output a request can have (None: unbounded)."""
        if self.trace is not None:
            pairs = self.trace.pairs
            return (max(p for p, _ in pairs), max(o for _, o in pairs)) if pairs else (None, None)
        return _dist_max(self.prompt), _dist_max(self.output)


def draw_tokens(dist: FixedTokens | UniformTokens | LognormalTokens, rng: Any, n: int) -> Any:
    """`n` token counts (integers >= 1) from one distribution (the simulator's draws, `sim.tokens`)."""
    import numpy as np

    if isinstance(dist, FixedTokens):
        return np.full(n, dist.n, dtype=np.int64)
    if isinstance(dist, UniformTokens):
        return rng.integers(dist.low, dist.high + 1, n)
    sigma2 = math.log1p(dist.cv**2)  # lognormal with the given mean and coefficient of variation
    mu = math.log(dist.mean) - sigma2 / 2
    x = np.rint(rng.lognormal(mu, math.sqrt(sigma2), n))
    hi = dist.max if dist.max is not None else np.inf
    return np.clip(x, dist.min, hi).astype(np.int64)


def _dist_mean(d: Any) -> float:
    if isinstance(d, FixedTokens):
        return float(d.n)
    if isinstance(d, UniformTokens):
        return (d.low + d.high) / 2.0
    from statistics import NormalDist

    sigma = math.sqrt(math.log1p(d.cv ** 2))
    mu = math.log(d.mean) - sigma ** 2 / 2
    n, z = 4000, NormalDist()
    hi = d.max if d.max is not None else math.inf
    return math.fsum(min(max(round(math.exp(mu + sigma * z.inv_cdf((i + 0.5) / n))), d.min), hi)
                     for i in range(n)) / n


def _dist_max(d: Any) -> int | None:
    if isinstance(d, FixedTokens):
        return d.n
    if isinstance(d, UniformTokens):
        return d.high
    return d.max


class Scheduler(Strict):
    """Iteration-level continuous batching on each replica of an LLM pool (vLLM-style).

    Each iteration serves every running sequence's next token plus waiting prompts admitted in FIFO
    order, within `max_num_seqs` sequences and `max_batched_tokens` tokens; with `chunked_prefill`
    a prompt is split across iterations to fill the token budget; without it, prompts that can be
    admitted whole get iterations of their own (vLLM's default scheduler). The KV cache is paged in blocks
    of `block_tokens` in the memory left after the weights (`gpu_memory_utilization` of the
    devices' memory, vLLM's default 0.9). Requests go to the replica with the fewest outstanding
    tokens (`least-tokens`) or the most free KV cache (`least-kv`).
    """

    kind: Literal["continuous"] = "continuous"
    max_num_seqs: Annotated[int, Field(ge=1, le=65536)] = 256
    max_batched_tokens: Annotated[int, Field(ge=1, le=1048576)] = 8192
    chunked_prefill: bool = True
    block_tokens: Annotated[int, Field(ge=1, le=4096)] = 16
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = 0.9
    replica_routing: Literal["least-tokens", "least-kv"] = "least-tokens"


class Service(Strict):
    """A model served under a latency target, an accuracy floor and a batching policy."""

    model: Name
    variants: list[Name] | None = Field(default=None, min_length=1)  # default: all of the model's
    min_accuracy: Annotated[float, Field(ge=0, le=1)] | None = None
    slo: SLO
    batching: Batching = Field(default_factory=Batching)
    demand: list[Demand] = Field(min_length=1)
    service_time: ServiceTime | None = None  # one draw per batch, replacing the compute model
    payload: Payload | None = None
    max_queue: Annotated[int, Field(ge=1)] | None = None  # per pool; arrivals beyond it are dropped
    tokens: Tokens | None = None  # an LLM service's prompt and output tokens (required for kind: llm models)
    scheduler: Scheduler | None = None  # an LLM service's continuous batching (default: Scheduler())
    # An LLM service's request-size buckets for the planner: the largest prompt of each bucket but the
    # last (e.g. [512, 2048]: prompts of 1-512, 513-2048 and 2049 or more tokens planned apart).
    buckets: list[Annotated[int, Field(ge=1)]] | None = Field(default=None, min_length=1)

    @field_validator("buckets")
    @classmethod
    def _increasing(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"bucket bounds must increase: {v}")
        return v

    @property
    def scheduler_or_default(self) -> Scheduler:
        return self.scheduler if self.scheduler is not None else Scheduler()


# --- deployment ----------------------------------------------------------------------------


class Replicas(Strict):
    """One pool: `count` replicas of a service's variant on one hardware type at one site, one FIFO queue."""

    service: Name
    site: Name
    hardware: Name
    variant: Name
    count: Annotated[int, Field(ge=1)]
    tensor_parallel: Annotated[int, Field(ge=1, le=64)] = 1  # devices per replica (LLM services)
    weights: dict[Name, Annotated[float, Field(ge=0, le=1)]] | None = None  # demand site -> fraction (weighted routing)
    # An LLM pool serving only requests whose prompt has lo to hi tokens (inclusive; hi null: no upper bound)
    prompt_tokens: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)] | None] | None = None

    @field_validator("prompt_tokens")
    @classmethod
    def _range(cls, v: tuple[int, int | None] | None) -> tuple[int, int | None] | None:
        if v is not None and v[1] is not None and v[1] < v[0]:
            raise ValueError(f"[lo, hi] with lo <= hi, got {list(v)}")
        return v

    def serves_prompt(self, lo: int, hi: int | None) -> bool:
        """Whether this pool serves every prompt length in [lo, hi] (hi None: unbounded)."""
        if self.prompt_tokens is None:
            return True
        a, b = self.prompt_tokens
        return a <= lo and (b is None or (hi is not None and hi <= b))


def bucket_ranges(bounds: typing.Sequence[int]) -> list[tuple[int, int | None]]:
    """A service's `buckets` as prompt ranges: [512, 2048] -> [(1, 512), (513, 2048), (2049, None)]."""
    starts = [1] + [b + 1 for b in bounds]
    return [(a, b) for a, b in zip(starts, bounds)] + [(starts[-1], None)]


def bucket_service(service: str, lo: int, hi: int | None) -> str:
    """The name `plan` gives the bucket of `service`'s prompts of `lo` to `hi` tokens."""
    return f"{service}.p{lo}-{hi}" if hi is not None else f"{service}.p{lo}+"


def pool_ids(lines: typing.Iterable[Replicas]) -> list[str]:
    """Each deployment line's pool name (metrics.json, random streams): ``service@site/hardware/variant``,
    with ``#2``, ``#3``, ... after it for the second and later lines of the same four, in file order
    (two lines of one service, site, hardware and variant are two pools: other tensor-parallel
    degrees or prompt ranges, say)."""
    seen: dict[str, int] = {}
    out = []
    for line in lines:
        base = f"{line.service}@{line.site}/{line.hardware}/{line.variant}"
        k = seen[base] = seen.get(base, 0) + 1
        out.append(base if k == 1 else f"{base}#{k}")
    return out


def prompt_intervals(lines: typing.Iterable[Replicas]) -> list[tuple[int, int | None]]:
    """The prompt-length intervals that the lines' `prompt_tokens` ranges cut [1, unbounded) into, in order:
    within each one, every request is served by the same lines."""
    cuts = {1}
    for r in lines:
        if r.prompt_tokens is not None:
            cuts.add(r.prompt_tokens[0])
            if r.prompt_tokens[1] is not None:
                cuts.add(r.prompt_tokens[1] + 1)
    starts = sorted(cuts)
    return [(a, b - 1) for a, b in zip(starts, starts[1:])] + [(starts[-1], None)]


class Deployment(Strict):
    """Replica pools and how each request picks one.

    Routing: `nearest` (lowest network latency; ties by queued work), `least-loaded` (least queued
    work per replica, wherever it is), `least-latency` (round-trip propagation plus queued work:
    the pool expected to answer first), `weighted` (the fractions in each line's `weights`).
    """

    replicas: list[Replicas] = Field(min_length=1)
    routing: Literal["nearest", "least-loaded", "least-latency", "weighted"] = "least-loaded"


# --- failures ------------------------------------------------------------------------------


class Failure(Strict):
    """Exponential time between failures and time to repair, in hours."""

    mtbf_h: PositiveFloat
    mttr_h: PositiveFloat


# --- training jobs -------------------------------------------------------------------------


class JobPlacement(Strict):
    """`count` devices of one hardware type at one site, `per_node` to a node."""

    site: Name
    hardware: Name
    count: Annotated[int, Field(ge=1, le=65536)]
    per_node: Annotated[int, Field(ge=1, le=64)] = 8


class JobSync(Strict):
    """How the devices combine their gradients each iteration.

    `ring-allreduce` and `tree-allreduce` over the devices; `parameter-server`: each device pushes
    its gradients to `servers` servers of `hardware` at `site` (default the job's) and pulls the
    updated weights back. Gradients go in buckets of `bucket_mb`; with `overlap` a bucket is
    combined as soon as the backward pass has produced it.
    """

    kind: Literal["ring-allreduce", "tree-allreduce", "parameter-server"] = "ring-allreduce"
    bucket_mb: PositiveFloat = 25.0
    overlap: bool = True
    servers: Annotated[int, Field(ge=1, le=4096)] | None = None
    site: Name | None = None
    hardware: Name | None = None
    step_latency_us: NonNegFloat | None = None  # per step of a collective inside a node (default 1 us)

    @model_validator(mode="after")
    def _servers(self) -> JobSync:
        ps = self.kind == "parameter-server"
        if ps and (self.servers is None or self.hardware is None):
            raise ValueError("a parameter-server sync needs `servers` and `hardware`")
        if not ps and (self.servers is not None or self.hardware is not None or self.site is not None):
            raise ValueError(f"`servers`, `hardware` and `site` belong to a parameter-server sync, not {self.kind}")
        return self


class Job(Strict):
    """A data-parallel training job: forward and backward passes of `model` at `variant` over a
    global batch split across the placement's devices, until `samples` are processed."""

    model: Name
    variant: Name = "fp16"
    global_batch: Annotated[int, Field(ge=1)]
    samples: Annotated[int, Field(ge=1)]
    placement: JobPlacement
    # More devices of the same hardware type at other sites: the job spans them, and its collective
    # crosses the scenario's links between consecutive sites (placement's site, then these in order).
    also: list[JobPlacement] = Field(default_factory=list)
    sync: JobSync = Field(default_factory=JobSync)
    deadline_h: PositiveFloat | None = None
    # Per-device variation of compute time per iteration (coefficient of variation of a lognormal
    # factor): the iteration waits for the slowest device.
    straggler_cv: Annotated[float, Field(ge=0, le=2)] = 0.0
    backward_factor: Annotated[float, Field(ge=1, le=10)] = 3.0  # forward + backward over forward

    @property
    def devices(self) -> int:
        """Devices over every site the job spans."""
        return self.placement.count + sum(p.count for p in self.also)

    @property
    def placements(self) -> list[JobPlacement]:
        return [self.placement, *self.also]
    # With `failures` of the job's hardware type: a device failure stops the job until the device is
    # back, the iterations since the last checkpoint (every `checkpoint_every` iterations) are lost,
    # and restarting takes `restart_s`.
    checkpoint_every: Annotated[int, Field(ge=1)] = 1000
    restart_s: NonNegFloat = 60.0


# --- the scenario --------------------------------------------------------------------------


class Scenario(Strict):
    """A whole scenario, validated and with catalogue/zoo entries resolved."""

    name: str = Field(min_length=1)
    description: str = ""
    seed: Annotated[int, Field(ge=0)] = 0
    horizon: Horizon
    hardware: dict[Name, HardwareSpec] = Field(min_length=1)
    sites: dict[Name, Site] = Field(min_length=1)
    links: list[Link] = Field(default_factory=list)
    models: dict[Name, AnyModel] = Field(min_length=1)
    services: dict[Name, Service] = Field(default_factory=dict)
    deployment: Deployment | None = None
    jobs: dict[Name, Job] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _work(self) -> Scenario:
        if not self.services and not self.jobs:
            raise ValueError("a scenario needs `services` (inference) or `jobs` (training), or both")
        if self.deployment is not None and not self.services:
            raise ValueError("a `deployment` needs `services` to deploy")
        return self
    failures: dict[str, Failure] = Field(default_factory=dict)  # hardware type or link "a--b"
    _notes: tuple[str, ...] = PrivateAttr(default=())  # set by the loader

    @property
    def notes(self) -> tuple[str, ...]:
        """What the loader noticed that is valid but has no effect, as ``key.path: why`` lines."""
        return self._notes

"""The kernel profile file: what `lepton-sim kernels measure` writes, as frozen pydantic models.

Version 1. Times are seconds per call (median and quartiles over repeated samples); throughputs
are decimal (GFLOP/s = 1e9 FLOP/s, GB/s and MB/s = 1e9 and 1e6 bytes/s). A profile is a record of
one machine: its fingerprint says what was measured where, so profiles from different machines
(a user's GPU box) use the same format.

Keys added to version 1 later are optional, so every earlier profile still loads: the machine's
cache sizes (`machine.caches`), cold-cache GEMM timings (`gemm[].cold`) and the cost of a step
in a chain beyond its own timing (`ceilings.chain_step_s`). The measured model reads a profile
without them as before.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

FORMAT = "lepton-sim-profile"
VERSION = 1

Pos = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PosInt = Annotated[int, Field(gt=0)]
# Precisions a kernel may be measured in (fp64 is measured for the machine ceiling, not served).
KernelPrecision = Literal["fp64", "fp32", "fp16", "bf16", "int8", "int4"]


class _Rec(BaseModel):
    """Base: unknown keys are errors, records are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Timing(_Rec):
    """Seconds per call: median and quartiles over `repeats` samples, each of `inner` calls."""

    median_s: Pos
    q1_s: Pos
    q3_s: Pos
    repeats: PosInt
    inner: PosInt = 1

    @model_validator(mode="after")
    def _ordered(self) -> Timing:
        if not self.q1_s <= self.median_s <= self.q3_s:
            raise ValueError(f"expected q1_s <= median_s <= q3_s, got {self.q1_s}, {self.median_s}, {self.q3_s}")
        return self

    @property
    def iqr_rel(self) -> float:
        """Inter-quartile range over the median: the run-to-run spread."""
        return (self.q3_s - self.q1_s) / self.median_s


class Machine(_Rec):
    """Machine fingerprint: what the numbers were measured on and with."""

    cpu_model: str
    cpu_flags: list[str] = Field(default_factory=list)
    logical_cpus: PosInt
    usable_cpus: PosInt
    memory_gb: Pos
    caches: dict[str, PosInt] = Field(default_factory=dict)  # bytes per data cache level of one CPU ("L2", "L3")
    platform: str
    python: str
    blas: list[dict[str, Any]] = Field(default_factory=list)  # threadpoolctl.threadpool_info()
    env: dict[str, str | None] = Field(default_factory=dict)  # OPENBLAS_CORETYPE, thread counts
    libraries: dict[str, str] = Field(default_factory=dict)
    gpu: str | None = None


class TimingPolicyRec(_Rec):
    """How the kernels were timed."""

    warmup: int
    repeats: int
    min_sample_s: Pos
    budget_s: Pos
    statistic: Literal["median"] = "median"
    spread: Literal["iqr"] = "iqr"


class Ceilings(_Rec):
    """Machine ceilings: best GEMM rate per precision (GFLOP/s, GOP/s for int) and copy bandwidth."""

    gemm_gflops: dict[KernelPrecision, Pos]
    gemm_shape: dict[KernelPrecision, tuple[PosInt, PosInt, PosInt]]  # (m, k, n) of the best rate
    memory_bandwidth_gbps: Pos  # bytes read + bytes written by a large copy, per second
    copy_bytes: PosInt  # size of the copied buffer
    copy_timing: Timing
    call_overhead_s: Pos  # a numpy call on one element: the floor under every kernel
    # What a chain of small layers costs per layer beyond its steps timed one at a time (absent: 0).
    chain_step_s: NonNeg | None = None


class Gemm(_Rec):
    """Dense matrix multiply (M x K) @ (K x N) with bias, as the dense layer runs it.

    `timing` calls the same layer again and again, so weights that fit a cache are served from it;
    `cold` (where measured) reads another copy of the weights on every call, so they come from
    memory, as in a chain whose weights together outgrow the last-level cache; `warm` (where
    measured) cycles through copies that outgrow a core's private cache (L2) but fit the last
    level, as in a chain whose layers fit the L2 one at a time but not together.
    """

    precision: KernelPrecision
    m: PosInt
    k: PosInt
    n: PosInt
    timing: Timing
    gflops: Pos
    fraction_of_peak: Pos  # of the fp32 GEMM ceiling
    cold: Timing | None = None
    warm: Timing | None = None


class Elementwise(_Rec):
    """A memory-bound kernel over `elems` elements (activations, norms, pooling, copy, embedding)."""

    op: str
    precision: KernelPrecision
    elems: PosInt  # elements of the input tensor
    params: dict[str, int] = Field(default_factory=dict)  # e.g. {"features": 256}, {"kernel": 3, "stride": 2}
    timing: Timing
    gbps: Pos  # bytes read + written per second
    fraction_of_bandwidth: Pos


class Conv(_Rec):
    """A 2-D convolution (NHWC, "same" padding) at one batch size."""

    in_ch: PosInt
    out_ch: PosInt
    kernel: PosInt
    stride: PosInt
    groups: PosInt
    in_hw: PosInt
    batch: PosInt
    precision: KernelPrecision
    timing: Timing
    gflops: Pos


class Attention(_Rec):
    """Self-attention core (QK^T, softmax, AV) over the fused QKV projection at one batch size."""

    seq: PosInt
    heads: PosInt
    dim: PosInt
    batch: PosInt
    precision: KernelPrecision
    timing: Timing
    gflops: Pos


class SparsityRec(_Rec):
    pattern: Literal["2:4", "unstructured"]
    ratio: Annotated[float, Field(gt=0, lt=1)]


class BatchTiming(_Rec):
    batch: PosInt
    timing: Timing


class IdleTiming(_Rec):
    """A forward pass timed right after the process slept `gap_s` (one call per sample, hot otherwise)."""

    batch: PosInt
    gap_s: Pos
    timing: Timing


class ModelRun(_Rec):
    """A whole-model forward pass of one variant at several batch sizes (and after idle gaps, where timed)."""

    model: str
    variant: str
    precision: KernelPrecision
    sparsity: SparsityRec | None = None
    layers: list[dict[str, Any]] = Field(min_length=1)  # scenario layer dicts (validated on use)
    weight_bytes: PosInt  # bytes of the stored arrays
    batches: list[BatchTiming] = Field(min_length=1)
    # On a machine whose caches others share, a replica that idled finds its weights partly evicted.
    after_idle: list[IdleTiming] = Field(default_factory=list)

    @model_validator(mode="after")
    def _increasing(self) -> ModelRun:
        sizes = [b.batch for b in self.batches]
        if sizes != sorted(set(sizes)):
            raise ValueError(f"batch sizes must be strictly increasing, got {sizes}")
        return self


class Transform(_Rec):
    """A model compression transform: its time, and the size before and after."""

    name: str
    variant: str  # the variant it produces
    timing: Timing | None = None  # the one-shot transform itself (quantise, prune); None for distillation
    retrain: Timing | None = None  # masked fine-tuning after pruning, or the distillation training
    bytes_before: PosInt
    bytes_after: PosInt
    zero_fraction: Annotated[float, Field(ge=0, le=1)] | None = None  # of prunable weights


class DigitsVariant(_Rec):
    """One variant of the real model with its held-out accuracy."""

    precision: KernelPrecision
    sparsity: SparsityRec | None = None
    layers: list[dict[str, Any]] | None = None  # a distilled student's layers
    accuracy: Annotated[float, Field(ge=0, le=1)]
    accuracy_before_finetune: Annotated[float, Field(ge=0, le=1)] | None = None
    params: PosInt
    nonzero_params: PosInt
    weight_bytes: PosInt
    how: str


class Digits(_Rec):
    """The real model: `digits-mlp` trained on scikit-learn's bundled digits, its variants' accuracy."""

    dataset: str
    n_train: PosInt
    n_test: PosInt
    seed: int
    epochs: PosInt
    train: Timing  # training the fp32 model from scratch
    variants: dict[str, DigitsVariant] = Field(min_length=1)


class DataKind(_Rec):
    """A payload sample the codecs were measured on."""

    name: str
    description: str
    bytes: PosInt
    sha256: str


class CodecRun(_Rec):
    """A payload codec at one level on one data kind; MB/s are of uncompressed bytes."""

    codec: str
    level: int
    data_kind: str
    input_bytes: PosInt
    compressed_bytes: PosInt
    ratio: Pos  # input / compressed
    compress: Timing
    decompress: Timing
    compress_mb_s: Pos
    decompress_mb_s: Pos


class Profile(_Rec):
    """A measured kernel profile of one machine."""

    format: Literal["lepton-sim-profile"]
    version: Literal[1]
    created_utc: str
    quick: bool
    tool: str
    machine: Machine
    load_average: dict[str, list[float]] = Field(default_factory=dict)  # "before"/"after": 1, 5, 15 min
    # Per section: share of all CPUs' time used by other processes while it was measured.
    other_cpu: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)
    timing_policy: TimingPolicyRec
    paths: dict[str, str] = Field(default_factory=dict)  # how each kernel family runs ("gemm int8": ...)
    ceilings: Ceilings
    gemm: list[Gemm] = Field(default_factory=list)
    elementwise: list[Elementwise] = Field(default_factory=list)
    conv: list[Conv] = Field(default_factory=list)
    attention: list[Attention] = Field(default_factory=list)
    models: list[ModelRun] = Field(default_factory=list)
    transforms: list[Transform] = Field(default_factory=list)
    digits: Digits | None = None
    data_kinds: list[DataKind] = Field(default_factory=list)
    codecs: list[CodecRun] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # findings, e.g. "int8 GEMM is slower than fp32 here"
    _lookup: Any = PrivateAttr(default=None)  # lookup tables built by lepton_sim.profiles.measured


def parse_profile(data: Any, source: str = "<profile>") -> Profile:
    """Validate a parsed profile object; ValueError naming the first bad key path."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object at the top, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise ValueError(f"{source}: not a lepton-sim kernel profile (format is {data.get('format')!r}, "
                         f"expected {FORMAT!r})")
    if data.get("version") != VERSION:
        raise ValueError(f"{source}: profile version {data.get('version')!r} is not supported "
                         f"(this lepton-sim reads version {VERSION})")
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        msg = err["msg"].removeprefix("Value error, ")
        raise ValueError(f"{source}: {loc or '<top level>'}: {msg}") from None


def dumps_profile(data: dict[str, Any]) -> str:
    """Profile JSON with one record per line in the long lists: compact, and diffs stay readable."""
    parts = []
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            rows = ",\n".join("  " + json.dumps(v, separators=(",", ":")) for v in value)
            parts.append(f" {json.dumps(key)}: [\n{rows}\n ]")
        else:
            body = json.dumps(value, indent=1).replace("\n", "\n ")
            parts.append(f" {json.dumps(key)}: {body}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile JSON file; ValueError with the file and key path when malformed."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{p}: no such profile file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: cannot read the profile: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    return parse_profile(data, str(p))


def load_profile_cached(path: str | Path) -> Profile:
    """`load_profile`, memoised on the resolved path, size and modification time (sweeps load it often)."""
    p = Path(path).resolve()
    try:
        st = p.stat()
    except OSError:
        return load_profile(p)  # raises the clear ValueError
    return _load_cached(str(p), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=16)
def _load_cached(path: str, size: int, mtime_ns: int) -> Profile:
    return load_profile(path)

"""Measured service-time model: batch times of a model variant from a kernel profile.

In order of preference, per batch size b:

1. **whole model**: the profile timed a forward pass of a model with the same layers, precision
   and sparsity (or the dense run, since sparse weights run on dense kernels) at batch sizes
   around b: log-log interpolation over batch size;
2. **per layer**, summed over the chain: dense layers from the GEMM table (time against rows
   M = b x tokens, inputs K and outputs N, multilinear in log-log; past the largest M measured
   for a shape, carried on linearly in M, see `scaled_in_m`), convolution and attention from their measured shapes
   (interpolated over batch) or composed from GEMM and copy tables, activations, norms, pooling
   and embeddings from the memory-bound table (against elements);
3. **roofline** for a layer whose shape lies outside everything measured: the roofline formula of
   `lepton_sim.servicetime` for that one layer (no fusion: each numpy op is its own kernel).

`BatchTimes.source` is "measured", "roofline" or "measured+roofline"; `detail` says which layers
and batch sizes came from where.

The GEMM table times each shape on its own, called again and again, so a layer whose weights fit
a cache runs from it. In a chain each layer's weights are read once per forward pass, after the
other layers' were: when the chain's weights together outgrow the last-level cache (the
profile's `machine.caches`), each layer finds its own evicted. Where the profile timed the shape
with cold weights (`gemm[].cold`), the dense layer's time moves from the hot to the cold timing
as the chain's footprint grows from half the last-level cache to twice it
(`lepton_sim.servicetime.roofline.evicted_fraction`, which the roofline uses for on-chip memory).
In the same way, where it timed the shape warm (`gemm[].warm`: weights read from the shared last
level, out of a core's private L2), the time first moves from hot towards warm as the footprint
grows from half the L2 to twice it: a chain whose layers fit the L2 one at a time but not
together. Profiles without cache sizes or cold (warm) timings are read as hot, as before.

A whole-model run may also have been timed right after idle gaps (`models[].after_idle`, which
`lepton-sim validate` times in its servers): the batch times then carry after-idle factors per
batch size and gap (`BatchTimes.after_idle`), which the simulator's pools apply to a replica's
next batch after it idled. The planner's capacity tables read the back-to-back times only.

A step timed on its own runs with its code and data hot; in a chain each follows another. Each
layer adds the profile's `ceilings.chain_step_s` (a few tenths of a microsecond: a tenth of a
chain of layers that take microseconds, nothing next to large ones); 0 where a profile has none.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from pydantic import TypeAdapter

from lepton_sim.layers import ACT_BYTES, WEIGHT_BYTES, Layer, LayerCost, bytes_per_weight, layer_costs, prunable
from lepton_sim.profiles.format import Profile
from lepton_sim.profiles.interp import Curve, Grid, Reads
from lepton_sim.servicetime.roofline import BatchTimes, UnsupportedPrecision, efficiency, evicted_fraction

_LAYER: TypeAdapter[Any] = TypeAdapter(Layer)
_UNARY = ("relu", "gelu", "tanh", "sigmoid", "batchnorm", "layernorm", "softmax")
# Where a measured time came from, per layer evaluation.
WHOLE, TABLE, RATE, COMPOSED, ROOFLINE = "whole-model", "measured", "carried-on", "composed", "roofline"



def canonical_layers(layers: Sequence[Any]) -> tuple[str, ...]:
    """A comparable form of a layer chain (dicts or pydantic layers), defaults made explicit."""
    out = []
    for layer in layers:
        obj = _LAYER.validate_python(layer) if isinstance(layer, dict) else layer
        out.append(repr(sorted(obj.model_dump(by_alias=True).items())))
    return tuple(out)


def _sparsity_key(s: Any) -> tuple[str, float] | None:
    if s is None:
        return None
    if isinstance(s, dict):
        return (s["pattern"], round(float(s["ratio"]), 6))
    return (s.pattern, round(float(s.ratio), 6))


@dataclass
class Tables:
    """Lookup structures built once per profile."""

    gemm: dict[str, Grid]
    gemm_cold: dict[str, Grid]
    gemm_warm: dict[str, Grid]
    elementwise: dict[tuple[str, str, tuple[int, ...]], Curve]
    conv: dict[tuple[int, int, int, int, int, int, str], Curve]
    attention: dict[tuple[int, int, int, str], Curve]
    models: list[tuple[tuple[str, ...], str, tuple[str, float] | None, Curve, str]]
    label: str
    precisions: set[str] = field(default_factory=set)
    idle: dict[str, Any] = field(default_factory=dict)  # model run name -> its after-idle timings
    llc_bytes: int | None = None  # the profile machine's last-level cache
    private_bytes: int | None = None  # a core's private cache (L2) there
    chain_step_s: float = 0.0  # a layer's cost in a chain beyond its own timing


def tables(profile: Profile) -> Tables:
    """The lookup tables of `profile` (built on first use, then kept on the profile)."""
    if profile._lookup is not None:
        return profile._lookup  # type: ignore[no-any-return]
    grids: dict[str, dict[tuple[float, ...], float]] = {}
    cold: dict[str, dict[tuple[float, ...], float]] = {}
    warm: dict[str, dict[tuple[float, ...], float]] = {}
    for g in profile.gemm:
        grids.setdefault(g.precision, {})[(float(g.m), float(g.k), float(g.n))] = g.timing.median_s
        if g.cold is not None:
            cold.setdefault(g.precision, {})[(float(g.m), float(g.k), float(g.n))] = g.cold.median_s
        if g.warm is not None:
            warm.setdefault(g.precision, {})[(float(g.m), float(g.k), float(g.n))] = g.warm.median_s
    elem: dict[tuple[str, str, tuple[int, ...]], dict[float, float]] = {}
    for e in profile.elementwise:
        key = (e.op, e.precision, _pool_key(e.params.get("kernel"), e.params.get("stride")) if "pool" in e.op else ())
        elem.setdefault(key, {})[float(e.elems)] = e.timing.median_s
    conv: dict[tuple[int, int, int, int, int, int, str], dict[float, float]] = {}
    for c in profile.conv:
        conv.setdefault((c.in_ch, c.out_ch, c.kernel, c.stride, c.groups, c.in_hw, c.precision), {})[
            float(c.batch)] = c.timing.median_s
    att: dict[tuple[int, int, int, str], dict[float, float]] = {}
    for a in profile.attention:
        att.setdefault((a.seq, a.heads, a.dim, a.precision), {})[float(a.batch)] = a.timing.median_s
    models = [(canonical_layers(m.layers), str(m.precision), _sparsity_key(m.sparsity),
               Curve.of({float(b.batch): b.timing.median_s for b in m.batches}), f"{m.model}/{m.variant}")
              for m in profile.models]
    built = Tables(
        gemm={p: Grid.of(pts) for p, pts in grids.items()},
        gemm_cold={p: Grid.of(pts) for p, pts in cold.items()},
        gemm_warm={p: Grid.of(pts) for p, pts in warm.items()},
        elementwise={k: Curve.of(v) for k, v in elem.items()}, conv={k: Curve.of(v) for k, v in conv.items()},
        attention={k: Curve.of(v) for k, v in att.items()}, models=models,
        idle={f"{m.model}/{m.variant}": m.after_idle for m in profile.models if m.after_idle},
        label=f"profile of {profile.machine.cpu_model!r} ({profile.created_utc})",
        precisions={g.precision for g in profile.gemm} | {m.precision for m in profile.models},
        llc_bytes=max(profile.machine.caches.values(), default=None),
        private_bytes=profile.machine.caches.get("L2"),
        chain_step_s=profile.ceilings.chain_step_s or 0.0,
    )
    profile._lookup = built
    return built


def _pool_key(kernel: int | None, stride: int | None) -> tuple[int, ...]:
    return () if kernel is None else (int(kernel), int(stride or kernel))


def act_precision(precision: str) -> str:
    """Precision of activations between layers: int8/int4 dense layers dequantise to fp32 here."""
    return precision if precision in ("fp16", "bf16", "fp64") else "fp32"


def scaled_in_m(lookup: Callable[[float], float | None], rows: Sequence[float], m: float) -> float | None:
    """Seconds at m rows carried on from the two largest row counts below m that `lookup` has times for.

    The grid's FLOP cap leaves large batches of large layers unmeasured. Past the smallest
    batches a GEMM's time is a fixed part (call, packing the weights, casting them) plus a part
    per row, so the line through the two largest measured row counts carries it on: on the
    reference profile's fp32 4096 x 4096 column, from M = 32 and 64 to 128 and 256, within 2%.
    With one row count measured (or a noisy pair that would shrink), time grows with M at the
    rate measured there. Either is far closer than a roofline at the best rate of the whole grid:
    numpy's int8 matmul at 4096 x 4096 runs at a tenth of it.
    """
    found: list[tuple[float, float]] = []
    for m0 in sorted((r for r in rows if r < m), reverse=True):
        if (t := lookup(m0)) is not None:
            found.append((m0, t))
            if len(found) == 2:
                break
    if not found:
        return None
    m1, t1 = found[0]
    if len(found) == 2:
        m0, t0 = found[1]
        per_row = (t1 - t0) / (m1 - m0)
        if per_row > 0:
            return t1 + per_row * (m - m1)
    return t1 * m / m1


@dataclass(frozen=True)
class _Roofline:
    """A per-layer roofline: peak per precision (TFLOPS), bandwidth (B/s), efficiencies, per-kernel overhead."""

    peaks: dict[str, float]
    bw: float
    eff_c: float
    eff_m: float
    overhead_s: float
    sparse_2_4: bool
    what: str

    @staticmethod
    def measured(profile: Profile, hardware: Any) -> _Roofline:
        """The roofline of the profile's measured ceilings: achieved rates, so efficiency 1.

        Precisions the profile did not measure keep the hardware type's datasheet peak times its
        compute efficiency for that precision (calibrated, or its kind's default).
        """
        c = profile.ceilings
        peaks = {p: float(v) * efficiency(hardware, p).compute for p, v in hardware.peak_tflops.items()}
        peaks |= {p: g / 1e3 for p, g in c.gemm_gflops.items()}
        return _Roofline(peaks, c.memory_bandwidth_gbps * 1e9, 1.0, 1.0, c.call_overhead_s,
                         bool(getattr(hardware, "sparse_2_4", False)), "the roofline of the profile's measured ceilings")

    def layer_s(self, c: LayerCost, precision: str, sparsity: Any, b: int, name: str) -> float:
        peak = self.peaks.get(precision) if c.tensor_op else self.peaks.get("fp32", self.peaks.get(precision))
        if not peak:
            raise UnsupportedPrecision(f"hardware {name!r}: layer {c.op} needs the roofline, which has no "
                                       f"{precision} peak (it has: {', '.join(self.peaks) or 'none'})")
        sparse = sparsity is not None and sparsity.pattern == "2:4" and self.sparse_2_4 and prunable(c)
        math_s = c.flops * b * (0.5 if sparse else 1.0) / (peak * 1e12 * self.eff_c)
        w = 0.0 if c.op == "embedding" else c.weight_params * bytes_per_weight(precision, sparsity, prune=prunable(c))
        mem_s = (w + c.act_elems * ACT_BYTES[precision] * b) / (self.bw * self.eff_m)
        return self.overhead_s + max(math_s, mem_s)


class _LayerModel:
    """Per-layer times of one chain at one precision from the profile's tables.

    With `reads` given, every lookup adds the measured records it used to it, keyed
    ("gemm" | "gemm_warm" | "gemm_cold", precision, m, k, n), ("elementwise", op, precision, pool, elems),
    ("conv", shape..., precision, batch) or ("attention", seq, heads, dim, precision, batch);
    `records_read` adds ("chain",) for `ceilings.chain_step_s`.
    """

    def __init__(self, t: Tables, layers: Sequence[Any], precision: str,
                 reads: set[tuple[Any, ...]] | None = None) -> None:
        self.t, self.precision, self.reads = t, precision, reads
        self.layers = [_LAYER.validate_python(x) if isinstance(x, dict) else x for x in layers]
        self.act = act_precision(precision)
        self.costs = layer_costs(self.layers)
        # Sparse weights run on dense kernels here, so the chain holds them in the dense layout.
        self.weight_bytes = sum(c.weight_params for c in self.costs) * WEIGHT_BYTES.get(precision, 4.0)
        self.act_bytes = sum(c.act_elems for c in self.costs) / 2 * ACT_BYTES.get(self.act, 4.0)

    def _look(self, key: tuple[Any, ...], table: Grid | Curve, *coords: float) -> float | None:
        """`table` at `coords`, recording the points used under `key` when reads are collected."""
        if self.reads is None:
            return table(*coords)
        used: Reads = set()
        t = table(*coords, reads=used)
        if t is not None:
            self.reads.update(key + point for point in used)
        return t

    def gemm(self, precision: str, m: int, k: int, n: int) -> float | None:
        grid = self.t.gemm.get(precision)
        return self._look(("gemm", precision), grid, float(m), float(k), float(n)) if grid is not None else None

    def footprint(self, b: int) -> float:
        """Bytes one forward pass at batch b touches: every layer's weights and outputs."""
        return self.weight_bytes + self.act_bytes * b

    def cold(self, b: int) -> float:
        """The fraction of the chain's weights evicted between passes at batch b (`evicted_fraction`)."""
        return float(evicted_fraction(self.footprint(b), self.t.llc_bytes))

    def warm(self, b: int) -> float:
        """The fraction of the chain's weights evicted from a core's private cache between passes at batch b."""
        return float(evicted_fraction(self.footprint(b), self.t.private_bytes))

    def dense(self, m: int, k: int, n: int, b: int) -> tuple[float | None, str]:
        """A dense layer of this chain at batch b: the GEMM table, moved towards its cold timing in a chain
        that outgrows the last-level cache, and carried on in M past the rows measured."""
        grid = self.t.gemm.get(self.precision)
        if grid is None:
            return None, ROOFLINE
        key = ("gemm", self.precision)
        hot, how = self._look(key, grid, float(m), float(k), float(n)), TABLE
        if hot is None:
            rows = grid.axes[0] if grid.axes else ()
            hot, how = scaled_in_m(lambda r: self._look(key, grid, r, float(k), float(n)), rows, float(m)), RATE
        if hot is None:
            return None, ROOFLINE
        warm_grid = self.t.gemm_warm.get(self.precision)
        f2 = self.warm(b) if warm_grid is not None else 0.0
        if f2 > 0 and warm_grid is not None:
            warm = self._look(("gemm_warm", self.precision), warm_grid, float(m), float(k), float(n))
            if warm is not None:
                hot += f2 * max(0.0, warm - hot)
        f = self.cold(b)
        cold_grid = self.t.gemm_cold.get(self.precision)
        if f > 0 and cold_grid is not None:
            cold = self._look(("gemm_cold", self.precision), cold_grid, float(m), float(k), float(n))
            if cold is not None:
                hot += f * max(0.0, cold - hot)
        return hot, how

    def elementwise(self, op: str, elems: float, pool: tuple[int, ...] = ()) -> float | None:
        curve = self.t.elementwise.get((op, self.act, pool))
        if curve is None or elems <= 0:
            return None
        return self._look(("elementwise", op, self.act, pool), curve, elems)

    def layer(self, i: int, b: int) -> tuple[float | None, str]:
        """(seconds, how) of layer i at batch b; seconds is None when nothing measured covers it."""
        layer, c = self.layers[i], self.costs[i]
        op = c.op
        if op == "dense":
            return self.dense(b * layer.tokens, layer.in_, layer.out, b)
        if op == "conv2d":
            return self._conv(layer, c, b)
        if op == "attention":
            return self._attention(layer, b)
        if op in _UNARY:
            return self.elementwise(op, c.act_elems / 2 * b), TABLE
        if op == "add":
            return self.elementwise(op, c.act_elems / 3 * b), TABLE
        if op in ("maxpool", "avgpool"):
            s = layer.stride or layer.kernel
            return self.elementwise(op, c.act_elems / (1 + 1 / s ** 2) * b, (layer.kernel, s)), TABLE
        if op == "global_avgpool":
            return self.elementwise(op, c.act_elems * b), TABLE
        if op == "embedding":
            return self.elementwise(op, (c.act_elems - layer.seq) / 2 * b), TABLE
        return None, ROOFLINE

    def _conv(self, layer: Any, c: LayerCost, b: int) -> tuple[float | None, str]:
        hw = layer.in_hw
        shape = (layer.in_ch, layer.out_ch, layer.kernel, layer.stride, layer.groups, hw or 0, self.precision)
        curve = self.t.conv.get(shape)
        if curve is not None and (t := self._look(("conv", *shape), curve, float(b))) is not None:
            return t, TABLE
        if hw is None or layer.groups != 1:
            return None, ROOFLINE
        out_hw = -(-hw // layer.stride)
        rows = b * out_hw * out_hw
        k = layer.in_ch * layer.kernel ** 2
        gemm = self.gemm(self.precision, rows, k, layer.out_ch)
        cols = self.elementwise("copy", float(rows * k))
        if gemm is None or cols is None:
            return None, ROOFLINE
        return gemm + cols, COMPOSED  # im2col copy, then one GEMM

    def _attention(self, layer: Any, b: int) -> tuple[float | None, str]:
        shape = (layer.seq, layer.heads, layer.dim, self.precision)
        curve = self.t.attention.get(shape)
        if curve is not None and (t := self._look(("attention", *shape), curve, float(b))) is not None:
            return t, TABLE
        dh = layer.dim // layer.heads
        rows = b * layer.heads * layer.seq
        qk = self.gemm(self.precision, rows, dh, layer.seq)
        av = self.gemm(self.precision, rows, layer.seq, dh)
        sm = self.elementwise("softmax", float(rows * layer.seq))
        if qk is None or av is None or sm is None:
            return None, ROOFLINE
        return qk + av + sm, COMPOSED


def _whole(t: Tables, layers: Sequence[Any], precision: str, sparsity: Any) -> tuple[Curve, str, bool] | None:
    """The whole-model curve for this chain: exact sparsity first, else the dense run (same kernels here)."""
    key = canonical_layers(layers)
    want = _sparsity_key(sparsity)
    dense = None
    for layers_key, prec, sp, curve, name in t.models:
        if layers_key == key and prec == precision:
            if sp == want:
                return curve, name, False
            if sp is None:
                dense = (curve, name, True)
    return dense


def measured_batch_times(profile: Profile, model: Any, variant: Any, hardware: Any, max_batch: int) -> BatchTimes:
    """Seconds per batch of 1..max_batch requests of `variant` on `hardware`, from `profile` where measured."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    t = tables(profile)
    precision = variant.precision
    layers = variant.layers if getattr(variant, "layers", None) is not None else model.layers
    sparsity = getattr(variant, "sparsity", None)
    hw_name = getattr(hardware, "name", "") or "this hardware"
    if precision not in t.precisions and precision not in hardware.peak_tflops:
        raise UnsupportedPrecision(f"hardware {hw_name!r}: {precision} was neither measured in its profile nor "
                                   f"given a peak (measured: {', '.join(sorted(t.precisions))})")
    whole = _whole(t, layers, precision, sparsity)
    per_layer = _LayerModel(t, layers, precision)
    roof = _Roofline.measured(profile, hardware)
    times: list[float] = []
    whole_batches: list[int] = []
    hows: Counter[tuple[str, str]] = Counter()  # (op, how) per layer evaluation
    cold_batches: list[int] = []
    warm_batches: list[int] = []
    for b in range(1, max_batch + 1):
        w = whole[0](float(b)) if whole is not None else None
        if w is not None:
            times.append(w)
            whole_batches.append(b)
            continue
        if per_layer.cold(b) > 0:
            cold_batches.append(b)
        if per_layer.warm(b) > 0:
            warm_batches.append(b)
        total = t.chain_step_s * len(per_layer.costs)
        for i, c in enumerate(per_layer.costs):
            s, how = per_layer.layer(i, b)
            if s is None:
                s, how = roof.layer_s(c, precision, sparsity, b, hw_name), ROOFLINE
            total += s
            hows[(c.op, how)] += 1
        times.append(total)
    detail = _detail(t, whole, whole_batches, hows, max_batch)
    if t.chain_step_s and hows:
        detail += f"; each layer {t.chain_step_s * 1e6:.2g} us more for running in a chain (ceilings.chain_step_s)"
    if cold_batches and t.gemm_cold.get(precision) is not None:
        b0, b1 = cold_batches[0], cold_batches[-1]
        detail += (f"; dense weights partly cold at batch {_ranges(cold_batches)}: the chain touches "
                   f"{per_layer.footprint(b0) / 2**20:.3g}-{per_layer.footprint(b1) / 2**20:.3g} MiB per pass "
                   f"against a {t.llc_bytes / 2**20:.3g} MiB last-level cache (cold fraction "  # type: ignore[operator]
                   f"{per_layer.cold(b0):.2f}-{per_layer.cold(b1):.2f})")
    if warm_batches and t.gemm_warm.get(precision) is not None:
        b0, b1 = warm_batches[0], warm_batches[-1]
        detail += (f"; dense weights partly out of a core's {t.private_bytes / 2**20:.3g} MiB private cache at "  # type: ignore[operator]
                   f"batch {_ranges(warm_batches)}, read from the shared cache (warm fraction "
                   f"{per_layer.warm(b0):.2f}-{per_layer.warm(b1):.2f})")
    basis = f"measured by kernels measure: {t.label}, its kernel tables read layer by layer"
    idle = None
    if whole is not None and len(whole_batches) == max_batch and whole[1] in t.idle:
        idle = _after_idle(t.idle[whole[1]], whole[0], max_batch)
    if idle is not None:
        detail += (f"; after an idle gap, batches run up to {max(max(f) for f in idle[1]):.2f}x longer "
                   f"(timed after sleeping {', '.join(f'{g * 1e3:g}' for g in idle[0])} ms)")
    return BatchTimes(tuple(times), _source(whole_batches, hows), detail, basis=basis, after_idle=idle)


def _after_idle(runs: Sequence[Any], hot: Curve,
                max_batch: int) -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...]] | None:
    """Per batch size 1..max_batch, the after-idle factor at each timed gap: timed after the gap over
    timed back to back, log-linear in batch size between the sizes timed (the nearest one outside)."""
    gaps = tuple(sorted({float(r.gap_s) for r in runs}))
    by_b: dict[int, dict[float, float]] = {}
    for r in runs:
        h = hot(float(r.batch))
        if h:
            by_b.setdefault(int(r.batch), {})[float(r.gap_s)] = max(1.0, r.timing.median_s / h)
    sizes = sorted(b for b, f in by_b.items() if len(f) == len(gaps))
    if not sizes:
        return None
    rows = []
    for b in range(1, max_batch + 1):
        lo = max((x for x in sizes if x <= b), default=sizes[0])
        hi = min((x for x in sizes if x >= b), default=sizes[-1])
        w = 0.0 if lo == hi else math.log(b / lo) / math.log(hi / lo)
        rows.append(tuple(by_b[lo][g] + (by_b[hi][g] - by_b[lo][g]) * w for g in gaps))
    return gaps, tuple(rows)


def _source(whole_batches: list[int], hows: Counter[tuple[str, str]]) -> str:
    modelled = sum(n for (_, how), n in hows.items() if how == ROOFLINE)
    measured = len(whole_batches) + sum(n for (_, how), n in hows.items() if how != ROOFLINE)
    if modelled == 0:
        return "measured"
    return "roofline" if measured == 0 else "measured+roofline"


def _detail(t: Tables, whole: tuple[Curve, str, bool] | None, whole_batches: list[int],
            hows: Counter[tuple[str, str]], max_batch: int) -> str:
    parts = []
    if whole_batches:
        curve, name, dense = whole  # type: ignore[misc]
        note = " (the dense run: sparse weights run on dense kernels here)" if dense else ""
        parts.append(f"whole-model {name}{note} at batch {_ranges(whole_batches)}, measured at "
                     f"{', '.join(f'{x:g}' for x in curve.xs)}, log-log interpolated")
    if hows:
        rest = [b for b in range(1, max_batch + 1) if b not in set(whole_batches)]
        groups: dict[str, list[str]] = {}
        for (op, how), n in sorted(hows.items()):
            groups.setdefault(how, []).append(f"{op} x{n}")
        desc = {TABLE: "measured kernel tables", RATE: "GEMM table carried on in M past the rows measured",
                COMPOSED: "composed from measured GEMM/copy/softmax",
                ROOFLINE: "roofline over the measured ceilings (modelled)"}
        per = "; ".join(f"{desc[h]}: {', '.join(v)}" for h, v in groups.items())
        parts.append(f"per layer at batch {_ranges(rest)} ({per} layer-batch evaluations)")
    return f"{t.label}: " + "; ".join(parts)


def _ranges(xs: list[int]) -> str:
    """Compact 1-4,6,9-12 form of sorted integers."""
    out, start = [], None
    for i, x in enumerate(xs):
        if start is None:
            start = x
        if i + 1 == len(xs) or xs[i + 1] != x + 1:
            out.append(f"{start}" if start == x else f"{start}-{x}")
            start = None
    return ",".join(out) or "none"


def records_read(profile: Profile, layers: Sequence[Any], precision: str,
                 batches: Sequence[int]) -> set[tuple[Any, ...]]:
    """The profile records the per-layer prediction of `layers` at these batch sizes reads (keys as in `_LayerModel`).

    What to time again to check a prediction against a direct timing taken at the same moment.
    """
    reads: set[tuple[Any, ...]] = set()
    t = tables(profile)
    if profile.ceilings.chain_step_s is not None:
        reads.add(("chain",))
    model = _LayerModel(t, layers, precision, reads)
    for b in batches:
        for i in range(len(model.costs)):
            model.layer(i, b)
    return reads


def predicted_seconds(profile: Profile, layers: Sequence[Any], precision: str, batch: int) -> float | None:
    """Per-layer measured prediction of a chain at one batch (None if any layer needs the roofline)."""
    t = tables(profile)
    model = _LayerModel(t, layers, precision)
    total = t.chain_step_s * len(model.costs)
    for i in range(len(model.costs)):
        s, _ = model.layer(i, batch)
        if s is None:
            return None
        total += s
    return total if math.isfinite(total) else None

"""Fitting a hardware type's efficiency figures to measured points.

The model is the roofline of `lepton_sim.servicetime.roofline` with the hardware type's datasheet
peaks, bandwidth and on-chip capacity held fixed. The figures fitted are ``compute_efficiency``
of each precision that has a point, ``memory_efficiency`` and ``kernel_overhead_us``.

A handful of points rarely pins down every figure (one throughput at a large batch says little
about launch overhead; a memory-bound point says nothing about compute), so the fit is a
maximum a-posteriori one: each figure starts from its kind's modelled default (KIND_DEFAULTS) as a
log-normal prior of width PRIOR_SIGMA, and each point is a log-normal measurement of width
POINT_SIGMA. The points dominate where they carry information (with POINT_SIGMA ten times
narrower than PRIOR_SIGMA a single point is reproduced to well within 5%); a figure they do not
touch stays at its default, and the result says which figures moved. ``fit(..., free=...)``
names the figures to fit; the others are held at their defaults exactly.

An LLM point (a row of a zoo LLM with ttft_ms, tpot_ms or output_tokens_per_s) is predicted
by the LLM iteration-time model (`lepton_sim.servicetime.llm`) on the hardware type with the
candidate figures, so LLM and layered points fit the same three figures:

- ``ttft_ms``: one prefill iteration of ``batch`` prompts of ``prompt_tokens`` (batch x prompt
  tokens, one sample each, the causal attention pairs of each prompt);
- ``tpot_ms``: one decode iteration of ``batch`` sequences at the output's mid-point of context
  (prompt + output/2 cached tokens each; attention is linear in the context, so this is the mean
  step of the output except where it crosses the roofline's kink);
- ``output_tokens_per_s``: a batch of ``batch`` requests run together, batch x output tokens over
  the prefill iteration plus output - 1 decode iterations at the mid-point context.

The compute figure an LLM point informs is its GEMMs' math precision (fp16 for a weight-only
variant). Scheduling, the host's time between iterations and sampling are not modelled.

The squared log ratio treats a 10% miss the same on a 100/s edge device as on a 90,000/s GPU.
`scipy.optimize.least_squares` solves it from a fixed small grid of starts (the roofline's max()
has kinks), so the same points always give the same figures. Leave-one-out refits without each
point in turn and predicts it: the error to expect on a measurement the fit has not seen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from lepton_sim.calibration.figures import COMPUTE, FIGURES, MEMORY, OVERHEAD
from lepton_sim.calibration.points import Point
from lepton_sim.servicetime.llm import llm_replica_model
from lepton_sim.servicetime.roofline import KIND_DEFAULTS, Efficiency, Kernels, kernels

__all__ = ["COMPUTE", "FIGURES", "MEMORY", "OVERHEAD", "Fit", "Figure", "PointFit", "auto_free", "fit",
           "llm_figure", "precision_of"]

EFF_BOUNDS = (0.005, 1.0)
OVERHEAD_BOUNDS_US = (0.01, 5000.0)
STARTS = (0.0, -0.5, 0.5)  # starts: the prior, and half a prior width below and above it (log space)
# Modelled widths, in natural-log units: a prior default is trusted to about a factor 1.65 either
# way; a published or measured point to about 5% (run-to-run spread plus what the model leaves out).
PRIOR_SIGMA = 0.5
POINT_SIGMA = 0.05


@dataclass(frozen=True)
class Figure:
    """One efficiency figure: its value and whether the fit chose it or held it."""

    name: str  # "compute_efficiency.int8", "memory_efficiency", "kernel_overhead_us"
    value: float
    fitted: bool
    held_why: str = ""  # for a held figure: where its value comes from
    at_bound: bool = False  # a fitted figure that ended at a bound (the data push it further)
    default: float = math.nan  # the kind's modelled default (the prior of a fitted figure)


@dataclass(frozen=True)
class PointFit:
    """A point with the fitted model's prediction and its leave-one-out prediction."""

    point: Point
    fitted: float
    loo: float | None  # predicted by the fit without this point; None when nothing is left

    @property
    def error(self) -> float:
        """Relative error of the fitted prediction: fitted / (measured x share) - 1."""
        return self.fitted / self.point.target - 1.0

    @property
    def loo_error(self) -> float | None:
        return None if self.loo is None else self.loo / self.point.target - 1.0


@dataclass(frozen=True)
class Fit:
    """The fitted figures of one hardware type and how well they reproduce the points."""

    hardware: str
    kind: str
    figures: tuple[Figure, ...]
    points: tuple[PointFit, ...]

    def figure(self, name: str) -> Figure:
        return next(f for f in self.figures if f.name == name)

    @property
    def compute_efficiency(self) -> dict[str, float]:
        return {f.name.split(".", 1)[1]: f.value for f in self.figures if f.name.startswith("compute_efficiency.")}

    @property
    def rms_error(self) -> float:
        return _rms([p.error for p in self.points])

    @property
    def max_error(self) -> float:
        return max(abs(p.error) for p in self.points)

    @property
    def loo_rms_error(self) -> float | None:
        errs = [p.loo_error for p in self.points if p.loo_error is not None]
        return _rms(errs) if errs else None


def _rms(xs: Sequence[float]) -> float:
    return math.sqrt(sum(x * x for x in xs) / len(xs))


@dataclass(frozen=True)
class _Problem:
    """Points with their kernels precomputed; evaluates predictions for a vector of free figures."""

    points: tuple[Point, ...]
    kernels: tuple[Kernels | None, ...]  # None for an LLM point
    precisions: tuple[str, ...]  # one compute figure per precision, in this order
    held: dict[str, float]  # memory / overhead values when not free
    on_chip_bytes: float
    hardware: Any

    def efficiencies(self, x: np.ndarray, free: tuple[str, ...]) -> tuple[dict[str, float], float, float]:
        values = dict(zip(free, x))
        compute = {p: float(values.get(f"{COMPUTE}.{p}", self.held.get(f"{COMPUTE}.{p}", math.nan)))
                   for p in self.precisions}
        memory = float(values.get(MEMORY, self.held[MEMORY]))
        overhead_us = float(values.get(OVERHEAD, self.held[OVERHEAD]))
        return compute, memory, overhead_us

    def predict(self, compute: dict[str, float], memory: float, overhead_us: float,
                indices: Sequence[int] | None = None) -> np.ndarray:
        out = []
        fitted_low = min((v for v in compute.values() if math.isfinite(v)), default=math.nan)
        for i in (range(len(self.points)) if indices is None else indices):
            pt, k = self.points[i], self.kernels[i]
            c = compute.get(precision_of(pt), math.nan)
            c = fitted_low if not math.isfinite(c) else c  # a precision the subset has no point of
            if k is None:
                given = {p: v for p, v in compute.items() if math.isfinite(v)} or {precision_of(pt): c}
                hw = self.hardware.model_copy(update={"compute_efficiency": given, "memory_efficiency": memory,
                                                      "kernel_overhead_us": overhead_us})
                out.append(llm_figure(pt, hw))
                continue
            eff = Efficiency(c, memory, overhead_us * 1e-6, self.on_chip_bytes, "")
            out.append(pt.predicted(float(k.seconds(eff, pt.batch)[-1])))
        return np.array(out)


def precision_of(point: Point) -> str:
    """The precision whose compute figure a point informs: its variant's, or for a weight-only LLM
    variant the fp16 of its dequantised math."""
    v = point.variant
    return "fp16" if point.llm and getattr(v, "weight_only", False) else str(v.precision)


def llm_figure(point: Point, hardware: Any) -> float:
    """What an LLM point measures, as the LLM iteration-time model predicts it on ``hardware``."""
    b, prompt, out = point.batch, int(point.prompt_tokens or 1), int(point.output_tokens or 1)
    prefill_tokens = b * prompt
    m = llm_replica_model(point.model, point.variant, hardware, point.tensor_parallel,
                          prefill_tokens if point.kind != "tpot_ms" else b, max_seqs=b)
    ctx = b * (prompt + out / 2)
    decode = m.seconds(b, b, ctx, ctx)
    if point.kind == "tpot_ms":
        return decode * 1e3
    prefill = m.seconds(prefill_tokens, b, b * prompt * (prompt + 1) / 2, prefill_tokens)
    if point.kind == "ttft_ms":
        return prefill * 1e3
    return b * out / (prefill + (out - 1) * decode)


def _bounds(name: str) -> tuple[float, float]:
    return OVERHEAD_BOUNDS_US if name == OVERHEAD else EFF_BOUNDS


def auto_free(points: Sequence[Point]) -> tuple[str, ...]:
    """The figures fitted by default: every precision's compute figure, memory and overhead."""
    precisions = sorted({precision_of(p) for p in points})
    return (*(f"{COMPUTE}.{p}" for p in precisions), MEMORY, OVERHEAD)


def _solve(prob: _Problem, free: tuple[str, ...], indices: Sequence[int]) -> np.ndarray:
    """MAP estimate over `indices` in log space, best of a fixed grid of starts."""
    if not free:
        return np.array([])
    lo = np.log([_bounds(n)[0] for n in free])
    hi = np.log([_bounds(n)[1] for n in free])
    prior = np.log([prob.held[n] for n in free])
    measured = np.log([prob.points[i].target for i in indices])

    def residuals(z: np.ndarray) -> np.ndarray:
        compute, memory, overhead = prob.efficiencies(np.exp(z), free)
        data = (np.log(prob.predict(compute, memory, overhead, indices)) - measured) / POINT_SIGMA
        return np.concatenate([data, (z - prior) / PRIOR_SIGMA])

    best: tuple[float, np.ndarray] | None = None
    for shift in STARTS:
        z0 = np.clip(prior + shift * PRIOR_SIGMA, lo + 1e-9, hi - 1e-9)
        from scipy.optimize import least_squares

        res = least_squares(residuals, z0, bounds=(lo, hi), method="trf", xtol=1e-12, ftol=1e-12,
                            gtol=1e-12, max_nfev=500)
        cost = float(res.cost)
        if best is None or cost < best[0] - 1e-12:
            best = (cost, res.x)
    assert best is not None
    return np.asarray(np.exp(best[1]))


def fit(points: Sequence[Point], hardware: Any, free: Sequence[str] | None = None) -> Fit:
    """Fit ``hardware``'s efficiency figures to ``points``; ``free`` as in `auto_free` or explicit.

    ``free`` may name "compute" (every precision's figure), "memory" and "overhead". Figures not
    free are held at the hardware kind's modelled defaults.
    """
    if not points:
        raise ValueError("no points to fit")
    defaults = KIND_DEFAULTS[hardware.kind]
    precisions = tuple(sorted({precision_of(p) for p in points}))
    if free is None:
        names = auto_free(points)
    else:
        unknown = set(free) - set(FIGURES)
        if unknown:
            raise ValueError(f"unknown figure(s) {', '.join(sorted(unknown))}; figures: {', '.join(FIGURES)}")
        names = tuple([f"{COMPUTE}.{p}" for p in precisions if COMPUTE in free]
                      + [n for n in (MEMORY, OVERHEAD) if n in free])
    held = {MEMORY: defaults.memory_efficiency, OVERHEAD: defaults.kernel_overhead_us}
    for p in precisions:
        held[f"{COMPUTE}.{p}"] = defaults.compute_efficiency
    ks = tuple(None if p.llm else kernels(p.model, p.variant, hardware) for p in points)
    on_chip = float(getattr(hardware, "on_chip_mb", None) or 0.0) * 1e6
    prob = _Problem(tuple(points), ks, precisions, held, on_chip, hardware)

    everyone = list(range(len(points)))
    x = _solve(prob, names, everyone)
    compute, memory, overhead = prob.efficiencies(x, names)
    fitted = prob.predict(compute, memory, overhead)

    loo: list[float | None] = []
    for i in everyone:
        rest = [j for j in everyone if j != i]
        if not rest:
            loo.append(None)
            continue
        sub = [points[j] for j in rest]
        sub_free = tuple(n for n in (auto_free(sub) if free is None else names)
                         if not n.startswith(f"{COMPUTE}.") or n.split(".", 1)[1] in
                         {precision_of(q) for q in sub})
        xs = _solve(prob, sub_free, rest)
        c, m, o = prob.efficiencies(xs, sub_free)
        c = {p: v for p, v in c.items() if f"{COMPUTE}.{p}" in sub_free}  # unseen precisions: lowest rule
        loo.append(float(prob.predict(c, m, o, [i])[0]))

    kind = hardware.kind
    figures = []
    for p in precisions:
        n = f"{COMPUTE}.{p}"
        figures.append(_figure(f"compute_efficiency.{p}", compute[p], n, names, kind, held[n]))
    figures.append(_figure("memory_efficiency", memory, MEMORY, names, kind, held[MEMORY]))
    figures.append(_figure("kernel_overhead_us", overhead, OVERHEAD, names, kind, held[OVERHEAD]))
    return Fit(str(hardware.name), kind, tuple(figures),
               tuple(PointFit(p, float(f), lo) for p, f, lo in zip(points, fitted, loo)))


def _figure(name: str, value: float, key: str, free: tuple[str, ...], kind: str, default: float) -> Figure:
    if key in free:
        lo, hi = _bounds(key.split(".")[0])
        at_bound = math.isclose(value, lo, rel_tol=1e-4) or math.isclose(value, hi, rel_tol=1e-4)
        return Figure(name, float(value), True, at_bound=at_bound, default=default)
    return Figure(name, float(value), False, held_why=f"held at the {kind} default (modelled, KIND_DEFAULTS)",
                  default=default)

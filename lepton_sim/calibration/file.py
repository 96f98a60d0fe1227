"""The calibration file `lepton-sim calibrate --out` writes, and how a hardware entry takes it in.

A JSON document (version 1): the hardware type it was fitted for with the datasheet figures the
fit held fixed, the efficiency figures (each marked fitted or held, and why), every point with its
measured, fitted and leave-one-out figures, and the command that made it. The same CSV gives the
same file, byte for byte (no timestamps), so a committed calibration can be checked by rerunning
its command.

A scenario names it as ``hardware: {l4: {from: nvidia-l4, calibration: FILE}}``: the loader
overlays the fitted figures on the entry (keys the scenario sets itself win) and records in the
entry's ``sources`` where each came from. A file fitted against other datasheet figures than the
entry's (another device, or an overridden peak) is refused: the figures are fractions of those.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lepton_sim.calibration.fitting import Fit

FORMAT = "lepton-sim-calibration"
VERSION = 1


class _Rec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Datasheet(_Rec):
    """The figures the fit held fixed: efficiencies are fractions of these."""

    peak_tflops: dict[str, float]
    memory_bandwidth_gbps: float
    on_chip_mb: float | None = None


class FigureRec(_Rec):
    value: float
    fitted: bool
    why: str


class PointRec(_Rec):
    row: int
    model: str
    variant: str
    batch: int
    seq_len: int | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    tensor_parallel: int | None = None
    measure: Literal["throughput_per_s", "latency_ms", "ttft_ms", "tpot_ms", "output_tokens_per_s"]
    measured: float
    share: float | None = None  # the part of `measured` the modelled hardware delivers (the fit's target)
    fitted: float
    error: float
    loo: float | None
    loo_error: float | None
    source: str = ""


class Summary(_Rec):
    points: int
    rms_error: float
    max_error: float
    loo_rms_error: float | None


class CalibrationFile(_Rec):
    format: Literal["lepton-sim-calibration"] = FORMAT
    version: Literal[1] = VERSION
    hardware: str
    kind: str
    datasheet: Datasheet
    compute_efficiency: dict[str, FigureRec] = Field(min_length=1)
    memory_efficiency: FigureRec
    kernel_overhead_us: FigureRec
    points: list[PointRec] = Field(min_length=1)
    summary: Summary
    measurements: str  # the CSV's file name
    command: str

    def basis(self, where: str) -> str:
        """One line: what this hardware type's figures rest on."""
        s = self.summary
        loo = ("leave-one-out n/a (one point)" if s.loo_rms_error is None
               else f"leave-one-out rms {100 * s.loo_rms_error:.1f}%")
        precisions = ", ".join(self.compute_efficiency)
        return (f"calibrated to {s.points} {precisions} point{'s' if s.points != 1 else ''} ({self.measurements}): "
                f"fit rms error {100 * s.rms_error:.1f}%, {loo}; {where}")


def calibration_document(fit: Fit, hardware: Any, measurements: str, command: str) -> CalibrationFile:
    """The file's content for a fit of ``hardware`` (the hardware type the fit held fixed)."""
    def rec(name: str) -> FigureRec:
        f = fit.figure(name)
        why = ("fitted" + (" (at its bound: the points push it further)" if f.at_bound else "")) if f.fitted \
            else f.held_why
        return FigureRec(value=_round(f.value), fitted=f.fitted, why=why)

    points = [PointRec(row=p.point.row, model=p.point.model_name, variant=p.point.variant_name, batch=p.point.batch,
                       seq_len=p.point.seq_len, prompt_tokens=p.point.prompt_tokens,
                       output_tokens=p.point.output_tokens,
                       tensor_parallel=p.point.tensor_parallel if p.point.tensor_parallel > 1 else None,
                       measure=p.point.kind,  # type: ignore[arg-type]
                       measured=p.point.value, share=p.point.share if p.point.share != 1.0 else None,
                       fitted=_round(p.fitted), error=_round(p.error),
                       loo=None if p.loo is None else _round(p.loo),
                       loo_error=None if p.loo_error is None else _round(p.loo_error), source=p.point.source)
              for p in fit.points]
    on_chip = getattr(hardware, "on_chip_mb", None)
    return CalibrationFile(
        hardware=fit.hardware, kind=fit.kind,
        datasheet=Datasheet(peak_tflops={k: float(v) for k, v in hardware.peak_tflops.items()},
                            memory_bandwidth_gbps=float(hardware.memory_bandwidth_gbps),
                            on_chip_mb=None if on_chip is None else float(on_chip)),
        compute_efficiency={p: rec(f"compute_efficiency.{p}") for p in fit.compute_efficiency},
        memory_efficiency=rec("memory_efficiency"), kernel_overhead_us=rec("kernel_overhead_us"),
        points=points,
        summary=Summary(points=len(points), rms_error=_round(fit.rms_error), max_error=_round(fit.max_error),
                        loo_rms_error=None if fit.loo_rms_error is None else _round(fit.loo_rms_error)),
        measurements=measurements, command=command)


def _round(x: float) -> float:
    """Six significant digits: the file stays readable and identical across platforms' last-bit noise."""
    return float(f"{x:.6g}") if math.isfinite(x) else x


OPTIONAL_KEYS = ("prompt_tokens", "output_tokens", "tensor_parallel", "share")


def dumps(doc: CalibrationFile) -> str:
    data = doc.model_dump(mode="json")
    for p in data["points"]:
        for k in OPTIONAL_KEYS:  # written when given; a layered model's point keeps the keys it always had
            if p.get(k) is None:
                p.pop(k, None)
    return json.dumps(data, indent=2) + "\n"


@lru_cache(maxsize=64)
def _load_cached(path: str, mtime_ns: int) -> CalibrationFile:
    return parse(json.loads(Path(path).read_text(encoding="utf-8")))


def load(path: str | Path) -> CalibrationFile:
    """Read and validate a calibration file; ValueError (or OSError) naming what is wrong."""
    p = Path(path)
    try:
        return _load_cached(str(p.resolve()), p.stat().st_mtime_ns)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None


def parse(data: Any) -> CalibrationFile:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not a calibration file (expected \"format\": \"{FORMAT}\", written by lepton-sim calibrate)")
    if data.get("version") != VERSION:
        raise ValueError(f"calibration file version {data.get('version')!r}; this lepton-sim reads version {VERSION}")
    try:
        return CalibrationFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ValueError(f"{where}: {first['msg']}") from None


def mismatch(doc: CalibrationFile, entry: dict[str, Any]) -> str | None:
    """Why ``doc`` cannot apply to hardware ``entry`` (a scenario hardware dict), or None if it can."""
    if entry.get("kind") != doc.kind:
        return f"it was fitted for a {doc.kind} ({doc.hardware}), this entry is kind {entry.get('kind')!r}"
    peaks = entry.get("peak_tflops") or {}
    for p in doc.compute_efficiency:
        have, fitted = peaks.get(p), doc.datasheet.peak_tflops.get(p)
        if have is None or fitted is None or not math.isclose(float(have), fitted, rel_tol=1e-9):
            return (f"it was fitted against {doc.hardware}'s {p} peak of {fitted}, this entry has {have}; "
                    f"re-run lepton-sim calibrate for this hardware")
    bw = entry.get("memory_bandwidth_gbps")
    if bw is None or not math.isclose(float(bw), doc.datasheet.memory_bandwidth_gbps, rel_tol=1e-9):
        return (f"it was fitted against {doc.datasheet.memory_bandwidth_gbps} GB/s of memory bandwidth, this "
                f"entry has {bw}; re-run lepton-sim calibrate for this hardware")
    on_chip = entry.get("on_chip_mb")
    if (on_chip is None) != (doc.datasheet.on_chip_mb is None) or (
            on_chip is not None and not math.isclose(float(on_chip), float(doc.datasheet.on_chip_mb or 0), rel_tol=1e-9)):
        return (f"it was fitted with on_chip_mb {doc.datasheet.on_chip_mb}, this entry has {on_chip}; "
                f"re-run lepton-sim calibrate for this hardware")
    return None


EFFICIENCY_KEYS = ("compute_efficiency", "memory_efficiency", "kernel_overhead_us")


def apply(doc: CalibrationFile, entry: dict[str, Any], where: str) -> dict[str, Any]:
    """``entry`` with the file's figures for every efficiency key it does not set itself, sources recorded."""
    out = dict(entry)
    sources = dict(out.get("sources") or {})
    own = [k for k in EFFICIENCY_KEYS if out.get(k) is not None]
    values = {"compute_efficiency": {p: f.value for p, f in doc.compute_efficiency.items()},
              "memory_efficiency": doc.memory_efficiency.value,
              "kernel_overhead_us": doc.kernel_overhead_us.value}
    whys = {"compute_efficiency": "; ".join(f"{p}: {f.why}" for p, f in doc.compute_efficiency.items()),
            "memory_efficiency": doc.memory_efficiency.why, "kernel_overhead_us": doc.kernel_overhead_us.why}
    for key in EFFICIENCY_KEYS:
        if key in own:
            continue
        out[key] = values[key]
        sources[key] = f"{whys[key]} by lepton-sim calibrate from {doc.measurements} ({where})"
    sources["calibration"] = doc.basis(where) + (f"; set in the scenario instead: {', '.join(own)}" if own else "")
    out["sources"] = sources
    return out

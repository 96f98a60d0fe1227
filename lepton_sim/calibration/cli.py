"""`lepton-sim calibrate MEASUREMENTS.csv --hardware NAME [--out FILE]`: fit a hardware type to your numbers."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lepton_sim.calibration.figures import FIGURES
from lepton_sim.catalogue import THIS_MACHINE, hardware_names
from lepton_sim.errors import InputError
from lepton_sim.fileio import atomic_write, output_file
from lepton_sim.termtable import Col, console, print_table

if TYPE_CHECKING:
    from lepton_sim.calibration.fitting import Fit

EPILOG = """\
MEASUREMENTS.csv has one row per measurement: model,variant,batch and one of throughput_per_s
(requests/s of one busy replica at that batch) or latency_ms (one batch's time); optional
seq_len and source. Models are zoo models (resnet50, bert-base, bert-large, ...). A zoo LLM
(llama-2-7b, llama-3-8b, ...) row gives prompt_tokens and one of ttft_ms, tpot_ms or
output_tokens_per_s (the last two with output_tokens); optional tensor_parallel.
The catalogue's own devices are calibrated this way: see lepton_sim/catalogue/calibration/.
"""


def register(subparsers: Any) -> None:
    """Add `calibrate` to the top-level subcommands."""
    p = subparsers.add_parser(
        "calibrate", help="fit a hardware type's efficiency figures to measured throughput, latency or LLM token timings",
        description="Fit a catalogue hardware type's efficiency figures (compute efficiency per precision, "
                    "memory efficiency, per-kernel overhead) to measurements; print fitted against measured "
                    "per row with the error and the leave-one-out error; write a file a scenario names as "
                    "hardware: {x: {from: NAME, calibration: FILE}}.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("measurements", metavar="MEASUREMENTS.csv", help="the measurements (CSV)")
    p.add_argument("--hardware", required=True, metavar="NAME",
                   help=f"catalogue hardware type to fit ({', '.join(n for n in hardware_names() if n != THIS_MACHINE)})")
    p.add_argument("--out", metavar="FILE", help="write the calibration file here (JSON)")
    p.add_argument("--fit", metavar="LIST",
                   help=f"figures to fit, comma-separated from {', '.join(FIGURES)} (default: all three, each "
                        f"drawn toward its kind's default where the points say little about it); the others "
                        f"are held at their defaults")
    p.set_defaults(func=cmd_calibrate)


def _free(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in FIGURES]
    if bad or not names:
        raise InputError(f"--fit {text}: expected a comma-separated list of {', '.join(FIGURES)}")
    return names


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this calibration, with the CSV by file name (as committed beside it)."""
    parts = ["lepton-sim", "calibrate", Path(args.measurements).name, "--hardware", args.hardware]
    if args.fit:
        parts += ["--fit", args.fit]
    if args.out:
        parts += ["--out", Path(args.out).name]
    return shlex.join(parts)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from lepton_sim.calibration.file import calibration_document, dumps
    from lepton_sim.calibration.fitting import fit, precision_of
    from lepton_sim.calibration.hardware import datasheet_hardware
    from lepton_sim.calibration.points import read_points

    out = output_file(args.out) if args.out else None
    free = _free(args.fit)
    hw = datasheet_hardware(args.hardware)
    points = read_points(args.measurements)
    missing = sorted({precision_of(p) for p in points} - set(hw.peak_tflops))
    if missing:
        raise InputError(f"{args.measurements}: {args.hardware} has no {', '.join(missing)} peak; its precisions: "
                         f"{', '.join(hw.peak_tflops)}")
    try:
        result = fit(points, hw, free)
    except ValueError as exc:
        raise InputError(f"calibrate: {exc}") from None
    doc = calibration_document(result, hw, Path(args.measurements).name, command_line(args))
    show(result, doc.basis(str(out) if out else "not written"))
    if out is not None:
        atomic_write(out, dumps(doc))
        print(f"wrote {out}")
    return 0


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f}%"


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.4g}"


def show(result: "Fit", basis: str) -> None:
    c = console()
    rows = []
    for p in result.points:
        unit = p.point.unit
        share = f" x {p.point.share:.4g}" if p.point.share != 1.0 else ""
        rows.append([str(p.point.row), p.point.label, _num(p.point.value) + unit + share, _num(p.fitted) + unit,
                     _pct(p.error), "n/a" if p.loo is None else _num(p.loo) + unit, _pct(p.loo_error),
                     p.point.source or "-"])
    cols = [Col("row"), Col("point", "left"), Col("measured"), Col("fitted"), Col("error"),
            Col("leave-one-out"), Col("loo error"), Col("source", "left", wrap=True)]
    print_table(c, f"calibrate {result.hardware}: fitted against measured", cols, rows, keys=2)
    frows = []
    for f in result.figures:
        how = ("fitted" + (", at its bound" if f.at_bound else "")) if f.fitted else f.held_why
        frows.append([f.name, f"{f.default:.4g}", f"{f.value:.4g}", how])
    print_table(c, f"{result.hardware}: efficiency figures", [Col("figure", "left"), Col("default (prior)"),
                                                             Col("value"), Col("how", "left", wrap=True)], frows)
    loo = result.loo_rms_error
    c.print(f"{len(result.points)} point(s): fit rms error {100 * result.rms_error:.1f}%, max "
            f"{100 * result.max_error:.1f}%; leave-one-out rms "
            f"{'n/a (one point)' if loo is None else f'{100 * loo:.1f}%'}")
    c.print(f"basis: {basis}", highlight=False)

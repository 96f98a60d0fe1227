"""Compute times against real hardware: the catalogue against published MLPerf results, this machine's
measured profile against direct timings.

1. Calibration points (fitted): each calibrated catalogue device's own published figures, simulated
   with datasheet figures only (the kind's modelled efficiencies) and as shipped (calibrated).
2. Held out: published figures the calibration never saw (lepton_sim/catalogue/calibration/held-out/),
   simulated the same two ways: throughput and batch-1 latency (MLPerf SingleStream, whose latency
   also includes the host's issue and copy, which the simulated compute time does not) of models
   the fit never saw: BERT-large (transformer GEMMs) and RetinaNet (a convolutional detector at
   800x800, whose published figures include NMS, which lepton-sim does not model).
3. This machine: a held-out layer stack's simulated compute time from a kernel profile against timing
   the same stack directly with numpy (kernels/fidelity.py), for small and large layers, batch 1-64.

Simulated throughput is that of one saturated replica running full batches of the published batch
size: batch / seconds per batch; a latency is the seconds of one batch. A ratio is simulated over
published (above 1: the simulator is faster for throughput, slower for latency). Run:
    python benchmarks/fidelity_hardware.py [--profile FILE] [--quick] [--threads N] [--paired ROUNDS]
                                           [--skip-machine]
``--quick`` measures a fresh quick profile first (about a minute) and is the way to judge this
machine; the default uses the committed reference profile, which only matches this machine if it
was measured here and recently. On a shared host whose speed drifts by tens of percent from one
minute to the next, ``--paired ROUNDS`` separates the model's error from that drift: each case's
prediction reads profile records timed again just before the direct timing (`kernels.fidelity.retimed`). Part 3 takes several minutes (int8 at 4096 x 4096 is slow in
numpy); compare on a quiet machine, more than once.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from lepton_sim.calibration import calibrated_hardware, datasheet_hardware, parse_points
from lepton_sim.servicetime import batch_times

CALIBRATION = Path(__file__).resolve().parents[1] / "lepton_sim" / "catalogue" / "calibration"
GOAL = 0.15  # held-out relative error the calibrated catalogue aims to stay within


def simulated(point, hw) -> float:  # type: ignore[no-untyped-def]
    """The figure the point measures (throughput of a saturated replica, or one batch's latency), simulated."""
    return float(point.predicted(batch_times(point.model, point.variant, hw, point.batch).times_s[-1]))


def catalogue_rows(held_out: bool) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    if held_out:
        files = sorted((CALIBRATION / "held-out").glob("*.csv"))
        points = [p for f in files for p in parse_points(f.read_text(encoding="utf-8"), file=str(f),
                                                        extra=("hardware",))]
    else:
        points = []
        for f in sorted(CALIBRATION.glob("*.csv")):
            for p in parse_points(f.read_text(encoding="utf-8"), file=str(f)):
                p.extra["hardware"] = f.stem
                points.append(p)
    for p in points:
        name = p.extra["hardware"]
        before = simulated(p, datasheet_hardware(name))
        after = simulated(p, calibrated_hardware(name))
        # A throughput measured with engines beside the modelled one counts its modelled share only
        # (the row's `share`; the Orin's GPU beside its two DLAs): published x share is the target.
        label = p.label if p.share == 1.0 else f"{p.label} x{p.share:.3g}"
        rows.append({"hardware": name, "point": label, "unit": "/s" if p.kind == "throughput_per_s" else " ms",
                     "published": p.target, "datasheet": before, "calibrated": after, "source": p.source})
    return rows


def print_catalogue(title: str, rows: list[dict[str, object]]) -> list[float]:
    print(title)
    print(f"  {'hardware':<24} {'model / variant / batch':<32} {'published':>13} {'datasheet-only':>16}"
          f" {'ratio':>6} {'calibrated':>13} {'ratio':>6}")
    errors = []
    for r in rows:
        pub, before, after = float(r["published"]), float(r["datasheet"]), float(r["calibrated"])  # type: ignore[arg-type]
        errors.append(after / pub - 1)
        u = str(r["unit"])
        fmt = (lambda x: f"{x:,.1f}{u}") if u == "/s" else (lambda x: f"{x:.3f}{u}")
        print(f"  {r['hardware']:<24} {r['point']:<32} {fmt(pub):>13} {fmt(before):>16} {before / pub:>6.2f}"
              f" {fmt(after):>13} {after / pub:>6.2f}")
    for r in rows:
        print(f"    source: {r['hardware']} {r['point']}: {r['source']}")
    return errors


def machine(args: argparse.Namespace) -> None:
    from kernels.fidelity import machine_fidelity, profile_threads  # noqa: PLC0415 - only this part times kernels
    from lepton_sim.profiles import load_profile

    if args.quick:
        from lepton_sim.cli import main as cli

        threads = args.threads or 1
        out = Path(tempfile.mkdtemp()) / "quick.json"
        print(f"measuring a quick profile of this machine into {out} (--threads {threads}) ...")
        if cli(["kernels", "measure", "--quick", "--threads", str(threads), "--out", str(out)]) != 0:
            raise SystemExit("kernels measure failed")
        profile = out
    else:
        from lepton_sim.profiles import reference_profile_path

        profile = Path(args.profile) if args.profile else reference_profile_path()
        threads = args.threads or profile_threads(load_profile(profile)) or 1  # as the profile was measured
    rows = machine_fidelity(profile, threads=threads, rounds=args.paired)
    how = (f"each case's profile records timed again just before it, median of {args.paired} round(s)"
           if args.paired else "the profile as measured")
    print(f"\n3. this machine: measured profile ({profile}; {how}) against a direct numpy timing, {threads} BLAS "
          f"thread(s)")
    print(f"  {'stack':<28} {'precision':<9} {'batch':>5} {'simulated ms':>13} {'direct ms':>10} {'ratio':>6}  source")
    for r in rows:
        print(f"  {r['stack']:<28} {r['precision']:<9} {r['batch']:>5} {1e3 * r['simulated_s']:>13.4f}"
              f" {1e3 * r['direct_s']:>10.4f} {r['ratio']:>6.3f}  {r['source']}")
    ratios = [float(r["ratio"]) for r in rows]
    within = sum(1 for x in ratios if abs(x - 1) <= 0.10)
    print(f"  {within} of {len(ratios)} within 10% of the direct timing; worst ratio "
          f"{max(ratios, key=lambda x: abs(x - 1)):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", metavar="FILE", help="kernel profile for part 3 (default: the reference profile)")
    ap.add_argument("--quick", action="store_true", help="measure a fresh quick profile for part 3 first")
    ap.add_argument("--threads", type=int, help="BLAS threads for part 3 (default: as the profile was measured; "
                                                 "1 with --quick)")
    ap.add_argument("--paired", type=int, default=0, metavar="ROUNDS",
                    help="part 3: time each case's profile records again just before its direct timing, "
                         "ROUNDS times, and compare medians (the model's own error, without the machine's "
                         "drift since the profile was measured)")
    ap.add_argument("--skip-machine", action="store_true", help="parts 1 and 2 only")
    args = ap.parse_args()

    fitted = print_catalogue("1. calibration points (the fit saw these)",
                             catalogue_rows(held_out=False))
    print(f"  calibrated: every point within {max(abs(e) for e in fitted):.1%} of its published figure (times its share, where the row gives one)\n")
    rows = catalogue_rows(held_out=True)
    models = sorted({str(r["point"]).split("/")[0] for r in rows})
    held = print_catalogue(f"2. held out: models the fit never saw ({', '.join(models)})", rows)
    for model in models + ["all"]:
        abs_err = [abs(e) for e, r in zip(held, rows) if model in ("all", str(r["point"]).split("/")[0])]
        print(f"  calibrated, {model}: median |error| {statistics.median(abs_err):.1%}, worst {max(abs_err):.1%}; "
              f"{sum(e <= GOAL for e in abs_err)} of {len(abs_err)} within {GOAL:.0%}")
    if not args.skip_machine:
        machine(args)


if __name__ == "__main__":
    main()

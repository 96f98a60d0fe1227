"""`lepton-sim sweep SWEEP_FILE [--workers N] [--scheduler ADDRESS] [--out DIR] [--report]`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lepton_sim.argtypes import int_at_least
from lepton_sim.errors import RunError

if TYPE_CHECKING:
    from lepton_sim.sweeps.spec import SweepSpec


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `sweep` command to the CLI's subparsers."""
    p = subparsers.add_parser(
        "sweep", help="run a scenario over a grid of values; write one results table",
        description="Run SWEEP_FILE's grid (every point x every seed) and write DIR/results.parquet and "
                    "DIR/results.csv. Rerunning with the same --out runs only the unfinished points.")
    p.add_argument("sweep_file", metavar="SWEEP_FILE", help="sweep YAML file (base, mode, seeds, grid, collect)")
    p.add_argument("--workers", type=int_at_least(1), metavar="N",
                   help="local worker processes (default: all cores; 1 runs in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on the Dask distributed cluster at ADDRESS (e.g. tcp://10.0.0.5:8786)")
    p.add_argument("--out", metavar="DIR", help="results directory (default: ./sweep-<sweep file name>)")
    p.add_argument("--report", action="store_true", help="also write DIR/report.html and DIR/report.md")
    p.set_defaults(func=cmd_sweep)
    return p


def cmd_sweep(args: argparse.Namespace) -> int:
    from lepton_sim.sweeps import load_sweep, sweep

    spec = load_sweep(args.sweep_file)
    out = Path(args.out) if args.out else Path(f"sweep-{Path(args.sweep_file).stem}")
    try:
        table = sweep(spec, out=out, workers=args.workers, scheduler=args.scheduler, progress=sys.stderr.isatty())
    except KeyboardInterrupt:
        print(f"interrupted: {_done(spec, out)}; run the same command again to resume from {out}", file=sys.stderr)
        return 130
    rows = table.to_pylist()
    failed = [r for r in rows if r["status"] != "ok"]
    print(f"sweep {spec.name}: {len(rows)} rows ({len(rows) // len(spec.seeds)} points x {len(spec.seeds)} seeds), "
          f"{len(rows) - len(failed)} ok, {len(failed)} failed")
    for message in sorted({r["error"] for r in failed})[:3]:
        print(f"  failed: {message}", file=sys.stderr)
    print(f"wrote {out / 'results.parquet'} and {out / 'results.csv'}")
    if args.report:
        from lepton_sim.report import write_report

        paths = write_report(out, out)
        print(f"wrote {paths.html} and {paths.markdown}")
    if rows and len(failed) == len(rows):
        raise RunError(f"every point of the sweep failed; first error: {failed[0]['error']}")
    return 0


def _done(spec: SweepSpec, out: Path) -> str:
    """How far an interrupted sweep got, from its journal (what a resume will skip)."""
    from lepton_sim.sweeps.api import header
    from lepton_sim.sweeps.points import expand
    from lepton_sim.sweeps.store import SPEC, SweepStore

    tasks = expand(spec)
    done = 0
    if (out / SPEC).exists():  # else it stopped before the directory was set up: nothing finished
        store = SweepStore(out, header(spec, tasks))
        done = len(store.records)
        store.close()
    return f"{done} of {len(tasks)} runs (grid point x seed) done"

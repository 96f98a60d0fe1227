"""`lepton-sim report RUN_DIR [--out DIR]`: the report of a run, plan or sweep directory."""
from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `report` command to the CLI's subparsers."""
    p = subparsers.add_parser(
        "report", help="write report.html and report.md for a run, plan or sweep directory",
        description="Write a self-contained report.html (figures embedded) and report.md (figures as PNG files "
                    "beside it) for RUN_DIR: a `simulate --out`, `plan --out` or `sweep --out` directory, "
                    "recognised by its files.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="directory written by simulate, plan or sweep with --out")
    p.add_argument("--out", metavar="DIR", help="where to write the report (default: RUN_DIR)")
    p.set_defaults(func=cmd_report)
    return p


def cmd_report(args: argparse.Namespace) -> int:
    from lepton_sim.report import write_report

    paths = write_report(args.run_dir, args.out)
    print(f"wrote {paths.html}, {paths.markdown} and {len(paths.figures)} figures")
    return 0

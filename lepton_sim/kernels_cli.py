"""`lepton-sim kernels measure|show`: measure this machine into a profile file, or print one."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lepton_sim.argtypes import int_at_least
from lepton_sim.errors import InputError
from lepton_sim.fileio import atomic_write, output_file
from lepton_sim.profiles import load_profile
from lepton_sim.profiles.format import dumps_profile
from lepton_sim.profiles.show import render_profile


def register(subparsers: Any) -> None:
    """Add `kernels measure` and `kernels show` to the top-level subcommands."""
    kernels = subparsers.add_parser("kernels", help="measure kernels into a profile, or show a profile",
                                    description="Measured kernel profiles of a machine.")
    sub = kernels.add_subparsers(dest="kernels_command", required=True, parser_class=type(kernels))
    measure = sub.add_parser("measure", help="measure this machine and write a profile JSON file",
                             description="Time inference and compression kernels, train and compress the "
                                         "digits model, time payload codecs; write the profile.")
    measure.add_argument("--quick", action="store_true", help="a reduced set, under a minute")
    measure.add_argument("--out", metavar="FILE", default="profile.json", help="profile file (default: profile.json)")
    measure.add_argument("--threads", type=int_at_least(1), metavar="N",
                         help="cap BLAS threads while measuring (default: the library's own setting)")
    measure.set_defaults(func=cmd_measure)
    show = sub.add_parser("show", help="print a profile as tables", description="Print what a profile measured.")
    show.add_argument("profile", help="profile JSON file")
    show.set_defaults(func=cmd_show)


def write_profile_atomic(path: Path, profile: dict[str, Any]) -> None:
    """Write the profile atomically (readers never see half of one), with the umask's permissions."""
    atomic_write(path, dumps_profile(profile))


def cmd_measure(args: argparse.Namespace) -> int:
    out = output_file(args.out)
    from kernels.suite import measure_profile

    console = Console(stderr=True)
    columns = (TextColumn("[bold]kernels[/bold]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("starting", total=None)
        profile = measure_profile(quick=args.quick, tick=lambda label: _advance(progress, task, label),
                                  total=lambda n: progress.update(task, total=n), threads=args.threads)
    write_profile_atomic(out, profile)
    c = profile["ceilings"]
    print(f"wrote {out}: {len(profile['gemm'])} GEMM shapes, {len(profile['elementwise'])} memory-bound kernels, "
          f"{len(profile['models'])} model runs, {len(profile['codecs'])} codec runs; fp32 GEMM peak "
          f"{c['gemm_gflops']['fp32']:.1f} GFLOP/s, copy bandwidth {c['memory_bandwidth_gbps']:.1f} GB/s")
    for note in profile["notes"]:
        print(f"  note: {note}")
    return 0


def _advance(progress: Progress, task: Any, label: str) -> None:
    """Count the job that just finished (if any) and show the one starting."""
    t = progress.tasks[0]
    if t.fields.get("started"):
        progress.advance(task)
    progress.update(task, description=label, started=True)


def cmd_show(args: argparse.Namespace) -> int:
    try:
        profile = load_profile(args.profile)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    render_profile(profile, Console())
    return 0

"""The `lepton-sim` command line: parses flags, runs a stage, writes files, maps errors to exit codes.

Exit codes: 0 success; 1 the run itself failed; 2 bad input (one message on stderr, no traceback).
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from typing import Sequence

from lepton_sim import __version__
from lepton_sim.argtypes import int_at_least
from lepton_sim.argtypes import out_dir as make_out_dir
from lepton_sim.errors import InputError, LeptonError, ScenarioError
from lepton_sim.fileio import write_json_atomic

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as one line and exit code 2, like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{self.prog}: {message} (see --help)")

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        """As argparse, but an unknown flag is reported by the (sub)command it was given to, with the
        closest valid flag: `lepton-sim simulate: unrecognized arguments: --sed (did you mean --seed?)`."""
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = _chosen(self, ns)
            parser.error(f"unrecognized arguments: {', '.join(_with_suggestion(parser, a) for a in extras)}")
        return ns


def _chosen(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost (sub)command parser the arguments selected (`lepton-sim kernels measure`)."""
    while True:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        name = getattr(ns, sub.dest, None) if sub is not None else None
        if sub is None or name not in sub.choices:
            return parser
        parser = sub.choices[name]


def _with_suggestion(parser: argparse.ArgumentParser, arg: str) -> str:
    if not arg.startswith("-"):
        return arg
    flags = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
    close = difflib.get_close_matches(arg.split("=", 1)[0], flags, n=1, cutoff=0.6)
    return f"{arg} (did you mean {close[0]}?)" if close else arg


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lepton-sim", description="Simulate and plan AI inference infrastructure.")
    p.add_argument("--version", action="version", version=f"lepton-sim {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sim = sub.add_parser("simulate", help="simulate a scenario and print its metrics",
                         description="Simulate SCENARIO (default: the built-in default scenario).")
    sim.add_argument("scenario", nargs="?", help="scenario YAML file; omit for the built-in default")
    sim.add_argument("--seed", type=int_at_least(0), help="random seed (default: the scenario's `seed`)")
    sim.add_argument("--out", metavar="DIR", help="write DIR/metrics.json")
    sim.add_argument("--json", action="store_true", help="print the metrics object as JSON instead of tables")
    sim.add_argument("--report", action="store_true", help="also write DIR/report.html and DIR/report.md (needs --out)")
    sim.add_argument("--engine", choices=("auto", "event", "fast"),  # `lepton_sim.sim.engine.ENGINES`
                     default="auto",
                     help="auto (default): the exact fast path for the parts of the scenario it can run, the "
                          "event engine for the rest; event: the event engine only; fast: the fast path only "
                          "(exit 2 saying why when a part needs the event engine). Metrics are identical.")
    sim.set_defaults(func=cmd_simulate)

    chk = sub.add_parser("check", help="validate a scenario; exit 2 with the error",
                         description="Validate SCENARIO without running it.")
    chk.add_argument("scenario", help="scenario YAML file")
    chk.set_defaults(func=cmd_check)

    from lepton_sim.calibration.cli import register as register_calibrate
    from lepton_sim.kernels_cli import register as register_kernels
    from lepton_sim.validation.cli import register as register_validate
    from lepton_sim.verification.cli import register as register_plan
    from lepton_sim.report.cli import register as register_report
    from lepton_sim.sweeps.cli import register as register_sweep

    register_plan(sub)
    register_report(sub)
    register_sweep(sub)
    register_kernels(sub)
    register_calibrate(sub)
    register_validate(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except LeptonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`lepton-sim simulate --json | head`): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
        return 141  # 128 + SIGPIPE, what a shell reports for a writer whose pipe closed


def cmd_check(args: argparse.Namespace) -> int:
    from lepton_sim.scenario import load_scenario

    s = load_scenario(args.scenario)
    pools = len(s.deployment.replicas) if s.deployment else 0
    print(f"ok: {args.scenario}: scenario {s.name!r}: {len(s.sites)} sites, {len(s.links)} links, "
          f"{len(s.services)} services, {pools} deployment lines" + (f", {len(s.jobs)} training jobs" if s.jobs else ""))
    for note in s.notes:  # valid, but without effect
        print(f"note: {args.scenario}: {note}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from lepton_sim.metrics import build_metrics
    from lepton_sim.scenario import load_scenario
    from lepton_sim.sim import Simulation
    from lepton_sim.summary import print_summary

    if args.report and not args.out:
        raise InputError("simulate: --report needs --out DIR (the report is written beside metrics.json)")
    scenario = load_scenario(args.scenario)  # a file with errors leaves no --out directory behind
    if scenario.deployment is None and not scenario.jobs:
        raise ScenarioError("required by `simulate` (what to run, as replica pools), unless the scenario has "
                            "training `jobs`", file=args.scenario, path="deployment")
    sim = Simulation(scenario, args.seed, engine=args.engine)  # before --out: a refused engine writes nothing
    out_dir = make_out_dir(args.out) if args.out is not None else None
    record = sim.run(progress=not args.json and sys.stderr.isatty())
    metrics = build_metrics(scenario, record)
    if out_dir is not None:
        from lepton_sim.report.data import FILE as REPORT_DATA
        from lepton_sim.report.data import report_data

        write_json_atomic(out_dir / REPORT_DATA, report_data(scenario, record))  # what `report` draws
        write_json_atomic(out_dir / "metrics.json", metrics)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print_summary(scenario, metrics)
        if out_dir is not None:
            print(f"wrote {out_dir / 'metrics.json'}")
    if args.report and out_dir is not None:
        from lepton_sim.report import write_report

        paths = write_report(out_dir, out_dir)
        if not args.json:
            print(f"wrote {paths.html} and {paths.markdown}")
    return 0

"""`lepton-sim plan`: `register(subparsers)` adds the command; `cmd_plan` runs it.

    plan SCENARIO [--solver highs|cbc] [--latency-model tight|bound] [--time-limit S] [--gap G] [--verify] [--rounds N]
         [--seed N] [--out DIR]

Exit codes: 0 a plan (verified, with --verify, when every SLO was met in simulation); 1 infeasible
(the reasons by name on stderr and in plan.json), no plan within the time limit, or SLOs still
missed after the verify rounds; 2 bad input.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lepton_sim.argtypes import fraction, int_at_least, positive_float
from lepton_sim.argtypes import out_dir as make_out_dir
from lepton_sim.errors import RunError


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `plan` command to an argparse subparsers object (`parser.add_subparsers()`)."""
    p = subparsers.add_parser(
        "plan", help="the cheapest deployment meeting every SLO (MILP), optionally verified by simulation",
        description="Plan SCENARIO: choose placements, replica counts, routing and compression levels at least "
                    "cost under every service's latency target and accuracy floor (its `deployment` is ignored).")
    p.add_argument("scenario", help="scenario YAML file")
    p.add_argument("--solver", choices=["highs", "cbc"], default="highs", help="MILP solver (default: highs)")
    p.add_argument("--latency-model", choices=["tight", "bound"], default="tight",
                   help="pool latency: exact M/M/c and M/D/c, validated M/G/c, the bound for batching pools (tight, "
                        "default); or the Kingman bound for every pool (bound)")
    p.add_argument("--time-limit", type=positive_float, metavar="S",
                   help="seconds for building and solving the MILP (a stopped run is reported feasible with its gap)")
    p.add_argument("--gap", type=fraction, metavar="G", help="stop at this relative optimality gap (e.g. 0.01)")
    p.add_argument("--verify", action="store_true",
                   help="simulate the plan; tighten and re-plan services that miss their SLO")
    p.add_argument("--rounds", type=int_at_least(1), default=3, metavar="N", help="verify rounds at most (default 3)")
    p.add_argument("--seed", type=int_at_least(0), metavar="N", help="simulation seed (default: the scenario's)")
    p.add_argument("--out", metavar="DIR", help="write DIR/plan.json and DIR/scenario.planned.yaml")
    p.set_defaults(func=cmd_plan)
    return p


def cmd_plan(args: argparse.Namespace) -> int:
    from lepton_sim.planner.document import infeasible_document, plan_document
    from lepton_sim.planner.errors import Infeasible
    from lepton_sim.planner.options import PlanOptions, scenario_options
    from lepton_sim.planner.output import write_plan, write_planned_scenario
    from lepton_sim.planner.plan import plan
    from lepton_sim.planner.summary import print_infeasible, print_plan
    from lepton_sim.planner.verify import verify
    from lepton_sim.scenario import load_scenario

    out_dir = make_out_dir(args.out) if args.out is not None else None
    scenario = load_scenario(args.scenario)
    options = scenario_options(scenario, PlanOptions(solver=args.solver, time_limit_s=args.time_limit, gap=args.gap,
                                                         latency_model=args.latency_model))
    try:
        if args.verify:
            verified = verify(scenario, options, rounds=args.rounds, seed=args.seed)
            result = verified.final.plan
        else:
            verified, result = None, plan(scenario, options)
    except Infeasible as exc:
        print_infeasible(exc)
        if out_dir is not None:
            write_plan(out_dir, infeasible_document(scenario.name, exc, options))
        raise
    print_plan(result, verified)
    if out_dir is not None:
        plan_path = write_plan(out_dir, plan_document(result, options, verified))
        yaml_path = write_planned_scenario(out_dir, scenario, result.deployment(), Path(args.scenario))
        print(f"wrote {plan_path} and {yaml_path}")
    if verified is not None and not verified.met:
        missed = [n for n, c in verified.final.services.items() if not c.met]
        raise RunError(f"the plan still misses the SLO of {', '.join(missed)} in simulation after "
                       f"{len(verified.rounds)} round(s) (see the verify rounds above; try --rounds)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run `plan` alone (for tests and before the command is wired into `lepton-sim`)."""
    from lepton_sim.errors import LeptonError

    parser = argparse.ArgumentParser(prog="lepton-sim")
    register(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except LeptonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code

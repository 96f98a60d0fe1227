"""`lepton-sim plan`: `register(subparsers)` adds the command; `cmd_plan` runs it.

    plan SCENARIO [--solver highs|cbc] [--latency-model tight|bound] [--time-limit S] [--gap G] [--verify]
         [--rounds N] [--verify-time S] [--seed N] [--out DIR]

It lives with verification, above both the planner and the simulator, because `--verify`
simulates the plan (`lepton_sim.verification.loop`). With `--verify`, each round prints a line on
stderr as it happens; the final deployment (the last verified one, which the certificate's
descent may have taken replicas off), its checks, the rounds and the certificate go to stdout, and
the deployment, `usd_per_hour` and scenario.planned.yaml written are that final deployment's.

Exit codes: 0 a plan (verified, with --verify, when the final deployment met every SLO in
simulation); 1 infeasible (the reasons by name on stderr and in plan.json), no plan within the
time limit, or SLOs still missed after the verify rounds; 2 bad input.
"""
from __future__ import annotations

import argparse
import sys
import time
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
                   help="simulate the plan; tighten services that miss their SLO and relax those with slack, "
                        "re-planning each time; then check that no deployment one replica cheaper meets every SLO")
    p.add_argument("--rounds", type=int_at_least(1), default=6, metavar="N",
                   help="verify rounds at most, certificate passes included (default 6)")
    p.add_argument("--verify-time", type=positive_float, metavar="S",
                   help="seconds for the whole verify loop: no new round or certificate check after that")
    p.add_argument("--seed", type=int_at_least(0), metavar="N", help="simulation seed (default: the scenario's)")
    p.add_argument("--no-table-cache", action="store_true",
                   help="measure batching pools' capacity tables in memory only (default: cached on disk under "
                        "$LEPTON_SIM_CACHE, else ~/.cache/lepton-sim; LEPTON_SIM_CACHE=off also disables it)")
    p.add_argument("--out", metavar="DIR", help="write DIR/plan.json and DIR/scenario.planned.yaml")
    p.set_defaults(func=cmd_plan)
    return p


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cmd_plan(args: argparse.Namespace) -> int:
    from lepton_sim.planner.document import infeasible_document, plan_document
    from lepton_sim.planner.errors import Infeasible
    from lepton_sim.planner.options import PlanOptions, scenario_options
    from lepton_sim.planner.output import write_plan, write_planned_scenario
    from lepton_sim.planner.plan import plan
    from lepton_sim.planner.summary import print_infeasible, print_plan
    from lepton_sim.scenario import load_scenario
    from lepton_sim.verification.deployment import deployment_mapping
    from lepton_sim.verification.document import verified_document
    from lepton_sim.verification.llm_meter import SimulatedReplicas
    from lepton_sim.verification.loop import verify
    from lepton_sim.verification.summary import print_verified, progress_printer

    scenario = load_scenario(args.scenario)  # a file with errors leaves no --out directory behind
    job_plans: list[Any] = []
    if scenario.jobs:
        from lepton_sim.planner.training import plan_jobs, with_jobs

        job_plans = plan_jobs(scenario)
        print_job_plans(job_plans)
        scenario = with_jobs(scenario, job_plans)
    out_dir = make_out_dir(args.out) if args.out is not None else None
    if not scenario.services:
        return _jobs_only(scenario, job_plans, out_dir, Path(args.scenario))
    as_given = scenario  # the scenario as its file names its services (request-size buckets unsplit)
    from lepton_sim.tablecache import default_store
    options = scenario_options(scenario, PlanOptions(solver=args.solver, time_limit_s=args.time_limit, gap=args.gap,
                                                     latency_model=args.latency_model,
                                                     tables=None if args.no_table_cache else default_store(),
                                                     progress=_stderr_line,
                                                     llm_meter=SimulatedReplicas()))
    chosen = None
    try:
        if any(svc.buckets for svc in scenario.services.values()):
            from lepton_sim.verification.buckets import choose_buckets

            chosen = choose_buckets(scenario, options)
            if chosen is not None:
                scenario = chosen.scenario
        if args.verify:
            deadline = None if args.verify_time is None else time.perf_counter() + args.verify_time

            def verify_one(s: Any) -> Any:  # with buckets, --verify-time is shared by every split verified
                left = None if deadline is None else max(0.0, deadline - time.perf_counter())
                return verify(s, options, rounds=args.rounds, seed=args.seed, time_limit_s=left,
                              progress=progress_printer())

            if chosen is not None:
                from lepton_sim.verification.buckets import verify_buckets

                chosen, verified = verify_buckets(as_given, chosen, verify_one)
                scenario = chosen.scenario
            else:
                verified = verify_one(scenario)
            result = verified.final.plan
        else:
            verified, result = None, plan(scenario, options)
    except Infeasible as exc:
        print_infeasible(exc)
        if out_dir is not None:
            write_plan(out_dir, infeasible_document(scenario.name, exc, options))
        raise
    if verified is None:
        print_plan(result)
    else:
        print_verified(verified)
    deployment = result.deployment() if verified is None else deployment_mapping(verified.final.lines)
    written = None
    if chosen is not None:
        from lepton_sim.verification.buckets import bucket_outcome

        deployment, written = bucket_outcome(as_given, chosen, deployment, None if verified is None else verified.seed)
    if out_dir is not None:
        if verified is None:
            doc = plan_document(result, options)
        else:
            doc = verified_document(scenario, verified, options, args.rounds, args.verify_time)
        doc["deployment"] = deployment
        if written is not None:
            doc.update(written.document)
        if job_plans:
            from lepton_sim.planner.training import job_document

            doc["jobs"] = job_document(job_plans)
        plan_path = write_plan(out_dir, doc)
        yaml_path = write_planned_scenario(out_dir, as_given, deployment, Path(args.scenario))
        print(f"wrote {plan_path} and {yaml_path}")
    _jobs_missed(job_plans)
    if verified is not None and not verified.met:
        missed = verified.final.missed()
        raise RunError(f"the plan still misses the SLO of {', '.join(missed)} in simulation after "
                       f"{len(verified.rounds)} round(s) (see the verify rounds above; try --rounds)")
    if written is not None and written.missed:
        raise RunError(f"the deployment as written (requests routed by prompt length) misses the SLO of "
                       f"{', '.join(written.missed)} in simulation, though each bucket's service met it")
    return 0


def print_job_plans(plans: list[Any]) -> None:
    from lepton_sim.termtable import Col, console, print_table

    def cell(o: Any, f: str) -> str:
        return "-" if o is None else format(getattr(o, f), ".3g") if isinstance(getattr(o, f), float) else str(getattr(o, f))

    rows = []
    for p in plans:
        for label, o in (("chosen", p.chosen), ("as given", p.given)):
            rows.append([p.name, label, "-" if o is None else f"{o.count} x {o.hardware}", cell(o, "sync"),
                         "-" if o is None else f"{o.iteration_s * 1e3:.3g}", cell(o, "hours"),
                         "-" if o is None else f"{o.usd_total:,.2f}",
                         "-" if p.job.deadline_h is None else f"{p.job.deadline_h:g}"])
    print_table(console(), "Training jobs: the cheapest placement that meets the deadline (modelled, no stragglers)",
                (Col("job", "left"), Col("", "left"), Col("devices", "left"), Col("sync", "left"), Col("iteration ms"),
                 Col("hours"), Col("US$"), Col("deadline h")), rows)
    for p in plans:
        if p.reason:
            print(f"{p.name}: {p.reason}")
        else:
            print(f"{p.name}: {p.options} placements modelled")


def _jobs_missed(plans: list[Any]) -> None:
    missed = [p for p in plans if p.chosen is None]
    if missed:
        raise RunError("; ".join(p.reason for p in missed))


def _jobs_only(scenario: Any, plans: list[Any], out_dir: Path | None, source: Path) -> int:
    """`plan` of a scenario of training jobs alone: plan.json holds the jobs' placements."""
    from lepton_sim.planner.output import write_plan, write_planned_scenario
    from lepton_sim.planner.training import job_document

    missed = [p for p in plans if p.chosen is None]
    if out_dir is not None:
        doc = {"scenario": scenario.name, "status": "infeasible" if missed else "optimal",
               "usd_per_hour": None if missed else sum(p.chosen.usd_per_hour for p in plans),
               "jobs": job_document(plans), "plan_source": "exhaustive search over the jobs' placements"}
        plan_path = write_plan(out_dir, doc)
        yaml_path = write_planned_scenario(out_dir, scenario, {}, source)
        print(f"wrote {plan_path} and {yaml_path}")
    _jobs_missed(plans)
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

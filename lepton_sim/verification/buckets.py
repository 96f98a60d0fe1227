"""What `plan` adds for services with request-size buckets (`lepton_sim.planner.buckets`).

Before planning, `choose_buckets` plans every split (adjacent buckets merged, down to the service
unsplit, each with every allotment of the SLO's misses: `planner.buckets.choices`) and keeps the
cheapest plan's; with `--verify`, `verify_buckets` verifies the splits planned within `CONTEND` of it
and keeps the cheapest verified one. After it, `bucket_outcome` maps the plan's lines back to the
scenario's services (`prompt_tokens` per line) and, with `--verify`, simulates the deployment as
written, where the simulator routes each request by its prompt length (`sim.routing.ByPrompt`)
within one stream per demand line rather than one stream per bucket.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lepton_sim.planner.buckets import (BadAllocation, Bucket, Choice, bucket_document, bucketed, choices,
                                        unbucketed_deployment)
from lepton_sim.planner.options import PlanOptions
from lepton_sim.scenario.schema import Deployment, Replicas, Scenario


@dataclass(frozen=True)
class Chosen:
    """The split kept, the problem it gives, and every split's planned cost (None: infeasible, with why)."""

    scenario: Scenario
    buckets: list[Bucket]
    choice: Choice
    table: list[tuple[Choice, float | None, str, str]] = field(default_factory=list)  # choice, $/h, why, label
    verified: dict[int, float | None] = field(default_factory=dict)  # table index -> verified $/h (None: missed)


@dataclass(frozen=True)
class Written:
    """plan.json additions and the services the written deployment misses in simulation (empty: none, or not run)."""

    document: dict[str, Any]
    missed: tuple[str, ...]
    metrics: dict[str, Any] | None = None  # metrics.json of the written deployment's simulation, when run


def _label(scenario: Scenario, choice: Choice, buckets: list[Bucket]) -> str:
    parts = []
    for name in choice:
        mine = [b for b in buckets if b.service == name]
        if not mine:
            parts.append(f"{name}: unsplit")
            continue
        pct = scenario.services[name].slo.ttft
        same = all(b.percentile == (pct.percentile if pct is not None else None) for b in mine)
        parts.append(f"{name}: " + " | ".join(b.label if same else f"{b.label} at p{b.percentile:.4g}" for b in mine))
    return "; ".join(parts)


def _rank(choice: Choice) -> tuple[int, int]:
    """Ties go to fewer buckets, then to the service's own percentile in every bucket."""
    return sum(len(c.bounds) for c in choice.values()), sum(c.slack is not None for c in choice.values())


def choose_buckets(scenario: Scenario, options: PlanOptions, echo: bool = True) -> Chosen | None:
    """Plan (MILP, not verified) every split of the bucketed services; the cheapest (see `_rank` on a tie).
    None when no service has buckets."""
    from lepton_sim.planner.errors import Infeasible
    from lepton_sim.planner.plan import plan

    every = choices(scenario)
    if not every:
        return None
    table: list[tuple[Choice, float | None, str, str]] = []
    seen: set[tuple[Any, ...]] = set()
    t0 = time.perf_counter()
    for k, c in enumerate(sorted(every, key=_rank)):  # coarser first: bounds that cut no request give a split seen
        try:
            split, buckets = bucketed(scenario, c)
        except BadAllocation:
            continue  # an allotment these shares cannot make: not a split to plan
        same = tuple((b.service, b.requests, b.percentile, b.share) for b in buckets)
        if same in seen:
            continue
        seen.add(same)
        label = _label(scenario, c, buckets)
        if options.progress is not None:
            options.progress(f"buckets: planning split {k + 1} of at most {len(every)} ({label}), "
                             f"{time.perf_counter() - t0:.0f} s")
        try:
            table.append((c, plan(split, options.with_(baselines=False)).usd_per_hour, "", label))
        except Infeasible as exc:
            table.append((c, None, str(exc).splitlines()[0], label))
    feasible = [(cost, *_rank(c), i) for i, (c, cost, _, _) in enumerate(table) if cost is not None]
    best = min(feasible)[-1] if feasible else 0  # none feasible: the first (unsplit), whose plan says why
    say = print if echo else _silent
    say("Request-size buckets: each split planned (MILP, not verified):")
    for i, (c, cost, why, label) in enumerate(table):
        figure = f"${cost:,.2f}/h" if cost is not None else f"infeasible ({why})"
        say(f"  {label}: {figure}{'  <- planned' if i == best else ''}")
    sys.stdout.flush()
    split, buckets = bucketed(scenario, table[best][0])
    return Chosen(split, buckets, table[best][0], table)


CONTEND = 1.25  # with --verify, the splits planned within this factor of the cheapest are verified too
MAX_VERIFIED = 4


def verify_buckets(scenario: Scenario, chosen: Chosen, verify_one: Callable[[Scenario], Any],
                   echo: bool = True) -> tuple[Chosen, Any]:
    """Verify the splits whose planned cost is within `CONTEND` of the cheapest (at most `MAX_VERIFIED`,
    cheapest first) and keep the cheapest that meets every SLO (the coarser on a tie; when none does, the
    one planned cheapest): verification relaxes and tightens each split differently, so the cheapest
    planned split need not be the cheapest verified. Returns the kept split and its `Verified`."""
    say = print if echo else _silent
    planned = sorted((cost, *_rank(c), i) for i, (c, cost, _, _) in enumerate(chosen.table) if cost is not None)
    if not planned:
        return chosen, verify_one(chosen.scenario)
    best_planned = planned[0][0]
    contenders = [row[-1] for row in planned if row[0] <= CONTEND * best_planned + 1e-9][:MAX_VERIFIED]
    results: dict[int, Any] = {}
    for i in contenders:
        split, _ = bucketed(scenario, chosen.table[i][0])
        if len(contenders) > 1:
            say(f"verifying the split {chosen.table[i][3]} (planned ${chosen.table[i][1]:,.2f}/h)")
            sys.stdout.flush()
        results[i] = verify_one(split)
    verified = {i: (v.final.usd_per_hour if v.met else None) for i, v in results.items()}
    met = [(cost, *_rank(chosen.table[i][0]), i) for i, cost in verified.items() if cost is not None]
    keep = min(met)[-1] if met else contenders[0]
    if len(contenders) > 1:
        for i in contenders:
            figure = f"${verified[i]:,.2f}/h" if verified[i] is not None else "misses an SLO"
            say(f"  {chosen.table[i][3]}: verified {figure}{'  <- kept' if i == keep else ''}")
        sys.stdout.flush()
    split, buckets = bucketed(scenario, chosen.table[keep][0])
    return Chosen(split, buckets, chosen.table[keep][0], chosen.table, verified), results[keep]


def bucket_outcome(scenario: Scenario, chosen: Chosen, deployment: dict[str, Any],
                   seed: int | None, echo: bool = True) -> tuple[dict[str, Any], Written]:
    """The deployment as `scenario` names its services, and what to add to plan.json; with a `seed` (a
    verified plan), the written deployment's simulation, printed."""
    buckets = chosen.buckets
    mapped = unbucketed_deployment(deployment, buckets)
    doc: dict[str, Any] = {
        "buckets": bucket_document(buckets),
        "bucket_choices": [{"split": {n: cut.as_dict() for n, cut in c.items()}, "label": label,
                            "usd_per_hour": cost, "note": why, "verified": i in chosen.verified,
                            "verified_usd_per_hour": chosen.verified.get(i), "planned": c == chosen.choice}
                           for i, (c, cost, why, label) in enumerate(chosen.table)]}
    say = print if echo else _silent
    for b in buckets:
        say(f"{b.service} prompts {b.label} tokens: {b.share:.1%} of requests, held at p{b.percentile:.4g}, "
            f"planned as {b.name}")
    missed: tuple[str, ...] = ()
    metrics = None
    if seed is not None and buckets:
        from lepton_sim.verification.checks import check_scenario

        replicas = [Replicas(**line) for line in mapped["replicas"]]
        written = scenario.model_copy(update={"deployment": Deployment(replicas=replicas, routing="weighted")})
        sim = check_scenario(written, seed)
        rows = {}
        for name in sorted({b.service for b in buckets}):
            c = sim.services[name]
            figures = c.by_metric or {}
            slo = scenario.services[name].slo
            assert slo.ttft is not None and slo.tpot is not None
            rows[name] = {"ttft_ms": figures.get("ttft"), "tpot_ms": figures.get("tpot"), "met": c.met,
                          "ttft_slo_ms": slo.ttft.latency_ms, "tpot_slo_ms": slo.tpot.latency_ms}
            say(f"{name} as written, requests routed by prompt length (simulated, seed {seed}): TTFT p"
                f"{slo.ttft.percentile:g} {_ms(figures.get('ttft'))} (target {slo.ttft.latency_ms:g}), TPOT p"
                f"{slo.tpot.percentile:g} {_ms(figures.get('tpot'))} (target {slo.tpot.latency_ms:g}): "
                f"{'met' if c.met else 'MISSED'}")
        doc["as_written"] = {"seed": seed, "services": rows}
        missed = tuple(n for n, r in rows.items() if not r["met"])
        metrics = sim.metrics
    sys.stdout.flush()
    return mapped, Written(doc, missed, metrics)


def _silent(*_: Any) -> None:
    return None


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g} ms"

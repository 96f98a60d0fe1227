"""What `plan` adds for services with request-size buckets (`lepton_sim.planner.buckets`).

Before planning, `choose_buckets` plans every way of merging each service's adjacent buckets (down to
the service unsplit) and keeps the cheapest plan's split; the plan of that split is then made (and,
with `--verify`, verified) as any other. After it, `bucket_outcome` maps the plan's lines back to the
scenario's services (`prompt_tokens` per line) and, with `--verify`, simulates the deployment as
written, where the simulator routes each request by its prompt length (`sim.routing.ByPrompt`) within
one stream per demand line rather than one stream per bucket.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from lepton_sim.planner.buckets import Bucket, Choice, bucket_document, bucketed, choices, ranges, unbucketed_deployment
from lepton_sim.planner.options import PlanOptions
from lepton_sim.scenario.schema import Deployment, Replicas, Scenario


@dataclass(frozen=True)
class Chosen:
    """The split kept, the problem it gives, and every split's planned cost (None: infeasible, with why)."""

    scenario: Scenario
    buckets: list[Bucket]
    choice: Choice
    table: list[tuple[Choice, float | None, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Written:
    """plan.json additions and the services the written deployment misses in simulation (empty: none, or not run)."""

    document: dict[str, Any]
    missed: tuple[str, ...]
    metrics: dict[str, Any] | None = None  # metrics.json of the written deployment's simulation, when run


def _label(choice: Choice) -> str:
    parts = []
    for name, bounds in choice.items():
        cut = " | ".join(f"{lo}-{hi}" if hi is not None else f"{lo}+" for lo, hi in ranges(list(bounds))) \
            if bounds else "unsplit"
        parts.append(f"{name}: {cut}")
    return "; ".join(parts)


def choose_buckets(scenario: Scenario, options: PlanOptions, echo: bool = True) -> Chosen | None:
    """Plan (MILP, not verified) every split of the bucketed services; the cheapest (the coarser on a tie).
    None when no service has buckets."""
    from lepton_sim.planner.errors import Infeasible
    from lepton_sim.planner.plan import plan

    every = choices(scenario)
    if not every:
        return None
    table: list[tuple[Choice, float | None, str]] = []
    for c in every:
        split, _ = bucketed(scenario, c)
        try:
            table.append((c, plan(split, options.with_(baselines=False)).usd_per_hour, ""))
        except Infeasible as exc:
            table.append((c, None, str(exc).splitlines()[0]))
    feasible = [(cost, sum(len(b) for b in c.values()), i) for i, (c, cost, _) in enumerate(table) if cost is not None]
    best = min(feasible)[2] if feasible else 0  # none feasible: the finest, whose plan then says why
    say = print if echo else _silent
    say("Request-size buckets: each way of merging them planned (MILP, not verified):")
    for i, (c, cost, why) in enumerate(table):
        figure = f"${cost:,.2f}/h" if cost is not None else f"infeasible ({why})"
        say(f"  {_label(c)}: {figure}{'  <- planned' if i == best else ''}")
    sys.stdout.flush()
    split, buckets = bucketed(scenario, table[best][0])
    return Chosen(split, buckets, table[best][0], table)


def bucket_outcome(scenario: Scenario, chosen: Chosen, deployment: dict[str, Any],
                   seed: int | None, echo: bool = True) -> tuple[dict[str, Any], Written]:
    """The deployment as `scenario` names its services, and what to add to plan.json; with a `seed` (a
    verified plan), the written deployment's simulation, printed."""
    buckets = chosen.buckets
    mapped = unbucketed_deployment(deployment, buckets)
    doc: dict[str, Any] = {
        "buckets": bucket_document(buckets),
        "bucket_choices": [{"buckets": {n: list(b) for n, b in c.items()}, "usd_per_hour": cost, "note": why,
                            "planned": c == chosen.choice} for c, cost, why in chosen.table]}
    say = print if echo else _silent
    for b in buckets:
        say(f"{b.service} prompts {b.label} tokens: {b.share:.1%} of requests, planned as {b.name}")
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

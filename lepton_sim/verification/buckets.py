"""What `plan` adds for services with request-size buckets (`lepton_sim.planner.buckets`): the plan of the
bucketed problem mapped back to the scenario's services (`prompt_tokens` per line), the plan without
buckets as a baseline, and, with `--verify`, a simulation of the deployment as written, where the
simulator routes each request by its prompt length (`sim.routing.ByPrompt`) within one stream per
demand line rather than one stream per bucket.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from lepton_sim.planner.buckets import Bucket, bucket_document, unbucketed_deployment
from lepton_sim.planner.options import PlanOptions
from lepton_sim.scenario.schema import Deployment, Replicas, Scenario


@dataclass(frozen=True)
class Written:
    """plan.json additions and the services the written deployment misses in simulation (empty: none, or not run)."""

    document: dict[str, Any]
    missed: tuple[str, ...]


def bucket_outcome(scenario: Scenario, buckets: list[Bucket], deployment: dict[str, Any], options: PlanOptions,
                   usd_per_hour: float, seed: int | None) -> tuple[dict[str, Any], Written]:
    """The deployment as `scenario` names its services, and what to add to plan.json; prints both checks.

    `seed` None: no simulation of the written deployment (a plan without --verify)."""
    from lepton_sim.planner.errors import Infeasible
    from lepton_sim.planner.plan import plan

    mapped = unbucketed_deployment(deployment, buckets)
    print("Request-size buckets (each planned as a service of its own):")
    for b in buckets:
        print(f"  {b.service} prompts {b.label} tokens: {b.share:.1%} of requests, planned as {b.name}")
    try:
        whole = plan(scenario, options.with_(baselines=False)).usd_per_hour
        saves = f", the plan saves {1 - usd_per_hour / whole:.1%}" if whole > 0 else ""
        print(f"  without buckets (planned, not verified): ${whole:,.2f}/h{saves}")
    except Infeasible as exc:
        whole = None
        print(f"  without buckets: infeasible ({exc})")
    doc: dict[str, Any] = {"buckets": bucket_document(buckets),
                           "without_buckets": {"usd_per_hour": None if whole is None else round(whole, 6),
                                               "source": "planned without request-size buckets, not verified"}}
    missed: tuple[str, ...] = ()
    if seed is not None:
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
            print(f"  {name} as written, requests routed by prompt length (simulated, seed {seed}): TTFT p"
                  f"{slo.ttft.percentile:g} {_ms(figures.get('ttft'))} (target {slo.ttft.latency_ms:g}), TPOT p"
                  f"{slo.tpot.percentile:g} {_ms(figures.get('tpot'))} (target {slo.tpot.latency_ms:g}): "
                  f"{'met' if c.met else 'MISSED'}")
        doc["as_written"] = {"seed": seed, "services": rows}
        missed = tuple(n for n, r in rows.items() if not r["met"])
    sys.stdout.flush()
    return mapped, Written(doc, missed)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g} ms"

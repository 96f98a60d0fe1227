"""plan.json with its `verify` section, and what a sweep point of mode `plan` / `plan+verify` yields.

`verify` = {`met`, `seed`, `rounds` (one per round: `round`, `action` (plan | tighten | relax |
certificate), `usd_per_hour`, `status`, `pools` (pool id -> replicas), `services` (predicted,
simulated, attainment and `met`, with `by_site`), `met`, `tightened` (service -> capacity factor
for the next round), `factors` (the capacity factors the plan was made with), `relaxed` (service ->
factor a relax round tried), `kept`, `note`, and for a certificate round its `entries`),
`final_round`, `final_from` ("milp", or "local search" when the certificate's descent took
replicas off the MILP's plan), `milp` (the plan the final deployment comes from: `round`,
`usd_per_hour`, `pools`), `first_met_usd_per_hour` (the first SLO-meeting plan, before relaxing), `stopped` (rounds,
time limit, certificate), `rounds_limit`, `time_limit_s`, `replans` (relaxing re-plans not simulated:
`after_round`, `relaxed`, `usd_per_hour`, `note`) and `certificate` = {`holds` (true, or
null unless complete), `complete`, `entries` (`pool`, `replicas`, `saved_usd_per_hour`, `outcome`:
misses | verifies | cannot remove | not checked, `missed`: [{`service`, `percentile`,
`simulated_ms`, `slo_ms`, `attainment`, `site` (the demand site `simulated_ms` is of, "" for
the service's requests overall)}], `note`), `seed`, `usd_per_hour`, `note`}. A service's `met`
holds when its percentile and every demand site's are within the target; `worst_site` and
`worst_ms` name the demand site whose percentile is highest when it is above the service's.

The top-level `deployment`, `usd_per_hour`, `cost` and `routing` are the final verified deployment.
When it comes from the local search, `pools` lists its pools with their final `replicas` and the
MILP's as `milp_replicas`; the model's figures that depend on the count (`capacity_rps`,
`planned_utilization`, `predicted_ms`) are null for a pool the search changed, and `predicted`
stays the MILP plan's prediction, which the search's deployment was not planned under.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from lepton_sim.planner.document import infeasible_document, plan_document, rounded
from lepton_sim.planner.errors import Infeasible
from lepton_sim.planner.options import PlanOptions, scenario_options
from lepton_sim.planner.plan import plan
from lepton_sim.scenario.schema import Scenario
from lepton_sim.verification.certificate import Certificate, Entry
from lepton_sim.verification.checks import Check
from lepton_sim.verification.deployment import Pricing, deployment_mapping, lines_of, routing_of
from lepton_sim.verification.loop import Round, Verified, verify
from lepton_sim.verification.llm_meter import with_meter


def _check(c: Check) -> dict[str, Any]:
    out = {"predicted_ms": c.predicted_ms, "simulated_ms": c.simulated_ms, "attainment": c.attainment, "met": c.met}
    if c.by_metric is not None:  # an LLM service: the target it is judged on, and both figures
        out.update(metric=c.metric, target_ms=c.target_ms,
                   **{f"simulated_{k}_ms": v for k, v in c.by_metric.items()})
    if c.worst_site:
        out.update(worst_site=c.worst_site, worst_ms=c.worst_ms)
    return rounded(out)


def entry_dict(e: Entry) -> dict[str, Any]:
    return rounded({"pool": e.pool, "replicas": e.count, "saved_usd_per_hour": e.saved_usd_per_hour,
                    "outcome": e.outcome, "missed": [asdict(m) for m in e.missed], "note": e.note})


def certificate_dict(c: Certificate) -> dict[str, Any]:
    return {"holds": c.holds, "complete": c.complete, "entries": [entry_dict(e) for e in c.entries], "seed": c.seed,
            "usd_per_hour": rounded(c.usd_per_hour), "note": c.note}


def round_dict(r: Round) -> dict[str, Any]:
    out = {
        "round": r.index, "action": r.action, "usd_per_hour": rounded(r.usd_per_hour),
        "status": r.plan.solve.status.value, "pools": {line.id: line.count for line in r.lines},
        "services": {name: {**_check(c), "by_site": {site: _check(x) for site, x in r.by_site[name].items()}}
                     for name, c in r.services.items()},
        "met": r.met,
        "tightened": {name: rounded(f) for name, f in r.tightened.items()},  # service -> capacity factor next round
        "factors": rounded(dict(r.factors)), "relaxed": rounded(dict(r.relaxed)), "kept": r.kept, "note": r.note,
    }
    if r.action == "certificate":
        out["entries"] = [entry_dict(e) for e in r.entries]
    return out


def verify_section(v: Verified, rounds_limit: int | None = None, time_limit_s: float | None = None) -> dict[str, Any]:
    first = v.first_met
    return {"met": v.met, "seed": v.seed, "rounds": [round_dict(r) for r in v.rounds],
            "final_round": v.final.index, "final_from": v.final_from,
            "milp": {"round": v.milp_round.index, "usd_per_hour": rounded(v.final.plan.usd_per_hour),
                     "pools": {p.id: p.count for p in v.final.plan.pools}},
            "first_met_usd_per_hour": None if first is None else rounded(first.usd_per_hour),
            "stopped": v.stopped, "rounds_limit": rounds_limit, "time_limit_s": time_limit_s,
            "replans": [rounded({"after_round": r.after_round, "relaxed": dict(r.relaxed),
                                 "usd_per_hour": r.usd_per_hour, "note": r.note}) for r in v.replans],
            "certificate": certificate_dict(v.certificate)}


def verified_document(scenario: Scenario, v: Verified, options: PlanOptions, rounds_limit: int | None = None,
                      time_limit_s: float | None = None) -> dict[str, Any]:
    """plan.json of a verified run: the final deployment's, with the verify section."""
    final = v.final
    doc = plan_document(final.plan, options, verify_section(v, rounds_limit, time_limit_s))
    if v.final_from == "milp":
        return doc
    pricing = Pricing.of(scenario, final.plan)
    replicas, egress, energy = pricing.costs(final.lines)
    doc["usd_per_hour"] = rounded(final.usd_per_hour)
    doc["cost"] = rounded({"replicas_usd_per_hour": replicas, "egress_usd_per_hour": egress,
                           "energy_usd_per_hour": energy})
    doc["deployment"] = deployment_mapping(final.lines)
    doc["routing"] = routing_of(final.lines)
    # the plan's pool of each line: by key and degree (a line removed before another of its key renumbers it)
    own = {(line.key, line.tensor_parallel): line for line in lines_of(final.plan)}
    planned = {(s, site): d["planned_rps"] for s, sites in final.plan.demand.items() for site, d in sites.items()}
    pools = {}
    for line in final.lines:
        mine = own[(line.key, line.tensor_parallel)]
        entry = dict(doc["pools"][mine.id])
        if (mine.count, dict(mine.weights)) != (line.count, dict(line.weights)):
            load = sum(f * planned[(line.service, site)] for site, f in line.weights.items())
            entry.update(replicas=line.count, milp_replicas=mine.count, capacity_rps=None,
                         planned_utilization=None, predicted_ms=None, planned_rps=rounded(load))
        pools[line.id] = entry
    doc["pools"] = pools
    return doc


def plan_outputs(scenario: Scenario, seed: int | None, with_verify: bool,
                 options: PlanOptions = PlanOptions()) -> dict[str, Any]:
    """What a sweep point of mode `plan` / `plan+verify` yields: {"plan": plan.json, "metrics": metrics.json}.

    Verified, the metrics are the final deployment's simulation. An infeasible scenario gives its
    plan.json (status infeasible, reasons) and no metrics instead of raising, so the sweep row
    records the status; `NoPlan` and bad input still raise.
    """
    from lepton_sim.verification.buckets import bucket_outcome, choose_buckets

    options = with_meter(scenario_options(scenario, options))
    try:
        chosen = choose_buckets(scenario, options, echo=False)  # request-size buckets, as `plan` splits them
        planned = chosen.scenario if chosen is not None else scenario
        if with_verify:
            if chosen is not None:
                from lepton_sim.verification.buckets import verify_buckets

                chosen, verified = verify_buckets(scenario, chosen, lambda s: verify(s, options, seed=seed), echo=False)
                planned = chosen.scenario
            else:
                verified = verify(planned, options, seed=seed)
            out = {"plan": verified_document(planned, verified, options), "metrics": verified.final.metrics}
        else:
            verified, out = None, {"plan": plan_document(plan(planned, options), options)}
    except Infeasible as exc:
        return {"plan": infeasible_document(scenario.name, exc, options), "metrics": None}
    if chosen is not None:  # the plan as the scenario names its services; verified, the metrics as written
        deployment, written = bucket_outcome(scenario, chosen, out["plan"]["deployment"],
                                             None if verified is None else verified.seed, echo=False)
        out["plan"] = {**out["plan"], "deployment": deployment, **written.document}
        if written.metrics is not None:
            out["metrics"] = written.metrics
    return out

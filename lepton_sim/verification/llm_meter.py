"""The planner's LLM replica meter: one replica of a service, alone, simulated at a Poisson rate.

`planner.llm` searches for the largest rate one replica takes within the TTFT and TPOT targets and
asks this meter for each trial (the planner never imports the simulator; this layer sits above
both). A trial is the service's own scenario cut down to one site holding one replica of the
given hardware, variant and tensor-parallel degree, no links and no failures, fed Poisson
arrivals at the rate for `requests` requests after a warm-up of `WARMUP_SHARE` of them (the
replica starts empty), with the scheduler and token distributions of the service, and drained
after the last arrival until a request still unfinished must miss a target (TTFT target plus the
longest output at the TPOT target). The quantiles
are of every request created after the warm-up: a request that never got its first token (or
never finished) counts as beyond every level, so an overloaded replica reads as infinitely slow.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from lepton_sim.planner.options import PlanOptions
from lepton_sim.scenario.schema import Deployment, Demand, Horizon, Poisson, Replicas, Scenario, Site
from lepton_sim.sim import simulate

WARMUP_SHARE = 0.1
SITE = "replica"
DRAIN_MAX_S = 600.0


def replica_scenario(scenario: Scenario, service: str, hardware: str, variant: str, tensor_parallel: int,
                     rate_rps: float, requests: int) -> Scenario:
    """`scenario` reduced to one replica of `service` fed `rate_rps` for about `requests` requests after warm-up."""
    svc = scenario.services[service]
    # After the last arrival, run until a request that has not finished must have missed TTFT or TPOT (its first
    # token later than the TTFT target, or its tokens slower than the TPOT target on average).
    _, longest = svc.tokens.max_tokens() if svc.tokens is not None else (None, None)
    slo = svc.slo
    drain = DRAIN_MAX_S
    if longest is not None and slo.ttft is not None and slo.tpot is not None:
        drain = min(DRAIN_MAX_S, 1.01 * (slo.ttft.latency_ms + longest * slo.tpot.latency_ms) / 1e3)
    duration = requests * (1.0 + WARMUP_SHARE) / rate_rps
    warmup = requests * WARMUP_SHARE / rate_rps
    one = svc.model_copy(update={"demand": [Demand(site=SITE, rate_rps=rate_rps, arrival=Poisson())],
                                 "max_queue": None})
    line = Replicas(service=service, site=SITE, hardware=hardware, variant=variant, count=1,
                    tensor_parallel=tensor_parallel)
    return scenario.model_copy(update={
        "name": f"{scenario.name}:{service}@{hardware}/{variant}/tp{tensor_parallel}",
        "horizon": Horizon(duration_s=duration, warmup_s=warmup, drain_s=drain),
        "hardware": {hardware: scenario.hardware[hardware]},
        "sites": {SITE: Site(capacity={hardware: tensor_parallel})},
        "links": [], "failures": {},
        "models": {svc.model: scenario.models[svc.model]},
        "services": {service: one},
        "deployment": Deployment(replicas=[line], routing="nearest"),
    })


class SimulatedReplicas:
    """`planner.llm.LLMMeter` by simulation."""

    def measure(self, scenario: Scenario, service: str, hardware: str, variant: str, tensor_parallel: int,
                rate_rps: float, requests: int, seed: int, levels: Sequence[float]) -> dict[str, list[float]]:
        s = replica_scenario(scenario, service, hardware, variant, tensor_parallel, rate_rps, requests)
        rec = simulate(s, seed)
        t = rec.services[service]
        assert t.llm is not None
        arrived = t.arrived
        # TPOT exists for completed requests of 2+ output tokens; unfinished ones are beyond every level
        single = t.completed - t.llm.tpot_s.count
        return {"ttft_s": [_quantile(t.llm.ttft_s, arrived, lv) for lv in levels],
                "tpot_s": [_quantile(t.llm.tpot_s, arrived - single, lv) for lv in levels]}


def _quantile(summary: object, population: int, level: float) -> float:
    """The `level` quantile over `population` requests, of which `summary` holds the finite values (the rest are
    beyond it): inf when fewer than `level` of them are finite."""
    n = summary.count  # type: ignore[attr-defined]
    if population <= 0:
        return math.inf
    if n == 0 or n < level * population:
        return math.inf
    return float(summary.quantiles([min(1.0, level * population / n)])[0])  # type: ignore[attr-defined]


def with_meter(options: PlanOptions) -> PlanOptions:
    """`options` with the simulator as its LLM replica meter, unless it has one."""
    return options if options.llm_meter is not None else options.with_(llm_meter=SimulatedReplicas())

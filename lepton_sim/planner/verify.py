"""Close the loop: simulate the plan, compare predicted with simulated latency, tighten and re-plan.

Each round plans, writes the plan into the scenario (routing `weighted` with the plan's fractions)
and simulates it. A service whose simulated SLO attainment falls short has the capacity assumed of
all its pools (every line it could use, so the next plan cannot dodge the correction by moving)
scaled down by `clamp(target / simulated latency at the percentile, 0.25, 0.9)`: a near miss
tightens by 10 %, an overloaded pool by up to 4x. The next round re-plans with those factors; at
most `rounds` rounds, every one reported.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from lepton_sim.metrics import build_metrics
from lepton_sim.planner.options import PlanOptions
from lepton_sim.planner.plan import plan
from lepton_sim.planner.result import PlanResult
from lepton_sim.scenario.schema import Deployment, Replicas, Scenario
from lepton_sim.sim import simulate

SHRINK_MIN, SHRINK_MAX = 0.25, 0.9


@dataclass(frozen=True)
class Check:
    """Predicted against simulated latency at the SLO percentile, for a service or one of its demand sites."""

    predicted_ms: float | None
    simulated_ms: float | None
    attainment: float | None
    met: bool


@dataclass(frozen=True)
class Round:
    """One plan-and-simulate round."""

    index: int
    plan: PlanResult
    services: dict[str, Check]
    by_site: dict[str, dict[str, Check]]
    tightened: dict[str, float]  # service -> capacity factor for the next round (empty when all met or last)
    metrics: dict[str, Any]

    @property
    def met(self) -> bool:
        return all(c.met for c in self.services.values())


@dataclass(frozen=True)
class Verified:
    rounds: tuple[Round, ...]
    seed: int

    @property
    def final(self) -> Round:
        return self.rounds[-1]

    @property
    def met(self) -> bool:
        return self.final.met


def planned_scenario(scenario: Scenario, result: PlanResult) -> Scenario:
    """`scenario` with the plan as its deployment."""
    lines = [Replicas(**line) for line in result.deployment()["replicas"]]
    return scenario.model_copy(update={"deployment": Deployment(replicas=lines, routing="weighted")})


def check_plan(scenario: Scenario, result: PlanResult, seed: int) -> tuple[dict[str, Check], dict[str, dict[str, Check]], dict[str, Any]]:
    """Simulate the plan once: per service and per demand site, predicted vs simulated; and the metrics."""
    planned = planned_scenario(scenario, result)
    metrics = build_metrics(planned, simulate(planned, seed))
    services: dict[str, Check] = {}
    by_site: dict[str, dict[str, Check]] = {}
    for name, m in metrics["services"].items():
        pred = result.predicted.get(name)
        services[name] = _check(pred.latency_ms if pred else None, m)
        by_site[name] = {site: _check(pred.by_site.get(site) if pred else None, ms) for site, ms in m["by_site"].items()}
    return services, by_site, metrics


def _check(predicted: float | None, m: dict[str, Any]) -> Check:
    return Check(predicted, m["slo"]["latency_at_percentile_ms"], m["slo_attainment"], bool(m["slo"]["met"]))


def verify(scenario: Scenario, options: PlanOptions = PlanOptions(), rounds: int = 3, seed: int | None = None) -> Verified:
    """Plan, simulate and tighten for at most `rounds` rounds; stops at the first plan meeting every SLO."""
    seed = scenario.seed if seed is None else seed
    factors: dict[str, float] = dict(options.service_factor)
    done: list[Round] = []
    for i in range(1, rounds + 1):
        result = plan(scenario, options.with_(service_factor=MappingProxyType(dict(factors))))
        services, by_site, metrics = check_plan(scenario, result, seed)
        tightened: dict[str, float] = {}
        if i < rounds:
            for name, chk in services.items():
                if chk.met:
                    continue
                slo_ms = scenario.services[name].slo.latency_ms
                ratio = slo_ms / chk.simulated_ms if chk.simulated_ms else SHRINK_MIN
                tightened[name] = factors.get(name, 1.0) * min(max(ratio, SHRINK_MIN), SHRINK_MAX)
        done.append(Round(i, result, services, by_site, tightened, metrics))
        if all(c.met for c in services.values()):
            break
        factors.update(tightened)
    return Verified(tuple(done), seed)

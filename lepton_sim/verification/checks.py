"""One simulation of a deployment, read as a verdict per service and demand site.

The deployment is written into the scenario (`weighted` routing, the plan's fractions) and
simulated once with the given seed. Every deployment the loop compares is simulated with the same
seed: the random streams are named per demand line and pool, so two deployments that differ in one
pool see the same arrivals (common random numbers), and a difference in latency is the pools', not
the dice's.

A service meets its SLO when its own percentile and every demand site's are within the target
(what the planner promises: every route within it), so a mix that meets it on average while one
site's users miss does not verify. An LLM service meets it when both its TTFT and its TPOT targets
hold (per site too); its verdict carries the one it is furthest from (`Check.metric`), which is
what the verify loop scales its factor by.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from lepton_sim.metrics import build_metrics
from lepton_sim.planner.result import PlanResult, Prediction
from lepton_sim.scenario.schema import Scenario
from lepton_sim.sim import simulate
from lepton_sim.verification.deployment import Line, deployed_scenario, lines_of


@dataclass(frozen=True)
class Check:
    """Predicted against simulated latency at the SLO percentile, for a service or one of its demand sites."""

    predicted_ms: float | None  # None where the deployment is not the plan's (the planner predicted another)
    simulated_ms: float | None
    attainment: float | None
    met: bool  # for a service: its percentile and every demand site's own within the target
    worst_site: str = ""  # for a service: the demand site whose percentile is the highest, when above the service's
    worst_ms: float | None = None  # that site's latency at the percentile
    target_ms: float | None = None  # an LLM service's: the target `judged_ms` is held to (else slo.latency_ms)
    metric: str = "latency"  # "latency" (end to end), or an LLM service's binding target: "ttft" or "tpot"
    by_metric: Mapping[str, float | None] | None = None  # an LLM service's simulated TTFT and TPOT at their percentiles

    def simulated_of(self, metric: str) -> float | None:
        """The simulated figure of one metric ("latency", "ttft", "tpot") where this check has it."""
        if self.by_metric is not None and metric in self.by_metric:
            return self.by_metric[metric]
        return self.simulated_ms if metric == self.metric else None

    @property
    def judged_ms(self) -> float | None:
        """The latency the verdict rests on: the worst demand site's when it is above the service's."""
        return self.worst_ms if self.worst_site else self.simulated_ms


def target_of(scenario: Scenario, service: str, c: Check) -> tuple[float, float]:
    """(percentile, target ms) that `c.judged_ms` is held to: the service's end-to-end SLO, or for an LLM service
    the TTFT or TPOT target it is judged on."""
    slo = scenario.services[service].slo
    if c.metric == "ttft" and slo.ttft is not None:
        return slo.ttft.percentile, slo.ttft.latency_ms
    if c.metric == "tpot" and slo.tpot is not None:
        return slo.tpot.percentile, slo.tpot.latency_ms
    assert slo.latency_ms is not None
    return slo.percentile, slo.latency_ms


@dataclass(frozen=True)
class Simulated:
    """The verdicts of one simulation and the metrics.json they were read from."""

    services: dict[str, Check]
    by_site: dict[str, dict[str, Check]]
    metrics: dict[str, Any]

    @property
    def met(self) -> bool:
        return all(c.met for c in self.services.values())

    def missed(self) -> list[str]:
        return [name for name, c in self.services.items() if not c.met]


def check_lines(scenario: Scenario, lines: Sequence[Line], seed: int, result: PlanResult | None = None) -> Simulated:
    """Simulate `lines`; per service and demand site, simulated latency against the plan's prediction.

    `result`'s predictions are attached to the services whose pools are exactly the plan's (the
    planner predicted nothing about a deployment it did not choose).
    """
    own = _by_service(lines_of(result)) if result is not None else {}
    mine = _by_service(lines)
    predicted = {name: p for name, p in result.predicted.items() if own.get(name) == mine.get(name)} if result is not None else {}
    return check_scenario(deployed_scenario(scenario, lines), seed, predicted)


def check_scenario(scenario: Scenario, seed: int, predicted: Mapping[str, Prediction] | None = None) -> Simulated:
    """Simulate `scenario` with its own deployment; the verdicts per service and demand site (against
    `predicted`, where given)."""
    metrics = build_metrics(scenario, simulate(scenario, seed))
    services: dict[str, Check] = {}
    by_site: dict[str, dict[str, Check]] = {}
    for name, m in metrics["services"].items():
        pred = (predicted or {}).get(name)
        by_site[name] = {site: _check(pred, site, ms) for site, ms in m["by_site"].items()}
        services[name] = _with_sites(_check(pred, None, m), by_site[name])
    return Simulated(services, by_site, metrics)


def check_plan(scenario: Scenario, result: PlanResult,
               seed: int) -> tuple[dict[str, Check], dict[str, dict[str, Check]], dict[str, Any]]:
    """Simulate the plan once: per service and per demand site, predicted vs simulated; and the metrics."""
    s = check_lines(scenario, lines_of(result), seed, result)
    return s.services, s.by_site, s.metrics


def _by_service(lines: Sequence[Line]) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    for line in lines:
        out.setdefault(line.service, []).append((line.key, line.count, line.tensor_parallel,
                                                 tuple(sorted(line.weights.items()))))
    return out


def _with_sites(service: Check, sites: Mapping[str, Check]) -> Check:
    """A service's verdict over its demand sites too: each site's users are held to the target, not only the mix."""
    met = service.met and all(c.met for c in sites.values())
    worst = max(((c.simulated_ms, site) for site, c in sites.items()
                 if c.simulated_ms is not None and c.metric == service.metric), default=None)
    if worst is None or service.simulated_ms is None or worst[0] <= service.simulated_ms:
        return replace(service, met=met)
    return replace(service, met=met, worst_site=worst[1], worst_ms=worst[0])


def _check(pred: Prediction | None, site: str | None, m: Mapping[str, Any]) -> Check:
    """The verdict of one metrics entry (a service's, or one demand site's with `site`) against `pred`.

    An LLM service's (its entry has `ttft_slo` and `tpot_slo`) is judged on the target it is furthest
    from (simulated over target; TTFT on a tie), met when both are."""
    def predicted(p: Prediction | None) -> float | None:
        if p is None:
            return None
        return p.latency_ms if site is None else p.by_site.get(site)

    if "ttft_slo" in m:
        ratios = []
        for metric in ("ttft", "tpot"):
            t = m[f"{metric}_slo"]
            at = t["latency_at_percentile_ms"]
            ratios.append((at / t["latency_ms"] if at is not None else float("inf"), metric, at, t["latency_ms"]))
        _, metric, at, target = max(ratios, key=lambda r: r[0])
        p = pred if pred is None or metric == pred.metric else pred.tpot
        figures = {r[1]: r[2] for r in ratios}
        return Check(predicted(p), at, m["slo_attainment"], bool(m["slo"]["met"]), target_ms=target, metric=metric,
                     by_metric=figures)
    return Check(predicted(pred), m["slo"]["latency_at_percentile_ms"], m["slo_attainment"], bool(m["slo"]["met"]))

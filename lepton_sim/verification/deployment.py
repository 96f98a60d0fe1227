"""A deployment as plain data: the pools the verify loop simulates, shrinks and prices.

A plan's deployment is a tuple of `Line`s (one per pool, the plan's order) with routing `weighted`.
The certificate looks at deployments one replica smaller than a verified one: `shrunk` takes one
replica off a line; a line left with none is removed and each demand site it served has the
service's other lines' fractions renormalised (same routing otherwise, so every other pool sees
what it saw before, scaled up only where the removed pool's share went).

Prices are the plan's: a replica costs its hardware's `cost_per_hour` plus its busy-power energy
(`PlanResult.replica_usd_per_hour`), times its devices (an LLM replica's `tensor_parallel`), and egress is charged on each demand site's mean rate over the
lowest-latency route, request and response bytes at each link's `cost_per_gb`, as the planner
charges it (`lepton_sim.planner.paths`). A deployment's cost is the plan's total plus the change
in those two against the plan's own lines, so it agrees with the planner to the last digit.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from lepton_sim.network import Topology
from lepton_sim.planner.options import PoolKey
from lepton_sim.planner.paths import message_bits
from lepton_sim.planner.result import PlanResult, pool_id
from lepton_sim.scenario.schema import Deployment, Replicas, Scenario


@dataclass(frozen=True)
class Line:
    """One pool of a deployment: where and what, how many replicas, each demand site's fraction."""

    key: PoolKey  # (service, site, hardware, variant)
    count: int
    weights: Mapping[str, float]  # demand site -> fraction of that site's requests for the service
    tensor_parallel: int = 1  # devices per replica (LLM services)
    ordinal: int = 1  # the line's place among the deployment's lines of its key (`renumbered`)

    @property
    def id(self) -> str:
        return pool_id(self.key, self.ordinal)

    @property
    def service(self) -> str:
        return self.key[0]

    def as_dict(self) -> dict[str, Any]:
        s, site, hw, variant = self.key
        tp = {"tensor_parallel": self.tensor_parallel} if self.tensor_parallel > 1 else {}
        return {"service": s, "site": site, "hardware": hw, "variant": variant, "count": self.count, **tp,
                "weights": dict(self.weights)}

    @property
    def devices(self) -> int:
        return self.count * self.tensor_parallel


Lines = tuple[Line, ...]


def lines_of(result: PlanResult) -> Lines:
    """The plan's deployment as lines, in the plan's order."""
    return tuple(Line(p.key, p.count, dict(p.weights), p.tensor_parallel, p.ordinal) for p in result.pools)


def renumbered(lines: Sequence[Line]) -> Lines:
    """`lines` with each one's `ordinal` its place among the lines of its key, as the simulator names their pools."""
    seen: dict[PoolKey, int] = defaultdict(int)
    out = []
    for line in lines:
        seen[line.key] += 1
        out.append(line if line.ordinal == seen[line.key] else replace(line, ordinal=seen[line.key]))
    return tuple(out)


def deployment_mapping(lines: Sequence[Line]) -> dict[str, Any]:
    """The scenario `deployment` mapping of `lines` (routing `weighted`), as plan.json and the planned YAML hold it."""
    return {"replicas": [line.as_dict() for line in lines], "routing": "weighted"}


def deployed_scenario(scenario: Scenario, lines: Sequence[Line]) -> Scenario:
    """`scenario` with `lines` as its deployment."""
    replicas = [Replicas(**line.as_dict()) for line in lines]
    return scenario.model_copy(update={"deployment": Deployment(replicas=replicas, routing="weighted")})


def planned_scenario(scenario: Scenario, result: PlanResult) -> Scenario:
    """`scenario` with the plan as its deployment."""
    return deployed_scenario(scenario, lines_of(result))


def shrunk(lines: Lines, index: int) -> Lines | str:
    """`lines` with one replica fewer on line `index`; or, when that removes the only pool serving one of its
    demand sites, why it cannot be removed."""
    line = lines[index]
    if line.count > 1:
        return lines[:index] + (replace(line, count=line.count - 1),) + lines[index + 1:]
    rest = lines[:index] + lines[index + 1:]
    out = list(rest)
    for site, frac in sorted(line.weights.items()):
        if frac <= 0:
            continue
        others = [i for i, o in enumerate(rest) if o.service == line.service and o.weights.get(site, 0.0) > 0]
        if not others:
            return f"only pool serving {site}"
        total = sum(rest[i].weights[site] for i in others)
        for i in others:
            out[i] = replace(out[i], weights={**out[i].weights, site: rest[i].weights[site] / total})
    return renumbered(out)


def deployment_key(lines: Sequence[Line]) -> tuple[Any, ...]:
    """A hashable identity of a deployment: two with equal keys simulate alike under one seed."""
    return tuple((line.key, line.count, line.tensor_parallel,
                  tuple(sorted((k, round(v, 12)) for k, v in line.weights.items()))) for line in lines)


def routing_of(lines: Sequence[Line]) -> dict[str, dict[str, dict[str, float]]]:
    """Service -> demand site -> pool id -> fraction, like plan.json's `routing`."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for line in lines:
        for site, frac in line.weights.items():
            if frac > 0:
                out[line.service][site][line.id] = frac
    return {s: {site: dict(p) for site, p in sorted(sites.items())} for s, sites in out.items()}


@dataclass(frozen=True)
class Pricing:
    """What the plan charges, to price other deployments of its pools alike."""

    replica: Mapping[str, float]  # hardware -> US$ per replica-hour, energy included
    energy: Mapping[str, float]  # hardware -> the energy part of it
    mean_rps: Mapping[tuple[str, str], float]  # (service, demand site) -> mean rate
    egress_per_request: Mapping[tuple[str, str, str], float]  # (service, demand site, pool site) -> US$
    base: PlanResult

    @classmethod
    def of(cls, scenario: Scenario, result: PlanResult) -> Pricing:
        topology = Topology(scenario)
        bits = message_bits(scenario)
        egress: dict[tuple[str, str, str], float] = {}
        for p in result.pools:
            for site in scenario.sites:
                route = topology.route(site, p.key[1])
                if route is None:
                    continue
                usd_per_gb = sum(scenario.links[h.link_index].cost_per_gb for h in route.hops)
                egress[(p.key[0], site, p.key[1])] = sum(bits[p.key[0]]) / 8.0 / 1e9 * usd_per_gb
        energy = {hw: usd - scenario.hardware[hw].cost_per_hour for hw, usd in result.replica_usd_per_hour.items()}
        mean = {(s, site): float(d["mean_rps"]) for s, sites in result.demand.items() for site, d in sites.items()}
        return cls(dict(result.replica_usd_per_hour), energy, mean, egress, result)

    def replicas_usd_per_hour(self, lines: Sequence[Line]) -> float:
        return sum(line.devices * self.replica[line.key[2]] for line in lines)

    def energy_usd_per_hour(self, lines: Sequence[Line]) -> float:
        return sum(line.devices * self.energy[line.key[2]] for line in lines)

    def egress_usd_per_hour(self, lines: Sequence[Line]) -> float:
        return sum(3600.0 * self.mean_rps.get((line.service, site), 0.0) * frac
                   * self.egress_per_request.get((line.service, site, line.key[1]), 0.0)
                   for line in lines for site, frac in line.weights.items())

    def costs(self, lines: Sequence[Line]) -> tuple[float, float, float]:
        """(replicas incl. energy, egress, energy) of `lines` in US$ per hour, offset from the plan's own figures."""
        own = lines_of(self.base)
        c = self.base.costs
        return (c.replicas + self.replicas_usd_per_hour(lines) - self.replicas_usd_per_hour(own),
                c.egress + self.egress_usd_per_hour(lines) - self.egress_usd_per_hour(own),
                c.energy + self.energy_usd_per_hour(lines) - self.energy_usd_per_hour(own))

    def usd_per_hour(self, lines: Sequence[Line]) -> float:
        replicas, egress, _ = self.costs(lines)
        return replicas + egress

    def service_replicas_usd_per_hour(self, lines: Sequence[Line], service: str) -> float:
        return sum(line.devices * self.replica[line.key[2]] for line in lines if line.service == service)

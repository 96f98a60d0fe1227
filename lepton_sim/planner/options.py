"""Planner settings: solver flags, modelling assumptions, and the optional scenario `planner:` block.

The scenario block (read here if the schema carries it) is

    planner:
      energy_usd_per_kwh: 0.12        # adds each replica's busy power x price to the objective
      power_budget_w: {dc-1: 5000}    # per site: sum of replicas' power_w at most this
      link_utilization: 0.5           # a link direction is planned at most this busy at peak rates
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal, Mapping

from lepton_sim.scenario.schema import Scenario

PoolKey = tuple[str, str, str, str]  # (service, site, hardware, variant): one deployment line

Solver = Literal["highs", "cbc"]
LatencyModel = Literal["tight", "bound"]  # pool latency: exact or validated per queue kind, or the Kingman bound for all

DEFAULT_LINK_UTILIZATION = 0.5


@dataclass(frozen=True)
class PlanOptions:
    """Everything `plan` takes besides the scenario."""

    solver: Solver = "highs"
    time_limit_s: float | None = None  # over the whole solve (all components); None: no limit
    gap: float | None = None  # relative gap at which the solver may stop; None: the solver's default
    link_utilization: float = DEFAULT_LINK_UTILIZATION
    energy_usd_per_kwh: float = 0.0
    power_budget_w: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    capacity_factor: Mapping[PoolKey, float] = field(default_factory=lambda: MappingProxyType({}))  # per line
    service_factor: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))  # all of a service's
    hardware: frozenset[str] | None = None  # restrict pools to these types (single-type baselines)
    baselines: bool = True
    decompose: bool = True  # solve independent groups of services apart (lazy shared constraints)
    threads: int | None = None
    latency_model: LatencyModel = "tight"  # lepton_sim/planner/latency.py; "bound": lepton_sim/planner/capacity.py
    tables: Any = None  # where measured capacity tables are kept (planner.measured.TableStore); None: in memory
    progress: Any = field(default=None, compare=False)  # Callable[[str], None]: told how a long plan is going
    prep_workers: int | None = None  # processes preparing the problem; None: 2 from 100 services on (Linux)
    tensor_parallel: tuple[int, ...] = (1, 2, 4, 8)  # degrees an LLM replica may have (each where it can run)
    llm_meter: Any = field(default=None, compare=False)  # planner.llm.LLMMeter: measures LLM replicas (the simulator)

    def factor(self, key: PoolKey) -> float:
        """The scale on the modelled capacity of one line: its own factor times its service's."""
        return self.capacity_factor.get(key, 1.0) * self.service_factor.get(key[0], 1.0)

    def with_(self, **changes: Any) -> PlanOptions:
        return replace(self, **changes)


def scenario_options(scenario: Scenario, base: PlanOptions) -> PlanOptions:
    """`base` with the scenario's optional `planner:` block applied (when the schema has one)."""
    block = getattr(scenario, "planner", None)
    if block is None:
        return base
    changes: dict[str, Any] = {}
    for name in ("energy_usd_per_kwh", "link_utilization"):
        v = getattr(block, name, None)
        if v is not None:
            changes[name] = float(v)
    budget = getattr(block, "power_budget_w", None)
    if budget:
        changes["power_budget_w"] = MappingProxyType({str(k): float(v) for k, v in budget.items()})
    return replace(base, **changes)

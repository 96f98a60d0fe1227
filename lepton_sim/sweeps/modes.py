"""What a sweep runs per point: each mode maps (scenario, seed) to the documents its metrics come from.

`simulate` gives metrics.json; `plan` and `plan+verify` give what
`lepton_sim.verification.document.plan_outputs` gives: plan.json (an infeasible point is an answer,
not a failure: status ``infeasible`` with the reasons) and, verified, the metrics.json of the final
deployment's simulation (the verify loop of `plan --verify`, with its default rounds).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lepton_sim.errors import ScenarioError
from lepton_sim.scenario import Scenario

Outputs = dict[str, Any]  # document name ("metrics", "plan") -> its JSON object, None when there is none


def run_simulate(scenario: Scenario, seed: int) -> Outputs:
    """metrics.json of one simulation."""
    from lepton_sim.metrics import build_metrics
    from lepton_sim.sim import simulate

    if scenario.deployment is None:
        raise ScenarioError("required by mode simulate (what to run, as replica pools)", path="deployment")
    return {"metrics": build_metrics(scenario, simulate(scenario, seed))}


def run_plan(scenario: Scenario, seed: int) -> Outputs:
    """plan.json of the cheapest deployment (the planner is deterministic: `seed` is unused)."""
    from lepton_sim.planner.options import PlanOptions
    from lepton_sim.tablecache import default_store
    from lepton_sim.verification.document import plan_outputs

    return plan_outputs(scenario, seed, with_verify=False, options=PlanOptions(tables=default_store()))


def run_plan_verify(scenario: Scenario, seed: int) -> Outputs:
    """plan.json with its verify rounds and certificate, and the final deployment's metrics.json (simulated with
    `seed`)."""
    from lepton_sim.planner.options import PlanOptions
    from lepton_sim.tablecache import default_store
    from lepton_sim.verification.document import plan_outputs

    return plan_outputs(scenario, seed, with_verify=True, options=PlanOptions(tables=default_store()))


MODES: dict[str, Callable[[Scenario, int], Outputs]] = {
    "simulate": run_simulate, "plan": run_plan, "plan+verify": run_plan_verify,
}

"""What a sweep runs per point: each mode maps (scenario, seed) to the documents its metrics come from.

`simulate` gives metrics.json; `plan` gives plan.json (an infeasible point is an answer, not a
failure: status ``infeasible`` with the reasons); `plan+verify` gives plan.json with its
verification rounds and the metrics.json of the last round's simulation.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lepton_sim.errors import ScenarioError
from lepton_sim.scenario import Scenario

Outputs = dict[str, Any]  # document name ("metrics", "plan") -> its JSON object, None when there is none
VERIFY_ROUNDS = 3


def run_simulate(scenario: Scenario, seed: int) -> Outputs:
    """metrics.json of one simulation."""
    from lepton_sim.metrics import build_metrics
    from lepton_sim.sim import simulate

    if scenario.deployment is None:
        raise ScenarioError("required by mode simulate (what to run, as replica pools)", path="deployment")
    return {"metrics": build_metrics(scenario, simulate(scenario, seed))}


def run_plan(scenario: Scenario, seed: int) -> Outputs:
    """plan.json of the cheapest deployment (the planner is deterministic: `seed` is unused)."""
    from lepton_sim.planner import Infeasible, plan
    from lepton_sim.sweeps.plandoc import infeasible_document, plan_document

    try:
        return {"plan": plan_document(plan(scenario))}
    except Infeasible as exc:
        return {"plan": infeasible_document(scenario.name, exc)}


def run_plan_verify(scenario: Scenario, seed: int) -> Outputs:
    """plan.json with up to `VERIFY_ROUNDS` plan-simulate-tighten rounds, and the last round's metrics.json."""
    from lepton_sim.planner import Infeasible
    from lepton_sim.planner.verify import verify
    from lepton_sim.sweeps.plandoc import infeasible_document, plan_document

    try:
        verified = verify(scenario, rounds=VERIFY_ROUNDS, seed=seed)
    except Infeasible as exc:
        return {"plan": infeasible_document(scenario.name, exc), "metrics": None}
    final = verified.final
    return {"plan": plan_document(final.plan, verified), "metrics": final.metrics}


MODES: dict[str, Callable[[Scenario, int], Outputs]] = {
    "simulate": run_simulate, "plan": run_plan, "plan+verify": run_plan_verify,
}

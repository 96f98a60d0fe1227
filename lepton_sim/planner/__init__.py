"""The planner: the cheapest deployment (placements, replica counts, routing, compression levels) meeting
every service's latency target and accuracy floor, as a MILP solved by HiGHS or CBC, from the scenario
alone. It never imports the simulator: simulating a plan, re-planning and certifying it is
`lepton_sim.verification`, above both."""
from lepton_sim.planner.errors import Infeasible, NoPlan, Reason, Why
from lepton_sim.planner.options import PlanOptions
from lepton_sim.planner.plan import plan
from lepton_sim.planner.result import PlanResult
from lepton_sim.planner.solver import PlanStatus

__all__ = ["Infeasible", "NoPlan", "PlanOptions", "PlanResult", "PlanStatus", "Reason", "Why", "plan"]

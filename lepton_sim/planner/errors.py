"""The planner's typed failures: an infeasible scenario (explained by name) or no plan within the limits."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from lepton_sim.errors import RunError


class Why(str, Enum):
    """Why a (service, demand site) cannot be served."""

    ACCURACY = "accuracy"  # no allowed variant meets the accuracy floor
    HARDWARE = "hardware"  # no hardware type at any site runs an allowed variant (precision, memory)
    LATENCY = "latency"  # no pool within reach meets the latency target even when idle
    CAPACITY = "capacity"  # not enough replicas within reach
    LINK = "link"  # link bandwidth
    POWER = "power"  # a site's power budget


@dataclass(frozen=True)
class Reason:
    """One explanation: which service and demand site (or resource), why, and the figures."""

    service: str
    site: str
    why: Why
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"service": self.service, "demand_site": self.site, "reason": self.why.value, "message": self.message}


class Infeasible(RunError):
    """No deployment meets every target: carries one `Reason` per (service, demand site) that cannot be served."""

    def __init__(self, reasons: list[Reason]) -> None:
        self.reasons = tuple(reasons)
        lines = [f"  {r.service} from {r.site}: {r.message}" for r in self.reasons]
        super().__init__("infeasible: no deployment meets every target\n" + "\n".join(lines))


class NoPlan(RunError):
    """The solver stopped (time limit) before it found any feasible plan; infeasibility is not proven."""

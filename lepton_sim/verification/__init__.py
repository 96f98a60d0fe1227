"""Verification: simulate a plan, compare with the planner's prediction, re-plan, certify.

It sits above both the simulator (`lepton_sim.sim`) and the planner (`lepton_sim.planner`), which
never import each other (tests/test_architecture.py checks it): a plan is made from the scenario
alone and judged by a simulator that knows nothing of how it was made.
"""
from typing import Any

_WHERE = {"Certificate": "certificate", "Entry": "certificate", "Check": "checks",
          "planned_scenario": "deployment", "Round": "loop", "Verified": "loop", "verify": "loop"}

__all__ = ["Certificate", "Check", "Entry", "Round", "Verified", "planned_scenario", "verify"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(f"lepton_sim.verification.{_WHERE[name]}"), name)

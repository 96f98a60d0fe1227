"""Verification: simulate a plan, compare with the planner's prediction, re-plan, certify.

It sits above both the simulator (`lepton_sim.sim`) and the planner (`lepton_sim.planner`), which
never import each other (tests/test_architecture.py checks it): a plan is made from the scenario
alone and judged by a simulator that knows nothing of how it was made.
"""
from lepton_sim.verification.certificate import Certificate, Entry
from lepton_sim.verification.checks import Check
from lepton_sim.verification.deployment import planned_scenario
from lepton_sim.verification.loop import Round, Verified, verify

__all__ = ["Certificate", "Check", "Entry", "Round", "Verified", "planned_scenario", "verify"]

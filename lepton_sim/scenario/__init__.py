"""The scenario language: typed schema and the validating loader."""
from lepton_sim.scenario.load import default_scenario_path, load_scenario, parse_scenario, parse_yaml
from lepton_sim.scenario.schema import Scenario

__all__ = ["Scenario", "default_scenario_path", "load_scenario", "parse_scenario", "parse_yaml"]

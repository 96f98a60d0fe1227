"""lepton-sim: a discrete-event simulator and cost-model planner for AI inference infrastructure."""
from lepton_sim.errors import InputError, LeptonError, RunError, ScenarioError
from lepton_sim.sweeps import sweep

__version__ = "0.1.0"

__all__ = ["InputError", "LeptonError", "RunError", "ScenarioError", "__version__", "sweep"]

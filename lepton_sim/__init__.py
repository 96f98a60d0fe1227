"""lepton-sim: a discrete-event simulator and cost-model planner for AI inference infrastructure."""
from importlib.metadata import PackageNotFoundError, version

from lepton_sim.errors import InputError, LeptonError, RunError, ScenarioError
from lepton_sim.sweeps import sweep

try:
    __version__ = version("lepton-sim")  # the installed distribution's, so it cannot drift from pyproject.toml
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["InputError", "LeptonError", "RunError", "ScenarioError", "__version__", "sweep"]

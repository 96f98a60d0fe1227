"""lepton-sim: a discrete-event simulator and cost-model planner for AI inference infrastructure."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from lepton_sim.errors import InputError, LeptonError, RunError, ScenarioError

if TYPE_CHECKING:
    from lepton_sim.sweeps import sweep

try:
    __version__ = version("lepton-sim")  # the installed distribution's, so it cannot drift from pyproject.toml
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["InputError", "LeptonError", "RunError", "ScenarioError", "__version__", "sweep"]


def __getattr__(name: str) -> Any:
    """`sweep` is imported on first use: it reaches the scenario loader, the simulator and the planner,
    which every command would otherwise pay for at start-up (`lepton-sim --help` included)."""
    if name == "sweep":
        from lepton_sim.sweeps import sweep

        globals()["sweep"] = sweep
        return sweep
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

"""Built-in hardware datasheets (with sources) and the model zoo."""
from __future__ import annotations

import copy
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from lepton_sim.catalogue.zoo import zoo_model, zoo_names

__all__ = ["HARDWARE_KEYS", "OPTIONAL_KEYS", "THIS_MACHINE", "hardware_entry", "hardware_names", "zoo_model", "zoo_names"]

# Every catalogue entry has exactly these keys (the scenario hardware type's keys plus `sources`).
HARDWARE_KEYS = ("kind", "peak_tflops", "memory_bandwidth_gbps", "memory_gb", "power_w",
                 "idle_power_w", "cost_per_hour", "sparse_2_4", "sources")
# Keys an entry has where they apply: on-chip memory (a datasheet figure) and the calibration file
# its efficiency figures were fitted into (lepton_sim/catalogue/calibration/, see its README).
OPTIONAL_KEYS = ("on_chip_mb", "calibration", "interconnect_gbps")


@lru_cache(maxsize=1)
def _hardware() -> dict[str, dict[str, Any]]:
    text = resources.files(__package__).joinpath("hardware.yaml").read_text(encoding="utf-8")
    entries: dict[str, dict[str, Any]] = yaml.safe_load(text)
    return entries


# Built from the committed kernel profile of the reference machine, not from hardware.yaml.
THIS_MACHINE = "this-machine"


@lru_cache(maxsize=1)
def _this_machine() -> dict[str, Any]:
    """`this-machine`: peaks, bandwidth and memory measured in the reference profile (lepton_sim.profiles)."""
    from lepton_sim.profiles import load_profile_cached, reference_profile_path, this_machine_entry

    return this_machine_entry(load_profile_cached(reference_profile_path()), _hardware()["generic-server-cpu"])


def hardware_names() -> list[str]:
    """Names of the built-in hardware types."""
    return sorted([*_hardware(), THIS_MACHINE])


def hardware_entry(name: str) -> dict[str, Any]:
    """A deep copy of catalogue entry ``name`` (safe to override keys); KeyError if unknown."""
    if name == THIS_MACHINE:
        return copy.deepcopy(_this_machine())
    try:
        entry = copy.deepcopy(_hardware()[name])
    except KeyError:
        raise KeyError(f"unknown hardware {name!r}; built-in types: {', '.join(hardware_names())}") from None
    if entry.get("calibration"):  # shipped beside hardware.yaml: an absolute path, wherever it is installed
        entry["calibration"] = str(resources.files(__package__).joinpath(entry["calibration"]))
    return entry

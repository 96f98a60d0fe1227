"""Catalogue hardware types as the calibration sees them: datasheet only, or with their shipped calibration."""
from __future__ import annotations

from lepton_sim.calibration.file import EFFICIENCY_KEYS, apply, load
from lepton_sim.catalogue import THIS_MACHINE, hardware_entry
from lepton_sim.errors import InputError
from lepton_sim.scenario.schema import HardwareSpec


def datasheet_hardware(name: str) -> HardwareSpec:
    """Catalogue entry ``name`` with datasheet figures only: no calibration, the kind's modelled defaults."""
    if name == THIS_MACHINE:
        raise InputError(f"--hardware {name}: its compute times are measured (kernels measure), not fitted; "
                         f"calibrate applies to catalogue hardware with a roofline")
    try:
        entry = hardware_entry(name)
    except KeyError as exc:
        raise InputError(f"--hardware: {exc.args[0]}") from None
    entry.pop("calibration", None)
    entry.get("sources", {}).pop("calibration", None)
    for key in EFFICIENCY_KEYS:
        entry.pop(key, None)
    return HardwareSpec.model_validate(entry).model_copy(update={"name": name})


def calibrated_hardware(name: str) -> HardwareSpec:
    """Catalogue entry ``name`` as a scenario's ``from: NAME`` gives it: with its shipped calibration, if any."""
    entry = hardware_entry(name)
    if entry.get("calibration"):
        entry = apply(load(entry["calibration"]), entry, entry["calibration"])
    return HardwareSpec.model_validate(entry).model_copy(update={"name": name})

"""Calibration: fitting a hardware type's efficiency figures to published or measured throughput.

- `read_points(csv)` reads measurement points (zoo model variant, batch, throughput or latency);
- `fit(points, hardware)` fits the roofline's efficiency figures with the datasheet held fixed,
  with each point's error and leave-one-out error;
- `calibration_document` / `load` / `apply` are the file `lepton-sim calibrate --out` writes and
  how a scenario's hardware entry takes it in (`calibration: FILE`).

The catalogue's own devices ship calibrated this way from lepton_sim/catalogue/calibration/.
"""
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported on first use (`__getattr__`): the CLI registers `calibrate` without scipy or pydantic
    from lepton_sim.calibration.file import CalibrationFile, apply, calibration_document, load, mismatch
    from lepton_sim.calibration.fitting import Fit, fit
    from lepton_sim.calibration.hardware import calibrated_hardware, datasheet_hardware
    from lepton_sim.calibration.points import Point, parse_points, read_points

_WHERE = {"CalibrationFile": "file", "apply": "file", "calibration_document": "file", "load": "file",
          "mismatch": "file", "Fit": "fitting", "fit": "fitting", "calibrated_hardware": "hardware",
          "datasheet_hardware": "hardware", "Point": "points", "parse_points": "points", "read_points": "points"}

__all__ = ["CalibrationFile", "Fit", "Point", "apply", "calibrated_hardware", "calibration_document",
           "datasheet_hardware", "fit", "load", "mismatch", "parse_points", "read_points"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'lepton_sim.calibration' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"lepton_sim.calibration.{_WHERE[name]}"), name)

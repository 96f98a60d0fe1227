"""Calibration: fitting a hardware type's efficiency figures to published or measured throughput.

- `read_points(csv)` reads measurement points (zoo model variant, batch, throughput or latency);
- `fit(points, hardware)` fits the roofline's efficiency figures with the datasheet held fixed,
  with each point's error and leave-one-out error;
- `calibration_document` / `load` / `apply` are the file `lepton-sim calibrate --out` writes and
  how a scenario's hardware entry takes it in (`calibration: FILE`).

The catalogue's own devices ship calibrated this way from lepton_sim/catalogue/calibration/.
"""
from lepton_sim.calibration.file import CalibrationFile, apply, calibration_document, load, mismatch
from lepton_sim.calibration.fit import Fit, fit
from lepton_sim.calibration.hardware import calibrated_hardware, datasheet_hardware
from lepton_sim.calibration.points import Point, parse_points, read_points

__all__ = ["CalibrationFile", "Fit", "Point", "apply", "calibrated_hardware", "calibration_document",
           "datasheet_hardware", "fit", "load", "mismatch", "parse_points", "read_points"]

"""Sweeps: many runs of one scenario over a grid of values, on local processes or a Dask cluster, one table.

Imports stay light here (pyarrow, dask and rich load only when a sweep runs), so that
`lepton_sim` can export `sweep` without slowing every command down.
"""
from lepton_sim.sweeps.api import sweep
from lepton_sim.sweeps.spec import SweepSpec, load_sweep, parse_sweep

__all__ = ["SweepSpec", "load_sweep", "parse_sweep", "sweep"]

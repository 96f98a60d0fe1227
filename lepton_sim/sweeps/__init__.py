"""Sweeps: many runs of one scenario over a grid of values, on local processes or a Dask cluster, one table.

Imports stay light here: `sweep` and the spec functions are imported on first use (module
`__getattr__`), and pyarrow, dask and rich only when a sweep runs, so that `lepton_sim` can export
`sweep`, and `lepton-sim` register the `sweep` command, without slowing every command down.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lepton_sim.sweeps.api import sweep
    from lepton_sim.sweeps.spec import SweepSpec, load_sweep, parse_sweep

__all__ = ["SweepSpec", "load_sweep", "parse_sweep", "sweep"]

_WHERE = {"sweep": "lepton_sim.sweeps.api", "SweepSpec": "lepton_sim.sweeps.spec",
          "load_sweep": "lepton_sim.sweeps.spec", "parse_sweep": "lepton_sim.sweeps.spec"}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

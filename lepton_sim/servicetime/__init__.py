"""Service-time model shared by the simulator and the planner.

``batch_times`` gives the seconds to run a batch of 1..max_batch requests of a model variant on a
hardware type, computed once up front: from the hardware type's measured kernel profile when it
carries one (``hardware.measured``, see `lepton_sim.profiles`), else from a roofline over the layer
shapes. Both return the same ``BatchTimes`` record, whose ``source`` says which.
"""
from typing import Any

from lepton_sim.servicetime.roofline import (
    KIND_DEFAULTS,
    BatchTimes,
    KindDefaults,
    UnsupportedPrecision,
    weight_bytes,
)
from lepton_sim.servicetime.roofline import batch_times as roofline_batch_times

__all__ = ["KIND_DEFAULTS", "BatchTimes", "KindDefaults", "UnsupportedPrecision", "batch_times",
           "roofline_batch_times", "weight_bytes"]


def batch_times(model: Any, variant: Any, hardware: Any, max_batch: int) -> BatchTimes:
    """Seconds per batch of 1..max_batch: measured if `hardware.measured` holds a profile, else the roofline."""
    profile = getattr(hardware, "measured", None)
    if profile is None:
        return roofline_batch_times(model, variant, hardware, max_batch)
    # Imported here: lepton_sim.profiles itself imports this package's roofline module.
    from lepton_sim.profiles.measured import measured_batch_times

    return measured_batch_times(profile, model, variant, hardware, max_batch)

"""Service-time model shared by the simulator and the planner.

``batch_times`` gives the seconds to run a batch of 1..max_batch requests of a model variant on a
hardware type, computed once up front; today from a roofline over the layer shapes, later from
measured kernel profiles behind the same ``BatchTimes`` record.
"""
from lepton_sim.servicetime.roofline import (
    KIND_DEFAULTS,
    BatchTimes,
    KindDefaults,
    UnsupportedPrecision,
    batch_times,
    weight_bytes,
)

__all__ = ["KIND_DEFAULTS", "BatchTimes", "KindDefaults", "UnsupportedPrecision", "batch_times",
           "weight_bytes"]

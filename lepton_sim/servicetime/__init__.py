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

__all__ = ["KIND_DEFAULTS", "BatchTimes", "BatchTimesCache", "KindDefaults", "UnsupportedPrecision", "batch_times",
           "roofline_batch_times", "weight_bytes"]


def batch_times(model: Any, variant: Any, hardware: Any, max_batch: int) -> BatchTimes:
    """Seconds per batch of 1..max_batch: measured if `hardware.measured` holds a profile, else the roofline."""
    profile = getattr(hardware, "measured", None)
    if profile is None:
        return roofline_batch_times(model, variant, hardware, max_batch)
    # Imported here: lepton_sim.profiles itself imports this package's roofline module.
    from lepton_sim.profiles.measured import measured_batch_times

    return measured_batch_times(profile, model, variant, hardware, max_batch)


class BatchTimesCache:
    """`batch_times` (or another function of the same signature) computed once per distinct
    (model, variant, hardware, max_batch) within one load or one simulation.

    Identical deployment lines (the same service on the same hardware type at many sites) share one
    `BatchTimes`, which is immutable. The key is the identity of the model, variant and hardware
    objects, which within one typed scenario stand for their names (the same name is the same
    object), so a hardware type that carries a measured profile (`hardware.measured`) or a
    calibration is its own entry and keeps its own times; the entry holds the objects, so an
    identity is never reused while the cache lives. Keep one cache per scenario: it is not a
    global memo.
    """

    def __init__(self, fn: Any = None) -> None:
        self.fn = batch_times if fn is None else fn
        self._memo: dict[tuple[int, int, int, int], tuple[Any, Any, Any, BatchTimes]] = {}
        self._weights: dict[tuple[int, int], tuple[Any, Any, float]] = {}
        self.computed = 0  # how many distinct tables were computed (for tests)

    def __call__(self, model: Any, variant: Any, hardware: Any, max_batch: int) -> BatchTimes:
        key = (id(model), id(variant), id(hardware), max_batch)
        hit = self._memo.get(key)
        if hit is not None and hit[0] is model and hit[1] is variant and hit[2] is hardware:
            return hit[3]
        times = self.fn(model, variant, hardware, max_batch)  # exceptions propagate, uncached
        self._memo[key] = (model, variant, hardware, times)
        self.computed += 1
        return times

    def weight_bytes(self, model: Any, variant: Any) -> float:
        """`weight_bytes(model, variant)`, once per distinct (model, variant) object pair."""
        key = (id(model), id(variant))
        hit = self._weights.get(key)
        if hit is not None and hit[0] is model and hit[1] is variant:
            return hit[2]
        n = weight_bytes(model, variant)
        self._weights[key] = (model, variant, n)
        return n

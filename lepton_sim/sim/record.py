"""The immutable record of one simulation run: raw tallies, from which metrics are computed."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from lepton_sim.scenario.schema import Replicas
from lepton_sim.sketch import LatencySummary


@dataclass(frozen=True)
class ServiceTally:
    """Counts over requests created after the warm-up, and their latency summary (seconds).

    `in_flight` is tallied by the engine (requests created and neither completed nor dropped when
    the run ended), not derived, so that conservation can be checked.
    """

    arrived: int
    completed: int
    dropped: int  # no replica reachable, or the pool's queue was full
    failed: int  # lost on a link that failed while carrying it
    in_flight: int
    latency_s: LatencySummary
    by_site: Mapping[str, ServiceTally] = field(default_factory=dict)  # per demand site


@dataclass(frozen=True)
class PoolTally:
    """One deployment line: busy seconds per replica inside the measured window, batches started there."""

    id: str
    line: Replicas
    busy_s: tuple[float, ...]
    down_s: tuple[float, ...]  # per replica, failed time inside the window
    bins_busy_s: tuple[float, ...]  # summed over replicas, over [0, duration] in equal bins
    batches: int
    batched: int
    failures: int  # replica failures inside the window
    retried: int  # requests put back in the queue because their replica failed mid-batch
    compute_source: str  # "roofline", "measured" or "service_time override"
    compute_detail: str
    compute_basis: str  # what the hardware type's figures rest on (datasheet, calibrated, measured here)


@dataclass(frozen=True)
class LinkTally:
    """One direction of one link: busy seconds and bytes inside the measured window."""

    id: str
    direction: str
    link_index: int
    busy_s: float
    bytes: float
    transfers: int
    bins_busy_s: tuple[float, ...]
    down_s: float  # the link's failed time inside the window (both directions)
    failures: int


@dataclass(frozen=True)
class SimRecord:
    scenario: str
    seed: int
    duration_s: float
    warmup_s: float
    end_s: float
    bin_s: float
    services: Mapping[str, ServiceTally]
    pools: tuple[PoolTally, ...]
    links: tuple[LinkTally, ...]
    events: int
    created: int  # requests created over the whole horizon, warm-up included
    wall_s: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "services", MappingProxyType(dict(self.services)))

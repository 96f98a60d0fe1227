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
    llm: LLMServiceTally | None = None  # an LLM service's token-level tallies


@dataclass(frozen=True)
class LLMServiceTally:
    """Token-level tallies of an LLM service's requests created after the warm-up (seconds)."""

    ttft_s: LatencySummary  # creation to the first token's arrival back, per request that got one
    tpot_s: LatencySummary  # (last token back - first token back) / (output tokens - 1), per completed request with 2+
    met: int  # completed with TTFT and TPOT both within target
    prompt_tokens: int  # of completed requests
    output_tokens: int  # of completed requests
    preempted: int  # preemptions (a request preempted twice counts twice)


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
    llm: LLMPoolTally | None = None  # an LLM pool's scheduler tallies (then batches are iterations)


@dataclass(frozen=True)
class LLMPoolTally:
    """An LLM pool's iterations, KV cache and tokens inside the measured window, summed over replicas."""

    tensor_parallel: int
    kv_blocks: int  # per replica
    block_tokens: int
    batch_tokens: int  # tokens processed by the iterations started in the window
    running_s: float  # running sequences x seconds
    kv_block_s: float  # KV blocks in use x seconds
    kv_blocks_peak: int  # the most in use on one replica at once, over the whole run
    preempted: int
    output_tokens: int  # sampled inside the window
    finished: int  # requests whose last token was sampled inside the window
    too_long: int  # requests dropped because they could never fit a replica's KV cache
    bins_running_s: tuple[float, ...]  # running sequences x seconds per time bin over [0, duration]
    bins_kv_block_s: tuple[float, ...]
    bins_output_tokens: tuple[float, ...]


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
class JobTally:
    """A training job's iterations: those that started inside the measured window, and its progress."""

    name: str
    devices: int
    nodes: int
    micro_batch: int
    global_batch: int
    samples: int
    iterations_needed: int
    started: int
    completed: int
    end_s: float | None  # when its last iteration ended, if the run got there
    durations_s: tuple[float, ...]
    compute_s: tuple[float, ...]  # the slowest device's forward and backward
    communication_s: tuple[float, ...]  # combining the buckets, overlapped or not
    exposed_s: tuple[float, ...]  # iteration - compute: the communication nothing hid
    model_compute_s: float  # one device, no straggler
    model_communication_s: float  # the buckets' closed forms inside the site, one after another
    grad_bytes: float
    buckets: int
    compute_detail: str
    sync_detail: str
    scaling: tuple[tuple[int, float, float], ...] = ()  # (devices, iteration s, samples/s), modelled
    failures: int = 0  # failures that stopped the job inside the window (devices, servers, links on its route)
    lost_iterations: int = 0  # taken back to the last checkpoint (over the run)
    stopped_s: float = 0.0  # inside the window: something it needs down, or the job restarting
    # what can interrupt it, modelled: (failures per second, seconds until it can restart, what), one
    # per kind of device or server and per link of its route that fails (None where another route
    # goes round a link: that costs the iteration in flight, not a stop)
    hazards: tuple[tuple[float, float | None, str], ...] = ()
    rerouted: int = 0  # iterations in flight run again over another route when a link on theirs failed (over the run)


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
    engines: Mapping[str, str] = field(default_factory=dict)  # service -> "fast" or "event[: why not fast]"
    jobs: tuple[JobTally, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "services", MappingProxyType(dict(self.services)))
        object.__setattr__(self, "engines", MappingProxyType(dict(self.engines)))

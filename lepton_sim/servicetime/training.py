"""A data-parallel training iteration: compute per device and the cost of combining gradients.

Shared by the simulator (which adds stragglers, overlap bucket by bucket and links shared with
inference) and anything that needs the closed forms. Every figure is modelled:

- **compute**: forward + backward of the per-device micro-batch `global_batch / count`, taken as
  `backward_factor` (default 3: the backward pass costs about twice the forward, Kaplan et al. 2020,
  "Scaling laws", sec. 2.1) times the forward time the service-time model gives for that batch
  (`lepton_sim.servicetime.batch_times`: the calibrated or default roofline, or a measured profile),
  so calibration carries over. The backward pass is the last `(factor - 1) / factor` of it.
- **gradients**: one value per weight, 4 bytes in fp32, 2 in mixed precision (fp16/bf16 and
  lower-precision variants keep fp16 gradients), in buckets of `bucket_mb` (the last one smaller),
  produced by the backward pass in order at an even rate.
- **collectives** (NVIDIA nccl-tests `doc/PERFORMANCE.md`, alpha-beta model): ring all-reduce of
  S bytes over n devices `2 (n-1)/n x S / B + 2 (n-1) alpha`; a pipelined tree all-reduce (reduce
  up, broadcast down) `2 S / B + 2 ceil(log2 n) alpha`; a parameter server with k servers: each
  device pushes S and pulls S, each server takes n S / k in and sends it out,
  `2 max(S / B_device, n S / (k B_server)) + 2 alpha`. B is the slowest hop the collective crosses:
  `interconnect_gbps` (GB/s per direction per device) inside a node, the site's `fabric_gbps`
  (Gb/s per node) between nodes; alpha 1 us inside a node (or `sync.step_latency_us`), the site's
  `fabric_latency_us` between nodes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lepton_sim.servicetime import BatchTimesCache, batch_times
from lepton_sim.servicetime.roofline import activation_elems, param_count

NODE_STEP_S = 1e-6  # alpha inside a node (NVLink): nccl-tests PERFORMANCE.md, about 1 us


def ring_allreduce_s(size_b: float, n: int, bps: float, alpha_s: float) -> float:
    """Seconds to ring-all-reduce `size_b` bytes over `n` ranks at `bps` bytes/s per rank."""
    if n <= 1:
        return 0.0
    return 2.0 * (n - 1) / n * size_b / bps + 2.0 * (n - 1) * alpha_s


def tree_allreduce_s(size_b: float, n: int, bps: float, alpha_s: float) -> float:
    """Seconds for a pipelined tree all-reduce (reduce then broadcast) of `size_b` bytes over `n` ranks."""
    if n <= 1:
        return 0.0
    return 2.0 * size_b / bps + 2.0 * math.ceil(math.log2(n)) * alpha_s


def parameter_server_s(size_b: float, n: int, servers: int, device_bps: float, server_bps: float,
                       alpha_s: float) -> float:
    """Seconds for `n` devices to push `size_b` bytes each to `servers` servers and pull it back."""
    one_way = max(size_b / device_bps, n * size_b / (servers * server_bps))
    return 2.0 * one_way + 2.0 * alpha_s


def gradient_bytes_per_param(precision: str) -> int:
    return 4 if precision == "fp32" else 2


# Mixed-precision Adam keeps 16 bytes per weight (fp16 weights and gradients, fp32 master weights
# and two moments; Rajbhandari et al. 2020, "ZeRO", sec. 3.1); fp32 training 16 as well (weights,
# gradients, two moments).
STATE_BYTES_PER_PARAM = 16


def memory_bytes(model: Any, variant: Any, micro_batch: int) -> float:
    """A device's training memory (modelled): optimizer state per weight, plus the activations kept
    for the backward pass (each layer's output: half the elements it reads and writes) of the
    micro-batch at the gradients' width."""
    acts = activation_elems(model, variant) / 2.0 * gradient_bytes_per_param(variant.precision)
    return STATE_BYTES_PER_PARAM * param_count(model, variant) + micro_batch * acts


@dataclass(frozen=True)
class Iteration:
    """One job's modelled iteration, before stragglers and link sharing."""

    devices: int
    per_node: int
    nodes: int
    micro_batch: int  # samples per device per iteration
    forward_s: float
    compute_s: float  # forward + backward
    backward_s: float
    grad_bytes: float
    buckets: tuple[float, ...]  # bytes, in the order the backward pass produces them
    bucket_s: tuple[float, ...]  # seconds to combine each bucket where no scenario link is crossed
    bandwidth_bps: float  # the collective's bottleneck, bytes per second
    alpha_s: float
    compute_detail: str
    sync_detail: str
    # A job spanning sites: per bucket, the bytes each link hop of the collective carries between
    # consecutive sites, the time of its bandwidth term inside the sites, and its latency steps
    # (each taking the larger of alpha and the route's one-way latency).
    cross_bytes: tuple[float, ...] = ()
    bandwidth_s: tuple[float, ...] = ()
    steps: int = 0

    @property
    def communication_s(self) -> float:
        return sum(self.bucket_s)


def iteration_length(it: Iteration, overlap: bool, slow: float = 1.0,
                     ready_s: list[float] | None = None) -> tuple[float, float]:
    """(iteration seconds, communication seconds) of `it` inside one site, the slowest device's
    compute scaled by `slow`: bucket i is ready when the backward pass has produced it (or when the
    pass ends, without `overlap`), buckets are combined one at a time, and the iteration ends when
    both the compute and the last bucket are done. `ready_s`: `bucket_ready_s` of the same, if made."""
    free = 0.0
    comm = 0.0
    for ready, dt in zip(ready_s if ready_s is not None else bucket_ready_s(it, overlap, slow), it.bucket_s):
        free = max(ready, free) + dt
        comm += dt
    return max(it.compute_s * slow, free), comm


def bucket_ready_s(it: Iteration, overlap: bool, slow: float = 1.0) -> list[float]:
    """When each bucket is ready, from the iteration's start (`iteration_length`'s rule)."""
    compute = it.compute_s * slow
    forward = it.forward_s * slow
    total = sum(it.buckets)
    out, acc = [], 0.0
    for size in it.buckets:
        acc += size
        out.append(forward + (compute - forward) * (acc / total if total > 0 else 1.0) if overlap else compute)
    return out


def iteration(job: Any, scenario: Any, times_fn: Any = None) -> Iteration:
    """The modelled iteration of `job` in `scenario` (a validated `Scenario`)."""
    times_fn = times_fn if times_fn is not None else BatchTimesCache(batch_times)
    pl = job.placement
    model = scenario.models[job.model]
    variant = model.variants[job.variant]
    hw = scenario.hardware[pl.hardware]
    parts = [pl, *getattr(job, "also", ())]
    n = sum(p.count for p in parts)
    per_node = min(pl.per_node, pl.count)
    nodes = sum(p.count // min(p.per_node, p.count) for p in parts)
    b = job.global_batch // n
    bt = times_fn(model, variant, hw, b)
    forward = bt.times_s[b - 1]
    compute = forward * job.backward_factor
    params = param_count(model, variant)
    grad = float(params * gradient_bytes_per_param(variant.precision))
    bucket = job.sync.bucket_mb * 1e6
    k = max(1, math.ceil(grad / bucket))
    buckets = tuple([bucket] * (k - 1) + [grad - bucket * (k - 1)])
    site = scenario.sites[pl.site]
    node_bps = (hw.interconnect_gbps or 0.0) * 1e9
    fabric_bps = (site.fabric_gbps or 0.0) * 1e9 / 8.0
    node_alpha = (job.sync.step_latency_us * 1e-6) if job.sync.step_latency_us is not None else NODE_STEP_S
    kind = job.sync.kind
    cross: tuple[float, ...] = tuple(0.0 for _ in buckets)
    bandwidth_terms: tuple[float, ...] = tuple(0.0 for _ in buckets)
    steps = 0
    if kind in ("ring-allreduce", "tree-allreduce"):
        # inside each site: NVLink within a node, the site's fabric between its nodes; the slowest site
        # sets the pace, and across sites the links between them (the simulator's transfers)
        bps, alpha = math.inf, 0.0
        for p in parts:
            pn = min(p.per_node, p.count)
            f_bps = (scenario.sites[p.site].fabric_gbps or 0.0) * 1e9 / 8.0
            if p.count // pn > 1:
                bps = min(bps, min(node_bps, f_bps) if pn > 1 else f_bps)
                alpha = max(alpha, scenario.sites[p.site].fabric_latency_us * 1e-6)
            elif pn > 1:
                bps, alpha = min(bps, node_bps), max(alpha, node_alpha)
        ring = kind == "ring-allreduce"
        f = ring_allreduce_s if ring else tree_allreduce_s
        if n <= 1:
            times = tuple(0.0 for _ in buckets)
        elif len(parts) == 1:
            times = tuple(f(s, n, bps, alpha) for s in buckets)
        else:
            steps = 2 * (n - 1) if ring else 2 * math.ceil(math.log2(n))
            share = 2.0 * (n - 1) / n if ring else 1.0
            cross = tuple(share * s for s in buckets)
            bandwidth_terms = tuple(share * s / bps if math.isfinite(bps) else 0.0 for s in buckets)
            times = tuple(0.0 for _ in buckets)  # the simulator adds the links between the sites
        sites = "" if len(parts) == 1 else f" across {len(parts)} sites ({', '.join(p.site for p in parts)})"
        within = f"bottleneck {bps * 8 / 1e9:g} Gb/s, alpha {alpha * 1e6:g} us" if math.isfinite(bps) else \
            "one device a site"
        where = ("one device: nothing to combine" if n == 1 else
                 f"{kind} over {n} devices, {'%d nodes' % nodes if nodes > 1 else 'one node'}{sites}, " + within
                 + (", then the links between the sites" if len(parts) > 1 else ""))
        if not math.isfinite(bps):
            bps = 0.0
    else:
        servers = job.sync.servers or 1
        ps_site = job.sync.site or pl.site
        bps = fabric_bps / per_node  # the devices of a node share its network port
        alpha = site.fabric_latency_us * 1e-6
        if ps_site == pl.site:
            times = tuple(parameter_server_s(s, n, servers, bps, fabric_bps, alpha) for s in buckets)
            where = f"parameter server: {servers} servers at {ps_site}, over the site's fabric"
        else:
            times = tuple(0.0 for _ in buckets)  # the simulator sends them over the scenario's links
            where = f"parameter server: {servers} servers at {ps_site}, over the links from {pl.site}"
    return Iteration(devices=n, per_node=per_node, nodes=nodes, micro_batch=b, forward_s=forward,
                     compute_s=compute, backward_s=compute * (job.backward_factor - 1.0) / job.backward_factor,
                     grad_bytes=grad, buckets=buckets, bucket_s=times, bandwidth_bps=bps, alpha_s=alpha,
                     cross_bytes=cross, bandwidth_s=bandwidth_terms, steps=steps,
                     compute_detail=f"{job.backward_factor:g} x forward of batch {b} ({bt.source}: {bt.detail})",
                     sync_detail=where)

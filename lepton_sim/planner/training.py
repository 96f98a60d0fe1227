"""Training jobs in a plan: the cheapest hardware type, device count and sync method that finish
each job by its deadline, within what its site holds; and the capacity they then leave to the
inference services.

The search is exhaustive over a small space, so its answer is the optimum of the model it uses:
for every hardware type the site holds (with a peak rate for the job's precision), every device
count that splits the global batch, fills whole nodes (nodes of `per_node`, or one node of
fewer) and holds its micro-batch in memory (`servicetime.training.memory_bytes`), and both all-reduce methods (or the file's parameter server), the modelled iteration
(`lepton_sim.servicetime.training`, no stragglers) gives the time to complete and the cost
(devices and servers per hour x hours). The cheapest that meets `deadline_h` wins, ties to fewer
devices, then the file's own choice; a job without a deadline keeps its placement. Stragglers and
links shared with inference are the simulator's: `plan --verify` simulates the chosen jobs with the
planned deployment.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lepton_sim.scenario.schema import Scenario
from lepton_sim.servicetime import BatchTimesCache, UnsupportedPrecision
from lepton_sim.servicetime.training import iteration, iteration_length, memory_bytes

SYNCS = ("ring-allreduce", "tree-allreduce")


@dataclass(frozen=True)
class JobOption:
    hardware: str
    count: int
    per_node: int
    sync: str
    iteration_s: float
    hours: float
    usd_per_hour: float

    @property
    def usd_total(self) -> float:
        return self.usd_per_hour * self.hours


@dataclass(frozen=True)
class JobPlan:
    name: str
    job: Any  # the job as planned (`Job` with the chosen placement and sync)
    chosen: JobOption | None  # None: no option meets the deadline
    given: JobOption | None  # the file's own placement, modelled the same way (None if it cannot run)
    options: int  # how many were modelled
    fastest: JobOption | None
    reason: str = ""


def _option(scenario: Scenario, job: Any, times_fn: Any) -> JobOption | None:
    try:
        it = iteration(job, scenario, times_fn)
    except (UnsupportedPrecision, ValueError):
        return None
    length, _ = iteration_length(it, job.sync.overlap)
    hours = math.ceil(job.samples / job.global_batch) * length / 3600.0
    usd = scenario.hardware[job.placement.hardware].cost_per_hour * job.devices
    if job.sync.kind == "parameter-server":
        usd += scenario.hardware[job.sync.hardware].cost_per_hour * (job.sync.servers or 1)
    return JobOption(job.placement.hardware, job.devices, min(job.placement.per_node, job.placement.count),
                     job.sync.kind, length, hours, usd)


def _runnable(scenario: Scenario, job: Any, hw: Any, n: int, per_node: int) -> bool:
    site = scenario.sites[job.placement.site]
    if job.global_batch % n or n % per_node:
        return False
    model = scenario.models[job.model]
    if memory_bytes(model, model.variants[job.variant], job.global_batch // n) > hw.memory_gb * 1e9:
        return False
    if per_node > 1 and hw.interconnect_gbps is None:
        return False
    return n == per_node or site.fabric_gbps is not None


def plan_job(scenario: Scenario, name: str, free: dict[str, int]) -> JobPlan:
    """The cheapest placement of job `name` at its site that meets its deadline, `free[hw]` devices of
    each type available there."""
    job = scenario.jobs[name]
    times_fn = BatchTimesCache()
    given = _option(scenario, job, times_fn)
    if job.deadline_h is None:
        return JobPlan(name, job, given, given, 1, given, "no deadline: the file's placement is kept")
    if job.also:
        if given is not None and given.hours <= job.deadline_h:
            return JobPlan(name, job, given, given, 1, given, "a job across sites keeps its placement")
        return JobPlan(name, job, None, given, 1, given, f"{name} spans sites and keeps its placement, which takes "
                                                         f"{given.hours:.3g} h against the {job.deadline_h:g} h deadline"
                       if given is not None else f"{name} cannot run as placed")
    options: list[tuple[JobOption, Any]] = []
    syncs = (job.sync.kind,) if job.sync.kind == "parameter-server" else SYNCS
    for hw_name, hw in scenario.hardware.items():
        have = free.get(hw_name, 0)
        for n in range(1, have + 1):
            per_node = min(job.placement.per_node, n)
            if not _runnable(scenario, job, hw, n, per_node):
                continue
            for kind in syncs:
                cand = job.model_copy(update={
                    "placement": job.placement.model_copy(update={"hardware": hw_name, "count": n}),
                    "sync": job.sync.model_copy(update={"kind": kind})})
                opt = _option(scenario, cand, times_fn)
                if opt is not None:
                    options.append((opt, cand))
    fastest = min((o for o, _ in options), key=lambda o: o.hours, default=None)
    meets = [(o, c) for o, c in options if o.hours <= job.deadline_h]
    if not meets:
        why = (f"no placement of {name} at {job.placement.site} finishes within {job.deadline_h:g} h: the fastest, "
               f"{fastest.count} {fastest.hardware} with {fastest.sync}, takes {fastest.hours:.3g} h" if fastest else
               f"no hardware at {job.placement.site} can run {name}")
        return JobPlan(name, job, None, given, len(options), fastest, why)
    same = (job.placement.hardware, job.placement.count, job.sync.kind)
    best, cand = min(meets, key=lambda oc: (round(oc[0].usd_total, 9), oc[0].count,
                                             (oc[0].hardware, oc[0].count, oc[0].sync) != same))
    return JobPlan(name, cand, best, given, len(options), fastest)


def plan_jobs(scenario: Scenario) -> list[JobPlan]:
    """Each job in file order, the devices of the ones before it taken from their sites."""
    free = {site: dict(s.capacity) for site, s in scenario.sites.items()}
    out = []
    for name, job in scenario.jobs.items():
        p = plan_job(scenario, name, free[job.placement.site])
        out.append(p)
        for pl in p.job.placements:
            free[pl.site][pl.hardware] = free[pl.site].get(pl.hardware, 0) - pl.count
        pl = p.job.placement
        if p.job.sync.kind == "parameter-server":
            ps_site = p.job.sync.site or pl.site
            free[ps_site][p.job.sync.hardware] = free[ps_site].get(p.job.sync.hardware, 0) - (p.job.sync.servers or 1)
    return out


def with_jobs(scenario: Scenario, plans: list[JobPlan]) -> Scenario:
    """`scenario` with each job as planned."""
    return scenario.model_copy(update={"jobs": {p.name: p.job for p in plans}})


def reserved(scenario: Scenario) -> Scenario:
    """`scenario` with its jobs' devices (and parameter servers) taken out of its sites' capacity:
    what the inference planner may place replicas on."""
    if not scenario.jobs:
        return scenario
    caps = {site: dict(s.capacity) for site, s in scenario.sites.items()}
    for job in scenario.jobs.values():
        for part in job.placements:
            caps[part.site][part.hardware] = max(0, caps[part.site].get(part.hardware, 0) - part.count)
        pl = job.placement
        if job.sync.kind == "parameter-server":
            site = job.sync.site or pl.site
            caps[site][job.sync.hardware] = max(0, caps[site].get(job.sync.hardware, 0) - (job.sync.servers or 1))
    sites = {name: s.model_copy(update={"capacity": caps[name]}) for name, s in scenario.sites.items()}
    return scenario.model_copy(update={"sites": sites})


def job_document(plans: list[JobPlan]) -> dict[str, Any]:
    """plan.json's `jobs`: per job the chosen placement with its modelled figures, and the file's own."""
    def opt(o: JobOption | None) -> dict[str, Any] | None:
        if o is None:
            return None
        return {"hardware": o.hardware, "count": o.count, "per_node": o.per_node, "sync": o.sync,
                "iteration_ms": o.iteration_s * 1e3, "time_to_complete_h": o.hours, "usd_per_hour": o.usd_per_hour,
                "usd_total": o.usd_total}
    return {p.name: {"chosen": opt(p.chosen), "given": opt(p.given), "fastest": opt(p.fastest),
                     "deadline_h": p.job.deadline_h, "options_modelled": p.options, "reason": p.reason or None,
                     "basis": "modelled: collective closed forms and the service-time model, no stragglers"}
            for p in plans}

"""Training jobs in the engine: data-parallel iterations back to back until the job's samples are done.

An iteration's life (`TrainingJob._start`, then `_done`):

1. every device runs forward and backward of its micro-batch: the modelled compute time
   (`lepton_sim.servicetime.training.iteration`) times a per-device lognormal factor of mean 1 and
   coefficient of variation `straggler_cv`; the iteration waits for the slowest device, so its
   compute is `compute_s x max(factor)`;
2. the backward pass produces the gradient buckets in order at an even rate; bucket i is ready
   once the slowest device has produced it. With `sync.overlap` each bucket is combined as soon as
   it is ready and the one before it is combined (one collective at a time, as NCCL's stream
   orders them); without, all are combined after the backward pass;
3. combining a bucket takes the closed form of its collective inside the site
   (`servicetime.training`); a parameter server at another site is reached over the scenario's
   links instead: each bucket's push (every device's share, one transfer per node) and then its pull
   cross the link directions of the route as transfers of their own, queued with the inference
   requests on them (`Simulation.transfer`), with the servers' intake between;
4. the iteration ends when its compute and its last bucket are done; the next starts at once.

With `failures` each device of the job's hardware type and each parameter server of a failing
type fails and is repaired on its own; the failure stops the job (the iteration in flight is
abandoned, the iterations since the last checkpoint are taken back: a collective does not survive
a lost peer), and it restarts `restart_s` after every device and server is back (`_stop`,
`_try_restart`). A failing link on the job's route (to its servers, or between its sites) loses
the transfers on it: where another route joins the sites, the network routes round it and the
iteration in flight runs again from its start on that route (the job does not stop); where none
does, the job stops as for a device until a route is back. When a link comes back, the job's
later transfers take the lowest-latency route again (`link_down`, `link_up`, `_reroute`).

Iterations that start inside the measured window are tallied (`JobTally`).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from lepton_sim.network import link_id
from lepton_sim.servicetime.training import Iteration, bucket_ready_s, iteration, iteration_length
from lepton_sim.sim.common import after
from lepton_sim.sim.record import JobTally
from lepton_sim.sim.streams import stream

if TYPE_CHECKING:
    from lepton_sim.sim.engine import Simulation


def scaling_curve(job: Any, scenario: Any, times_fn: Any) -> tuple[tuple[int, float, float], ...]:
    """(devices, modelled iteration seconds, samples per second) at 1, 2, 4, ... devices up to the
    job's count, each with the job's micro-batch (weak scaling), no stragglers, inside the site."""
    b = job.global_batch // job.placement.count
    per_node = job.placement.per_node
    counts = sorted({*(2 ** k for k in range(int(math.log2(job.placement.count)) + 1)), job.placement.count})
    out = []
    sync = job.sync
    if sync.kind == "parameter-server" and sync.site and sync.site != job.placement.site:
        if scenario.sites[job.placement.site].fabric_gbps is None:
            return ()  # servers across a link, and no fabric here for their in-site closed form
        sync = sync.model_copy(update={"site": None})  # servers across a link: their in-site closed form
    for n in counts:
        if n > per_node and n % per_node:
            continue
        cand = job.model_copy(update={"global_batch": b * n, "sync": sync,
                                      "placement": job.placement.model_copy(update={"count": n})})
        it = iteration(cand, scenario, times_fn)
        length, _ = iteration_length(it, sync.overlap)
        out.append((n, length, b * n / length))
    return tuple(out)


class TrainingJob:
    def __init__(self, sim: Simulation, name: str, job: Any, times_fn: Any) -> None:
        self.sim, self.name, self.job = sim, name, job
        self.model: Iteration = iteration(job, sim.scenario, times_fn)
        self.rng = stream(sim.seed, f"training/{name}")
        cv = job.straggler_cv
        self.sigma = math.sqrt(math.log1p(cv * cv)) if cv > 0 else 0.0
        self.mu = -0.5 * self.sigma * self.sigma  # the factor's mean is 1
        sync = job.sync
        ps_site = sync.site or job.placement.site
        self.path_there: tuple[Any, ...] = ()
        self.path_back: tuple[Any, ...] = ()
        self.intake_bps = 0.0  # the servers' own network ports, when their site gives a fabric
        # The (from, to) site pairs whose routes the job's gradients take: to the servers and back,
        # or between consecutive sites of its ring (the last back to the first; a tree's crossings
        # take the same hops). `_reroute` makes their link directions (`path_there`/`path_back`,
        # `hops` with each route's one-way latency) and the links they use (`links`).
        self.pairs: list[tuple[str, str]] = []
        self.ps_across = sync.kind == "parameter-server" and ps_site != job.placement.site
        if self.ps_across:
            self.pairs = [(job.placement.site, ps_site)]
            fabric = sim.scenario.sites[ps_site].fabric_gbps
            self.intake_bps = (fabric or 0.0) * 1e9 / 8.0 * (sync.servers or 1)
        sites = [p.site for p in job.placements]
        if len(sites) > 1:
            self.pairs = list(zip(sites, sites[1:] + sites[:1])) if len(sites) > 2 else \
                [(sites[0], sites[1]), (sites[1], sites[0])]
        self.hops: list[tuple[tuple[Any, ...], float]] = []
        self.links: frozenset[int] = frozenset()
        self.cut = False  # no route joins the job's sites now
        self._reroute()
        assert not self.cut  # the loader checked that the sites are connected
        self.dirs = [d for path, _ in self.hops for d in path] + [*self.path_there, *self.path_back]
        self.scaling = scaling_curve(job, sim.scenario, times_fn) if len(sites) == 1 else ()
        self.iterations_needed = math.ceil(job.samples / job.global_batch)
        self.started = 0
        self.completed = 0  # iterations whose work stands (a failure takes back those since the last checkpoint)
        self.epoch = 0  # bumped when a device fails: the iteration in flight is abandoned
        self.down = 0  # devices down now
        self.failures = 0  # device failures inside the window
        self.lost = 0  # iterations lost to failures (run again)
        self.rerun = 0  # iterations in flight run again over another route when a link on theirs failed
        self.stopped_s = 0.0  # seconds inside the window with a device down or restarting
        self._stop_since: float | None = None
        self.fail_spec = sim.scenario.failures.get(job.placement.hardware)
        self.server_fail_spec = sim.scenario.failures.get(sync.hardware) if sync.kind == "parameter-server" \
            and sync.hardware is not None else None
        self.end_s: float | None = None  # when the last iteration ended, if inside the run
        self.durations: list[float] = []  # iterations started inside the window
        self.compute: list[float] = []
        self.comm: list[float] = []
        self.exposed: list[float] = []
        self.hazards = self._hazards()  # of its route while everything is up

    def _hazards(self) -> tuple[tuple[float, float | None, str], ...]:
        """What can interrupt the job, for the first-order extrapolation of its time to complete: per
        kind, (failures per second, seconds until it can restart, what); None for a link with a way
        round it, which costs the iteration in flight, not a stop."""
        out: list[tuple[float, float | None, str]] = []
        if self.fail_spec is not None:
            out.append((self.model.devices / (self.fail_spec.mtbf_h * 3600), self.fail_spec.mttr_h * 3600,
                        f"{self.model.devices} devices"))
        if self.server_fail_spec is not None:
            k = self.job.sync.servers or 1
            out.append((k / (self.server_fail_spec.mtbf_h * 3600), self.server_fail_spec.mttr_h * 3600,
                        f"{k} parameter servers"))
        sim = self.sim
        for i in sorted(self.links):
            link = sim.scenario.links[i]
            a, b = link.between
            spec = sim.scenario.failures.get(link_id(link)) or sim.scenario.failures.get(f"{b}--{a}")
            if spec is None:
                continue
            around = all(sim.topology.route(x, y, frozenset({i})) is not None for x, y in self.pairs)
            out.append((1.0 / (spec.mtbf_h * 3600), None if around else spec.mttr_h * 3600,
                        f"link {a}--{b}" + (" (another route goes round it)" if around else "")))
        return tuple(out)

    def start(self) -> None:
        from lepton_sim.sim.failures import Alternating

        if self.fail_spec is not None:
            mtbf, mttr = self.fail_spec.mtbf_h * 3600, self.fail_spec.mttr_h * 3600
            for d in range(self.model.devices):
                Alternating(self.sim.env, stream(self.sim.seed, f"failures/job/{self.name}/{d}"), mtbf, mttr,
                            self._device_down, self._device_up)
        if self.server_fail_spec is not None:
            mtbf, mttr = self.server_fail_spec.mtbf_h * 3600, self.server_fail_spec.mttr_h * 3600
            for k in range(self.job.sync.servers or 1):
                Alternating(self.sim.env, stream(self.sim.seed, f"failures/job/{self.name}/server/{k}"), mtbf, mttr,
                            self._device_down, self._device_up)
        self._start()

    # --- failures: stop, roll back to the last checkpoint, restart --------------------------

    def _stop(self) -> None:
        """Something the job needs failed: abandon the iteration in flight (and any restart under
        way) and take back the iterations since the last checkpoint; idempotent while stopped."""
        self.epoch += 1
        keep = self.completed - self.completed % self.job.checkpoint_every
        self.lost += self.completed - keep
        self.completed = keep
        if self._stop_since is None:  # (not already stopped, waiting for a restart)
            self._stop_since = self.sim.env.now

    def _try_restart(self) -> None:
        """Restart after `restart_s` if every device and server is up and a route joins the sites."""
        if self.end_s is not None or self.down or self.cut:
            return
        epoch = self.epoch

        def restarted(_ev: Any) -> None:
            if self.epoch != epoch:
                return  # another failure during the restart: it restarts again once that is mended
            self._stopped_until(self.sim.env.now)
            self._start()

        after(self.sim.env, self.job.restart_s, restarted)
        self.sim.events += 1

    def _device_down(self) -> None:
        """A device or parameter server failed."""
        if self.end_s is not None:
            return  # the job is done
        if self.sim.window.in_window(self.sim.env.now):
            self.failures += 1
        self.down += 1
        self._stop()

    def _device_up(self) -> None:
        if self.end_s is not None or self.down == 0:
            return
        self.down -= 1
        self._try_restart()

    def link_down(self, i: int) -> None:
        """Link `i` failed (`Simulation.link_down`). If the job's route crosses it, the transfers on
        it are lost: with another route, the iteration in flight runs again from its start over that
        route; without one, the job stops until a route is back."""
        if self.end_s is not None or i not in self.links:
            return
        if self.sim.window.in_window(self.sim.env.now):
            self.failures += 1
        self._reroute()
        if self.cut:
            self._stop()
            return
        if self._stop_since is None:  # running (not stopped for a device, nor restarting)
            self.epoch += 1  # the iteration in flight is abandoned (its transfers on the link are lost)
            self.rerun += 1
            self._start()

    def link_up(self, i: int) -> None:
        """Link `i` is back: the job's later transfers take the lowest-latency route again, and a job
        cut off restarts."""
        if self.end_s is not None:
            return
        was_cut = self.cut
        self._reroute()
        if was_cut:
            self._try_restart()

    def _reroute(self) -> None:
        """The job's routes with the links down now (`Simulation.down_links`); `cut` when one is missing."""
        sim = self.sim
        routes = [sim.topology.route(a, b, sim.down_links) for a, b in self.pairs]
        if any(r is None for r in routes):
            self.cut = True
            return
        self.cut = False
        self.links = frozenset(h.link_index for r in routes for h in r.hops)  # type: ignore[union-attr]
        if self.ps_across:
            self.path_there = sim.route_dirs(routes[0])  # type: ignore[arg-type]
            self.path_back = sim.route_dirs(routes[0].reverse())  # type: ignore[union-attr]
        else:
            self.hops = [(sim.route_dirs(r), r.latency_s) for r in routes]  # type: ignore[misc, union-attr]

    def _stopped_until(self, now: float) -> None:
        if self._stop_since is not None:
            self.stopped_s += self.sim.window.overlap(self._stop_since, now)
            self._stop_since = None

    # --- one iteration ----------------------------------------------------------------------

    def _start(self) -> None:
        m = self.model
        env = self.sim.env
        t0 = env.now
        self.started += 1
        slow = 1.0
        if self.sigma > 0 and m.devices > 0:
            slow = float(np.max(self.rng.lognormal(self.mu, self.sigma, m.devices)))
        compute = m.compute_s * slow
        state = {"t0": t0, "compute": compute, "ready": bucket_ready_s(m, self.job.sync.overlap, slow), "i": 0,
                 "free": 0.0, "comm": 0.0, "epoch": self.epoch}
        if self.hops:
            self._next_span_bucket(state)
            return
        if not self.path_there:
            length, state["comm"] = iteration_length(m, self.job.sync.overlap, slow, state["ready"])
            self._finish_at(state, length)
            return
        self._next_bucket(state)

    def _next_span_bucket(self, state: dict[str, Any]) -> None:
        """A job across sites: bucket i starts at max(ready, previous done); its bytes cross every
        hop between consecutive sites as transfers queued with the requests there, while the sites
        run their part; it is done when both are, plus its latency steps."""
        if state["epoch"] != self.epoch:
            return
        i = state["i"]
        m = self.model
        env = self.sim.env
        if i == len(m.buckets):
            self._finish_at(state, max(state["compute"], state["free"]))
            return
        now = env.now - state["t0"]
        start = max(state["ready"][i], state["free"], now)

        def send(_ev: Any) -> None:
            left = [len(self.hops)]
            worst = [start + m.bandwidth_s[i]]  # relative to the iteration's start
            bits = m.cross_bytes[i] * 8.0
            alpha = max([m.alpha_s, *(lat for _, lat in self.hops)])

            def arrived(lat: float) -> None:
                worst[0] = max(worst[0], env.now - state["t0"] - lat)  # serialised and queued, without the propagation
                left[0] -= 1
                if left[0]:
                    return
                done = worst[0] + m.steps * alpha

                def combined(_ev: Any) -> None:
                    state["comm"] += done - start
                    state["free"] = done
                    state["i"] = i + 1
                    self._next_span_bucket(state)

                after(env, state["t0"] + done - env.now, combined)
                self.sim.events += 1

            for path, lat in self.hops:
                self.sim.transfer(path, bits, lambda lat=lat: arrived(lat))

        after(env, start - now, send)
        self.sim.events += 1

    def _next_bucket(self, state: dict[str, Any]) -> None:
        """Parameter server over links: push bucket i at max(ready, previous done), then pull it."""
        if state["epoch"] != self.epoch:
            return  # a device failed: the iteration is abandoned (its transfers still cross the links)
        i = state["i"]
        m = self.model
        if i == len(m.buckets):
            self._finish_at(state, max(state["compute"], state["free"]))
            return
        now = self.sim.env.now - state["t0"]
        start = max(state["ready"][i], state["free"], now)
        after(self.sim.env, start - now, lambda _ev: self._push(state, start))
        self.sim.events += 1

    def _push(self, state: dict[str, Any], start: float) -> None:
        m = self.model
        i = state["i"]
        s = m.buckets[i]
        bits = m.devices * s * 8.0  # every device's gradients for the bucket, over the route
        intake = m.devices * s / self.intake_bps if self.intake_bps > 0 else 0.0

        def pushed() -> None:
            after(self.sim.env, intake, lambda _ev: self.sim.transfer(self.path_back, bits, pulled))
            self.sim.events += 1

        def pulled() -> None:
            done = self.sim.env.now - state["t0"]
            state["comm"] += done - start
            state["free"] = done
            state["i"] = i + 1
            self._next_bucket(state)

        self.sim.transfer(self.path_there, bits, pushed)

    def _finish_at(self, state: dict[str, Any], length: float) -> None:
        """The iteration ends `length` after it started."""
        env = self.sim.env
        after(env, state["t0"] + length - env.now, lambda _ev: self._done(state, length))
        self.sim.events += 1

    def _done(self, state: dict[str, Any], length: float) -> None:
        if state["epoch"] != self.epoch:
            return  # a device failed during this iteration
        sim = self.sim
        t0 = state["t0"]
        if sim.window.in_window(t0):
            self.durations.append(length)
            self.compute.append(state["compute"])
            self.comm.append(state["comm"])
            self.exposed.append(length - state["compute"])
        self.completed += 1
        if self.completed >= self.iterations_needed:
            self.end_s = sim.env.now
            return
        self._start()

    def tally(self) -> JobTally:
        m = self.model
        if self._stop_since is not None:
            self._stopped_until(self.sim.env.now)
        return JobTally(name=self.name, devices=m.devices, nodes=m.nodes, micro_batch=m.micro_batch,
                        global_batch=self.job.global_batch, samples=self.job.samples,
                        iterations_needed=self.iterations_needed, started=self.started, completed=self.completed,
                        end_s=self.end_s, durations_s=tuple(self.durations), compute_s=tuple(self.compute),
                        communication_s=tuple(self.comm), exposed_s=tuple(self.exposed),
                        model_compute_s=m.compute_s, model_communication_s=m.communication_s,
                        grad_bytes=m.grad_bytes, buckets=len(m.buckets), compute_detail=m.compute_detail,
                        sync_detail=m.sync_detail, scaling=self.scaling, failures=self.failures,
                        lost_iterations=self.lost, stopped_s=self.stopped_s, hazards=self.hazards,
                        rerouted=self.rerun)

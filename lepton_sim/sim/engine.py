"""The discrete-event model on SimPy: arrivals, routing, link transfers, batching pools, responses.

A request's life, and so its latency, is computed here, in this order:

1. `_arrive`    created at its demand site; routing picks a pool (`Router`).
2. `LinkDir`    crosses each link on the route: wait for the direction to be free (FIFO) or share it
                (fair), serialise `input_bytes` at the link's bandwidth, then propagate `latency_ms`.
3. `Pool`       joins the pool's FIFO queue; an idle replica takes a batch of up to `max_batch`
                (waiting at most `max_wait_ms` for it to fill); compute time comes from the
                service-time model for that batch size, or the service's `service_time` override.
4. `LinkDir`    the response (`output_bytes`) crosses the same links back.
5. `_complete`  latency = arrival back at the demand site - creation.

Everything is callbacks on SimPy timeouts (no process per request), which keeps the event count
to about one per hop and one per batch. The engine only tallies; `lepton_sim.metrics` turns the
immutable `SimRecord` into the metrics object.
"""
from __future__ import annotations

import heapq
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from lepton_sim.network import Route, Topology, link_id
from lepton_sim.scenario.schema import Deterministic, Exponential, Link, Lognormal, Replicas, Scenario, Service
from lepton_sim.servicetime import BatchTimes, batch_times
from lepton_sim.sim.arrivals import arrival_times
from lepton_sim.sim.record import LinkTally, PoolTally, ServiceTally, SimRecord
from lepton_sim.sim.streams import Sampler, Uniforms, stream
from lepton_sim.sketch import LatencySummary

TIME_BINS = 120  # utilisation-over-time resolution: the horizon is cut into this many bins
FLUSH = 65536  # latencies buffered per service before they are folded into the summary
EPS_S = 1e-9  # float slack when comparing event times (1 ns)

BatchTimesFn = Callable[..., BatchTimes]


class Request:
    """One inference request in flight (mutable, engine-internal)."""

    __slots__ = ("created", "svc", "counted", "pool", "path", "hop", "bits", "then", "back", "t_enq")

    def __init__(self, created: float, svc: DemandState, counted: bool) -> None:
        self.created = created
        self.svc = svc
        self.counted = counted


class Window:
    """The measured window [warmup, duration] and a fixed grid of time bins over [0, duration]."""

    def __init__(self, warmup: float, end: float) -> None:
        self.start, self.end = warmup, end
        self.bin_w = end / TIME_BINS

    def overlap(self, s: float, e: float) -> float:
        lo = s if s > self.start else self.start
        hi = e if e < self.end else self.end
        return hi - lo if hi > lo else 0.0

    def add_bins(self, bins: list[float], s: float, e: float) -> None:
        """Add the busy interval [s, e) to the per-bin busy seconds."""
        w = self.bin_w
        i = int(s / w)
        while i < TIME_BINS and s < e:
            edge = (i + 1) * w
            seg_end = e if e < edge else edge
            bins[i] += seg_end - s
            s = seg_end
            i += 1


class DemandState:
    """Per (service, demand site) constants and tallies: requests are counted where they are created."""

    def __init__(self, service: str, site: str, svc: Service, in_bytes: int, out_bytes: int) -> None:
        self.service, self.site, self.spec = service, site, svc
        self.summary = LatencySummary(thresholds=[svc.slo.latency_ms / 1e3])
        self.buf: list[float] = []
        self.in_bits = in_bytes * 8.0
        self.out_bits = out_bytes * 8.0
        self.arrived = self.completed = self.dropped = self.live = 0

    def flush(self) -> None:
        if self.buf:
            self.summary.add_many(np.asarray(self.buf))
            self.buf.clear()


class LinkDir:
    """One direction of a link, FIFO: transfers go one at a time at full bandwidth."""

    def __init__(self, sim: Simulation, link: Link, src: str, dst: str) -> None:
        self.sim = sim
        self.env = sim.env
        self.bps = link.bandwidth_gbps * 1e9
        self.prop = link.latency_ms / 1e3
        self.id = f"{src}->{dst}"
        self.free_at = 0.0
        self.busy = 0.0
        self.bytes = 0.0
        self.transfers = 0
        self.bins = [0.0] * TIME_BINS

    def transmit(self, req: Request) -> None:
        """Start (or queue) `req`'s transfer; the far end receives it after serialisation + propagation."""
        env = self.env
        now = env.now
        ser = req.bits / self.bps
        start = self.free_at if self.free_at > now else now
        end = start + ser
        self.free_at = end
        self._account(start, end, req.bits)
        ev = env.timeout(end + self.prop - now, req)
        ev.callbacks.append(self.sim._hop_done)
        self.sim.events += 1

    def _account(self, start: float, end: float, bits: float) -> None:
        win = self.sim.window
        if win.start <= start < win.end:
            self.bytes += bits / 8
            self.transfers += 1
        self.busy += win.overlap(start, end)
        win.add_bins(self.bins, start, end)


class FairLinkDir(LinkDir):
    """One direction of a link shared equally by the transfers in flight (processor sharing).

    Uses virtual time: every active transfer has received the same number of bits `v` since it
    started relative to its tag, so each finishes when `v` reaches its finish tag; `v` grows at
    bandwidth / active-count. A heap of tags gives the next departure.
    """

    def __init__(self, sim: Simulation, link: Link, src: str, dst: str) -> None:
        super().__init__(sim, link, src, dst)
        self.v = 0.0
        self.last = 0.0
        self.heap: list[tuple[float, int, Request]] = []
        self.seq = 0
        self.gen = 0
        self.busy_since = 0.0

    def _advance(self, now: float) -> None:
        if self.heap:
            self.v += (now - self.last) * self.bps / len(self.heap)
        self.last = now

    def transmit(self, req: Request) -> None:
        now = self.env.now
        self._advance(now)
        if not self.heap:
            self.busy_since = now
        win = self.sim.window
        if win.start <= now < win.end:
            self.bytes += req.bits / 8
            self.transfers += 1
        self.seq += 1
        heapq.heappush(self.heap, (self.v + req.bits, self.seq, req))
        self._schedule(now)

    def _schedule(self, now: float) -> None:
        self.gen += 1
        if self.heap:
            dt = (self.heap[0][0] - self.v) * len(self.heap) / self.bps
            ev = self.env.timeout(max(dt, 0.0), self.gen)
            ev.callbacks.append(self._departure)
            self.sim.events += 1

    def _departure(self, ev: simpy.Event) -> None:
        if ev._value != self.gen:
            return  # superseded by a later arrival or departure
        now = self.env.now
        self._advance(now)
        tol = 1e-6 * (abs(self.v) + 1.0)
        while self.heap and self.heap[0][0] <= self.v + tol:
            _, _, req = heapq.heappop(self.heap)
            done = self.env.timeout(self.prop, req)
            done.callbacks.append(self.sim._hop_done)
            self.sim.events += 1
        if not self.heap:
            win = self.sim.window
            self.busy += win.overlap(self.busy_since, now)
            win.add_bins(self.bins, self.busy_since, now)
        self._schedule(now)


class Pool:
    """One deployment line: `count` replicas behind one FIFO queue, with dynamic batching."""

    def __init__(self, sim: Simulation, index: int, line: Replicas, times: BatchTimes | None,
                 draw: Callable[[], float] | None, per_request_s: float) -> None:
        svc = sim.scenario.services[line.service]
        self.sim, self.env, self.index, self.line = sim, sim.env, index, line
        self.id = f"{line.service}@{line.site}/{line.hardware}/{line.variant}"
        self.times = list(times.times_s) if times is not None else None
        self.batch_times = times
        self.draw = draw
        self.per_request_s = per_request_s  # batch-1 compute time, the unit of "queued work"
        self.max_batch = svc.batching.max_batch
        self.max_wait = svc.batching.max_wait_ms / 1e3
        self.max_queue = svc.max_queue
        self.queue: deque[Request] = deque()
        self.free: deque[int] = deque(range(line.count))
        self.outstanding = 0  # routed here and not yet served: in transit, queued or in service
        self.timer_due = -1.0
        self.busy = [0.0] * line.count
        self.bins = [0.0] * TIME_BINS
        self.batches = 0
        self.batched = 0
        self.served = 0

    def enqueue(self, req: Request) -> None:
        if self.max_queue is not None and len(self.queue) >= self.max_queue:
            self.outstanding -= 1
            self.sim._drop(req)
            return
        req.t_enq = self.env.now
        self.queue.append(req)
        if self.free:
            self._dispatch()

    def _dispatch(self) -> None:
        q = self.queue
        env = self.env
        while self.free and q:
            n = len(q)
            if n < self.max_batch and self.max_wait > 0.0:
                due = q[0].t_enq + self.max_wait
                if env.now < due - EPS_S:
                    if self.timer_due != due:  # wait for the batch to fill, at most until `due`
                        self.timer_due = due
                        t = env.timeout(due - env.now)
                        t.callbacks.append(self._on_timer)
                        self.sim.events += 1
                    return
            b = n if n < self.max_batch else self.max_batch
            batch = [q.popleft() for _ in range(b)]
            replica = self.free.popleft()
            dt = self.times[b - 1] if self.draw is None else self.draw()
            now = env.now
            win = self.sim.window
            self.busy[replica] += win.overlap(now, now + dt)
            win.add_bins(self.bins, now, now + dt)
            if win.start <= now < win.end:
                self.batches += 1
                self.batched += b
            ev = env.timeout(dt, (replica, batch))
            ev.callbacks.append(self._on_done)
            self.sim.events += 1

    def _on_timer(self, ev: simpy.Event) -> None:
        self.timer_due = -1.0
        self._dispatch()

    def _on_done(self, ev: simpy.Event) -> None:
        replica, batch = ev._value
        self.free.append(replica)
        self.outstanding -= len(batch)
        self.served += len(batch)
        respond = self.sim._respond
        for req in batch:
            respond(req)
        if self.queue:
            self._dispatch()


@dataclass(frozen=True)
class Candidate:
    """A pool a demand site may send to, with the link directions there and back."""

    pool: Pool
    there: tuple[LinkDir, ...]
    back: tuple[LinkDir, ...]
    latency_s: float  # one-way propagation


class Router:
    """Picks a pool for each request of one (service, demand site) pair."""

    def __init__(self, policy: str, cands: list[Candidate], weights: list[float], uniforms: Uniforms) -> None:
        self.cands = sorted(cands, key=lambda c: (c.latency_s, c.pool.index))
        self.policy = policy
        nearest = self.cands[0].latency_s
        self.nearest = [c for c in self.cands if c.latency_s <= nearest + EPS_S]
        order = [cands.index(c) for c in self.cands]
        w = np.cumsum([weights[i] for i in order]) if weights else np.array([])
        self.cum = (w / w[-1]).tolist() if len(w) and w[-1] > 0 else []
        self.uniforms = uniforms
        if policy == "nearest":
            self.choose = self._single if len(self.nearest) == 1 else self._nearest
        elif policy == "least-loaded":
            self.choose = self._single if len(self.cands) == 1 else self._least_loaded
        elif policy == "least-latency":
            self.choose = self._single if len(self.cands) == 1 else self._least_latency
        else:
            self.choose = self._weighted

    def _single(self) -> Candidate:
        return self.cands[0]

    @staticmethod
    def _least(cands: list[Candidate]) -> Candidate:
        # queued work per replica, in seconds of batch-1 compute; ties go to the nearest pool
        best, best_load = cands[0], math.inf
        for c in cands:
            p = c.pool
            load = p.outstanding * p.per_request_s / p.line.count
            if load < best_load:
                best, best_load = c, load
        return best

    def _nearest(self) -> Candidate:
        return self._least(self.nearest)

    def _least_loaded(self) -> Candidate:
        return self._least(self.cands)

    def _least_latency(self) -> Candidate:
        # round-trip propagation plus queued work per replica: the pool expected to answer first
        best, best_t = self.cands[0], math.inf
        for c in self.cands:
            p = c.pool
            t = 2.0 * c.latency_s + p.outstanding * p.per_request_s / p.line.count
            if t < best_t:
                best, best_t = c, t
        return best

    def _weighted(self) -> Candidate:
        u = self.uniforms()
        for c, w in zip(self.cands, self.cum):
            if u < w:
                return c
        return self.cands[-1]


class Simulation:
    """One run of one scenario with one seed. `run()` returns the immutable `SimRecord`."""

    def __init__(self, scenario: Scenario, seed: int | None = None, batch_times_fn: BatchTimesFn = batch_times) -> None:
        if scenario.deployment is None:
            raise ValueError("the scenario has no deployment to simulate")
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.env = simpy.Environment()
        h = scenario.horizon
        self.duration, self.warmup = h.duration_s, h.warmup_s
        self.window = Window(h.warmup_s, h.duration_s)
        self.events = 0
        self.created = 0  # every request created, warm-up included
        self.demands: dict[tuple[str, str], DemandState] = {}
        for name, svc in scenario.services.items():
            model = scenario.models[svc.model]
            for d in svc.demand:
                if (name, d.site) not in self.demands:
                    self.demands[(name, d.site)] = DemandState(name, d.site, svc, model.input_bytes, model.output_bytes)
        self.topology = Topology(scenario)
        self.linkdirs: dict[tuple[int, str], LinkDir] = {}
        for i, link in enumerate(scenario.links):
            a, b = link.between
            cls = FairLinkDir if link.sharing == "fair" else LinkDir
            self.linkdirs[(i, a)] = cls(self, link, a, b)
            self.linkdirs[(i, b)] = cls(self, link, b, a)
        self.pools = [self._make_pool(i, line, batch_times_fn) for i, line in enumerate(scenario.deployment.replicas)]
        self.routers: dict[tuple[str, int], Router] = {}
        self._sources: list[tuple[Iterator[float], DemandState, Router | None, float]] = []
        self._build_routes()

    # --- construction ---------------------------------------------------------------------

    def _make_pool(self, i: int, line: Replicas, batch_times_fn: BatchTimesFn) -> Pool:
        svc = self.scenario.services[line.service]
        model = self.scenario.models[svc.model]
        if svc.service_time is not None:
            draw = _sampler(svc, stream(self.seed, f"service/{i}/{line.service}@{line.site}/{line.hardware}"))
            st = svc.service_time
            unit = st.ms if isinstance(st, Deterministic) else st.mean_ms
            return Pool(self, i, line, None, draw, unit / 1e3)
        times = batch_times_fn(model, model.variants[line.variant], self.scenario.hardware[line.hardware],
                               svc.batching.max_batch)
        return Pool(self, i, line, times, None, times.times_s[0])

    def _dirs(self, route: Route) -> tuple[LinkDir, ...]:
        return tuple(self.linkdirs[(h.link_index, h.src)] for h in route.hops)

    def _build_routes(self) -> None:
        routing = self.scenario.deployment.routing  # type: ignore[union-attr]
        for name, svc in self.scenario.services.items():
            for d_i, demand in enumerate(svc.demand):
                state = self.demands[(name, demand.site)]
                cands, weights = [], []
                for pool in self.pools:
                    if pool.line.service != name:
                        continue
                    route = self.topology.route(demand.site, pool.line.site)
                    if route is None:
                        continue
                    cands.append(Candidate(pool, self._dirs(route), self._dirs(route.reverse()), route.latency_s))
                    weights.append((pool.line.weights or {}).get(demand.site, 0.0))
                uniforms = Uniforms(stream(self.seed, f"routing/{name}/{d_i}"))
                router = Router(routing, cands, weights, uniforms) if cands else None
                times = arrival_times(demand, stream(self.seed, f"arrivals/{name}/{d_i}"))
                self._sources.append((times, state, router, state.in_bits))

    # --- the request's life ---------------------------------------------------------------

    def _schedule_next(self, src: list[Any]) -> None:
        times = src[0]
        t = next(times, None)
        if t is None or t >= self.duration:
            return
        ev = self.env.timeout(t - self.env.now if t > self.env.now else 0.0, src)
        ev.callbacks.append(self._arrive)
        self.events += 1

    def _arrive(self, ev: simpy.Event) -> None:
        src = ev._value
        _, state, router, in_bits = src
        now = self.env.now
        req = Request(now, state, now >= self.warmup)
        self.created += 1
        if req.counted:
            state.arrived += 1
            state.live += 1
        if router is None:
            self._drop(req)
        else:
            c = router.choose()
            c.pool.outstanding += 1
            req.pool = c.pool
            req.back = c.back
            self._send(req, c.there, in_bits, c.pool.enqueue)
        self._schedule_next(src)

    def _send(self, req: Request, path: tuple[LinkDir, ...], bits: float, then: Callable[[Request], None]) -> None:
        if not path:
            then(req)
            return
        req.path, req.hop, req.bits, req.then = path, 0, bits, then
        path[0].transmit(req)

    def _hop_done(self, ev: simpy.Event) -> None:
        req = ev._value
        req.hop += 1
        if req.hop < len(req.path):
            req.path[req.hop].transmit(req)
        else:
            req.then(req)

    def _respond(self, req: Request) -> None:
        self._send(req, req.back, req.svc.out_bits, self._complete)

    def _complete(self, req: Request) -> None:
        if req.counted:
            state = req.svc
            state.completed += 1
            state.live -= 1
            state.buf.append(self.env.now - req.created)  # the request's end-to-end latency
            if len(state.buf) >= FLUSH:
                state.flush()

    def _drop(self, req: Request) -> None:
        if req.counted:
            req.svc.dropped += 1
            req.svc.live -= 1

    # --- running --------------------------------------------------------------------------

    def run(self, progress: bool = False) -> SimRecord:
        """Run to the end of the horizon (plus the drain) and return the record; `progress` draws a bar on stderr."""
        t0 = time.perf_counter()
        for src in self._sources:
            self._schedule_next(list(src))
        until = self.duration + self.scenario.horizon.drain_s
        if progress:
            self._run_with_progress(until)
        else:
            self.env.run(until=until)
        for state in self.demands.values():
            state.flush()
        return self._record(time.perf_counter() - t0)

    def _run_with_progress(self, until: float) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        step = self.duration / 100
        with Progress(TextColumn("simulating {task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeRemainingColumn(), transient=True) as bar:
            task = bar.add_task(self.scenario.name, total=self.duration)
            t = step
            while t < self.duration:
                self.env.run(until=t)
                bar.update(task, completed=t)
                t += step
            self.env.run(until=until)

    def _record(self, wall_s: float) -> SimRecord:
        end = self.env.now
        for d in self.linkdirs.values():
            if isinstance(d, FairLinkDir) and d.heap:  # a busy period still open at the end
                d.busy += self.window.overlap(d.busy_since, end)
                self.window.add_bins(d.bins, d.busy_since, end)
        services = {}
        for name, svc in self.scenario.services.items():
            by_site = {
                site: ServiceTally(d.arrived, d.completed, d.dropped, d.live, d.summary)
                for (n, site), d in self.demands.items() if n == name
            }
            total = LatencySummary(thresholds=[svc.slo.latency_ms / 1e3])
            for t in by_site.values():
                total.merge(t.latency_s)
            services[name] = ServiceTally(
                sum(t.arrived for t in by_site.values()), sum(t.completed for t in by_site.values()),
                sum(t.dropped for t in by_site.values()), sum(t.in_flight for t in by_site.values()), total, by_site,
            )
        pools = [
            PoolTally(
                id=p.id, line=p.line, busy_s=tuple(p.busy), bins_busy_s=tuple(p.bins), batches=p.batches,
                batched=p.batched,
                compute_source="service_time override" if p.batch_times is None else p.batch_times.source,
                compute_detail=_override_detail(self.scenario.services[p.line.service])
                if p.batch_times is None else p.batch_times.detail,
            )
            for p in self.pools
        ]
        links = [
            LinkTally(id=link_id(self.scenario.links[i]), direction=d.id, link_index=i, busy_s=d.busy,
                      bytes=d.bytes, transfers=d.transfers, bins_busy_s=tuple(d.bins))
            for (i, _), d in self.linkdirs.items()
        ]
        return SimRecord(
            scenario=self.scenario.name, seed=self.seed, duration_s=self.duration, warmup_s=self.warmup,
            end_s=end, bin_s=self.window.bin_w, services=services, pools=tuple(pools), links=tuple(links),
            events=self.events, created=self.created, wall_s=wall_s,
        )


def _sampler(svc: Service, rng: np.random.Generator) -> Sampler:
    st = svc.service_time
    if isinstance(st, Exponential):
        mean = st.mean_ms / 1e3
        return Sampler(lambda n: rng.exponential(mean, n))
    if isinstance(st, Deterministic):
        d = st.ms / 1e3
        return Sampler(lambda n: np.full(n, d))
    if isinstance(st, Lognormal):
        sigma2 = math.log1p(st.cv**2)  # lognormal with the given mean and coefficient of variation
        mu = math.log(st.mean_ms / 1e3) - sigma2 / 2
        return Sampler(lambda n: rng.lognormal(mu, math.sqrt(sigma2), n))
    raise TypeError(f"unknown service_time {st!r}")


def _override_detail(svc: Service) -> str:
    st = svc.service_time
    return f"service_time override: {st.model_dump() if st is not None else None} (one draw per batch)"


def simulate(scenario: Scenario, seed: int | None = None, batch_times_fn: BatchTimesFn = batch_times) -> SimRecord:
    """Run one simulation of `scenario` (with `seed`, default the scenario's) and return its record."""
    return Simulation(scenario, seed, batch_times_fn).run()

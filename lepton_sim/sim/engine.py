"""The discrete-event model on SimPy: arrivals, routing, link transfers, batching pools, responses.

A request's life, and so its latency, is computed here, in this order:

1. `_arrive`    created at its demand site; routing picks a pool (`routing.Router`).
2. `_send`      crosses each link on the route, if any (`links.LinkDir`): wait for the direction to be free
                (FIFO) or share it (fair), serialise `input_bytes` at the link's bandwidth, then
                propagate `latency_ms`. With a `payload` codec the request is compressed first
                (`_compressed`), crosses at `input_bytes / ratio`, and is decompressed at the pool.
3. `Pool`       joins the pool's FIFO queue (`pools.Pool`); an idle replica takes a batch of up to
                `max_batch` (waiting at most `max_wait_ms` for it to fill); compute time comes from
                the service-time model for that batch size (`lepton_sim.servicetime`: the per-kernel
                roofline with the hardware type's calibrated or default efficiency figures, or its
                measured kernel profile, longer after the replica idled where the profile timed
                that), or the service's `service_time` override, or one draw from measured batch
                times (`BatchTimes.samples_s`, `pools.DrawnTimes`: `validate`'s simulation as served).
4. `_respond`   the response (`output_bytes`) crosses the same links back.
5. `_complete`  latency = arrival back at the demand site - creation.

An LLM request (a service whose model is `kind: llm`) draws its prompt and output tokens at
`_arrive` (`tokens.TokenSource`; before routing when the service's pools serve prompt-length
ranges, `prompt_tokens`, and `routing.ByPrompt` picks the router of its prompt's interval) and
sends `prompt x token_bytes` bytes. Its pool is an
`llm.LLMPool`: the replica with the fewest outstanding tokens queues it, and continuous batching
runs it iteration by iteration (`LLMPool._step` schedules one, its time from
`lepton_sim.servicetime.llm`: GEMMs, attention over the KV cache, tensor-parallel all-reduces;
`_on_iteration` ends it; runs of decode-only iterations are planned in one event, `_plan`). Then:

6. `_first_token`  the iteration that completes its prompt samples the first token, which crosses
                   the links back at once; `_first_back`: TTFT = its arrival - creation.
7. `_llm_done`     the iteration that samples the last token sends the rest of the output back;
                   `_complete` then gives the end-to-end latency and `_tokens_done` the TPOT =
                   (last token back - first token back) / (output tokens - 1).

A training job (`training.TrainingJob`, a scenario's `jobs`) runs its iterations back to back on the
same clock: compute of the slowest device, then (or overlapped with the backward pass) its
gradient buckets combined by the closed forms of `lepton_sim.servicetime.training`, or, for
parameter servers at another site, pushed and pulled over the link directions as transfers of
their own (`Simulation.transfer`), queued with the requests on them.

Failures (`failures.py`) take replicas and links down and up; see `replica_down` and `link_down`.

The exact fast path (`fast.py`, chosen per part of the scenario by `--engine auto`, the default)
computes the same life station by station instead of event by event, for the parts where no
station's arrivals depend on another's state (no failures, not LLM, FIFO links, routing that does
not read the pools): step 1 is `Router.fixed` with the same draws, step 2 Lindley's recursion per
link direction, step 3 `fast._pool_run` (this dispatch rule as one compiled loop), steps 4-5 as
here. It fills the same tallies, so the metrics are identical; `SimRecord.engines` says which ran.

Everything is callbacks on SimPy's event queue (no process per request), which keeps the event
count to about one per hop and one per batch: each is a `common.Call` put on the queue where a
`simpy.Timeout` of the same delay would go (`common.after`, the same order of events), and
`common.run_until` steps the queue as `Environment.run` does. The engine only tallies;
`lepton_sim.metrics` turns the immutable `SimRecord` into the metrics object.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from heapq import heappush
from functools import partial
from typing import Any

import numpy as np
import simpy

from lepton_sim.errors import InputError
from lepton_sim.network import Route, Topology, link_id
from lepton_sim.scenario.schema import (Demand, Deterministic, Exponential, Lognormal, Replicas, Scenario, Service, is_llm,
                                        pool_ids, prompt_intervals)
from lepton_sim.servicetime import BatchTimes, BatchTimesCache, batch_times
from lepton_sim.sim.arrivals import arrival_chunks
from lepton_sim.sim.common import NORMAL, Call, Request, Window, after, run_until
from lepton_sim.sim.failures import start_failures
from lepton_sim.sim.llm import LLMPool, Seq
from lepton_sim.sim.links import FairLinkDir, LinkDir
from lepton_sim.sim.pools import Pool
from lepton_sim.sim.record import LinkTally, LLMPoolTally, LLMServiceTally, PoolTally, ServiceTally, SimRecord
from lepton_sim.sim.routing import ByPrompt, Candidate, LazyCandidates, Router
from lepton_sim.sim.streams import Sampler, Uniforms, stream
from lepton_sim.sim.tokens import TokenSource
from lepton_sim.sketch import LatencySummary

FLUSH = 65536  # latencies buffered per demand site before they are folded into the summary
ENGINES = ("auto", "event", "fast")  # `--engine`

BatchTimesFn = Callable[..., BatchTimes]
AnyPool = Pool | LLMPool


class DemandState:
    """Per (service, demand site) constants and tallies: requests are counted where they are created."""

    __slots__ = ("service", "site", "spec", "summary", "buf", "tokens", "token_bits", "ttft_target", "tpot_target",
                 "ttft", "tpot", "ttft_buf", "tpot_buf", "met", "prompt_tokens", "output_tokens", "preempted",
                 "in_bits", "out_bits", "codec", "wire_bits", "compress_s", "decompress_s", "arrived", "completed",
                 "dropped", "failed", "live", "by_prompt")

    def __init__(self, service: str, site: str, svc: Service, in_bytes: int, out_bytes: int,
                 tokens: TokenSource | None = None, token_bytes: int = 4) -> None:
        self.service, self.site, self.spec = service, site, svc
        self.summary = LatencySummary(thresholds=_thresholds(svc))
        self.buf: list[float] = []
        # An LLM service: each request draws its prompt and output tokens; its bytes follow them.
        self.tokens = tokens
        if tokens is not None:
            self.token_bits = token_bytes * 8.0
            slo = svc.slo
            assert slo.ttft is not None and slo.tpot is not None
            self.ttft_target, self.tpot_target = slo.ttft.latency_ms / 1e3, slo.tpot.latency_ms / 1e3
            self.ttft = LatencySummary(thresholds=[self.ttft_target])
            self.tpot = LatencySummary(thresholds=[self.tpot_target])
            self.ttft_buf: list[float] = []
            self.tpot_buf: list[float] = []
            self.met = self.prompt_tokens = self.output_tokens = self.preempted = 0
        self.in_bits = in_bytes * 8.0
        self.out_bits = out_bytes * 8.0
        codec = svc.payload.model if svc.payload is not None and svc.payload.codec != "none" else None
        self.codec = codec  # compresses the request payload when it crosses a link
        if codec is not None:
            self.wire_bits = self.in_bits / codec.ratio
            self.compress_s = in_bytes * codec.compress_s_per_byte
            self.decompress_s = in_bytes * codec.decompress_s_per_byte
        self.arrived = self.completed = self.dropped = self.failed = self.live = 0
        self.by_prompt: ByPrompt | None = None  # set when the service's pools serve prompt-length ranges

    def flush(self) -> None:
        if self.buf:
            self.summary.add_many(np.asarray(self.buf))
            self.buf.clear()
        if self.tokens is not None:
            for buf, summary in ((self.ttft_buf, self.ttft), (self.tpot_buf, self.tpot)):
                if buf:
                    summary.add_many(np.asarray(buf))
                    buf.clear()

    def llm_tally(self) -> LLMServiceTally | None:
        if self.tokens is None:
            return None
        return LLMServiceTally(self.ttft, self.tpot, self.met, self.prompt_tokens, self.output_tokens, self.preempted)


@dataclass(frozen=True)
class Source:
    """One demand line: service `service`'s `index`-th demand, its state, router and arrival stream
    (not yet drawn from: the event engine and the fast path each draw it only if they run it)."""

    service: str
    index: int
    demand: Demand
    state: DemandState
    router: Router | ByPrompt | None
    rng: np.random.Generator


def _thresholds(svc: Service) -> list[float]:
    return [] if svc.slo.latency_ms is None else [svc.slo.latency_ms / 1e3]


class Simulation:
    """One run of one scenario with one seed. `run()` returns the immutable `SimRecord`."""

    def __init__(self, scenario: Scenario, seed: int | None = None, batch_times_fn: BatchTimesFn = batch_times,
                 engine: str = "auto") -> None:
        """`engine`: "event" runs everything here; "fast" runs every part on the exact fast path
        (`lepton_sim.sim.fast`) and raises `InputError` saying why where it cannot; "auto" runs each
        part on the fast path where it can and here where it cannot."""
        if scenario.deployment is None and not scenario.jobs:
            raise ValueError("the scenario has no deployment to simulate")
        if engine not in ENGINES:
            raise InputError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
        self.engine = engine
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.env = simpy.Environment()
        self.arrive = self._arrive  # bound once: every arrival event calls it
        h = scenario.horizon
        self.duration, self.warmup = h.duration_s, h.warmup_s
        self.window = Window(h.warmup_s, h.duration_s)
        self.events = 0
        self.created = 0  # every request created, warm-up included
        self.demands: dict[tuple[str, str], DemandState] = {}
        for name, svc in scenario.services.items():
            model = scenario.models[svc.model]
            for d_i, d in enumerate(svc.demand):
                if (name, d.site) in self.demands:
                    continue
                if is_llm(model):
                    assert svc.tokens is not None
                    tokens = TokenSource(svc.tokens, stream(self.seed, f"tokens/{name}/{d_i}"))
                    self.demands[(name, d.site)] = DemandState(name, d.site, svc, 0, 0, tokens, model.token_bytes)
                else:
                    self.demands[(name, d.site)] = DemandState(name, d.site, svc, model.input_bytes, model.output_bytes)
        self.topology = Topology(scenario)
        self.linkdirs: dict[tuple[int, str], LinkDir] = {}
        for i, link in enumerate(scenario.links):
            a, b = link.between
            cls = FairLinkDir if link.sharing == "fair" else LinkDir
            self.linkdirs[(i, a)] = cls(self, link, a, b)
            self.linkdirs[(i, b)] = cls(self, link, b, a)
        times_fn = BatchTimesCache(batch_times_fn)  # identical deployment lines share one table
        lines = scenario.deployment.replicas if scenario.deployment is not None else []
        self.pools = [self._make_pool(i, line, times_fn) for i, line in enumerate(lines)]
        for pool, pid in zip(self.pools, pool_ids(lines)):
            pool.id = pid  # a second line of the same service, site, hardware and variant is another pool
        self.routers: list[Router] = []
        # One per demand line: `sources` says what it is (`lepton_sim.sim.fast` reads it); `_sources`
        # is what `_arrive` reads (its arrival times as they are drawn, in lists, state, router, bits).
        self.sources: list[Source] = []
        self._sources: list[tuple[Iterator[list[float]], DemandState, Router | None, float]] = []
        self._route_dirs: dict[tuple[str, str, frozenset[int]], tuple[tuple[LinkDir, ...], tuple[LinkDir, ...], float]] = {}
        self._build_routes()
        # failure state: which links are down, how many units are down, link down-time tallies
        self.down_links: frozenset[int] = frozenset()
        self.units_down = 0
        self.link_down_s = [0.0] * len(scenario.links)
        self.link_down_since = [0.0] * len(scenario.links)
        self.link_failures = [0] * len(scenario.links)
        self._candidates: dict[tuple[str, int, frozenset[int]], Candidate | None] = {}
        # Training jobs (`training.TrainingJob`), imported only when the scenario has some.
        self.jobs: list[Any] = []
        if scenario.jobs:
            from lepton_sim.sim.training import TrainingJob

            self.jobs = [TrainingJob(self, name, job, times_fn) for name, job in scenario.jobs.items()]
        # Which engine runs which part of the scenario (`lepton_sim.sim.fast.split`); imported only
        # when the fast path may run.
        self.parts: list[Any] = []
        if engine != "event":
            from lepton_sim.sim.fast import split

            self.parts = split(self)
            if engine == "fast":
                slow = sorted({w for p in self.parts for w in p.why})
                if slow:
                    raise InputError("--engine fast cannot run this scenario exactly: " + "; ".join(slow)
                                     + " (use --engine auto to run those parts on the event engine)")

    # --- construction ---------------------------------------------------------------------

    def _make_pool(self, i: int, line: Replicas, batch_times_fn: BatchTimesFn) -> AnyPool:
        svc = self.scenario.services[line.service]
        model = self.scenario.models[svc.model]
        if is_llm(model):
            # Imported here: only scenarios with LLM services need the token-level service-time model.
            from lepton_sim.servicetime.llm import llm_replica_model

            sched = svc.scheduler_or_default
            hw = self.scenario.hardware[line.hardware]
            m = llm_replica_model(model, model.variants[line.variant], hw, line.tensor_parallel,
                                  sched.max_batched_tokens + sched.max_num_seqs, max_seqs=sched.max_num_seqs)
            return LLMPool(self, i, line, svc, m, m.kv_capacity_tokens(hw.memory_gb, sched.gpu_memory_utilization),
                           model.sliding_window)
        b = svc.batching
        if svc.service_time is not None:
            draw = _sampler(svc, stream(self.seed, f"service/{i}/{line.service}@{line.site}/{line.hardware}"))
            st = svc.service_time
            unit = st.ms if isinstance(st, Deterministic) else st.mean_ms
            return Pool(self, i, line, b.max_batch, b.max_wait_ms / 1e3, svc.max_queue, None, draw, unit / 1e3)
        times = batch_times_fn(model, model.variants[line.variant], self.scenario.hardware[line.hardware], b.max_batch)
        return Pool(self, i, line, b.max_batch, b.max_wait_ms / 1e3, svc.max_queue, times, None, times.times_s[0])

    def route_dirs(self, route: Route) -> tuple[LinkDir, ...]:
        """The link directions a route's hops cross, in order."""
        return self._dirs(route)

    def transfer(self, path: tuple[LinkDir, ...], bits: float, then: Callable[[], None]) -> None:
        """Send `bits` over the link directions `path` as one transfer, queued (or shared) with the
        requests on them; call `then()` when it is in (a training job's gradients, say). A transfer
        lost on a failed link is dropped without a call: the job it belongs to has stopped."""
        req = Request(self.env._now, None, False)  # type: ignore[arg-type]
        self._send(req, path, bits, lambda _req: then())

    def _dirs(self, route: Route) -> tuple[LinkDir, ...]:
        return tuple(self.linkdirs[(h.link_index, h.src)] for h in route.hops)

    def _candidate(self, site: str, pool: AnyPool, down: frozenset[int]) -> Candidate | None:
        key = (site, pool.line.site, down)
        dirs = self._route_dirs.get(key)
        if dirs is None:
            route = self.topology.route(site, pool.line.site, down)
            if route is None:
                return None
            # the link directions there and back, shared by every pool at that site
            dirs = self._route_dirs[key] = (self._dirs(route), self._dirs(route.reverse()), route.latency_s)
        return Candidate(pool, dirs[0], dirs[1], dirs[2])

    def _build_routes(self) -> None:
        if self.scenario.deployment is None:
            return  # training jobs only
        routing = self.scenario.deployment.routing
        pools_at: dict[str, dict[str, list[AnyPool]]] = {}  # service -> site -> its pools there
        for pool in self.pools:
            pools_at.setdefault(pool.line.service, {}).setdefault(pool.line.site, []).append(pool)
        for name, svc in self.scenario.services.items():
            for d_i, demand in enumerate(svc.demand):
                state = self.demands[(name, demand.site)]
                # the reachable pools nearest first, found and made as routing reaches them
                here = pools_at.get(name, {})
                cands = LazyCandidates(self.topology.by_latency(demand.site) if here else iter(()), here,
                                       partial(self._candidate, demand.site, down=frozenset()))
                router: Router | ByPrompt | None = None
                if any(p.line.prompt_tokens is not None for ps in here.values() for p in ps):
                    router = state.by_prompt = self._by_prompt(name, d_i, demand.site, here, routing)
                elif cands.at_least(1):
                    router = self._router(name, d_i, demand.site, cands, here, routing, f"routing/{name}/{d_i}")
                rng = stream(self.seed, f"arrivals/{name}/{d_i}")
                self.sources.append(Source(name, d_i, demand, state, router, rng))
                self._sources.append((arrival_chunks(demand, rng), state, router, state.in_bits))

    def _router(self, name: str, d_i: int, site: str, cands: LazyCandidates, here: dict[str, list[AnyPool]],
                routing: str, stream_name: str) -> Router:
        weights = {p.index: (p.line.weights or {}).get(site, 0.0)
                   for ps in here.values() for p in ps} if routing == "weighted" else {}
        uniforms = Uniforms(stream(self.seed, stream_name))
        router = Router(site, routing, cands, weights, uniforms, self._available, early_stop=not self.scenario.failures)
        self.routers.append(router)
        return router

    def _by_prompt(self, name: str, d_i: int, site: str, here: dict[str, list[AnyPool]], routing: str) -> ByPrompt:
        """One router per prompt-length interval over the pools that serve it (a stream of uniforms each)."""
        intervals = prompt_intervals(p.line for ps in here.values() for p in ps)
        routers: list[Router | None] = []
        for k, (lo, hi) in enumerate(intervals):
            serving = {s: kept for s, ps in here.items() if (kept := [p for p in ps if p.line.serves_prompt(lo, hi)])}
            cands = LazyCandidates(self.topology.by_latency(site) if serving else iter(()), serving,
                                   partial(self._candidate, site, down=frozenset()))
            routers.append(self._router(name, d_i, site, cands, serving, routing, f"routing/{name}/{d_i}/prompts-{lo}")
                           if cands.at_least(1) else None)
        return ByPrompt([lo for lo, _ in intervals], routers, routing)

    # --- the request's life ---------------------------------------------------------------

    def _schedule_next(self, src: list[Any]) -> None:
        """Schedule the demand line's next arrival. `src` is [the current list of arrival times'
        iterator, the line's lists of times (`arrival_chunks`), state, router, bits]."""
        t = next(src[0], None)
        if t is None:
            t = self._next_chunk(src)
        if t is None or t >= self.duration:
            return
        env = self.env
        now = env._now
        # `after(env, t - now if t > now else 0.0, self._arrive, src)` in line
        heappush(env._queue, (now + (t - now if t > now else 0.0), NORMAL, next(env._eid), Call(self.arrive, src)))
        self.events += 1

    @staticmethod
    def _next_chunk(src: list[Any]) -> float | None:
        """The first time of the line's next non-empty list of times, its iterator now `src[0]`;
        None when the line has no more arrivals."""
        for chunk in src[1]:
            if chunk:
                it = src[0] = iter(chunk)
                return next(it)
        return None

    def _arrive(self, ev: simpy.Event) -> None:
        src = ev._value
        _, _, state, router, in_bits = src
        now = self.env._now
        req = Request(now, state, now >= self.warmup)
        self.created += 1
        if req.counted:
            state.arrived += 1
            state.live += 1
        drawn = None
        if state.by_prompt is not None:  # an LLM service whose pools serve prompt-length ranges
            drawn = state.tokens()
            c = state.by_prompt.choose(drawn[0])
        else:
            c = router.choose() if router is not None else None
        if c is None:
            self._drop(req)  # no replica reachable
        else:
            c.pool.outstanding += 1
            req.pool = c.pool
            req.back = c.back
            if state.tokens is not None:
                prompt, output = drawn if drawn is not None else state.tokens()
                req.llm = Seq(req, prompt, output)
                self._send(req, c.there, prompt * state.token_bits, c.pool.enqueue)
            elif state.codec is not None and c.there:
                req.path = c.there  # compress first, then send the smaller payload
                env = self.env  # `after(env, state.compress_s, self._compressed, req)` in line
                heappush(env._queue, (now + state.compress_s, NORMAL, next(env._eid), Call(self._compressed, req)))
                self.events += 1
            elif c.there:
                self._send(req, c.there, in_bits, c.pool.enqueue)
            else:
                c.pool.enqueue(req)  # served where it is created: no link to cross
        # the line's next arrival (`_schedule_next` in line)
        t = next(src[0], None)
        if t is None:
            t = self._next_chunk(src)
        if t is not None and t < self.duration:
            env = self.env  # `after(env, t - now if t > now else 0.0, self._arrive, src)` in line
            heappush(env._queue, (now + (t - now if t > now else 0.0), NORMAL, next(env._eid), Call(self.arrive, src)))
            self.events += 1

    def _compressed(self, ev: simpy.Event) -> None:
        req = ev._value
        self._send(req, req.path, req.svc.wire_bits, self._decompress)

    def _decompress(self, req: Request) -> None:
        env = self.env  # `after(env, req.svc.decompress_s, self._decompressed, req)` in line
        heappush(env._queue, (env._now + req.svc.decompress_s, NORMAL, next(env._eid), Call(self._decompressed, req)))
        self.events += 1

    def _decompressed(self, ev: simpy.Event) -> None:
        req = ev._value
        req.pool.enqueue(req)

    def _send(self, req: Request, path: tuple[LinkDir, ...], bits: float, then: Callable[[Request], None]) -> None:
        if not path:
            then(req)
            return
        req.path, req.hop, req.bits, req.then = path, 0, bits, then
        path[0].transmit(req)

    def _hop_done(self, ev: simpy.Event) -> None:
        req = ev._value
        path, hop = req.path, req.hop
        if path[hop].epoch != req.epoch:
            self._lose(req)  # the link failed while the transfer was on it
            return
        hop += 1
        req.hop = hop
        if hop < len(path):
            path[hop].transmit(req)
        else:
            req.then(req)

    def _respond(self, req: Request) -> None:
        if req.back:
            self._send(req, req.back, req.svc.out_bits, self._complete)
        else:
            self._complete(req)  # served where it was created

    def _complete(self, req: Request) -> None:
        if req.counted:
            state = req.svc
            state.completed += 1
            state.live -= 1
            state.buf.append(self.env._now - req.created)  # the request's end-to-end latency
            if state.tokens is not None:
                self._tokens_done(state, req.llm)
            if len(state.buf) >= FLUSH:
                state.flush()

    def _tokens_done(self, state: DemandState, seq: Seq) -> None:
        """An LLM request is back whole: its time per output token, and whether it met both targets."""
        now = self.env._now
        ttft = seq.t_first_back - seq.req.created
        tpot = 0.0
        if seq.output > 1:
            tpot = (now - seq.t_first_back) / (seq.output - 1)
            state.tpot_buf.append(tpot)
        if ttft <= state.ttft_target and tpot <= state.tpot_target:
            state.met += 1
        state.prompt_tokens += seq.prompt
        state.output_tokens += seq.output

    # --- an LLM request's tokens ----------------------------------------------------------

    def _first_token(self, req: Request) -> None:
        """The replica sampled the request's first token: it goes back to the demand site at once."""
        msg = Request(req.created, req.svc, req.counted)
        msg.llm = req.llm
        self._send(msg, req.back, req.svc.token_bits, self._first_back)

    def _first_back(self, msg: Request) -> None:
        seq: Seq = msg.llm
        now = seq.t_first_back = self.env._now
        if msg.counted:
            msg.svc.ttft_buf.append(now - msg.created)  # the request's time to first token
        if seq.output == 1:
            self._complete(seq.req)  # its only token

    def _llm_done(self, req: Request) -> None:
        """The replica sampled the request's last token: the rest of the output goes back."""
        seq: Seq = req.llm
        if seq.output > 1 and not seq.lost:
            self._send(req, req.back, (seq.output - 1) * req.svc.token_bits, self._complete)

    def _preempted(self, req: Request) -> None:
        if req.counted:
            req.svc.preempted += 1

    def _drop(self, req: Request) -> None:
        if req.counted:
            req.svc.dropped += 1
            req.svc.live -= 1

    def _lose(self, req: Request) -> None:
        """A transfer was lost on a failed link: the request fails."""
        if req.svc is None:
            return  # a training job's transfer (`transfer`): the job stops on the link's failure
        seq = getattr(req, "llm", None)
        if seq is not None:  # an LLM request: its prompt, its first token or the rest of its output
            if seq.lost:
                return
            seq.lost = True
            if req.then != self._first_back and req.then != self._complete:
                req.pool.outstanding -= 1  # the prompt never reached its pool
            if req.counted:
                req.svc.failed += 1
                req.svc.live -= 1
            return
        if req.then != self._complete:  # a bound method is a new object on each access: compare with ==
            req.pool.outstanding -= 1  # it never reached its pool (forward transfer, maybe compressed)
        if req.counted:
            req.svc.failed += 1
            req.svc.live -= 1

    # --- failures -------------------------------------------------------------------------

    def _available(self, site: str, c: Candidate) -> Candidate | None:
        """`c` as it stands with the links now down: rerouted, or None when cut off."""
        if not self.down_links:
            return c
        key = (site, c.pool.index, self.down_links)
        if key not in self._candidates:
            self._candidates[key] = self._candidate(site, c.pool, self.down_links)
        return self._candidates[key]

    def _unit_state(self, delta: int) -> None:
        before = self.units_down
        self.units_down += delta
        if (before == 0) != (self.units_down == 0):
            for r in self.routers:
                r.degraded(self.units_down > 0)

    def replica_down(self, pool: Pool, replica: int) -> None:
        pool.fail(replica)
        self._unit_state(+1)

    def replica_up(self, pool: Pool, replica: int) -> None:
        pool.repair(replica)
        self._unit_state(-1)

    def link_down(self, i: int) -> None:
        a, b = self.scenario.links[i].between
        self.down_links = self.down_links | {i}
        self.link_down_since[i] = self.env.now
        if self.window.in_window(self.env.now):
            self.link_failures[i] += 1
        self._unit_state(+1)
        self.linkdirs[(i, a)].fail()
        self.linkdirs[(i, b)].fail()
        for job in self.jobs:
            job.link_down(i)

    def link_up(self, i: int) -> None:
        a, b = self.scenario.links[i].between
        self.down_links = self.down_links - {i}
        self.link_down_s[i] += self.window.overlap(self.link_down_since[i], self.env.now)
        self.linkdirs[(i, a)].repair()
        self.linkdirs[(i, b)].repair()
        self._unit_state(-1)
        for job in self.jobs:
            job.link_up(i)

    # --- running --------------------------------------------------------------------------

    def run(self, progress: bool = False) -> SimRecord:
        """Run to the end of the horizon (plus the drain) and return the record; `progress` draws a bar on stderr."""
        t0 = time.perf_counter()
        on_events = set(range(len(self._sources)))
        if self.parts:
            from lepton_sim.sim.fast import run_part

            for part in self.parts:
                if part.fast:
                    why = run_part(self, part)
                    if why is None:
                        on_events -= set(part.sources)
                    elif self.engine == "fast":
                        raise InputError(f"--engine fast cannot run this scenario exactly: {why} "
                                         "(use --engine auto to run that part on the event engine)")
                    else:
                        part.why.append(why)
        for i, (chunks, state, router, in_bits) in enumerate(self._sources):
            if i in on_events:
                self._schedule_next([iter(()), chunks, state, router, in_bits])
        for job in self.jobs:
            job.start()
        start_failures(self)
        until = self.duration + self.scenario.horizon.drain_s
        if progress:
            self._run_with_progress(until)
        else:
            run_until(self.env, until)
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
            d.close(end)
        for p in self.pools:
            p.close(end)
        for i in self.down_links:
            self.link_down_s[i] += self.window.overlap(self.link_down_since[i], end)
        services = {}
        for name, svc in self.scenario.services.items():
            by_site = {
                site: ServiceTally(d.arrived, d.completed, d.dropped, d.failed, d.live, d.summary, llm=d.llm_tally())
                for (n, site), d in self.demands.items() if n == name
            }
            total = LatencySummary(thresholds=_thresholds(svc))
            for t in by_site.values():
                total.merge(t.latency_s)
            services[name] = ServiceTally(
                *(sum(getattr(t, f) for t in by_site.values()) for f in ("arrived", "completed", "dropped", "failed", "in_flight")),
                total, by_site, llm=_merged_llm(svc, by_site.values()),
            )
        pools = [_pool_tally(p, self.scenario.services[p.line.service]) for p in self.pools]
        links = [
            LinkTally(id=link_id(self.scenario.links[i]), direction=d.id, link_index=i, busy_s=d.busy,
                      bytes=d.bytes, transfers=d.transfers, bins_busy_s=tuple(d.bins),
                      down_s=self.link_down_s[i], failures=self.link_failures[i])
            for (i, _), d in self.linkdirs.items()
        ]
        return SimRecord(
            scenario=self.scenario.name, seed=self.seed, duration_s=self.duration, warmup_s=self.warmup,
            end_s=end, bin_s=self.window.bin_w, services=services, pools=tuple(pools), links=tuple(links),
            events=self.events, created=self.created, wall_s=wall_s, engines=self._engines(),
            jobs=tuple(job.tally() for job in self.jobs),
        )

    def _engines(self) -> dict[str, str]:
        """Service -> "fast", or "event" with why the fast path did not run it."""
        if not self.parts:
            return {name: "event" for name in self.scenario.services}
        out = {}
        for part in self.parts:
            for name in sorted(part.services):
                out[name] = "fast" if part.fast else "event: " + "; ".join(part.why)
        for name in self.scenario.services:
            out.setdefault(name, "event")
        return out


def _merged_llm(svc: Service, sites: Any) -> LLMServiceTally | None:
    """An LLM service's tallies over all its demand sites."""
    parts = [t.llm for t in sites if t.llm is not None]
    if not parts:
        return None
    ttft = LatencySummary(thresholds=[svc.slo.ttft.latency_ms / 1e3])  # type: ignore[union-attr]
    tpot = LatencySummary(thresholds=[svc.slo.tpot.latency_ms / 1e3])  # type: ignore[union-attr]
    for t in parts:
        ttft.merge(t.ttft_s)
        tpot.merge(t.tpot_s)
    return LLMServiceTally(ttft, tpot, *(sum(getattr(t, f) for t in parts)
                                         for f in ("met", "prompt_tokens", "output_tokens", "preempted")))


def _pool_tally(p: AnyPool, svc: Service) -> PoolTally:
    common = dict(id=p.id, line=p.line, busy_s=tuple(p.busy), down_s=tuple(p.down_s), bins_busy_s=tuple(p.bins),
                  batches=p.batches, batched=p.batched, failures=p.failures, retried=p.retried)
    if isinstance(p, LLMPool):
        m = p.model
        llm = LLMPoolTally(
            tensor_parallel=p.line.tensor_parallel, kv_blocks=p.total_blocks, block_tokens=p.block_tokens,
            batch_tokens=p.batch_tokens, running_s=p.running_s, kv_block_s=p.kv_block_s, kv_blocks_peak=p.kv_peak, preempted=p.preempted,
            output_tokens=p.output_tokens, finished=p.finished, too_long=p.too_long, bins_running_s=tuple(p.run_bins),
            bins_kv_block_s=tuple(p.kv_bins), bins_output_tokens=tuple(p.tok_bins))
        return PoolTally(**common, compute_source=m.source, compute_detail=m.detail, compute_basis=m.basis, llm=llm)
    if p.batch_times is None:
        return PoolTally(**common, compute_source="service_time override", compute_detail=_override_detail(svc),
                         compute_basis="the service's service_time override (no hardware model)")
    return PoolTally(**common, compute_source=p.batch_times.source, compute_detail=p.batch_times.detail,
                     compute_basis=p.batch_times.basis)


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


def simulate(scenario: Scenario, seed: int | None = None, batch_times_fn: BatchTimesFn = batch_times,
             engine: str = "auto") -> SimRecord:
    """Run one simulation of `scenario` (with `seed`, default the scenario's) and return its record."""
    return Simulation(scenario, seed, batch_times_fn, engine).run()

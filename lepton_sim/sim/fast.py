"""The exact fast path: parts of a scenario computed station by station, with the event engine's
metrics to the last bit.

A *part* is a set of demand lines, link directions and pools that shares none of them with the
rest of the scenario (`split`). A part runs here, not on the event engine, when nothing in it
depends on the state of another station, so that each station's arrivals are known before the
station runs:

- the scenario has no failures;
- its services are not LLM services (continuous batching couples requests token by token);
- every demand line routes without looking at the pools (`Router.fixed`: one candidate, or
  weighted routing, one uniform draw per request as the engine draws it);
- its link directions are FIFO (fair sharing couples the transfers in flight);
- its stations form no cycle (a link direction that carries one service's requests and the
  responses of a pool those requests reach, say);
- no training job's gradients cross its link directions;
- no pool draws its batch times from measured samples (`BatchTimes.samples_s`: which list a batch
  draws from depends on its replica's idle time).

Simulated time is cut into chunks of about `CHUNK_REQUESTS` requests. In each chunk the stations
run in topological order, each on what reaches it before the chunk's end (the rest waits for the
next chunk; a station's outputs never precede its inputs, so nothing comes back), and each keeps
its state across chunk ends (a link direction's free time; a pool's queue, batches in service and
pending events). Memory is then that of one chunk, whatever the horizon. A demand line
creates its requests and routes them; a FIFO link direction is Lindley's recursion (start at the
later of the arrival and the end of the last transfer, serialise, propagate); a pool is its own
event loop (`_pool_run`: the dispatch rule of `pools.Pool` with its `max_wait_ms` timers, its
replicas taken in the order they came free, its service-time draws in dispatch order), the
c-server FIFO queue recursion of Kiefer and Wolfowitz extended to batches. Each computes every time
with the float operations the engine uses (`now + (end + prop - now)` where the engine schedules
that), and fills the same tallies (`LinkDir.busy`, `Pool.bins`, `DemandState.summary`, ...) in the
same order, so `Simulation._record` and `lepton_sim.metrics` cannot tell which engine ran; it also
counts the events the engine would have scheduled.

Ties. The engine orders events at one instant by when they were scheduled. Within one station's
output that is the station's own order, which is kept (a batch's responses leave in batch order).
Two arrivals at one instant from different stations, or an arrival at a pool at the instant of one
of the pool's own events, would need the order of the whole run: the part then goes back to the
event engine (`run_part` returns why), which is what `--engine auto` does with it.

The loops are compiled with Numba on first use (cached on disk), like `lepton_sim.poolsim`.
"""
from __future__ import annotations

import copy
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lepton_sim.sim.arrivals import arrival_blocks
from lepton_sim.sim.common import EPS_S, TIME_BINS
from lepton_sim.sim.engine import FLUSH  # the latencies per summary fold: the sums then add in the engine's order
from lepton_sim.sim.links import FairLinkDir, LinkDir
from lepton_sim.servicetime.roofline import idle_factor_at
from lepton_sim.sim.pools import Pool

if TYPE_CHECKING:
    from lepton_sim.sim.engine import DemandState, Simulation, Source
    from lepton_sim.sim.routing import Candidate



@dataclass
class Part:
    """Demand lines with every link direction and pool their requests can reach, closed under sharing."""

    sources: list[int] = field(default_factory=list)  # indices into `Simulation.sources`
    services: set[str] = field(default_factory=set)
    why: list[str] = field(default_factory=list)  # why the event engine runs it; empty: the fast path may
    # source index -> where its requests go (`Router.fixed`, read once when the part is made)
    fixed: dict[int, tuple[list[Candidate], list[float]]] = field(default_factory=dict)

    @property
    def fast(self) -> bool:
        return not self.why


class _Union:
    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def find(self, x: Any) -> Any:
        p = self.parent.setdefault(x, x)
        while p != self.parent[p]:
            self.parent[p] = self.parent[self.parent[p]]
            p = self.parent[p]
        self.parent[x] = p
        return p

    def join(self, a: Any, b: Any) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb


def split(sim: Simulation) -> list[Part]:
    """The scenario's parts and, for each that the fast path cannot run, why (module docstring)."""
    scenario = sim.scenario
    u = _Union()
    why: dict[int, list[str]] = defaultdict(list)  # source index -> reasons
    fixed_of: dict[int, tuple[list[Candidate], list[float]]] = {}
    site_group = _Union()  # sites joined by links: what a request routed by load may cross
    for link in scenario.links:
        site_group.join(*link.between)
    dirs_of_group: dict[Any, list[LinkDir]] = defaultdict(list)
    for (i, a), d in sim.linkdirs.items():
        dirs_of_group[site_group.find(a)].append(d)
    job_dirs = {id(d): job.name for job in sim.jobs for d in job.dirs}
    pools_of: dict[str, list[Any]] = defaultdict(list)
    for p in sim.pools:
        pools_of[p.line.service].append(p)
    for k, src in enumerate(sim.sources):
        node = ("source", k)
        u.join(node, ("state", id(src.state)))
        if src.state.tokens is not None:
            why[k].append(f"{src.service} is an LLM service, batched token by token")
        router = src.router
        if router is None:
            fixed_of[k] = ([], [])  # every request is dropped: nothing to reach
            continue
        fixed = router.fixed()
        if fixed is None:
            why[k].append(f"{router.policy} routing of {src.service} reads the pools' state")
            # it may reach any pool of its service over any link joined to its site: one token each,
            # joined to those below once (a fleet has thousands of such lines)
            u.join(node, ("service", src.service))
            u.join(node, ("group", site_group.find(src.state.site)))
            continue
        fixed_of[k] = fixed
        for c in fixed[0]:
            u.join(node, ("pool", c.pool.index))
            for d in (*c.there, *c.back):
                u.join(node, ("dir", id(d)))
                if isinstance(d, FairLinkDir):
                    why[k].append(f"link direction {d.id} shares its bandwidth fairly")
                if id(d) in job_dirs:
                    why[k].append(f"link direction {d.id} also carries training job {job_dirs[id(d)]}'s gradients")
            if not isinstance(c.pool, Pool):
                why[k].append(f"{src.service} is an LLM service, batched token by token")
            elif c.pool.drawn is not None:
                why[k].append(f"pool {c.pool.id} draws its batch times from measured samples")
    for name, pools in pools_of.items():
        if ("service", name) in u.parent:
            for p in pools:
                u.join(("service", name), ("pool", p.index))
    for group, dirs in dirs_of_group.items():
        if ("group", group) in u.parent:
            for d in dirs:
                u.join(("group", group), ("dir", id(d)))
    if scenario.failures:
        for k in range(len(sim.sources)):
            why[k].append("the scenario has failures")
    groups: dict[Any, Part] = {}
    for k, src in enumerate(sim.sources):
        part = groups.setdefault(u.find(("source", k)), Part())
        part.sources.append(k)
        part.services.add(src.service)
        if k in fixed_of:
            part.fixed[k] = fixed_of[k]
        for w in why.get(k, ()):
            if w not in part.why:
                part.why.append(w)
    parts = list(groups.values())
    for part in parts:
        if part.fast and _routes(sim, part)[1] is None:
            part.why.append("its stations form a cycle (a link direction carries requests to a pool and "
                            "responses that depend on it)")
    return parts


@dataclass
class _Route:
    source: int
    pool: Pool
    stations: list[Any]  # link directions there, the pool, link directions back, then the demand state
    bits: list[float]  # per link direction in `stations` (there: request bits; back: response bits)
    codec: bool  # compressed before the first hop, decompressed at the pool


def _routes(sim: Simulation, part: Part) -> tuple[list[list[tuple[_Route, ...]]], list[Any] | None]:
    """The routes of each source of `part` (aligned with `Router.fixed`'s candidates) and the part's
    stations in topological order, None when they form a cycle."""
    out: list[list[tuple[_Route, ...]]] = []
    succ: dict[int, set[int]] = defaultdict(set)
    nodes: dict[int, Any] = {}
    for k in part.sources:
        src = sim.sources[k]
        state = src.state
        rs = []
        for c in part.fixed[k][0]:
            codec = state.codec is not None and bool(c.there)
            there_bits = state.wire_bits if codec else state.in_bits
            stations = [*c.there, c.pool, *c.back, state]
            bits = [there_bits] * len(c.there) + [0.0] + [state.out_bits] * len(c.back)
            rs.append(_Route(k, c.pool, stations, bits, codec))
            for a, b in zip(stations, stations[1:]):
                nodes[id(a)], nodes[id(b)] = a, b
                succ[id(a)].add(id(b))
        out.append(rs)
    indeg = {n: 0 for n in nodes}
    for a, bs in succ.items():
        for b in bs:
            indeg[b] += 1
    ready = [n for n, d in indeg.items() if d == 0]
    order = []
    while ready:
        n = ready.pop()
        order.append(nodes[n])
        for b in succ.get(n, ()):
            indeg[b] -= 1
            if indeg[b] == 0:
                ready.append(b)
    return out, (order if len(order) == len(nodes) else None)


class Tie(Exception):
    """Two events at one instant whose order only the whole run decides."""


def run_part(sim: Simulation, part: Part) -> str | None:
    """Run `part` on the fast path and put its tallies where the engine keeps them; None on success,
    else why the event engine must run it instead (nothing is then written)."""
    try:
        result = _compute(sim, part)
    except Tie as tie:
        return str(tie)
    _commit(sim, result)
    return None


# Requests per chunk of simulated time: each station runs on a chunk's arrivals at a time and keeps
# its state between chunks, so memory stays that of one chunk whatever the horizon.
CHUNK_REQUESTS = 1 << 18


@dataclass(frozen=True)
class _Win:
    start: float
    end: float
    bin_w: float


class _Flow:
    """Requests on their way to one station: time there, creation time, route (index into the
    part's routes) and which station sent them (negative: a demand line), in the order they came."""

    __slots__ = ("t", "created", "route", "up")

    def __init__(self, t: np.ndarray, created: np.ndarray, route: np.ndarray, up: np.ndarray) -> None:
        self.t, self.created, self.route, self.up = t, created, route, up

    @staticmethod
    def empty() -> _Flow:
        return _Flow(np.zeros(0), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))

    def take(self, sel: Any) -> _Flow:
        return _Flow(self.t[sel], self.created[sel], self.route[sel], self.up[sel])

    def __len__(self) -> int:
        return len(self.t)


def _cat(flows: list[_Flow]) -> _Flow:
    if len(flows) == 1:
        return flows[0]
    return _Flow(*(np.concatenate([getattr(f, k) for f in flows]) for k in _Flow.__slots__))


class _SourceRun:
    """A demand line's fire times, computed a block at a time and handed out a chunk at a time."""

    def __init__(self, src: Source, duration: float, until: float) -> None:
        self.blocks = arrival_blocks(src.demand, src.rng)
        self.duration, self.until = duration, until
        self.now = np.zeros(1)  # the engine's clock at the last arrival it fired
        self.ready = np.zeros(0)  # fire times computed and not yet handed out (below `until`)
        self.done = False  # the engine stops drawing: a time at or past `duration`, or a fire at `until`
        self.scheduled = 0  # arrival events the engine schedules

    def before(self, T: float, k_: dict[str, Any]) -> np.ndarray:
        parts = [self.ready]
        last = self.ready[-1] if len(self.ready) else -np.inf
        while not self.done and last < T:
            block = next(self.blocks, None)
            if block is None:
                self.done = True
                break
            past = np.flatnonzero(block >= self.duration)
            if len(past):
                block = block[: past[0]]
                self.done = True
            a, n, stopped = k_["source"](np.ascontiguousarray(block, dtype=np.float64), self.until, self.now)
            self.scheduled += n
            if stopped:
                self.done = True
            a = a[a < self.until]
            if len(a):
                parts.append(a)
                last = a[-1]
        if len(parts) > 1:
            self.ready = np.concatenate(parts)
        cut = int(np.searchsorted(self.ready, T, side="left"))
        out, self.ready = self.ready[:cut], self.ready[cut:]
        return out


class _LinkRun:
    """A FIFO link direction's state between chunks (`_link_run`)."""

    def __init__(self, d: LinkDir) -> None:
        self.d = d
        self.acc = np.zeros(3)  # free_at, busy seconds, bytes
        self.transfers = np.zeros(1, np.int64)
        self.bins = np.zeros(TIME_BINS)


class _PoolRun:
    """A pool's state between chunks (`_pool_run`): its replicas, its own pending events, the
    requests in service and queued (carried as the first items of the next chunk)."""

    def __init__(self, pool: Pool) -> None:
        n = pool.line.count
        self.pool = pool
        self.free = np.arange(n, dtype=np.int64)
        self.last_end = np.full(n, -np.inf)
        self.busy = np.zeros(n)
        self.bins = np.zeros(TIME_BINS)
        self.heap_t, self.heap_s, self.heap_k = np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64)
        self.run_start = np.zeros(n, np.int64)
        self.run_size = np.zeros(n, np.int64)
        self.ist = np.zeros(8, np.int64)  # free head, free count, heap size, sequence, draws used, batches, batched, events
        self.ist[1] = n
        self.timer_due = np.full(1, -1.0)
        self.carry = _Flow.empty()  # in service (replica by replica), then queued
        self.n_running = 0
        self.draws = np.zeros(0)  # service-time draws taken and not yet used
        use = pool.draw is not None
        self.use_draws = use
        self.times = np.asarray(pool.times if pool.times is not None else [0.0], dtype=np.float64)
        idle = pool.idle.after_idle if pool.idle is not None else None
        self.has_idle = idle is not None
        self.gaps = np.asarray(idle[0] if idle else [1.0], dtype=np.float64)
        self.factors = np.asarray(idle[1] if idle else [[1.0]], dtype=np.float64)
        self.max_queue = -1 if pool.max_queue is None else int(pool.max_queue)


@dataclass
class _Result:
    created: int = 0
    events: int = 0
    states: dict[int, Any] = field(default_factory=dict)  # id -> [state, arrived, dropped, completed, summary, pending]
    pools: list[_PoolRun] = field(default_factory=list)
    dirs: list[_LinkRun] = field(default_factory=list)


def _compute(sim: Simulation, part: Part) -> _Result:
    """The part's tallies, chunk by chunk of simulated time: in each, the demand lines' requests
    created before the chunk's end, then every station in flow order on what reaches it before the
    chunk's end (what reaches it later waits for the next chunk)."""
    from lepton_sim.scenario.rates import mean_rate

    k_ = _kernels()
    routes, order = _routes(sim, part)
    assert order is not None
    # Scalars go to the compiled loops as floats (a horizon given in whole seconds is an int, and
    # each argument type is a compilation of its own); int-float arithmetic is exact either way.
    until = float(sim.duration + sim.scenario.horizon.drain_s)
    win = _Win(float(sim.window.start), float(sim.window.end), float(sim.window.bin_w))
    res = _Result()
    flat: list[_Route] = [r for rs in routes for r in rs]
    first = np.zeros(len(part.sources) + 1, np.int64)  # each source's routes in `flat` start here
    for j, rs in enumerate(routes):
        first[j + 1] = first[j] + len(rs)
    # per station: for each route through it, the next station and the bits it carries there
    nxt: dict[int, np.ndarray] = {}
    bits_at: dict[int, np.ndarray] = {}
    decomp_at: dict[int, np.ndarray] = {}
    for ri, r in enumerate(flat):
        for pos, st in enumerate(r.stations[:-1]):
            key = id(st)
            if key not in nxt:
                nxt[key] = np.full(len(flat), -1, dtype=np.int64)
                bits_at[key] = np.zeros(len(flat))
                decomp_at[key] = np.full(len(flat), -1.0)
            nxt[key][ri] = id(r.stations[pos + 1])
            bits_at[key][ri] = r.bits[pos]
            if r.codec and r.stations[pos + 1] is r.pool:
                decomp_at[key][ri] = sim.sources[r.source].state.decompress_s
    runs: dict[int, Any] = {}
    for st in order:
        if isinstance(st, LinkDir):
            runs[id(st)] = _LinkRun(st)
            res.dirs.append(runs[id(st)])
        elif isinstance(st, Pool):
            runs[id(st)] = _PoolRun(st)
            res.pools.append(runs[id(st)])
    for k in part.sources:
        state = sim.sources[k].state
        if id(state) not in res.states:
            res.states[id(state)] = [state, 0, 0, 0, copy.deepcopy(state.summary), []]
    sources = [_SourceRun(sim.sources[k], sim.duration, until) for k in part.sources]
    rate = sum(mean_rate(sim.sources[k].demand) for k in part.sources)
    chunk_s = CHUNK_REQUESTS / rate if rate > 0 else until
    waiting: dict[int, list[_Flow]] = defaultdict(list)
    T = 0.0
    while T < until:
        nxt_T = min(until, T + chunk_s)
        T = until if nxt_T <= T or until - nxt_T < 1e-9 * until else nxt_T
        for j, (k, run) in enumerate(zip(part.sources, sources)):
            _start(sim, k, run.before(T, k_), routes[j], int(first[j]), part, res, waiting)
        for st in order:
            key = id(st)
            flow = _merge(waiting.pop(key, []), st, T, waiting, key)
            if isinstance(st, LinkDir):
                run = runs[key]
                out = k_["link"](flow.t, bits_at[key][flow.route], float(st.bps), float(st.prop), win.start,
                                 win.end, win.bin_w, TIME_BINS, run.acc, run.transfers, run.bins)
                res.events += len(flow)
                d = decomp_at[key][flow.route]
                has = d >= 0.0
                if has.any():  # decompressed at the pool: an event when the transfer is in, then the pool
                    res.events += int((has & (out < until)).sum())
                    out = np.where(has, out + np.where(has, d, 0.0), out)
                _emit(waiting, key, nxt[key][flow.route], _Flow(out, flow.created, flow.route, flow.up))
            elif isinstance(st, Pool):
                out, dropped = _run_pool(k_, runs[key], flow, T, win)
                for ri in np.unique(dropped.route) if len(dropped) else ():
                    entry = res.states[id(sim.sources[flat[ri].source].state)]
                    entry[2] += int((dropped.created[dropped.route == ri] >= sim.warmup).sum())
                _emit(waiting, key, nxt[key][out.route], out)
            else:  # a demand state: the responses are back
                entry = res.states[key]
                counted = flow.created >= sim.warmup
                lat = flow.t[counted] - flow.created[counted]
                entry[3] += len(lat)
                _fold(entry, lat)
    res.events += sum(run.scheduled for run in sources)
    return res


def _start(sim: Simulation, k: int, fired: np.ndarray, rs: list[_Route], r0: int, part: Part, res: _Result,
           waiting: dict[int, list[_Flow]]) -> None:
    """A demand line's requests created in this chunk: counted, routed (one uniform draw each where
    the engine draws one), compressed where the engine compresses them, and sent to their first station."""
    src = sim.sources[k]
    state = src.state
    entry = res.states[id(state)]
    n = len(fired)
    res.created += n
    counted = int((fired >= sim.warmup).sum())
    entry[1] += counted
    if not n:
        return
    if not rs:  # no pool reachable: every request is dropped where it is created
        entry[2] += counted
        return
    if len(rs) == 1:
        pick = np.zeros(n, dtype=np.int64)
    else:
        cum = np.asarray(part.fixed[k][1], dtype=np.float64)
        u = src.router.uniforms.take(n) * cum[-1]  # type: ignore[union-attr]
        pick = np.minimum(np.searchsorted(cum, u, side="right"), len(rs) - 1)
    for j, r in enumerate(rs):
        sel = pick == j if len(rs) > 1 else slice(None)
        t = fired[sel]
        if not len(t):
            continue
        created = t
        if r.codec:
            res.events += len(t)  # the compression's event, scheduled at creation
            t = t + state.compress_s
        waiting[id(r.stations[0])].append(_Flow(t, created, np.full(len(t), r0 + j, np.int64),
                                                np.full(len(t), -1 - k, np.int64)))


def _fold(entry: list[Any], lat: np.ndarray) -> None:
    """Latencies into the state's summary FLUSH at a time, as the engine folds its buffer in."""
    pending = entry[5]
    if len(lat):
        pending.append(lat)
    total = sum(len(x) for x in pending)
    if total < FLUSH:
        return
    allv = np.concatenate(pending)
    whole = (len(allv) // FLUSH) * FLUSH
    for i in range(0, whole, FLUSH):
        entry[4].add_many(allv[i:i + FLUSH])
    entry[5] = [allv[whole:]] if whole < len(allv) else []


def _merge(items: list[_Flow], st: Any, T: float, waiting: dict[int, list[_Flow]], key: int) -> _Flow:
    """A station's arrivals before `T` in the order the engine takes them: by time, and at one
    instant in the order the one station that sent them sent them (`Tie` when two stations did).
    Those at or after `T` wait for the next chunk."""
    if not items:
        return _Flow.empty()
    f = _cat(items)
    t = f.t
    if len(t) > 1 and not bool(np.all(t[1:] >= t[:-1])):
        f = f.take(np.argsort(t, kind="stable"))
        t = f.t
    if len(t) > 1:  # (what waited from the last chunk may have come from several stations)
        same = t[1:] == t[:-1]
        if same.any():
            up = f.up
            clash = same & (up[1:] != up[:-1])
            if clash.any():
                i = int(np.flatnonzero(clash)[0])
                raise Tie(f"two requests reach {_name(st)} at the same instant ({t[i]:.9g} s) from different places")
    cut = int(np.searchsorted(t, T, side="left"))
    if cut < len(t):
        waiting[key].append(f.take(slice(cut, None)))
        f = f.take(slice(0, cut))
    return f


def _name(st: Any) -> str:
    if isinstance(st, LinkDir):
        return f"link direction {st.id}"
    if isinstance(st, Pool):
        return f"pool {st.id}"
    return f"demand site {st.site} of {st.service}"


def _emit(waiting: dict[int, list[_Flow]], key: int, to: np.ndarray, f: _Flow) -> None:
    """Hand a station's output (in its own order) to the next station of each request's route."""
    if not len(f):
        return
    f.up = np.full(len(f), key, np.int64)
    first = to[0]
    if bool(np.all(to == first)):
        waiting[int(first)].append(f)
        return
    for nxt_key in np.unique(to):
        waiting[int(nxt_key)].append(f.take(to == nxt_key))


def _run_pool(k_: dict[str, Any], run: _PoolRun, flow: _Flow, T: float, win: _Win) -> tuple[_Flow, _Flow]:
    """One chunk of the pool: what it served (in the order it sent them back) and what it dropped;
    what is still in service or queued is carried to the next chunk."""
    pool = run.pool
    items = _cat([run.carry, flow]) if len(run.carry) else flow
    ncarry = len(run.carry)
    m = len(items)
    n = pool.line.count
    if run.use_draws:
        new = pool.draw.take(len(flow))  # type: ignore[union-attr]
        run.draws = np.concatenate([run.draws, new]) if len(run.draws) else new
    draws = run.draws if run.use_draws else np.zeros(1)
    need = int(run.ist[2]) + 2 * m + n + 2  # pending: a batch end per replica, fill timers
    if len(run.heap_t) < need:
        grow = max(need, 2 * len(run.heap_t))
        for name, dt in (("heap_t", np.float64), ("heap_s", np.int64), ("heap_k", np.int64)):
            old = getattr(run, name)
            arr = np.zeros(grow, dt)
            arr[: len(old)] = old
            setattr(run, name, arr)
    run.ist[4] = 0
    out = k_["pool"](items.t, ncarry, run.n_running, T, n, int(pool.max_batch), float(pool.max_wait),
                     run.max_queue, run.times, run.use_draws, draws, run.has_idle, run.gaps, run.factors,
                     win.start, win.end, win.bin_w, TIME_BINS, EPS_S, run.free, run.last_end, run.busy, run.bins,
                     run.heap_t, run.heap_s, run.heap_k, run.run_start, run.run_size, run.ist, run.timer_due)
    done, status, emit, n_emit, E, qh, qt, tie = out
    if tie >= 0.0:
        raise Tie(f"a request reaches pool {pool.id} at the instant of one of its own events ({tie:.9g} s)")
    if run.use_draws:
        run.draws = run.draws[int(run.ist[4]):]
    emit = emit[:n_emit]
    served = items.take(emit)
    served.t = done[emit]
    dropped = items.take(status == 2)
    # carried: the batches in service, replica by replica, then the queue
    fh, fc = int(run.ist[0]), int(run.ist[1])
    idle = {int(run.free[(fh + j) % n]) for j in range(fc)}
    keep = []
    start = 0
    for r in range(n):
        if r in idle:
            continue
        size = int(run.run_size[r])
        keep.append(E[int(run.run_start[r]): int(run.run_start[r]) + size])
        run.run_start[r] = start
        start += size
    run.n_running = start
    keep.append(E[qh:qt])
    run.carry = items.take(np.concatenate(keep)) if start or qt > qh else _Flow.empty()
    return served, dropped


def _commit(sim: Simulation, res: _Result) -> None:
    """Put the part's tallies where the engine's own would be."""
    sim.created += res.created
    sim.events += res.events
    for run in res.pools:
        st = run.pool
        st.busy = [b0 + b for b0, b in zip(st.busy, run.busy.tolist())]
        st.bins = [b0 + b for b0, b in zip(st.bins, run.bins.tolist())]
        st.batches += int(run.ist[5])
        st.batched += int(run.ist[6])
        sim.events += int(run.ist[7])
    for run in res.dirs:
        d = run.d
        d.busy += float(run.acc[1])
        d.bytes += float(run.acc[2])
        d.transfers += int(run.transfers[0])
        d.bins = [b0 + b for b0, b in zip(d.bins, run.bins.tolist())]
    for state, arrived, dropped, completed, summary, pending in res.states.values():
        for lat in pending:
            summary.add_many(lat)
        state.summary = summary
        state.arrived += arrived
        state.dropped += dropped
        state.completed += completed
        state.live += arrived - dropped - completed


# --- the compiled loops ---------------------------------------------------------------------

_JIT: dict[str, Any] = {}


def _kernels() -> dict[str, Any]:
    if not _JIT:
        import numba

        jit = numba.njit(cache=True, nogil=True)
        g = globals()
        for name in ("_overlap", "_add_bins", "_heap_push"):
            g[name] = numba.njit(cache=True, nogil=True, inline="always")(g[name])
        g["_idle_factor"] = numba.njit(cache=True, nogil=True, inline="always")(idle_factor_at)
        _JIT["source"] = jit(_source_run)
        _JIT["link"] = jit(_link_run)
        _JIT["pool"] = jit(_pool_run)
    return _JIT


def _overlap(s, e, w_start, w_end):  # pragma: no cover - compiled; `Window.overlap`
    lo = s if s > w_start else w_start
    hi = e if e < w_end else w_end
    return hi - lo if hi > lo else 0.0


def _add_bins(bins, s, e, w, nbins):  # pragma: no cover - compiled; `Window.add_bins`
    i = int(s / w)
    while i < nbins and s < e:
        edge = (i + 1) * w
        seg_end = e if e < edge else edge
        bins[i] += seg_end - s
        s = seg_end
        i += 1


_idle_factor = idle_factor_at  # `BatchTimes.idle_factor`'s arithmetic; `_kernels` puts the compiled one here


def _heap_push(ht, hs, hk, hn, t, seq, kind):  # pragma: no cover - compiled
    """Push (t, seq, kind) on the binary heap of the pool's own events ordered by (time, sequence);
    returns the heap's new size."""
    j = hn
    while j > 0:
        p = (j - 1) // 2
        if ht[p] < t or (ht[p] == t and hs[p] < seq):
            break
        ht[j], hs[j], hk[j] = ht[p], hs[p], hk[p]
        j = p
    ht[j], hs[j], hk[j] = t, seq, kind
    return hn + 1


def _source_run(t, until, now_at):  # pragma: no cover - compiled
    """The times the engine's arrival events fire at (`Simulation._schedule_next` schedules each at
    `now + (t - now)` when the last fires; `now_at[0]` carries the clock between blocks), how many it
    schedules, and whether it stops here (after one at `until`)."""
    a = np.empty(len(t))
    now = now_at[0]
    n = 0
    stopped = False
    for k in range(len(t)):
        tk = t[k]
        ak = now + (tk - now if tk > now else 0.0)
        a[k] = ak
        n = k + 1
        if ak >= until:
            stopped = True
            break
        now = ak
    now_at[0] = now
    return a[:n], n, stopped


def _link_run(t, bits, bps, prop, w_start, w_end, bin_w, nbins, acc, transfers, bins):  # pragma: no cover - compiled; `LinkDir.transmit`
    """One chunk of a FIFO link direction: when each transfer reaches the far end. `acc` (free at,
    busy seconds, bytes), `transfers` and `bins` carry its tallies from chunk to chunk."""
    out = np.empty(len(t))
    free_at = acc[0]
    busy = acc[1]
    nbytes = acc[2]
    tr = transfers[0]
    for k in range(len(t)):
        now = t[k]
        start = free_at
        if start < now:
            start = now
        end = start + bits[k] / bps
        free_at = end
        if w_start <= start < w_end:
            nbytes += bits[k] / 8
            tr += 1
        busy += _overlap(start, end, w_start, w_end)
        _add_bins(bins, start, end, bin_w, nbins)
        out[k] = now + (end + prop - now)
    acc[0] = free_at
    acc[1] = busy
    acc[2] = nbytes
    transfers[0] = tr
    return out


def _pool_run(arr, ncarry, nrun, stop, n, B, w, max_queue, times, use_draws, draws, has_idle, gaps, factors,
              w_start, w_end, bin_w, nbins, eps, free, last_end, busy, bins, ht, hs, hk, run_start, run_size,
              ist, tdue):  # pragma: no cover - compiled; `pools.Pool`
    """One chunk of `pools.Pool`, up to `stop`: its items `arr` are arrival times, the first `ncarry`
    carried from the last chunk (`nrun` of them in service, at `run_start`/`run_size` per replica,
    then the queue), the rest arriving now (sorted). Returns when each left, which were dropped, the
    order they left in, and the queue (`E[qh:qt]`) and batches in service (`E[run_start[r]:...]`)
    left at `stop`. The pool's own events (batch ends, fill timers) are a binary heap ordered by
    (time, the order it scheduled them), as SimPy's queue orders them, carried in `ht`/`hs`/`hk`
    with the replicas' state and tallies (`free`, `last_end`, `busy`, `bins`, `ist`, `tdue`);
    `tie` is the first instant an arrival meets one of them (-1 when none does)."""
    m = len(arr)
    done = np.full(m, np.nan)
    status = np.zeros(m, np.int8)  # 1 served, 2 dropped (queue full), 0 still there at `stop`
    emit = np.empty(m, np.int64)
    ne = 0
    E = np.empty(m, np.int64)  # the items in the order they joined the queue
    for j in range(ncarry):
        E[j] = j
    qh = nrun
    qt = ncarry
    fh = ist[0]
    fc = ist[1]
    hn = ist[2]
    seq = ist[3]
    kd = ist[4]
    batches = ist[5]
    batched = ist[6]
    events = ist[7]
    timer_due = tdue[0]
    tie = -1.0
    i = ncarry
    inf = np.inf
    while True:
        ta = arr[i] if i < m else inf
        th = ht[0] if hn > 0 else inf
        if ta == th:
            if ta < stop:
                tie = ta
            break
        if ta < th:
            if ta >= stop:
                break
            now = ta
            if max_queue >= 0 and qt - qh >= max_queue:
                status[i] = 2
                i += 1
                continue
            E[qt] = i
            qt += 1
            i += 1
            if fc == 0:
                continue
        else:
            if th >= stop:
                break
            now = th
            kind = hk[0]
            # pop the heap's root
            hn -= 1
            if hn > 0:
                lt, ls, lk = ht[hn], hs[hn], hk[hn]
                j = 0
                while True:
                    c = 2 * j + 1
                    if c >= hn:
                        break
                    if c + 1 < hn and (ht[c + 1] < ht[c] or (ht[c + 1] == ht[c] and hs[c + 1] < hs[c])):
                        c += 1
                    if ht[c] > lt or (ht[c] == lt and hs[c] > ls):
                        break
                    ht[j], hs[j], hk[j] = ht[c], hs[c], hk[c]
                    j = c
                ht[j], hs[j], hk[j] = lt, ls, lk
            if kind < 0:
                timer_due = -1.0
            else:
                r = kind
                for j in range(run_start[r], run_start[r] + run_size[r]):
                    e = E[j]
                    done[e] = now
                    status[e] = 1
                    emit[ne] = e
                    ne += 1
                last_end[r] = now
                free[(fh + fc) % n] = r
                fc += 1
                if qt == qh:
                    continue
        # `Pool._dispatch` at `now`
        while fc > 0 and qt > qh:
            nq = qt - qh
            if nq < B and w > 0.0:
                due = arr[E[qh]] + w
                if now < due - eps:
                    if timer_due != due:
                        timer_due = due
                        hn = _heap_push(ht, hs, hk, hn, now + (due - now), seq, -1)
                        seq += 1
                        events += 1
                    break
            b = nq if nq < B else B
            r = free[fh]
            fh = (fh + 1) % n
            fc -= 1
            if use_draws:
                dt = draws[kd]
                kd += 1
            else:
                dt = times[b - 1]
            if has_idle:
                dt *= _idle_factor(b, now - last_end[r], gaps, factors)
            end = now + dt
            busy[r] += _overlap(now, end, w_start, w_end)
            _add_bins(bins, now, end, bin_w, nbins)
            if w_start <= now < w_end:
                batches += 1
                batched += b
            run_start[r] = qh
            run_size[r] = b
            qh += b
            hn = _heap_push(ht, hs, hk, hn, end, seq, r)
            seq += 1
            events += 1
    ist[0] = fh
    ist[1] = fc
    ist[2] = hn
    ist[3] = seq
    ist[4] = kd
    ist[5] = batches
    ist[6] = batched
    ist[7] = events
    tdue[0] = timer_due
    return done, status, emit, ne, E, qh, qt, tie

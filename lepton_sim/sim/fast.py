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
  responses of a pool those requests reach, say).

The stations are then run in topological order, each on all of its arrivals at once: a demand line
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

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lepton_sim.sim.arrivals import arrival_blocks
from lepton_sim.sim.common import EPS_S, TIME_BINS
from lepton_sim.sim.engine import FLUSH  # the latencies per summary fold: the sums then add in the engine's order
from lepton_sim.sim.links import FairLinkDir, LinkDir
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
            if not isinstance(c.pool, Pool):
                why[k].append(f"{src.service} is an LLM service, batched token by token")
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


@dataclass
class _Result:
    created: int = 0
    events: int = 0
    states: dict[int, Any] = field(default_factory=dict)  # id -> [state, arrived, dropped, latencies]
    pools: list[tuple[Pool, dict[str, Any]]] = field(default_factory=list)
    dirs: list[tuple[LinkDir, dict[str, Any]]] = field(default_factory=list)


def _compute(sim: Simulation, part: Part) -> _Result:
    k_ = _kernels()
    routes, order = _routes(sim, part)
    assert order is not None
    until = sim.duration + sim.scenario.horizon.drain_s
    win = sim.window
    res = _Result()
    # requests of the part: creation time, route (index into `flat`)
    flat: list[_Route] = [r for rs in routes for r in rs]
    created_parts, route_parts = [], []
    inputs: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = defaultdict(list)  # station -> (upstream, reqs, times)
    base = 0
    r0 = 0
    for rs, k in zip(routes, part.sources):
        src = sim.sources[k]
        state = src.state
        entry = res.states.setdefault(id(state), [state, 0, 0, []])
        drawn = _draw_times(src, sim.duration)
        a, scheduled = k_["source"](drawn, until)
        fired = a[a < until]
        res.events += scheduled
        res.created += len(fired)
        counted = fired >= sim.warmup
        entry[1] += int(counted.sum())
        n = len(fired)
        if not rs:  # no pool reachable: every request is dropped where it is created
            entry[2] += int(counted.sum())
            continue
        if len(rs) == 1:
            pick = np.zeros(n, dtype=np.int64)
        else:
            cum = np.asarray(part.fixed[k][1], dtype=np.float64)
            u = src.router.uniforms.take(n) * cum[-1]  # type: ignore[union-attr]
            pick = np.minimum(np.searchsorted(cum, u, side="right"), len(rs) - 1)
        idx = np.arange(base, base + n, dtype=np.int64)
        created_parts.append(fired)
        route_parts.append(pick + r0)
        for j, r in enumerate(rs):
            sel = pick == j
            t = fired[sel]
            if r.codec:
                res.events += len(t)  # the compression's event, scheduled at creation
                t = t + state.compress_s
            inputs[id(r.stations[0])].append((-1 - k, idx[sel], t))
        base += n
        r0 += len(rs)
    created = np.concatenate(created_parts) if created_parts else np.zeros(0)
    route_of = np.concatenate(route_parts) if route_parts else np.zeros(0, dtype=np.int64)
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
    for st in order:
        key = id(st)
        reqs, t = _merge(inputs.pop(key, []), st)
        keep = t < until
        if not keep.all():
            reqs, t = reqs[keep], t[keep]
        if isinstance(st, LinkDir):
            rts = route_of[reqs]
            out, tally = k_["link"](t, bits_at[key][rts], st.bps, st.prop, win.start, win.end, win.bin_w, TIME_BINS)
            res.events += len(t)
            res.dirs.append((st, tally))
            d = decomp_at[key][rts]
            has = d >= 0.0
            if has.any():  # decompressed at the pool: an event when the transfer is in, then the pool
                res.events += int((has & (out < until)).sum())
                out = np.where(has, out + np.where(has, d, 0.0), out)
            _emit(inputs, key, nxt[key][rts], reqs, out)
        elif isinstance(st, Pool):
            done, status, emit, tally = _run_pool(k_, st, t, until, win)
            res.events += tally.pop("events")
            res.pools.append((st, tally))
            dropped = reqs[status == 2]
            for ri in np.unique(route_of[dropped]) if len(dropped) else ():
                sel = dropped[route_of[dropped] == ri]
                state = sim.sources[flat[ri].source].state
                res.states[id(state)][2] += int((created[sel] >= sim.warmup).sum())
            em = reqs[emit]
            _emit(inputs, key, nxt[key][route_of[em]], em, done[emit])
        else:  # a demand state: the responses are back
            lat = t - created[reqs]
            res.states[key][3].append(lat[created[reqs] >= sim.warmup])
    return res


def _draw_times(src: Source, duration: float) -> np.ndarray:
    """The demand line's arrival times below the horizon, as the engine reads them (it stops at the
    first time at or past `duration`)."""
    parts = []
    for block in arrival_blocks(src.demand, src.rng):
        past = np.flatnonzero(block >= duration)
        if len(past):
            parts.append(block[: past[0]])
            break
        parts.append(block)
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)


def _merge(items: list[tuple[int, np.ndarray, np.ndarray]], st: Any) -> tuple[np.ndarray, np.ndarray]:
    """A station's arrivals in the order the engine takes them: by time, and at one instant in the
    order the one station that sent them sent them (`Tie` when two stations did)."""
    if not items:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    if len(items) == 1:
        _, reqs, t = items[0]
        up = None
    else:
        reqs = np.concatenate([it[1] for it in items])
        t = np.concatenate([it[2] for it in items])
        up = np.concatenate([np.full(len(it[1]), it[0], dtype=np.int64) for it in items])
    if len(t) > 1 and not bool(np.all(t[1:] >= t[:-1])):
        o = np.argsort(t, kind="stable")
        reqs, t = reqs[o], t[o]
        if up is not None:
            up = up[o]
    if up is not None and len(t) > 1:
        same = t[1:] == t[:-1]
        if same.any() and bool(np.any(up[1:][same] != up[:-1][same])):
            i = int(np.flatnonzero(same & (up[1:] != up[:-1]))[0])
            raise Tie(f"two requests reach {_name(st)} at the same instant ({t[i]:.9g} s) from different places")
    return reqs, t


def _name(st: Any) -> str:
    if isinstance(st, LinkDir):
        return f"link direction {st.id}"
    if isinstance(st, Pool):
        return f"pool {st.id}"
    return f"demand site {st.site} of {st.service}"


def _emit(inputs: dict[int, list], key: int, to: np.ndarray, reqs: np.ndarray, t: np.ndarray) -> None:
    """Hand a station's output (in its own order) to the next station of each request's route."""
    if not len(reqs):
        return
    first = to[0]
    if bool(np.all(to == first)):
        inputs[int(first)].append((key, reqs, t))
        return
    for nxt_key in np.unique(to):
        sel = to == nxt_key
        inputs[int(nxt_key)].append((key, reqs[sel], t[sel]))


def _run_pool(k_: dict[str, Any], pool: Pool, t: np.ndarray, until: float, win: Any) -> tuple[np.ndarray, ...]:
    n = pool.line.count
    use_draws = pool.draw is not None
    draws = pool.draw.take(len(t)) if use_draws else np.zeros(1)  # type: ignore[union-attr]
    times = np.asarray(pool.times if pool.times is not None else [0.0], dtype=np.float64)
    idle = pool.idle.after_idle if pool.idle is not None else None
    gaps = np.asarray(idle[0] if idle else [1.0], dtype=np.float64)
    factors = np.asarray(idle[1] if idle else [[1.0]], dtype=np.float64)
    mq = -1 if pool.max_queue is None else int(pool.max_queue)
    out = k_["pool"](t, until, n, int(pool.max_batch), float(pool.max_wait), mq, times, use_draws, draws,
                     idle is not None, gaps, factors, win.start, win.end, win.bin_w, TIME_BINS, EPS_S)
    done, status, emit, n_emit, busy, bins, batches, batched, events, tie = out
    if tie >= 0.0:
        raise Tie(f"a request reaches pool {pool.id} at the instant of one of its own events ({tie:.9g} s)")
    return done, status, emit[:n_emit], {"busy": busy, "bins": bins, "batches": int(batches),
                                         "batched": int(batched), "events": int(events)}


def _commit(sim: Simulation, res: _Result) -> None:
    """Put the part's tallies where the engine's own would be, folded in the engine's order."""
    sim.created += res.created
    sim.events += res.events
    for st, tally in res.pools:
        st.busy = [b0 + b for b0, b in zip(st.busy, tally["busy"].tolist())]
        st.bins = [b0 + b for b0, b in zip(st.bins, tally["bins"].tolist())]
        st.batches += tally["batches"]
        st.batched += tally["batched"]
    for d, tally in res.dirs:
        d.busy += tally["busy"]
        d.bytes += tally["bytes"]
        d.transfers += tally["transfers"]
        d.bins = [b0 + b for b0, b in zip(d.bins, tally["bins"].tolist())]
    for state, arrived, dropped, lats in res.states.values():
        lat = np.concatenate(lats) if lats else np.zeros(0)
        state.arrived += arrived
        state.dropped += dropped
        state.completed += len(lat)
        state.live += arrived - dropped - len(lat)
        for i in range(0, len(lat), FLUSH):  # the engine folds its buffer in whenever FLUSH are in
            state.summary.add_many(lat[i:i + FLUSH])


# --- the compiled loops ---------------------------------------------------------------------

_JIT: dict[str, Any] = {}


def _kernels() -> dict[str, Any]:
    if not _JIT:
        import numba

        jit = numba.njit(cache=True, nogil=True)
        g = globals()
        for name in ("_overlap", "_add_bins", "_idle_factor"):
            g[name] = numba.njit(cache=True, nogil=True, inline="always")(g[name])
        _JIT["source"] = jit(_source_run)
        _JIT["link"] = _link_run_py(jit(_link_run))
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


def _idle_factor(b, gap_s, gaps, factors):  # pragma: no cover - compiled; `BatchTimes.idle_factor`
    if gap_s <= 0.0:
        return 1.0
    f = factors[b - 1]
    if gap_s <= gaps[0]:
        return 1.0 + (f[0] - 1.0) * gap_s / gaps[0]
    for i in range(1, len(gaps)):
        if gap_s <= gaps[i]:
            w = math.log(gap_s / gaps[i - 1]) / math.log(gaps[i] / gaps[i - 1])
            return f[i - 1] + (f[i] - f[i - 1]) * w
    return f[len(gaps) - 1]


def _source_run(t, until):  # pragma: no cover - compiled
    """The times the engine's arrival events fire at (`Simulation._schedule_next` schedules each at
    `now + (t - now)` when the last fires) and how many it schedules (it stops after one at `until`)."""
    a = np.empty(len(t))
    now = 0.0
    n = 0
    for k in range(len(t)):
        tk = t[k]
        ak = now + (tk - now if tk > now else 0.0)
        a[k] = ak
        n = k + 1
        if ak >= until:
            break
        now = ak
    return a[:n], n


def _link_run_py(run):
    def call(t, bits, bps, prop, w_start, w_end, bin_w, nbins):
        out, busy, nbytes, transfers, bins = run(t, bits, bps, prop, w_start, w_end, bin_w, nbins)
        return out, {"busy": busy, "bytes": nbytes, "transfers": int(transfers), "bins": bins}
    return call


def _link_run(t, bits, bps, prop, w_start, w_end, bin_w, nbins):  # pragma: no cover - compiled; `LinkDir.transmit`
    out = np.empty(len(t))
    bins = np.zeros(nbins)
    free_at = 0.0
    busy = 0.0
    nbytes = 0.0
    transfers = 0
    for k in range(len(t)):
        now = t[k]
        start = free_at
        if start < now:
            start = now
        end = start + bits[k] / bps
        free_at = end
        if w_start <= start < w_end:
            nbytes += bits[k] / 8
            transfers += 1
        busy += _overlap(start, end, w_start, w_end)
        _add_bins(bins, start, end, bin_w, nbins)
        out[k] = now + (end + prop - now)
    return out, busy, nbytes, transfers, bins


def _pool_run(arr, until, n, B, w, max_queue, times, use_draws, draws, has_idle, gaps, factors,
              w_start, w_end, bin_w, nbins, eps):  # pragma: no cover - compiled; `pools.Pool`
    """`pools.Pool` on its own arrivals `arr` (sorted): when each leaves, which were dropped, the
    order they left in, and the pool's tallies. Its own events (batch ends, fill timers) are ordered
    by (time, the order it scheduled them), as SimPy's queue orders them; `tie` is the first instant
    an arrival meets one of them (>= 0; -1 when none does)."""
    m = len(arr)
    done = np.full(m, np.nan)
    status = np.zeros(m, np.int8)  # 1 served, 2 dropped (queue full), 0 still there at `until`
    emit = np.empty(m, np.int64)
    ne = 0
    E = np.empty(m, np.int64)  # the requests in the order they joined the queue
    qh = 0
    qt = 0
    free = np.empty(n, np.int64)
    for r in range(n):
        free[r] = r
    fh = 0
    fc = n
    last_end = np.full(n, -np.inf)
    run_start = np.zeros(n, np.int64)
    run_size = np.zeros(n, np.int64)
    busy = np.zeros(n)
    bins = np.zeros(nbins)
    batches = 0
    batched = 0
    events = 0
    kd = 0
    cap = 2 * m + n + 2  # pending: a batch end per replica, fill timers (at most one set per event)
    ht = np.empty(cap)  # a binary heap of the pool's own events by (time, sequence)
    hs = np.empty(cap, np.int64)
    hk = np.empty(cap, np.int64)  # -1 a fill timer, r >= 0 replica r's batch ends
    hn = 0
    seq = 0
    timer_due = -1.0
    tie = -1.0
    i = 0
    inf = np.inf
    while True:
        ta = arr[i] if i < m else inf
        th = ht[0] if hn > 0 else inf
        if ta == th:
            if ta < until:
                tie = ta
            break
        if ta < th:
            if ta >= until:
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
            if th >= until:
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
                        tt = now + (due - now)
                        j = hn
                        hn += 1
                        while j > 0:
                            p = (j - 1) // 2
                            if ht[p] < tt or (ht[p] == tt and hs[p] < seq):
                                break
                            ht[j], hs[j], hk[j] = ht[p], hs[p], hk[p]
                            j = p
                        ht[j], hs[j], hk[j] = tt, seq, -1
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
            j = hn
            hn += 1
            while j > 0:
                p = (j - 1) // 2
                if ht[p] < end or (ht[p] == end and hs[p] < seq):
                    break
                ht[j], hs[j], hk[j] = ht[p], hs[p], hk[p]
                j = p
            ht[j], hs[j], hk[j] = end, seq, r
            seq += 1
            events += 1
    return done, status, emit, ne, busy, bins, batches, batched, events, tie

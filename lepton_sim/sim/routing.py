"""Routing: which pool serves a request, by the deployment's policy, avoiding what has failed."""
from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lepton_sim.sim.common import EPS_S
from lepton_sim.sim.streams import Uniforms

if TYPE_CHECKING:
    from lepton_sim.sim.links import LinkDir
    from lepton_sim.sim.pools import Pool


@dataclass(frozen=True, slots=True)
class Candidate:
    """A pool a demand site may send to, with the link directions there and back."""

    pool: Pool
    there: tuple[LinkDir, ...]
    back: tuple[LinkDir, ...]
    latency_s: float  # one-way propagation


def _load(c: Candidate) -> float:
    """Queued work per live replica, in seconds of batch-1 compute."""
    p = c.pool
    return p.outstanding * p.per_request_s / p.n_live


def _least_loaded(cands: Sequence[Candidate]) -> Candidate:
    best, best_load = cands[0], math.inf  # candidates are sorted by latency: ties go to the nearest
    for c in cands:
        p = c.pool
        load = p.outstanding * p.per_request_s / p.n_live  # `_load(c)` in line
        if load < best_load:
            best, best_load = c, load
            if load <= 0.0:
                break  # idle: no pool can be less loaded (loads are >= 0), and ties go to the nearest
    return best


def _least_latency(cands: Sequence[Candidate]) -> Candidate:
    # round-trip propagation plus queued work per replica: the pool expected to answer first
    best, best_t = cands[0], math.inf
    for c in cands:
        t = 2.0 * c.latency_s
        if t >= best_t:
            break  # sorted by latency, loads are >= 0: neither this nor any farther pool can be sooner
        p = c.pool
        t += p.outstanding * p.per_request_s / p.n_live  # `_load(c)` in line
        if t < best_t:
            best, best_t = c, t
    return best


# The same policies scanning every candidate, for scenarios with failures. The early stops above
# assume loads are >= 0; with failures a pool's count of outstanding requests once went below zero
# (a response lost on a failed link was taken off its pool's count a second time; fixed in
# `Simulation._lose`, tested in tests/test_failures.py), and these scan in full regardless.
def _least_loaded_full(cands: Sequence[Candidate]) -> Candidate:
    best, best_load = cands[0], math.inf
    for c in cands:
        load = _load(c)
        if load < best_load:
            best, best_load = c, load
    return best


def _least_latency_full(cands: Sequence[Candidate]) -> Candidate:
    best, best_t = cands[0], math.inf
    for c in cands:
        t = 2.0 * c.latency_s + _load(c)
        if t < best_t:
            best, best_t = c, t
    return best


# The early-stopping policies over the candidates a `LazyCandidates` has made so far (a list):
# the policy's choice when its scan stops inside them, else None (the scan would read on, so the
# caller scans the lazy sequence, which makes more). Where they stop they read exactly the
# candidates, in the order, that the policy itself reads, so the choice is the same.
def _least_latency_made(made: list[Candidate]) -> Candidate | None:
    best, best_t = made[0], math.inf
    for c in made:
        t = 2.0 * c.latency_s
        if t >= best_t:
            return best
        p = c.pool
        t += p.outstanding * p.per_request_s / p.n_live
        if t < best_t:
            best, best_t = c, t
    return None


def _least_loaded_made(made: list[Candidate]) -> Candidate | None:
    for c in made:
        p = c.pool
        if p.outstanding * p.per_request_s / p.n_live <= 0.0:
            return _least_loaded(made)  # an idle pool: the scan stops there at the latest
    return None


def _nearest_made(made: list[Candidate]) -> Candidate | None:
    lowest = made[0].latency_s
    for i, c in enumerate(made):
        if c.latency_s > lowest + EPS_S:
            return _least_loaded(made[:i])
    return None


def _nearest_prefix(cands: Sequence[Candidate]) -> list[Candidate]:
    lowest = cands[0].latency_s
    nearest = []
    for c in cands:  # sorted by latency: the nearest are a prefix
        if c.latency_s > lowest + EPS_S:
            break
        nearest.append(c)
    return nearest


def _nearest(cands: Sequence[Candidate]) -> Candidate:
    return _least_loaded(_nearest_prefix(cands))


def _nearest_full(cands: Sequence[Candidate]) -> Candidate:
    return _least_loaded_full(_nearest_prefix(cands))


class LazyCandidates:
    """A demand site's candidates in order of (latency, pool index), each found and made into a
    `Candidate` (its link directions there and back) only when a scan first reaches it.

    `sites` gives the reachable sites in nondecreasing latency (`Topology.by_latency`), `pools_at`
    the service's pools at each site. Policies that stop early on sorted candidates (least-latency,
    least-loaded, nearest) then search the topology and make candidates only as far as they read,
    a few of a fleet's thousands of pools. It is a sequence (indexing, iteration in order; `len`
    makes them all).
    """

    __slots__ = ("made", "complete", "_sites", "_pools_at", "_make", "_next", "_group")

    def __init__(self, sites: Iterator[tuple[float, str]], pools_at: dict[str, list[Pool]],
                 make: Callable[[Pool], Candidate | None]) -> None:
        self.made: list[Candidate] = []
        self.complete = False  # every candidate is made (`made` is then the whole sequence)
        self._sites = sites
        self._pools_at = pools_at
        self._make = make
        self._next = next(sites, None)  # one site of look-ahead: equal latencies make one group
        self._group: list[Pool] = []  # the current group's pools not yet made, last first

    def _more(self) -> bool:
        """Make the next candidate; False when there is none."""
        while not self._group:
            if self._next is None:
                self.complete = True
                return False
            lat = self._next[0]
            group: list[Pool] = []
            while self._next is not None and self._next[0] == lat:
                group += self._pools_at.get(self._next[1], ())
                self._next = next(self._sites, None)
            group.sort(key=lambda p: p.index, reverse=True)
            self._group = group
        c = self._make(self._group.pop())
        assert c is not None  # its site is reachable
        self.made.append(c)
        return True

    def at_least(self, n: int) -> bool:
        while len(self.made) < n:
            if not self._more():
                return False
        return True

    def __len__(self) -> int:
        while self._more():
            pass
        return len(self.made)

    def __getitem__(self, i: int) -> Candidate:
        if 0 <= i < len(self.made):
            return self.made[i]
        if i < 0:
            i += len(self)
        if not 0 <= i or not self.at_least(i + 1):
            raise IndexError(i)
        return self.made[i]

    def __iter__(self) -> Iterator[Candidate]:
        made = self.made
        yield from made  # those made so far (in C), then one more at a time as the scan reaches them
        i = len(made)
        while i < len(made) or self._more():
            yield made[i]
            i += 1


class Router:
    """Picks a pool for each request of one (service, demand site) pair.

    `choose` is the fast policy over the fixed candidates while everything is up; when a replica or
    link is down the simulation switches it to `choose_degraded`, which re-derives the candidates
    (routes around failed links, pools with a live replica) and returns None when none is left.
    Weighted routing then renormalises the weights over what is left, or, if every weighted pool is
    down, fails over to the least-latency pool.
    """

    __slots__ = ("site", "cands", "weight", "policy", "uniforms", "available", "_pick", "_fallback", "_pick_made",
                 "fast", "choose", "only", "cum")

    def __init__(self, site: str, policy: str, cands: list[Candidate] | LazyCandidates, weights: list[float] | dict[int, float],
                 uniforms: Uniforms, available: Callable[[str, Candidate], Candidate | None],
                 early_stop: bool = True) -> None:
        """`cands` with `weights` aligned to them, or `LazyCandidates` with `weights` by pool index
        (made in full for weighted routing, which needs them all). `early_stop=False` scans every
        candidate (for scenarios with failures, see `_least_loaded_full`)."""
        self.site = site
        self.cands: list[Candidate] | LazyCandidates
        if isinstance(cands, LazyCandidates) and policy != "weighted":
            self.cands = cands
            self.weight: dict[int, float] = {}  # only weighted routing reads weights
            single = not cands.at_least(2)
        else:
            if isinstance(cands, LazyCandidates):
                assert isinstance(weights, dict)
                cands = list(cands)
                weights = [weights.get(c.pool.index, 0.0) for c in cands]
            assert isinstance(weights, list)
            order = sorted(range(len(cands)), key=lambda i: (cands[i].latency_s, cands[i].pool.index))
            self.cands = [cands[i] for i in order]
            self.weight = {cands[i].pool.index: (weights[i] if weights else 0.0) for i in order}
            single = len(self.cands) == 1
        self.policy = policy
        self.uniforms = uniforms
        self.available = available
        self._pick: Callable[[Sequence[Candidate]], Candidate] = {
            "nearest": _nearest, "least-loaded": _least_loaded, "least-latency": _least_latency,
            "weighted": self._weighted,
        }[policy] if early_stop else {
            "nearest": _nearest_full, "least-loaded": _least_loaded_full, "least-latency": _least_latency_full,
            "weighted": self._weighted,
        }[policy]
        self._fallback = _least_latency if early_stop else _least_latency_full
        self._pick_made: Callable[[list[Candidate]], Candidate | None] | None = {
            "nearest": _nearest_made, "least-loaded": _least_loaded_made, "least-latency": _least_latency_made,
        }.get(policy) if early_stop else None
        self.fast: Callable[[], Candidate | None]
        if single:
            self.only = self.cands[0]  # made once: `_single` is every request's route
            self.fast = self._single
        elif policy == "weighted":
            self.fast = self._weighted_fast
            total = 0.0
            self.cum = []
            for c in self.cands:
                total += self.weight[c.pool.index]
                self.cum.append(total)
        elif self.cands.__class__ is LazyCandidates and self._pick_made is not None:
            self.fast = self._lazy_fast
        else:
            self.fast = self._fast
        self.choose = self.fast

    def fixed(self) -> tuple[list[Candidate], list[float]] | None:
        """Where requests go while everything is up, when that does not depend on the state of the
        pools: ([the only candidate], []) or, for weighted routing, (the candidates, their cumulative
        weights; one uniform draw per request picks as `choose` does). None when it does (least-loaded,
        least-latency or nearest over two or more candidates)."""
        if self.fast == self._single:
            return [self.only], []
        if self.fast == self._weighted_fast:
            return list(self.cands), list(self.cum)
        return None

    def degraded(self, on: bool) -> None:
        self.choose = self.choose_degraded if on else self.fast

    def _single(self) -> Candidate:
        return self.only

    def _fast(self) -> Candidate:
        cands = self.cands
        if cands.__class__ is LazyCandidates and cands.complete:  # type: ignore[union-attr]
            cands = self.cands = cands.made  # the same candidates in the same order, as a list
        return self._pick(cands)

    def _lazy_fast(self) -> Candidate:
        """`_fast` over lazy candidates: a scan of those made so far, read on lazily only when the
        policy's scan runs past them (a fleet's least-latency scan stops within a few)."""
        lazy = self.cands
        if lazy.__class__ is LazyCandidates and not lazy.complete:  # type: ignore[union-attr]
            c = self._pick_made(lazy.made)  # type: ignore[misc, union-attr]
            return c if c is not None else self._pick(lazy)
        # every candidate is made: `_fast` from now on, over them as a list
        self.fast = self._fast
        if self.choose == self._lazy_fast:
            self.choose = self._fast
        return self._fast()

    def _weighted_fast(self) -> Candidate:
        u = self.uniforms() * self.cum[-1]
        i = bisect_right(self.cum, u)  # the first pool whose cumulative weight exceeds u
        return self.cands[i] if i < len(self.cands) else self.cands[-1]

    def _weighted(self, cands: list[Candidate]) -> Candidate:
        total = sum(self.weight[c.pool.index] for c in cands)
        if total <= 0:
            return self._fallback(cands)
        u = self.uniforms() * total
        acc = 0.0
        for c in cands:
            acc += self.weight[c.pool.index]
            if u < acc:
                return c
        return cands[-1]

    def choose_degraded(self) -> Candidate | None:
        live = []
        for c in self.cands:
            if c.pool.n_live > 0:
                now = self.available(self.site, c)
                if now is not None:
                    live.append(now)
        if not live:
            return None
        live.sort(key=lambda c: (c.latency_s, c.pool.index))
        return self._pick(live)


class ByPrompt:
    """Routing of an LLM service whose pools serve prompt-length ranges (`Replicas.prompt_tokens`): one
    `Router` per interval of prompt lengths (`schema.prompt_intervals`), picked by the request's prompt."""

    def __init__(self, starts: list[int], routers: list[Router | None], policy: str) -> None:
        self.starts = starts  # the first prompt length of each interval, increasing from 1
        self.routers = routers  # None where no pool serves the interval (such requests are dropped)
        self.policy = policy

    def choose(self, prompt: int) -> Candidate | None:
        r = self.routers[bisect_right(self.starts, prompt) - 1]
        return r.choose() if r is not None else None

    def fixed(self) -> None:
        """Where a request goes depends on its prompt: not a fixed split of the stream."""
        return None

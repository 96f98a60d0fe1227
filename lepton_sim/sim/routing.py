"""Routing: which pool serves a request, by the deployment's policy, avoiding what has failed."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lepton_sim.sim.common import EPS_S
from lepton_sim.sim.streams import Uniforms

if TYPE_CHECKING:
    from lepton_sim.sim.links import LinkDir
    from lepton_sim.sim.pools import Pool


@dataclass(frozen=True)
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


def _least_loaded(cands: list[Candidate]) -> Candidate:
    best, best_load = cands[0], math.inf  # candidates are sorted by latency: ties go to the nearest
    for c in cands:
        load = _load(c)
        if load < best_load:
            best, best_load = c, load
    return best


def _least_latency(cands: list[Candidate]) -> Candidate:
    # round-trip propagation plus queued work per replica: the pool expected to answer first
    best, best_t = cands[0], math.inf
    for c in cands:
        t = 2.0 * c.latency_s + _load(c)
        if t < best_t:
            best, best_t = c, t
    return best


def _nearest(cands: list[Candidate]) -> Candidate:
    lowest = cands[0].latency_s
    return _least_loaded([c for c in cands if c.latency_s <= lowest + EPS_S])


class Router:
    """Picks a pool for each request of one (service, demand site) pair.

    `choose` is the fast policy over the fixed candidates while everything is up; when a replica or
    link is down the simulation switches it to `choose_degraded`, which re-derives the candidates
    (routes around failed links, pools with a live replica) and returns None when none is left.
    Weighted routing then renormalises the weights over what is left, or, if every weighted pool is
    down, fails over to the least-latency pool.
    """

    def __init__(self, site: str, policy: str, cands: list[Candidate], weights: list[float],
                 uniforms: Uniforms, available: Callable[[str, Candidate], Candidate | None]) -> None:
        order = sorted(range(len(cands)), key=lambda i: (cands[i].latency_s, cands[i].pool.index))
        self.site = site
        self.cands = [cands[i] for i in order]
        self.weight = {cands[i].pool.index: (weights[i] if weights else 0.0) for i in order}
        self.policy = policy
        self.uniforms = uniforms
        self.available = available
        self._pick: Callable[[list[Candidate]], Candidate] = {
            "nearest": _nearest, "least-loaded": _least_loaded, "least-latency": _least_latency,
            "weighted": self._weighted,
        }[policy]
        self.fast: Callable[[], Candidate | None]
        if len(self.cands) == 1:
            self.fast = self._single
        elif policy == "weighted":
            self.fast = self._weighted_fast
            total = 0.0
            self.cum = []
            for c in self.cands:
                total += self.weight[c.pool.index]
                self.cum.append(total)
        else:
            self.fast = self._fast
        self.choose = self.fast

    def degraded(self, on: bool) -> None:
        self.choose = self.choose_degraded if on else self.fast

    def _single(self) -> Candidate:
        return self.cands[0]

    def _fast(self) -> Candidate:
        return self._pick(self.cands)

    def _weighted_fast(self) -> Candidate:
        u = self.uniforms() * self.cum[-1]
        for c, w in zip(self.cands, self.cum):
            if u < w:
                return c
        return self.cands[-1]

    def _weighted(self, cands: list[Candidate]) -> Candidate:
        total = sum(self.weight[c.pool.index] for c in cands)
        if total <= 0:
            return _least_latency(cands)
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

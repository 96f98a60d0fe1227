"""Failures: each failing replica or link alternates up and down with exponential durations.

`failures: {name: {mtbf_h, mttr_h}}` names a hardware type (every replica of that type fails
independently) or a link (`a--b`; both directions go down together). Everything starts up; the
warm-up lets the alternation settle. Over a long run a unit is up a fraction mtbf / (mtbf + mttr).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import simpy

from lepton_sim.network import link_id
from lepton_sim.sim.streams import stream

if TYPE_CHECKING:
    from lepton_sim.sim.engine import Simulation


class Alternating:
    """One unit's up/down alternation, driving `on_fail` and `on_repair` callbacks."""

    def __init__(self, env: simpy.Environment, rng: np.random.Generator, mtbf_s: float, mttr_s: float,
                 on_fail: Callable[[], None], on_repair: Callable[[], None]) -> None:
        self.env, self.rng = env, rng
        self.mtbf_s, self.mttr_s = mtbf_s, mttr_s
        self.on_fail, self.on_repair = on_fail, on_repair
        self._after(self.rng.exponential(mtbf_s), self._fail)

    def _after(self, dt: float, then: Callable[[simpy.Event], None]) -> None:
        ev = self.env.timeout(float(dt))
        ev.callbacks.append(then)

    def _fail(self, _: simpy.Event) -> None:
        self.on_fail()
        self._after(self.rng.exponential(self.mttr_s), self._repair)

    def _repair(self, _: simpy.Event) -> None:
        self.on_repair()
        self._after(self.rng.exponential(self.mtbf_s), self._fail)


def start_failures(sim: Simulation) -> list[Alternating]:
    """Start an alternation for every replica of a failing hardware type and every failing link."""
    s = sim.scenario
    units: list[Alternating] = []
    by_link = {link_id(link): i for i, link in enumerate(s.links)}
    by_link.update({f"{b}--{a}": i for i, (a, b) in ((i, link.between) for i, link in enumerate(s.links))})
    for name, spec in s.failures.items():
        mtbf, mttr = spec.mtbf_h * 3600, spec.mttr_h * 3600
        if name in s.hardware:
            for pool in sim.pools:
                if pool.line.hardware != name:
                    continue
                # A tensor-parallel replica is down while any of its devices is: tp times as often.
                tp = pool.line.tensor_parallel
                for r in range(pool.line.count):
                    rng = stream(sim.seed, f"failures/{pool.id}/{r}")
                    units.append(Alternating(sim.env, rng, mtbf / tp, mttr,
                                             lambda p=pool, r=r: sim.replica_down(p, r),
                                             lambda p=pool, r=r: sim.replica_up(p, r)))
        else:
            i = by_link[name]
            rng = stream(sim.seed, f"failures/link/{link_id(s.links[i])}")
            units.append(Alternating(sim.env, rng, mtbf, mttr, lambda i=i: sim.link_down(i), lambda i=i: sim.link_up(i)))
    return units

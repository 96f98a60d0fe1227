"""The local-optimality certificate: no deployment one replica cheaper meets every SLO in simulation.

The MILP is optimal under its model, and the model is conservative (each target split into fixed
network and pool budgets with a union bound over the route, demand planned at its peak), so a
verified plan may still carry a replica the simulation shows it does not need. The certificate checks every neighbour one replica smaller: for each pool of the
verified deployment, the same deployment with that pool one replica smaller (same seed, same
routing; a pool going to 0 replicas is removed and its demand sites' fractions renormalised over
the service's other pools serving them, and when none does the entry says so without a
simulation). The certificate holds when every such neighbour misses an SLO.

When one meets every SLO the loop adopts it (the one saving the most US$ per hour: neighbours are
simulated from the largest saving down, so the first that verifies is it) and certifies that
deployment in turn; each pass is a verify round. Local, not global: a deployment two replicas
away, or with other routing, may still be cheaper.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from lepton_sim.scenario.schema import Scenario
from lepton_sim.verification.checks import Check, Simulated, check_lines, target_of
from lepton_sim.verification.deployment import Lines, Pricing, deployment_key, shrunk

Outcome = Literal["misses", "verifies", "cannot remove", "not checked"]


@dataclass(frozen=True)
class Miss:
    """A service that missed its SLO in a neighbour's simulation."""

    service: str
    percentile: float
    simulated_ms: float | None  # the service's, or its worst demand site's when that is higher
    slo_ms: float
    attainment: float | None
    site: str = ""  # the demand site `simulated_ms` is of ("" for the service's requests overall)
    metric: str = "latency"  # or an LLM service's "ttft" / "tpot"


@dataclass(frozen=True)
class Entry:
    """One neighbour: `pool` at `count - 1` replicas (removed when `count` is 1)."""

    pool: str
    count: int  # replicas of the pool in the deployment certified
    saved_usd_per_hour: float | None  # what the neighbour would save (None when it cannot exist)
    outcome: Outcome
    missed: tuple[Miss, ...] = ()
    note: str = ""  # "only pool serving <site>" when it cannot be removed


@dataclass(frozen=True)
class Certificate:
    """The final deployment's certificate: holds when complete and every entry misses or cannot exist."""

    holds: bool | None  # None unless complete
    complete: bool
    entries: tuple[Entry, ...]
    seed: int
    usd_per_hour: float | None  # of the deployment certified
    note: str = ""  # why it is incomplete

    def unchecked(self) -> list[str]:
        return [e.pool for e in self.entries if e.outcome == "not checked"]


@dataclass(frozen=True)
class Pass:
    """One certificate pass over a deployment: its entries, and the neighbour adopted if one verified."""

    entries: tuple[Entry, ...]
    complete: bool
    adopted: tuple[Lines, Simulated, Entry] | None


def certificate_pass(scenario: Scenario, lines: Lines, pricing: Pricing, seed: int, deadline: float | None,
                     on_entry: Callable[[Entry], None] | None = None,
                     seen: dict[tuple[Any, ...], Simulated] | None = None) -> Pass:
    """Check the neighbours of `lines`, largest saving first, until one verifies or time runs out.

    `seen` holds deployments already simulated with `seed` (a relax round's plan is often a
    neighbour): their verdict is reused, and new simulations are added to it.
    """
    seen = {} if seen is None else seen
    cost = pricing.usd_per_hour(lines)
    entries: dict[int, Entry] = {}
    todo: list[tuple[float, int, Lines]] = []
    for i, line in enumerate(lines):
        smaller = shrunk(lines, i)
        if isinstance(smaller, str):
            entries[i] = Entry(line.id, line.count, None, "cannot remove", note=smaller)
            _tell(on_entry, entries[i])
        else:
            todo.append((cost - pricing.usd_per_hour(smaller), i, smaller))
    todo.sort(key=lambda t: (-t[0], t[1]))  # largest saving first; ties in deployment order
    adopted = None
    complete = True
    for saved, i, smaller in todo:
        line = lines[i]
        if adopted is not None:
            entries[i] = Entry(line.id, line.count, saved, "not checked", note="a larger saving verified first")
            continue
        key = deployment_key(smaller)
        if key not in seen and deadline is not None and time.monotonic() >= deadline:
            entries[i] = Entry(line.id, line.count, saved, "not checked", note="time limit")
            complete = False
            continue
        sim = seen[key] = seen[key] if key in seen else check_lines(scenario, smaller, seed)
        misses = tuple(Miss(name, *_pct_target(scenario, name, c), c.attainment, c.worst_site, c.metric)
                       for name, c in sim.services.items() if not c.met)
        entries[i] = Entry(line.id, line.count, saved, "misses" if misses else "verifies", misses)
        _tell(on_entry, entries[i])
        if not misses:
            adopted = (smaller, sim, entries[i])
    ordered = tuple(entries[i] for i in sorted(entries))
    return Pass(ordered, complete and adopted is None, adopted)


def _tell(on_entry: Callable[[Entry], None] | None, entry: Entry) -> None:
    if on_entry is not None:
        on_entry(entry)


def unchecked(lines: Lines, pricing: Pricing, note: str) -> tuple[Entry, ...]:
    """Entries for a deployment no pass reached (rounds or time ran out): every neighbour not checked."""
    cost = pricing.usd_per_hour(lines)
    out = []
    for i, line in enumerate(lines):
        smaller = shrunk(lines, i)
        if isinstance(smaller, str):
            out.append(Entry(line.id, line.count, None, "cannot remove", note=smaller))
        else:
            out.append(Entry(line.id, line.count, cost - pricing.usd_per_hour(smaller), "not checked", note=note))
    return tuple(out)


def _pct_target(scenario: Scenario, name: str, c: Check) -> tuple[float, float | None, float]:
    pct, target = target_of(scenario, name, c)
    return pct, c.judged_ms, target

"""Where the real run's threads run: each replica on a core of its own, the harness on the rest.

A replica's forward pass is what the simulation is compared on; the harness (the load generator's
sender and receiver threads, the shaper, each server's connection readers) is what the simulation
does not model. Left to the OS scheduler, a reader thread woken by a request can land on the core
a replica is computing on: the replica is preempted, finds its caches disturbed, and its forward
pass as served runs longer than the one profiled, while the reader waits for a core and the
request's path to the queue grows a tail (measured in alternation on a 2-core machine: p99 path to
the queue 1.05-1.30 ms shared against 0.25-0.29 ms pinned; README, validation). So when the
machine has a core to spare beyond one per replica, `plan` gives every replica worker a core of its
own and every harness thread the cores left over (Linux's `sched_setaffinity`, per thread);
otherwise (as many replicas as cores, or no affinity call on this platform) everything shares
every core, and the run says so.

`plan` is pure; `pin` sets the calling thread's cores (threads it starts afterwards inherit them).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence


@dataclass(frozen=True)
class CorePlan:
    """Cores per replica worker (per pool, one per worker) and for the harness; `pinned` False: shared."""

    usable: tuple[int, ...]
    workers: tuple[tuple[int, ...], ...]  # workers[pool][i]: the core of the pool's i-th worker ((): shared)
    harness: tuple[int, ...]  # the harness's cores (every usable core when shared)
    pinned: bool
    why: str = ""  # when shared: why

    def describe(self) -> str:
        if not self.pinned:
            return f"cores: shared (replicas and harness on all of {_span(self.usable)}: {self.why})"
        per = ", ".join(_span(w) for w in self.workers)
        return f"cores: replica workers on {per}, harness on {_span(self.harness)}"

    def config(self, i: int) -> dict[str, list[int]]:
        """The server configuration keys of the i-th pool (by position in the plan's counts)."""
        if not self.pinned:
            return {}
        return {"cpus": list(self.workers[i]), "harness_cpus": list(self.harness)}

    def as_dict(self) -> dict[str, object]:
        return {"pinned": self.pinned, "why": self.why, "usable": list(self.usable),
                "workers": [list(w) for w in self.workers], "harness": list(self.harness)}


def _span(cores: Sequence[int]) -> str:
    return ",".join(str(c) for c in cores) if cores else "-"


def can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity")


def usable() -> tuple[int, ...]:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def plan(counts: Sequence[int], cores: Sequence[int] | None = None, pinnable: bool | None = None,
         shared: bool = False) -> CorePlan:
    """Workers of pool i (counts[i] of them) on the highest cores, one each; the harness on the rest.

    Pinned only when at least one core is left for the harness (and `shared` is not asked);
    otherwise shared, with the reason."""
    cores = tuple(sorted(usable() if cores is None else cores))
    pinnable = can_pin() if pinnable is None else pinnable
    total = sum(counts)
    why = ("as asked (--shared-cores)" if shared else
           "no per-thread affinity on this platform" if not pinnable else
           f"{total} replica{'s' if total != 1 else ''} and {len(cores)} cores leave none for the harness"
           if total >= len(cores) else "")
    if why:
        return CorePlan(cores, tuple(() for _ in counts), cores, False, why)
    free = list(cores[len(cores) - total:])
    workers = []
    for n in counts:
        workers.append(tuple(free[:n]))
        free = free[n:]
    return CorePlan(cores, tuple(workers), cores[: len(cores) - total], True)


def pin(cores: Sequence[int] | None) -> None:
    """Run the calling thread (and the threads it starts from now on) on `cores`; None or (): unchanged."""
    if cores and can_pin():
        os.sched_setaffinity(0, set(cores))


@contextmanager
def harness(p: CorePlan) -> Iterator[None]:
    """The calling thread, and what it starts inside, on the plan's harness cores; restored after."""
    if not p.pinned:
        yield
        return
    before = os.sched_getaffinity(0)
    pin(p.harness)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def current() -> list[int]:
    """The calling thread's cores."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(usable())

"""LLM services in the planner: candidates of (hardware, tensor-parallel degree, variant) per site, each
replica's capacity measured by the simulator.

**Capacity of one replica.** For one (service, hardware type, variant, tensor-parallel degree) the
capacity at a TTFT budget `b` is the largest Poisson rate at which one replica, alone and fed that
rate, keeps its TTFT quantile within `b` and its TPOT quantile within the service's TPOT target
(requests that never get a first token, or never finish, count as misses: at overload the
quantile is infinite). It is measured, not modelled: a `LLMMeter` (given by the layer above the
planner, `lepton_sim.verification.llm_meter`, which runs the simulator on a scenario of that one
replica) returns the quantiles at a rate, and `replica_capacity` finds the crossing:

- **bracket**: from a rate at which one request at a time keeps the replica busy (a lone request's
  time from the service-time model), doubling, each trial with `BRACKET_SHARE` of the requests,
  until a rate misses; then
- **bisection** with the full `requests` (at least `QUANTILE_TAIL` requests beyond the quantile)
  until the bracket is within `REL_TOL`; the capacity is its lower end (a rate measured to meet).

Every trial of one shape runs on the same seed, and the simulator's streams are named, so the
requests are the same at every rate (their times scaled): common random numbers keep the measured
quantile monotone in the rate as the replica is, not as the dice fall. Trials are cached in the
plan's table store under everything that determines them (`METHOD`, the meter's class, model,
variant, hardware, tensor-parallel degree, scheduler, token distributions, rate, requests, seed,
quantile levels).

**Replicas and routes.** `c` replicas get `c` times one replica's capacity: the pool's routing
(fewest outstanding tokens) does at least as well as splitting the stream at random into `c`
streams of a `c`-th of the rate, each one replica's case. A route's network time (the request's
prompt bytes there, the first token back, link queueing at the route's network miss budget,
`paths.py`) is taken from the TTFT target, so demand sites farther away get a smaller budget (a
lower tier). TPOT is the pool's alone (tokens stream back at one token per iteration). The
verify loop then simulates the whole plan and corrects each service's factor.

**Pruned**: variants below the accuracy floor, tensor-parallel degrees the model or the hardware
cannot run (`servicetime.llm.replica_problem`: interconnect, divisibility, precision, weights and
the longest request's KV cache), degrees above a site's slots, and arcs whose TTFT budget is
already missed at the lowest rate tried.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lepton_sim.errors import ScenarioError
from lepton_sim.planner.capacity import CapacityTable
from lepton_sim.planner.errors import Reason, Why
from lepton_sim.planner.measured import MEMORY, STATS
from lepton_sim.planner.paths import NETWORK_SHARE
from lepton_sim.planner.variants import allowed_variants
from lepton_sim.scenario.schema import Scenario, Service
from lepton_sim.servicetime.llm_replica import lone_request_s, replica_problem

METHOD = "llm-replica-bisect-1"  # bump when the trial or the search changes: old cache entries stop matching
SEED = 20261202  # the common random numbers of every replica trial

REL_TOL = 0.02  # the bisection stops when the bracket is within 2 %
QUANTILE_TAIL = 60  # requests beyond the quantile in a full trial
MIN_REQUESTS, MAX_REQUESTS = 2_000, 20_000
BRACKET_SHARE = 0.25  # of the requests, in the doubling trials
MAX_DOUBLINGS = 24


class LLMMeter(Protocol):
    """Measures one replica: TTFT and TPOT quantiles (seconds) at the given levels for a Poisson rate."""

    def measure(self, scenario: Scenario, service: str, hardware: str, variant: str, tensor_parallel: int,
                rate_rps: float, requests: int, seed: int, levels: Sequence[float]) -> dict[str, list[float]]:
        """{"ttft_s": [...], "tpot_s": [...]} at `levels` (math.inf where too few requests got that far)."""
        ...


@dataclass(frozen=True)
class LLMShape:
    """One replica type of one service: what its capacity depends on besides the rate."""

    service: str
    hardware: str
    variant: str
    tensor_parallel: int


@dataclass(frozen=True)
class Trial:
    rate_rps: float
    ttft_s: tuple[float, ...]  # at the shape's levels
    tpot_s: tuple[float, ...]


@dataclass
class ReplicaCurve:
    """The trials of one shape so far (a rate's full trial where it has one), at `levels`; read for predictions."""

    shape: LLMShape
    levels: tuple[float, ...]
    trials: dict[float, Trial]
    lone_s: float  # a lone request's time on one replica (mean tokens), the bracket's start

    def at(self, rate_rps: float, level: float, which: str) -> float:
        """The quantile at `level` of TTFT or TPOT at `rate_rps`: the trials around it, interpolated (the nearest
        trial outside their range)."""
        k = self.levels.index(level)
        pts = sorted((r, getattr(t, which)[k]) for r, t in self.trials.items())
        if not pts:
            return math.nan
        if rate_rps <= pts[0][0]:
            return pts[0][1]
        for (r0, v0), (r1, v1) in zip(pts, pts[1:]):
            if r0 <= rate_rps <= r1:
                if not math.isfinite(v1) or not math.isfinite(v0):
                    return v1 if rate_rps >= r1 else v0
                return v0 + (v1 - v0) * (rate_rps - r0) / (r1 - r0)
        return pts[-1][1]


@dataclass(frozen=True)
class LLMInfo:
    """What an LLM candidate carries besides its capacity: its shape and curve (for predictions), the targets."""

    shape: LLMShape
    curve: ReplicaCurve
    ttft_level: float
    tpot_level: float
    tpot_target_s: float
    per_replica_rps: float  # capacity of one replica at the tier's budget (before the factor)


def levels_of(service: Service) -> tuple[float, float, float]:
    """(TTFT level on a route without links, TTFT level with links, TPOT level): the quantiles a replica is held to.

    A route with links leaves `NETWORK_SHARE` of its TTFT miss to link queueing (`paths.py`)."""
    slo = service.slo
    assert slo.ttft is not None and slo.tpot is not None
    miss = 1.0 - slo.ttft.percentile / 100.0
    return 1.0 - miss, 1.0 - miss * (1.0 - NETWORK_SHARE), slo.tpot.percentile / 100.0


def requests_for(levels: Sequence[float]) -> int:
    """Requests in a full trial: `QUANTILE_TAIL` beyond the highest level, within [MIN_REQUESTS, MAX_REQUESTS]."""
    return int(min(MAX_REQUESTS, max(MIN_REQUESTS, math.ceil(QUANTILE_TAIL / (1.0 - max(levels))))))


def check_service(scenario: Scenario, name: str, svc: Service) -> list[tuple[str, str]]:
    """What stops the planner from planning an LLM service, as (path, message)."""
    out = []
    if svc.slo.ttft is None or svc.slo.tpot is None:
        out.append((f"services.{name}.slo", "the planner needs both ttft and tpot targets for an LLM service"))
    if svc.slo.latency_ms is not None:
        out.append((f"services.{name}.slo.latency_ms", "the planner plans LLM services to their ttft and tpot "
                                                       "targets; an end-to-end target is not planned (remove it, "
                                                       "or simulate a deployment)"))
    if svc.tokens is None:
        out.append((f"services.{name}.tokens", "an LLM service needs token distributions"))
    return out


class Search:
    """The capacity search of one shape, with its cache."""

    def __init__(self, scenario: Scenario, shape: LLMShape, meter: LLMMeter, tables: Any,
                 levels: tuple[float, ...], lone_s: float) -> None:
        self.scenario, self.shape, self.meter = scenario, shape, meter
        self.store = tables if tables is not None else MEMORY
        self.levels = levels
        self.requests = requests_for(levels)
        self.curve = ReplicaCurve(shape, levels, {}, lone_s)
        self._base = _shape_key(scenario, shape, levels)

    def _key(self, rate: float, requests: int) -> str:
        meter = f"{type(self.meter).__module__}.{type(self.meter).__qualname__}"  # another meter, other figures
        key = hashlib.sha256(json.dumps([self._base, meter, repr(rate), requests, SEED]).encode()).hexdigest()
        return f"{METHOD}:{key}"

    def _quick(self) -> int:
        """Requests in a doubling trial."""
        return max(MIN_REQUESTS // 2, int(self.requests * BRACKET_SHARE))

    def started(self) -> bool:
        """Whether the store holds this shape's first trial (a search run before, here or elsewhere)."""
        return self.store.get(self._key(1.0 / self.curve.lone_s, self._quick())) is not None

    def trial(self, rate: float, requests: int) -> Trial:
        key = self._key(rate, requests)
        got = self.store.get(key)
        if got is not None:
            STATS.cached += 1
            t = Trial(rate, _inf(got["ttft_s"]), _inf(got["tpot_s"]))
        else:
            t0 = time.perf_counter()
            m = self.meter.measure(self.scenario, self.shape.service, self.shape.hardware, self.shape.variant,
                                   self.shape.tensor_parallel, rate, requests, SEED, self.levels)
            STATS.trials += 1
            STATS.seconds += time.perf_counter() - t0
            t = Trial(rate, tuple(float(v) for v in m["ttft_s"]), tuple(float(v) for v in m["tpot_s"]))
            self.store.put(key, {"ttft_s": _json(t.ttft_s), "tpot_s": _json(t.tpot_s)})
        if requests == self.requests or rate not in self.curve.trials:
            self.curve.trials[rate] = t  # predictions read the full trial where there is one
        return t

    def capacity(self, budget_s: float, ttft_level: float, tpot_target_s: float, tpot_level: float) -> float:
        """The largest rate measured to meet both targets (within REL_TOL of the crossing); 0 when none does."""
        k, j = self.levels.index(ttft_level), self.levels.index(tpot_level)

        def meets(t: Trial) -> bool:
            return t.ttft_s[k] <= budget_s and t.tpot_s[j] <= tpot_target_s

        lo = 0.0
        hi = 1.0 / self.curve.lone_s
        quick = self._quick()
        for _ in range(MAX_DOUBLINGS):
            if not meets(self.trial(hi, quick)):
                break
            lo, hi = hi, 2.0 * hi
        else:
            raise ValueError(f"{self.shape}: no rate found that misses the targets")
        # the bracket's ends again at the full count (the quick trials only placed it)
        if lo > 0.0 and not meets(self.trial(lo, self.requests)):
            hi, lo = lo, 0.0
        if lo == 0.0:
            low = hi / 2.0 ** 6  # below the lone-request rate: a rate this low that still misses is infeasible
            if not meets(self.trial(low, self.requests)):
                return 0.0
            lo = low
        while hi - lo > REL_TOL * lo:
            mid = math.sqrt(lo * hi)
            if meets(self.trial(mid, self.requests)):
                lo = mid
            else:
                hi = mid
        return lo


def _shape_key(scenario: Scenario, shape: LLMShape, levels: Sequence[float]) -> str:
    svc = scenario.services[shape.service]
    model = scenario.models[svc.model]
    tokens = svc.tokens
    assert tokens is not None
    trace = None
    if tokens.trace is not None:
        trace = hashlib.sha256(repr(tokens.trace.pairs).encode()).hexdigest()
    return json.dumps({
        "model": model.model_dump(mode="json"), "variant": shape.variant,
        "hardware": scenario.hardware[shape.hardware].model_dump(mode="json"), "tp": shape.tensor_parallel,
        "scheduler": svc.scheduler_or_default.model_dump(mode="json"),
        "tokens": tokens.model_dump(mode="json", exclude={"trace"}), "trace": trace,
        "levels": [repr(v) for v in levels]}, sort_keys=True, default=str)


def _json(v: Sequence[float]) -> list[float | None]:
    return [x if math.isfinite(x) else None for x in v]


def _inf(v: Sequence[float | None]) -> tuple[float, ...]:
    return tuple(math.inf if x is None else float(x) for x in v)


@dataclass(frozen=True)
class Option:
    """One replica type a site could run for a service."""

    shape: LLMShape
    lone_s: float


def options_of(scenario: Scenario, name: str, svc: Service, hardware: Sequence[str], degrees: Sequence[int],
               reasons: list[Reason]) -> list[Option]:
    """Every (hardware, variant, tensor-parallel degree) that can serve the service's longest request, in order;
    reasons for each demand site when none can."""
    sites = sorted({d.site for d in svc.demand})
    allowed, why_not = allowed_variants(scenario, svc)
    if not allowed:
        reasons += [Reason(name, s, Why.ACCURACY, why_not) for s in sites]
        return []
    model = scenario.models[svc.model]
    out = []
    problems = []
    for hw in hardware:
        spec = scenario.hardware[hw]
        for v in allowed:
            for tp in degrees:
                why = replica_problem(model, model.variants[v], spec, tp, svc.scheduler_or_default, svc.tokens)
                if why is not None:
                    problems.append(f"{hw}/{v}/tp{tp}: {why[1]}")
                    continue
                out.append(Option(LLMShape(name, hw, v, tp),
                                  lone_request_s(model, model.variants[v], spec, tp, svc.scheduler_or_default,
                                                 *svc.tokens.means())))
    if not out:
        msg = ("no hardware type at any site can serve it: " + "; ".join(problems[:4])
               + (f"; and {len(problems) - 4} more" if len(problems) > 4 else ""))
        reasons += [Reason(name, s, Why.HARDWARE, msg) for s in sites]
    return out


def linear_table(per_replica: float, max_count: int) -> CapacityTable:
    return CapacityTable(tuple(per_replica * c for c in range(1, max_count + 1)), True)


def require_meter(meter: Any, names: Sequence[str]) -> LLMMeter:
    if meter is None:
        raise ScenarioError(f"planning LLM services ({', '.join(names)}) measures replicas with the simulator: "
                            "plan with `lepton-sim plan`, or pass PlanOptions(llm_meter="
                            "lepton_sim.verification.llm_meter.SimulatedReplicas())", path=f"services.{names[0]}")
    return meter

"""The verify loop: plan, simulate, tighten what misses, relax what has slack, then certify.

Every round plans with the current per-service capacity factors (`PlanOptions.service_factor`, the
share of the modelled capacity each of a service's pools is assumed to have), writes the plan into
the scenario (routing `weighted` with the plan's fractions) and simulates it with the seed; the
verdict is per service (and per demand site), simulated latency at the SLO percentile against the
target. Each round has an action:

- `plan`: the first plan, with the caller's factors.
- `tighten`: some service missed. Its factor is scaled by `clamp(target / simulated, 0.25, 0.9)`
  (a near miss tightens by 10 %, an overloaded pool by up to 4x) and the next round re-plans. The
  factor applies to every pool the service could use, so the next plan cannot dodge it by moving.
- `relax`: every SLO is met. The planner's model is conservative, so a service well inside its
  target (simulated below `1 - RELAX_MARGIN` of it) may be paying for capacity it does not use:
  its factor is raised by `target / simulated`, between x`GROW_MIN` and x`GROW_MAX`, and the next
  round re-plans. A cheaper plan that verifies is kept. One that misses is dropped (the loop goes
  back to the last verified plan) and the factor it tried becomes that service's upper end: the
  next try is halfway between the verified factor and it (a bisection). A service whose pools did
  not get cheaper, or whose step has shrunk below x`GROW_MIN`, is left alone.
- `certificate`: the local-optimality certificate (`lepton_sim.verification.certificate`) of the
  last verified deployment; a one-replica-cheaper neighbour that verifies is adopted and certified
  in turn.

At most `rounds` rounds in all (one is kept for the certificate once an SLO-meeting plan exists)
and, with `time_limit_s`, no new round or certificate simulation after that many seconds; a
certificate cut short says so and lists what it did not check, and never claims to hold. The
result is a pure function of the scenario, the options and the seed when no time limit cuts it.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from lepton_sim.planner.options import PlanOptions
from lepton_sim.planner.plan import plan
from lepton_sim.planner.result import PlanResult
from lepton_sim.scenario.schema import Scenario
from lepton_sim.verification.certificate import Certificate, Entry, certificate_pass, unchecked
from lepton_sim.verification.checks import Check, Simulated, check_lines, target_of
from lepton_sim.verification.deployment import Lines, Pricing, deployment_key, lines_of
from lepton_sim.verification.llm_meter import with_meter

SHRINK_MIN, SHRINK_MAX = 0.25, 0.9
RELAX_MARGIN = 0.03  # a service simulated more than 3 % under its target has slack worth trying
GROW_MIN, GROW_MAX = 1.02, 1.25  # a relaxing step raises a factor by at least 2 % and at most 25 %
IDLE_STEPS = 4  # steps that leave a service's pools no cheaper before it is left alone (1.25^4 = 2.4x at most)
CHEAPER_USD = 1e-9  # a plan this much cheaper per hour, or more, is cheaper (solver noise below)

Action = Literal["plan", "tighten", "relax", "certificate"]


@dataclass(frozen=True)
class Round:
    """One round: the deployment simulated, its verdicts, and what the loop did with it."""

    index: int
    action: Action
    plan: PlanResult  # the MILP plan this round's deployment is (or, for the certificate, descends from)
    lines: Lines
    usd_per_hour: float
    services: dict[str, Check]
    by_site: dict[str, dict[str, Check]]
    tightened: dict[str, float]  # service -> capacity factor for the next round (empty when all met or last)
    metrics: dict[str, Any]
    factors: dict[str, float] = field(default_factory=dict)  # the capacity factors the plan was made with
    relaxed: dict[str, float] = field(default_factory=dict)  # service -> factor this relax round tried
    kept: bool = False  # this round's deployment became the current verified one
    note: str = ""  # what the loop concluded from the round
    entries: tuple[Entry, ...] = ()  # a certificate round's checks

    @property
    def met(self) -> bool:
        return all(c.met for c in self.services.values())

    def missed(self) -> list[str]:
        return [n for n, c in self.services.items() if not c.met]


@dataclass(frozen=True)
class Replan:
    """A relaxing re-plan that was not simulated: no cheaper, or a deployment already seen to miss."""

    after_round: int
    relaxed: dict[str, float]  # service -> factor tried
    usd_per_hour: float
    note: str


@dataclass(frozen=True)
class Verified:
    """Every round, the final deployment (the last one kept; the last round when none met every SLO) and its
    certificate."""

    rounds: tuple[Round, ...]
    seed: int
    certificate: Certificate
    final_index: int = 0  # position in `rounds` of the final deployment's round
    stopped: str = ""  # why the loop ended
    replans: tuple[Replan, ...] = ()

    @property
    def final(self) -> Round:
        return self.rounds[self.final_index]

    @property
    def met(self) -> bool:
        return self.final.met

    @property
    def final_from(self) -> str:
        """"milp" when the final deployment is a plan the MILP made, "local search" when the certificate's descent
        took replicas off one."""
        return "local search" if self.final.action == "certificate" else "milp"

    @property
    def milp_round(self) -> Round:
        """The round whose MILP plan the final deployment is, or descends from."""
        return next(r for r in self.rounds if r.plan is self.final.plan and r.action != "certificate")

    @property
    def first_met(self) -> Round | None:
        """The first round that met every SLO (the plan before any relaxing)."""
        return next((r for r in self.rounds if r.met and r.action in ("plan", "tighten")), None)


Progress = Callable[[Round | Entry | Replan], None]


Seen = dict[tuple[Any, ...], Simulated]  # deployment -> its simulation (one seed: the same verdict again)


class _Run:
    """What one verify run carries from phase to phase: its limits, its record and the simulations made."""

    def __init__(self, scenario: Scenario, options: PlanOptions, seed: int, rounds: int, time_limit_s: float | None,
                 progress: Progress | None) -> None:
        self.scenario, self.options, self.seed, self.rounds = scenario, options, seed, rounds
        self.deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
        self.progress = progress
        self.done: list[Round] = []
        self.replans: list[Replan] = []
        self.seen: Seen = {}

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def next_index(self) -> int:
        return len(self.done) + 1

    def record(self, r: Round) -> Round:
        self.done.append(r)
        self._tell(r)
        return r

    def replan(self, r: Replan) -> None:
        self.replans.append(r)
        self._tell(r)

    def _tell(self, item: Round | Replan) -> None:
        if self.progress is not None:
            self.progress(item)

    def plan(self, factors: Mapping[str, float]) -> PlanResult:
        return plan(self.scenario, self.options.with_(service_factor=MappingProxyType(dict(factors))))

    def simulate(self, lines: Lines, result: PlanResult) -> Simulated:
        sim = check_lines(self.scenario, lines, self.seed, result)
        self.seen[deployment_key(lines)] = sim
        return sim


def verify(scenario: Scenario, options: PlanOptions = PlanOptions(), rounds: int = 6, seed: int | None = None,
           time_limit_s: float | None = None, progress: Progress | None = None) -> Verified:
    """Plan, simulate, tighten, relax and certify within `rounds` rounds and `time_limit_s` seconds."""
    seed = scenario.seed if seed is None else seed
    run = _Run(scenario, with_meter(options), seed, rounds, time_limit_s, progress)
    best = _tighten(run)
    if best is None:
        stopped = "time limit" if run.out_of_time() and len(run.done) < rounds else "rounds"
        cert = Certificate(None, False, (), seed, None, "no deployment met every SLO: nothing to certify")
        return Verified(tuple(run.done), seed, cert, len(run.done) - 1, stopped, tuple(run.replans))
    best, cert, stopped = _certify(run, _relax(run, best))
    return Verified(tuple(run.done), seed, cert, next(i for i, r in enumerate(run.done) if r is best), stopped,
                    tuple(run.replans))


def _tighten(run: _Run) -> Round | None:
    """Plan and tighten until a plan meets every SLO (that round) or the budget runs out (None)."""
    scenario = run.scenario
    factors: dict[str, float] = dict(run.options.service_factor)
    action: Action = "plan"
    while len(run.done) < run.rounds and not (run.done and run.out_of_time()):
        result = run.plan(factors)
        sim = run.simulate(lines_of(result), result)
        tightened: dict[str, float] = {}
        if not sim.met and run.next_index() < run.rounds:
            for name in sim.missed():
                chk = sim.services[name]
                slo_ms = target_of(scenario, name, chk)[1]
                ratio = slo_ms / chk.judged_ms if chk.judged_ms else SHRINK_MIN
                tightened[name] = factors.get(name, 1.0) * min(max(ratio, SHRINK_MIN), SHRINK_MAX)
        tight = ", ".join(f"{n} to x{f:.3g}" for n, f in tightened.items())
        note = "kept" if sim.met else (f"tightening {tight}" if tightened else "out of rounds")
        r = run.record(Round(run.next_index(), action, result, lines_of(result), result.usd_per_hour, sim.services,
                             sim.by_site, tightened, sim.metrics, dict(factors), kept=sim.met, note=note))
        if r.met:
            return r
        if not tightened:
            return None
        factors.update(tightened)
        action = "tighten"
    return None


def _relax(run: _Run, best: Round) -> Round:
    """Raise the factors of services with slack while plans get cheaper and verify; the cheapest verified round.

    Re-planning is cheap and simulating is not, so only a re-plan that is cheaper than the current
    verified one and has not been simulated yet becomes a round. A re-plan giving the verified
    deployment again keeps the raised factors (the same deployment meets its SLOs whatever the
    model assumed) and the next step starts from there: a plan is discrete, and a step too small
    to change it is not a reason to stop. A service whose pools got no cheaper for `IDLE_STEPS`
    steps running, or whose re-plan was another deployment at no lower cost, is left alone. A
    deployment already seen to miss moves the bisection on at once (same deployment, same seed,
    same verdict).
    """
    upper: dict[str, float] = {}  # service -> the lowest factor known to miss
    alone: set[str] = set()  # services left alone from now on
    idle: dict[str, int] = {}  # service -> steps running its pools got no cheaper
    factors_now = dict(best.factors)  # factors known to give the verified deployment
    while len(run.done) < run.rounds - 1 and not run.out_of_time():
        trial = _relax_trial(run.scenario, best, factors_now, upper, alone)
        if not trial:
            break
        factors = {**factors_now, **trial}
        result = run.plan(factors)
        lines = lines_of(result)
        pricing = Pricing.of(run.scenario, result)
        flat = {s for s in trial if pricing.service_replicas_usd_per_hour(lines, s)
                >= pricing.service_replicas_usd_per_hour(best.lines, s) - CHEAPER_USD}
        for name in trial:
            idle[name] = idle.get(name, 0) + 1 if name in flat else 0
            if idle[name] >= IDLE_STEPS:
                alone.add(name)
        key = deployment_key(lines)
        if key == deployment_key(best.lines):
            factors_now = factors
            run.replan(Replan(best.index, dict(trial), result.usd_per_hour, "the same deployment: factors kept"))
            continue
        if result.usd_per_hour >= best.usd_per_hour - CHEAPER_USD:
            alone |= flat or set(trial)
            run.replan(Replan(best.index, dict(trial), result.usd_per_hour,
                              f"not cheaper: {', '.join(sorted(flat or trial))} left alone"))
            continue
        if key in run.seen and not run.seen[key].met:
            culprits = _culprits(trial, run.seen[key].missed())
            upper.update({s: trial[s] for s in culprits})
            run.replan(Replan(best.index, dict(trial), result.usd_per_hour,
                              f"a deployment already seen to miss: bisecting the factor of {', '.join(culprits)}"))
            continue
        sim = run.simulate(lines, result)
        if sim.met:
            note = f"kept: ${best.usd_per_hour - result.usd_per_hour:.4f}/h cheaper, every SLO met"
        else:
            culprits = _culprits(trial, sim.missed())
            upper.update({s: trial[s] for s in culprits})
            note = f"dropped: back to round {best.index}'s plan, bisecting the factor of {', '.join(culprits)}"
        r = run.record(Round(run.next_index(), "relax", result, lines, result.usd_per_hour, sim.services,
                             sim.by_site, {}, sim.metrics, factors, dict(trial), kept=sim.met, note=note))
        if r.kept:
            best, factors_now = r, factors
    return best


def _relax_trial(scenario: Scenario, best: Round, factors: Mapping[str, float], upper: Mapping[str, float],
                 alone: set[str]) -> dict[str, float]:
    """Service -> the factor to try next, for every service with slack not left alone (`alone` gains the converged)."""
    trial: dict[str, float] = {}
    for name, chk in best.services.items():
        slo_ms = target_of(scenario, name, chk)[1]
        if name in alone or not chk.judged_ms or chk.judged_ms >= slo_ms * (1.0 - RELAX_MARGIN):
            continue
        f = factors.get(name, 1.0)
        new = f * min(max(slo_ms / chk.judged_ms, GROW_MIN), GROW_MAX)
        if name in upper:
            new = min(new, 0.5 * (f + upper[name]))
        if new < f * GROW_MIN:
            alone.add(name)  # the bisection has closed in: nothing worth another round
            continue
        trial[name] = new
    return trial


def _culprits(trial: Mapping[str, float], missed: list[str]) -> list[str]:
    """The relaxed services to blame for a miss: those that missed, else (a shared link, say) all relaxed."""
    return [s for s in trial if s in missed] or list(trial)


def _certify(run: _Run, best: Round) -> tuple[Round, Certificate, str]:
    """Certificate passes from `best` down while a neighbour verifies: the final round, its certificate, and why
    the loop ended."""
    while True:
        pricing = Pricing.of(run.scenario, best.plan)
        if len(run.done) >= run.rounds or run.out_of_time():
            why = "rounds" if len(run.done) >= run.rounds else "time limit"
            note = f"the {why} ran out before the certificate of round {best.index}'s deployment"
            cert = Certificate(None, False, unchecked(best.lines, pricing, f"{why} ran out"), run.seed,
                               best.usd_per_hour, note)
            return best, cert, why
        p = certificate_pass(run.scenario, best.lines, pricing, run.seed, run.deadline, run.progress, run.seen)
        if p.adopted is not None:
            lines, sim, entry = p.adopted
            best = run.record(Round(run.next_index(), "certificate", best.plan, lines, pricing.usd_per_hour(lines),
                                    sim.services, sim.by_site, {}, sim.metrics, dict(best.factors), kept=True,
                                    entries=p.entries,
                                    note=f"adopted {entry.pool} at {entry.count - 1} replica(s): "
                                         f"${entry.saved_usd_per_hour or 0.0:.4f}/h cheaper, every SLO met"))
            continue
        holds = p.complete
        note = ("holds: every deployment one replica cheaper misses an SLO" if holds else
                "incomplete: the time limit ran out (not checked: "
                + ", ".join(e.pool for e in p.entries if e.outcome == "not checked") + ")")
        run.record(Round(run.next_index(), "certificate", best.plan, best.lines, best.usd_per_hour, best.services,
                         best.by_site, {}, best.metrics, dict(best.factors), entries=p.entries, note=note))
        cert = Certificate(True if holds else None, holds, p.entries, run.seed, best.usd_per_hour,
                           "" if holds else "the time limit ran out during the certificate")
        return best, cert, "certificate" if holds else "time limit"

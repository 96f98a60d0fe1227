"""A problem prepared in two processes is the problem one process prepares, and its tables reach the store."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lepton_sim.planner import PlanOptions, plan
from lepton_sim.planner.measured import STATS, MemoryStore
from lepton_sim.planner.problem import Problem, build_problem
from lepton_sim.scenario import parse_scenario
from lepton_sim.tablecache import DiskStore


def _facts(p: Problem) -> tuple[Any, ...]:
    cands = [(c.index, c.key, c.tier, c.budget_s, c.miss, c.table.rps, c.table.linear, c.table.rel_se, c.max_count,
              c.usd_per_hour, c.admits) for c in p.candidates]
    arcs = [(a.index, a.demand, a.candidate, a.path, a.usd_per_hour_per_rps) for a in p.arcs]
    maps = (dict(p.arcs_of_demand), dict(p.arcs_of_candidate), dict(p.candidates_of_service))
    resources = [(r.id, r.kind, r.limit, r.candidate_coef, r.arc_coef, r.services, r.max_use) for r in p.resources]
    return cands, arcs, maps, resources, list(p.pruned.items()), [(r.service, r.site, r.why, r.message)
                                                                  for r in p.reasons]


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_two_processes_prepare_the_same_problem(generator: Callable[..., dict[str, Any]], tmp_path: Path,
                                                kind: str) -> None:
    s = parse_scenario(generator(40, 10, seed=3), file="<generated>")
    one = build_problem(s, PlanOptions(baselines=False, prep_workers=1, tables=MemoryStore()))
    store = MemoryStore() if kind == "memory" else DiskStore(tmp_path)
    two = build_problem(s, PlanOptions(baselines=False, prep_workers=2, tables=store))
    assert len(one.candidates) > 100 and any(c.profile.max_batch > 1 for c in one.candidates)
    assert _facts(two) == _facts(one)
    # the child's tables joined the plan's store: preparing again from it simulates nothing
    trials = STATS.trials
    if kind == "disk":
        store = DiskStore(tmp_path)  # a new process's view: only what reached the file
    again = build_problem(s, PlanOptions(baselines=False, prep_workers=1, tables=store))
    assert STATS.trials == trials and _facts(again) == _facts(one)


def test_the_plan_is_the_same(generator: Callable[..., dict[str, Any]]) -> None:
    s = parse_scenario(generator(24, 10, seed=4), file="<generated>")
    a = plan(s, PlanOptions(baselines=False, prep_workers=1, tables=MemoryStore()))
    b = plan(s, PlanOptions(baselines=False, prep_workers=2, tables=MemoryStore()))
    assert a.deployment() == b.deployment() and a.usd_per_hour == pytest.approx(b.usd_per_hour, rel=1e-12)
    assert np.isfinite(a.usd_per_hour)


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_llm_replica_types_searched_in_two_processes_give_the_same_problem(tmp_path: Path, kind: str) -> None:
    """Each replica type's capacity search in a forked child, the services then added from the stored trials:
    the same candidates, capacities and curves as one process, the same count of trials, and nothing simulated
    when prepared again from the store."""
    from tests.planner.test_plan_llm import tiny  # noqa: PLC0415 - the small LLM instance

    from lepton_sim.verification.llm_meter import SimulatedReplicas  # noqa: PLC0415

    s = tiny()
    trials, cached = STATS.trials, STATS.cached
    one = build_problem(s, PlanOptions(baselines=False, prep_workers=1, tables=MemoryStore(),
                                       llm_meter=SimulatedReplicas()))
    serial = (STATS.trials - trials, STATS.cached - cached)
    store = MemoryStore() if kind == "memory" else DiskStore(tmp_path)
    trials, cached = STATS.trials, STATS.cached
    two = build_problem(s, PlanOptions(baselines=False, prep_workers=2, tables=store, llm_meter=SimulatedReplicas()))
    # the children's trials are counted as trials, not as the cache hits this process read them back as
    assert serial[0] > 20 and (STATS.trials - trials, STATS.cached - cached) == serial
    assert _facts(two) == _facts(one)
    assert [sorted(c.llm.curve.trials.items()) for c in two.candidates] == \
        [sorted(c.llm.curve.trials.items()) for c in one.candidates]
    if kind == "disk":
        store = DiskStore(tmp_path)
    trials = STATS.trials
    again = build_problem(s, PlanOptions(baselines=False, prep_workers=2, tables=store, llm_meter=SimulatedReplicas()))
    assert STATS.trials == trials and _facts(again) == _facts(one)

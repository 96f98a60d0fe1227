"""An LLM service's candidates and arcs in the planner's problem (`planner.llm` measures their capacity).

A deployment line of an LLM service is (service, site, hardware, variant, tensor-parallel degree):
each degree is its own line, so a site can run one hardware type and variant at two degrees as two
pools (`chat@dc/big/int8` and `chat@dc/big/int8#2`, in the order of their degrees), a mix that can
carry a rate neither degree carries alone at the same cost. Within a degree, each distinct TTFT
budget (target less the route's network time) is a tier as for other services, and the MILP opens
at most one tier per line. A replica uses `tensor_parallel` of the site's slots of its hardware and
costs that many devices.

The capacity searches of replica types not searched before run first, one type at a time in two
forked processes (`_search_in_parallel`, as `problem.py` prepares large problems); the services
are then added in this process from the trials the children stored, so the problem does not
depend on which child searched which type (`tests/planner/test_prepare_parallel.py`).
"""
from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from typing import Any

import numpy as np

from lepton_sim.network import Topology
from lepton_sim.planner.errors import Reason
from lepton_sim.planner.llm import (LLMInfo, Option, Search, check_service, levels_of, linear_table, options_of,
                                    require_meter)
from lepton_sim.planner.measured import MEMORY, STATS
from lepton_sim.planner.options import PlanOptions
from lepton_sim.planner.paths import network_floor_s
from lepton_sim.planner.problem import (NEGLIGIBLE, Arc, Candidate, Problem, RecordingStore, Ticker, explain_unserved,
                                        needed_count, prep_processes, put_all)
from lepton_sim.planner.variants import compression_order
from lepton_sim.errors import ScenarioError
from lepton_sim.scenario.schema import Scenario


def replica_options(scenario: Scenario, names: Sequence[str], hosts: dict[str, list[tuple[str, int]]],
                    options: PlanOptions, policy: str, reasons: list[Reason]) -> dict[str, list[Option]]:
    """Service -> the replica types it may use (`policy` "uncompressed": the least compressed variant per hardware
    and degree only); raises ScenarioError listing what stops the planner from planning them."""
    problems = [pm for n in names for pm in check_service(scenario, n, scenario.services[n])]
    if problems:
        raise ScenarioError("; ".join(f"{path}: {msg}" for path, msg in problems), path=problems[0][0])
    require_meter(options.llm_meter, names)
    out: dict[str, list[Option]] = {}
    for name in names:
        svc = scenario.services[name]
        opts = options_of(scenario, name, svc, sorted(hosts), options.tensor_parallel, reasons)
        if policy == "uncompressed":
            model = scenario.models[svc.model]
            least: dict[tuple[str, int], Option] = {}
            for o in opts:
                k = (o.shape.hardware, o.shape.tensor_parallel)
                order = (compression_order(model.variants[o.shape.variant]), o.shape.variant)
                if k not in least or order < (compression_order(model.variants[least[k].shape.variant]),
                                              least[k].shape.variant):
                    least[k] = o
            opts = [o for o in opts if least[(o.shape.hardware, o.shape.tensor_parallel)] is o]
        out[name] = opts
    return out


def possible_routes(scenario: Scenario, topology: Topology, hosts: dict[str, list[tuple[str, int]]],
                    replicas: dict[str, list[Option]]) -> list[tuple[str, str, str]]:
    """(service, demand site, pool site) of LLM services whose network floor alone fits within the TTFT target."""
    from lepton_sim.planner.paths import message_bits

    bits = message_bits(scenario)
    out = []
    for name, opts in replicas.items():
        svc = scenario.services[name]
        assert svc.slo.ttft is not None
        sites = sorted({site for o in opts for site, cap in hosts.get(o.shape.hardware, [])
                        if cap >= o.shape.tensor_parallel})
        for src in sorted({d.site for d in svc.demand}):
            for dst in sites:
                route = topology.route(src, dst)
                if route is not None and network_floor_s(scenario, route, *bits[name]) < svc.slo.ttft.latency_ms / 1e3:
                    out.append((name, src, dst))
    return out


def add_llm_services(p: Problem, replicas: dict[str, list[Option]], hosts: dict[str, list[tuple[str, int]]],
                     tell: Ticker) -> None:
    """Candidates and arcs of every LLM service; a reason for each demand site none can serve.

    Replica types whose capacity searches have not run before are searched first in two forked
    processes where there are two or more (`_search_in_parallel`); the services are then added here
    from the trials they stored, in order, so the problem is the one a single process builds."""
    meter = require_meter(p.options.llm_meter, list(replicas))
    done = _search_in_parallel(p, replicas, hosts, meter, tell)
    for i, (name, opts) in enumerate(replicas.items()):
        if opts:
            _add_service(p, name, opts, hosts, meter)
        tell(lambda: f"planner: LLM replica capacities of {i + 1}/{len(replicas)} services")
    STATS.trials += done[0]  # the children's trials, which the pass above read back as cache hits
    STATS.cached -= done[0]
    STATS.seconds += done[1]


PARALLEL_MIN_SHAPES = 2  # replica types to search before two processes are worth forking
_FORKED: tuple[Any, ...] = ()  # (problem, replica types, hosts, meter) as the children inherit them
_CHILD_STORE: RecordingStore | None = None


def _search_in_parallel(p: Problem, replicas: dict[str, list[Option]], hosts: dict[str, list[tuple[str, int]]],
                        meter: Any, tell: Ticker) -> tuple[int, float]:
    """Run the capacity searches of every replica type not searched before, one type at a time in whichever of
    two forked children is free, each exactly as `_add_service` runs it (on a scratch problem), and put the
    trials they made into the plan's store. (trials run, seconds of simulation) in the children."""
    global _FORKED
    store = p.options.tables if p.options.tables is not None else MEMORY
    jobs = []
    for name, opts in replicas.items():
        svc = p.scenario.services[name]
        levels = _levels(svc)
        for i, opt in enumerate(opts):
            if not Search(p.scenario, opt.shape, meter, store, levels, opt.lone_s).started():
                jobs.append((name, i))
    workers = prep_processes(p.options, len(jobs), PARALLEL_MIN_SHAPES)
    if workers <= 1:
        return 0, 0.0
    _FORKED = (p, replicas, hosts, meter)
    try:
        pool = multiprocessing.get_context("fork").Pool(workers)
    except OSError:
        _FORKED = ()
        return 0, 0.0  # this process searches them as it adds the services
    trials, seconds = 0, 0.0
    try:
        for k, (added, n, s) in enumerate(pool.imap_unordered(_search_one, jobs)):
            put_all(store, added)
            trials += n
            seconds += s
            tell(lambda: f"planner: LLM replica capacities of {k + 1}/{len(jobs)} replica types in {workers} "
                         f"processes ({trials} replica trials)")
    finally:
        pool.terminate()
        _FORKED = ()
    return trials, seconds


def _search_one(job: tuple[str, int]) -> tuple[dict[str, dict], int, float]:
    """In a child: one replica type's searches, as `_add_service` runs them; the trials added, their count and
    seconds."""
    global _CHILD_STORE
    p, replicas, hosts, meter = _FORKED
    if _CHILD_STORE is None:
        _CHILD_STORE = RecordingStore.copy_of(p.options.tables)
    name, i = job
    q = Problem(p.scenario, p.options.with_(tables=_CHILD_STORE, progress=None), p.paths, p.demands,
                demand_keys_of_service=p.demand_keys_of_service)
    trials, seconds = STATS.trials, STATS.seconds
    _add_service(q, name, [replicas[name][i]], hosts, meter)
    return _CHILD_STORE.hand_over(), STATS.trials - trials, STATS.seconds - seconds


def _levels(svc: Any) -> tuple[float, ...]:
    """The quantile levels a service's replicas are measured at (`levels_of`, in order)."""
    free, linked, tpot_level = levels_of(svc)
    return tuple(sorted({free, linked, tpot_level}))


def _add_service(p: Problem, name: str, opts: list[Option], hosts: dict[str, list[tuple[str, int]]],
                 meter: Any) -> None:
    sc = p.scenario
    svc = sc.services[name]
    assert svc.slo.ttft is not None and svc.slo.tpot is not None
    demands = p.demands_of(name)
    free, linked, tpot_level = levels_of(svc)
    levels = _levels(svc)
    ttft_s, tpot_s = svc.slo.ttft.latency_ms / 1e3, svc.slo.tpot.latency_ms / 1e3
    route_miss = 1.0 - svc.slo.ttft.percentile / 100.0
    peak = {d.site: d for d in demands}
    served: set[str] = set()
    best: dict[str, tuple[float, str]] = {}  # demand site -> (lowest TTFT measured at any rate + network, where)
    for opt in opts:
        shape = opt.shape
        search = Search(sc, shape, meter, p.options.tables, levels, opt.lone_s)
        tp = shape.tensor_parallel
        hw = sc.hardware[shape.hardware]
        price = tp * (hw.cost_per_hour + hw.power_w / 1e3 * p.options.energy_usd_per_kwh)
        for site, cap in hosts.get(shape.hardware, []):
            max_count = cap // tp
            if max_count < 1:
                p.pruned["LLM replicas wider than a site's slots"] += 1
                continue
            key = (name, site, shape.hardware, shape.variant)
            factor = p.options.factor(key)
            budgets: dict[str, tuple[float, float]] = {}  # demand site -> (TTFT budget, its level)
            for d in demands:
                path = p.paths.path(name, d.site, site, route_miss)
                if path is None:
                    continue
                budget = ttft_s - path.latency_s
                if budget <= 0:
                    p.pruned["arcs: network time misses the TTFT target"] += 1
                    continue
                budgets[d.site] = (budget, free if path.hops == 0 else linked)
            for level_b in sorted({b for b, _ in budgets.values()}, reverse=True):
                admits = tuple(sorted(s for s, (b, _) in budgets.items() if b >= level_b))
                level = max(budgets[s][1] for s in admits)
                per_replica = search.capacity(level_b, level, tpot_s, tpot_level)
                low = min(search.curve.trials) if search.curve.trials else None
                for s in admits:
                    if low is not None:
                        path = p.paths.path(name, s, site, route_miss)
                        assert path is not None
                        t = search.curve.trials[low]
                        k = levels.index(budgets[s][1])
                        seen = path.latency_s + t.ttft_s[k]
                        if s not in best or seen < best[s][0]:
                            best[s] = (seen, f"{site}/{shape.hardware}/{shape.variant} tp {tp} at "
                                             f"{low:.3g} rps: network {path.latency_s * 1e3:.2f} ms + TTFT "
                                             f"{t.ttft_s[k] * 1e3:.2f} ms, TPOT {t.tpot_s[levels.index(tpot_level)] * 1e3:.2f} ms")
                if per_replica <= 0:
                    p.pruned["LLM tiers: no rate meets TTFT and TPOT"] += 1
                    continue
                total = sum(peak[s].peak_rps for s in admits)
                table = linear_table(per_replica, max_count)  # the candidate applies the factor
                if factor * table.at(max_count) < NEGLIGIBLE * min(peak[s].peak_rps for s in admits):
                    p.pruned["tiers with negligible capacity"] += 1
                    continue
                need = needed_count(factor * np.array(table.rps), total)
                p.pruned["replica counts above the need"] += max_count - need
                tier = sum(1 for c in p.candidates if c.key == key)
                info = LLMInfo(shape, search.curve, level, tpot_level, tpot_s, per_replica)
                c = Candidate(len(p.candidates), key, tier, level_b, 1.0 - level, None, table.cut(need), factor, need, price,
                              tp * hw.power_w, admits, tensor_parallel=tp, llm=info)
                p.candidates.append(c)
                p.candidates_of_service[name].append(c.index)
                for s in admits:
                    path = p.paths.path(name, s, site, route_miss)
                    assert path is not None
                    d = peak[s]
                    egress = path.egress_usd_per_request * 3600.0 * d.mean_rps / d.peak_rps
                    arc = Arc(len(p.arcs), d.key, c.index, path, egress)
                    p.arcs.append(arc)
                    p.arcs_of_demand[d.key].append(arc.index)
                    p.arcs_of_candidate[c.index].append(arc.index)
                served |= set(admits)
    ttft, tpot = svc.slo.ttft, svc.slo.tpot
    explain_unserved(p, name, demands, served, best,
                     "no site holding hardware that can serve this service is reachable within the TTFT target",
                     lambda seen, where: f"no replica meets TTFT p{ttft.percentile:g} <= {ttft.latency_ms:g} ms and "
                                         f"TPOT p{tpot.percentile:g} <= {tpot.latency_ms:g} ms at any rate; the best "
                                         f"at the lowest rate measured: {seen * 1e3:.2f} ms to the first token ({where})")

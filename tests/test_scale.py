"""Scale work, checked against the implementations it replaced (kept here as reference oracles).

- Routes: per-source Dijkstra trees (with networkx's bidirectional search for exact ties) give the
  same hops and latencies as one `nx.shortest_path` per pair, on every shipped scenario, generated
  fleets and small random graphs full of ties, with links down.
- Routing: least-latency / least-loaded / nearest that stop early on lazily made, sorted candidates
  make exactly the decisions of the old full scans (every decision logged and compared, and the
  metrics), with and without failures.
- Loading: the C YAML loader gives the same data and the same error messages; identical
  deployment lines share one service-time table.
"""
from __future__ import annotations

import copy
import math
import random
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import networkx as nx
import pytest
import yaml

import lepton_sim.sim.engine as engine
import lepton_sim.sim.routing as routing
from lepton_sim.errors import ScenarioError
from lepton_sim.metrics import build_metrics
from lepton_sim.network import Hop, Route, Topology
from lepton_sim.scenario import load_scenario, parse_scenario
from lepton_sim.scenario import load as load_mod
from lepton_sim.scenario.schema import Link, Scenario, is_llm
from lepton_sim.servicetime import BatchTimesCache, batch_times
from lepton_sim.sim.common import EPS_S
from lepton_sim.sim.engine import Simulation
from lepton_sim.sim.routing import Candidate, Router

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from sim_scale import fleet  # noqa: E402

SHIPPED = sorted(p for p in (ROOT / "scenarios").rglob("*.yaml") if "sweeps" not in p.parts)


def _shipped() -> list[tuple[str, Scenario]]:
    out = []
    for p in SHIPPED:
        try:
            out.append((str(p.relative_to(ROOT)), load_scenario(p)))
        except ScenarioError:
            continue  # not a scenario file (a calibration or validation input)
    return out


# --- the old route finder: one bidirectional Dijkstra per pair -------------------------------


def old_route(topo: Topology, src: str, dst: str, down: frozenset[int] = frozenset()) -> Route | None:
    if src == dst:
        return Route((), 0.0)

    def weight(u: str, v: str, d: dict) -> float | None:
        return None if d["index"] in down else d["latency_s"] + 1e-12

    try:
        path = nx.shortest_path(topo.graph, src, dst, weight=weight)
    except nx.NetworkXNoPath:
        return None
    hops = tuple(Hop(topo.graph.edges[u, v]["index"], u, v) for u, v in zip(path, path[1:]))
    return Route(hops, sum(topo.links[h.link_index].latency_ms for h in hops) / 1e3)


def _check_routes(s: Scenario, downs: list[frozenset[int]]) -> int:
    """Every pair's route under every `down` set equals the old one; returns how many were tied."""
    topo = Topology(s)
    ref = Topology(s)  # a fresh one for latency(), so that no route was made there first
    sites = list(s.sites)
    for down in downs:
        for a in sites:
            for b in sites:
                new = topo.route(a, b, down)
                assert new == old_route(topo, a, b, down), (a, b, sorted(down))
                lat = ref.latency(a, b, down)
                assert lat == (None if new is None else new.latency_s), (a, b)
            order = list(Topology(s).by_latency(a, down))
            lats = [lat for lat, _ in order]
            assert lats == sorted(lats)
            reach = {b for b in sites if topo.route(a, b, down) is not None}
            assert sorted(b for _, b in order) == sorted(reach)
            assert all(lat == topo.route(a, b, down).latency_s for lat, b in order)  # type: ignore[union-attr]
    return sum(len(t.tied) for t in topo._trees.values())


def _downs(s: Scenario, k: int = 4) -> list[frozenset[int]]:
    n = len(s.links)
    out = [frozenset()] + [frozenset({i}) for i in range(min(n, k))]
    if n >= 2:
        out.append(frozenset({0, n - 1}))
    return out


def test_routes_equal_the_old_per_pair_search_on_shipped_scenarios() -> None:
    scenarios = _shipped()
    assert any(name.endswith("metro-fleet.yaml") for name, _ in scenarios)
    for _name, s in scenarios:
        _check_routes(s, _downs(s))


@pytest.mark.parametrize("n", [10, 37])
def test_routes_equal_the_old_per_pair_search_on_generated_fleets(n: int) -> None:
    s = parse_scenario(fleet(n, 1.0))
    tied = _check_routes(s, _downs(s, 2))
    if n >= 37:
        assert tied > 0  # the ring of regions makes exact ties: the networkx tie-break is exercised


def _random_graph(seed: int) -> dict:
    rng = random.Random(seed)
    n = rng.randint(4, 12)
    names = [f"s{i}" for i in range(n)]
    pairs = {tuple(sorted(rng.sample(names, 2))) for _ in range(rng.randint(n, 3 * n))}
    links = [{"between": list(p), "bandwidth_gbps": 1, "latency_ms": rng.choice([1, 2, 2, 3, 4, 0.5, 1.5])}
             for p in sorted(pairs)]
    return _graph(names, links)


def _graph(names: Any, links: list[dict]) -> Any:
    """What `Topology` reads of a scenario: its sites and links."""
    return SimpleNamespace(sites={x: None for x in names}, links=[Link.model_validate(x) for x in links])


@pytest.mark.parametrize("seed", range(20))
def test_routes_equal_the_old_search_on_random_graphs_full_of_ties(seed: int) -> None:
    s = _random_graph(seed)
    _check_routes(s, _downs(s, 3))


def test_ties_are_broken_as_networkx_breaks_them() -> None:
    """A square of equal links: two equal two-hop routes between opposite corners."""
    s = _graph("abcd", [{"between": list(p), "bandwidth_gbps": 1, "latency_ms": 2} for p in ("ab", "bd", "ac", "cd")])
    topo = Topology(s)
    for a in "abcd":
        for b in "abcd":
            assert topo.route(a, b) == old_route(topo, a, b)
    assert "d" in topo._trees[("a", frozenset())].tied


def test_routes_are_shared_objects() -> None:
    s = parse_scenario(fleet(10, 1.0))
    topo = Topology(s)
    r = topo.route("e00000", "core")
    assert r is topo.route("e00000", "core")
    r2 = topo.route("e00001", "core")
    assert r is not None and r2 is not None
    assert r.hops[-1] is r2.hops[-1]  # region-00000 -> core, one Hop object


# --- the old routing: every candidate made and scanned -------------------------------------


def _old_load(c: Candidate) -> float:
    p = c.pool
    return p.outstanding * p.per_request_s / p.n_live


def _old_least_loaded(cands: list[Candidate]) -> Candidate:
    best, best_load = cands[0], math.inf
    for c in cands:
        load = _old_load(c)
        if load < best_load:
            best, best_load = c, load
    return best


def _old_least_latency(cands: list[Candidate]) -> Candidate:
    best, best_t = cands[0], math.inf
    for c in cands:
        t = 2.0 * c.latency_s + _old_load(c)
        if t < best_t:
            best, best_t = c, t
    return best


def _old_nearest(cands: list[Candidate]) -> Candidate:
    lowest = cands[0].latency_s
    return _old_least_loaded([c for c in cands if c.latency_s <= lowest + EPS_S])


class _OldRouter(Router):
    """The old Router: a sorted list of every candidate, weighted routing by a linear scan."""

    def __init__(self, site: str, policy: str, cands: list[Candidate], weights: list[float], uniforms: Any,
                 available: Callable) -> None:
        super().__init__(site, policy, cands, weights, uniforms, available)
        self._pick = {"nearest": _old_nearest, "least-loaded": _old_least_loaded,
                      "least-latency": _old_least_latency, "weighted": self._weighted}[policy]

    def _weighted_fast(self) -> Candidate:
        u = self.uniforms() * self.cum[-1]
        for c, w in zip(self.cands, self.cum):
            if u < w:
                return c
        return self.cands[-1]

    def _weighted(self, cands: list[Candidate]) -> Candidate:
        total = sum(self.weight[c.pool.index] for c in cands)
        if total <= 0:
            return _old_least_latency(cands)
        u = self.uniforms() * total
        acc = 0.0
        for c in cands:
            acc += self.weight[c.pool.index]
            if u < acc:
                return c
        return cands[-1]


def _old_candidate(self: Simulation, site: str, pool: Any, down: frozenset[int]) -> Candidate | None:
    route = old_route(self.topology, site, pool.line.site, down)
    if route is None:
        return None
    return Candidate(pool, self._dirs(route), self._dirs(route.reverse()), route.latency_s)


def _old_build_routes(self: Simulation) -> None:
    policy = self.scenario.deployment.routing  # type: ignore[union-attr]
    for name, svc in self.scenario.services.items():
        for d_i, demand in enumerate(svc.demand):
            state = self.demands[(name, demand.site)]
            cands, weights = [], []
            for pool in self.pools:
                if pool.line.service == name:
                    c = self._candidate(demand.site, pool, frozenset())
                    if c is not None:
                        cands.append(c)
                        weights.append((pool.line.weights or {}).get(demand.site, 0.0))
            router = None
            if cands:
                uniforms = engine.Uniforms(engine.stream(self.seed, f"routing/{name}/{d_i}"))
                router = _OldRouter(demand.site, policy, cands, weights, uniforms, self._available)
                self.routers.append(router)
            times = engine.arrival_chunks(demand, engine.stream(self.seed, f"arrivals/{name}/{d_i}"))
            self._sources.append((times, state, router, state.in_bits))


def _logged(sim: Simulation, m: pytest.MonkeyPatch) -> list[tuple[str, int | None]]:
    """Wrap every router's choices so that each decision is logged as (demand site, pool index)."""
    log: list[tuple[str, int | None]] = []
    for r in sim.routers:
        def wrap(f: Callable[[], Candidate | None], site: str = r.site) -> Callable[[], Candidate | None]:
            def chosen() -> Candidate | None:
                c = f()
                log.append((site, None if c is None else c.pool.index))
                return c
            return chosen
        r.fast = wrap(r.fast)
        r.choose = r.fast
    degraded = Router.choose_degraded  # a method of the class: routers have slots, not instance methods

    def chosen_degraded(self: Router) -> Candidate | None:
        c = degraded(self)
        log.append((self.site, None if c is None else c.pool.index))
        return c
    m.setattr(Router, "choose_degraded", chosen_degraded)
    return log


def _run(s: Scenario, old: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[list, dict]:
    with monkeypatch.context() as m:
        if old:
            m.setattr(Simulation, "_build_routes", _old_build_routes)
            m.setattr(Simulation, "_candidate", _old_candidate)
        sim = Simulation(s, engine="event")  # the event engine's routers decide per request
        log = _logged(sim, m)
        rec = sim.run()
    metrics = build_metrics(s, rec)
    metrics.pop("wall_s", None)
    return log, metrics


def _with(s: Scenario, policy: str | None = None, duration: float | None = None, **over: Any) -> Scenario:
    dep = s.deployment
    assert dep is not None
    if policy is not None:
        dep = dep.model_copy(update={"routing": policy})
    upd: dict[str, Any] = {"deployment": dep, **over}
    if duration is not None:
        upd["horizon"] = s.horizon.model_copy(update={"duration_s": duration, "warmup_s": min(s.horizon.warmup_s, duration / 10)})
    return s.model_copy(update=upd)


def _same_decisions(s: Scenario, monkeypatch: pytest.MonkeyPatch) -> int:
    new_log, new_metrics = _run(s, False, monkeypatch)
    old_log, old_metrics = _run(s, True, monkeypatch)
    assert len(new_log) == len(old_log)
    assert new_log == old_log
    _drop_wall(new_metrics), _drop_wall(old_metrics)
    assert new_metrics == old_metrics
    return len(new_log)


def _drop_wall(m: Any) -> None:
    if isinstance(m, dict):
        for k in [k for k in m if "wall" in k]:
            del m[k]
        for v in m.values():
            _drop_wall(v)
    elif isinstance(m, list):
        for v in m:
            _drop_wall(v)


def _sim_cases() -> list[tuple[str, Scenario]]:
    out = []
    for name, s in _shipped():
        if s.deployment is None or any(is_llm(m) for m in s.models.values()):
            continue
        out.append((name, _with(s, duration=min(s.horizon.duration_s, 8.0))))
    return out


@pytest.mark.parametrize("policy", [None, "least-latency", "least-loaded", "nearest"])
def test_routing_decisions_are_the_old_ones_on_shipped_scenarios(policy: str | None,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    decided = 0
    for _name, s in _sim_cases():
        decided += _same_decisions(_with(s, policy), monkeypatch)
    assert decided > 10_000


@pytest.mark.parametrize("policy", ["least-latency", "least-loaded", "nearest"])
@pytest.mark.parametrize("n", [10, 37])
def test_routing_decisions_are_the_old_ones_on_generated_fleets(n: int, policy: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    s = _with(parse_scenario(fleet(n, 2.0)), policy)
    assert _same_decisions(s, monkeypatch) > 1_000


@pytest.mark.parametrize("policy", ["least-latency", "least-loaded"])
def test_routing_decisions_are_the_old_ones_with_failures(policy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Failing replicas and links: degraded routing, rerouting around links, failover."""
    d = fleet(10, 8.0)
    d["failures"] = {"nano": {"mtbf_h": 0.002, "mttr_h": 0.0005}, "l4": {"mtbf_h": 0.003, "mttr_h": 0.001},
                     "region-00000--core": {"mtbf_h": 0.002, "mttr_h": 0.001},
                     "e00000--region-00000": {"mtbf_h": 0.002, "mttr_h": 0.001}}
    s = _with(parse_scenario(d), policy)
    new_log, _ = _run(s, False, monkeypatch)
    assert None in {c for _, c in new_log} or len(new_log) > 1000
    assert _same_decisions(s, monkeypatch) > 1_000


def test_weighted_routing_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    d = fleet(10, 4.0)
    d["deployment"]["routing"] = "weighted"
    for line in d["deployment"]["replicas"]:
        if line["service"] == "detect":
            line["weights"] = {f"e{i:05d}": 0.25 for i in range(10)}
        elif line["service"] == "documents":
            line["weights"] = {f"region-{i:05d}": 0.25 for i in range(3)}
        else:
            line["weights"] = {line["site"]: 1.0}
    assert _same_decisions(parse_scenario(d), monkeypatch) > 1_000


def test_early_stop_reads_few_candidates() -> None:
    """least-latency on a fleet of 100 makes only the candidates it reaches, not 100 per edge site."""
    sim = Simulation(parse_scenario(fleet(100, 0.5)))
    sim.run()
    # a router whose scans reached every candidate holds them as a list (all of them made)
    made = sum(len(r.cands.made) if isinstance(r.cands, routing.LazyCandidates) else len(r.cands) for r in sim.routers)
    assert made < 10 * len(sim.routers)


# --- loading -------------------------------------------------------------------------------


def test_the_c_loader_is_used_and_reads_every_shipped_file_alike() -> None:
    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML without libyaml")
    assert load_mod._FastStrictLoader is not None
    assert issubclass(load_mod._FastStrictLoader, yaml.CSafeLoader)
    files = sorted((ROOT / "scenarios").rglob("*.yaml")) + [load_mod.default_scenario_path()]
    for p in files:
        text = p.read_text(encoding="utf-8")
        assert yaml.load(text, Loader=load_mod._FastStrictLoader) == yaml.load(text, Loader=load_mod._StrictLoader)  # noqa: S506


BROKEN = [
    "a: 1\nb: 2\na: 3\n",
    "services:\n  x: {model: m, model: n}\n",
    "a:\n  - {b: 1, b: 2}\n",
    "a: [1, 2\nb: 3\n",
    "a: {b: 1\n\nc: 2\n",
    "a: 'open\nb: 2\n",
    "a: 1\n b: 2\n",
    "a:\n\t- 1\n",
    "- a\nb: 1\n",
    "a: *nope\n",
    "a: !!python/object:os.system x\n",
    "key: [1, 2]]\n",
]


@pytest.mark.parametrize("text", BROKEN)
def test_broken_yaml_says_the_same_with_the_c_loader(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ScenarioError) as fast:
        load_mod.parse_yaml(text, "f.yaml")
    monkeypatch.setattr(load_mod, "_FastStrictLoader", None)
    with pytest.raises(ScenarioError) as slow:
        load_mod.parse_yaml(text, "f.yaml")
    assert str(fast.value) == str(slow.value)
    assert "line " in str(fast.value)


def test_the_c_loader_itself_rejects_duplicate_keys() -> None:
    if load_mod._FastStrictLoader is None:
        pytest.skip("PyYAML without libyaml")
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'a'"):
        yaml.load("x: {a: 1, a: 2}\n", Loader=load_mod._FastStrictLoader)  # noqa: S506


def test_duplicate_key_message_names_line_and_column() -> None:
    with pytest.raises(ScenarioError, match=r"malformed YAML: line 3, column 1: duplicate key 'a'"):
        load_mod.parse_yaml("a: 1\nb: 2\na: 3\n", "f.yaml")


def test_identical_deployment_lines_share_one_service_time_table(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []

    def counting(model: Any, variant: Any, hw: Any, max_batch: int) -> Any:
        calls.append((hw.name if hasattr(hw, "name") else id(hw), max_batch))
        return batch_times(model, variant, hw, max_batch)

    s = parse_scenario(fleet(37, 1.0))
    sim = Simulation(s, batch_times_fn=counting)
    assert len(calls) == 5  # nano/classify, l4/detect, h100/detect, t4/documents, l4/documents
    ref = Simulation(s, batch_times_fn=lambda *a: batch_times(*a))
    for p, q in zip(sim.pools, ref.pools):
        assert p.batch_times == q.batch_times
    nano = [p.batch_times for p in sim.pools if p.line.hardware == "nano"]
    assert all(t is nano[0] for t in nano)

    # loading checks each distinct line once as well
    seen: list[Any] = []
    real = BatchTimesCache.__call__

    def spy(self: BatchTimesCache, *a: Any) -> Any:
        seen.append(a)
        return real(self, *a)

    monkeypatch.setattr(BatchTimesCache, "__call__", spy)
    parse_scenario(fleet(37, 1.0))
    assert len(seen) == len(s.deployment.replicas)  # type: ignore[union-attr]


def test_the_cache_keys_by_object_so_a_measured_hardware_keeps_its_own_times() -> None:
    s = parse_scenario(fleet(10, 1.0))
    model = s.models["mobilenet"]
    variant = model.variants["int8"]
    hw = s.hardware["nano"]
    other = hw.model_copy(update={"cost_per_hour": hw.cost_per_hour + 1})  # equal name, another object
    got: list[Any] = []
    cache = BatchTimesCache(lambda m, v, h, b: got.append(h) or batch_times(m, v, h, b))
    a = cache(model, variant, hw, 4)
    assert cache(model, variant, hw, 4) is a
    cache(model, variant, other, 4)
    cache(model, variant, hw, 8)
    assert cache.computed == 3 and got[1] is other


def test_errors_are_not_cached() -> None:
    n = 0

    def failing(*a: Any) -> Any:
        nonlocal n
        n += 1
        raise ValueError("no")

    cache = BatchTimesCache(failing)
    for _ in range(2):
        with pytest.raises(ValueError):
            cache(1, 2, 3, 4)
    assert n == 2


def test_a_generated_fleet_runs_deterministically() -> None:
    s = parse_scenario(fleet(37, 1.0))
    a = build_metrics(s, Simulation(s).run())
    b = build_metrics(s, Simulation(copy.deepcopy(s)).run())
    _drop_wall(a), _drop_wall(b)
    assert a == b

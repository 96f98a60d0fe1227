"""The scenario loader on large generated fleets: every problem still reported, in the same order.

The loader's checks over the whole file (names used but not defined, schema errors in file order,
every demand site reaching a replica, weights adding up) used to scan lists or search the network
once per entry; they now use sets, indexes and connected components. These tests compare them with
the straightforward per-entry definitions (written out here) on fleets large enough for a scan to
matter, and pin the order and wording of the problems. No timings: they do not depend on a quiet
machine.
"""
from __future__ import annotations

import copy
import random
import sys
from pathlib import Path

import networkx as nx
import pytest

from lepton_sim.errors import ScenarioError
from lepton_sim.scenario import load as load_mod
from lepton_sim.scenario import parse_scenario

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from sim_scale import fleet  # noqa: E402

FILE = "f.yaml"


def problems(data: dict) -> list[str]:
    """Every problem's line, in the order reported (empty when the scenario is valid)."""
    try:
        parse_scenario(copy.deepcopy(data), file=FILE)
    except ScenarioError as exc:
        return [p.line() for p in exc.problems]
    return []


def edges_of(d: dict) -> list[str]:
    return [k for k, v in d["sites"].items() if v["kind"] == "edge"]


def test_a_large_valid_fleet_has_no_problems() -> None:
    assert problems(fleet(1000, 1.0)) == []


def test_unknown_names_on_a_large_fleet_are_all_reported_in_file_order() -> None:
    d = fleet(1000, 1.0)
    demand = d["services"]["classify"]["demand"]
    replicas = d["deployment"]["replicas"]
    expected: list[tuple[str, str]] = []  # (path, unknown name), in the order the file has them
    for i in (5, 400, 1499):  # links: regions, then the ring, then the edges
        d["links"][i]["between"][0] = "nowhere"
        expected.append((f"links[{i}].between[0]", "site 'nowhere'"))
    for i in (0, 7, 500, 999):
        demand[i]["site"] = f"e{i:05d}x"  # a typo of an existing site, once per demand line
        expected.append((f"services.classify.demand[{i}].site", f"site 'e{i:05d}x'"))
    for i in range(100, 1000, 150):
        replicas[i]["site"] = "e00100x"  # one typo used many times
        expected.append((f"deployment.replicas[{i}].site", "site 'e00100x'"))
    replicas[1100]["hardware"] = "nanoo"
    expected.append(("deployment.replicas[1100].hardware", "hardware type 'nanoo'"))
    replicas[1300]["service"] = "clasify"
    expected.append(("deployment.replicas[1300].service", "service 'clasify'"))
    got = problems(d)
    assert len(got) == len(expected)
    sites = ", ".join(d["sites"])
    for line, (path, what) in zip(got, expected):
        assert line.startswith(f"{FILE}: {path}: unknown {what}"), line
    assert got[3] == (f"{FILE}: services.classify.demand[0].site: unknown site 'e00000x' (did you mean 'e00000'?); "
                      f"sites are: {sites}")
    repeated = [line.split(": ", 2)[2] for line in got if "'e00100x'" in line]
    assert len(repeated) == 6 and len(set(repeated)) == 1  # the same typo says the same thing every time
    assert got[-2].endswith("unknown hardware type 'nanoo' (did you mean 'nano'?); hardware types are: h100, l4, t4, nano")
    assert got[-1].endswith("unknown service 'clasify' (did you mean 'classify'?); services are: classify, detect, documents")


def test_schema_problems_on_a_large_fleet_come_unknown_keys_first_then_in_file_order() -> None:
    d = fleet(1500, 1.0)
    edges = edges_of(d)
    d["deployment"]["replicas"][1200]["cout"] = d["deployment"]["replicas"][1200].pop("count")
    d["services"]["detect"]["demand"][1499]["rate_rps"] = -3
    d["services"]["detect"]["demand"][17]["rate_rps"] = 0
    d["sites"][edges[1400]]["capacity"]["nano"] = -1
    d["sites"][edges[1450]]["capacty"] = {"nano": 1}  # inserted after `capacity`: sorts after it
    d["sites"][edges[10]]["colour"] = "red"
    d["links"][2000]["latency"] = 3
    d["sites"]["core"]["kind"] = "cloud"
    got = [line.split(": ", 1)[1] for line in problems(d)]
    assert got == [
        "sites.e00010.colour: unknown key 'colour'; expected one of: kind, capacity, fabric_gbps, fabric_latency_us",
        "sites.e01450.capacty: unknown key 'capacty'; did you mean 'capacity'? (expected one of: kind, capacity, fabric_gbps, fabric_latency_us)",
        "links[2000].latency: unknown key 'latency'; did you mean 'latency_ms'? (expected one of: between, "
        "bandwidth_gbps, latency_ms, cost_per_gb, sharing)",
        "deployment.replicas[1200].cout: unknown key 'cout'; did you mean 'count'? (count is required and not given)",
        "sites.core.kind: input should be 'datacenter' or 'edge', got 'cloud'",
        "sites.e01400.capacity.nano: input should be greater than or equal to 0, got -1",
        "services.detect.demand[17].rate_rps: input should be greater than 0, got 0",
        "services.detect.demand[1499].rate_rps: input should be greater than 0, got -3",
    ]


def test_positions_with_the_index_are_the_positions_without_it() -> None:
    raw = {"b": {"x": [1, {"q": 1, "p": 2}], "y": 2}, "a": 1, 3: "int key"}
    locs = [("b", "x", 1, "p"), ("b", "y"), ("a",), ("b", "z"), ("c",), (3,), ("b", "x", 5), ("a", "deeper")]
    index: dict = {}
    for loc in locs * 2:
        assert load_mod._position(raw, loc, index) == load_mod._position(raw, loc)


def _reachability_by_search(d: dict) -> list[str]:
    """What the loader says about unreachable demand, by one path search per demand and pool."""
    graph = nx.Graph()
    graph.add_nodes_from(d["sites"])
    graph.add_edges_from(tuple(link["between"]) for link in d["links"])
    out = []
    for name, svc in d["services"].items():
        pools = sorted({r["site"] for r in d["deployment"]["replicas"] if r["service"] == name})
        if not pools:
            out.append(f"{FILE}: services.{name}: the deployment has no replicas of this service")
            continue
        for i, dem in enumerate(svc["demand"]):
            if not any(nx.has_path(graph, dem["site"], p) for p in pools):
                out.append(f"{FILE}: services.{name}.demand[{i}].site: site {dem['site']!r} has no network path to "
                           f"any replica of {name} (replicas at: {', '.join(pools)})")
    return out


@pytest.mark.parametrize("seed", range(3))
def test_unreachable_demand_is_what_a_search_per_demand_finds(seed: int) -> None:
    rnd = random.Random(seed)
    d = fleet(300, 1.0)
    edges = edges_of(d)
    cut_edges = set(rnd.sample(edges, 9))  # single edge sites, and a whole region with its edge sites
    region = f"region-{rnd.randrange(75):05d}"
    edge_set = set(edges)

    def kept(between: list[str]) -> bool:  # the region keeps only its own edge sites
        return not set(between) & cut_edges and (region not in between or bool(set(between) & edge_set))

    d["links"] = [link for link in d["links"] if kept(link["between"])]
    d["services"]["extra"] = {"model": "mobilenet", "slo": {"latency_ms": 10}, "demand": [{"site": "core", "rate_rps": 1}]}
    d["deployment"]["replicas"] = [r for r in d["deployment"]["replicas"]
                                   if not (r["service"] == "documents" and r["site"] == "core")
                                   and not (r["service"] == "detect" and r["site"] == region)]
    expected = _reachability_by_search(d)
    assert len(expected) > 10
    assert problems(d) == expected


def _weights_by_sum(d: dict) -> list[str]:
    """What the loader says about weights, summed over every line of the service per demand."""
    out = []
    for name, svc in d["services"].items():
        for i, dem in enumerate(svc["demand"]):
            total = sum((r.get("weights") or {}).get(dem["site"], 0.0)
                        for r in d["deployment"]["replicas"] if r["service"] == name)
            if abs(total - 1.0) > 1e-6:
                out.append(f"{FILE}: services.{name}.demand[{i}]: weighted routing: the weights for site "
                           f"{dem['site']!r} over the pools of {name} add up to {total:.6g}, expected 1")
    return out


@pytest.mark.parametrize("seed", range(3))
def test_weights_that_do_not_add_up_are_what_a_sum_per_demand_finds(seed: int) -> None:
    rnd = random.Random(seed)
    d = fleet(400, 1.0)
    d["deployment"]["routing"] = "weighted"
    edges = edges_of(d)
    for r in d["deployment"]["replicas"]:
        if r["service"] == "classify":
            r["weights"] = {r["site"]: rnd.choice([1.0, 1.0, 1.0, 0.999])}
        elif r["service"] == "detect":  # three pools per edge site: sums like 0.1 + 0.2 + 0.7
            r["weights"] = {e: rnd.choice([0.1, 0.2, 0.7, 0.3]) for e in edges if rnd.random() < 0.02} \
                if r["site"] != "core" else {e: 0.1 for e in edges}
        else:
            r["weights"] = {r["site"]: 1.0} if rnd.random() < 0.9 else {}
    for r in d["deployment"]["replicas"]:
        if r["service"] == "detect" and r["site"] != "core":
            for e in edges[int(r["site"][-5:]) * 4:int(r["site"][-5:]) * 4 + 4]:
                r["weights"][e] = 0.9 if rnd.random() < 0.8 else 0.2
    expected = _weights_by_sum(d)
    assert len(expected) > 10
    assert problems(d) == expected


def test_components_are_networkx_connected_components() -> None:
    rnd = random.Random(5)
    nodes = [f"n{i}" for i in range(500)]
    edges = [(rnd.choice(nodes), rnd.choice(nodes)) for _ in range(420)]
    comp = load_mod._components(nodes, edges)
    graph = nx.Graph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)
    mine: dict[str, set[str]] = {}
    for n, rep in comp.items():
        mine.setdefault(rep, set()).add(n)
    assert sorted(map(sorted, mine.values())) == sorted(map(sorted, nx.connected_components(graph)))


def test_names_keep_their_order_and_answer_membership() -> None:
    names = load_mod._defined({"b": 1, "a": 2, 3: 4})
    assert names == ["b", "a", "3"] and ", ".join(names) == "b, a, 3"
    assert "a" in names and "3" in names and 3 not in names and "c" not in names and ["a"] not in names

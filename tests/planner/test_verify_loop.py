"""The two-way verify loop: relaxing an over-provisioned plan, the local-optimality certificate, its limits.

Scenarios are `small()` ones (one site, fixed 1 ms compute, 20 s simulated): a run of the loop takes
about a second.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml

from lepton_sim.metrics import build_metrics
from lepton_sim.planner import PlanOptions
from lepton_sim.scenario import parse_scenario
from lepton_sim.sim import simulate
from lepton_sim.verification import verify
from lepton_sim.verification.cli import main
from lepton_sim.verification.deployment import Line, shrunk
from lepton_sim.verification.document import verified_document, verify_section

from planner_helpers import small


def _two_types(rate: float = 1500) -> dict:
    """Two hardware types at one site and a demand a single replica cannot carry."""
    return small(services={"svc": {"model": "mlp", "slo": {"latency_ms": 50},
                                   "service_time": {"dist": "deterministic", "ms": 1},
                                   "demand": [{"site": "dc", "rate_rps": rate}]}})


def _opts(factor: float) -> PlanOptions:
    return PlanOptions(baselines=False, service_factor=MappingProxyType({"svc": factor}))


def test_an_over_provisioned_plan_is_relaxed_to_a_cheaper_verified_one(scenario) -> None:
    # A quarter of the capacity assumed: the first plan opens 3 replicas where 1 carries the load.
    s = scenario()
    v = verify(s, _opts(0.25), rounds=6)
    first = v.rounds[0]
    assert first.action == "plan" and first.met and sum(line.count for line in first.lines) == 3
    relaxed = [r for r in v.rounds if r.action == "relax"]
    assert relaxed and all(r.relaxed["svc"] > 0.25 for r in relaxed)
    assert v.met and v.final.action == "relax" and v.final_from == "milp"
    assert v.final.usd_per_hour < first.usd_per_hour and v.final.usd_per_hour == pytest.approx(0.5)
    assert v.final.factors["svc"] > 0.25  # planned with more capacity assumed than at first
    assert v.certificate.complete and v.certificate.holds is True
    assert [e.outcome for e in v.certificate.entries] == ["cannot remove"]
    assert v.certificate.entries[0].note == "only pool serving dc"
    assert v.rounds[-1].action == "certificate"
    assert v.first_met is first


def test_a_missing_relaxation_goes_back_and_bisects(shipped) -> None:
    # planner-small's text pools have slack in simulation, but the plan without the l4 spill-over misses.
    v = verify(shipped("planner-small.yaml"), PlanOptions(baselines=False), rounds=4)
    dropped = [r for r in v.rounds if r.action == "relax" and not r.kept]
    assert dropped and not dropped[0].met and "bisecting the factor of text" in dropped[0].note
    assert v.final.index == 1 and v.met  # back to the first plan
    assert v.certificate.holds is True
    by_pool = {e.pool: e for e in v.certificate.entries}
    assert by_pool["text@dc/l4/fp16"].outcome == "misses"  # the dropped relaxation's deployment, not simulated again
    assert by_pool["vision@edge/orin/fp16"].outcome == "cannot remove"


def test_a_certificate_entry_matches_a_simulation_of_the_smaller_deployment() -> None:
    s = parse_scenario(_two_types(), file="<test>")
    v = verify(s, PlanOptions(baselines=False), rounds=6)
    assert v.met and v.certificate.complete
    final = v.final.lines
    entry = next(e for e in v.certificate.entries if e.outcome in ("misses", "verifies"))
    # the one-smaller deployment by hand, validated as a scenario file would be
    raw = copy.deepcopy(_two_types())
    replicas = [line.as_dict() for line in final]
    for r in replicas:
        if f"{r['service']}@{r['site']}/{r['hardware']}/{r['variant']}" == entry.pool:
            r["count"] -= 1
    kept = [r for r in replicas if r["count"] > 0]
    if len(kept) < len(replicas):  # removed: the site's remaining fractions scaled up to 1
        total = sum(r["weights"]["dc"] for r in kept)
        for r in kept:
            r["weights"] = {"dc": r["weights"]["dc"] / total}
    raw["deployment"] = {"replicas": kept, "routing": "weighted"}
    smaller = parse_scenario(raw, file="<smaller>")
    m = build_metrics(smaller, simulate(smaller, v.seed))["services"]["svc"]
    assert (entry.outcome == "verifies") == bool(m["slo"]["met"])
    if entry.outcome == "misses":
        (miss,) = entry.missed
        assert miss.service == "svc" and miss.slo_ms == 50
        assert miss.simulated_ms == pytest.approx(m["slo"]["latency_at_percentile_ms"])
    line = next(x for x in final if x.id == entry.pool)
    assert entry.count == line.count
    assert entry.saved_usd_per_hour == pytest.approx({"cheap": 0.5, "dear": 0.7}[line.key[2]])


def test_shrinking_removes_an_empty_pool_and_renormalises_its_sites() -> None:
    a = Line(("s", "dc", "t4", "fp16"), 1, {"x": 0.25, "y": 1.0})
    b = Line(("s", "dc", "l4", "fp16"), 2, {"x": 0.75})
    c = Line(("s", "edge", "orin", "fp16"), 1, {"x": 0.0, "z": 1.0})
    assert shrunk((a, b, c), 1) == (a, Line(b.key, 1, b.weights), c)
    assert shrunk((a, b, c), 0) == "only pool serving y"
    assert shrunk((Line(b.key, 1, b.weights), c), 0) == "only pool serving x"  # c's zero share is not serving x
    a2 = Line(a.key, 1, {"x": 0.25})
    assert shrunk((a2, b, c), 0) == (Line(b.key, 2, {"x": 1.0}), c)


def test_a_tiny_time_limit_leaves_the_certificate_incomplete(scenario) -> None:
    v = verify(scenario(), _opts(0.25), rounds=6, time_limit_s=1e-6)
    assert len(v.rounds) == 1 and v.met  # the first round always runs
    c = v.certificate
    assert not c.complete and c.holds is None and "time limit" in c.note
    assert c.entries and all(e.outcome in ("not checked", "cannot remove") for e in c.entries)
    assert c.unchecked() == ["svc@dc/cheap/fp16"]
    assert v.stopped == "time limit"


def test_rounds_running_out_during_the_descent_leave_it_incomplete_and_plan_json_says_local_search(scenario) -> None:
    # Two rounds: the plan, then one certificate pass, which adopts a neighbour and cannot certify it.
    s = scenario()
    v = verify(s, _opts(0.25), rounds=2)
    assert [r.action for r in v.rounds] == ["plan", "certificate"]
    assert v.final_from == "local search" and v.final.kept and v.met
    assert not v.certificate.complete and v.certificate.holds is None and v.stopped == "rounds"
    doc = verified_document(s, v, _opts(0.25), rounds_limit=2)
    assert doc["verify"]["final_from"] == "local search"
    assert doc["usd_per_hour"] == pytest.approx(1.0) and doc["verify"]["milp"]["usd_per_hour"] == pytest.approx(1.5)
    (line,) = doc["deployment"]["replicas"]
    assert line["count"] == 2 and doc["pools"]["svc@dc/cheap/fp16"]["milp_replicas"] == 3
    assert doc["pools"]["svc@dc/cheap/fp16"]["capacity_rps"] is None
    assert doc["cost"]["replicas_usd_per_hour"] == pytest.approx(1.0)


def test_the_same_inputs_give_the_same_rounds_and_certificate() -> None:
    s = parse_scenario(_two_types(), file="<test>")
    a, b = (verify_section(verify(s, _opts(0.5), rounds=6)) for _ in range(2))
    assert a == b and a["certificate"]["complete"]


def test_plan_verify_writes_the_new_keys_and_the_final_deployment(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_two_types()))
    out = tmp_path / "o"
    assert main(["plan", str(path), "--verify", "--rounds", "5", "--verify-time", "600", "--seed", "2",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "verify round 1 plan:" in printed.err and "certificate" in printed.err
    assert "Verify rounds" in printed.out and "Local-optimality certificate" in printed.out
    doc = json.loads((out / "plan.json").read_text())
    ver = doc["verify"]
    assert ver["met"] and ver["seed"] == 2 and ver["rounds_limit"] == 5 and ver["time_limit_s"] == 600
    assert ver["rounds"][0]["action"] == "plan" and all("action" in r for r in ver["rounds"])
    cert = ver["certificate"]
    assert set(cert) >= {"holds", "complete", "entries", "seed"} and cert["seed"] == 2
    assert cert["holds"] is True and cert["complete"] is True
    assert all(set(e) >= {"pool", "replicas", "saved_usd_per_hour", "outcome", "missed"} for e in cert["entries"])
    assert ver["final_from"] in ("milp", "local search")
    final = ver["rounds"][ver["final_round"] - 1]
    assert {f"{r['service']}@{r['site']}/{r['hardware']}/{r['variant']}": r["count"]
            for r in doc["deployment"]["replicas"]} == final["pools"]
    assert doc["usd_per_hour"] == pytest.approx(final["usd_per_hour"])
    planned = yaml.safe_load((out / "scenario.planned.yaml").read_text())
    assert planned["deployment"] == doc["deployment"]

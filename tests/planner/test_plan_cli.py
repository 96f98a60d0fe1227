"""`plan` on the command line: files written, the planned scenario runs with `simulate`, exit codes."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from lepton_sim.cli import main as lepton_main
from lepton_sim.verification.cli import main, register
from lepton_sim.scenario import load_scenario

from planner_helpers import ROOT, small

PLAN_KEYS = ("status", "usd_per_hour", "deployment", "routing", "predicted", "solver", "solve_s", "gap",
             "baselines", "verify")  # what sweeps collect from plan.json (lepton_sim/sweeps/collect.py)


def test_register_adds_the_command() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["plan", "x.yaml", "--solver", "cbc", "--time-limit", "5", "--gap", "0.01", "--verify",
                              "--rounds", "2", "--verify-time", "30", "--seed", "4", "--out", "d"])
    assert (args.solver, args.time_limit, args.gap, args.verify, args.rounds, args.verify_time, args.seed,
            args.out) == ("cbc", 5.0, 0.01, True, 2, 30.0, 4, "d")
    assert parser.parse_args(["plan", "x.yaml"]).rounds == 6


def test_plan_out_verify_and_simulate_the_planned_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plan"
    assert main(["plan", str(ROOT / "scenarios" / "default.yaml"), "--verify", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    for heading in ("Pools", "Routing", "predicted", "simulated", "Baselines", "greedy", "Verify rounds",
                    "Local-optimality certificate"):
        assert heading in printed
    assert "verify round 1 plan:" in captured.err  # each round as it happens
    doc = json.loads((out / "plan.json").read_text())
    assert set(PLAN_KEYS) <= set(doc) and doc["status"] == "optimal" and doc["gap"] == 0.0
    assert doc["verify"]["met"] and doc["verify"]["rounds"][0]["services"]["detect"]["simulated_ms"] > 0
    assert {"detect", "classify-text"} == set(doc["predicted"])
    assert all(v["latency_ms"] > 0 for v in doc["predicted"].values())
    greedy = next(b for b in doc["baselines"] if b["name"] == "greedy")
    assert doc["usd_per_hour"] <= greedy["usd_per_hour"] and greedy["status"] == "feasible"
    planned = load_scenario(out / "scenario.planned.yaml")
    assert planned.deployment is not None and planned.deployment.routing == "weighted"
    assert yaml.safe_load((out / "scenario.planned.yaml").read_text())["hardware"]["l4"] == {"from": "nvidia-l4"}
    assert lepton_main(["report", str(out), "--out", str(tmp_path / "report")]) == 0  # reads this plan.json
    assert lepton_main(["simulate", str(out / "scenario.planned.yaml"), "--out", str(tmp_path / "sim")]) == 0
    metrics = json.loads((tmp_path / "sim" / "metrics.json").read_text())
    assert set(metrics["pools"]) == {f"{r['service']}@{r['site']}/{r['hardware']}/{r['variant']}"
                                     for r in doc["deployment"]["replicas"]}


def test_cbc_gives_the_same_plan(tmp_path: Path) -> None:
    for solver in ("highs", "cbc"):
        assert main(["plan", str(ROOT / "scenarios" / "planner-small.yaml"), "--solver", solver,
                     "--out", str(tmp_path / solver)]) == 0
    a, b = (json.loads((tmp_path / s / "plan.json").read_text()) for s in ("highs", "cbc"))
    assert (a["solver"], b["solver"]) == ("HiGHS", "CBC")
    assert a["usd_per_hour"] == b["usd_per_hour"] == 2.3


def test_a_trace_file_stays_reachable_from_the_planned_scenario(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "arrivals.csv").write_text("\n".join(str(i * 0.01) for i in range(2000)) + "\n")
    s = small(services={"svc": {"model": "mlp", "slo": {"latency_ms": 50},
                                "service_time": {"dist": "deterministic", "ms": 1},
                                "demand": [{"site": "dc", "arrival": {"kind": "trace", "file": "arrivals.csv"}}]}})
    (src / "s.yaml").write_text(yaml.safe_dump(s))
    out = tmp_path / "elsewhere" / "out"
    assert main(["plan", str(src / "s.yaml"), "--out", str(out)]) == 0
    planned = yaml.safe_load((out / "scenario.planned.yaml").read_text())
    assert planned["services"]["svc"]["demand"][0]["arrival"]["file"] == "../../in/arrivals.csv"
    assert lepton_main(["simulate", str(out / "scenario.planned.yaml")]) == 0


def test_infeasible_exits_1_with_the_reasons(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = small(services={"svc": {"model": "mlp", "min_accuracy": 0.99, "slo": {"latency_ms": 50},
                                "demand": [{"site": "dc", "rate_rps": 10}]}})
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(s))
    assert main(["plan", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "svc from dc" in err and "min_accuracy 0.99" in err
    doc = json.loads((tmp_path / "o" / "plan.json").read_text())
    assert doc["status"] == "infeasible" and doc["reasons"][0]["reason"] == "accuracy"


@pytest.mark.parametrize("flags", [["--gap", "1.5"], ["--time-limit", "-1"], ["--rounds", "0"], ["--solver", "glpk"],
                                   ["--verify-time", "0"]])
def test_bad_flags_exit_2(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["plan", str(ROOT / "scenarios" / "planner-small.yaml"), *flags])
    assert info.value.code == 2


def test_missing_scenario_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_plan_outputs_for_sweeps(shipped) -> None:
    from lepton_sim.verification.document import plan_outputs

    out = plan_outputs(shipped("planner-small.yaml"), 3, with_verify=True)
    assert out["plan"]["status"] == "optimal" and out["plan"]["verify"]["met"]
    assert out["metrics"]["services"]["text"]["slo"]["met"]
    assert plan_outputs(shipped("planner-small.yaml"), None, with_verify=False).keys() == {"plan"}


def test_the_optional_planner_block_is_read_when_the_schema_has_it(shipped) -> None:
    from types import SimpleNamespace

    from lepton_sim.planner import PlanOptions
    from lepton_sim.planner.options import scenario_options

    block = SimpleNamespace(energy_usd_per_kwh=0.2, link_utilization=0.4, power_budget_w={"dc": 500})
    opts = scenario_options(SimpleNamespace(planner=block), PlanOptions())  # type: ignore[arg-type]
    assert (opts.energy_usd_per_kwh, opts.link_utilization, dict(opts.power_budget_w)) == (0.2, 0.4, {"dc": 500.0})
    assert scenario_options(shipped("default.yaml"), PlanOptions()) == PlanOptions()


def test_an_energy_price_adds_busy_power_to_the_cost(shipped) -> None:
    from lepton_sim.planner import PlanOptions, plan

    s = shipped("planner-small.yaml")
    # the same pools (energy is small next to the prices): 60 W orin + 3 x 70 W t4 + 72 W l4 = 342 W at $0.5/kWh
    result = plan(s, PlanOptions(baselines=False, energy_usd_per_kwh=0.5))
    assert result.costs.energy == pytest.approx(0.342 * 0.5)
    assert result.usd_per_hour == pytest.approx(2.30 + 0.171)


def test_a_long_plan_says_how_it_is_going(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Progress lines on stderr (tables per service, then the solve) once a plan runs past PROGRESS_S; none on
    stdout. PROGRESS_S is set to 0 so the default scenario counts as long on any machine."""
    from lepton_sim.planner import problem

    monkeypatch.setattr(problem, "PROGRESS_S", 0.0)
    assert main(["plan", str(ROOT / "scenarios" / "default.yaml"), "--no-table-cache"]) == 0
    captured = capsys.readouterr()
    n = len(load_scenario(ROOT / "scenarios" / "default.yaml").services)
    assert f"planner: capacity tables of {n}/{n} services (" in captured.err
    assert "planner: solving the MILP over " in captured.err and "candidate pools with highs" in captured.err
    assert "planner:" not in captured.out

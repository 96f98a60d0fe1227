"""Request-size buckets: an LLM service with `buckets` is planned as one service per bucket of prompt lengths,
and the plan comes back as lines serving prompt ranges, simulated as written."""
from __future__ import annotations

import copy
import json
import math
from statistics import NormalDist
from pathlib import Path

import numpy as np
import pytest
import yaml

from lepton_sim.metrics import build_metrics
from lepton_sim.planner.buckets import SAMPLE, bucketed, ranges, unbucketed_deployment
from lepton_sim.scenario import load_scenario, parse_scenario
from lepton_sim.sim import simulate
from lepton_sim.verification.cli import main

from test_plan_llm import TINY


def _bucketed_tiny(bounds: list[int], tpot_ms: float = 6.0) -> dict:
    raw = copy.deepcopy(TINY)
    raw["services"]["chat"]["buckets"] = bounds
    raw["services"]["chat"]["slo"]["tpot"]["latency_ms"] = tpot_ms
    return raw


def test_ranges_cover_every_prompt_once() -> None:
    assert ranges([512, 2048]) == [(1, 512), (513, 2048), (2049, None)]
    assert ranges([1]) == [(1, 1), (2, None)]


def test_a_bucketed_service_splits_into_its_buckets_requests_and_rates() -> None:
    given = parse_scenario(_bucketed_tiny([200, 600]), file="<b>")
    s, buckets = bucketed(given)
    assert [b.name for b in buckets] == ["chat.p1-200", "chat.p201-600", "chat.p601+"]
    assert "chat" not in s.services and sum(b.share for b in buckets) == pytest.approx(1.0)
    assert sum(b.requests for b in buckets) == SAMPLE
    for b in buckets:
        svc = s.services[b.name]
        prompts = np.array([p for p, _ in svc.tokens.trace.pairs])
        assert prompts.min() >= b.lo and (b.hi is None or prompts.max() <= b.hi)
        assert svc.demand[0].rate_rps == pytest.approx(150 * b.share)
        assert svc.buckets is None and svc.slo == given.services["chat"].slo
    # the lognormal (mean 300, cv 0.8, rounded) drawn as the simulator draws it: P(X < 200.5), within 4 sigma
    sigma = math.sqrt(math.log1p(0.8 ** 2))
    p = NormalDist().cdf((math.log(200.5) - (math.log(300) - sigma ** 2 / 2)) / sigma)
    assert buckets[0].share == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / SAMPLE))
    again, _ = bucketed(given)  # a fixed seed: the same requests every time
    assert again.services["chat.p1-200"].tokens.trace.pairs == s.services["chat.p1-200"].tokens.trace.pairs
    plain = parse_scenario(copy.deepcopy(TINY), file="<plain>")
    assert bucketed(plain) == (plain, [])


def test_a_trace_is_split_row_by_row(tmp_path: Path) -> None:
    rows = [(10, 5), (900, 7), (30, 2), (2000, 9), (40, 1)]
    (tmp_path / "t.csv").write_text("prompt_tokens,output_tokens\n" + "".join(f"{p},{o}\n" for p, o in rows))
    raw = _bucketed_tiny([100])
    raw["services"]["chat"]["tokens"] = {"trace": {"file": "t.csv"}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    s, buckets = bucketed(load_scenario(tmp_path / "s.yaml"))
    assert [b.share for b in buckets] == [0.6, 0.4]
    assert s.services["chat.p1-100"].tokens.trace.pairs == ((10, 5), (30, 2), (40, 1))
    assert s.services["chat.p101+"].tokens.trace.pairs == ((900, 7), (2000, 9))


def test_the_plans_lines_map_back_to_prompt_ranges() -> None:
    _, buckets = bucketed(parse_scenario(_bucketed_tiny([300]), file="<b>"))
    dep = {"routing": "weighted", "replicas": [
        {"service": "chat.p1-300", "site": "dc", "hardware": "small", "variant": "int8", "count": 2, "weights": {"dc": 1.0}},
        {"service": "chat.p301+", "site": "dc", "hardware": "big", "variant": "int8", "count": 1, "weights": {"dc": 1.0}}]}
    back = unbucketed_deployment(dep, buckets)
    assert [(r["service"], r["prompt_tokens"]) for r in back["replicas"]] == [("chat", [1, 300]), ("chat", [301, None])]


def _fleet(bounds: list[int]) -> dict:
    """Chat at 1,200 rps with a tight TTFT (p90 40 ms) and a loose TPOT: short prompts are cheapest on the small
    GPUs and long ones on the big, so splitting at 400 tokens plans cheaper than serving every prompt alike."""
    raw = _bucketed_tiny(bounds, tpot_ms=20)
    raw["horizon"] = {"duration_s": 20, "warmup_s": 2}
    raw["services"]["chat"]["slo"]["ttft"]["latency_ms"] = 40
    raw["services"]["chat"]["demand"][0]["rate_rps"] = 1200
    raw["sites"]["dc"]["capacity"] = {"big": 32, "small": 96}
    return raw


def test_plan_verify_writes_bucketed_lines_and_simulates_them_as_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEPTON_SIM_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "chat.yaml"
    f.write_text(yaml.safe_dump(_fleet([400])))
    assert main(["plan", str(f), "--verify", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "chat: 1-400 | 401+: $" in out and "chat: unsplit: $" in out and "as written" in out
    doc = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert [b["planned_as"] for b in doc["buckets"]["chat"]] == ["chat.p1-400", "chat.p401+"]
    split, whole = doc["bucket_choices"]
    assert split["buckets"] == {"chat": [400]} and whole["buckets"] == {"chat": []}
    assert split["planned"] and split["usd_per_hour"] < whole["usd_per_hour"]
    written = doc["as_written"]["services"]["chat"]
    assert written["met"] and written["tpot_ms"] <= 20.0 and written["ttft_ms"] <= 40.0
    lines = doc["deployment"]["replicas"]
    assert {tuple(r["prompt_tokens"]) for r in lines} == {(1, 400), (401, None)}
    assert all(r["service"] == "chat" for r in lines)
    # the short prompts go to the small GPUs, the long ones to the big
    assert {r["hardware"] for r in lines if r["prompt_tokens"] == [1, 400]} == {"small"}
    assert {r["hardware"] for r in lines if r["prompt_tokens"] == [401, None]} == {"big"}
    planned = load_scenario(tmp_path / "out" / "scenario.planned.yaml")
    assert planned.services["chat"].buckets == [400]
    m = build_metrics(planned, simulate(planned))  # the file a user gets runs as is, every request served
    assert m["services"]["chat"]["completed"] > 0 and m["services"]["chat"]["dropped"] == 0


def test_when_buckets_do_not_pay_the_service_is_planned_unsplit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEPTON_SIM_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "chat.yaml"  # 150 rps: one replica per bucket costs more than the split saves
    f.write_text(yaml.safe_dump(_bucketed_tiny([300])))
    assert main(["plan", str(f), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "chat: unsplit: $" in out and out.index("<- planned") > out.index("chat: unsplit")
    doc = json.loads((tmp_path / "out" / "plan.json").read_text())
    split, whole = doc["bucket_choices"]
    assert whole["planned"] and not split["planned"] and whole["usd_per_hour"] <= split["usd_per_hour"]
    assert doc["buckets"] == {} and "as_written" not in doc
    assert all("prompt_tokens" not in r for r in doc["deployment"]["replicas"])


def test_a_sweep_point_plans_the_buckets_as_plan_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lepton_sim.sweeps.modes import run_plan

    monkeypatch.setenv("LEPTON_SIM_CACHE", str(tmp_path / "cache"))
    doc = run_plan(parse_scenario(_fleet([400]), file="<sweep point>"), 1)["plan"]
    assert [c["planned"] for c in doc["bucket_choices"]] == [True, False]
    assert {tuple(r["prompt_tokens"]) for r in doc["deployment"]["replicas"]} == {(1, 400), (401, None)}

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
from lepton_sim.planner.buckets import (MAX_MISS, SAMPLE, BadAllocation, Cut, bucketed, choices, ranges,
                                        unbucketed_deployment)
from lepton_sim.scenario import load_scenario, parse_scenario
from lepton_sim.sim import simulate
from lepton_sim.planner import PlanOptions, plan
from lepton_sim.planner.measured import MemoryStore
from lepton_sim.verification.buckets import bucket_outcome, choose_buckets
from lepton_sim.verification.cli import main

from test_plan_llm import TINY, FakeMeter


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


SHIPPED = Path(__file__).resolve().parents[2] / "scenarios" / "llm" / "plan-buckets.yaml"


def test_the_slack_allotment_holds_the_mix_to_the_services_percentile() -> None:
    given = load_scenario(SHIPPED)  # p90: miss fraction 0.1
    for choice in choices(given):
        try:
            _, buckets = bucketed(given, choice)
        except BadAllocation:
            continue
        if buckets:
            assert sum(b.share * (1 - b.percentile / 100) for b in buckets) == pytest.approx(0.1, abs=1e-6)
            assert all(b.percentile >= 100 * (1 - MAX_MISS) for b in buckets)
    cut = {"chat": Cut((400,), (1, 0.25))}  # the short bucket held to 0.025, the long one takes the rest
    _, (short, long) = bucketed(given, cut)
    assert short.percentile == pytest.approx(97.5)
    assert long.percentile == pytest.approx(100 * (1 - (0.1 - 0.025 * short.share) / long.share))


def test_plan_verify_keeps_the_cheapest_verified_split_and_simulates_it_as_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEPTON_SIM_CACHE", str(tmp_path / "cache"))
    assert main(["plan", str(SHIPPED), "--verify", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "chat: unsplit: $" in out and "verifying the split" in out and "as written" in out
    doc = json.loads((tmp_path / "out" / "plan.json").read_text())
    rows = doc["bucket_choices"]
    verified = [r for r in rows if r["verified"] and r["verified_usd_per_hour"] is not None]
    kept = next(r for r in rows if r["planned"])
    assert kept["verified_usd_per_hour"] == min(r["verified_usd_per_hour"] for r in verified) == doc["usd_per_hour"]
    whole = next(r for r in rows if r["split"]["chat"]["bounds"] == [])
    assert whole["verified"] and whole["verified_usd_per_hour"] > kept["verified_usd_per_hour"]  # the split pays here
    buckets = doc["buckets"]["chat"]
    assert sum(b["share"] * (1 - b["percentile"] / 100) for b in buckets) == pytest.approx(0.1, abs=1e-6)
    written = doc["as_written"]["services"]["chat"]
    assert written["met"] and written["tpot_ms"] <= 20.0 and written["ttft_ms"] <= 40.0
    lines = doc["deployment"]["replicas"]
    assert all(r["service"] == "chat" for r in lines) and len({tuple(r["prompt_tokens"]) for r in lines}) == 2
    # the short prompts go to the small GPUs, the long ones to the big
    short = min(tuple(r["prompt_tokens"]) for r in lines)
    assert {r["hardware"] for r in lines if tuple(r["prompt_tokens"]) == short} == {"small"}
    assert {r["hardware"] for r in lines if tuple(r["prompt_tokens"]) != short} == {"big"}
    planned = load_scenario(tmp_path / "out" / "scenario.planned.yaml")
    assert planned.services["chat"].buckets == [400, 1000]
    m = build_metrics(planned, simulate(planned))  # the file a user gets runs as is, every request served
    assert m["services"]["chat"]["completed"] > 0 and m["services"]["chat"]["dropped"] == 0
    assert m["services"]["chat"]["ttft_slo"]["latency_at_percentile_ms"] == pytest.approx(written["ttft_ms"])
    # the report shows each line with its prompts and its pool's planned rate
    from lepton_sim.cli import main as cli_main

    assert cli_main(["report", str(tmp_path / "out"), "--out", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    row = next(r for r in md.splitlines() if r.startswith(f"| chat (prompts {short[0]}-{short[1]})"))
    assert row.split("|")[6].strip() not in ("", "-")  # planned rps, from the bucket's pool
    # a sweep point of mode plan splits as plan does (its replica trials read from the same cache)
    from lepton_sim.sweeps.modes import run_plan

    point = run_plan(load_scenario(SHIPPED), 1)["plan"]
    best = next(r for r in point["bucket_choices"] if r["planned"])
    assert best["usd_per_hour"] == point["usd_per_hour"] == min(r["usd_per_hour"] for r in point["bucket_choices"])
    assert len({tuple(r["prompt_tokens"]) for r in point["deployment"]["replicas"]}) == 2


def test_when_buckets_do_not_pay_the_service_is_planned_unsplit(capsys: pytest.CaptureFixture[str]) -> None:
    """A meter whose replica capacity does not depend on the requests (100 rps at every level): a split needs
    a replica per bucket and saves nothing, so the service is planned unsplit (the coarser on a tie)."""
    given = parse_scenario(_bucketed_tiny([300]), file="<b>")
    options = PlanOptions(llm_meter=FakeMeter(100, 100), tables=MemoryStore())
    chosen = choose_buckets(given, options)
    assert chosen is not None and chosen.buckets == [] and chosen.scenario is given
    assert chosen.choice == {"chat": Cut(())} and len(chosen.table) == 6  # unsplit; split with 5 allotments
    costs = [cost for _, cost, _, _ in chosen.table]
    assert costs == [1.6] * 6  # two $0.80 replicas either way
    out = capsys.readouterr().out
    assert out.index("<- planned") > out.index("chat: unsplit") and "chat: 1-300 | 301+: $1.60/h" in out
    result = plan(chosen.scenario, options)
    deployment, written = bucket_outcome(given, chosen, result.deployment(), None)
    assert written.document["buckets"] == {} and "as_written" not in written.document
    assert all("prompt_tokens" not in r for r in deployment["replicas"])

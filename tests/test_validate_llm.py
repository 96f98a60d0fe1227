"""`lepton-sim validate` on an LLM scenario: a real continuous-batching server against the simulation.

One short real run (2.5 s of arrivals) with generous bounds: the point is that the harness works
(the measured requests are the simulator's own, arrivals and token counts alike; every one comes
back; no first token beats the prefill's GEMMs; the files have the simulator's LLM metrics shape).
`benchmarks/validate_real.py` measures the agreement.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from lepton_sim.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "validation" / "llm-chat.yaml"


RATE = 5.0  # requests per second: enough of them in 2.5 s (the shipped scenario runs 30 s at a lower rate)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    here = tmp_path_factory.mktemp("llm")
    doc = yaml.safe_load(SCENARIO.read_text())
    doc["services"]["chat"]["demand"][0]["rate_rps"] = RATE
    path = here / "llm-chat.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = here / "v"
    assert main(["validate", str(path), "--duration", "2.5", "--out", str(out)]) == 0
    return out


def test_the_real_run_serves_the_simulators_own_requests(run: Path) -> None:
    v = json.loads((run / "validation.json").read_text())
    measured = json.loads((run / "metrics.measured.json").read_text())["services"]["chat"]
    simulated = json.loads((run / "metrics.simulated.json").read_text())["services"]["chat"]
    served = json.loads((run / "metrics.simulated-as-served.json").read_text())["services"]["chat"]
    assert measured["arrived"] == simulated["arrived"] == served["arrived"] > 5  # the same arrival stream
    assert measured["completed"] == measured["arrived"]  # every request came back, first token and last
    assert simulated["completed"] == simulated["arrived"]
    # the same token counts: the load generator drew them from the simulator's own streams
    for k in ("prompt_tokens_per_s", "output_tokens_per_s"):
        assert measured[k] == pytest.approx(simulated[k], rel=1e-9), k
    assert measured["preempted"] == simulated["preempted"] == 0  # the KV cache is far larger than the load
    # the measured entry has the simulator's LLM shape (metrics._llm_entry)
    assert set(measured) == set(simulated)
    for fig in ("ttft_ms", "tpot_ms", "latency_ms"):
        assert set(measured[fig]) == set(simulated[fig])
        assert 0 < measured[fig]["p50"] <= measured[fig]["p99"] <= measured[fig]["max"]
    s = v["services"]["chat"]
    assert s["kind"] == "llm"
    for key in ("error", "error_ttft", "error_tpot", "error_as_served", "error_ttft_as_served", "error_tpot_as_served"):
        assert set(s[key]) == {"mean", "p50", "p90", "p99"}
    e = s["error_ttft"]["p50"]
    assert e == pytest.approx(s["simulated"]["ttft_ms"]["p50"] / s["measured"]["ttft_ms"]["p50"] - 1)
    for key in ("error_ttft_as_served", "error_tpot_as_served"):  # generous: the machine is shared
        for k in ("p50", "p99"):
            assert -0.8 < s[key][k] < 3.0, (key, k, s[key][k])


def test_no_first_token_beats_the_prefill_gemms(run: Path) -> None:
    """Physics floor: a prompt of P >= 32 tokens runs every decoder GEMM at P rows before its first token."""
    v = json.loads((run / "validation.json").read_text())
    profile = json.loads((run / "profile.json").read_text())
    doc = yaml.safe_load(SCENARIO.read_text())
    low = doc["services"]["chat"]["tokens"]["prompt"]["low"]
    layers = doc["models"]["tiny-llama"]["layers"]
    at = {g["m"] for g in profile["gemm"]}
    m = max(x for x in at if x <= low)  # GEMM time grows with rows: the largest timed row count below
    floor_ms = layers * sum(g["timing"]["median_s"] for g in profile["gemm"] if g["m"] == m) * 1e3
    s = v["services"]["chat"]
    assert s["measured_ttft_min_ms"] > floor_ms * 0.8  # 20 % for timing noise between the profile and the run
    fit = s["iteration_fit"]["chat@here/cpu/fp32"]
    assert fit["n"] > 10 and all(c >= 0 for c in fit["coef"])
    pool = json.loads((run / "metrics.measured.json").read_text())["pools"]["chat@here/cpu/fp32"]
    assert pool["iterations"] > 10 and pool["mean_batch"] >= 1
    assert 0 < pool["utilization"] <= 1.0 + 1e-9


def test_the_files_have_the_shape(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("validation.json", "metrics.measured.json", "metrics.simulated.json",
                 "metrics.simulated-as-served.json", "metrics.simulated-llm-model.json", "profile.json",
                 "report.html", "report.md"):
        assert (run / name).is_file(), name
    profile = json.loads((run / "profile.json").read_text())
    shapes = {(g["k"], g["n"]) for g in profile["gemm"]}
    assert shapes == {(512, 768), (512, 512), (512, 2816), (1408, 512)}  # the transformer's decoder GEMMs
    # the forecast: iterations timed before the run; the LLM model: every GEMM from the profile just timed
    sim = json.loads((run / "metrics.simulated.json").read_text())["pools"]["chat@here/cpu/fp32"]
    assert sim["compute"]["source"] == "measured before the run"
    llm_model = json.loads((run / "metrics.simulated-llm-model.json").read_text())["pools"]["chat@here/cpu/fp32"]
    assert llm_model["compute"]["source"] == "measured"
    v = json.loads((run / "validation.json").read_text())["services"]["chat"]
    assert {"error_ttft", "error_ttft_as_served", "error_ttft_llm_model"} <= set(v)
    assert v["iteration_fit"]["chat@here/cpu/fp32"]["before_run"]["n"] >= 12
    served = json.loads((run / "metrics.simulated-as-served.json").read_text())["pools"]["chat@here/cpu/fp32"]
    assert served["compute"]["source"] == "fitted to the real run"
    assert "lepton-sim validation: llm-chat" in (run / "report.md").read_text()
    capsys.readouterr()


def test_llm_scenarios_it_cannot_serve_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = yaml.safe_load(SCENARIO.read_text())
    doc["models"]["tiny-llama"]["variants"]["fp16"] = {"precision": "fp16"}
    doc["models"]["tiny-llama"]["sliding_window"] = 64
    doc["deployment"]["replicas"][0]["variant"] = "fp16"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["validate", str(path), "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert "fp32 only" in err and "sliding window" in err
    assert not (tmp_path / "never").exists()


def test_the_iteration_fit_reproduces_what_it_was_fitted_to() -> None:
    from lepton_sim.validation.llm_run import fit_iterations
    from lepton_sim.validation.llm_server import ITERATION_FIELDS
    from lepton_sim.validation.spec import LLMPoolSpec

    pool = LLMPoolSpec(0, "chat", "here", "cpu", "fp32", 1, {"layers": 2, "hidden": 8, "heads": 2, "kv_heads": 1,
                       "head_dim": 4, "ffn": 16, "vocab": 32}, 4, 60, True, 16, "least-tokens", 1000, 4)
    gemm = [{"m": m, "k": 8, "n": 8, "timing": {"median_s": 1e-4 * m ** 0.5}} for m in (1, 2, 4, 8, 16, 32, 64)]
    rng = np.random.default_rng(1)
    rows = []
    for _ in range(200):
        t, s = int(rng.integers(1, 64)), int(rng.integers(0, 4))
        pairs, kv = float(rng.integers(1, 4000)), float(rng.integers(1, 400))
        g = 2 * 1e-4 * t ** 0.5
        sec = 1e-3 + 1.5 * g + 2e-5 * t + 3e-4 * s + 1e-7 * pairs + 2e-6 * kv
        rows.append([0.0, 0.0, 0.0, sec] + [t, s, pairs, kv, 1, 1, 1, 0])
    assert len(rows[0]) == len(ITERATION_FIELDS)
    fit = fit_iterations({"iterations": rows}, gemm, pool)
    assert fit.rms_rel < 1e-6
    assert fit.seconds(10, 2, 100.0, 50.0) == pytest.approx(1e-3 + 1.5 * 2e-4 * 10 ** 0.5 + 2e-4 + 6e-4 + 1e-5 + 1e-4,
                                                            rel=1e-3)

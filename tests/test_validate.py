"""`lepton-sim validate`: the real harness serves a scenario end to end and its simulation is compared.

These runs are short (2 s of arrivals) and the bounds generous: the tests prove that the harness
works (the arrivals are the simulator's own, every request comes back, physics floors hold, the
files have the contract's shape, bad scenarios are refused); `benchmarks/validate_real.py`
measures the agreement.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lepton_sim.cli import main

ROOT = Path(__file__).resolve().parents[1]
VALIDATION = ROOT / "scenarios" / "validation"


def _validate(name: str, out: Path, duration: float = 2.0, *more: str) -> dict:
    assert main(["validate", str(VALIDATION / name), "--duration", str(duration), "--out", str(out), *more]) == 0
    return json.loads((out / "validation.json").read_text())


def test_a_short_validation_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Shared cores: another test worker may share the machine, and a pinned worker cannot move away
    # from it (the latency bounds below are for a shared machine); pinning is tested with batching.
    v = _validate("one-pool-30.yaml", tmp_path / "v", 2.0, "--shared-cores")
    assert {"scenario", "seed", "duration_s", "services", "overhead_ms"} <= set(v)
    s = v["services"]["infer"]
    assert set(s) >= {"measured", "simulated", "error"}
    assert set(s["error"]) == {"mean", "p50", "p90", "p99"}
    measured = json.loads((tmp_path / "v" / "metrics.measured.json").read_text())["services"]["infer"]
    simulated = json.loads((tmp_path / "v" / "metrics.simulated.json").read_text())["services"]["infer"]
    # the load generator replays the simulator's own arrival stream: the same requests on both sides
    assert measured["arrived"] == simulated["arrived"] > 100
    assert measured["completed"] == measured["arrived"]  # every request came back
    for k in ("p50", "p99"):
        err = s["error"][k]
        assert err == pytest.approx(s["simulated"]["latency_ms"][k] / s["measured"]["latency_ms"][k] - 1)
        assert s["error_as_served"][k] == pytest.approx(
            s["simulated_as_served"]["latency_ms"][k] / s["measured"]["latency_ms"][k] - 1)
        # The profile is timed before the run, so another process sharing the cores then (a parallel
        # test worker) can move the forecast by 2-3x: the agreement is the benchmark's to measure. The
        # simulation fed the forward passes as served removes that timing; what is left of the gap is
        # the harness, which must not be off by the factors a lost or double-counted stage would make.
        # Below: a p99 of 2 s of arrivals is a few requests, which one stall of a shared host (another
        # test worker) can take tens of milliseconds up, so only p50 is bounded from below.
        assert s["error_as_served"][k] < 3.0, (k, s["error_as_served"][k])
        if k == "p50":
            assert -0.8 < s["error_as_served"][k], (k, s["error_as_served"][k])
        assert s["simulated"]["latency_ms"][k] > 0
    fwd = s["forward_pass"]["infer@here/cpu/fp32"]["1"]
    assert fwd["served_ms"] > 0 and fwd["profiled_ms"] > 0
    # timed again after the load: the host's drift during the run, against the timing before it
    assert fwd["after_run_ms"] > 0 and fwd["drift"] == pytest.approx(fwd["after_run_ms"] / fwd["profiled_ms"] - 1)
    for key in ("loopback_round_trip", "send_lateness", "server_batch_handling", "idle_worker_wake"):
        assert v["overhead_ms"][key]["n"] > 0
    # at about 30% utilisation most requests find the worker idle; its wake-up is a fraction of a forward pass
    assert v["overhead_ms"]["idle_worker_wake"]["n"] > 0.3 * measured["completed"]
    assert 0 <= v["overhead_ms"]["idle_worker_wake"]["p50"] < fwd["served_ms"]
    # The harness's own hop, rehearsed before the load and simulated as a link from the demand's client
    path = v["client_path"]
    assert path["to_queue"]["n"] == path["back"]["n"] == 200
    assert 0 < path["one_way_ms"] < fwd["served_ms"] and 0 < path["as_served_one_way_ms"] < fwd["served_ms"]
    assert "rehearsal_path_to_queue" in v["overhead_ms"]
    # the forecast's batches carry the server's handling per request, measured by the rehearsal
    assert 0 < path["handling_ms"] < fwd["served_ms"] and path["handling"]["n"] >= 100
    profiled = json.loads((tmp_path / "v" / "profile.json").read_text())["models"][0]["batches"][0]["timing"]["median_s"]
    assert profiled * 1e3 == pytest.approx(fwd["profiled_ms"] + path["handling_ms"], rel=1e-6)
    # --shared-cores leaves placement to the OS: the worker may run on every core
    assert not v["cores"]["pinned"] and v["cores"]["why"] == "as asked (--shared-cores)"
    assert v["cores"]["worker_cores_seen"]["infer@here/cpu/fp32"] == [v["cores"]["usable"]]
    profile = json.loads((tmp_path / "v" / "profile.json").read_text())
    assert [m["model"] for m in profile["models"]] == ["infer"]
    assert [m["weight_bytes"] for m in profile["models"]] == [4 * (1024 * 2048 + 2048 * 2048 + 2048 * 10 + 2048 * 2 + 10)]
    assert (tmp_path / "v" / "report.html").is_file() and (tmp_path / "v" / "cdf-infer.png").is_file()
    assert main(["report", str(tmp_path / "v"), "--out", str(tmp_path / "r")]) == 0  # redrawn from the files
    assert "lepton-sim validation: one-pool-30" in (tmp_path / "r" / "report.md").read_text()
    out = capsys.readouterr().out
    assert "measured" in out and "simulated" in out and "error" in out


def test_links_and_codec_are_emulated_for_real(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    v = _validate("payload-zstd.yaml", tmp_path / "z")
    s = v["services"]["infer"]
    scenario = yaml.safe_load((VALIDATION / "payload-zstd.yaml").read_text())
    link = scenario["links"][0]
    profile = json.loads((tmp_path / "z" / "profile.json").read_text())
    (codec,) = profile["codecs"]
    assert codec["codec"] == "zstd" and codec["ratio"] > 1.5  # measured on the payloads sent
    wire_s = scenario["models"]["mlp"]["input_bytes"] / codec["ratio"] * 8 / (link["bandwidth_gbps"] * 1e9)
    floor_ms = 2 * link["latency_ms"] + wire_s * 1e3  # propagation both ways, the request serialised
    m = json.loads((tmp_path / "z" / "metrics.measured.json").read_text())["services"]["infer"]
    assert m["completed"] == m["arrived"] > 50
    assert m["latency_ms"]["p50"] > floor_ms  # no real request beats the emulated link
    assert s["simulated"]["latency_ms"]["p50"] > floor_ms
    assert v["overhead_ms"]["server_decompress"]["n"] >= m["completed"]
    assert v["overhead_ms"]["shaper_serialise_overshoot"]["n"] > 0
    # As served: the codec's times as the run spent them, each link slower by the shaper's own lateness
    assert v["overhead_ms"]["client_compress"]["n"] >= m["completed"]
    extra = v["client_path"]["as_served_link_extra_ms"]
    assert extra == pytest.approx(v["overhead_ms"]["shaper_serialise_overshoot"]["p50"]
                                  + v["overhead_ms"]["shaper_deliver_lateness"]["p50"], abs=1e-6)
    served = json.loads((tmp_path / "z" / "metrics.simulated-as-served.json").read_text())
    (pool,) = served["pools"].values()
    assert "each batch's time drawn from the" in pool["compute"]["detail"]
    assert "links as served: +" in capsys.readouterr().out


def test_a_batching_pool_batches_for_real(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    v = _validate("batching-16.yaml", tmp_path / "b")
    # Where the threads ran: with a core to spare, the worker saw only its own; otherwise all of them.
    c = v["cores"]
    seen = c["worker_cores_seen"]["infer@here/cpu/fp32"]
    if c["pinned"]:
        assert c["workers"] == [[max(c["usable"])]] and seen == c["workers"]
        assert c["harness"] == sorted(set(c["usable"]) - {max(c["usable"])})
    else:
        assert seen == [c["usable"]] and c["describe"].startswith("cores: shared")
    pools = json.loads((tmp_path / "b" / "metrics.measured.json").read_text())["pools"]
    (pool,) = pools.values()
    assert 1 < pool["mean_batch"] <= 16
    assert max(int(b) for b in pool["forward_ms_by_batch"]) <= 16
    capsys.readouterr()


def test_scenarios_it_cannot_run_here_are_refused_with_every_reason(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    doc = yaml.safe_load((VALIDATION / "one-pool-30.yaml").read_text())
    doc["hardware"]["gpu"] = {"from": "nvidia-l4"}
    doc["sites"]["here"]["capacity"]["gpu"] = 64
    doc["deployment"]["replicas"].append({"service": "infer", "site": "here", "hardware": "gpu",
                                          "variant": "fp32", "count": 64})
    doc["services"]["infer"]["service_time"] = {"dist": "exponential", "mean_ms": 2}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "never"
    assert main(["validate", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "hardware.gpu" in err and "this-machine" in err  # not this machine
    assert "usable cores" in err  # 65 replicas
    assert "service_time" in err  # no real forward pass to run
    assert "one pool per service" in err
    assert not out.exists()  # nothing written for a refused scenario


def test_utilisation_scales_every_demand_rate_to_the_asked_load(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    v = _validate("one-pool-30.yaml", tmp_path / "u", 2.0, "--utilisation", "0.5")
    scaled = v["rates_scaled"]
    # sized with the forward pass timed by a first start of the servers: the simulation at that rate
    # puts the pool at the asked utilisation (the run's own profile, timed again, may differ a little)
    assert scaled["target"] == 0.5 and scaled["simulated_utilisation"] == pytest.approx(0.5, abs=0.005)
    rate = 150 * scaled["factor"]
    measured = json.loads((tmp_path / "u" / "metrics.measured.json").read_text())["services"]["infer"]
    simulated = json.loads((tmp_path / "u" / "metrics.simulated.json").read_text())["services"]["infer"]
    assert measured["arrived"] == simulated["arrived"]  # the scaled arrivals, the same on both sides
    window = v["duration_s"] - v["warmup_s"]
    assert measured["arrived"] == pytest.approx(rate * window, rel=0.25)
    assert "demand rates x" in capsys.readouterr().err


def test_a_utilisation_it_cannot_scale_to_is_refused_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "n"
    assert main(["validate", str(VALIDATION / "one-pool-30.yaml"), "--out", str(out), "--utilisation", "1"]) == 2
    assert "above 0 and below 1" in capsys.readouterr().err
    doc = yaml.safe_load((VALIDATION / "one-pool-30.yaml").read_text())
    doc["services"]["infer"]["demand"][0] = {"site": "here", "arrival": {"kind": "mmpp", "rates_rps": [100, 200],
                                                                           "mean_dwell_s": [1, 1]}}
    path = tmp_path / "mmpp.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["validate", str(path), "--out", str(out), "--utilisation", "0.5"]) == 2
    assert "services.infer.demand[0] does not give" in capsys.readouterr().err
    assert not out.exists()

"""Malformed scenarios and flags: exit code 2, one line naming the file and the key path, no traceback."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from lepton_sim.cli import main

BASE: dict[str, Any] = {
    "name": "small",
    "seed": 1,
    "horizon": {"duration_s": 5, "warmup_s": 1},
    "hardware": {
        "box": {"kind": "cpu", "peak_tflops": {"fp32": 1.0}, "memory_bandwidth_gbps": 50, "memory_gb": 16,
                "power_w": 100, "idle_power_w": 40, "cost_per_hour": 0.5},
    },
    "sites": {"dc": {"kind": "datacenter", "capacity": {"box": 4}}, "edge": {"kind": "edge"}},
    "links": [{"between": ["edge", "dc"], "bandwidth_gbps": 1, "latency_ms": 5}],
    "models": {"mlp": {"layers": [{"op": "dense", "in": 64, "out": 256}, {"op": "relu"},
                                  {"op": "dense", "in": 256, "out": 10}],
                       "input_bytes": 256, "output_bytes": 40}},
    "services": {"svc": {"model": "mlp", "slo": {"percentile": 99, "latency_ms": 50},
                         "demand": [{"site": "edge", "rate_rps": 50}]}},
    "deployment": {"replicas": [{"service": "svc", "site": "dc", "hardware": "box", "variant": "fp32", "count": 1}]},
}


def _set(path: str, value: Any) -> Callable[[dict], None]:
    def edit(d: dict) -> None:
        node: Any = d
        parts = path.split(".")
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node[p]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return edit


def _del(path: str) -> Callable[[dict], None]:
    def edit(d: dict) -> None:
        node: Any = d
        parts = path.split(".")
        for p in parts[:-1]:
            node = node[p]
        del node[parts[-1]]
    return edit


CASES: list[tuple[str, Callable[[dict], None], str]] = [
    ("unknown key", _set("services.svc.batching", {"max_batch": 4, "max_wiat_ms": 2}), "services.svc.batching.max_wiat_ms"),
    ("unknown top-level key", _set("nodes", {}), "nodes"),
    ("wrong type", _set("horizon.duration_s", "long"), "horizon.duration_s"),
    ("negative rate", _set("services.svc.demand.0.rate_rps", -5), "services.svc.demand[0].rate_rps"),
    ("unknown hardware", _set("deployment.replicas.0.hardware", "h200"), "deployment.replicas[0].hardware"),
    ("unknown demand site", _set("services.svc.demand.0.site", "edge-z"), "services.svc.demand[0].site"),
    ("link to a missing site", _set("links.0.between", ["edge", "dc-2"]), "links[0].between[1]"),
    ("disconnected demand site", _set("links", []), "services.svc.demand[0].site"),
    ("empty deployment", _set("deployment.replicas", []), "deployment.replicas"),
    ("variant missing", _set("deployment.replicas.0.variant", "int8"), "deployment.replicas[0].variant"),
    ("unknown catalogue entry", _set("hardware.box", {"from": "nvidia-b999"}), "hardware.box.from"),
    ("unknown arrival kind", _set("services.svc.demand.0.arrival", {"kind": "bursty"}), "services.svc.demand[0].arrival"),
    ("mmpp lengths differ", _set("services.svc.demand.0.arrival", {"kind": "mmpp", "rates_rps": [1, 2], "mean_dwell_s": [1]}),
     "services.svc.demand[0].arrival"),
    ("capacity exceeded", _set("deployment.replicas.0.count", 9), "deployment.replicas[0].count"),
    ("missing required key", _del("services.svc.slo"), "services.svc.slo"),
    ("warm-up past the end", _set("horizon.warmup_s", 10), "horizon"),
    ("layer shape mismatch", _set("models.mlp.layers.2", {"op": "dense", "in": 128, "out": 10}), "models.mlp.layers"),
    ("unknown model", _set("services.svc.model", "gpt"), "services.svc.model"),
    ("unknown routing", _set("deployment.routing", "random"), "deployment.routing"),
    ("weights without weighted routing", _set("deployment.replicas.0.weights", {"edge": 1.0}), "deployment.replicas[0].weights"),
    ("weights not summing to one", lambda d: (_set("deployment.routing", "weighted")(d),
                                             _set("deployment.replicas.0.weights", {"edge": 0.5})(d)),
     "services.svc.demand[0]"),
    ("unsupported precision", lambda d: _set("models.mlp.variants", {"int4": {"precision": "int4"}})(d)
     or _set("deployment.replicas.0.variant", "int4")(d), "deployment.replicas[0].variant"),
    ("missing profile file", _set("hardware.box.profile", "absent.json"), "hardware.box.profile"),
    ("unknown payload codec", _set("services.svc.payload", {"codec": "brotli"}), "services.svc.payload.codec"),
    ("unknown failure target", _set("failures", {"edge--nowhere": {"mtbf_h": 1, "mttr_h": 1}}), "failures.edge--nowhere"),
    ("missing trace file", _set("services.svc.demand.0.arrival", {"kind": "trace", "file": "nope.csv"}),
     "services.svc.demand[0].arrival.file"),
    ("bare arrival kind that needs keys", _set("services.svc.demand.0.arrival", "mmpp"), "services.svc.demand[0].arrival"),
    ("misspelt required key", _set("services.svc.slo", {"latncy_ms": 50}), "services.svc.slo.latncy_ms"),
    ("unknown service in the deployment", _set("deployment.replicas.0.service", "svd"), "deployment.replicas[0].service"),
]


def _write(tmp_path: Path, data: Any, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_base_scenario_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "check", str(_write(tmp_path, BASE)))
    assert code == 0, err
    assert out.startswith("ok:")


@pytest.mark.parametrize("what,edit,path", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("command", ["check", "simulate"])
def test_malformed_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, what: str,
                            edit: Callable[[dict], None], path: str) -> None:
    data = copy.deepcopy(BASE)
    edit(data)
    f = _write(tmp_path, data)
    code, out, err = _run(capsys, command, str(f))
    assert code == 2, (what, out, err)
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert str(f) in err, err
    assert f": {path}" in err or f": {path}." in err or f": {path}[" in err, f"{what}: key path {path!r} not in {err!r}"
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize("text,expect", [
    ("name: x\nhorizon: {duration_s: 10\n", "malformed YAML: line 2, column 10: a flow mapping"),
    ("name: x\nseed: 1\n  bad: 2\n", "malformed YAML: line 3,"),
    ("name: x\nname: y\n", "duplicate key 'name'"),
    ("- just\n- a list\n", "expected a mapping"),
    ("", "expected a mapping"),
])
def test_malformed_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expect: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    code, _, err = _run(capsys, "check", str(f))
    assert code == 2 and expect in err and str(f) in err, err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "simulate", str(tmp_path / "absent.yaml"))
    assert code == 2 and "absent.yaml: no such file" in err


@pytest.mark.parametrize("argv,expect", [
    (["simulate", "--seed", "-1"], "--seed"),
    (["simulate", "--bogus"], "unrecognized arguments"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_flags(capsys: pytest.CaptureFixture[str], argv: list[str], expect: str) -> None:
    code, _, err = _run(capsys, *argv)
    assert code == 2 and expect in err and "Traceback" not in err


def test_out_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _write(tmp_path, BASE)
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    code, _, err = _run(capsys, "simulate", str(f), "--out", str(blocker))
    assert code == 2 and "not a directory" in err
    assert blocker.read_text() == "keep me"


def test_bad_input_leaves_previous_metrics_intact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path, BASE)
    out = tmp_path / "run"
    assert _run(capsys, "simulate", str(good), "--out", str(out))[0] == 0
    before = (out / "metrics.json").read_bytes()
    bad = copy.deepcopy(BASE)
    bad["services"]["svc"]["demand"][0]["rate_rps"] = -1
    code, _, _ = _run(capsys, "simulate", str(_write(tmp_path, bad, "bad.yaml")), "--out", str(out))
    assert code == 2
    assert (out / "metrics.json").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "report-data.json"]

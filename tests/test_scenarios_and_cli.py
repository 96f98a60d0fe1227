"""Every shipped scenario and every README example runs; the CLI's outputs have the contract's shape."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lepton_sim.cli import main
from lepton_sim.scenario import default_scenario_path, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[1]
# scenario files (sweep files in scenarios/sweeps/ name a base scenario and are tested with the sweeps)
SCENARIOS = sorted(p for p in (ROOT / "scenarios").rglob("*.yaml") if "sweeps" not in p.parts)
README = (ROOT / "README.md").read_text()


def test_scenarios_are_shipped() -> None:
    names = {p.relative_to(ROOT / "scenarios").as_posix() for p in SCENARIOS}
    assert {"default.yaml", "edge-vision.yaml", "queueing/mm1.yaml", "queueing/mmc-2.yaml", "queueing/mmc-8.yaml",
            "queueing/md1.yaml", "queueing/mg1-lognormal.yaml"} <= names


def test_default_scenario_is_the_packaged_one() -> None:
    assert (ROOT / "scenarios" / "default.yaml").read_text() == default_scenario_path().read_text()


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.relative_to(ROOT / "scenarios").as_posix())
def test_every_scenario_checks_and_simulates(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(path)]) == 0
    assert main(["simulate", str(path), "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    s = load_scenario(path)
    assert set(m["services"]) == set(s.services)
    for svc in m["services"].values():
        assert svc["arrived"] > 0 and svc["completed"] > 0
        assert svc["arrived"] == svc["completed"] + svc["dropped"] + svc["failed"] + svc["in_flight"]
    capsys.readouterr()


def test_simulate_default_prints_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate"]) == 0
    out = capsys.readouterr().out
    for heading in ("Services", "Pools", "Nodes", "Links", "cost:", "energy"):
        assert heading in out
    for name in load_scenario().services:
        assert name in out


def test_metrics_json_has_the_contract_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = ROOT / "scenarios" / "edge-vision.yaml"
    assert main(["simulate", str(path), "--seed", "3", "--out", str(tmp_path / "x")]) == 0
    m = json.loads((tmp_path / "x" / "metrics.json").read_text())
    assert {"scenario", "seed", "duration_s", "warmup_s", "services", "nodes", "links", "cost", "energy_kwh",
            "events", "wall_s"} <= set(m)
    assert m["scenario"] == "edge-vision" and m["seed"] == 3 and m["duration_s"] == 300 and m["warmup_s"] == 30
    d = m["services"]["detect"]
    assert {"arrived", "completed", "dropped", "latency_ms", "slo_attainment"} <= set(d)
    assert set(d["latency_ms"]) == {"mean", "p50", "p90", "p95", "p99", "max"}
    assert d["latency_ms"]["p50"] <= d["latency_ms"]["p90"] <= d["latency_ms"]["p95"] <= d["latency_ms"]["p99"]
    assert 0 <= d["slo_attainment"] <= 1
    assert set(m["nodes"]) == {"dc-1/l4/0", "dc-1/l4/1", "dc-1/l4/2", "edge-a/orin/0"}
    assert all("utilization" in n for n in m["nodes"].values())
    assert set(m["links"]) == {"edge-a--dc-1", "edge-b--dc-1"}
    assert {"usd_per_hour", "usd_total"} <= set(m["cost"])
    capsys.readouterr()
    # --json prints the same object (bar wall_s)
    assert main(["simulate", str(path), "--seed", "3", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    printed.pop("wall_s"), m.pop("wall_s")
    assert printed == m


def test_readme_yaml_example_is_valid() -> None:
    block = re.search(r"```yaml\n(.*?)```", README, re.S)
    assert block is not None
    s = parse_scenario(yaml.safe_load(block.group(1)), file="README.md")
    assert s.name == "edge-vision"


def test_readme_inline_commands_run(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every `lepton-sim ...` command quoted in the README's prose runs from the repository root."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    commands = list(dict.fromkeys(re.findall(r"`lepton-sim ([a-z][^`\[]*)`", README)))  # in README order
    assert len(commands) >= 3, commands
    for cmd in commands:
        argv = cmd.split()
        if argv[:2] == ["kernels", "measure"] and "--quick" not in argv:
            argv.append("--quick")  # the full measurement takes minutes; its code path is the same
        assert main(argv) == 0, cmd
    capsys.readouterr()


def test_python_dash_m_and_console_script(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    runs = [[sys.executable, "-m", "lepton_sim"]]
    exe = shutil.which("lepton-sim")
    if exe:
        runs.append([exe])
    for prefix in runs:
        ok = subprocess.run([*prefix, "check", str(ROOT / "scenarios" / "default.yaml")], capture_output=True, text=True)
        assert ok.returncode == 0 and ok.stdout.startswith("ok:"), ok.stderr
        res = subprocess.run([*prefix, "check", str(bad)], capture_output=True, text=True)
        assert res.returncode == 2 and "malformed YAML" in res.stderr and "Traceback" not in res.stderr


def test_identical_metrics_across_processes() -> None:
    """Same scenario and seed in two fresh interpreters with different hash seeds: identical metrics."""
    import os

    outs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        res = subprocess.run([sys.executable, "-m", "lepton_sim", "simulate", str(ROOT / "scenarios" / "edge-vision.yaml"),
                              "--seed", "5", "--json"], capture_output=True, text=True, env=env, check=True)
        m = json.loads(res.stdout)
        m.pop("wall_s")
        outs.append(json.dumps(m))
    assert outs[0] == outs[1]

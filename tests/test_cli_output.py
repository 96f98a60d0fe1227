"""What a new user sees: flag typos, --version, file modes, and tables that fit the terminal whole."""
from __future__ import annotations

import io
import json
import os
import re
import stat
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from lepton_sim.cli import main
from lepton_sim.fileio import atomic_write, write_json_atomic
from lepton_sim.metrics import build_metrics
from lepton_sim.scenario import load_scenario
from lepton_sim.sim import Simulation
from lepton_sim.summary import print_summary, slo_verdicts
from lepton_sim.termtable import PIPED_WIDTH, Col, output_width, print_table, split_columns

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = (80, 100, 160)


@pytest.fixture
def umask() -> Iterator[Any]:
    """`os.umask`, with the previous umask restored after the test."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# flags and --version

def test_a_mistyped_flag_is_named_with_the_closest_valid_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--sed", "3"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert "lepton-sim simulate: unrecognized arguments: --sed (did you mean --seed?)" in err


def test_each_unknown_flag_gets_its_own_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "x.yaml", "--verfy", "--time-limt=3", "--zzzzzz"]) == 2
    err = capsys.readouterr().err
    assert "lepton-sim plan: unrecognized arguments: --verfy (did you mean --verify?), " \
           "--time-limt=3 (did you mean --time-limit?), --zzzzzz (see --help)" in err


def test_version_comes_from_the_installed_package(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"lepton-sim {version('lepton-sim')}\n"


def test_the_license_is_the_apache_license() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


# file modes

@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_atomic_writes_get_the_umask_mode(tmp_path: Path, umask: Any, mask: int) -> None:
    umask(mask)
    write_json_atomic(tmp_path / "a.json", {"x": 1})
    atomic_write(tmp_path / "b.bin", b"\x00\x01")
    atomic_write(tmp_path / "b.bin", "replaced")  # replacing keeps the umask's mode, not the old file's
    for name in ("a.json", "b.bin"):
        assert _mode(tmp_path / name) == 0o666 & ~mask
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert (tmp_path / "b.bin").read_text() == "replaced"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.bin"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    write_json_atomic(path, {"old": True})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_simulate_and_plan_outputs_are_written_with_the_umask_mode(tmp_path: Path, umask: Any,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    umask(0o022)
    s = yaml.safe_load((ROOT / "scenarios" / "default.yaml").read_text())
    s["horizon"] = {"duration_s": 5, "warmup_s": 1}
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(s))
    assert main(["simulate", str(scenario), "--out", str(tmp_path / "run")]) == 0
    assert main(["plan", str(scenario), "--out", str(tmp_path / "plan")]) == 0
    capsys.readouterr()
    for path in (tmp_path / "run" / "metrics.json", tmp_path / "run" / "report-data.json",
                 tmp_path / "plan" / "plan.json", tmp_path / "plan" / "scenario.planned.yaml"):
        assert _mode(path) == 0o644, path


# terminal width

def test_the_width_is_columns_else_the_terminal_else_a_fixed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert output_width(io.StringIO()) == PIPED_WIDTH
    monkeypatch.setenv("COLUMNS", "77")
    assert output_width(io.StringIO()) == 77


def _assert_whole(text: str, width: int) -> None:
    assert "…" not in text
    assert all(len(line) <= width for line in text.splitlines()), max(text.splitlines(), key=len)


def _render(metrics: dict[str, Any], width: int) -> str:
    buf = io.StringIO()
    print_summary(None, metrics, Console(file=buf, width=width))  # type: ignore[arg-type]
    return buf.getvalue()


@pytest.fixture(scope="module")
def runs() -> dict[str, dict[str, Any]]:
    """The metrics of the default scenario, edge-vision and metro-fleet, simulated once."""
    out = {}
    for name in ("default", "edge-vision", "metro-fleet"):
        scenario = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
        out[name] = build_metrics(scenario, Simulation(scenario, None).run())
    return out


def _first_services_table(text: str) -> str:
    start = text.index("Services")
    return text[start:text.index("└", start)]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["default", "edge-vision", "metro-fleet"])
def test_the_summary_fits_the_width_and_cuts_no_cell(runs: dict[str, dict[str, Any]], name: str, width: int) -> None:
    m = runs[name]
    text = _render(m, width)
    _assert_whole(text, width)
    first = _first_services_table(text)
    header = " ".join(line for line in first.splitlines() if "┃" in line)
    for key in ("p50", "p99", "SLO", "met"):  # the key columns are in the first table, whole
        assert re.search(rf"┃\s*{key}\s*┃", header), (key, first)
    for svc, s in m["services"].items():
        row = next(line for line in first.splitlines() if f"│ {svc} " in line)
        for figure in (f"{s['latency_ms']['p50']:.1f}", f"{s['latency_ms']['p99']:.1f}",
                       f"p{s['slo']['percentile']:g}<={s['slo']['latency_ms']:g}", "yes" if s["slo"]["met"] else "no"):
            assert re.search(rf"│\s*{re.escape(figure)}\s*│", row), (figure, row)
        assert f"{s['arrived']:,}" in text
    for pid in m["pools"]:
        assert pid in text
    for lid in m["links"]:
        assert lid in text


def test_at_160_columns_the_services_table_is_one_table(runs: dict[str, dict[str, Any]]) -> None:
    text = _render(runs["default"], 160)
    assert "(continued)" not in text[:text.index("Pools")]
    first = _first_services_table(text)
    for col in ("requests", "dropped", "failed", "mean", "p50", "p90", "p95", "p99", "max", "SLO", "attained", "met"):
        assert col in first


def test_a_missed_slo_is_said_in_so_many_words(runs: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    # edge-vision with edge-b 30 ms away (60 ms there and back, against a 40 ms target) and a
    # trickle of its users (1/s against edge-a's 300/s): detect meets p99 <= 40 ms over all its
    # requests, by a wide margin, and misses it for every one of edge-b's.
    doc = yaml.safe_load((ROOT / "scenarios" / "edge-vision.yaml").read_text())
    for link in doc["links"]:
        if "edge-b" in link["between"]:
            link["latency_ms"] = 30
    doc["services"]["detect"]["demand"] = [{"site": "edge-a", "rate_rps": 300}, {"site": "edge-b", "rate_rps": 1}]
    (tmp_path / "far.yaml").write_text(yaml.safe_dump(doc))
    scenario = load_scenario(tmp_path / "far.yaml")
    m = build_metrics(scenario, Simulation(scenario, None).run())
    detect = m["services"]["detect"]
    assert detect["slo"]["met"] and detect["by_site"]["edge-b"]["slo_attainment"] == 0
    text = _render(m, 300)  # wide enough for the verdict to stay on one line
    line = next(line for line in text.splitlines() if line.startswith("SLO missed at 1 demand site: detect"))
    assert "meets it over all its requests" in line and "from edge-b p99" in line
    assert "every service met its SLO" not in text
    # A service that misses over all its requests says by how much.
    missed = {**detect, "slo": {**detect["slo"], "met": False, "latency_at_percentile_ms": 41.0},
              "slo_attainment": 0.98}
    [line] = slo_verdicts({"services": {"detect": missed}})
    assert line.startswith("SLO missed: detect p99 41.0 ms > target 40 ms; 98.00% of requests within 40 ms")
    assert "SLO missed" not in _render(runs["default"], 100)
    assert "every service met its SLO" in _render(runs["default"], 100)


def test_a_miss_by_lost_requests_says_so() -> None:
    entry = {"arrived": 100, "completed": 90, "dropped": 10, "failed": 0, "in_flight": 0, "slo_attainment": 0.9,
             "slo": {"percentile": 99, "latency_ms": 40, "latency_at_percentile_ms": 12.0, "met": False}}
    [line] = slo_verdicts({"services": {"svc": {**entry, "by_site": {"a": entry}}}})
    assert line == ("SLO missed: svc p99 12.0 ms of the completed, but 10 dropped, failed or unfinished; "
                    "90.00% of requests within 40 ms, needs 99%")


# the table helper itself

def test_split_tables_repeat_the_key_column_and_keep_ranked_columns_first() -> None:
    cols = [Col("name", "left"), *(Col(f"c{i}", rank=10 - i) for i in range(8))]
    ranges = [(10, 10), *[(8, 8)] * 8]
    parts = split_columns(cols, ranges, 1, 50)
    assert len(parts) > 1 and all(p[0] == 0 for p in parts)
    assert 8 in parts[0] and 1 not in parts[0]  # c7 ranks first, c0 last
    assert sorted(i for p in parts for i in p[1:]) == list(range(1, 9))


def test_grouped_columns_stay_together() -> None:
    cols = [Col("name", "left"), Col("a", group="g"), Col("b"), Col("c", group="g")]
    parts = split_columns(cols, [(10, 10), (10, 10), (10, 10), (10, 10)], 1, 40)
    assert parts == [[0, 1, 3], [0, 2]]


def test_even_an_absurdly_narrow_terminal_gets_no_ellipsis() -> None:
    buf = io.StringIO()
    print_table(Console(file=buf, width=20), "t", [Col("name", "left"), Col("value")],
                [["a-very-long-unbreakable-name", "12,345,678.9"]])
    text = buf.getvalue()
    value = "".join(line.split("│")[2].strip() for line in text.splitlines() if line.startswith("│"))
    assert "…" not in text and value == "12,345,678.9"  # folded over lines, every digit kept


# the planner's tables

def test_the_plan_tables_fit_80_columns(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["plan", str(ROOT / "scenarios" / "edge-vision.yaml"), "--verify"]) == 0
    out = capsys.readouterr().out
    _assert_whole(out, 80)
    for heading in ("Pools", "Routing", "Latency at the SLO percentile", "Baselines", "greedy"):
        assert heading in out
    latency = out[out.index("Latency at the SLO percentile"):]
    assert re.search(r"┃\s*met\s*┃", latency) and re.search(r"│\s*yes\s*│", latency)


def test_the_infeasible_table_fits_80_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    s = yaml.safe_load((ROOT / "scenarios" / "edge-vision.yaml").read_text())
    s["services"]["detect"]["slo"]["latency_ms"] = 2  # below the idle floor: the 2 ms batch wait + compute
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(s))
    assert main(["plan", str(path)]) == 1
    err = capsys.readouterr().err
    table = err[:err.index("error:")]
    _assert_whole(table, 80)
    assert "Infeasible" in table and "latency" in table

"""What a new user trips over: typos named as typos, every problem of a file at once, the broken
YAML line, a bare arrival kind, and a batching wait that has nothing to wait for."""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from lepton_sim.cli import main
from lepton_sim.errors import ScenarioError
from lepton_sim.metrics import build_metrics
from lepton_sim.scenario import load_scenario, parse_scenario
from lepton_sim.sim import simulate
from test_bad_input import BASE


def _write(tmp_path: Path, data: Any, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return p


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _problems(data: dict) -> list[ScenarioError]:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(data, file="s.yaml")
    return list(exc.value.problems)


def _base(**edits: Any) -> dict:
    d = copy.deepcopy(BASE)
    d.update(edits)
    return d


def _rename(d: dict, old: str, new: str) -> dict:
    """`d` with key `old` spelt `new`, in the same place (the file's order)."""
    return {new if k == old else k: v for k, v in d.items()}


# --- a typo is named as the typo -------------------------------------------------------------


def test_a_misspelt_top_level_key_is_named_with_the_key_it_is_closest_to() -> None:
    (p,) = _problems(_rename(_base(), "horizon", "horizn"))  # one problem: not also "horizon: required key is missing"
    assert p.path == "horizn"
    assert "unknown key 'horizn'" in p.detail and "did you mean 'horizon'?" in p.detail


def test_a_misspelt_nested_key_is_named_not_the_required_key_it_hides() -> None:
    d = _base()
    d["services"]["svc"]["slo"] = {"latncy_ms": 200}
    (p,) = _problems(d)
    assert p.path == "services.svc.slo.latncy_ms"
    assert p.detail.startswith("unknown key 'latncy_ms'; did you mean 'latency_ms'?")


def test_an_unknown_key_that_is_no_near_miss_lists_the_valid_ones() -> None:
    d = _base()
    d["services"]["svc"]["batching"] = {"frobnicate": 1}
    (p,) = _problems(d)
    assert p.path == "services.svc.batching.frobnicate"
    assert "did you mean" not in p.detail and "expected one of: max_batch, max_wait_ms" in p.detail


def test_a_typo_in_an_optional_key_suggests_it() -> None:
    d = _base()
    d["services"]["svc"]["batching"] = {"max_batch": 4, "max_wiat_ms": 2}
    (p,) = _problems(d)
    assert "did you mean 'max_wait_ms'?" in p.detail


def test_a_typo_of_a_key_from_the_catalogue_entry_suggests_it() -> None:
    # `from:` copies every key of the catalogue's entry, on_chip_mb among them; the user overriding
    # it with a typo still gets the suggestion.
    d = _base()
    d["hardware"] = {**d["hardware"], "l4": {"from": "nvidia-l4", "on_chp_mb": 4}}
    problems = _problems(d)
    p = next(p for p in problems if p.path == "hardware.l4.on_chp_mb")
    assert "did you mean 'on_chip_mb'?" in p.detail


def test_a_typo_inside_a_tagged_entry_is_found_there() -> None:
    d = _base()
    d["services"]["svc"]["demand"][0]["arrival"] = {"kind": "mmpp", "rates_rps": [1, 2], "mean_dwel_s": [1, 1]}
    (p,) = _problems(d)
    assert p.path == "services.svc.demand[0].arrival.mean_dwel_s" and "did you mean 'mean_dwell_s'?" in p.detail


# --- every problem at once -------------------------------------------------------------------


def _three_problems() -> dict:
    d = _rename(_base(), "horizon", "horizn")
    d["services"]["svc"]["slo"] = {"percentile": 99, "latncy_ms": 200}
    d["deployment"]["replicas"][0]["site"] = "dcc"
    return d


def test_every_problem_of_a_file_is_reported_unknown_keys_first() -> None:
    problems = _problems(_three_problems())
    assert [p.path for p in problems] == ["horizn", "services.svc.slo.latncy_ms", "deployment.replicas[0].site"]
    assert "unknown site 'dcc' (did you mean 'dc'?); sites are: dc, edge" in problems[2].detail


@pytest.mark.parametrize("command", ["check", "simulate"])
def test_the_cli_lists_them_numbered_each_with_file_and_key_path(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  command: str) -> None:
    f = _write(tmp_path, _three_problems())
    code, out, err = _run(capsys, command, str(f))
    assert code == 2 and out == "" and "Traceback" not in err
    lines = err.splitlines()
    assert lines[0] == f"error: {f}: 3 problems:"
    assert lines[1].startswith(f"  1. {f}: horizn: unknown key 'horizn'; did you mean 'horizon'?")
    assert lines[2].startswith(f"  2. {f}: services.svc.slo.latncy_ms: unknown key 'latncy_ms'")
    assert lines[3].startswith(f"  3. {f}: deployment.replicas[0].site: unknown site 'dcc'")
    assert len(lines) == 4 and "required key is missing" not in err


def test_reference_problems_are_collected_across_sections() -> None:
    d = _base()
    d["links"][0]["between"] = ["edge", "dc-2"]
    d["services"]["svc"]["demand"][0]["site"] = "edg"
    d["deployment"]["replicas"][0].update(hardware="bx", variant="int8")
    problems = _problems(d)
    assert [p.path for p in problems] == ["links[0].between[1]", "services.svc.demand[0].site",
                                          "deployment.replicas[0].hardware", "deployment.replicas[0].variant"]
    assert "did you mean 'edge'?" in problems[1].detail and "did you mean 'box'?" in problems[2].detail


def test_typed_checks_are_collected_too() -> None:
    d = _base()
    d["models"]["mlp"]["layers"][2] = {"op": "dense", "in": 128, "out": 10}
    d["hardware"]["box"]["profile"] = "absent.json"
    d["deployment"]["replicas"][0]["count"] = 9
    paths = [p.path for p in _problems(d)]
    assert paths == ["hardware.box.profile", "models.mlp.layers[2]", "deployment.replicas[0].count"]


def test_schema_and_reference_problems_come_together() -> None:
    d = _base()
    d["horizon"] = {"duration_s": -1}
    d["services"]["svc"]["model"] = "mpl"
    problems = _problems(d)
    assert [p.path for p in problems] == ["horizon.duration_s", "services.svc.model"]
    assert "unknown model 'mpl' (did you mean 'mlp'?)" in problems[1].detail


def test_a_single_problem_is_still_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _base()
    d["services"]["svc"]["demand"][0]["rate_rps"] = -5
    code, _, err = _run(capsys, "check", str(_write(tmp_path, d)))
    assert code == 2
    assert err == f"error: {tmp_path / 's.yaml'}: services.svc.demand[0].rate_rps: input should be greater than 0, got -5\n"


@pytest.mark.parametrize("command", ["simulate", "plan"])
def test_a_file_with_errors_leaves_no_out_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    command: str) -> None:
    d = _base()
    d["services"]["svc"]["demand"][0]["rate_rps"] = -5
    code, _, err = _run(capsys, command, str(_write(tmp_path, d)), "--out", str(tmp_path / "out"))
    assert code == 2 and "rate_rps" in err
    assert not (tmp_path / "out").exists()


# --- YAML syntax errors name the broken line -------------------------------------------------


@pytest.mark.parametrize(("text", "line"), [
    ("name: x\nhorizon: {duration_s: 10\nseed: 3\n", "line 2, column 10"),  # an unclosed {: YAML notices on line 3
    ("name: x\nhorizon: {duration_s: 10\n", "line 2, column 10"),  # ... or at the end of the file
    ("name: x\nlinks: [a, b\n\nseed: 2\n", "line 2, column 8"),
    ("name: 'x\nseed: 1\n", "line 1, column 7"),
    ("name: x\nseed: a: b\n", "line 2, column 8"),
    ("name: x\n\tseed: 1\n", "line 2, column 1"),
])
def test_a_yaml_syntax_error_names_the_broken_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                                    line: str) -> None:
    f = _write(tmp_path, text, "bad.yaml")
    code, _, err = _run(capsys, "check", str(f))
    assert code == 2 and "Traceback" not in err
    assert re.search(rf"malformed YAML: {line}\b", err), err


# --- a bare arrival kind ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["constant", "poisson", "diurnal"])
def test_a_bare_arrival_kind_is_short_for_the_kind_with_its_defaults(kind: str) -> None:
    bare, full = _base(), _base()
    bare["services"]["svc"]["demand"][0]["arrival"] = kind
    full["services"]["svc"]["demand"][0]["arrival"] = {"kind": kind}
    a, b = parse_scenario(bare), parse_scenario(full)
    assert a.services["svc"].demand[0].arrival == b.services["svc"].demand[0].arrival
    ma, mb = build_metrics(a, simulate(a, 3)), build_metrics(b, simulate(b, 3))
    ma.pop("wall_s"), mb.pop("wall_s")
    assert ma == mb


@pytest.mark.parametrize(("kind", "needs"), [("mmpp", "rates_rps and mean_dwell_s"), ("trace", "file")])
def test_a_bare_kind_that_needs_more_says_what(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str,
                                               needs: str) -> None:
    d = _base()
    d["services"]["svc"]["demand"][0]["arrival"] = kind
    code, _, err = _run(capsys, "check", str(_write(tmp_path, d)))
    assert code == 2 and err.count("\n") == 1
    assert f"services.svc.demand[0].arrival: arrival {kind!r} needs {needs}: write {{kind: {kind}," in err


def test_a_bare_unknown_kind_lists_the_kinds() -> None:
    d = _base()
    d["services"]["svc"]["demand"][0]["arrival"] = "bursty"
    (p,) = _problems(d)
    assert p.path == "services.svc.demand[0].arrival" and "unknown kind 'bursty'" in p.detail and "'constant'" in p.detail


# --- a wait with max_batch 1 -----------------------------------------------------------------


def _with_batching(**batching: Any) -> dict:
    d = _base(horizon={"duration_s": 20, "warmup_s": 2})
    d["services"]["svc"]["batching"] = batching
    d["services"]["svc"]["demand"][0]["rate_rps"] = 150
    return d


def test_a_wait_with_max_batch_1_is_accepted_and_noted_by_check(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    f = _write(tmp_path, _with_batching(max_batch=1, max_wait_ms=5))
    code, out, err = _run(capsys, "check", str(f))
    assert code == 0, err
    assert out.startswith("ok:")
    assert f"note: {f}: services.svc.batching.max_wait_ms: 5 ms has no effect with max_batch 1" in out
    code, out, _ = _run(capsys, "check", str(_write(tmp_path, _with_batching(max_batch=4, max_wait_ms=5), "b.yaml")))
    assert code == 0 and "note:" not in out


def test_a_wait_with_max_batch_1_runs_exactly_as_no_wait() -> None:
    waiting = parse_scenario(_with_batching(max_batch=1, max_wait_ms=5))
    plain = parse_scenario(_with_batching(max_batch=1))
    assert waiting.services["svc"].batching.max_wait_ms == 0.0  # what the simulator and the planner see
    assert waiting.services["svc"].batching.unused_wait_ms == 5.0
    assert plain.notes == () and len(waiting.notes) == 1
    a, b = build_metrics(waiting, simulate(waiting, 4)), build_metrics(plain, simulate(plain, 4))
    a.pop("wall_s"), b.pop("wall_s")
    assert a == b


def test_the_default_scenario_has_no_notes() -> None:
    assert load_scenario().notes == ()


def test_a_trace_whose_stamps_are_all_equal_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # no span: no rate to scale to, and a looped replay would repeat one instant for ever
    (tmp_path / "same.csv").write_text("t\n5\n5\n5\n")
    data = copy.deepcopy(BASE)
    data["services"]["svc"]["demand"][0]["arrival"] = {"kind": "trace", "file": "same.csv", "loop": True}
    code, out, err = _run(capsys, "check", str(_write(tmp_path, data)))
    assert code == 2 and out == "" and "Traceback" not in err
    assert "services.svc.demand[0].arrival.file" in err and "every timestamp is 5 s" in err

"""Calibration: the fit recovers known figures, the shipped catalogue reproduces its published points,
leave-one-out is reported, and bad input is refused with every problem named."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest

from lepton_sim.calibration import fit, parse_points
from lepton_sim.calibration.hardware import datasheet_hardware as base_hardware
from lepton_sim.calibration.fitting import PRIOR_SIGMA
from lepton_sim.catalogue import hardware_entry
from lepton_sim.cli import main
from lepton_sim.errors import ScenarioError
from lepton_sim.scenario.load import parse_scenario
from lepton_sim.servicetime import batch_times

CALIBRATION_DIR = Path(__file__).resolve().parents[1] / "lepton_sim" / "catalogue" / "calibration"
SHIPPED = sorted(p.stem for p in CALIBRATION_DIR.glob("*.csv"))


def synthetic(hw_name: str, truth: dict[str, Any], rows: list[tuple[str, str, int, str, int | None]]) -> str:
    """CSV text of points computed by the roofline itself with the figures in `truth`."""
    hw = base_hardware(hw_name).model_copy(update=truth)
    lines = ["model,variant,batch,throughput_per_s,latency_ms,seq_len"]
    for model, variant, batch, kind, seq in rows:
        pts = parse_points(f"model,variant,batch,latency_ms{',seq_len' if seq else ''}\n"
                           f"{model},{variant},{batch},1{f',{seq}' if seq else ''}\n")
        p = pts[0]
        t = batch_times(p.model, p.variant, hw, batch).times_s[-1]
        value = batch / t if kind == "throughput" else t * 1e3
        cells = [model, variant, str(batch), f"{value:.9g}" if kind == "throughput" else "",
                 f"{value:.9g}" if kind == "latency" else "", str(seq or "")]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


ROWS = [("resnet50", "int8", 1, "latency", None), ("resnet50", "int8", 8, "throughput", None),
        ("resnet50", "int8", 256, "throughput", None), ("mobilenet-v2", "int8", 64, "throughput", None),
        ("bert-base", "fp16", 1, "latency", 128), ("bert-base", "fp16", 32, "throughput", 128),
        ("bert-large", "fp16", 4, "latency", 384), ("bert-base", "int8", 16, "throughput", 64)]


def test_fit_recovers_the_figures_that_made_the_points() -> None:
    truth = {"compute_efficiency": {"int8": 0.62, "fp16": 0.71}, "memory_efficiency": 0.83, "kernel_overhead_us": 14.0}
    points = parse_points(synthetic("nvidia-t4", truth, ROWS))
    result = fit(points, base_hardware("nvidia-t4"))
    assert result.compute_efficiency == pytest.approx(truth["compute_efficiency"], rel=0.02)
    assert result.figure("memory_efficiency").value == pytest.approx(0.83, rel=0.02)
    assert result.figure("kernel_overhead_us").value == pytest.approx(14.0, rel=0.05)
    assert result.max_error < 0.01
    # Leave-one-out: every point is predicted by the other seven; exact data predict well.
    assert all(p.loo_error is not None for p in result.points)
    assert result.loo_rms_error is not None and result.loo_rms_error < 0.03


def test_a_throughputs_share_is_the_part_the_fit_reproduces() -> None:
    """A throughput measured with other engines beside the modelled one (share < 1): the fit targets
    measured x share, so the same figures come back as from the modelled engine's own throughput."""
    truth = {"compute_efficiency": {"int8": 0.62, "fp16": 0.71}, "memory_efficiency": 0.83, "kernel_overhead_us": 14.0}
    text = synthetic("nvidia-t4", truth, ROWS)
    lines = text.splitlines()
    rows = [lines[0] + ",share"]
    for line in lines[1:]:
        cells = line.split(",")
        if cells[3]:  # a throughput: published as if two more engines had added 40 % to it
            cells[3] = f"{float(cells[3]) / 0.6:.9g}"
            rows.append(",".join(cells) + ",0.6")
        else:
            rows.append(line + ",")
    points = parse_points("\n".join(rows) + "\n")
    assert {p.share for p in points} == {0.6, 1.0}
    result = fit(points, base_hardware("nvidia-t4"))
    assert result.compute_efficiency == pytest.approx(truth["compute_efficiency"], rel=0.02)
    assert result.figure("kernel_overhead_us").value == pytest.approx(14.0, rel=0.05)
    assert result.max_error < 0.01
    # Without the share the same rows read as a faster device.
    inflated = fit(parse_points("\n".join(r.rsplit(",", 1)[0] for r in rows) + "\n"), base_hardware("nvidia-t4"))
    assert inflated.compute_efficiency["int8"] > 1.2 * truth["compute_efficiency"]["int8"]


def test_a_share_outside_a_throughput_row_is_refused() -> None:
    with pytest.raises(ScenarioError) as err:
        parse_points("model,variant,batch,throughput_per_s,latency_ms,share\n"
                     "resnet50,int8,1,,0.5,0.7\n"
                     "resnet50,int8,64,1000,,1.5\n"
                     "resnet50,int8,64,1000,,x\n")
    text = str(err.value)
    assert "row 2 (share): share is the modelled part of a throughput; this row gives latency_ms" in text
    assert "row 3 (share): '1.5' is not a fraction in (0, 1]" in text
    assert "row 4 (share): 'x' is not a fraction" in text


def test_one_point_is_reproduced_and_the_rest_stay_at_their_defaults() -> None:
    truth = {"compute_efficiency": {"int8": 0.3}}
    points = parse_points(synthetic("nvidia-l4", truth, [("bert-base", "int8", 64, "throughput", 128)]))
    result = fit(points, base_hardware("nvidia-l4"))
    assert abs(result.points[0].error) < 0.01
    assert result.points[0].loo is None and result.loo_rms_error is None  # nothing left to predict it from
    # A compute-bound point says little about launches: the compute figure takes the correction, the
    # overhead stays near the gpu default (the prior).
    assert result.figure("compute_efficiency.int8").value < 0.4
    assert result.figure("kernel_overhead_us").value == pytest.approx(5.0, rel=0.02)


def test_a_point_that_disagrees_with_the_others_shows_in_its_leave_one_out_error() -> None:
    truth = {"compute_efficiency": {"int8": 0.5}}
    text = synthetic("nvidia-a100-80gb", truth, [("resnet50", "int8", b, "throughput", None) for b in (16, 64, 256)]
                     + [("bert-base", "int8", 32, "throughput", 128)])
    rows = list(csv.reader(text.splitlines()))
    rows[-1][3] = f"{float(rows[-1][3]) * 2:.9g}"  # a throughput twice what the others imply
    result = fit(parse_points("\n".join(",".join(r) for r in rows) + "\n"), base_hardware("nvidia-a100-80gb"))
    worst = max(result.points, key=lambda p: abs(p.loo_error or 0))
    assert worst.point.model_name == "bert-base" and abs(worst.loo_error or 0) > 0.3


def test_held_figures_stay_exactly_at_their_defaults() -> None:
    truth = {"compute_efficiency": {"int8": 0.55}, "memory_efficiency": 0.9}
    points = parse_points(synthetic("nvidia-h100-sxm", truth, ROWS[:3]))
    result = fit(points, base_hardware("nvidia-h100-sxm"), free=["compute"])
    assert not result.figure("memory_efficiency").fitted
    assert result.figure("memory_efficiency").value == 0.7
    assert result.figure("compute_efficiency.int8").fitted


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_catalogue_reproduces_its_calibration_points(name: str) -> None:
    """Each calibrated device, as a scenario sees it, gives its published throughput or latency within 5%."""
    s = parse_scenario(_scenario({"from": name}))
    hw = s.hardware["x"]
    assert "calibrated to" in hw.sources["calibration"]
    points = parse_points((CALIBRATION_DIR / f"{name}.csv").read_text(encoding="utf-8"))
    assert points
    for p in points:
        result = batch_times(p.model, p.variant, hw, p.batch)
        assert "calibrated to" in result.detail
        assert p.predicted(result.times_s[-1]) == pytest.approx(p.target, rel=0.05), p.label


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_calibration_is_what_its_command_writes(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The committed file is reproducible: rerunning its recorded command gives it again, every key and
    text exactly and every figure to the optimiser's last digits (scipy releases move the sixth
    significant digit of a least-squares fit); rerunning it twice here gives the same file byte for byte."""
    shipped = (CALIBRATION_DIR / f"{name}.json").read_text(encoding="utf-8")
    command = json.loads(shipped)["command"].split()
    assert command[:2] == ["lepton-sim", "calibrate"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / command[2]).write_bytes((CALIBRATION_DIR / command[2]).read_bytes())
    assert main(command[1:]) == 0
    written = (tmp_path / f"{name}.json").read_text(encoding="utf-8")
    assert_same_document(json.loads(written), json.loads(shipped))
    assert "fitted against measured" in capsys.readouterr().out
    assert main(command[1:]) == 0
    assert (tmp_path / f"{name}.json").read_text(encoding="utf-8") == written


def assert_same_document(got: Any, want: Any, where: str = "$") -> None:
    """The same JSON shape, keys and strings; numbers within 1e-5 relative (1e-6 absolute near zero)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), where
        for k in want:
            assert_same_document(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_document(g, w, f"{where}[{i}]")
    elif isinstance(want, float) or (isinstance(want, int) and not isinstance(want, bool) and isinstance(got, float)):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6), where
    else:
        assert got == want, where


def test_the_document_comparison_catches_a_changed_figure_or_text() -> None:
    doc = {"a": [1.0, {"b": "x", "c": 0.615128}], "n": 2}
    assert_same_document({"a": [1.0, {"b": "x", "c": 0.615129}], "n": 2}, doc)
    for bad in ({"a": [1.0, {"b": "x", "c": 0.6152}], "n": 2}, {"a": [1.0, {"b": "y", "c": 0.615128}], "n": 2},
                {"a": [1.0, {"c": 0.615128, "b": "x"}], "n": 2}, {"a": [1.0], "n": 2}):
        with pytest.raises(AssertionError):
            assert_same_document(bad, doc)


def _scenario(hw: dict[str, Any]) -> dict[str, Any]:
    return {"name": "cal", "seed": 1, "horizon": {"duration_s": 10},
            "hardware": {"x": hw}, "sites": {"dc": {"capacity": {"x": 1}}},
            "models": {"m": {"from": "resnet50"}},
            "services": {"s": {"model": "m", "slo": {"latency_ms": 50},
                               "demand": [{"site": "dc", "rate_rps": 10}]}},
            "deployment": {"replicas": [{"service": "s", "site": "dc", "hardware": "x", "variant": "int8",
                                         "count": 1}]}}


def _write_calibration(tmp_path: Path, hw: str, truth: dict[str, Any]) -> Path:
    (tmp_path / "m.csv").write_text(synthetic(hw, truth, ROWS[:3]), encoding="utf-8")
    assert main(["calibrate", str(tmp_path / "m.csv"), "--hardware", hw, "--out", str(tmp_path / "cal.json")]) == 0
    return tmp_path / "cal.json"


def test_a_scenario_takes_a_users_calibration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_calibration(tmp_path, "nvidia-l4", {"compute_efficiency": {"int8": 0.3}})
    capsys.readouterr()
    s = parse_scenario(_scenario({"from": "nvidia-l4", "calibration": "cal.json"}), base_dir=tmp_path)
    hw = s.hardware["x"]
    assert hw.compute_efficiency["int8"] == pytest.approx(0.3, rel=0.03)
    assert "3 int8 points (m.csv)" in hw.sources["calibration"] and str(path) in hw.sources["calibration"]
    # A key the scenario sets itself wins over the file.
    own = parse_scenario(_scenario({"from": "nvidia-l4", "calibration": "cal.json", "memory_efficiency": 0.5}),
                         base_dir=tmp_path).hardware["x"]
    assert own.memory_efficiency == 0.5 and "set in the scenario" in own.sources["calibration"]
    # `calibration: null` drops the catalogue's: datasheet peaks with the kind's modelled defaults.
    bare = parse_scenario(_scenario({"from": "nvidia-l4", "calibration": None})).hardware["x"]
    assert bare.calibration is None and bare.compute_efficiency is None
    detail = batch_times(s.models["m"], s.models["m"].variants["int8"], bare, 4)
    assert detail.basis.startswith("not calibrated") and "calibrated to" not in detail.detail


def test_the_catalogues_calibration_gives_way_to_a_scenarios_own_peaks() -> None:
    """Overriding a figure the shipped calibration was fitted against drops it, and says so."""
    s = parse_scenario(_scenario({"from": "nvidia-l4", "peak_tflops": {"fp32": 30.3, "int8": 300.0}}))
    hw = s.hardware["x"]
    assert hw.calibration is None and hw.compute_efficiency is None
    result = batch_times(s.models["m"], s.models["m"].variants["int8"], hw, 4)
    assert result.basis.startswith("not calibrated: the catalogue's calibration")
    assert "int8 peak of 242.0, this entry has 300.0" in result.basis


def test_a_calibration_for_other_figures_is_refused(tmp_path: Path) -> None:
    _write_calibration(tmp_path, "nvidia-l4", {"compute_efficiency": {"int8": 0.3}})
    with pytest.raises(ScenarioError) as info:
        parse_scenario(_scenario({"from": "nvidia-t4", "calibration": "cal.json"}), base_dir=tmp_path)
    assert info.value.path == "hardware.x.calibration" and "re-run lepton-sim calibrate" in str(info.value)
    with pytest.raises(ScenarioError, match="calibration file not found"):
        parse_scenario(_scenario({"from": "nvidia-l4", "calibration": "missing.json"}), base_dir=tmp_path)
    (tmp_path / "bad.json").write_text('{"format": "something-else"}', encoding="utf-8")
    with pytest.raises(ScenarioError, match="not a calibration file"):
        parse_scenario(_scenario({"from": "nvidia-l4", "calibration": "bad.json"}), base_dir=tmp_path)


def test_every_problem_of_a_bad_file_is_named_and_nothing_is_written(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("model,variant,batch,throughput_per_s,sorce\n"
                   "resnet5,int8,32,100,x\n"
                   "resnet50,int9,0,100,x\n"
                   "bert-base,fp16,4,,x\n", encoding="utf-8")
    out = tmp_path / "cal.json"
    assert main(["calibrate", str(bad), "--hardware", "nvidia-l4", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown column 'sorce' (did you mean 'source'?)" in err
    assert not out.exists()
    bad.write_text("model,variant,batch,throughput_per_s\n"
                   "resnet5,int8,32,100\n"
                   "resnet50,int9,0,100\n"
                   "bert-base,fp16,4,\n", encoding="utf-8")
    assert main(["calibrate", str(bad), "--hardware", "nvidia-l4", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "row 2 (model): unknown zoo model 'resnet5' (did you mean 'resnet50'?)" in err
    assert "row 3 (batch): 0 is out of range" in err and "row 3 (variant)" in err and "did you mean 'int8'?" in err
    assert "row 4 (throughput_per_s/latency_ms): give exactly one" in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--hardware", "nvidia-l5"], "unknown hardware 'nvidia-l5'"),
    (["--hardware", "this-machine"], "measured"),
    (["--hardware", "nvidia-l4", "--fit", "compute,speed"], "--fit compute,speed"),
    (["--hardware", "nvidia-l4", "--out", "no/such/dir/cal.json"], "does not exist"),
])
def test_bad_flags_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("model,variant,batch,throughput_per_s\nresnet50,int8,32,12000\n", encoding="utf-8")
    assert main(["calibrate", str(csv_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_precision_the_hardware_lacks_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("model,variant,batch,throughput_per_s\nresnet50,fp16,32,1000\n", encoding="utf-8")
    assert main(["calibrate", str(csv_path), "--hardware", "amd-alveo-u55c"]) == 2
    assert "no fp16 peak" in capsys.readouterr().err


def test_the_prior_is_what_the_documentation_says() -> None:
    # A figure the points cannot move is not moved: its fitted value is its default (the prior mode).
    assert math.isclose(PRIOR_SIGMA, 0.5)
    entry = hardware_entry("nvidia-l4")
    assert "calibration" in entry and Path(entry["calibration"]).is_file()

"""Calibration from LLM token timings: the fit recovers the figures that made the points, the LLM
service of a scenario takes the fitted file, and bad LLM rows are refused with every problem named."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lepton_sim.calibration import fit, parse_points
from lepton_sim.calibration.fitting import llm_figure
from lepton_sim.calibration.hardware import datasheet_hardware
from lepton_sim.cli import main
from lepton_sim.scenario.load import parse_scenario
from lepton_sim.sim import Simulation

HEADER = "model,variant,batch,prompt_tokens,output_tokens,ttft_ms,tpot_ms,output_tokens_per_s,tensor_parallel"
# (variant, batch, prompt, output, measure, tensor_parallel): prefill at two lengths (compute and
# overhead), decode at batch 1 and 64 (memory), a whole batch's throughput, one tensor-parallel pair
ROWS = [("fp16", 1, 128, None, "ttft_ms", 1), ("fp16", 1, 2048, None, "ttft_ms", 1),
        ("fp16", 4, 1024, None, "ttft_ms", 1), ("fp16", 1, 512, 128, "tpot_ms", 1),
        ("fp16", 64, 512, 256, "tpot_ms", 1), ("fp16", 8, 256, 256, "output_tokens_per_s", 1),
        ("fp16", 16, 512, 128, "tpot_ms", 2)]


def synthetic(truth: dict, rows: list = ROWS, hw_name: str = "nvidia-h100-sxm") -> str:
    """CSV text of LLM points computed by the LLM iteration-time model itself with the figures in `truth`."""
    hw = datasheet_hardware(hw_name).model_copy(update=truth)
    lines = [HEADER]
    for variant, b, p, o, kind, tp in rows:
        cells = {"model": "llama-3-8b", "variant": variant, "batch": str(b), "prompt_tokens": str(p),
                 "output_tokens": str(o or ""), "ttft_ms": "", "tpot_ms": "", "output_tokens_per_s": "",
                 "tensor_parallel": str(tp)}
        cells[kind] = "1"
        pt = parse_points(HEADER + "\n" + ",".join(cells[c] for c in HEADER.split(",")) + "\n")[0]
        cells[kind] = f"{llm_figure(pt, hw):.9g}"
        lines.append(",".join(cells[c] for c in HEADER.split(",")))
    return "\n".join(lines) + "\n"


TRUTH = {"compute_efficiency": {"fp16": 0.58}, "memory_efficiency": 0.77, "kernel_overhead_us": 9.0}


def test_llm_points_fit_back_to_the_figures_that_made_them() -> None:
    points = parse_points(synthetic(TRUTH))
    assert {p.kind for p in points} == {"ttft_ms", "tpot_ms", "output_tokens_per_s"}
    result = fit(points, datasheet_hardware("nvidia-h100-sxm"))
    assert result.compute_efficiency == pytest.approx({"fp16": 0.58}, rel=0.02)
    # memory and per-kernel overhead trade off at batch-1 decode (a few hundred small kernels): the
    # prior holds them a little toward the defaults, the points still within 2.5%
    assert result.figure("memory_efficiency").value == pytest.approx(0.77, rel=0.05)
    assert result.figure("kernel_overhead_us").value == pytest.approx(9.0, rel=0.15)
    assert result.max_error < 0.025
    assert result.loo_rms_error is not None and result.loo_rms_error < 0.05
    # the figures differ from the kind's defaults, so the fit did move them
    assert any(abs(f.value / f.default - 1) > 0.1 for f in result.figures)


def test_a_weight_only_variant_informs_the_fp16_math_figure() -> None:
    points = parse_points(synthetic(TRUTH, [("int4-awq", 1, 1024, None, "ttft_ms", 1),
                                            ("int4-awq", 1, 512, 128, "tpot_ms", 1)]))
    result = fit(points, datasheet_hardware("nvidia-h100-sxm"))
    assert set(result.compute_efficiency) == {"fp16"}
    assert result.max_error < 0.01


def test_a_scenario_llm_service_takes_the_fitted_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m.csv").write_text(synthetic(TRUTH), encoding="utf-8")
    out = tmp_path / "cal.json"
    assert main(["calibrate", str(tmp_path / "m.csv"), "--hardware", "nvidia-h100-sxm", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "llama-3-8b/fp16 2048 tok b1" in printed and "tok/s" in printed
    doc = json.loads(out.read_text())
    assert {p["measure"] for p in doc["points"]} == {"ttft_ms", "tpot_ms", "output_tokens_per_s"}
    assert doc["points"][0]["prompt_tokens"] == 128
    raw = {"name": "cal", "seed": 1, "horizon": {"duration_s": 2.0, "warmup_s": 0.0},
           "hardware": {"h": {"from": "nvidia-h100-sxm", "calibration": "cal.json"}},
           "sites": {"dc": {"capacity": {"h": 8}}}, "models": {"lm": {"from": "llama-3-8b"}},
           "services": {"chat": {"model": "lm", "slo": {"ttft": {"percentile": 99, "latency_ms": 500},
                                                             "tpot": {"percentile": 99, "latency_ms": 50}},
                                 "tokens": {"prompt": {"dist": "fixed", "n": 2048}, "output": {"dist": "fixed", "n": 4}},
                                 "demand": [{"site": "dc", "rate_rps": 1.0, "arrival": "constant"}]}},
           "deployment": {"replicas": [{"service": "chat", "site": "dc", "hardware": "h", "variant": "fp16", "count": 1}]}}
    sim = Simulation(parse_scenario(raw, base_dir=tmp_path))
    m = sim.pools[0].model
    # the simulator's prefill of the 2,048-token prompt is the fitted row 3
    fitted = next(p["fitted"] for p in doc["points"] if p["row"] == 3)
    assert m.seconds(2048, 1, 2048 * 2049 / 2, 2048) * 1e3 == pytest.approx(fitted, rel=1e-4)
    truth = synthetic(TRUTH).splitlines()[2].split(",")[5]
    assert fitted == pytest.approx(float(truth), rel=0.01)


def test_bad_llm_rows_are_all_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + ",throughput_per_s,seq_len\n"
                   "llama-3-8b,fp16,1,,,5,,,,,\n"          # no prompt_tokens
                   "llama-3-8b,fp16,1,128,,,7,,,,\n"       # tpot without output_tokens
                   "llama-3-8b,fp16,1,128,64,5,7,,,,\n"    # two measures
                   "llama-3-8b,fp16,1,128,64,,,,,900,\n"   # a layered model's measure on an LLM
                   "resnet50,int8,8,,,4,,,,,\n"            # an LLM measure on a layered model
                   "llama-3-8b,fp17,1,128,,5,,,0,,\n",     # unknown variant, tensor_parallel 0
                   encoding="utf-8")
    out = tmp_path / "cal.json"
    assert main(["calibrate", str(bad), "--hardware", "nvidia-h100-sxm", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "row 2 (prompt_tokens): empty" in err
    assert "row 3 (output_tokens): empty: tpot_ms needs the output length" in err
    assert "row 4 (ttft_ms/tpot_ms/output_tokens_per_s): give exactly one" in err
    assert "row 5 (throughput_per_s): throughput_per_s is a measure of layered models" in err
    assert "row 6 (ttft_ms): ttft_ms is a measure of LLMs" in err
    assert "row 7 (variant)" in err and "did you mean 'fp16'?" in err and "row 7 (tensor_parallel)" in err
    assert "Traceback" not in err and not out.exists()

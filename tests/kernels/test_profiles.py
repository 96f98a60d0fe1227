"""The profile file end to end: `kernels measure --quick` writes it, it validates, loads, and drives models."""
from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from lepton_sim.catalogue import hardware_entry
from lepton_sim.catalogue.zoo import zoo_model
from lepton_sim.errors import InputError
from lepton_sim.profiles import (
    Profile,
    codec_model,
    digits_accuracy,
    digits_variants,
    load_profile,
    load_profile_cached,
    measured_batch_times,
    reference_profile_path,
    this_machine_entry,
)
from lepton_sim.profiles.show import render_profile
from lepton_sim.scenario.schema import HardwareSpec, ModelSpec, Variant
from lepton_sim.servicetime import UnsupportedPrecision


def local_hardware(profile: Profile) -> HardwareSpec:
    """The `this-machine` hardware type built from `profile`."""
    entry = this_machine_entry(profile, hardware_entry("generic-server-cpu"))
    return HardwareSpec.model_validate(entry).model_copy(update={"name": "local"})


def model_of(raw: dict[str, Any]) -> ModelSpec:
    return ModelSpec.model_validate(raw)


# --- the file ---------------------------------------------------------------------------------


def test_quick_profile_schema_and_fingerprint(quick_profile_path: Path, quick_profile: Profile,
                                              blas_threads: int) -> None:
    raw = json.loads(quick_profile_path.read_text())
    assert raw["format"] == "lepton-sim-profile" and raw["version"] == 1 and raw["quick"] is True
    m = quick_profile.machine
    assert m.env["OPENBLAS_CORETYPE"] == os.environ.get("OPENBLAS_CORETYPE")
    assert m.libraries["numpy"] == np.__version__ and m.usable_cpus >= 1 and m.memory_gb > 0
    numpy_blas = [b for b in m.blas if b.get("shipped_in") == "numpy.libs"]
    assert numpy_blas and all(b["num_threads"] == blas_threads for b in numpy_blas)
    assert {g.precision for g in quick_profile.gemm} == {"fp64", "fp32", "fp16", "int8", "int4"}
    assert max(g.fraction_of_peak for g in quick_profile.gemm) == pytest.approx(1.0)
    assert quick_profile.ceilings.memory_bandwidth_gbps > 0 and quick_profile.elementwise
    assert {c.codec for c in quick_profile.codecs} == {"zlib", "lzma", "zstd", "lz4"}
    assert {c.data_kind for c in quick_profile.codecs} == {"uint8-images", "float32-activations", "text"}
    assert {(r.model, r.variant) for r in quick_profile.models} >= {("digits-mlp", "fp32"), ("digits-mlp", "int8")}
    int8_slower = quick_profile.ceilings.gemm_gflops["int8"] < quick_profile.ceilings.gemm_gflops["fp32"]
    assert int8_slower == any("int8 dense matmul" in n and "slower than fp32" in n for n in quick_profile.notes)
    assert [p.name for p in quick_profile_path.parent.iterdir()] == ["quick.json"]  # atomic: no temp file left


def test_show_prints_every_section(quick_profile: Profile) -> None:
    buf = io.StringIO()
    render_profile(quick_profile, Console(file=buf, width=200))
    text = buf.getvalue()
    for heading in ("Machine ceilings", "GEMM fp32", "GEMM int8", "Memory-bound kernels", "Convolution",
                    "Attention", "Whole-model", "digits-mlp variants", "Compression transforms", "Payload codecs"):
        assert heading in text


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(format="other"), "not a lepton-sim kernel profile"),
    (lambda d: d.update(version=99), "version 99 is not supported"),
    (lambda d: d["ceilings"].pop("memory_bandwidth_gbps"), "ceilings.memory_bandwidth_gbps: Field required"),
    (lambda d: d["gemm"][0]["timing"].update(median_s=-1), "gemm[0].timing.median_s"),
    (lambda d: d.update(extra_key=1), "extra_key"),
])
def test_malformed_profiles_are_value_errors_with_the_key_path(quick_profile_path: Path, tmp_path: Path,
                                                               mutate: Any, message: str) -> None:
    data = json.loads(quick_profile_path.read_text())
    mutate(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_profile(bad)


def test_unreadable_profiles(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('{"format": ')
    with pytest.raises(ValueError, match="malformed JSON at line 1"):
        load_profile(tmp_path / "broken.json")
    with pytest.raises(ValueError, match="no such profile file"):
        load_profile(tmp_path / "missing.json")


def test_cli_bad_input_is_an_input_error(tmp_path: Path, parser: argparse.ArgumentParser) -> None:
    for argv in (["kernels", "measure", "--quick", "--out", str(tmp_path / "no" / "dir" / "p.json")],
                 ["kernels", "measure", "--quick", "--out", str(tmp_path)],
                 ["kernels", "show", str(tmp_path / "missing.json")]):
        args = parser.parse_args(argv)
        with pytest.raises(InputError):
            args.func(args)


def test_reference_profile_is_committed_and_valid() -> None:
    ref = load_profile(reference_profile_path())
    assert not ref.quick and ref.digits is not None
    assert set(ref.digits.variants) == {"fp32", "fp16", "int8", "int4", "fp32-p50", "fp32-p75", "fp32-p90",
                                        "fp32-2of4", "distil"}


# --- models driven by the profile -------------------------------------------------------------


def test_whole_model_measurements_are_used_directly(quick_profile: Profile) -> None:
    model = model_of(zoo_model("digits-mlp"))
    run = next(r for r in quick_profile.models if (r.model, r.variant) == ("digits-mlp", "fp32"))
    bt = measured_batch_times(quick_profile, model, Variant(precision="fp32"), local_hardware(quick_profile), 256)
    for b in run.batches:
        assert bt.times_s[b.batch - 1] == b.timing.median_s
    assert bt.source == "measured" and "whole-model digits-mlp/fp32" in bt.detail


def test_sparse_variant_uses_the_dense_run(quick_profile: Profile) -> None:
    model = model_of(zoo_model("digits-mlp"))
    sparse = Variant(precision="int8", sparsity={"pattern": "2:4", "ratio": 0.5})
    bt = measured_batch_times(quick_profile, model, sparse, local_hardware(quick_profile), 4)
    assert "sparse weights run on dense kernels" in bt.detail


def test_per_layer_model_and_roofline_fallback(quick_profile: Profile) -> None:
    hw = local_hardware(quick_profile)
    tiny = model_of({"layers": [{"op": "dense", "in": 64, "out": 256}, {"op": "relu"},
                                {"op": "dense", "in": 256, "out": 10}], "input_bytes": 256, "output_bytes": 40})
    bt = measured_batch_times(quick_profile, tiny, Variant(precision="fp32"), hw, 8)
    assert bt.source == "measured" and "measured kernel tables: dense x16, relu x8" in bt.detail
    # A convolution far outside the quick profile's shapes falls back to the roofline of the measured ceilings.
    conv = model_of({"layers": [{"op": "conv2d", "in_ch": 3, "out_ch": 16, "kernel": 3, "in_hw": 64},
                                {"op": "relu"}], "input_bytes": 64 * 64 * 3, "output_bytes": 4})
    bt = measured_batch_times(quick_profile, conv, Variant(precision="fp32"), hw, 2)
    assert bt.source == "measured+roofline" and "roofline over the measured ceilings (modelled): conv2d x2" in bt.detail
    c = quick_profile.ceilings
    flops = 2 * 16 * 3 * 9 * 64 * 64
    assert bt.times_s[0] > flops / (c.gemm_gflops["fp32"] * 1e9)  # never faster than the measured peak


def test_unmeasured_precision_without_a_peak_is_unsupported(quick_profile: Profile) -> None:
    model = model_of(zoo_model("digits-mlp"))
    with pytest.raises(UnsupportedPrecision, match="bf16"):
        measured_batch_times(quick_profile, model, Variant(precision="bf16"), local_hardware(quick_profile), 1)


def test_this_machine_entry_is_a_valid_hardware_type(quick_profile: Profile) -> None:
    entry = this_machine_entry(quick_profile, hardware_entry("generic-server-cpu"))
    hw = HardwareSpec.model_validate(entry)
    assert hw.peak_tflops["fp32"] * 1e3 == pytest.approx(quick_profile.ceilings.gemm_gflops["fp32"], rel=1e-5)
    assert "fp64" not in hw.peak_tflops and hw.kind == "cpu" and not hw.sparse_2_4
    assert "modelled" in entry["sources"]["idle_power_w"] and "measured" in entry["sources"]["peak_tflops"]


def test_digits_accuracy_and_variants(quick_profile: Profile) -> None:
    acc = digits_accuracy(quick_profile)
    assert acc["fp32"] > 0.9 and all(0 <= a <= 1 for a in acc.values())
    for name, raw in digits_variants(quick_profile).items():
        v = Variant.model_validate(raw)
        assert v.accuracy == acc[name] and "measured" in (v.accuracy_source or "")


def test_codec_model_measured_interpolated_and_errors(quick_profile: Profile) -> None:
    run = next(r for r in quick_profile.codecs if (r.codec, r.level, r.data_kind) == ("zstd", 3, "text"))
    c = codec_model(quick_profile, "zstd", 3, "text")
    assert c.ratio == run.ratio and c.compress_s_per_byte == run.compress.median_s / run.input_bytes
    assert c.source.startswith("measured")
    lo, hi = codec_model(quick_profile, "zstd", 1, "text"), codec_model(quick_profile, "zstd", 3, "text")
    mid = codec_model(quick_profile, "zstd", 2, "text")
    assert "interpolated" in mid.source and min(lo.ratio, hi.ratio) <= mid.ratio <= max(lo.ratio, hi.ratio)
    assert "outside the measured levels" in codec_model(quick_profile, "zstd", 19, "uint8-images").source
    assert codec_model(quick_profile, "none", 0, "text").ratio == 1.0
    for args, msg in ((("brotli", 1, "text"), "unknown payload codec"), (("zstd", 30, "text"), "between -7 and 22"),
                      (("zstd", 3, "video"), "no codec on data kind")):
        with pytest.raises(ValueError, match=msg):
            codec_model(quick_profile, *args)


def test_cached_loading_reloads_a_changed_file(quick_profile_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.json"
    copy.write_text(quick_profile_path.read_text())
    first = load_profile_cached(copy)
    assert load_profile_cached(copy) is first
    data = json.loads(copy.read_text())
    data["created_utc"] = "2000-01-01T00:00:00Z"
    copy.write_text(json.dumps(data))
    assert load_profile_cached(copy).created_utc == "2000-01-01T00:00:00Z"


def test_measured_profile_loads_into_a_scenario_file(quick_profile_path: Path, tmp_path: Path) -> None:
    """`profile:` (relative to the scenario file) and `from: this-machine` (the reference) drive compute times."""
    import shutil

    import yaml

    from lepton_sim.metrics import build_metrics
    from lepton_sim.scenario import load_scenario
    from lepton_sim.sim import Simulation

    shutil.copy(quick_profile_path, tmp_path / "my-box.json")
    tiny = [{"op": "dense", "in": 64, "out": 256}, {"op": "relu"}, {"op": "dense", "in": 256, "out": 10}]
    doc = {
        "name": "measured", "seed": 3, "horizon": {"duration_s": 10, "warmup_s": 1},
        "hardware": {"box": {"from": "this-machine", "profile": "my-box.json"}, "ref": {"from": "this-machine"}},
        "sites": {"here": {"capacity": {"box": 1, "ref": 1}}},
        "models": {"tiny": {"layers": tiny, "input_bytes": 256, "output_bytes": 40}, "digits": {"from": "digits-mlp"}},
        "services": {"a": {"model": "tiny", "slo": {"latency_ms": 50},
                           "demand": [{"site": "here", "rate_rps": 20}]},
                     "b": {"model": "digits", "slo": {"latency_ms": 50}, "variants": ["fp32"],
                           "demand": [{"site": "here", "rate_rps": 20}]}},
        "deployment": {"replicas": [{"service": "a", "site": "here", "hardware": "box", "variant": "fp32", "count": 1},
                                    {"service": "b", "site": "here", "hardware": "ref", "variant": "fp32", "count": 1}]},
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(doc))
    s = load_scenario(path)
    assert s.hardware["box"].measured.created_utc == load_profile(quick_profile_path).created_utc
    assert s.hardware["ref"].measured.created_utc == load_profile(reference_profile_path()).created_utc
    ref_acc = digits_accuracy(load_profile(reference_profile_path()))
    assert s.models["digits"].variants["fp32"].accuracy == ref_acc["fp32"]  # measured on the held-out digits
    sim = Simulation(s)
    metrics = build_metrics(s, sim.run())
    assert all(p.batch_times is not None and p.batch_times.source == "measured" for p in sim.pools)
    assert "whole-model digits-mlp/fp32" in str(metrics)  # the metrics say where compute times came from

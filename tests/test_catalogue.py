"""Hardware catalogue and model zoo: completeness, sources, and figures against vendor datasheets."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import TypeAdapter

from lepton_sim.catalogue import HARDWARE_KEYS, OPTIONAL_KEYS, hardware_entry, hardware_names, zoo_model, zoo_names
from lepton_sim.layers import PRECISIONS, Layer, layer_costs

LAYERS = TypeAdapter(list[Layer])
FIGURES = [k for k in HARDWARE_KEYS if k not in ("kind", "sources")]
REQUIRED_HARDWARE = ["nvidia-h100-sxm", "nvidia-a100-80gb", "nvidia-l4", "nvidia-t4", "nvidia-jetson-agx-orin",
                     "nvidia-jetson-orin-nano", "amd-alveo-u55c", "generic-server-cpu"]


def test_required_entries_exist() -> None:
    assert set(REQUIRED_HARDWARE) <= set(hardware_names())


@pytest.mark.parametrize("name", hardware_names())
def test_entry_has_every_key_and_a_source_for_every_figure(name: str) -> None:
    entry = hardware_entry(name)
    optional = [k for k in OPTIONAL_KEYS if k in entry]
    assert sorted(entry) == sorted([*HARDWARE_KEYS, *optional])
    assert entry["kind"] in ("gpu", "fpga", "cpu", "edge", "accelerator")
    assert entry["peak_tflops"] and set(entry["peak_tflops"]) <= set(PRECISIONS)
    assert all(v > 0 for v in entry["peak_tflops"].values())
    for key in ("memory_bandwidth_gbps", "memory_gb", "power_w", "cost_per_hour"):
        assert entry[key] > 0, key
    assert 0 < entry["idle_power_w"] < entry["power_w"]
    assert isinstance(entry["sparse_2_4"], bool)
    assert sorted(entry["sources"]) == sorted([*FIGURES, *optional])
    if "calibration" in entry:  # shipped with the package, and calibrated on an on-chip figure it states
        assert Path(entry["calibration"]).is_file()
    assert all(isinstance(s, str) and len(s) > 20 for s in entry["sources"].values())
    # No vendor publishes idle draw: it must be labelled as modelled.
    assert "modelled" in entry["sources"]["idle_power_w"]


def test_entries_are_copies() -> None:
    entry = hardware_entry("nvidia-l4")
    entry["peak_tflops"]["int8"] = 1.0
    entry["cost_per_hour"] = 99.0
    assert hardware_entry("nvidia-l4")["peak_tflops"]["int8"] != 1.0
    assert hardware_entry("nvidia-l4")["cost_per_hour"] != 99.0


def test_unknown_hardware_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="no-such-gpu"):
        hardware_entry("no-such-gpu")


# Datasheet figures, typed here from the vendor documents (dense = quoted sparse / 2 where NVIDIA
# quotes sparse): H100 SXM FP16 tensor 1,979 sparse and plain FP32 67; L4 INT8 485 sparse and
# 300 GB/s; A100 80GB SXM 2,039 GB/s; T4 INT8 130 dense, no sparsity; AGX Orin 275 sparse INT8
# of which the GPU (the part modelled) 170.
@pytest.mark.parametrize("name, key, expected", [
    ("nvidia-h100-sxm", ("peak_tflops", "fp16"), 1979 / 2),
    ("nvidia-h100-sxm", ("peak_tflops", "int8"), 3958 / 2),
    ("nvidia-h100-sxm", ("peak_tflops", "fp32"), 67),
    ("nvidia-h100-sxm", ("memory_bandwidth_gbps",), 3350),
    ("nvidia-a100-80gb", ("memory_bandwidth_gbps",), 2039),
    ("nvidia-a100-80gb", ("peak_tflops", "fp16"), 624 / 2),
    ("nvidia-l4", ("peak_tflops", "int8"), 485 / 2),
    ("nvidia-l4", ("memory_bandwidth_gbps",), 300),
    ("nvidia-t4", ("peak_tflops", "int8"), 130),
    ("nvidia-jetson-agx-orin", ("peak_tflops", "int8"), 170 / 2),
    ("nvidia-jetson-orin-nano", ("peak_tflops", "int8"), 40 / 2),
    ("amd-alveo-u55c", ("memory_bandwidth_gbps",), 460),
])
def test_figures_match_datasheets(name: str, key: tuple[str, ...], expected: float) -> None:
    value = hardware_entry(name)
    for k in key:
        value = value[k]
    assert value == pytest.approx(expected, rel=0.01)


def test_h100_fp16_is_the_tensor_core_figure() -> None:
    # Aggregators list 133.8 (the non-tensor rate); the tensor-core dense rate is 989.4.
    assert hardware_entry("nvidia-h100-sxm")["peak_tflops"]["fp16"] > 900


def test_sparse_tensor_cores_only_from_ampere_on() -> None:
    expected = {"nvidia-h100-sxm": True, "nvidia-a100-80gb": True, "nvidia-l4": True, "nvidia-t4": False,
                "nvidia-jetson-agx-orin": True, "nvidia-jetson-orin-nano": True, "amd-alveo-u55c": False,
                "generic-server-cpu": False}
    assert {n: hardware_entry(n)["sparse_2_4"] for n in expected} == expected


def test_server_cpu_peak_follows_its_derivation() -> None:
    # 2 sockets x 96 cores x 2.4 GHz x 32 fp32 FLOPs/cycle (two 256-bit FMA pipes).
    assert hardware_entry("generic-server-cpu")["peak_tflops"]["fp32"] == pytest.approx(2 * 96 * 2.4e9 * 32 / 1e12,
                                                                                       rel=0.01)
    # 12 channels of DDR5-4800 x 8 bytes per socket, two sockets.
    assert hardware_entry("generic-server-cpu")["memory_bandwidth_gbps"] == pytest.approx(2 * 12 * 4.8 * 8)


def test_zoo_names() -> None:
    assert {"resnet50", "mobilenet-v2", "bert-base", "digits-mlp"} <= set(zoo_names())
    with pytest.raises(KeyError):
        zoo_model("vgg-1000")
    with pytest.raises(ValueError):
        zoo_model("resnet50", seq_len=3)
    with pytest.raises(ValueError):
        zoo_model("bert-base", seq_len=1024)


@pytest.mark.parametrize("name", zoo_names())
def test_zoo_entries_are_complete_and_shape_check(name: str) -> None:
    model = zoo_model(name)
    if model.get("kind") == "llm":
        pytest.skip("an LLM: its shape and variants are tested in tests/test_llm_servicetime.py")
    assert set(model) == {"layers", "input_bytes", "output_bytes", "variants", "source"}
    assert model["input_bytes"] > 0 and model["output_bytes"] > 0 and model["source"]
    layer_costs(LAYERS.validate_python(model["layers"]))
    assert {"fp32", "fp16", "int8"} <= set(model["variants"])
    for variant in model["variants"].values():
        assert set(variant) <= {"precision", "sparsity", "layers", "accuracy", "accuracy_source"}
        assert variant["precision"] in PRECISIONS
        assert variant["accuracy"] is None or 0 < variant["accuracy"] <= 1
        assert variant["accuracy_source"]
        if "layers" in variant:
            layer_costs(LAYERS.validate_python(variant["layers"]))


def test_zoo_returns_fresh_dicts() -> None:
    zoo_model("resnet50")["variants"]["fp32"]["accuracy"] = 0.0
    assert zoo_model("resnet50")["variants"]["fp32"]["accuracy"] == pytest.approx(0.7613)


def test_resnet50_io_and_variants() -> None:
    model = zoo_model("resnet50")
    assert model["input_bytes"] == 150528 and model["output_bytes"] == 4000
    assert {"fp32", "fp16", "int8", "int8-p50"} <= set(model["variants"])
    p50 = model["variants"]["int8-p50"]
    assert p50["precision"] == "int8" and p50["sparsity"] == {"pattern": "2:4", "ratio": 0.5}
    assert model["variants"]["fp32"]["accuracy"] == pytest.approx(0.7613)  # torchvision IMAGENET1K_V1


def test_bert_io_follows_seq_len() -> None:
    model = zoo_model("bert-base", seq_len=64)
    assert model["input_bytes"] == 64 * 4 and model["output_bytes"] == 768 * 4
    assert all(layer["seq"] == 64 for layer in model["layers"] if layer["op"] == "attention")
    assert "distil" in model["variants"]


def test_digits_mlp_is_the_real_model() -> None:
    model = zoo_model("digits-mlp")
    assert [(layer.get("in"), layer.get("out")) for layer in model["layers"] if layer["op"] == "dense"] == [
        (64, 128), (128, 64), (64, 10)]
    assert model["input_bytes"] == 256 and model["output_bytes"] == 40
    assert all(v["accuracy"] is None and "kernels measure" in v["accuracy_source"]
               for v in model["variants"].values())

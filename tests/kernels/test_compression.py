"""Compression transforms, the real digits model, and payload codecs against their definitions."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter

from kernels import codecs, compress, digits
from kernels.forward import DenseWeights, compile_forward, init_params
from kernels.timing import QUICK, TimingPolicy, time_call, time_rounds, time_runs
from lepton_sim.catalogue.zoo import digits_mlp_layers
from lepton_sim.layers import Layer, model_summary

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("ratio", [0.5, 0.75, 0.9])
def test_magnitude_pruning_removes_exactly_the_smallest(ratio: float) -> None:
    w = RNG.standard_normal((64, 30))
    mask = compress.magnitude_mask(w, ratio)
    assert mask.sum() == w.size - round(ratio * w.size)
    kept, dropped = np.abs(w[mask == 1]), np.abs(w[mask == 0])
    assert kept.min() >= dropped.max()


def test_two_four_keeps_the_two_largest_of_every_four_inputs() -> None:
    w = RNG.standard_normal((16, 5))
    mask = compress.mask_2_4(w)
    groups, mgroups = np.abs(w).reshape(4, 4, 5), mask.reshape(4, 4, 5)
    assert np.all(mgroups.sum(axis=1) == 2)
    for g in range(4):
        for col in range(5):
            kept = sorted(groups[g, :, col][mgroups[g, :, col] == 1])
            assert kept == sorted(groups[g, :, col])[2:]
    with pytest.raises(ValueError, match="multiple of 4"):
        compress.mask_2_4(np.ones((6, 2)))


def test_pruned_fraction_survives_masked_fine_tuning() -> None:
    layers = digits_mlp_layers()
    data = digits.load_data()
    params = digits.train(layers, data.x_train, data.y_train, seed=0, epochs=2)
    pruned, masks = compress.prune(params, "magnitude", 0.75)
    tuned = digits.train(layers, data.x_train, data.y_train, seed=1, epochs=2, params=pruned, masks=masks)
    for p, m in zip(tuned, masks):
        if p is not None:
            assert np.all(p.w[m == 0] == 0)
    assert compress.zero_fraction(tuned) >= 0.75


def test_storage_bytes_follow_the_formats() -> None:
    layers = digits_mlp_layers()
    params = init_params(layers, RNG)
    weights = sum(p.w.size for p in params if p is not None)
    biases = sum(p.b.size for p in params if p is not None)
    outs = sum(p.w.shape[1] for p in params if p is not None)
    assert compress.storage_bytes(params, "fp32") == 4 * (weights + biases)
    assert compress.storage_bytes(params, "fp32") == model_summary(_layers(layers), "fp32").weight_bytes
    assert compress.storage_bytes(params, "fp16") == 2 * (weights + biases)
    assert compress.storage_bytes(params, "int8") == weights + 4 * outs + 4 * biases  # codes, scales, fp32 bias
    assert compress.storage_bytes(params, "int4") == weights // 2 + 4 * outs + 4 * biases
    half, _ = compress.prune(params, "2:4")
    assert compress.storage_bytes(half, "fp32", {"pattern": "2:4", "ratio": 0.5}) == (
        4 * weights // 2 + weights // 2 * 2 // 8 + 4 * biases)


def _layers(raw: list[dict[str, Any]]) -> list[Any]:
    return TypeAdapter(list[Layer]).validate_python(raw)


def test_digits_training_is_deterministic_and_learns() -> None:
    layers = digits_mlp_layers()
    data = digits.load_data()
    a = digits.train(layers, data.x_train, data.y_train, seed=3, epochs=8)
    b = digits.train(layers, data.x_train, data.y_train, seed=3, epochs=8)
    assert all(np.array_equal(p.w, q.w) for p, q in zip(a, b) if p is not None and q is not None)
    acc = digits.accuracy(compile_forward(layers, a, "fp32")(data.x_test), data.y_test)
    assert acc > 0.9  # 10 classes: chance is 0.1
    assert len(data.y_test) == 450 and set(np.unique(data.y_test)) == set(range(10))
    assert not set(map(bytes, data.x_test)) & set(map(bytes, data.x_train[:200]))  # held out


def test_quantised_variants_agree_with_fp32_on_most_inputs() -> None:
    layers = digits_mlp_layers()
    data = digits.load_data()
    params = digits.train(layers, data.x_train, data.y_train, seed=0, epochs=8)
    ref = np.argmax(compile_forward(layers, params, "fp32")(data.x_test), axis=1)
    for precision in ("fp16", "int8", "int4"):
        got = np.argmax(compile_forward(layers, params, precision)(data.x_test).astype(np.float32), axis=1)
        assert np.mean(got == ref) > 0.9, precision


def test_distillation_student_is_smaller_and_learns() -> None:
    layers = digits_mlp_layers()
    data = digits.load_data()
    teacher = digits.train(layers, data.x_train, data.y_train, seed=0, epochs=8)
    student = compress.student_layers(layers, 32)
    trained = digits.train(student, data.x_train, data.y_train, seed=2, epochs=8,
                           teacher_logits=digits.logits(layers, teacher, data.x_train))
    assert compress.param_counts(trained)[0] < compress.param_counts(teacher)[0] / 5
    assert digits.accuracy(compile_forward(student, trained, "fp32")(data.x_test), data.y_test) > 0.85


@pytest.mark.parametrize("codec", sorted(codecs.CODECS))
def test_codecs_round_trip_every_data_kind_exactly(codec: str) -> None:
    data = digits.load_data()
    acts = np.maximum(RNG.standard_normal((200, 128)).astype(np.float32), 0)
    for kind in codecs.data_kinds(data.images_uint8, acts, 1 << 15):
        for level in codecs.FULL_LEVELS[codec][:2]:
            packed = codecs.compress(codec, level, kind.data)
            assert codecs.decompress(codec, packed) == kind.data
            if kind.name != "float32-activations":
                assert len(packed) < len(kind.data)  # images (0-16) and text are redundant
    assert codecs.source_text(1000).decode("utf-8", errors="strict")[:3]


def test_timing_reports_median_and_quartiles() -> None:
    t = time_call(lambda: sum(range(100)), QUICK)
    assert t.q1_s <= t.median_s <= t.q3_s and t.repeats >= QUICK.min_repeats and t.inner >= 1
    runs, value = time_runs(lambda: 42, 3)
    assert value == 42 and runs.repeats == 3 and runs.q1_s <= runs.median_s <= runs.q3_s


def test_timing_in_rounds_takes_one_sample_of_every_kernel_in_turn() -> None:
    log: list[str] = []
    policy = TimingPolicy(warmup=2, repeats=4, min_sample_s=0.0, budget_s=10.0, min_repeats=2)
    got = time_rounds({"a": lambda: log.append("a"), "b": lambda: log.append("b")}, policy)
    assert log == ["a", "a", "b", "b"] + ["a", "b"] * 4  # warm-ups, then rounds of one call each
    assert {k: (m.repeats, m.inner) for k, m in got.items()} == {"a": (4, 1), "b": (4, 1)}
    assert all(m.q1_s <= m.median_s <= m.q3_s for m in got.values())
    # out of budget, the rounds stop once every kernel has min_repeats samples
    slow = TimingPolicy(warmup=1, repeats=50, min_sample_s=0.0, budget_s=0.0, min_repeats=3)
    assert {m.repeats for m in time_rounds({"a": lambda: None, "b": lambda: None}, slow).values()} == {3}


def test_dense_weights_are_not_mutated_by_compilation() -> None:
    layers = [{"op": "dense", "in": 4, "out": 3}]
    w = RNG.standard_normal((4, 3)).astype(np.float32)
    params = [DenseWeights(w.copy(), np.zeros(3, np.float32))]
    for precision in ("fp32", "fp16", "int8", "int4"):
        compile_forward(layers, params, precision)
    assert np.array_equal(params[0].w, w)

"""`kernels.fidelity.machine_fidelity`, and the parts of the measured model it exercises on held-out stacks.

The figures themselves (within 10% on a quiet machine) are the fidelity benchmark's to show; these
tests check the table's shape and the model's rules on profiles edited to make each rule decide:
a chain outgrowing the last-level cache reads the cold GEMM timings, a batch past the measured
rows is carried on from the two largest measured, every layer adds the measured cost of a step in
a chain, and a profile without the newer keys reads as before.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kernels.fidelity import HELD_OUT, PRECISIONS, machine_fidelity, retimed
from kernels.realmodel import INLINE_MLP_LAYERS
from lepton_sim.profiles import Profile
from lepton_sim.profiles.format import parse_profile
from lepton_sim.profiles.measured import predicted_seconds, records_read
from lepton_sim.servicetime.roofline import evicted_fraction

TINY: list[dict[str, Any]] = [{"op": "dense", "in": 64, "out": 256}, {"op": "relu"},
                              {"op": "dense", "in": 256, "out": 10}]


def test_machine_fidelity_rows(quick_profile_path: Path, blas_threads: int) -> None:
    rows = machine_fidelity(quick_profile_path, threads=blas_threads, batches=(1, 3),
                            stacks=[{"name": "tiny", "layers": TINY}])
    assert [(r["stack"], r["precision"], r["batch"]) for r in rows] == [
        ("tiny", p, b) for p in PRECISIONS for b in (1, 3)]
    for r in rows:
        assert set(r) == {"stack", "precision", "batch", "simulated_s", "direct_s", "ratio", "source", "rounds"}
        assert r["simulated_s"] > 0 and r["direct_s"] > 0 and r["source"] == "measured"
        assert r["ratio"] == pytest.approx(r["simulated_s"] / r["direct_s"])
    one = machine_fidelity(quick_profile_path, threads=blas_threads, batches=(2,),
                           stacks=[{"name": "tiny", "layers": TINY, "precisions": ["fp32"]}])
    assert [(r["precision"], r["batch"]) for r in one] == [("fp32", 2)]


def test_machine_fidelity_refuses_what_it_cannot_compare(quick_profile_path: Path, blas_threads: int) -> None:
    with pytest.raises(ValueError, match="BLAS thread"):
        machine_fidelity(quick_profile_path, threads=blas_threads + 1, batches=(1,),
                         stacks=[{"name": "t", "layers": TINY}])
    with pytest.raises(ValueError, match="whole model"):
        machine_fidelity(quick_profile_path, threads=blas_threads, batches=(1,),
                         stacks=[{"name": "inline", "layers": INLINE_MLP_LAYERS}])


def test_paired_timing_predicts_from_the_records_timed_again(quick_profile: Profile, blas_threads: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Stand-in jobs with known timings: every GEMM takes 1 ms, every memory-bound kernel 10 us and
    # a chain step 0.5 us. The paired copy must predict from them, and only the records read change.
    from kernels import micro

    def timing(s: float) -> dict[str, Any]:
        return {"median_s": s, "q1_s": s, "q3_s": s, "repeats": 3, "inner": 1}

    def job(result: dict[str, Any]) -> Any:
        return type("FakeJob", (), {"run": lambda self: result})()

    monkeypatch.setattr(micro, "gemm_job", lambda *a: job({"timing": timing(1e-3)}))
    monkeypatch.setattr(micro, "cold_gemm_job", lambda p, k, n, ms, llc, pol: job(
        {"rows": [{"m": m, "timing": timing(1e-3)} for m in ms]}))
    monkeypatch.setattr(micro, "elementwise_job", lambda *a: job({"timing": timing(1e-5)}))
    monkeypatch.setattr(micro, "chain_job", lambda pol: job({"step_s": 5e-7}))
    layers = [{"op": "dense", "in": 64, "out": 128}, {"op": "relu"}, {"op": "dense", "in": 128, "out": 64}]
    reads = records_read(quick_profile, layers, "fp32", [1])
    fresh = retimed(quick_profile, reads, blas_threads)
    # every record a dense layer reads now takes 1 ms, so the layer does
    assert predicted_seconds(fresh, layers, "fp32", 1) == pytest.approx(2e-3 + 1e-5 + 3 * 5e-7)
    assert predicted_seconds(quick_profile, layers, "fp32", 1) != predicted_seconds(fresh, layers, "fp32", 1)
    read_gemms = {(k[1], int(k[2]), int(k[3]), int(k[4])) for k in reads if k[0] == "gemm"}
    for old, new in zip(quick_profile.gemm, fresh.gemm):
        assert (new is old) != ((old.precision, old.m, old.k, old.n) in read_gemms)
    with pytest.raises(ValueError, match="cannot time these records again: conv"):
        retimed(quick_profile, {("conv", 3, 16, 3, 1, 1, 32, "fp32", 1.0)}, blas_threads)


def test_held_out_stacks_are_not_whole_models(quick_profile: Profile) -> None:
    names = [s["name"] for s in HELD_OUT]
    assert len(set(names)) == len(names) >= 4
    for stack in HELD_OUT:
        for precision in PRECISIONS:
            for b in (1, 64):  # every dense layer of every stack is covered by the quick profile's tables
                assert predicted_seconds(quick_profile, stack["layers"], precision, b) is not None


def _edited(path: Path, caches: dict[str, int] | None) -> Profile:
    data = json.loads(path.read_text())
    if caches is None:
        data["machine"].pop("caches", None)
    else:
        data["machine"]["caches"] = caches
    return parse_profile(data)


def test_a_chain_outgrowing_the_cache_reads_the_cold_timings(quick_profile_path: Path) -> None:
    layer = [{"op": "dense", "in": 1024, "out": 4096}]  # 16 MiB of fp32 weights
    raw = json.loads(quick_profile_path.read_text())
    rec = next(g for g in raw["gemm"] if (g["precision"], g["m"], g["k"], g["n"]) == ("fp32", 1, 1024, 4096))
    step = raw["ceilings"].get("chain_step_s", 0.0)
    hot, cold = rec["timing"]["median_s"] + step, rec["cold"]["median_s"] + step
    small = _edited(quick_profile_path, {"L2": 2 ** 19, "L3": 2 ** 22})  # 4 MiB: the layer alone is 4x that
    assert predicted_seconds(small, layer, "fp32", 1) == pytest.approx(max(hot, cold))
    assert ("gemm_cold", "fp32", 1.0, 1024.0, 4096.0) in records_read(small, layer, "fp32", [1])
    for roomy in (_edited(quick_profile_path, {"L3": 2 ** 30}), _edited(quick_profile_path, None)):
        assert predicted_seconds(roomy, layer, "fp32", 1) == pytest.approx(hot)  # no cache size: hot, as before
        assert not any(k[0] == "gemm_cold" for k in records_read(roomy, layer, "fp32", [1]))


def test_a_chain_outgrowing_the_private_cache_moves_towards_the_warm_timings(quick_profile_path: Path) -> None:
    """Two 1 MiB fp32 layers against a 2 MiB L2 and a far larger last level: each dense layer's time
    moves from hot towards warm by the fraction of the chain evicted from the L2."""
    mib = 2 ** 20
    stack = [{"op": "dense", "in": 512, "out": 512}, {"op": "relu"}, {"op": "dense", "in": 512, "out": 512}]
    raw = json.loads(quick_profile_path.read_text())
    for g in raw["gemm"]:  # synthetic warm timings: three times the hot one, for every shape that fits the L2
        g.pop("warm", None)
        if g["precision"] == "fp32" and g["k"] * g["n"] * 4 <= 2 * mib:
            g["warm"] = {**g["timing"], **{q: 3 * g["timing"][q] for q in ("q1_s", "median_s", "q3_s")}}
    raw["machine"]["caches"] = {"L2": 2 * mib, "L3": 512 * mib}
    warm = parse_profile(raw)
    hot = _edited(quick_profile_path, {"L2": 64 * mib, "L3": 512 * mib})  # the chain fits the L2
    one = next(g for g in raw["gemm"] if (g["precision"], g["m"], g["k"], g["n"]) == ("fp32", 1, 512, 512))
    dense_hot = one["timing"]["median_s"]
    with_warm, all_hot = predicted_seconds(warm, stack, "fp32", 1), predicted_seconds(hot, stack, "fp32", 1)
    assert with_warm is not None and all_hot is not None
    # two dense layers, each moved by f x (3 - 1) x its hot time, f between 0 and 1 (evicted_fraction)
    f = (with_warm - all_hot) / (2 * 2 * dense_hot)
    assert 0.3 < f < 0.8, f
    assert ("gemm_warm", "fp32", 1.0, 512.0, 512.0) in records_read(warm, stack, "fp32", [1])
    assert not any(k[0] == "gemm_warm" for k in records_read(hot, stack, "fp32", [1]))
    single = [{"op": "dense", "in": 256, "out": 512}]  # 0.5 MiB stays in the 2 MiB L2: hot
    assert predicted_seconds(warm, single, "fp32", 1) == pytest.approx(predicted_seconds(hot, single, "fp32", 1))


def test_evicted_fraction_rises_from_half_the_cache_to_twice_it() -> None:
    mib = 2 ** 20
    assert evicted_fraction(16 * mib, 32 * mib) == 0 and evicted_fraction(64 * mib, 32 * mib) == 1
    assert evicted_fraction(32 * mib, 32 * mib) == pytest.approx(0.5)
    assert evicted_fraction(10 ** 12, None) == 0  # unknown cache: the hot timings
    many = evicted_fraction(np.array([8, 16, 32, 64, 128]) * mib, 32 * mib)  # elementwise, as the roofline calls it
    assert list(many) == pytest.approx([0, 0, 0.5, 1, 1])


def test_batches_past_the_measured_rows_carry_on_from_the_two_largest(quick_profile: Profile) -> None:
    layer = [{"op": "dense", "in": 4096, "out": 4096}]
    measured = {g.m: g.timing.median_s for g in quick_profile.gemm
                if (g.precision, g.k, g.n) == ("int8", 4096, 4096)}
    m0, m1 = sorted(measured)[-2:]
    beyond = 4 * m1
    per_row = (measured[m1] - measured[m0]) / (m1 - m0)
    expect = measured[m1] + per_row * (beyond - m1) if per_row > 0 else measured[m1] * beyond / m1
    expect += quick_profile.ceilings.chain_step_s or 0.0
    assert predicted_seconds(quick_profile, layer, "int8", beyond) == pytest.approx(expect)


def test_each_layer_of_a_chain_adds_the_measured_step_cost(quick_profile_path: Path) -> None:
    raw = json.loads(quick_profile_path.read_text())
    assert raw["ceilings"]["chain_step_s"] >= 0
    with_step = parse_profile(raw)
    raw["ceilings"].pop("chain_step_s")
    without = parse_profile(raw)  # as a profile from before the key
    a, b = predicted_seconds(with_step, TINY, "fp32", 1), predicted_seconds(without, TINY, "fp32", 1)
    assert a is not None and b is not None
    assert a - b == pytest.approx(len(TINY) * (with_step.ceilings.chain_step_s or 0.0))
    assert ("chain",) in records_read(with_step, TINY, "fp32", [1])
    assert ("chain",) not in records_read(without, TINY, "fp32", [1])

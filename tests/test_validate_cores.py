"""Where `lepton-sim validate` runs its threads (`lepton_sim.validation.cores`)."""
from __future__ import annotations

import os
import threading

import pytest

from lepton_sim.validation import cores


def test_each_replica_worker_gets_a_core_of_its_own_and_the_harness_the_rest() -> None:
    p = cores.plan([1], cores=(0, 1), pinnable=True)
    assert p.pinned and p.workers == ((1,),) and p.harness == (0,)
    assert p.config(0) == {"cpus": [1], "harness_cpus": [0]}
    assert p.describe() == "cores: replica workers on 1, harness on 0"
    p = cores.plan([2, 1], cores=(4, 5, 6, 7), pinnable=True)  # pools in order, on the highest cores
    assert p.workers == ((5, 6), (7,)) and p.harness == (4,)
    assert p.config(1) == {"cpus": [7], "harness_cpus": [4]}


@pytest.mark.parametrize("counts, usable, pinnable, shared, why", [
    ([2], (0, 1), True, False, "2 replicas and 2 cores leave none for the harness"),
    ([1, 1], (0, 1), True, False, "2 replicas and 2 cores leave none for the harness"),
    ([1], (0,), True, False, "1 replica and 1 cores leave none for the harness"),
    ([1], (0, 1), False, False, "no per-thread affinity on this platform"),
    ([1], (0, 1), True, True, "as asked (--shared-cores)"),
])
def test_without_a_core_to_spare_everything_shares_and_says_why(counts: list[int], usable: tuple[int, ...],
                                                                pinnable: bool, shared: bool, why: str) -> None:
    p = cores.plan(counts, cores=usable, pinnable=pinnable, shared=shared)
    assert not p.pinned and p.why == why and p.harness == usable
    assert all(w == () for w in p.workers) and len(p.workers) == len(counts)
    assert p.config(0) == {}
    assert why in p.describe()


@pytest.mark.skipif(not cores.can_pin() or len(cores.usable()) < 2, reason="needs per-thread affinity and 2 cores")
def test_the_harness_context_moves_the_calling_thread_and_what_it_starts_then_restores() -> None:
    before = cores.current()
    p = cores.plan([1], pinnable=True)
    seen: list[list[int]] = []
    with cores.harness(p):
        assert cores.current() == list(p.harness)
        t = threading.Thread(target=lambda: seen.append(cores.current()))
        t.start()
        t.join()
    assert seen == [list(p.harness)]  # a thread started inside inherits the harness's cores
    assert cores.current() == before == sorted(os.sched_getaffinity(0))


def test_idle_worker_wake_counts_only_requests_that_found_a_worker_idle() -> None:
    from types import SimpleNamespace

    from lepton_sim.validation.run import _idle_wakes

    pool = SimpleNamespace(index=0, count=1, max_wait_ms=0.0)
    # batches: taken, forward start, forward end, sent, size
    batches = [[0.0, 0.0, 1.0, 1.0, 1], [1.0, 1.0, 1.9, 1.9, 2], [2.05, 2.05, 3.0, 3.0, 1]]
    # requests: id, enqueued, taken, sending
    requests = [[1, -0.1, 0.0, 1.0],  # idle worker: waits 0.1 for it to wake
                [2, 0.5, 1.0, 1.9],  # the worker is busy
                [3, 0.6, 1.0, 1.9],  # busy, and queued behind request 2
                [4, 2.0, 2.05, 3.0]]  # idle again: 0.05
    stats = {0: {"batches": batches, "requests": requests}}
    assert _idle_wakes(SimpleNamespace(pools=[pool]), stats) == pytest.approx([0.1, 0.05])
    two = SimpleNamespace(index=0, count=2, max_wait_ms=0.0)  # a second worker was idle for request 2
    stats2 = {0: {"batches": [[0.0, 0.0, 1.0, 1.0, 1], [0.52, 0.52, 1.5, 1.5, 1]],
                  "requests": [[1, -0.1, 0.0, 1.0], [2, 0.5, 0.52, 1.5]]}}
    assert _idle_wakes(SimpleNamespace(pools=[two]), stats2) == pytest.approx([0.1, 0.02])
    waits = SimpleNamespace(index=0, count=1, max_wait_ms=2.0)  # waits on purpose: left out
    assert _idle_wakes(SimpleNamespace(pools=[waits]), stats) == []


def test_served_samples_are_each_batchs_cost_with_the_wake_up_after_idle() -> None:
    from types import SimpleNamespace

    from lepton_sim.validation.run import served_samples

    t0 = 10.0  # the run's start on the perf_counter clock
    # batches: taken, forward start, forward end, sent, size; whether the worker waited for each
    batches = [[10.5, 10.5, 10.6, 10.61, 1],  # in the warm-up: left out
               [12.0, 12.0, 12.9, 13.0, 1],  # idle: due at 11.9 (its enqueue), taken 0.1 later
               [13.01, 13.01, 13.5, 13.6, 2],  # back to back: 0.6 from the worker's last response sent
               [14.0, 14.0, 14.2, 14.25, 1]]  # idle: due 13.98
    waited = [True, True, False, True]
    requests = [[1, 10.4, 10.5, 10.61], [2, 11.9, 12.0, 13.0], [3, 12.5, 13.01, 13.55], [4, 12.6, 13.01, 13.6],
                [5, 13.98, 14.0, 14.25]]
    stat = {"batches": batches, "waited": waited, "requests": requests, "workers": [0, 0, 0, 0]}
    pool = SimpleNamespace(max_wait_ms=0.0, max_batch=4)
    got = served_samples(pool, stat, t0, warmup_s=1.0, duration_s=5.0)  # type: ignore[arg-type]
    assert got["hot"] == {2: pytest.approx([0.6])}
    assert got["idle"] == {1: pytest.approx([1.0 + 0.1, 0.25 + 0.02])}
    assert got["hot_at"] == {2: pytest.approx([3.01])} and got["idle_at"] == {1: pytest.approx([2.0, 4.0])}  # taken
    # a worker's first batch back to back (another worker ran the one before): from its take
    other = {**stat, "workers": [0, 0, 1, 0]}
    assert served_samples(pool, other, t0, warmup_s=1.0, duration_s=5.0)["hot"] == {2: pytest.approx([0.59])}  # type: ignore[arg-type]
    # With max_wait_ms a waiting batch is due when the wait ends (or when it fills): the deliberate
    # wait is the simulator's to model, only the lateness after it counts.
    batching = SimpleNamespace(max_wait_ms=50.0, max_batch=4)
    got = served_samples(batching, stat, t0, warmup_s=1.0, duration_s=5.0)  # type: ignore[arg-type]
    assert got["idle"] == {1: pytest.approx([1.0 + 0.05, 0.25])}  # 11.95 due, 12.0 taken; 14.03 not yet due
    filled = SimpleNamespace(max_wait_ms=50.0, max_batch=1)  # a full batch is due at its last enqueue
    got = served_samples(filled, stat, t0, warmup_s=1.0, duration_s=5.0)  # type: ignore[arg-type]
    assert got["idle"] == {1: pytest.approx([1.0 + 0.1, 0.25 + 0.02])}
    # a window that ends before the last batch leaves it out
    assert served_samples(pool, stat, t0, warmup_s=1.0, duration_s=3.5)["idle"] == {1: pytest.approx([1.1])}  # type: ignore[arg-type]


def test_sampled_times_pool_samples_and_fill_sizes_the_run_never_formed() -> None:
    from types import SimpleNamespace

    from lepton_sim.scenario import parse_scenario
    from lepton_sim.validation.run import sampled_times

    doc = {"name": "s", "seed": 1, "horizon": {"duration_s": 5},
           "hardware": {"cpu": {"from": "generic-server-cpu"}}, "sites": {"a": {"capacity": {"cpu": 2}}, "b": {"capacity": {"cpu": 2}}},
           "models": {"m": {"layers": [{"op": "dense", "in": 64, "out": 64}], "input_bytes": 256, "output_bytes": 40}},
           "services": {"s": {"model": "m", "slo": {"percentile": 99, "latency_ms": 50}, "batching": {"max_batch": 4},
                              "demand": [{"site": "a", "rate_rps": 10}]}},
           "deployment": {"replicas": [{"service": "s", "site": "a", "hardware": "cpu", "variant": "fp32", "count": 1},
                                       {"service": "s", "site": "b", "hardware": "cpu", "variant": "fp32", "count": 1}]}}
    scenario = parse_scenario(doc)
    pools = [SimpleNamespace(index=0, service="s", variant="fp32", hardware="cpu"),
             SimpleNamespace(index=1, service="s", variant="fp32", hardware="cpu")]
    samples = {0: {"hot": {1: [1e-3]}, "idle": {1: [2e-3]}, "hot_at": {1: [2.0]}, "idle_at": {1: [0.5]}},
               1: {"hot": {1: [3e-3], 4: [8e-3]}, "idle": {}, "hot_at": {1: [1.0], 4: [1.5]}, "idle_at": {}}}
    fn = sampled_times(scenario, SimpleNamespace(pools=pools), samples)  # type: ignore[arg-type]
    m = scenario.models["m"]
    t = fn(m, m.variants["fp32"], scenario.hardware["cpu"], 4)
    assert t.samples_s[0] == (3e-3, 1e-3) and t.samples_at_s[0] == (1.0, 2.0)  # both pools' batches of one, in time order
    assert t.samples_s[3] == (8e-3,)
    # sizes 2 and 3 were never formed: the nearest formed size's samples (in log size; the smaller
    # at a tie), scaled by the two sizes' ratio of times
    for b, near in ((2, 1), (3, 4)):
        r = t.times_s[b - 1] / t.times_s[near - 1]
        assert t.samples_s[b - 1] == pytest.approx(tuple(x * r for x in t.samples_s[near - 1]))
    assert t.idle_samples_s is not None and t.idle_samples_s[0] == (2e-3,) and t.idle_samples_at_s[0] == (0.5,)
    assert t.idle_samples_s[3] == pytest.approx((2e-3 * t.times_s[3] / t.times_s[0],))  # nearest idle size: 1
    assert "drawn from the 4 batches" in t.detail and t.after_idle is None


def test_the_client_path_moves_each_demand_to_a_linked_client_with_the_same_requests() -> None:
    """`with_client_path`: the harness's hop as a link; the simulated requests are the same, each
    `2 x one_way` later back (a route of its own link only, 4 kB at 10 Tbit/s: nanoseconds)."""
    from pathlib import Path

    import yaml

    from lepton_sim.metrics import build_metrics
    from lepton_sim.scenario.load import parse_scenario
    from lepton_sim.sim import Simulation
    from lepton_sim.validation.run import with_client_path

    root = Path(__file__).resolve().parents[1] / "scenarios" / "validation"
    raw = yaml.safe_load((root / "one-pool-30.yaml").read_text())
    raw["horizon"] = {"duration_s": 4, "warmup_s": 0.5, "drain_s": 1}
    raw["services"]["infer"]["service_time"] = {"dist": "deterministic", "ms": 1.0}  # no profile needed
    moved = with_client_path(raw, 0.25)
    assert raw["services"]["infer"]["demand"][0]["site"] == "here"  # the input is left alone
    assert moved["services"]["infer"]["demand"][0]["site"] == "here.client"
    assert moved["sites"]["here.client"] == {"kind": "datacenter"}
    assert moved["links"] == [{"between": ["here.client", "here"], "bandwidth_gbps": 1e4, "latency_ms": 0.25}]
    runs = []
    for doc in (raw, moved):
        s = parse_scenario(doc, file="t.yaml", base_dir=root)
        runs.append(build_metrics(s, Simulation(s, 3).run())["services"]["infer"])
    before, after = runs
    assert after["arrived"] == before["arrived"] > 400  # the same arrivals
    for k in ("mean", "p50", "p99"):
        assert after["latency_ms"][k] - before["latency_ms"][k] == pytest.approx(0.5, abs=0.02), k

"""The real data-parallel harness (lepton_sim/validation/dataparallel.py): its ring all-reduce sums
both ranks' gradients, its backward is the gradient of its loss, and loopback is measured.
Timings are the benchmark's (benchmarks/training_real.py), not asserted here."""
from __future__ import annotations

import numpy as np

from lepton_sim.validation.dataparallel import forward, forward_backward, loopback_measured, make_net, run_step

WIDTHS = [64, 96, 32]


def _local_grad(rank: int, batch: int) -> np.ndarray:
    net = make_net(WIDTHS, seed=0)
    rng = np.random.default_rng(100 + rank)
    x = rng.standard_normal((batch, WIDTHS[0]), dtype=np.float32)
    target = rng.standard_normal((batch, WIDTHS[-1]), dtype=np.float32)
    return forward_backward(net, x, target)


def test_ring_allreduce_sums_the_gradients_of_both_ranks() -> None:
    times, firsts = run_step(WIDTHS, 16, iters=2, warmup=1, bucket_mb=0.004)  # 1,000 floats a bucket
    want = (_local_grad(0, 16) + _local_grad(1, 16))[:64]
    for got in firsts:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert times.buckets == -(-(64 * 96 + 96 + 96 * 32 + 32) // 1000)
    assert 0 < times.forward_s < times.compute_s < times.iteration_s


def test_backward_is_the_gradient_of_the_loss() -> None:
    net = make_net(WIDTHS, seed=1)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, WIDTHS[0])).astype(np.float64)
    target = rng.standard_normal((8, WIDTHS[-1])).astype(np.float64)
    net = [(w.astype(np.float64), b.astype(np.float64) + 0.01) for w, b in net]
    g = forward_backward(net, x, target).astype(np.float64)

    def loss() -> float:
        return float(((forward(net, x) - target) ** 2).sum() / len(x))

    w = net[0][0]
    eps = 1e-6
    for idx in ((0, 0), (3, 7), (63, 95)):
        old = w[idx]
        w[idx] = old + eps
        up = loss()
        w[idx] = old - eps
        down = loss()
        w[idx] = old
        assert abs((up - down) / (2 * eps) - g[idx[0] * WIDTHS[1] + idx[1]]) < 1e-4 * max(1.0, abs(g[idx[0] * 96 + idx[1]]))


def test_loopback_is_measured() -> None:
    m = loopback_measured(4 * 1024 * 1024)
    assert m.one_way_bps > 1e7 and m.duplex_bps > 1e7 and 0 < m.latency_s < 0.01


def test_the_network_and_its_gradients_are_fp32() -> None:
    # float32 weights scaled by numpy's float64 sqrt were float64, and every GEMM of the real step ran
    # at double precision: twice the time of the fp32 job it is set against
    net = make_net([64, 96, 32], seed=0)
    assert all(w.dtype == np.float32 and b.dtype == np.float32 for w, b in net)
    x = np.ones((4, 64), np.float32)
    assert forward(net, x).dtype == np.float32
    assert forward_backward(net, x, np.zeros((4, 32), np.float32)).dtype == np.float32

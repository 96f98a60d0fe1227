"""Fair-sharing links (`sharing: fair`) against processor-sharing theory, late in a long run.

A fair link direction is an M/G/1 processor-sharing queue for Poisson transfers: its mean sojourn
is S / (1 - rho) whatever the size distribution (insensitivity; Kleinrock, Queueing Systems vol. 2,
sec. 4.4), and a transfer of x seconds' serialisation spends x / (1 - rho) on average. The link's
bookkeeping (virtual time, the finishing test) must give that at any simulated time, so each test
runs its Poisson stream after the link has already carried HISTORY_S seconds at full bandwidth:
one bulk transfer from t = 0 that stands for the thousands of seconds of traffic a long run has
carried by then (a 3,000 s run at 700 rps is some 2 million requests and 100 s of wall time; one
transfer is one event). The stream then follows an idle spell, or shares the link with the bulk
transfer so that the link never idles; and tiny transfers late in a run must not stall the clock.

The stream is a trace of Poisson timestamps drawn here, one independent stream per replication.
Replications are independent, so their spread gives an honest standard error; each test checks
|grand mean - theory| <= T_CRIT standard errors, that the standard error is a few per cent (a noisy
run cannot pass by luck) and that the bias is small in absolute terms. Whatever the noise, no
transfer may arrive sooner than its own serialisation plus propagation.
"""
from __future__ import annotations

import math
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lepton_sim.scenario import parse_scenario
from lepton_sim.sim import simulate
from lepton_sim.sim.record import SimRecord

GBPS = 1.0  # the link: 1 Gb/s each way, 5 ms one way
BPS = GBPS * 1e9
PROP_S = 5e-3
COMPUTE_S = 1e-6  # deterministic compute on plenty of replicas: never queues
OUT_BYTES = 125  # responses: 1 us on the wire back (its sharing term, rho_back < 1e-3, is < 1 ns)
HISTORY_S = 3000.0  # seconds of full-bandwidth traffic the link has carried before the stream
WARMUP_S = 1.0  # the stream starts on an empty link; PS relaxes in tens of ms at these loads
N_REPS = 8
T_CRIT = 5.41  # Student t, 7 degrees of freedom, two-sided 0.001
SPAN_S = 15.0  # seconds of stream a replication
WATCHDOG_S = 20.0  # wall seconds a replication may take (it takes about 0.5)

BOX = {"kind": "cpu", "peak_tflops": {"fp32": 1.0}, "memory_bandwidth_gbps": 50, "memory_gb": 16,
       "power_w": 100, "idle_power_w": 40, "cost_per_hour": 0.5}

@contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    """Fail, rather than hang the suite, if a simulation makes no progress in wall time (POSIX only)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"simulation still running after {seconds:.0f} s of wall time: a livelock?")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _poisson_trace(path: Path, rate: float, start: float, span: float, rng: np.random.Generator) -> None:
    n = int(rate * span + 10 * math.sqrt(rate * span) + 10)
    t = start + np.cumsum(rng.exponential(1.0 / rate, n))
    t = t[t < start + span]
    assert t[-1] > start + span - 1.0, "the trace must cover the stream"
    path.write_text("\n".join(repr(float(x)) for x in t) + "\n")


def _scenario(tmp_path: Path, classes: dict[str, tuple[int, float]], rep: int, span: float,
              history_bits: float, out_bytes: int = OUT_BYTES) -> dict[str, Any]:
    """Transfers of each class (`name: (input_bytes, rate_rps)`) from `edge` over one fair link to `dc`.

    A bulk transfer of `history_bits` leaves at t = 0; the classes' Poisson streams start once it
    has had HISTORY_S seconds alone. The window measures the stream after a short warm-up.
    """
    rng = np.random.default_rng([8, rep])
    start = HISTORY_S + PROP_S + 1.0
    models: dict[str, Any] = {}
    services: dict[str, Any] = {}
    replicas: list[dict[str, Any]] = []

    def add(name: str, in_bytes: int, arrival: dict[str, Any]) -> None:
        models[name] = {"layers": [{"op": "dense", "in": 8, "out": 8}],
                        "input_bytes": in_bytes, "output_bytes": out_bytes}
        services[name] = {"model": name, "slo": {"percentile": 99, "latency_ms": 50},
                          "service_time": {"dist": "deterministic", "ms": COMPUTE_S * 1e3},
                          "demand": [{"site": "edge", "arrival": arrival}]}
        replicas.append({"service": name, "site": "dc", "hardware": "box", "variant": "fp32", "count": 16})

    for name, (in_bytes, rate) in classes.items():
        _poisson_trace(tmp_path / f"{name}-{rep}.csv", rate, start, span, rng)
        add(name, in_bytes, {"kind": "trace", "file": f"{name}-{rep}.csv"})
    if history_bits > 0:
        # one stamp at 0; the second falls after the horizon (a trace holds at least two)
        (tmp_path / "bulk.csv").write_text(f"0.0\n{start + span + 1e6}\n")
        add("bulk", int(history_bits / 8), {"kind": "trace", "file": "bulk.csv"})
    return {
        "name": "ps-link", "seed": 1,
        "horizon": {"duration_s": start + span, "warmup_s": start + WARMUP_S, "drain_s": 5},
        "hardware": {"box": dict(BOX)},
        "sites": {"dc": {"capacity": {"box": 16 * len(replicas)}}, "edge": {"kind": "edge", "capacity": {}}},
        "links": [{"between": ["edge", "dc"], "bandwidth_gbps": GBPS, "latency_ms": PROP_S * 1e3, "sharing": "fair"}],
        "models": models, "services": services, "deployment": {"replicas": replicas},
    }


def _run(tmp_path: Path, classes: dict[str, tuple[int, float]], span: float, history_bits: float,
         reps: int = N_REPS, out_bytes: int = OUT_BYTES) -> list[SimRecord]:
    records = []
    for rep in range(reps):
        d = _scenario(tmp_path, classes, rep, span, history_bits, out_bytes)
        s = parse_scenario(d, base_dir=tmp_path)
        with _watchdog(WATCHDOG_S):
            records.append(simulate(s))
    return records


def _floor_s() -> float:
    """Everything but the forward link's sojourn: propagation both ways, compute, the response's wire time."""
    return 2 * PROP_S + COMPUTE_S + OUT_BYTES * 8 / BPS


def _check_ps(records: list[SimRecord], classes: dict[str, tuple[int, float]], span: float,
              shares: int = 1, max_rel_se: float = 0.02, max_bias: float = 0.05) -> None:
    """Each class's mean forward sojourn against shares * x / (1 - rho); no transfer faster than its wire time.

    `shares` is 1 for a plain PS link and 2 beside one persistent transfer. The per-run mean is
    corrected by a control variate (Lavenberg and Welch, Management Science 27, 1981): the run's
    realised arrival rates, whose expectation is known exactly, times the theory's sensitivity
    d E[T_x] / d lambda_k = shares x S_k / (1 - rho)^2. The correction has mean zero, so the
    estimate stays unbiased, and it halves the variance here (a run's mean sojourn mostly follows
    how many arrivals it happened to draw).
    """
    sizes = {name: b * 8 / BPS for name, (b, _) in classes.items()}
    rho = sum(sizes[name] * rate for name, (_, rate) in classes.items())
    window = span - WARMUP_S
    floor = _floor_s()
    for name in classes:
        x = sizes[name]
        expected = shares * x / (1 - rho)
        means = []
        for r in records:
            drift = sum(shares * x * sizes[k] / (1 - rho) ** 2 * (r.services[k].arrived / window - rate)
                        for k, (_, rate) in classes.items())
            means.append(r.services[name].latency_s.mean - floor - drift)
        grand = float(np.mean(means))
        se = float(np.std(means, ddof=1) / math.sqrt(len(means)))
        fastest = min(r.services[name].latency_s.min for r in records) - floor
        assert fastest >= x - 1e-9, (
            f"{name}: a transfer crossed in {fastest * 1e3:.4f} ms, under its own serialisation {x * 1e3:.4f} ms"
        )
        got = f"{name}: mean sojourn {grand * 1e3:.4f} ms, theory {expected * 1e3:.4f} ms, SE {se * 1e3:.4f} ms"
        assert se / expected < max_rel_se, f"too noisy to judge: {got}"
        assert abs(grand - expected) <= T_CRIT * se, got
        # whatever the noise, the bias must stay small; the faults this guards against cost 10-70 %
        assert abs(grand - expected) / expected < max_bias, got


def test_md1_ps_mean_sojourn_after_a_long_history(tmp_path: Path) -> None:
    """M/D/1-PS, 125,000-byte transfers on 1 Gb/s at 700 rps (S = 1 ms, rho = 0.7): S / (1 - rho) = 3.333 ms.

    The link idles between the history and the stream, as a real link idles between busy periods.
    """
    classes = {"q": (125_000, 700.0)}
    _check_ps(_run(tmp_path, classes, SPAN_S, history_bits=HISTORY_S * BPS), classes, SPAN_S)


def test_mg1_ps_is_insensitive_to_the_size_distribution(tmp_path: Path) -> None:
    """Two sizes, 0.5 ms at 600 rps and 4 ms at 100 rps: mean 1 ms, SCV 1.5, rho = 0.7.

    PS gives each class x / (1 - rho), 1.667 ms and 13.33 ms, hence 3.333 ms overall as for fixed
    sizes; FIFO would give 3.92 ms overall (Pollaczek-Khinchine) and the same wait to both.
    """
    classes = {"small": (62_500, 600.0), "large": (500_000, 100.0)}
    recs = _run(tmp_path, classes, SPAN_S, history_bits=HISTORY_S * BPS)
    # the large class draws only 1,400 transfers a run, each shared for 13 ms: its SE is 1-3 % over
    # 12 sets of seeds tried (0.2-1.5 % for the other tests), so it is allowed 8 % of bias, not 5 %
    _check_ps(recs, classes, SPAN_S, max_rel_se=0.04, max_bias=0.08)


def test_ps_beside_a_persistent_transfer(tmp_path: Path) -> None:
    """A stream sharing the link with a transfer that never finishes: the link never idles.

    With the bulk transfer always present, n stream transfers get n / (n + 1) of the bandwidth: a
    symmetric queue with state-dependent rate, still insensitive (Kelly, Reversibility and
    Stochastic Networks, 1979, sec. 3.3). pi(n) is proportional to rho^n (n + 1), so E[N] =
    2 rho / (1 - rho) and, by Little, E[T] = 2 S / (1 - rho): 4 ms for S = 1 ms at rho = 0.5.
    """
    classes = {"q": (125_000, 500.0)}
    # the bulk has HISTORY_S alone, then shares, and still has 100 s of bits left when the run ends
    recs = _run(tmp_path, classes, SPAN_S, history_bits=(HISTORY_S + 100.0) * BPS)
    _check_ps(recs, classes, SPAN_S, shares=2)


def test_tiny_transfers_late_in_a_run_do_not_hang(tmp_path: Path) -> None:
    """1-byte transfers both ways on a link first used at t = 3,000 s, where a clock tick (4.5e-13 s)
    is worth 4.5e-4 bits: the link must still finish them, each in its own wire time."""
    recs = _run(tmp_path, {"q": (1, 50.0)}, span=20.0, history_bits=0, reps=1, out_bytes=1)
    lat = recs[0].services["q"].latency_s
    assert lat.count > 500
    floor = 2 * PROP_S + COMPUTE_S + 2 * 8 / BPS
    assert lat.min >= floor - 1e-9
    assert lat.mean == pytest.approx(floor, rel=1e-6)

"""Random streams and arrival iterators hand out their pre-drawn blocks a chunk at a time (to keep a
fleet's tens of thousands of streams small): the values are the blocks' own, in order."""
from __future__ import annotations

import itertools

import numpy as np

from lepton_sim.scenario.schema import Demand
from lepton_sim.sim import arrivals, streams
from lepton_sim.sim.streams import Sampler, Uniforms, stream


def test_uniforms_and_samplers_give_the_values_of_whole_blocks() -> None:
    n = 3 * streams.BLOCK + 17  # across block and chunk edges
    u = Uniforms(stream(5, "u"))
    ref = stream(5, "u")
    want = np.concatenate([ref.random(streams.BLOCK) for _ in range(4)])[:n].tolist()
    assert [u() for _ in range(n)] == want
    rng, ref = stream(6, "s"), stream(6, "s")
    s = Sampler(lambda k: rng.exponential(0.01, k))
    want = np.concatenate([ref.exponential(0.01, streams.BLOCK) for _ in range(4)])[:n].tolist()
    assert [s() for _ in range(n)] == want


def test_poisson_arrivals_are_the_cumulative_sums_of_whole_blocks() -> None:
    n = 2 * arrivals.BLOCK + arrivals.CHUNK + 3
    d = Demand.model_validate({"site": "a", "rate_rps": 250.0})
    got = list(itertools.islice(arrivals.arrival_times(d, stream(9, "a")), n))
    ref = stream(9, "a")
    t, want = 0.0, []
    for _ in range(3):
        block = t + np.cumsum(ref.exponential(1 / 250.0, arrivals.BLOCK))
        want += block.tolist()
        t = float(block[-1])
    assert got == want[:n]
    assert all(type(x) is float for x in got[:10])


def test_a_chunked_stream_holds_a_small_list() -> None:
    u = Uniforms(stream(1, "m"))
    u()
    assert len(u._buf) == streams.CHUNK < streams.BLOCK


def test_constant_arrivals_are_the_whole_blocks_and_a_short_stream_draws_little() -> None:
    n = arrivals.BLOCK + 5
    d = Demand.model_validate({"site": "a", "rate_rps": 7.0, "arrival": {"kind": "constant"}})
    ref = stream(4, "c")
    phase = float(ref.random()) * (1.0 / 7.0)
    want = (phase + np.arange(n, dtype=np.int64).astype(np.float64) * (1.0 / 7.0)).tolist()
    assert list(itertools.islice(arrivals.arrival_times(d, stream(4, "c")), n)) == want
    # ten Poisson arrivals draw the first piece only: the stream is then FIRST draws along
    rng, ref = stream(3, "p"), stream(3, "p")
    it = arrivals.arrival_times(Demand.model_validate({"site": "a", "rate_rps": 2.0}), rng)
    list(itertools.islice(it, 10))
    ref.exponential(1.0, arrivals.FIRST)
    assert rng.random() == ref.random() and arrivals.FIRST < arrivals.BLOCK

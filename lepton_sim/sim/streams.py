"""Named, seeded random streams: one numpy generator per purpose, no global randomness.

Each stream's seed is derived from the scenario seed and the stream's *name* (not its position),
so adding a demand or a pool does not change the random numbers any other part of the model sees.
"""
from __future__ import annotations

import zlib

import numpy as np

BLOCK = 8192


def stream(seed: int, name: str) -> np.random.Generator:
    """The generator for `name` under `seed`, independent of every other name's."""
    seq = np.random.SeedSequence(entropy=seed, spawn_key=(zlib.crc32(name.encode("utf-8")),))
    return np.random.Generator(np.random.PCG64(seq))


class Uniforms:
    """Uniform(0, 1) draws served one at a time from pre-drawn blocks (one numpy call per block)."""

    __slots__ = ("_rng", "_buf", "_i")

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._buf: list[float] = []
        self._i = 0

    def __call__(self) -> float:
        if self._i >= len(self._buf):
            self._buf = self._rng.random(BLOCK).tolist()
            self._i = 0
        v = self._buf[self._i]
        self._i += 1
        return v


class Sampler:
    """Draws from a service-time distribution in blocks; calling it returns one value in seconds."""

    __slots__ = ("_draw", "_buf", "_i")

    def __init__(self, draw: "callable[[int], np.ndarray]") -> None:  # type: ignore[valid-type]
        self._draw = draw
        self._buf: list[float] = []
        self._i = 0

    def __call__(self) -> float:
        if self._i >= len(self._buf):
            self._buf = self._draw(BLOCK).tolist()
            self._i = 0
        v = self._buf[self._i]
        self._i += 1
        return v

"""Named, seeded random streams: one numpy generator per purpose, no global randomness.

Each stream's seed is derived from the scenario seed and the stream's *name* (not its position),
so adding a demand or a pool does not change the random numbers any other part of the model sees.
"""
from __future__ import annotations

import zlib

import numpy as np

BLOCK = 8192  # values drawn per numpy call
CHUNK = 256  # of which converted to Python floats at a time: a block as a list holds 260 kB


def stream(seed: int, name: str) -> np.random.Generator:
    """The generator for `name` under `seed`, independent of every other name's."""
    seq = np.random.SeedSequence(entropy=seed, spawn_key=(zlib.crc32(name.encode("utf-8")),))
    return np.random.Generator(np.random.PCG64(seq))


class Uniforms:
    """Uniform(0, 1) draws served one at a time from pre-drawn blocks (one numpy call per block);
    `take(n)` gives the next n at once, the same values."""

    __slots__ = ("_draw", "_block", "_j", "_buf", "_i")

    def __init__(self, rng: np.random.Generator) -> None:
        self._draw = rng.random
        self._block: np.ndarray | None = None
        self._j = 0
        self._buf: list[float] = []
        self._i = 0

    def __call__(self) -> float:
        if self._i >= len(self._buf):
            _refill(self)
        v = self._buf[self._i]
        self._i += 1
        return v

    def take(self, n: int) -> np.ndarray:
        return _take(self, n)


class Sampler:
    """Draws from a service-time distribution in blocks; calling it returns one value in seconds,
    `take(n)` the next n as an array (the values n calls would return)."""

    __slots__ = ("_draw", "_block", "_j", "_buf", "_i")

    def __init__(self, draw: "callable[[int], np.ndarray]") -> None:  # type: ignore[valid-type]
        self._draw = draw
        self._block: np.ndarray | None = None
        self._j = 0
        self._buf: list[float] = []
        self._i = 0

    def __call__(self) -> float:
        if self._i >= len(self._buf):
            _refill(self)
        v = self._buf[self._i]
        self._i += 1
        return v

    def take(self, n: int) -> np.ndarray:
        return _take(self, n)


def _refill(s: Uniforms | Sampler) -> None:
    """The next CHUNK values of the stream's block as Python floats, drawing a new block (BLOCK values
    in one numpy call) when the last is used up."""
    block = s._block
    if block is None or s._j >= len(block):
        block = s._block = s._draw(BLOCK)
        s._j = 0
    s._buf = block[s._j:s._j + CHUNK].tolist()
    s._j += CHUNK
    s._i = 0


def _take(s: Uniforms | Sampler, n: int) -> np.ndarray:
    """The next `n` values of the stream as one array, in the order single calls would give them,
    leaving the stream where those calls would (at a chunk's end, so calls go on from there)."""
    parts = []
    rest = s._buf[s._i:]
    if rest:
        parts.append(np.asarray(rest[:n], dtype=np.float64))
        s._i += len(parts[0])
    got = len(parts[0]) if parts else 0
    while got < n:
        block = s._block
        if block is None or s._j >= len(block):
            block = s._block = s._draw(BLOCK)
            s._j = 0
        part = block[s._j:s._j + (n - got)]
        s._j += len(part)
        parts.append(np.asarray(part, dtype=np.float64))
        got += len(part)
        s._buf, s._i = [], 0  # the chunk was used up; the next call refills from `_j`
    return np.concatenate(parts) if parts else np.zeros(0)

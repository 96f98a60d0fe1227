"""Prompt and output token counts of LLM requests: drawn from the service's distributions in
blocks from its own named stream, or replayed from a trace in file order."""
from __future__ import annotations

import math

import numpy as np

from lepton_sim.scenario.schema import FixedTokens, LognormalTokens, Tokens, UniformTokens
from lepton_sim.sim.streams import BLOCK


def draw_tokens(dist: FixedTokens | UniformTokens | LognormalTokens, rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` token counts (integers >= 1) from one distribution."""
    if isinstance(dist, FixedTokens):
        return np.full(n, dist.n, dtype=np.int64)
    if isinstance(dist, UniformTokens):
        return rng.integers(dist.low, dist.high + 1, n)
    sigma2 = math.log1p(dist.cv**2)  # lognormal with the given mean and coefficient of variation
    mu = math.log(dist.mean) - sigma2 / 2
    x = np.rint(rng.lognormal(mu, math.sqrt(sigma2), n))
    hi = dist.max if dist.max is not None else np.inf
    return np.clip(x, dist.min, hi).astype(np.int64)


class TokenSource:
    """Calling it gives the next request's (prompt tokens, output tokens)."""

    __slots__ = ("_spec", "_rng", "_buf", "_i")

    def __init__(self, spec: Tokens, rng: np.random.Generator) -> None:
        self._spec, self._rng = spec, rng
        self._buf: list[tuple[int, int]] = []
        self._i = 0
        if spec.trace is not None:
            self._buf = list(spec.trace.pairs)

    def __call__(self) -> tuple[int, int]:
        if self._i >= len(self._buf):
            self._i = 0
            if self._spec.trace is None:
                assert self._spec.prompt is not None and self._spec.output is not None
                p = draw_tokens(self._spec.prompt, self._rng, BLOCK)
                o = draw_tokens(self._spec.output, self._rng, BLOCK)
                self._buf = list(zip(p.tolist(), o.tolist()))
        v = self._buf[self._i]
        self._i += 1
        return v

"""Prompt and output token counts of LLM requests: drawn from the service's distributions in
blocks from its own named stream, or replayed from a trace in file order."""
from __future__ import annotations

import numpy as np

from lepton_sim.scenario.schema import Tokens, draw_tokens
from lepton_sim.sim.streams import BLOCK


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

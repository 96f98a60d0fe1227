"""Interpolation of measured times in log-log space; None outside the measured range (never extrapolated).

Kernel time is close to a power law of size between neighbouring measurements (flat where call
overhead dominates, linear where throughput does), so straight lines in log-log are the natural
interpolant.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

Reads = set[tuple[float, ...]]  # measured points a lookup used, collected when the caller asks


@dataclass(frozen=True)
class Curve:
    """Time as a function of one size, from measured (size, seconds) points."""

    xs: tuple[float, ...]
    ts: tuple[float, ...]

    @staticmethod
    def of(points: dict[float, float]) -> Curve:
        xs = tuple(sorted(points))
        return Curve(xs, tuple(points[x] for x in xs))

    def __call__(self, x: float, reads: Reads | None = None) -> float | None:
        """Seconds at size `x`, or None outside [min, max] of the measured sizes; `reads` collects the sizes used."""
        xs, ts = self.xs, self.ts
        if not xs or x < xs[0] * (1 - 1e-9) or x > xs[-1] * (1 + 1e-9):
            return None
        i = bisect.bisect_left(xs, x)
        if i < len(xs) and math.isclose(xs[i], x, rel_tol=1e-9):
            if reads is not None:
                reads.add((xs[i],))
            return ts[i]
        i = min(max(i, 1), len(xs) - 1)
        if reads is not None:
            reads.update({(xs[i - 1],), (xs[i],)})
        return _lerp_log(xs[i - 1], ts[i - 1], xs[i], ts[i], x)


def _lerp_log(x0: float, t0: float, x1: float, t1: float, x: float) -> float:
    f = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
    return math.exp(math.log(t0) + f * (math.log(t1) - math.log(t0)))


@dataclass(frozen=True)
class Grid:
    """Time as a function of several sizes (GEMM rows M, inner K, outputs N) on a possibly ragged grid.

    Multilinear in log sizes and log time inside a grid cell whose corners were all measured;
    None elsewhere.
    """

    points: dict[tuple[float, ...], float]
    axes: tuple[tuple[float, ...], ...]

    @staticmethod
    def of(points: dict[tuple[float, ...], float]) -> Grid:
        dims = len(next(iter(points))) if points else 0
        return Grid(dict(points), tuple(tuple(sorted({p[d] for p in points})) for d in range(dims)))

    def __call__(self, *coords: float, reads: Reads | None = None) -> float | None:
        """Seconds at `coords`, or None outside the measured cells; `reads` collects the grid points used."""
        brackets = [_bracket(axis, v) for axis, v in zip(self.axes, coords)]
        if not self.points or any(b is None for b in brackets):
            return None
        weights: list[tuple[float, float]] = []
        for (lo, hi), v in zip(brackets, coords):  # type: ignore[misc]
            f = 0.0 if hi == lo else (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo))
            weights.append((1.0 - f, f))
        total = 0.0
        used = []
        for corner in range(2 ** len(coords)):
            key, w = [], 1.0
            for d, (lo, hi) in enumerate(brackets):  # type: ignore[misc]
                bit = (corner >> d) & 1
                key.append(hi if bit else lo)
                w *= weights[d][bit]
            if w == 0.0:
                continue
            t = self.points.get(tuple(key))
            if t is None:
                return None
            total += w * math.log(t)
            used.append(tuple(key))
        if reads is not None:
            reads.update(used)
        return math.exp(total)


def _bracket(grid: tuple[float, ...], v: float) -> tuple[float, float] | None:
    """The grid values either side of v (the same value twice on a grid point), or None outside."""
    if not grid or v < grid[0] * (1 - 1e-9) or v > grid[-1] * (1 + 1e-9):
        return None
    i = bisect.bisect_left(grid, v)
    if i < len(grid) and math.isclose(grid[i], v, rel_tol=1e-9):
        return grid[i], grid[i]
    return grid[i - 1], grid[i]

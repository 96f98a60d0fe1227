"""Streaming latency summaries with bounded memory: exact while small, then a relative-error sketch.

`LatencySketch` is DDSketch (C. Masson, J. E. Rim, H. K. Lee, "DDSketch: A Fast and Fully-Mergeable
Quantile Sketch with Relative-Error Guarantees", PVLDB 12(12), 2019): values fall into logarithmic
buckets (gamma^(i-1), gamma^i] with gamma = (1 + alpha) / (1 - alpha), and bucket i reports
2 gamma^i / (gamma + 1), which is within relative error alpha of every value in the bucket.
`LatencySummary` is what the simulator feeds: it keeps the values exactly up to `exact_limit`, then
folds them into a sketch, and keeps exact counters for registered thresholds (SLO attainment).

Rank conventions (0-based index k into the sorted values x_(0) <= ... <= x_(n-1)):
  "inverted_cdf": k = ceil(q n) - 1, clipped at 0; the smallest x with F_n(x) >= q, bit-for-bit
                  the index `np.quantile(..., method="inverted_cdf")` uses (Hyndman & Fan type 1).
  "lower":        k = floor(q (n - 1)); the rank of the DDSketch paper (rank floor(1 + q(n-1)),
                  1-based), equal to `np.quantile(..., method="lower")`.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np

RankMethod = Literal["inverted_cdf", "lower"]

DEFAULT_ALPHA = 0.005
DEFAULT_MIN_POSITIVE = 1e-9  # seconds: 1 ns, far below any latency the simulator produces
_BLOCK = 1 << 16  # values per vectorised pass in add_many: keeps temporaries small and in cache
_DICT_KEYS = frozenset({"alpha", "min_positive", "offset", "counts", "zero_count", "count", "sum", "min", "max"})


def rank_index(n: int, q: float, method: RankMethod = "inverted_cdf") -> int:
    """The 0-based index into n sorted values that quantile q denotes under `method` (module docstring)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q!r}")
    if n <= 0:
        raise ValueError("no values: the quantile of an empty summary is undefined")
    if method == "inverted_cdf":
        # the same float operations as numpy's _inverted_cdf, so ties such as q n == 29 agree exactly
        v = n * q - 1.0
        lo = math.floor(v)
        return max(lo if v == lo else lo + 1, 0)
    if method == "lower":
        return math.floor((n - 1) * q)
    raise ValueError(f"unknown rank method {method!r}; use 'inverted_cdf' or 'lower'")


def _as_latencies(values: Any) -> np.ndarray:
    """A 1-D float64 view of `values`, rejecting NaN, infinities and negatives (two reductions, no mask)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size and not (x.min() >= 0.0 and x.max() < math.inf):  # NaN fails both comparisons
        raise ValueError("latencies must be finite and >= 0")
    return x


class _Moments:
    """Exact count, sum, mean, min and max, kept beside the quantile structure."""

    _count: int
    _sum: float
    _min: float
    _max: float

    @property
    def count(self) -> int:
        return self._count

    @property
    def sum(self) -> float:
        return self._sum

    @property
    def mean(self) -> float:
        """Exact mean (seconds for latencies); NaN when empty."""
        return self._sum / self._count if self._count else math.nan

    @property
    def min(self) -> float:
        """Exact minimum; NaN when empty."""
        return self._min if self._count else math.nan

    @property
    def max(self) -> float:
        """Exact maximum; NaN when empty."""
        return self._max if self._count else math.nan


class LatencySketch(_Moments):
    """DDSketch over non-negative values: quantiles within relative error `alpha`, mergeable exactly.

    Values below `min_positive` (including 0) are counted in a zero bucket; a quantile landing there
    is reported as the exact minimum, so its absolute error is below `min_positive`. Count, sum,
    mean, min and max are exact (sum up to float rounding). Memory is one int64 per bucket between
    the smallest and largest key seen: at most ln(max/min_positive) / ln(gamma) + 1 buckets (about
    3,500 for 1 ns to 1e6 s at alpha = 0.005; 73,000, 0.6 MB, for the whole float range).
    """

    def __init__(self, alpha: float = DEFAULT_ALPHA, min_positive: float = DEFAULT_MIN_POSITIVE) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if not 0.0 < min_positive < math.inf:
            raise ValueError(f"min_positive must be positive and finite, got {min_positive!r}")
        self._alpha = float(alpha)
        self._min_positive = float(min_positive)
        self._gamma = (1.0 + self._alpha) / (1.0 - self._alpha)
        self._log_gamma = math.log(self._gamma)
        self._inv_log_gamma = 1.0 / self._log_gamma
        self._counts = np.zeros(0, dtype=np.int64)  # counts[j] is the bucket with key offset + j
        self._offset = 0
        self._zero_count = 0
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf

    # --- adding and merging ------------------------------------------------------------------

    def add_many(self, values: np.ndarray) -> None:
        """Add non-negative finite values (any array-like), vectorised: np.log, then np.bincount."""
        x = _as_latencies(values)
        if not x.size:
            return
        self._count += int(x.size)
        self._sum += float(np.sum(x))
        self._min = min(self._min, float(x.min()))
        self._max = max(self._max, float(x.max()))
        for start in range(0, x.size, _BLOCK):
            self._add_block(x[start:start + _BLOCK])

    def _add_block(self, x: np.ndarray) -> None:
        if x.min() < self._min_positive:
            pos = x[x >= self._min_positive]
            self._zero_count += int(x.size - pos.size)
            if not pos.size:
                return
        else:
            pos = x
        # key i = ceil(log_gamma(x)), so bucket i holds (gamma^(i-1), gamma^i]
        k = np.log(pos)
        k *= self._inv_log_gamma
        np.ceil(k, out=k)
        keys = k.astype(np.int64)
        lo = int(keys.min())
        keys -= lo
        hist = np.bincount(keys)
        self._add_counts(lo, hist)

    def _add_counts(self, lo: int, hist: np.ndarray) -> None:
        """Add `hist[j]` to the bucket with key lo + j, growing the dense array to cover them."""
        hi = lo + hist.size
        if not self._counts.size:
            self._offset, self._counts = lo, hist.astype(np.int64, copy=True)
            return
        new_lo, new_hi = min(lo, self._offset), max(hi, self._offset + self._counts.size)
        if new_lo != self._offset or new_hi != self._offset + self._counts.size:
            grown = np.zeros(new_hi - new_lo, dtype=np.int64)
            grown[self._offset - new_lo:self._offset - new_lo + self._counts.size] = self._counts
            self._offset, self._counts = new_lo, grown
        self._counts[lo - self._offset:hi - self._offset] += hist

    def merge(self, other: LatencySketch) -> None:
        """Add `other`'s values into this sketch; the result equals a sketch of both inputs, bucket for bucket."""
        if other._alpha != self._alpha or other._min_positive != self._min_positive:
            raise ValueError(
                f"cannot merge sketches with alpha {other._alpha:g}, min_positive {other._min_positive:g} "
                f"into alpha {self._alpha:g}, min_positive {self._min_positive:g}"
            )
        if not other._count:
            return
        if other._counts.size:
            self._add_counts(other._offset, other._counts.copy())
        self._zero_count += other._zero_count
        self._count += other._count
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    # --- queries -----------------------------------------------------------------------------

    @property
    def alpha(self) -> float:
        """The relative accuracy: every quantile estimate is within alpha * (true value)."""
        return self._alpha

    @property
    def min_positive(self) -> float:
        """Values below this are counted in the zero bucket (absolute error below it)."""
        return self._min_positive

    @property
    def nbytes(self) -> int:
        """Bytes held by the bucket array (the only part that grows)."""
        return int(self._counts.nbytes)

    def bucket_counts(self) -> tuple[int, np.ndarray]:
        """(key of the first non-empty bucket, counts up to the last non-empty one): a canonical form."""
        nz = np.flatnonzero(self._counts)
        if not nz.size:
            return 0, np.zeros(0, dtype=np.int64)
        return self._offset + int(nz[0]), self._counts[nz[0]:nz[-1] + 1].copy()

    def _representatives(self) -> np.ndarray:
        """The value each dense bucket reports: 2 gamma^i / (gamma + 1)."""
        keys = np.arange(self._offset, self._offset + self._counts.size, dtype=np.float64)
        return np.exp(keys * self._log_gamma) * (2.0 / (self._gamma + 1.0))

    def quantile(self, q: float, method: RankMethod = "lower") -> float:
        """Estimate of quantile q in [0, 1]; `method` picks the rank (module docstring), DDSketch's "lower" by default."""
        return self.quantiles([q], method)[0]

    def quantiles(self, qs: Sequence[float], method: RankMethod = "lower") -> list[float]:
        """`quantile` for several q at once (one cumulative sum)."""
        idx = [rank_index(self._count, float(q), method) for q in qs]
        if not idx:
            return []
        cum = np.cumsum(self._counts)
        cum += self._zero_count
        out = []
        for k in idx:
            if k == 0:
                out.append(self._min)
            elif k == self._count - 1:
                out.append(self._max)
            elif k < self._zero_count:
                out.append(self._min)  # a zero-bucket value: in [min, min_positive)
            else:
                j = int(np.searchsorted(cum, k + 1, side="left"))  # first bucket holding rank k + 1 (1-based)
                key = self._offset + j
                est = math.exp(key * self._log_gamma) * 2.0 / (self._gamma + 1.0)
                out.append(min(max(est, self._min), self._max))  # clamping only moves toward the truth
        return out

    def fraction_at_most(self, threshold: float) -> float:
        """Estimated fraction of values <= threshold: exact CDF of the bucket representatives.

        With F the true empirical CDF, F(t / (1 + alpha)) <= result <= F(t / (1 - alpha)).
        """
        if not self._count:
            raise ValueError("no values: the fraction of an empty sketch is undefined")
        if threshold < self._min:
            return 0.0
        if threshold >= self._max:
            return 1.0
        within = self._zero_count + int(self._counts[self._representatives() <= threshold].sum())
        return within / self._count

    # --- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (trimmed bucket array); `from_dict` restores an equal sketch."""
        offset, counts = self.bucket_counts()
        return {
            "alpha": self._alpha,
            "min_positive": self._min_positive,
            "offset": offset,
            "counts": counts.tolist(),
            "zero_count": self._zero_count,
            "count": self._count,
            "sum": self._sum,
            "min": self._min if self._count else None,
            "max": self._max if self._count else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LatencySketch:
        """Rebuild a sketch from `to_dict` output; rejects missing or unknown keys and inconsistent counts."""
        if set(d) != _DICT_KEYS:
            raise ValueError(f"sketch dict keys: missing {sorted(_DICT_KEYS - set(d))}, unknown {sorted(set(d) - _DICT_KEYS)}")
        s = cls(float(d["alpha"]), float(d["min_positive"]))
        counts = np.asarray(d["counts"], dtype=np.int64)
        if counts.ndim != 1 or (counts.size and counts.min() < 0) or int(d["zero_count"]) < 0:
            raise ValueError("sketch dict: counts must be a list of non-negative integers")
        if int(counts.sum()) + int(d["zero_count"]) != int(d["count"]):
            raise ValueError("sketch dict: bucket counts do not add up to count")
        s._offset, s._counts = int(d["offset"]), counts
        s._zero_count, s._count, s._sum = int(d["zero_count"]), int(d["count"]), float(d["sum"])
        if s._count:
            s._min, s._max = float(d["min"]), float(d["max"])
        return s


def _counts_at_most(x: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For sorted thresholds t_j, how many of x are <= t_j (one searchsorted pass, no per-threshold scan)."""
    # x <= t_j  iff  (index of the first threshold >= x) <= j
    first = np.searchsorted(thresholds, x, side="left")
    return np.cumsum(np.bincount(first, minlength=thresholds.size + 1)[:thresholds.size])


class LatencySummary(_Moments):
    """Latency values (seconds) as the simulator sees them: exact up to `exact_limit`, then a sketch.

    Quantiles use the inverted-CDF rank in both modes (in exact mode bit-for-bit
    `np.quantile(values, q, method="inverted_cdf")`), so crossing `exact_limit` never shifts a rank.
    `fraction_at_most` is exact in both modes for registered `thresholds`.
    """

    def __init__(
        self,
        thresholds: Iterable[float] = (),
        *,
        exact_limit: int = 200_000,
        alpha: float = DEFAULT_ALPHA,
        min_positive: float = DEFAULT_MIN_POSITIVE,
    ) -> None:
        t = np.unique(np.asarray(list(thresholds), dtype=np.float64))
        if np.isnan(t).any():
            raise ValueError("thresholds must not be NaN")
        if exact_limit < 0:
            raise ValueError(f"exact_limit must be >= 0, got {exact_limit!r}")
        LatencySketch(alpha, min_positive)  # validates alpha and min_positive now, not at the switch-over
        self._thresholds = t
        self._at_most = np.zeros(t.size, dtype=np.int64)
        self._exact_limit = int(exact_limit)
        self._alpha = float(alpha)
        self._min_positive = float(min_positive)
        self._chunks: list[np.ndarray] = []
        self._sorted: np.ndarray | None = None  # cache of the sorted exact values
        self._sketch: LatencySketch | None = None
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf

    def add_many(self, values: np.ndarray) -> None:
        """Add latencies (seconds, finite, >= 0); switches to sketch mode once count exceeds `exact_limit`."""
        x = _as_latencies(values)
        if not x.size:
            return
        if self._thresholds.size:
            self._at_most += _counts_at_most(x, self._thresholds)
        self._count += int(x.size)
        self._sum += float(np.sum(x))
        self._min = min(self._min, float(x.min()))
        self._max = max(self._max, float(x.max()))
        if self._sketch is None and self._count <= self._exact_limit:
            self._chunks.append(x.copy())  # a private copy: the caller may reuse its buffer
            self._sorted = None
            return
        self._to_sketch().add_many(x)

    def _to_sketch(self) -> LatencySketch:
        """The sketch, folding the exact values into a new one on first use."""
        if self._sketch is None:
            self._sketch = LatencySketch(self._alpha, self._min_positive)
            for c in self._chunks:
                self._sketch.add_many(c)
            self._chunks, self._sorted = [], None
        return self._sketch

    def _values_sorted(self) -> np.ndarray:
        if self._sorted is None:
            self._sorted = np.sort(np.concatenate(self._chunks)) if self._chunks else np.zeros(0)
        return self._sorted

    def _exact_count_at_most(self, t: float) -> int | None:
        """How many values are <= t, if known exactly (a registered threshold, or exact mode)."""
        j = int(np.searchsorted(self._thresholds, t))
        if j < self._thresholds.size and self._thresholds[j] == t:
            return int(self._at_most[j])
        if self._sketch is None:
            return int(np.searchsorted(self._values_sorted(), t, side="right"))
        return None

    def merge(self, other: LatencySummary) -> None:
        """Add `other`'s values into this summary.

        Stays exact if both are exact and the total is within this summary's `exact_limit`. A
        threshold registered on either side stays exact if both sides know its count exactly
        (registered there too, or in exact mode); otherwise it is dropped and answered by the sketch.
        """
        if other is self:
            raise ValueError("cannot merge a summary into itself")
        if other._alpha != self._alpha or other._min_positive != self._min_positive:
            raise ValueError("cannot merge summaries with different alpha or min_positive")
        if np.array_equal(self._thresholds, other._thresholds):  # the common case: both count every one
            self._at_most = self._at_most + other._at_most
        else:
            keep, at_most = [], []
            for t in np.union1d(self._thresholds, other._thresholds):
                mine, theirs = self._exact_count_at_most(float(t)), other._exact_count_at_most(float(t))
                if mine is not None and theirs is not None:
                    keep.append(t)
                    at_most.append(mine + theirs)
            self._thresholds = np.asarray(keep, dtype=np.float64)
            self._at_most = np.asarray(at_most, dtype=np.int64)
        if not other._count:
            return
        self._count += other._count
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)
        if self._sketch is None and other._sketch is None and self._count <= self._exact_limit:
            self._chunks.extend(other._chunks)  # chunks are never written after they are stored
            self._sorted = None
        elif other._sketch is None:
            sk = self._to_sketch()
            for c in other._chunks:
                sk.add_many(c)
        else:
            self._to_sketch().merge(other._sketch)

    @property
    def exact(self) -> bool:
        """True while every value is kept (quantiles exact)."""
        return self._sketch is None

    @property
    def relative_error(self) -> float:
        """Bound on the relative error of quantiles: 0 when exact, alpha in sketch mode."""
        return 0.0 if self._sketch is None else self._alpha

    @property
    def thresholds(self) -> tuple[float, ...]:
        """The thresholds whose `fraction_at_most` is exact in either mode."""
        return tuple(float(t) for t in self._thresholds)

    def quantiles(self, qs: Iterable[float]) -> list[float]:
        """Inverted-CDF quantiles: exact in exact mode, within `relative_error` in sketch mode."""
        qs = [float(q) for q in qs]
        if self._sketch is not None:
            return self._sketch.quantiles(qs, "inverted_cdf")
        v = self._values_sorted()
        return [float(v[rank_index(v.size, q, "inverted_cdf")]) for q in qs]

    def fraction_at_most(self, threshold: float) -> float:
        """Fraction of values <= threshold: exact for registered thresholds and in exact mode.

        An unregistered threshold in sketch mode gets the sketch's estimate, which lies between the
        true fractions at threshold / (1 + alpha) and threshold / (1 - alpha).
        """
        if not self._count:
            raise ValueError("no values: the fraction of an empty summary is undefined")
        n = self._exact_count_at_most(float(threshold))
        if n is not None:
            return n / self._count
        return self._to_sketch().fraction_at_most(float(threshold))

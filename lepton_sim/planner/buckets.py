"""Request-size buckets (as Mélange plans GPU mixes): an LLM service with `buckets` is planned as one
service per bucket of prompt lengths, so that long prompts can go to one GPU type and short ones to
another, each bucket's replicas sized by their capacity on that bucket's requests alone.

`bucketed(scenario)` gives the scenario the planner and the verify loop work on: each bucketed
service `chat` with `buckets: [512, 2048]` becomes `chat.p1-512`, `chat.p513-2048` and `chat.p2049+`,
each with

- **its requests**: `SAMPLE` (prompt, output) pairs drawn from the service's token distributions
  with the simulator's own draws (`schema.draw_tokens`) on a fixed seed, or the rows of its trace,
  kept where the prompt is in the bucket, as the bucket's token trace (replayed in order, as traces
  are): the replica capacities are then measured on that bucket's requests alone;
- **its demand**: each demand line's `rate_rps` times the bucket's share of the requests. Thinning a
  Poisson stream by an independent mark gives independent Poisson streams, so for Poisson arrivals
  the buckets' streams are exactly the service's, split; for other arrival kinds the bucket keeps
  the kind at the thinned rate (an approximation the planned scenario's own simulation checks).

**Misses.** The service's SLO holds the mix of buckets to its percentile: with miss fraction `m`
(0.01 at p99), the mix meets it when the buckets' miss fractions `m_b`, weighted by their shares,
add up to at most `m`. Every bucket at `m` is the simplest allotment; it holds a bucket of long
prompts as tightly as the short ones, although the short ones could miss less and leave it more.
So each split is also planned with each bucket in turn taking the slack that the others give up
when held to `f x m` (`SLACK_FACTORS`), each bucket's TTFT and TPOT then held at its own percentile.

**Choices.** Finer is not always cheaper: each bucket gets pools of its own (at least a replica per
bucket where it is served). `plan` plans every split (`choices`: adjacent buckets merged, down to the
service unsplit, each with every allotment) and keeps the cheapest; with `--verify` the ones planned
close to it are verified and the cheapest verified is kept (`lepton_sim.verification.buckets`).

A bucket with no request in the sample is left out (its share is below 1 / `SAMPLE`). The plan's
lines for a bucket's service map back to the service with `prompt_tokens: [lo, hi]`
(`unbucketed_deployment`), which the simulator routes by (`sim.routing.ByPrompt`). Holding each
bucket to the service's TTFT and TPOT percentiles is conservative: a mixture of distributions each
within a target at a percentile is within it at that percentile.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lepton_sim.errors import ScenarioError
from lepton_sim.scenario.schema import Scenario, Service, Tokens, TokenTrace, bucket_service, draw_tokens, is_llm
from lepton_sim.scenario.schema import bucket_ranges as ranges

SAMPLE = 50_000  # requests drawn to cut a token distribution into buckets
MAX_CHOICES = 32  # splits (merged buckets, allotments of misses) that `plan` compares
SEED = 20261203


@dataclass(frozen=True)
class Bucket:
    """One bucket of a service's requests: prompts of `lo` to `hi` tokens (None: no upper bound)."""

    service: str  # the service as the scenario names it
    name: str  # the bucket's service in the planned problem
    lo: int
    hi: int | None
    share: float  # of the service's requests
    requests: int  # in the sample (or trace) the bucket's token trace holds
    percentile: float  # of its TTFT and TPOT held within the service's targets

    @property
    def label(self) -> str:
        return f"{self.lo}-{self.hi}" if self.hi is not None else f"{self.lo}+"


def _pairs(name: str, tokens: Tokens) -> np.ndarray:
    """The service's requests as (prompt, output) rows: its trace, or `SAMPLE` draws."""
    if tokens.trace is not None:
        return np.asarray(tokens.trace.pairs, dtype=np.int64).reshape(-1, 2)
    assert tokens.prompt is not None and tokens.output is not None
    rng = np.random.default_rng([SEED, sum(name.encode())])
    return np.stack([draw_tokens(tokens.prompt, rng, SAMPLE), draw_tokens(tokens.output, rng, SAMPLE)], axis=1)


@dataclass(frozen=True)
class Cut:
    """How one service is split: the bucket bounds kept (empty: unsplit) and how the SLO's misses are
    allotted to the buckets: `slack` None gives every bucket the service's percentile; (i, f) gives every
    bucket but the i-th f times the service's miss fraction and the i-th what that leaves."""

    bounds: tuple[int, ...]
    slack: tuple[int, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"bounds": list(self.bounds), "slack": None if self.slack is None else list(self.slack)}


Choice = dict[str, Cut]  # service -> how it is split

SLACK_FACTORS = (0.5, 0.25)  # the miss fraction, relative to the service's, of the buckets that give theirs up
MAX_MISS = 0.5  # no bucket is held to less than its median


class BadAllocation(ValueError):
    """A slack allotment that would hold a bucket below `MAX_MISS` (or name a bucket with no requests)."""


def choices(scenario: Scenario) -> list[Choice]:
    """Every way of merging adjacent buckets of each bucketed service (a subset of its bounds, the finest
    first and the service unsplit last), each split with every allotment of the misses (the service's
    percentile in every bucket first, then each bucket taking the slack the others give up at each of
    `SLACK_FACTORS`), across services; only the finest and the unsplit, at the service's percentile,
    when there are more than `MAX_CHOICES`."""
    bounds = {name: tuple(svc.buckets) for name, svc in scenario.services.items() if _splits(scenario, svc)}
    if not bounds:
        return []
    per: dict[str, list[Cut]] = {}
    for name, bs in bounds.items():
        cuts = []
        for mask in range(2 ** len(bs) - 1, -1, -1):
            sub = tuple(b for k, b in enumerate(bs) if mask >> k & 1)
            cuts.append(Cut(sub))
            if sub:
                cuts += [Cut(sub, (i, f)) for i in range(len(sub) + 1) for f in SLACK_FACTORS]
        per[name] = cuts
    out: list[Choice] = [{}]
    for name, cuts in per.items():
        out = [{**c, name: cut} for c in out for cut in cuts]
        if len(out) > MAX_CHOICES:
            return [{n: Cut(b) for n, b in bounds.items()}, {n: Cut(()) for n in bounds}]
    return out


def _splits(scenario: Scenario, svc: Service) -> bool:
    return svc.buckets is not None and svc.tokens is not None and is_llm(scenario.models[svc.model])


def _misses(shares: list[float], miss: float, slack: tuple[int, float] | None) -> list[float]:
    """Each bucket's miss fraction: the service's, or the slack allotment; the shares' weighted sum is `miss`."""
    if slack is None:
        return [miss] * len(shares)
    i, f = slack
    if i >= len(shares):
        raise BadAllocation("no such bucket (it has no requests)")
    out = [f * miss] * len(shares)
    out[i] = (miss - sum(f * miss * sh for k, sh in enumerate(shares) if k != i)) / shares[i]
    if out[i] > MAX_MISS:
        raise BadAllocation(f"the bucket taking the slack would be held to p{100 * (1 - out[i]):.3g}")
    return out


def _held(svc: Service, miss: float) -> Service:
    """`svc` with its TTFT and TPOT targets held at the percentile of miss fraction `miss`."""
    slo = svc.slo
    assert slo.ttft is not None and slo.tpot is not None
    pct = round(100.0 * (1.0 - miss), 6)
    ttft = slo.ttft.model_copy(update={"percentile": pct})
    tpot = slo.tpot.model_copy(update={"percentile": pct})
    return svc.model_copy(update={"slo": slo.model_copy(update={"ttft": ttft, "tpot": tpot})})


def bucketed(scenario: Scenario, choice: Choice | None = None) -> tuple[Scenario, list[Bucket]]:
    """The scenario with each bucketed LLM service split into its buckets' services: by its own `buckets` at
    its own percentiles, or as `choice` says (unchanged, and no buckets, when nothing is split). Raises
    `BadAllocation` for an allotment of misses that cannot be made."""
    services: dict[str, Service] = {}
    out: list[Bucket] = []
    for name, svc in scenario.services.items():
        cut = (choice.get(name, Cut(())) if choice is not None else Cut(tuple(svc.buckets or ()))) \
            if _splits(scenario, svc) else Cut(())
        if not cut.bounds:
            services[name] = svc
            continue
        assert svc.tokens is not None and svc.slo.ttft is not None and svc.slo.tpot is not None
        if svc.slo.ttft.percentile != svc.slo.tpot.percentile and cut.slack is not None:
            raise BadAllocation("slack is allotted when TTFT and TPOT have the same percentile")
        for i, d in enumerate(svc.demand):
            if d.rate_rps is None:
                raise ScenarioError("request-size buckets split each demand line's rate_rps; give it one",
                                    path=f"services.{name}.demand[{i}].rate_rps")
        rows = _pairs(name, svc.tokens)
        kept = []
        for lo, hi in ranges(list(cut.bounds)):
            keep = rows[(rows[:, 0] >= lo) & ((rows[:, 0] <= hi) if hi is not None else True)]
            if len(keep):
                kept.append((lo, hi, keep))
        misses = _misses([len(k) / len(rows) for _, _, k in kept], 1.0 - svc.slo.ttft.percentile / 100.0, cut.slack)
        for (lo, hi, keep), miss in zip(kept, misses):
            share = len(keep) / len(rows)
            b = Bucket(name, bucket_service(name, lo, hi), lo, hi, share, len(keep),
                       round(100.0 * (1.0 - miss), 6))
            if b.name in scenario.services:
                raise ScenarioError(f"the name of the bucket of prompts {b.label} of {name} ({b.name}) is taken by "
                                    f"another service; rename that service", path=f"services.{b.name}")
            trace = TokenTrace(file=f"<{name}: prompts of {b.label} tokens, {len(keep)} requests>")
            trace._pairs = tuple((int(p), int(o)) for p, o in keep)
            held = _held(svc, miss) if cut.slack is not None else svc
            services[b.name] = held.model_copy(update={
                "tokens": Tokens(trace=trace), "buckets": None,
                "demand": [d.model_copy(update={"rate_rps": d.rate_rps * share}) for d in svc.demand]})
            out.append(b)
    if not out:
        return scenario, []
    return scenario.model_copy(update={"services": services}), out


def unbucketed_deployment(deployment: dict[str, Any], buckets: list[Bucket]) -> dict[str, Any]:
    """A deployment mapping of the bucketed problem as the scenario names it: each bucket's line is its
    service's, serving the bucket's prompts (`prompt_tokens`)."""
    by_name = {b.name: b for b in buckets}
    lines = []
    for line in deployment["replicas"]:
        b = by_name.get(line["service"])
        lines.append(line if b is None else {**line, "service": b.service, "prompt_tokens": [b.lo, b.hi]})
    return {**deployment, "replicas": lines}


def bucket_document(buckets: list[Bucket]) -> dict[str, list[dict[str, Any]]]:
    """plan.json `buckets`: per service, its buckets' prompt ranges, shares and planned names."""
    doc: dict[str, list[dict[str, Any]]] = {}
    for b in buckets:
        doc.setdefault(b.service, []).append({"prompt_tokens": [b.lo, b.hi], "share": round(b.share, 6),
                                              "percentile": b.percentile, "planned_as": b.name,
                                              "requests_sampled": b.requests})
    return doc

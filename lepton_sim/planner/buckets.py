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

Finer is not always cheaper: each bucket gets pools of its own (at least a replica per bucket where it
is served), so `plan` also plans every coarser split (`choices`: adjacent buckets merged, down to the
service unsplit) and keeps the cheapest before verifying it.

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
from lepton_sim.scenario.schema import Scenario, Service, Tokens, TokenTrace, draw_tokens, is_llm

SAMPLE = 50_000  # requests drawn to cut a token distribution into buckets
MAX_CHOICES = 16  # ways of merging adjacent buckets that `plan` compares
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

    @property
    def label(self) -> str:
        return f"{self.lo}-{self.hi}" if self.hi is not None else f"{self.lo}+"


def ranges(bounds: list[int]) -> list[tuple[int, int | None]]:
    """[512, 2048] -> [(1, 512), (513, 2048), (2049, None)]."""
    starts = [1] + [b + 1 for b in bounds]
    return [(a, b) for a, b in zip(starts, bounds)] + [(starts[-1], None)]


def _pairs(name: str, tokens: Tokens) -> np.ndarray:
    """The service's requests as (prompt, output) rows: its trace, or `SAMPLE` draws."""
    if tokens.trace is not None:
        return np.asarray(tokens.trace.pairs, dtype=np.int64).reshape(-1, 2)
    assert tokens.prompt is not None and tokens.output is not None
    rng = np.random.default_rng([SEED, sum(name.encode())])
    return np.stack([draw_tokens(tokens.prompt, rng, SAMPLE), draw_tokens(tokens.output, rng, SAMPLE)], axis=1)


Choice = dict[str, tuple[int, ...]]  # service -> the bucket bounds kept (empty: the service unsplit)


def choices(scenario: Scenario) -> list[Choice]:
    """Every way of merging adjacent buckets of each bucketed service (a subset of its bounds, the finest
    first and the service unsplit last), across services; only the finest and the unsplit when there are
    more than `MAX_CHOICES`."""
    bounds = {name: tuple(svc.buckets) for name, svc in scenario.services.items() if _splits(scenario, svc)}
    if not bounds:
        return []
    per = {name: [tuple(b for k, b in enumerate(bs) if mask >> k & 1) for mask in range(2 ** len(bs) - 1, -1, -1)]
           for name, bs in bounds.items()}
    out: list[Choice] = [{}]
    for name, subsets in per.items():
        out = [{**c, name: sub} for c in out for sub in subsets]
        if len(out) > MAX_CHOICES:
            return [dict(bounds), {name: () for name in bounds}]
    return out


def _splits(scenario: Scenario, svc: Service) -> bool:
    return svc.buckets is not None and svc.tokens is not None and is_llm(scenario.models[svc.model])


def bucketed(scenario: Scenario, choice: Choice | None = None) -> tuple[Scenario, list[Bucket]]:
    """The scenario with each bucketed LLM service split into its buckets' services: by its own `buckets`,
    or by the bounds `choice` keeps (unchanged, and no buckets, when nothing is split)."""
    services: dict[str, Service] = {}
    out: list[Bucket] = []
    for name, svc in scenario.services.items():
        bounds = (list(choice.get(name, ())) if choice is not None else svc.buckets) if _splits(scenario, svc) else None
        if not bounds:
            services[name] = svc
            continue
        assert svc.tokens is not None
        for i, d in enumerate(svc.demand):
            if d.rate_rps is None:
                raise ScenarioError("request-size buckets split each demand line's rate_rps; give it one",
                                    path=f"services.{name}.demand[{i}].rate_rps")
        rows = _pairs(name, svc.tokens)
        for lo, hi in ranges(bounds):
            keep = rows[(rows[:, 0] >= lo) & ((rows[:, 0] <= hi) if hi is not None else True)]
            if not len(keep):
                continue
            share = len(keep) / len(rows)
            b = Bucket(name, f"{name}.p{lo}-{hi}" if hi is not None else f"{name}.p{lo}+", lo, hi, share, len(keep))
            if b.name in scenario.services:
                raise ScenarioError(f"the name of the bucket of prompts {b.label} of {name} ({b.name}) is taken by "
                                    f"another service; rename that service", path=f"services.{b.name}")
            trace = TokenTrace(file=f"<{name}: prompts of {b.label} tokens, {len(keep)} requests>")
            trace._pairs = tuple((int(p), int(o)) for p, o in keep)
            services[b.name] = svc.model_copy(update={
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
                                              "planned_as": b.name, "requests_sampled": b.requests})
    return doc

"""The network part of a route's latency, its link loads and its egress price, as the planner models them.

A request from demand site `a` to a pool at site `b` follows the simulator's lowest-latency route
there and back. Its network time is bounded by:

- propagation both ways (`2 x sum latency_ms`) and serialisation of `input_bytes` on every hop there
  and `output_bytes` on every hop back (at each link's bandwidth);
- FIFO waiting on every link direction. Each direction is planned at most `link_utilization` busy
  (at peak rates). Kingman's bound for the M/G/1 wait, with every transfer no longer than `s_max`
  (the largest message any service could send that way, over any route from one of its demand
  sites to any site that holds hardware, at the link's bandwidth): P(W > x) <= exp(-y x / s_max),
  y > 0 the root of rho (e^y - 1) = y. Convexity of e^(y S / s_max) in S makes this hold for any mix
  of sizes at utilisation rho. Each of the 2h directions a route crosses gets an equal share of the
  route's network miss budget (union bound);
- the response burst: a batch's responses leave the pool together, so one may queue behind
  `max_batch - 1` others on the first hop back.

The route's miss budget `q = 1 - percentile/100` is split: `NETWORK_SHARE` of it to the links (only
when the route crosses any), the rest to the pool. By the union bound the route then meets the
percentile, and a service whose every route does meets it overall. A `fair` link is bounded like a
FIFO one (at the planned utilisation, processor sharing delays a transfer by a similar amount).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from lepton_sim.network import Route, Topology
from lepton_sim.scenario.schema import Scenario, is_llm

NETWORK_SHARE = 0.1  # fraction of a route's miss probability given to link queueing

LinkDir = tuple[int, str]  # (link index, sending site): one direction of one link, as in the engine


@dataclass(frozen=True)
class Path:
    """The network facts of one (demand site, pool site, service) route."""

    latency_s: float  # bound on the network part of the latency at the route's network miss budget
    floor_s: float  # propagation + serialisation, without queueing
    egress_usd_per_request: float
    loads: tuple[tuple[LinkDir, float], ...]  # bits per request put on each link direction crossed
    hops: int


def link_decay(rho: float) -> float:
    """y > 0 with rho (e^y - 1) = y: the decay of the M/G/1 wait tail in units of s_max, for 0 < rho < 1."""
    lo, hi = 0.0, 1.0
    f = lambda y: rho * math.expm1(y) - y  # noqa: E731 - negative below the root
    while f(hi) < 0.0:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if f(mid) < 0.0:
            lo = mid
        else:
            hi = mid
    return lo


class Paths:
    """Routes, link limits and per-service message sizes of one scenario; `path()` is cached.

    `possible` lists every (service, demand site, pool site) that could carry traffic: the longest
    transfer on each link direction is taken over those (a superset of the planned routes).
    """

    def __init__(self, scenario: Scenario, link_utilization: float, topology: Topology,
                 possible: Iterable[tuple[str, str, str]]) -> None:
        self.scenario = scenario
        self.topology = topology
        self.link_utilization = link_utilization
        self.decay = link_decay(link_utilization)
        self.bits = message_bits(scenario)
        self._cache: dict[tuple[str, str, str], Path | None] = {}
        biggest: dict[LinkDir, float] = {}
        for service, src, dst in possible:
            in_bits, out_bits = self.bits[service]
            route = topology.route(src, dst)
            for hop in route.hops if route is not None else ():
                for d, b in (((hop.link_index, hop.src), in_bits), ((hop.link_index, hop.dst), out_bits)):
                    biggest[d] = max(biggest.get(d, 0.0), b)
        self.s_max = {d: b / (scenario.links[d[0]].bandwidth_gbps * 1e9) for d, b in biggest.items()}

    def limit_bps(self, d: LinkDir) -> float:
        """Bits per second a link direction may carry at peak under the utilisation cap."""
        return self.link_utilization * self.scenario.links[d[0]].bandwidth_gbps * 1e9

    def path(self, service: str, src: str, dst: str, miss: float) -> Path | None:
        """The route of `service` requests from demand site `src` to a pool at `dst` (None if unreachable)."""
        key = (service, src, dst)
        if key not in self._cache:
            route = self.topology.route(src, dst)
            self._cache[key] = None if route is None else self._build(service, route, miss)
        return self._cache[key]

    def _build(self, service: str, route: Route, miss: float) -> Path:
        links = self.scenario.links
        in_bits, out_bits = self.bits[service]
        h = len(route.hops)
        if h == 0:
            return Path(0.0, 0.0, 0.0, (), 0)
        floor = network_floor_s(self.scenario, route, in_bits, out_bits)
        per_dir_miss = miss * NETWORK_SHARE / (2 * h)
        dirs = [((h.link_index, h.src), in_bits) for h in route.hops] + [((h.link_index, h.dst), out_bits)
                                                                          for h in route.hops]
        longest = [max(self.s_max.get(d, 0.0), b / (links[d[0]].bandwidth_gbps * 1e9)) for d, b in dirs]
        wait = sum(math.log(1.0 / per_dir_miss) * s / self.decay for s in longest)
        batch = self.scenario.services[service].batching.max_batch
        first_back = links[route.hops[-1].link_index]
        burst = (batch - 1) * out_bits / (first_back.bandwidth_gbps * 1e9)
        usd_per_gb = sum(links[hop.link_index].cost_per_gb for hop in route.hops)
        egress = (in_bits + out_bits) / 8.0 / 1e9 * usd_per_gb
        loads = tuple([((hop.link_index, hop.src), in_bits) for hop in route.hops]
                      + [((hop.link_index, hop.dst), out_bits) for hop in route.hops])
        return Path(floor + wait + burst, floor, egress, loads, h)

    def direction_name(self, d: LinkDir) -> str:
        """The engine's name of a link direction, "a->b"."""
        a, b = self.scenario.links[d[0]].between
        return f"{a}->{b}" if d[1] == a else f"{b}->{a}"


def message_bits(scenario: Scenario) -> dict[str, tuple[float, float]]:
    """Service -> (request bits, response bits); an LLM request's at its mean prompt and output tokens."""
    out = {}
    for name, s in scenario.services.items():
        model = scenario.models[s.model]
        if is_llm(model) and s.tokens is not None:
            prompt, output = s.tokens.means()
            out[name] = (8.0 * prompt * model.token_bytes, 8.0 * output * model.token_bytes)
        else:
            out[name] = (8.0 * model.input_bytes, 8.0 * model.output_bytes)
    return out


def network_floor_s(scenario: Scenario, route: Route, in_bits: float, out_bits: float) -> float:
    """Propagation both ways plus serialisation of the request there and the response back (no queueing)."""
    ser = sum((in_bits + out_bits) / (scenario.links[hop.link_index].bandwidth_gbps * 1e9) for hop in route.hops)
    return 2.0 * route.latency_s + ser

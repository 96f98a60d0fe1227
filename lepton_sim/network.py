"""The site graph: networkx topology, lowest-latency routes and their propagation floor."""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from lepton_sim.scenario.schema import Link, Scenario


@dataclass(frozen=True)
class Hop:
    """One direction of one link, as crossed by a transfer from `src` to `dst`."""

    link_index: int
    src: str
    dst: str

    @property
    def id(self) -> str:
        return f"{self.src}->{self.dst}"


@dataclass(frozen=True)
class Route:
    """The hops from one site to another and the one-way propagation latency along them."""

    hops: tuple[Hop, ...]
    latency_s: float

    def reverse(self) -> Route:
        return Route(tuple(Hop(h.link_index, h.dst, h.src) for h in reversed(self.hops)), self.latency_s)


def link_id(link: Link) -> str:
    """The name a link goes by in metrics: its two sites joined by '--'."""
    return f"{link.between[0]}--{link.between[1]}"


class Topology:
    """Sites and links as an undirected networkx graph weighted by one-way latency."""

    def __init__(self, scenario: Scenario) -> None:
        self.links = list(scenario.links)
        self.graph = nx.Graph()
        self.graph.add_nodes_from(scenario.sites)
        for i, link in enumerate(self.links):
            a, b = link.between
            self.graph.add_edge(a, b, index=i, latency_s=link.latency_ms / 1e3)
        self._routes: dict[tuple[str, str, frozenset[int]], Route | None] = {}

    def route(self, src: str, dst: str, down: frozenset[int] = frozenset()) -> Route | None:
        """The lowest-latency route (fewest hops among equals) avoiding the links indexed in `down`,
        or None when `dst` is unreachable."""
        key = (src, dst, down)
        if key not in self._routes:
            self._routes[key] = self._find(src, dst, down)
        return self._routes[key]

    def _find(self, src: str, dst: str, down: frozenset[int]) -> Route | None:
        if src == dst:
            return Route((), 0.0)

        def weight(u: str, v: str, d: dict) -> float | None:
            # None hides a failed link; a tiny per-hop term breaks latency ties towards fewer hops
            return None if d["index"] in down else d["latency_s"] + 1e-12

        try:
            path = nx.shortest_path(self.graph, src, dst, weight=weight)
        except nx.NetworkXNoPath:
            return None
        hops = tuple(Hop(self.graph.edges[u, v]["index"], u, v) for u, v in zip(path, path[1:]))
        latency = sum(self.links[h.link_index].latency_ms for h in hops) / 1e3
        return Route(hops, latency)

"""The site graph: networkx topology, lowest-latency routes and their propagation floor."""
from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
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
    """Sites and links as an undirected networkx graph weighted by one-way latency.

    Routes are found with one single-source Dijkstra per (source site, set of links down), started
    the first time a route from that source is asked for and run only as far as the routes asked
    for need (`by_latency` reads sites nearest first), instead of one bidirectional search per
    (source, destination) pair. The weights are today's: each link's one-way latency plus 1e-12 s
    per hop, so that among paths of equal latency the one with fewer hops wins. Where that still
    leaves a tie (two paths to a site whose weights agree within `TIE_S`, far above float rounding
    and far below the per-hop term), the route to that site and to every site reached through it
    is found as before, by `nx.shortest_path` for that pair alone, so ties break exactly as they
    always did (networkx's bidirectional Dijkstra order). Routes, and the hops in them, are shared
    objects: one per (source, destination, links down).
    """

    TIE_S = 1e-13  # weights closer than this are a tie (the per-hop term is 1e-12 s)

    def __init__(self, scenario: Scenario) -> None:
        self.links = list(scenario.links)
        self.graph = nx.Graph()
        self.graph.add_nodes_from(scenario.sites)
        for i, link in enumerate(self.links):
            a, b = link.between
            self.graph.add_edge(a, b, index=i, latency_s=link.latency_ms / 1e3)
        self._routes: dict[tuple[str, str, frozenset[int]], Route | None] = {}
        self._trees: dict[tuple[str, frozenset[int]], _Tree] = {}
        self._hops: dict[tuple[int, str, str], Hop] = {}
        self._adj: dict[str, list[tuple[str, float, int, float]]] | None = None

    def route(self, src: str, dst: str, down: frozenset[int] = frozenset()) -> Route | None:
        """The lowest-latency route (fewest hops among equals) avoiding the links indexed in `down`,
        or None when `dst` is unreachable."""
        key = (src, dst, down)
        try:
            return self._routes[key]
        except KeyError:
            pass
        if src == dst:
            route: Route | None = Route((), 0.0)
        elif src not in self.graph or dst not in self.graph:
            route = self._find(src, dst, down)  # whatever networkx says about an unknown site
        else:
            tree = self._search(src, down)
            while dst not in tree.dist and tree.step():
                pass
            if dst not in tree.dist:
                route = None  # unreachable: the search reached every site it could
            elif dst in tree.tied:
                route = self._find(src, dst, down)
            else:
                route = self._walk(tree, src, dst)
        self._routes[key] = route
        return route

    def latency(self, src: str, dst: str, down: frozenset[int] = frozenset()) -> float | None:
        """`route(src, dst, down).latency_s` (None when unreachable), without making the route."""
        if src != dst and src in self.graph and dst in self.graph:
            tree = self._search(src, down)
            while dst not in tree.dist and tree.step():
                pass
            if dst not in tree.dist:
                return None
            if dst not in tree.tied:
                return tree.lat_ms[dst] / 1e3
        route = self.route(src, dst, down)
        return None if route is None else route.latency_s

    def by_latency(self, src: str, down: frozenset[int] = frozenset()) -> Iterator[tuple[float, str]]:
        """Every site reachable from `src` as (`latency(src, site, down)`, site), in nondecreasing
        latency, searching only as far as the caller reads.

        The search settles sites in order of weight (latency plus 1e-12 s per hop), which can differ
        from the order of latency by at most `margin`; a site is given once no site still unsettled
        can have a lower latency than it.
        """
        tree = self._search(src, down)
        margin = 1e-12 * (len(self.graph) + 1) + 1e-9
        ready: list[tuple[float, int, str]] = []
        i = 0
        while True:
            order = tree.order
            while i < len(order):
                v = order[i]
                i += 1
                lat = self.latency(src, v, down)
                assert lat is not None
                heapq.heappush(ready, (lat, i, v))
            frontier = tree.frontier()
            while ready and ready[0][0] <= frontier - margin:
                lat, _, v = heapq.heappop(ready)
                yield lat, v
            if frontier == math.inf and not ready:
                return
            if i == len(tree.order):
                tree.step()

    def _search(self, src: str, down: frozenset[int]) -> _Tree:
        key = (src, down)
        tree = self._trees.get(key)
        if tree is None:
            tree = self._trees[key] = _Tree(src, down, self._adjacency())
        return tree

    def _adjacency(self) -> dict[str, list[tuple[str, float, int, float]]]:
        if self._adj is None:
            # the same weight as `_find`: latency plus the per-hop tie-break term
            self._adj = {u: [(v, d["latency_s"] + 1e-12, d["index"], self.links[d["index"]].latency_ms)
                             for v, d in nbrs.items()]
                         for u, nbrs in self.graph.adj.items()}
        return self._adj

    def _walk(self, tree: _Tree, src: str, dst: str) -> Route:
        links: list[tuple[int, str, str]] = []
        v = dst
        while v != src:
            p = tree.pred[v]
            assert p is not None
            links.append((p[1], p[0], v))
            v = p[0]
        links.reverse()
        hops = tuple(self._hop(*k) for k in links)
        latency = sum(self.links[h.link_index].latency_ms for h in hops) / 1e3
        return Route(hops, latency)

    def _hop(self, index: int, src: str, dst: str) -> Hop:
        key = (index, src, dst)
        hop = self._hops.get(key)
        if hop is None:
            hop = self._hops[key] = Hop(index, src, dst)
        return hop

    def _find(self, src: str, dst: str, down: frozenset[int]) -> Route | None:
        """One pair's route by networkx's bidirectional Dijkstra: how every route was found before
        the per-source trees, and still how ties are broken."""
        if src == dst:
            return Route((), 0.0)

        def weight(u: str, v: str, d: dict) -> float | None:
            # None hides a failed link; a tiny per-hop term breaks latency ties towards fewer hops
            return None if d["index"] in down else d["latency_s"] + 1e-12

        try:
            path = nx.shortest_path(self.graph, src, dst, weight=weight)
        except nx.NetworkXNoPath:
            return None
        hops = tuple(self._hop(self.graph.edges[u, v]["index"], u, v) for u, v in zip(path, path[1:]))
        latency = sum(self.links[h.link_index].latency_ms for h in hops) / 1e3
        return Route(hops, latency)


class _Tree:
    """A Dijkstra search from one site with some links down, run as far as it has been asked to.

    For every settled site: its predecessor (site, link index), the sum of its path's link
    latencies in ms (added hop by hop from the source, as `Topology._walk` adds them), and whether
    its shortest path is not unique (`tied`: two paths whose weights agree within `TIE_S`, at it
    or at a site before it). `order` lists the settled sites in the order they were settled.
    """

    def __init__(self, src: str, down: frozenset[int], adj: dict[str, list[tuple[str, float, int, float]]]) -> None:
        self.down = down
        self.adj = adj
        self.dist: dict[str, float] = {}
        self.seen: dict[str, float] = {src: 0.0}
        self.pred: dict[str, tuple[str, int] | None] = {src: None}
        self.lat_ms: dict[str, float] = {src: 0}  # int 0, as sum() starts
        self.tie: set[str] = set()  # tentative: a tie among the paths found so far
        self.tied: set[str] = set()
        self.order: list[str] = []
        self.heap: list[tuple[float, int, str]] = [(0.0, 0, src)]
        self.count = 1

    def frontier(self) -> float:
        """The weight of the next site to settle (inf when the search is over)."""
        heap, dist = self.heap, self.dist
        while heap and heap[0][2] in dist:
            heapq.heappop(heap)
        return heap[0][0] if heap else math.inf

    def step(self) -> bool:
        """Settle one more site; False when every reachable site is settled."""
        heap, dist, seen, pred, lat_ms, tie = self.heap, self.dist, self.seen, self.pred, self.lat_ms, self.tie
        tol, down = Topology.TIE_S, self.down
        while heap:
            d, _, u = heapq.heappop(heap)
            if u in dist:
                continue
            dist[u] = d
            self.order.append(u)
            p = pred[u]
            if u in tie or (p is not None and p[0] in self.tied):
                self.tied.add(u)
            for v, w, index, ms in self.adj[u]:
                if index in down or v in dist:
                    continue
                vd = d + w
                old = seen.get(v)
                if old is None or vd < old - tol:
                    seen[v] = vd
                    pred[v] = (u, index)
                    lat_ms[v] = lat_ms[u] + ms
                    tie.discard(v)
                    heapq.heappush(heap, (vd, self.count, v))
                    self.count += 1
                elif vd <= old + tol:
                    tie.add(v)
                    if vd < old:
                        seen[v] = vd
                        pred[v] = (u, index)
                        lat_ms[v] = lat_ms[u] + ms
                        heapq.heappush(heap, (vd, self.count, v))
                        self.count += 1
            return True
        return False

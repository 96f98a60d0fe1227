"""The topology figure: sites as boxes (what runs there, what load starts there), links labelled.

Layout: datacenters in breadth-first order from the most central one (networkx closeness
centrality), every other site grouped with its nearest datacenter. Up to `DETAILED` sites:
datacenters in a top row, the others below; beyond: a left-to-right tree, datacenters in a column,
each beside its sites, boxes and labels in shorter lines. Both show the same facts (`caption`
says which), each box outlined in its site's colour in the report. A link that would cross a box
curves around it. No randomness: the same scenario always gives the same picture.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx

from lepton_sim.report.style import INK, MUTED, drawing, fmt, png_bytes, site_colours

_FILL = {"datacenter": "#e6eef8", "edge": "#e8f4ea"}
_EDGE = {"datacenter": "#2f6db5", "edge": "#3a9a5b"}
DETAILED = 8  # sites up to which boxes show everything
PER_ROW = 6  # sites per row before a row wraps (small scenarios)
LINE_IN = 0.19  # height of one text line in a box, inches
GAP_IN = 1.2  # vertical room between rows, for link labels
TREE_IN = 4.6  # horizontal distance from a datacenter to the sites beside it (fleets)


@dataclass(frozen=True)
class Style:
    """Box and label sizes for one figure."""

    slot_in: float  # horizontal room per site
    font: float
    detailed: bool


def style_for(n_sites: int) -> Style:
    return Style(3.6, 8.0, True) if n_sites <= DETAILED else Style(2.6, 8.0, False)


def _graph(shape: Mapping[str, Any]) -> nx.Graph:
    graph = nx.Graph()
    graph.add_nodes_from(shape["sites"])
    graph.add_edges_from(tuple(link["between"]) for link in shape["links"])
    return graph


def groups(shape: Mapping[str, Any]) -> list[tuple[str | None, list[str]]]:
    """Datacenters in breadth-first order from the most central one (networkx closeness centrality),
    each with the other sites nearest to it (fewest hops); sites near no datacenter come last."""
    sites = list(shape["sites"])
    graph = _graph(shape)
    dcs = [s for s in sites if shape["sites"][s].get("kind") == "datacenter"]
    if not dcs:
        return [(None, sites)]
    centrality = nx.closeness_centrality(graph)
    root = max(dcs, key=lambda s: (centrality[s], -sites.index(s)))
    order = {s: i for i, s in enumerate(nx.bfs_tree(graph, root))}
    dcs.sort(key=lambda s: (order.get(s, len(sites)), sites.index(s)))
    hops = {dc: nx.single_source_shortest_path_length(graph, dc) for dc in dcs}
    out: list[tuple[str | None, list[str]]] = [(dc, []) for dc in dcs]
    stray: list[str] = []
    for site in sites:
        if site in hops:
            continue
        near = min(((hops[dc][site], i) for i, dc in enumerate(dcs) if site in hops[dc]), default=None)
        (out[near[1]][1] if near else stray).append(site)
    return out + ([(None, stray)] if stray else [])


def layout(shape: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """Site positions in inches: top-down rows for small scenarios, a left-to-right tree for fleets."""
    st = style_for(len(shape["sites"]))
    return _rows(shape, st) if st.detailed else _tree(shape, st)


def _box_h(shape: Mapping[str, Any], sites: list[str], st: Style) -> float:
    return max(len(site_lines(shape, s, st.detailed)) for s in sites) * LINE_IN * st.font / 8 + 0.45


def _rows(shape: Mapping[str, Any], st: Style) -> dict[str, tuple[float, float]]:
    """Datacenters in the top row, the other sites below in their datacenters' order, rows centred."""
    gs = groups(shape)
    top = [dc for dc, _ in gs if dc is not None]
    rest = [s for _, members in gs for s in members]
    rows = [r[i:i + PER_ROW] for r in (top, rest) if r for i in range(0, len(r), PER_ROW)]
    pos: dict[str, tuple[float, float]] = {}
    y, prev_h = 0.0, 0.0
    for r, row in enumerate(rows):
        h = _box_h(shape, row, st)
        if r:
            y -= prev_h / 2 + GAP_IN + h / 2
        for i, site in enumerate(row):
            pos[site] = ((i - (len(row) - 1) / 2) * st.slot_in, y)
        prev_h = h
    return pos


def _tree(shape: Mapping[str, Any], st: Style) -> dict[str, tuple[float, float]]:
    """Datacenters in a column on the left, each beside the column of the sites nearest to it."""
    beside = [s for _, group in groups(shape) for s in group]  # the column's boxes set its pitch
    pitch = _box_h(shape, beside or list(shape["sites"]), st) + 0.2
    pos: dict[str, tuple[float, float]] = {}
    y = 0.0
    for dc, members in groups(shape):
        block = max(len(members), 1) * pitch
        for j, site in enumerate(members):
            pos[site] = (TREE_IN, y - (j + 0.5) * pitch)
        if dc is not None:
            pos[dc] = (0.0, y - block / 2)
        y -= block + 0.35
    return pos


def _bend(p0: tuple[float, float], p1: tuple[float, float], others: list[tuple[float, float]],
          half: tuple[float, float]) -> tuple[float, float] | None:
    """The control point of a curve around the boxes a straight link would cross, else None.

    Curves bulge up for links along a row and left for links along a column, the longer ones further
    (their control point 0.6 of the link's length out, or 1.6 in + 0.3 of it for long links, so that a
    fleet's picture stays within the page's width).
    """
    (x0, y0), (x1, y1) = sorted((p0, p1), key=lambda p: (p[0], p[1]))
    crossed = any(abs(x0 + (x1 - x0) * t / 20 - ox) < half[0] and abs(y0 + (y1 - y0) * t / 20 - oy) < half[1]
                  for t in range(1, 20) for ox, oy in others)
    if not crossed:
        return None
    dx, dy = x1 - x0, y1 - y0
    if abs(dx) < 1e-9:  # a column: always bend to the left
        dx, dy = 0.0, abs(dy)
    k = min(0.6, 1.6 / math.hypot(dx, dy) + 0.3)
    return (x0 + x1) / 2 - k * dy, (y0 + y1) / 2 + k * dx


def _curve(p0: tuple[float, float], c: tuple[float, float], p1: tuple[float, float]) -> list[tuple[float, float]]:
    """A quadratic Bezier curve through 41 points."""
    pts = []
    for k in range(41):
        t = k / 40
        a, b, d = (1 - t) ** 2, 2 * (1 - t) * t, t * t
        pts.append((a * p0[0] + b * c[0] + d * p1[0], a * p0[1] + b * c[1] + d * p1[1]))
    return pts


def _demand(shape: Mapping[str, Any], site: str) -> list[tuple[str, str]]:
    """(service, rate) of every demand starting at `site`; the arrival kind where no mean rate is given."""
    out = []
    for svc, entry in shape.get("services", {}).items():
        for d in entry.get("demand", []):
            if d["site"] == site:
                out.append((svc, f"{fmt(d['rate_rps'])} rps" if d.get("rate_rps") is not None
                            else str(d.get("arrival", ""))))
    return out


def site_lines(shape: Mapping[str, Any], site: str, detailed: bool = True) -> list[str]:
    """The text in a site's box: name (and kind), replicas by service, the demand starting there
    (one line per demand when detailed, all on one line otherwise)."""
    info = shape["sites"][site]
    lines = [f"{site} · {info.get('kind', 'site')}" if detailed else site]
    pools: dict[str, list[str]] = defaultdict(list)
    for r in (shape.get("deployment") or {}).get("replicas", []):
        if r["site"] == site:
            tp = r.get("tensor_parallel") or 1  # devices per replica (an LLM service's)
            label = f"{r['count']}× {r['hardware']} {r['variant']}"
            pools[r["service"]].append(label + (f" TP{tp}" if tp > 1 else ""))
    for svc, items in pools.items():
        lines.append(f"▣ {svc}: {', '.join(items)}")
    demand = _demand(shape, site)
    if detailed:
        lines += [f"⇢ {svc} demand {rate}" for svc, rate in demand]
    elif demand:
        lines.append("⇢ " + " · ".join(f"{svc} {rate}" for svc, rate in demand))
    return lines


def link_label(link: Mapping[str, Any], utilization: float | None, detailed: bool = True) -> str:
    """Bandwidth, one-way latency, egress price and (when measured) the busier direction's utilisation."""
    parts = []
    if link.get("bandwidth_gbps") is not None:
        parts.append(f"{fmt(link['bandwidth_gbps'])} Gb/s · {fmt(link['latency_ms'])} ms")
    if link.get("cost_per_gb"):
        price = f"${fmt(link['cost_per_gb'])}/GB"
        if detailed or not parts:
            parts.append(price)
        else:
            parts[-1] += f" · {price}"
    if utilization is not None:
        parts.append(f"busiest direction {100 * utilization:.1f} %" if detailed else f"{100 * utilization:.0f} % busy")
    return "\n".join(parts)


def caption(shape: Mapping[str, Any], link_util: Mapping[str, float] | None = None) -> str:
    """What the topology figure shows, naming only what its boxes and labels carry for this shape."""
    kinds = {info.get("kind") for info in shape["sites"].values()}
    fills = [f"{name}: {kind}" for kind, name in (("datacenter", "blue"), ("edge", "green")) if kind in kinds]
    box = [f"sites ({'filled ' + ', '.join(fills) + '; ' if fills else ''}"
           "outlined in the site's colour in the other figures)"]
    replicas = (shape.get("deployment") or {}).get("replicas")
    if replicas:
        tp = any((r.get("tensor_parallel") or 1) > 1 for r in replicas)
        box.append("the replicas each runs (▣ service: count × hardware variant"
                   + ("; TPn: n devices per replica, tensor parallel)" if tp else ")"))
    if any(entry.get("demand") for entry in shape.get("services", {}).values()):
        box.append("the demand that starts there (⇢ service and mean rate)")
    link = [what for what, shown in (
        ("bandwidth and one-way latency", any(k.get("bandwidth_gbps") is not None for k in shape["links"])),
        ("egress price", any(k.get("cost_per_gb") for k in shape["links"])),
        ("the busier direction's utilisation", bool(link_util))) if shown]
    text = "Boxes: " + "; ".join(box) + "."
    if shape["links"]:
        text += " Links: " + (", ".join(link) if link else "which sites they join") + "."
    return text


def topology_png(shape: Mapping[str, Any], link_util: Mapping[str, float] | None = None,
                 colours: Mapping[str, str] | None = None) -> bytes:
    """The topology as PNG; `link_util` maps link ids (``a--b``) to utilisation, when a run measured it;
    `colours` maps sites to their colours in the report (default: in the shape's order)."""
    st = style_for(len(shape["sites"]))
    colours = colours if colours is not None else site_colours(shape["sites"])
    pos = layout(shape)
    box_w = st.slot_in * (0.75 if st.detailed else 0.8)
    box_h = _box_h(shape, list(pos), st)
    paths: list[tuple[Mapping[str, Any], list[tuple[float, float]]]] = []
    for link in shape["links"]:
        a, b = link["between"]
        others = [p for s, p in pos.items() if s not in (a, b)]
        bend = _bend(pos[a], pos[b], others, (box_w / 2, box_h / 2))
        paths.append((link, _curve(pos[a], bend, pos[b]) if bend else [pos[a], pos[b]]))
    xs = [p[0] for p in pos.values()] + [x for _, pts in paths for x, _ in pts]
    ys = [p[1] for p in pos.values()] + [y for _, pts in paths for _, y in pts]
    x0, x1 = min(xs) - st.slot_in / 2, max(xs) + st.slot_in / 2
    y0, y1 = min(ys) - box_h / 2 - 0.15, max(ys) + box_h / 2 + 0.15
    width = max(x1 - x0, 6.0)
    with drawing(width, y1 - y0 + 0.3) as fig:
        ax = fig.add_subplot()
        ax.set_axis_off()
        for link, pts in paths:
            a, b = link["between"]
            bw = link.get("bandwidth_gbps") or 1.0
            ax.plot([x for x, _ in pts], [y for _, y in pts], color="#8a99a8", lw=1.0 + 1.0 * math.log10(1 + bw),
                    zorder=1, solid_capstyle="round")
            label = link_label(link, (link_util or {}).get(f"{a}--{b}"), st.detailed)
            if label:
                (ax0, ay0), (ax1, ay1) = pts[0], pts[-1]
                mx, my = pts[len(pts) // 2] if len(pts) > 2 else ((ax0 + ax1) / 2, (ay0 + ay1) / 2)
                ax.text(mx, my, label, ha="center", va="center", fontsize=st.font - 0.5, color=INK, zorder=3,
                        bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "#c9d3dd", "lw": 0.7})
        for site, (x, y) in pos.items():
            kind = shape["sites"][site].get("kind", "datacenter")
            ax.text(x, y, "\n".join(site_lines(shape, site, st.detailed)), ha="center", va="center",
                    fontsize=st.font, color=INK, zorder=4, linespacing=1.35,
                    bbox={"boxstyle": "round,pad=0.5", "fc": _FILL.get(kind, "#f3f6f9"),
                          "ec": colours.get(site, _EDGE.get(kind, MUTED)), "lw": 2.2})
        mid = (x0 + x1) / 2
        ax.set_xlim(mid - width / 2, mid + width / 2)
        ax.set_ylim(y0, y1)
        return png_bytes(fig)

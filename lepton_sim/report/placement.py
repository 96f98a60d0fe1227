"""Labels beside data points that overlap neither one another nor the lines and markers they describe.

A greedy search, as a cartographer would place town names: each label, in turn, takes the first of a
few positions around its point (above, below, beside, then further out) whose box, measured by the
renderer, meets no label already placed, no marker and no drawn line (a marker's edge grazing it by
`GRAZE` square pixels or less does not count); if every position meets something, the one that
meets least. No randomness, so the same figure gives the same picture.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Annotation
from matplotlib.transforms import Bbox

# offsets from the point in typographic points, in the order tried
OFFSETS: tuple[tuple[float, float], ...] = (
    (0, 7), (0, -7), (9, 5), (-9, 5), (9, -5), (-9, -5), (0, 17), (0, -17), (14, 0), (-14, 0),
    (18, 12), (-18, 12), (18, -12), (-18, -12), (0, 27), (0, -27))
GRAZE = 5.0  # the collision cost (see `_overlap`) below which a position counts as clear


@dataclass(frozen=True)
class Label:
    x: float  # data coordinates of the point labelled
    y: float
    text: str
    color: str


def place_labels(fig: Figure, ax: Axes, labels: Sequence[Label], fontsize: float = 8) -> list[Annotation]:
    """Annotate `ax` with `labels`, each where it overlaps the least of what is drawn; returns the annotations.

    Draws the figure once first, so that the layout (constrained) is final; the labels are kept out of
    the layout so that they do not move the axes they were placed on.
    """
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    inside = ax.get_window_extent(renderer)
    lines = [line for line in ax.get_lines() if line.get_visible()]
    marks = [b for line in lines for b in _marker_boxes(ax, line)]
    paths = [_line_points(ax, line) for line in lines if line.get_linestyle() not in ("None", "none", "")]
    placed: list[Bbox] = []
    out = []
    for label in labels:
        best: tuple[float, Annotation, Bbox] | None = None
        for dx, dy in OFFSETS:
            ann = ax.annotate(label.text, (label.x, label.y), textcoords="offset points", xytext=(dx, dy),
                              ha="center" if dx == 0 else ("left" if dx > 0 else "right"),
                              va="center" if dy == 0 else ("bottom" if dy > 0 else "top"),
                              fontsize=fontsize, color=label.color, zorder=6, annotation_clip=False)
            ann.set_in_layout(False)
            box = ann.get_window_extent(renderer).padded(1.5)
            cost = _overlap(box, placed, marks, paths, inside)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, ann, box)
            else:
                ann.remove()
            if cost <= GRAZE:
                break
        assert best is not None
        placed.append(best[2])
        out.append(best[1])
    return out


def _overlap(box: Bbox, placed: Sequence[Bbox], marks: Sequence[Bbox], paths: Sequence[list[tuple[float, float]]],
             inside: Bbox) -> float:
    """How badly `box` collides: area shared with labels and markers, points of lines inside it, and the
    part of it outside the axes (weighted most, then labels, then markers, then lines)."""
    cost = 0.0
    for other in placed:
        cost += 4 * _shared(box, other)
    for mark in marks:
        cost += 2 * _shared(box, mark)
    for pts in paths:
        cost += sum(1.0 for x, y in pts if box.x0 <= x <= box.x1 and box.y0 <= y <= box.y1)
    out = box.width * box.height - _shared(box, inside)
    return cost + 10 * max(out, 0.0)


def _shared(a: Bbox, b: Bbox) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _marker_boxes(ax: Axes, line: Line2D) -> list[Bbox]:
    if line.get_marker() in (None, "None", "none", ""):
        return []
    r = line.get_markersize() * ax.figure.dpi / 72 / 2 + 1
    pts = ax.transData.transform(list(zip(line.get_xdata(), line.get_ydata()))) if len(line.get_xdata()) else []
    return [Bbox.from_extents(x - r, y - r, x + r, y + r) for x, y in pts]


def _line_points(ax: Axes, line: Line2D, step_px: float = 2.0) -> list[tuple[float, float]]:
    """Points every `step_px` pixels along the drawn line, in display coordinates."""
    xy = ax.transData.transform(list(zip(line.get_xdata(), line.get_ydata()))) if len(line.get_xdata()) else []
    out: list[tuple[float, float]] = []
    for (x0, y0), (x1, y1) in zip(xy[:-1], xy[1:]):
        n = max(1, int(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5 / step_px))
        out += [(x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n) for k in range(n + 1)]
    return out

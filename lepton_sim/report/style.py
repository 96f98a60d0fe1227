"""Figure helpers: Agg-rendered matplotlib Figures (no pyplot, no global backend), palettes, PNG bytes.

Every figure is at most `MAX_WIDTH_IN` wide, so that report.html shows it at its natural size (the
page's column is wider) and an 8-point label stays 12 px on screen; a demand site keeps one colour
(`site_colours`) in every figure of a report.
"""
from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

T = TypeVar("T")

# one colour per site, in the scenario's order (and per line where there are no sites: `color`); no red
# (the SLO's colour) and no near-black (all requests)
SITE_PALETTE = ("#2f6db5", "#e07b39", "#3a9a5b", "#7b5ea7", "#8c6d46", "#d16fb0", "#2aa3b8", "#b8a936",
                "#1b3f8b", "#f2b134", "#6fbf4a", "#9c2f7a", "#5bc2e7", "#c98f6b", "#2e7d6b", "#6b7b8c")
GRID = "#e3e8ee"
INK = "#1d2733"
MUTED = "#5b6b7c"
NEUTRAL = "#8a99a8"  # bars and marks that stand for no site
SLO_RED = "#c2414b"
DPI = 110
MAX_WIDTH_IN = 10.0  # 1,100 px at DPI: the widest a figure is drawn (report.html's column is 1,120 px)

_RC: dict[RcKeyType, Any] = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "axes.edgecolor": "#9aa7b4", "axes.grid": True,
    "grid.color": GRID, "grid.linewidth": 0.8, "axes.axisbelow": True, "legend.fontsize": 8,
    "legend.frameon": False, "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False,
    "axes.spines.right": False,
}


@contextmanager
def drawing(width_in: float, height_in: float) -> Iterator[Figure]:
    """A Figure drawn by Agg under the report's rc style, independent of pyplot and the user's backend.

    Draw inside the `with` block: matplotlib reads rc settings when artists are created.
    """
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(min(width_in, MAX_WIDTH_IN), height_in), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        yield fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG, without the metadata that would make identical figures differ."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def color(i: int) -> str:
    """The i-th colour of the palette, for lines that stand for something other than a site (a sweep's)."""
    return SITE_PALETTE[i % len(SITE_PALETTE)]


def row_major(items: Sequence[T], ncol: int) -> list[T]:
    """`items` reordered so that a matplotlib legend of `ncol` columns (filled column by column, the first
    columns one longer) reads left to right, then top to bottom."""
    rows = -(-len(items) // max(ncol, 1))
    return [items[i * ncol + j] for j in range(ncol) for i in range(rows) if i * ncol + j < len(items)]


def site_colours(sites: Iterable[str]) -> dict[str, str]:
    """One colour per site in the given order (a scenario's), the same in every figure of a report.

    Past `SITE_PALETTE`'s 16 colours they repeat; a latency panel draws at most 6 demand sites.
    """
    return {site: SITE_PALETTE[i % len(SITE_PALETTE)] for i, site in enumerate(dict.fromkeys(sites))}


def fmt(v: float | int | None, digits: int = 3) -> str:
    """A number with `digits` significant digits (whole numbers kept whole), thousands separated."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if float(v).is_integer() or abs(v) >= 10 ** digits:
        return f"{round(v):,}"
    return f"{v:.{digits}g}"


def energy(kwh: float | None) -> str:
    """Energy in kWh, or in Wh below 1 kWh."""
    if kwh is None:
        return "-"
    return f"{fmt(kwh)} kWh" if kwh >= 1 else f"{fmt(kwh * 1e3)} Wh"


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f} %"

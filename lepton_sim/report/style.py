"""Figure helpers: Agg-rendered matplotlib Figures (no pyplot, no global backend), one palette, PNG bytes."""
from __future__ import annotations

import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

PALETTE = ("#2f6db5", "#e07b39", "#3a9a5b", "#c2414b", "#7b5ea7", "#8c6d46", "#d16fb0", "#6b7b8c",
           "#b8a936", "#2aa3b8")
GRID = "#e3e8ee"
INK = "#1d2733"
MUTED = "#5b6b7c"
DPI = 110

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
        fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        yield fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG, without the metadata that would make identical figures differ."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


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

"""One matplotlib look for every report figure: colour-blind-safe colours, units on axes, PNG data URIs.

Figures are `matplotlib.figure.Figure` objects rendered with the Agg canvas; they never touch pyplot,
so making a report works without a display and leaves no global figure state behind.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib as mpl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

# Okabe & Ito (2008) palette: distinguishable under the common colour-vision deficiencies.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
REAL = OKABE_ITO["blue"]
GENERATED = OKABE_ITO["vermillion"]
IMAGE_CMAP = "viridis"  # perceptually uniform and colour-blind safe
DIVERGING_CMAP = "BrBG"  # correlations in [-1, 1]: colour-blind safe (ColorBrewer), unlike the real/generated hues
REPORT_DPI = 150  # PNG pixels per inch: a 3.2-inch panel is 480 px wide, shown at that size in the report's grid

RC = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.5,
    "image.cmap": IMAGE_CMAP,
    "axes.prop_cycle": mpl.cycler(color=[OKABE_ITO[k] for k in
                                         ("blue", "vermillion", "bluish_green", "orange", "reddish_purple",
                                          "sky_blue", "yellow", "black")]),
}


@contextmanager
def style() -> Iterator[None]:
    """Context in which figures are drawn with the shared report style (rcParams)."""
    with mpl.rc_context(RC):
        yield


def new_figure(nrows: int = 1, ncols: int = 1, panel_size: tuple[float, float] = (3.2, 2.6), **kwargs):
    """A `Figure` with an ``nrows x ncols`` grid of axes (always a 2D array), sized per panel in inches."""
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def figure_to_data_uri(fig: Figure, dpi: float | None = REPORT_DPI) -> str:
    """Render ``fig`` to PNG and return it as a ``data:image/png;base64,...`` URI; the figure is closed.

    ``dpi``: PNG pixels per inch of the figure's size (default `REPORT_DPI`; None: the figure's own dpi). The report
    shows every PNG at its pixel size, so text keeps one size across figures.
    """
    for ax in fig.axes:  # log axes spanning less than a decade would label every minor tick, overlapping
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log":
                axis.set_minor_formatter(NullFormatter())
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi="figure" if dpi is None else dpi)
    if getattr(fig.canvas, "manager", None) is not None:  # made with pyplot: let pyplot forget it
        import matplotlib.pyplot as plt

        plt.close(fig)
    fig.clear()
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def k_unit(pixel_unit: str) -> str:
    """Unit of wavenumbers for fields whose pixel size is in ``pixel_unit`` (``"Mpc/h"`` -> ``"h/Mpc"``)."""
    if pixel_unit == "Mpc/h":
        return "h/Mpc"
    return f"1/{pixel_unit}"


def power_unit(units: str, pixel_unit: str, ndim: int = 2) -> str:
    """Unit of P(k) for field values in ``units`` on a ``ndim``-dimensional grid of ``pixel_unit``."""
    power = "²" if ndim == 2 else "³"
    length = f"({pixel_unit}){power}" if "/" in pixel_unit else f"{pixel_unit}{power}"
    if units in ("", "dimensionless", "1"):
        return length
    value = f"({units})²" if "/" in units or " " in units else f"{units}²"
    return f"{value} {length}"

import base64
import struct

import numpy as np
import pytest

from astrogen.report.style import GENERATED, REAL, REPORT_DPI, figure_to_data_uri, k_unit, new_figure, power_unit, style


def png_size(uri: str) -> tuple[int, int]:
    """(width, height) of a PNG data URI, read from its IHDR chunk."""
    assert uri.startswith("data:image/png;base64,")
    data = base64.b64decode(uri.split(",", 1)[1])
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("dpi, expected", [(REPORT_DPI, (6 * REPORT_DPI, 3 * REPORT_DPI)), (None, (600, 300)),
                                          (50, (300, 150))])
def test_figure_to_data_uri_is_a_png_of_the_figure_size(dpi, expected):
    with style():
        fig, axes = new_figure(2, 3, panel_size=(2.0, 1.5))
        axes[1, 2].plot(np.arange(5))
    assert axes.shape == (2, 3)
    width, height = png_size(figure_to_data_uri(fig) if dpi == REPORT_DPI else figure_to_data_uri(fig, dpi=dpi))
    assert (width, height) == expected  # 6 x 3 inches at dpi; None: the figure's own 100 dpi
    assert not fig.axes  # cleared after rendering


def test_pyplot_figures_are_closed():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(2, 1), dpi=50)
    assert png_size(figure_to_data_uri(fig, dpi=None)) == (100, 50)
    assert not plt.fignum_exists(fig.number)


@pytest.mark.parametrize("pixel_unit, expected", [("Mpc/h", "h/Mpc"), ("arcmin", "1/arcmin"), ("deg", "1/deg"),
                                                  ("pixel", "1/pixel")])
def test_k_unit(pixel_unit, expected):
    assert k_unit(pixel_unit) == expected


def test_power_unit():
    assert power_unit("uK", "arcmin") == "uK² arcmin²"
    assert power_unit("dimensionless", "Mpc/h", ndim=3) == "(Mpc/h)³"
    assert power_unit("erg/s", "deg") == "(erg/s)² deg²"


def test_real_and_generated_colours_are_okabe_ito_and_distinct():
    assert (REAL, GENERATED) == ("#0072B2", "#D55E00")

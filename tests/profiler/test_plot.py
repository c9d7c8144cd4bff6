"""``us3l profile --plot`` (``us3l.profiler.plot.plot_profile``) on a hand-made profile: nothing is measured."""

from __future__ import annotations

from dataclasses import replace

from tests.profiler.test_profile_file import make_profile
from us3l.io import is_us3l_png
from us3l.profiler.plot import plot_profile


def test_the_plot_leaves_the_callers_matplotlib_as_it_was(tmp_path) -> None:
    """It called ``matplotlib.use("Agg")``: a notebook (or any program) using us3l's API had its backend
    switched under it."""
    import matplotlib
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    plt.switch_backend("svg")
    try:
        fig = plt.figure()
        out = plot_profile(make_profile(), tmp_path / "p.png")
        assert matplotlib.get_backend() == "svg" and plt.get_fignums() == [fig.number]
        assert is_us3l_png(out.read_bytes()) and out.stat().st_size > 1000
    finally:
        plt.close("all")
        plt.switch_backend(before)


def test_a_dollar_in_a_name_is_drawn_literally(tmp_path) -> None:
    """A name with ``$`` is text, never mathtext: a pair of them around what is not mathtext failed to draw (a
    ValueError from matplotlib's parser), as it did in the report."""
    out = plot_profile(replace(make_profile(), model="net$a_{$b"), tmp_path / "p.png")
    assert is_us3l_png(out.read_bytes())



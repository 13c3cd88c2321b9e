"""The site's explorer galleries (``jeat_core.explore.gallery``): which states, what they show, and that the
explorer is left as the notebook set it."""

import base64
import re

import pytest

from jeat_core.explore.gallery import LADDERS, Gallery, gallery, ladder, last_explorer, plotly_html, spread


def _toy_explorer():
    import ipywidgets as w
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jeat_core.explore.widgets import Explorer

    def compute(eps255: float, model: str, sigma: str) -> dict:
        if eps255 > 12:
            raise ValueError("ε too large for this toy")
        return {"eps": eps255, "model": model}

    def draw(r):
        fig, ax = plt.subplots(figsize=(2, 1))
        ax.set_title(f"{r['model']} {r['eps']}")
        return fig

    controls = {"eps255": w.FloatSlider(8.0, min=0.0, max=16.0, step=0.5, description="ε × 255"),
                "model": w.Dropdown(options=[("Normal", "standard"), ("AT", "at")], description="model"),
                "sigma": w.Dropdown(options=["σ = 8/255", "σ = 16/255"], description="σ")}
    return Explorer(controls, compute, draw, title="toy", note=lambda r: f"<i>eps {r['eps']}</i>")


def test_spread_keeps_the_ends_and_the_current_value():
    values = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
    got = spread(values, 0.03)
    assert got[0] == 0.001 and got[-1] == 10.0 and 0.03 in got and len(got) == 4
    assert spread([1, 2], 1) == [1, 2]


def test_gallery_steps_one_control_and_restores_it():
    ex = _toy_explorer()
    g = gallery(ex, choice={"eps255": [0, 4, 8, 16]})
    assert [s.caption for s in g.states] == ["ε × 255 = 0", "ε × 255 = 4", "ε × 255 = 8 (the notebook's setting)",
                                             "ε × 255 = 16"]
    assert all(s.png for s in g.states[:3]) and g.states[3].png is None and "too large" in g.states[3].error
    assert ex.controls["eps255"].value == 8.0 and ex.last["eps"] == 8.0  # left as the notebook set it
    page = g._repr_mimebundle_()["text/html"]
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(imgs) == 3 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in imgs)
    assert page.count("<figure") == 4 and "<i>eps 4.0</i>" in page
    assert re.findall(r'<input type="radio"[^>]*>', page)[2].endswith(" checked>")  # the notebook's state first
    assert [s.current for s in g.states] == [False, False, True, False] and g.control == "ε × 255"


def test_all_options_of_a_dropdown_and_the_fallback():
    ex = _toy_explorer()
    assert ladder(ex, choice={"model": "all"}) == ("model", ["standard", "at"])
    assert ladder(ex, kind="no_such_explorer") == ("model", ["standard", "at"])  # first drop-down
    g = gallery(ex, choice={"model": "all"})
    assert [s.caption for s in g.states] == ["model = Normal (the notebook's setting)", "model = AT"]
    with pytest.raises(KeyError):
        ladder(ex, choice={"radius": [1, 2]})
    # a label that already names its control is not repeated ("σ = 8/255", not "σ = σ = 8/255")
    assert [s.caption for s in gallery(ex, choice={"sigma": "all"}).states] == [
        "σ = 8/255 (the notebook's setting)", "σ = 16/255"]


def test_last_explorer_finds_the_previous_cells_explorer():
    ex = _toy_explorer()
    assert last_explorer({"x": 1, "explorer": ex}) is ex
    with pytest.raises(LookupError):
        last_explorer({"x": 1})


def test_every_ladder_names_a_widgets_explorer():
    import jeat_core.explore.widgets as widgets

    assert all(callable(getattr(widgets, kind, None)) for kind in LADDERS)


def test_landscape_gallery_has_a_plotly_surface_per_model(toy):
    import torch
    from conftest import tiny_cnn

    from jeat_core.explore.widgets import landscape_explorer

    x, y = toy.tensors(2)
    models = {"standard": tiny_cnn(0), "at": tiny_cnn(1)}
    with torch.no_grad():
        g = gallery(landscape_explorer(models, x, y, resolution=9), kind="landscape_explorer")
    assert isinstance(g, Gallery) and [s.caption.split(" (")[0] for s in g.states] == ["model = standard",
                                                                                         "model = at"]
    page = g.html()
    assert page.count('class="plotly-graph-div"') == 2 and "Plotly.newPlot" in page and "<script src" not in page


def test_plotly_html_needs_no_cdn():
    import plotly.graph_objects as go

    out = plotly_html(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])))
    assert "Plotly.newPlot" in out and "<script src" not in out


def test_last_explorer_prefers_the_previous_cells_output():
    first, second = _toy_explorer(), _toy_explorer()
    # IPython: In[0] is '', one entry per cell run, the running cell last; Out holds displayed results
    ns = {"In": ["", "setup", "second", "gallery(...)"], "Out": {2: second}, "first": first}
    assert last_explorer(ns) is second

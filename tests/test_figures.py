"""`jeat figures --smoke` end to end on a throw-away zoo of tiny models (a few training steps each),
so the pipeline is tested before (and independently of) the shipped models."""

import inspect
import json

import pytest

from jeat_core.explore.figures import draw_function, make_all, nearest_by_ssim, ssim
from jeat_core.paper.paper_items import IMAGE_ROWS, PAPER_ITEMS


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_zoo")  # the tiny zoo is trained once, on one worker
def test_figures_smoke_writes_everything(tiny_zoo, tmp_path, monkeypatch, data_root):
    monkeypatch.setenv("JEAT_CHECKPOINTS", str(tiny_zoo))
    report = make_all(tmp_path, smoke=True, data_root=data_root)
    assert not [k for k, v in report.items() if isinstance(v, str)], report
    assert list(report) == list(PAPER_ITEMS)
    for name, item in PAPER_ITEMS.items():
        assert report[name] == [str(tmp_path / f) for f in item.exports]
        if item.is_table:
            assert json.loads((tmp_path / f"{name}.json").read_text())["rows"] and (tmp_path / f"{name}.md").is_file()
        else:
            assert (tmp_path / f"{name}.pdf").stat().st_size > 1000 and (tmp_path / f"{name}.png").is_file()


def test_ssim_known_values():
    import torch

    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 3, 32, 32, generator=g)
    assert torch.allclose(ssim(a, a), torch.ones(3), atol=1e-5)
    assert float(ssim(a, torch.rand(3, 3, 32, 32, generator=g)).mean()) < 0.1
    train = (torch.rand(50, 32, 32, 3, generator=g) * 255).to(torch.uint8).numpy()
    q = torch.from_numpy(train[[7, 21]]).permute(0, 3, 1, 2).float() / 255
    idx, s = nearest_by_ssim(q, train, k=3, prefilter=10)
    assert idx[:, 0].tolist() == [7, 21] and torch.allclose(s[:, 0], torch.ones(2), atol=1e-5)


# ----------------------------------------------------------------------------- one producer per figure (issue #14)
# The paper's items are listed once, in paper_items.PAPER_ITEMS (producer, plot, files, notebook): the tests
# below iterate over it, so a new item is tested without editing them.
@pytest.mark.parametrize("item", list(PAPER_ITEMS.values()), ids=lambda item: item.id)
def test_each_paper_item_is_complete(item):
    """A paper item names a producer of jeat_core.paper.paper_items, a way to draw it, its files and its notebook."""
    from pathlib import Path

    from jeat_core.paper import paper_items

    assert getattr(paper_items, item.producer.__name__) is item.producer
    if not item.is_table:  # a figure names its own draw function, in the explore layer, taking the data alone
        draw = draw_function(item)
        assert draw.__module__.startswith("jeat_core.explore."), item.draw
        params = [p for p in inspect.signature(draw).parameters.values() if p.default is inspect.Parameter.empty]
        assert len(params) == 1, (item.draw, params)
    assert item.exports[0] == f"{item.id}.{'md' if item.is_table else 'pdf'}"
    assert len(list((Path(__file__).resolve().parent.parent / "notebooks").glob(f"{item.notebook}_*.py"))) == 1
    assert item.title and ("{n}" not in item.title or item.is_table)


def test_a_broken_draw_reference_is_a_clear_error():
    from dataclasses import replace

    item = replace(PAPER_ITEMS["fig2_energy_contours"], draw="jeat_core.explore.figures:no_such_function")
    with pytest.raises(ValueError, match="fig2_energy_contours.*no_such_function"):
        draw_function(item)
    with pytest.raises(ValueError, match="is a table"):
        draw_function(PAPER_ITEMS["table1_attacks"])


def test_make_all_plots_exactly_what_the_producers_return(monkeypatch, tmp_path):
    """`jeat figures` computes nothing itself: every figure and table is one producer's return value,
    called once with the named sizes, handed unchanged to the plotting/saving function."""
    from dataclasses import replace

    import torch

    from jeat_core.explore import figures
    from jeat_core.paper import experiments as ex
    from jeat_core.paper import paper_items

    class FakeContext:
        preset = "cifar10-cpu"

        def __init__(self, data_root=None):
            pass

        def test(self):
            return torch.zeros(4, 3, 32, 32), torch.zeros(4, dtype=torch.long)

        def model(self, name):
            return f"model:{name}", {"name": name}

        def models(self, names):
            return {n: self.model(n)[0] for n in names}

        def manifests(self, names):
            return {n: self.model(n)[1] for n in names}

        def class_gaussian(self):
            return "class-gaussian"

        def train_split(self):
            return type("Split", (), {"x": torch.zeros(8, 32, 32, 3, dtype=torch.uint8).numpy()})()

    calls, drawn = {}, {}

    def fake(name, value):
        def producer(**kwargs):
            calls.setdefault(name, []).append(kwargs)
            return value
        return producer

    made, sized = {}, {}
    for name, item in PAPER_ITEMS.items():  # every item's producer and draw function replaced by a recorder
        sized[name] = "sizes" in inspect.signature(item.producer).parameters
        made[name] = [{"model": name, "n": 4}] if item.is_table else object()
        draw = None if item.is_table else (lambda data, name=name: ("drawn", name, data))
        monkeypatch.setitem(PAPER_ITEMS, name, replace(item, producer=fake(name, made[name]), draw=draw))
    monkeypatch.setattr(ex, "Context", FakeContext)
    monkeypatch.setattr(figures, "save_figure", lambda fig, out, name: drawn.__setitem__(name, fig) or [name])
    monkeypatch.setattr(figures, "save_table", lambda rows, out, name, **kw: drawn.__setitem__(name, rows) or [name])

    report = figures.make_all(tmp_path, smoke=True)
    assert list(report) == list(PAPER_ITEMS) and sorted(drawn) == sorted(PAPER_ITEMS)
    for name, item in PAPER_ITEMS.items():
        assert len(calls[name]) == 1, name
        assert calls[name][0].get("sizes") is (figures.SMOKE_SIZES if sized[name] else None), name
        if item.is_table:
            assert drawn[name] is made[name]
        else:  # the producer's data, unchanged, drawn by the item's own function
            assert drawn[name] == ("drawn", name, made[name]) and drawn[name][2] is made[name]
    # generation figures get their models' manifests (tuned samplers) and the class-Gaussian seeds
    fig4 = calls["fig4_eq16_vs_eq17"][0]
    assert set(fig4["models"]) == set(paper_items.FIG4_MODELS) and fig4["manifests"]["at"] == {"name": "at"}
    assert fig4["class_gaussian"] == "class-gaussian"


@pytest.mark.parametrize("item", list(PAPER_ITEMS.values()), ids=lambda item: item.id)
def test_each_notebook_calls_the_producer_of_its_paper_item(item):
    """The notebook that exports a paper item builds it with the producer `jeat figures` calls (imported
    from jeat_core.paper.paper_items, however the import is formatted), at the named sizes, exports the
    same file name, and plots a figure of image rows with the producer's own layout. Read from the
    notebook's code as a syntax tree, so import sorting and line wrapping do not matter."""
    import ast
    from pathlib import Path

    producer = item.producer.__name__
    (path,) = (Path(__file__).resolve().parent.parent / "notebooks").glob(f"{item.notebook}_*.py")
    tree = ast.parse(path.read_text())
    imported = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                and n.module in ("jeat_core.paper.paper_items", "jeat_core.paper_items") for a in n.names}
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    made = [c for c in calls if c.func.id == producer]
    assert producer in imported and made, f"{path.name} does not call {producer} from paper_items"
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert item.id in strings, path.name  # it exports the same file name
    if "sizes" in inspect.signature(item.producer).parameters:
        sized = [k.value for c in made for k in c.keywords if k.arg == "sizes"]
        assert sized and all(isinstance(v, ast.Name) and v.id == "SIZES" for v in sized), path.name
        assigns = [n for n in ast.walk(tree) if isinstance(n, ast.Assign)
                   and any(isinstance(tg, ast.Name) and tg.id == "SIZES" for tg in n.targets)]
        assert any(isinstance(a.value, ast.IfExp) and {getattr(a.value.body, "id", None),
                   getattr(a.value.orelse, "id", None)} == {"SMOKE_SIZES", "PAPER_SIZES"} for a in assigns), path.name
    if item.draw == IMAGE_ROWS:  # drawn with the producer's own layout
        var = producer.removesuffix("_rows")
        drawn = [c for c in calls if c.func.id == "plot_image_rows"]
        assert any(isinstance(c.args[0], ast.Name) and c.args[0].id == var for c in drawn if c.args), path.name


def test_figure_sizes_validate():
    from jeat_core.paper.paper_items import FigureSizes

    for bad in ({"per_class": 0}, {"max_steps": 2.5}, {"n_test": True}, {"fig7_classes": 6}):
        with pytest.raises(ValueError):
            FigureSizes(**bad)
    assert FigureSizes(n_train=None).n_train is None


# ----------------------------------------------------------------------------- Fig. 2's scale (issue #24)
def _slices(scales=(1.0, 100.0)):
    """Two synthetic Fig. 2 panels with the same shape of Δ log p, one ``scales[1] / scales[0]`` times larger."""
    import torch

    a = torch.linspace(-2, 2, 9)
    bowl = -(a[:, None] ** 2 + 0.5 * a[None, :] ** 2 + 0.3 * a[:, None])  # (9, 9), 0 at the centre
    out = {}
    for name, k in zip(("standard", "jeat"), scales):
        d = k * bowl
        out[name] = {"a": a, "b": a.clone(), "grid": -3 * d - 1.0, "dlogp": d,
                     "stats": {"flatness": float((3 * d).abs().mean()), "flatness_dlogp": float(d.abs().mean())}}
    return out


@pytest.mark.parametrize("quantity", ["dlogp", "energy"])
def test_fig2_panels_each_span_their_own_values(quantity):
    """Every panel's colour scale covers exactly its own values (symmetric around 0), so a flat model's
    panel is not one uniform colour next to a sharp one; the title gives its flatness number."""
    import numpy as np

    from jeat_core.explore.figures import CONTOUR_QUANTITIES, MODEL_LABELS, contour_values, plot_contours

    data = _slices()
    fig = plot_contours(data, quantity=quantity)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 2
    spans = []
    for ax, (name, d) in zip(panels, data.items()):
        v = contour_values(d, quantity)
        cs = ax.collections[0]
        assert cs.norm.vmin <= v.min() and cs.norm.vmax >= v.max()
        assert cs.norm.vmax == pytest.approx(np.abs(v).max()) and cs.norm.vmin == pytest.approx(-np.abs(v).max())
        assert len({round(float(c), 3) for c in cs.levels}) > 10  # the structure has levels to show
        stat = CONTOUR_QUANTITIES[quantity][0]
        assert ax.get_title().startswith(MODEL_LABELS[name]) and f"{d['stats'][stat]:.3g}" in ax.get_title()
        spans.append(cs.norm.vmax)
    assert spans[1] == pytest.approx(100 * spans[0], rel=1e-6)  # not one shared scale


def test_fig2_shared_row_puts_every_panel_on_one_scale():
    """The saved Fig. 2's second row: every panel on the one scale of the sharpest, so a flat model is
    seen to be flat; the first row keeps each panel's own scale."""
    import numpy as np

    from jeat_core.explore.figures import contour_values, plot_contours

    data = _slices()
    fig = plot_contours(data, shared=True)
    own = [ax for ax in fig.axes if ax.get_title() and "shared" not in ax.get_title()]
    one = [ax for ax in fig.axes if "one shared scale" in ax.get_title()]
    assert len(own) == len(one) == 2
    top = max(float(np.abs(contour_values(d, "dlogp")).max()) for d in data.values())
    assert all(ax.collections[0].norm.vmax == pytest.approx(top) for ax in one)
    assert own[0].collections[0].norm.vmax == pytest.approx(top / 100)


def test_fig2_default_is_delta_log_p_and_data_has_it():
    """Fig. 2 colours Δ log p(y|x') by default (the audit's quantity), and fig2_data provides it
    consistently with the energies: E(x', y) − E(x, y) = −Δ log p + ΔE(x')."""
    import torch
    from conftest import tiny_cnn

    from jeat_core.explore.figures import plot_contours
    from jeat_core.paper.paper_items import FIG2_MODELS, FigureSizes, fig2_data

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 3, 32, 32, generator=g), torch.tensor([4, 1])
    models = {n: tiny_cnn(i) for i, n in enumerate(FIG2_MODELS)}
    data = fig2_data(models, x, y, sizes=FigureSizes(resolution=5))
    assert list(data) == list(FIG2_MODELS)
    for name, d in data.items():
        with torch.no_grad():
            logits = models[name](x[:1])  # at the image: the centre of the grid
        assert float(d["grid"][2, 2]) == pytest.approx(-float(logits[0, 4]), abs=1e-4)
        assert float(d["dlogp"][2, 2]) == 0.0 and d["stats"]["flatness_dlogp"] == pytest.approx(
            float(d["dlogp"].abs().mean()))
    fig = plot_contours(data)
    assert "log p(y|x′) − log p(y|x)" in fig.axes[-1].get_ylabel() and "Δ log p" in fig.axes[0].get_title()


def test_image_grid_sets_the_first_column_apart_and_fig6_names_its_classes():
    """Fig. 7's generated image stands apart from its neighbours (a wider white gutter), and Fig. 6's
    first panel names the class of each line."""
    import torch

    from jeat_core.explore.figures import plot_image_rows
    from jeat_core.explore.plotting import image_grid
    from jeat_core.paper.paper_items import ImageRows

    x = torch.zeros(6, 3, 4, 4)  # black images: gutters are the only white
    plain, split = image_grid(x, 3), image_grid(x, 3, split_after=1, split_gap=6)
    assert plain.shape == (9, 14, 3) and split.shape == (9, 19, 3)
    assert (split[:, 4:10] == 1).all() and (split[:4, 10:14] == 0).all()  # 6 white columns, then image 2
    assert (split[:4, :4] == 0).all() and (split[:4, 15:19] == 0).all()
    fig = plot_image_rows(ImageRows({"seeds": x, "AT": x}, nrow=3, side_by_side=True, line_names=["cat", "dog"]))
    first, second = fig.axes
    assert [t.get_text() for t in first.get_yticklabels()] == ["cat", "dog"]
    assert not second.axison  # only the first panel carries the names


# ----------------------------------------------------------------------------- the ΔE histograms
def test_delta_energy_histograms_measure_single_updates(toy):
    """Per-example Δ_x E is exactly 0 when the training input is the image itself (standard training) and
    not when an attack moves it (AT); one value per image of the batch at each point of training."""
    from conftest import tiny_cnn

    from jeat_core.paper.paper_items import FigureSizes, fig3_histograms

    sizes = FigureSizes(hist_steps=2)
    at = fig3_histograms(toy, tiny_cnn(), method="at", sizes=sizes)  # a trained model of another width
    std = fig3_histograms(toy, None, method="standard", sizes=sizes)
    assert list(at["points"]) == ["fresh run, update 1", "fresh run, update 2", "trained model, one update (probe)"]
    for d in (at, std):
        for values in d["points"].values():
            assert {len(v) for v in values.values()} == {d["batch"]}
    assert all((v["dxE_joint"] == 0).all() for v in std["points"].values())
    assert all((v["dxE_joint"] != 0).any() for v in at["points"].values())
    assert any((v["dthetaE_joint"] != 0).any() for v in at["points"].values())  # the update moved the energy

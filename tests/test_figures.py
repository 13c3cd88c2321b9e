"""`jeat figures --smoke` end to end on a throw-away zoo of tiny models (a few training steps each),
so the pipeline is tested before (and independently of) the shipped models."""

import json

import pytest

from jeat_core.figures import make_all, nearest_by_ssim, ssim

FILES = ["fig2_energy_contours", "fig3_delta_energy", "fig4_eq16_vs_eq17", "fig5_noise_generation",
         "fig6_generation_by_model", "fig7_nearest_neighbours"]
TABLES = ["table1_attacks", "table2_fisher", "table3_robustness"]


@pytest.mark.slow
def test_figures_smoke_writes_everything(tiny_zoo, tmp_path, monkeypatch, data_root):
    monkeypatch.setenv("JEAT_CHECKPOINTS", str(tiny_zoo))
    report = make_all(tmp_path, smoke=True, data_root=data_root)
    assert not [k for k, v in report.items() if isinstance(v, str)], report
    for name in FILES:
        assert (tmp_path / f"{name}.pdf").stat().st_size > 1000 and (tmp_path / f"{name}.png").is_file()
    for name in TABLES:
        rows = json.loads((tmp_path / f"{name}.json").read_text())["rows"]
        assert rows and (tmp_path / f"{name}.md").is_file()


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
# paper item -> (notebook, producer in jeat_core.experiments, file `jeat figures` and the notebook write)
PRODUCERS = {"table1_attacks": ("01", "table1_rows"), "fig2_energy_contours": ("02", "fig2_data"),
             "fig3_delta_energy": ("03", "fig3_data"), "fig4_eq16_vs_eq17": ("04", "fig4_rows"),
             "fig5_noise_generation": ("05", "fig5_rows"), "fig6_generation_by_model": ("06", "fig6_rows"),
             "fig7_nearest_neighbours": ("09", "fig7_rows"), "table2_fisher": ("07", "table2_fisher_rows"),
             "table3_robustness": ("08", "table3_rows")}


def test_make_all_plots_exactly_what_the_producers_return(monkeypatch, tmp_path):
    """`jeat figures` computes nothing itself: every figure and table is one producer's return value,
    called once with the named sizes, handed unchanged to the plotting/saving function."""
    import torch

    from jeat_core import experiments as ex
    from jeat_core import figures

    class FakeContext:
        preset = "cifar10-cpu"

        def __init__(self, data_root=None):
            pass

        def test(self):
            return torch.zeros(4, 3, 32, 32), torch.zeros(4, dtype=torch.long)

        def model(self, name):
            return f"model:{name}", {"name": name}

        def class_gaussian(self):
            return "class-gaussian"

        def train_split(self):
            return type("Split", (), {"x": torch.zeros(8, 32, 32, 3, dtype=torch.uint8).numpy()})()

    calls, drawn = {}, {}

    def fake(name, value):
        def producer(*args, sizes=None):
            calls.setdefault(name, []).append((args, sizes))
            return value
        return producer

    made = {}
    for item, (_, producer) in PRODUCERS.items():
        if producer.endswith("_rows") and producer.startswith("fig"):
            made[item] = ex.ImageRows({f"{item} row": torch.rand(2, 3, 32, 32)}, nrow=2, title=item)
        elif producer.startswith("table"):
            made[item] = [{"model": item, "n": 4}]
        else:
            made[item] = {"log": [item], "title": item} if producer == "fig3_data" else {item: {}}
        monkeypatch.setattr(ex, producer, fake(producer, made[item]))
    monkeypatch.setattr(ex, "Context", FakeContext)
    monkeypatch.setattr(figures, "plot_image_rows", lambda rows, nrow, title="": ("rows", rows, nrow, title))
    monkeypatch.setattr(figures, "plot_contours", lambda data, title="": ("contours", data))
    monkeypatch.setattr(figures, "plot_delta_energy", lambda log, title="": ("delta", log, title))
    monkeypatch.setattr(figures, "save_figure", lambda fig, out, name: drawn.__setitem__(name, fig) or [name])
    monkeypatch.setattr(figures, "save_table", lambda rows, out, name, **kw: drawn.__setitem__(name, rows) or [name])

    report = figures.make_all(tmp_path, smoke=True)
    assert sorted(report) == sorted(PRODUCERS) and sorted(drawn) == sorted(PRODUCERS)
    for item, (_, producer) in PRODUCERS.items():
        assert len(calls[producer]) == 1, producer
        assert calls[producer][0][1] is (None if producer == "fig3_data" else figures.SMOKE_SIZES), producer
        d = made[item]
        if isinstance(d, ex.ImageRows):
            assert drawn[item] == ("rows", d.rows, d.nrow, d.title) and drawn[item][1] is d.rows
        elif producer == "fig3_data":
            assert drawn[item] == ("delta", d["log"], d["title"])
        elif producer == "fig2_data":
            assert drawn[item] == ("contours", d)
        else:
            assert drawn[item] is d
    # generation figures get their models' manifests (tuned samplers) and the class-Gaussian seeds
    models, manifests, cg = calls["fig4_rows"][0][0]
    assert set(models) == set(ex.FIG4_MODELS) and manifests["at"] == {"name": "at"} and cg == "class-gaussian"


@pytest.mark.parametrize("item", sorted(PRODUCERS))
def test_each_notebook_calls_the_producer_of_its_paper_item(item):
    """The notebook that exports a paper item builds it with the producer `jeat figures` calls, at the
    named sizes, and plots a figure of image rows with the producer's own layout."""
    from pathlib import Path

    from jeat_core import experiments as ex

    number, producer = PRODUCERS[item]
    assert callable(getattr(ex, producer))
    (path,) = (Path(__file__).resolve().parent.parent / "notebooks").glob(f"{number}_*.py")
    src = path.read_text()
    assert f"from jeat_core.experiments import {producer}" in src and f"{producer}(" in src, path.name
    assert f'"{item}"' in src, path.name  # it exports the same file name
    if producer != "fig3_data":
        assert "SIZES = SMOKE_SIZES if SMOKE else PAPER_SIZES" in src and "sizes=SIZES" in src, path.name
    if producer.startswith("fig") and producer.endswith("_rows"):
        var = producer.removesuffix("_rows")
        assert f"plot_image_rows({var}.rows, nrow={var}.nrow, title={var}.title)" in src, path.name


def test_figure_sizes_validate():
    from jeat_core.experiments import FigureSizes

    for bad in ({"per_class": 0}, {"max_steps": 2.5}, {"n_test": True}, {"fig7_classes": 6}):
        with pytest.raises(ValueError):
            FigureSizes(**bad)
    assert FigureSizes(n_train=None).n_train is None

"""Each widget callback, called with non-default values, changes what the explorer shows.

Uses tiny untrained CNNs and real CIFAR-10 test images: the point is the wiring (control ->
compute -> figure), not the numbers.
"""

import pytest
import torch
from conftest import tiny_cnn

from jeat_core.core.sampling import ClassGaussian, GenerationConfig

pytest.importorskip("ipywidgets")


@pytest.fixture(scope="module")
def setup(cifar_test):
    x, y = cifar_test.tensors(16)
    models = {"at": tiny_cnn(0), "jeat": tiny_cnn(1)}
    cg = ClassGaussian(cifar_test.x[:500], cifar_test.y[:500])
    return models, x, y, cg, cifar_test.x[:300]


def _changed(explorer, key: str, value, probe):
    before, png = probe(explorer.last), explorer.png
    explorer.controls[key].value = value  # what a user's slider move does
    after = probe(explorer.last)
    assert explorer.status.value == "", explorer.status.value
    assert png and explorer.png and explorer.png != png, "the figure shown did not change"
    assert explorer.out.outputs[0]["data"]["image/png"]
    return before, after


def _differs(a, b):
    if isinstance(a, torch.Tensor):
        return not torch.equal(a, b)
    return a != b


@pytest.mark.parametrize("key,value", [("model", "jeat"), ("label", 3), ("step_size", 3.0), ("steps", 20),
                                       ("noise", 0.05), ("seed", 4), ("init", "uniform"), ("energy", "ce")])
def test_generation_explorer(setup, key, value):
    from jeat_core.explore.widgets import _generation_summary, generation_explorer

    models, x, y, cg, _ = setup
    e = generation_explorer(models, cg, n_images=2, max_steps=10, model_description="σ", judge=_judge(models))
    before, after = _changed(e, key, value, lambda r: r["x"])
    assert _differs(before, after), key
    # the confidence shown (in the figure, under the images) comes from a classifier that did not
    # generate the images, and says which; the HTML note below repeats none of it (only a broken chain)
    shown = "\n".join(_generation_summary(e.last))
    assert e.last["judge"] != e.last["model"] and e.last["judge"] in shown
    assert "moved L2" in shown and "clipped pixels" in shown
    assert ("chain broken" in e.note.value) == e.last["diag"]["broken"] and "moved L2" not in e.note.value


def _judge(models):
    """Independent scorer for the tests: the other tiny model."""
    return lambda name: next((n, m) for n, m in models.items() if n != name)


def test_generation_explorer_uses_tuned_sampler_and_hides_the_evaluator(setup):
    from jeat_core.explore.widgets import generation_explorer

    models, _, _, cg, _ = setup
    manifests = {"at": {"method": "at"}, "jeat": {"method": "jeat", "sampler": {
        "joint": {"step_size": 0.25, "n_steps": 15, "noise_std": 0.01}}}, "evaluator": {"method": "evaluator"}}
    e = generation_explorer({**models, "evaluator": models["at"]}, cg, manifests=manifests, n_images=2,
                            max_steps=20, judge=_judge(models))
    assert "evaluator" not in e.controls["model"].options
    labels = [o[0] if isinstance(o, tuple) else o for o in e.controls["label"].options]  # (text, value) pairs
    assert {"airplane", "ship", "cat"} <= set(labels), labels  # the label dropdown names the classes
    # `at` has no tuned settings: GenerationConfig's, its K capped at max_steps
    assert not e.last["tuned"] and (e.values()["steps"], e.values()["step_size"]) == (20, GenerationConfig().step_size)
    n = len(e.timings)
    e.controls["model"].value = "jeat"  # its own sampler, in one recomputation
    assert (e.values()["steps"], round(e.values()["noise"], 6), e.values()["step_size"]) == (15, 0.01, 0.25)
    assert e.last["tuned"] and e.last["steps"] == 15 and len(e.timings) == n + 1
    e.controls["steps"].value = 10  # moved off the tuned sampler: the title no longer calls it tuned
    assert not e.last["tuned"] and e.last["steps"] == 10
    # opened on a chosen model, with that model's own sampler; an unknown one is a clear error
    e = generation_explorer(models, cg, manifests=manifests, n_images=2, max_steps=20, judge=_judge(models),
                            model="jeat")
    assert e.values()["model"] == "jeat" and e.last["tuned"] and e.values()["steps"] == 15
    with pytest.raises(ValueError, match="'evaluator' is not among the generating models"):
        generation_explorer({**models, "evaluator": models["at"]}, cg, manifests=manifests, model="evaluator")


def test_chain_diagnostics_flags_a_broken_chain(setup):
    from jeat_core.core.sampling import generate
    from jeat_core.explore.figures import chain_diagnostics

    models, _, _, _, _ = setup
    g = torch.Generator().manual_seed(0)
    seeds = 0.3 + 0.4 * torch.rand(4, 3, 32, 32, generator=g)
    labels = torch.tensor([0, 1, 2, 3])
    descended = generate(models["at"], labels, seeds, GenerationConfig(step_size=0.05, n_steps=3, noise_std=0.0))
    fine = chain_diagnostics(models["at"], labels, seeds, descended)
    noise = chain_diagnostics(models["at"], labels, seeds, torch.randint(0, 2, seeds.shape, generator=g).float())
    assert not fine["broken"] and fine["saturated"] == 0 and fine["energy_after"] < fine["energy_before"]
    assert abs(fine["l2"] - float((descended - seeds).flatten(1).norm(dim=1).mean())) < 1e-6
    assert noise["broken"] and "clipped" in noise["reason"] and noise["saturated"] == 1.0


def test_require_names_the_cell_to_run_first():
    from jeat_core.explore.widgets import require

    require({"models": 1}, "models", cell="the Setup cell")
    with pytest.raises(NameError, match="models not defined yet: run the Setup cell first"):
        require({}, "models", cell="the Setup cell")


@pytest.mark.parametrize("key,value", [("index", 3), ("eps255", 2.0)])
def test_attack_explorer(setup, key, value):
    from jeat_core.explore.widgets import attack_explorer

    models, x, y, _, _ = setup
    e = attack_explorer(models["at"], x, y, n_steps=2)
    before, after = _changed(e, key, value, lambda r: r["images"]["energy"])
    assert _differs(before, after)


@pytest.mark.parametrize("key,value", [("model", "jeat"), ("label", 5), ("quantity", "energy"), ("index", 2),
                                       ("radius", 1.0), ("resolution", 13), ("seed", 3)])
def test_landscape_explorer(setup, key, value):
    """Each control changes the values the figure colours (and so the picture), and the figure shows
    them: its one panel's colour scale spans exactly the new values."""
    import numpy as np

    from jeat_core.explore.figures import contour_values
    from jeat_core.explore.widgets import landscape_explorer

    models, x, y, _, _ = setup
    e = landscape_explorer(models, x, y, resolution=9)

    def shown(r):
        return contour_values(r["data"][r["model"]], r["quantity"])

    before, after = _changed(e, key, value, shown)
    assert before.shape != after.shape or not np.allclose(before, after), key
    assert e.values()[key] == value
    (ax, _cbar) = e.draw(e.last).axes
    cs = ax.collections[0]
    assert cs.norm.vmax == pytest.approx(float(np.abs(after).max()), rel=1e-6) and cs.norm.vmin == -cs.norm.vmax
    if key == "label":  # the label shown is the one chosen, not the image's class (cat)
        assert e.last["label"] == 5 and "label y = dog (true: cat)" in e.draw(e.last)._suptitle.get_text()


def test_landscape_explorer_label_and_colour_reuse_the_slice(setup, monkeypatch):
    """The label and the colour change what is shown without a new forward pass (the slice's logits are
    kept); a new image needs one pass per grid point; the surface follows the colour and the check box."""
    from jeat_core.explore import widgets
    from jeat_core.explore.widgets import landscape_explorer

    models, x, y, _, _ = setup
    calls = []
    real = widgets.logit_grid
    monkeypatch.setattr(widgets, "logit_grid", lambda *a, **k: calls.append(k["resolution"]) or real(*a, **k))
    e = landscape_explorer(models, x, y, resolution=9)
    assert calls == [9, 9]  # built: image 0 of each model
    e.controls["label"].value = 5
    e.controls["quantity"].value = "energy"
    e.controls["model"].value = "jeat"
    assert calls == [9, 9] and e.last["label"] == 5 and e.last["model"] == "jeat"
    assert e.extra_out.outputs[0]["data"]["application/vnd.plotly.v1+json"]["layout"]["scene"]["zaxis"]["title"][
        "text"] == "E(x′, y) − E(x, y)"
    e.controls["index"].value = 4
    assert calls == [9, 9, 9]
    png = e.png
    e.controls["surface"].value = False  # the check box hides the 3-D surface; the figure stays
    assert e.extra_out.outputs == () and e.png == png
    e.controls["surface"].value = True
    assert "application/vnd.plotly.v1+json" in e.extra_out.outputs[0]["data"]


def _text_outside(fig) -> list:
    """The titles and labels of ``fig`` that reach beyond its canvas (what its PNG would cut off)."""
    import matplotlib.text
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    w, h = fig.bbox.width, fig.bbox.height
    out = []
    for t in fig.findobj(matplotlib.text.Text):
        if t.get_visible() and t.get_text().strip():
            box = t.get_window_extent(renderer)
            if box.x0 < -1 or box.x1 > w + 1 or box.y0 < -1 or box.y1 > h + 1:
                out.append((t.get_text(), [round(v) for v in box.extents]))
    return out


@pytest.mark.parametrize("long_title", [False, True])
def test_explorer_figure_text_is_inside_the_figure(setup, long_title):
    """The explorer's PNG is its figure's canvas (no tight bounding box): every title and label must lie
    inside it. The title used to be one long line, cut off on both sides; a long one is wrapped."""
    from jeat_core.explore.figures import plot_contours
    from jeat_core.explore.widgets import landscape_explorer

    models, x, y, _, _ = setup
    e = landscape_explorer(models, x, y, resolution=9)
    e.controls["label"].value = 7
    e.controls["radius"].value = 7.75
    if long_title:
        fig = plot_contours(e.last["data"], fast=True, title="test image 15, E(x, y = automobile) along two random "
                                                             "directions of seed 20 at an L2 radius of 7.75 " * 2)
    else:
        fig = e.draw(e.last)
        assert "label y = horse" in fig._suptitle.get_text()
    assert not _text_outside(fig), _text_outside(fig)


def test_explorer_sends_the_extra_bundle_after_the_figure_in_a_kernel(setup, monkeypatch):
    """In a kernel, a control change shows the figure at once and the Plotly surface from the kernel's
    event loop afterwards; a surface of a setting already replaced is never shown."""
    from jeat_core.explore import explorer
    from jeat_core.explore.widgets import landscape_explorer

    class Loop:  # a kernel's IOLoop: runs nothing until told
        def __init__(self):
            self.pending = []

        def add_callback(self, fn):
            self.pending.append(fn)

        def call_later(self, delay, fn):
            assert delay == explorer.EXTRA_DELAY_S
            self.pending.append(fn)

        def run(self):
            while self.pending:
                self.pending.pop(0)()

    models, x, y, _, _ = setup
    e = landscape_explorer(models, x, y, resolution=9)
    first = e.extra_out.outputs
    loop = Loop()
    monkeypatch.setattr(explorer, "_kernel_loop", lambda: loop)
    png = e.png
    e.controls["index"].value = 1
    assert e.png != png and e.extra_out.outputs == first and loop.pending  # the figure first
    e.controls["index"].value = 2  # changed again before the loop ran
    loop.run()
    title = e.extra_out.outputs[0]["data"]["application/vnd.plotly.v1+json"]["layout"]["title"]["text"]
    assert "test image 2" in title and e.extra_seconds is not None


def test_only_a_change_from_the_browser_defers_the_extra_bundle(monkeypatch):
    """In a kernel, a control moved in the browser (a comm message) defers the Plotly surface; a cell
    that sets a control itself (the static site's galleries) gets it at once."""
    import IPython

    from jeat_core.explore.explorer import _kernel_loop

    class Kernel:
        io_loop = object()
        msg_type = "execute_request"

        def get_parent(self, channel):
            assert channel == "shell"
            return {"header": {"msg_type": self.msg_type}}

    kernel = Kernel()
    monkeypatch.setattr(IPython, "get_ipython", lambda: type("Shell", (), {"kernel": kernel})())
    assert _kernel_loop() is None
    kernel.msg_type = "comm_msg"
    assert _kernel_loop() is Kernel.io_loop
    monkeypatch.setattr(IPython, "get_ipython", lambda: None)  # a script or the tests: no kernel
    assert _kernel_loop() is None


@pytest.mark.parametrize("key,value", [("n_probes", 3), ("n_images", 4)])
def test_fisher_explorer(setup, key, value):
    from jeat_core.explore.widgets import fisher_explorer

    models, x, y, _, _ = setup
    e = fisher_explorer(models, x, y, n_probes=1, n_images=2, max_images=8)
    before, after = _changed(e, key, value, lambda r: [row["JFS"] for row in r["rows"]])
    assert _differs(before, after)
    assert e.last["rows"][0]["n"] == e.controls["n_images"].value


@pytest.mark.parametrize("key,value", [("eps255", 16.0), ("steps", 10)])
def test_robustness_explorer(standard_model, cifar_test, key, value):
    """The accuracies shown are those of the new setting (recomputed independently) and differ
    from the old ones: a trained model on 32 images, ε 2/255 -> 16/255 or 1 -> 10 PGD steps."""
    from jeat_core.explore.widgets import robustness_explorer
    from jeat_core.measure.metrics import robust_accuracy

    x, y = cifar_test.tensors(32)
    e = robustness_explorer({"standard": standard_model}, x, y, eps255=2.0, steps=1)
    before, after = _changed(e, key, value, lambda r: r["rows"]["standard"]["robust_acc"])
    v = e.values()
    direct = robust_accuracy(standard_model, x, y, attack=f"pgd{v['steps']}", eps=v["eps255"] / 255,
                             step_size=v["eps255"] / 255 / 4)
    assert after == direct["robust_acc"]
    assert after < before, (key, before, after)


@pytest.mark.parametrize("key,value", [("model", "jeat"), ("label", 1), ("seed", 2)])
def test_memorisation_explorer(setup, key, value):
    from jeat_core.explore.widgets import memorisation_explorer

    models, _, _, cg, train_x = setup
    e = memorisation_explorer(models, cg, train_x, max_steps=3, k=3)
    before, after = _changed(e, key, value, lambda r: r["x"])
    assert _differs(before, after)
    # the reported neighbours really are the most similar training images
    from jeat_core.explore.figures import ssim

    near = torch.from_numpy(train_x[e.last["idx"].numpy()]).permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(ssim(e.last["x"].expand_as(near), near), e.last["ssim"], atol=1e-4)


def test_bad_setting_is_reported_not_raised(setup):
    from jeat_core.explore.widgets import generation_explorer

    models, _, _, cg, _ = setup
    e = generation_explorer(models, cg, n_images=2, max_steps=2)
    shown = e.last
    e.controls["noise"].value = -1.0  # FloatLogSlider clamps; force a bad value through compute instead
    e.compute = lambda **kw: (_ for _ in ()).throw(ValueError("step size must be positive"))
    e.refresh()
    assert "step size must be positive" in e.status.value and e.last is not None and shown is not None


def test_memorisation_explorer_uses_the_tuned_sampler_like_fig7(setup):
    """Each model generates with its manifest's sampler (K capped at max_steps), as Fig. 7 does."""
    from jeat_core.core.sampling import generate, sampler_for
    from jeat_core.explore.widgets import memorisation_explorer

    models, _, _, cg, train_x = setup
    manifests = {"jeat": {"sampler": {"joint": {"step": "l2", "step_size": 0.5, "n_steps": 4, "noise_std": 0.0}}}}
    e = memorisation_explorer(models, cg, train_x, manifests=manifests, max_steps=3, k=3)
    e.controls["model"].value = "jeat"
    cfg = sampler_for(manifests["jeat"], max_steps=3)
    assert (cfg.step, cfg.n_steps) == ("l2", 3) and "L2 step 0.5, K 3" in e.last["sampler"]
    labels = torch.tensor([e.last["label"]])
    x0 = cg.sample(labels, generator=torch.Generator().manual_seed(0))
    assert torch.equal(e.last["x"], generate(models["jeat"], labels, x0, cfg, seed=0))


@pytest.fixture(scope="module")
def toy_lab():
    from jeat_core.paper.toy2d import ToyLab, ToySettings

    return ToyLab(ToySettings(n_train=256, n_test=64, steps=8, batch=64, buffer=100, log_every=2, resolution=9,
                              n_shown=2, n_paths=2))


@pytest.mark.parametrize("key,value,probe", [
    ("method", "at", lambda r: r["grids"]["marginal"]), ("eps", 0.12, lambda r: r["update"]["x_in"]),
    ("sigma", 0.12, lambda r: r["update"]["x_in"]), ("label", 2, lambda r: r["paths"]),
    ("eta", 1e-4, lambda r: r["paths"]), ("steps", 30, lambda r: r["paths"])])
def test_toy_explorer(toy_lab, key, value, probe):
    """Notebook 00: each control changes what is drawn (σ with the noise method, ε with JEAT)."""
    from jeat_core.explore.widgets import toy_explorer

    e = toy_explorer(toy_lab, method="noise" if key == "sigma" else "jeat", steps=20)
    before, after = _changed(e, key, value, probe)
    assert before.shape != after.shape or _differs(torch.as_tensor(before), torch.as_tensor(after))
    assert e.last["uses"] == toy_lab.key(*(e.values()[k] for k in ("method", "eps", "sigma")))


def test_symlog_ticks_stay_few_and_within_the_data():
    from jeat_core.explore.widgets import symlog_ticks

    ticks = symlog_ticks([-1500, 20, 0.5], 1e-2)
    assert 0.0 in ticks and len(ticks) <= 7 and min(ticks) >= -1500 and max(ticks) <= 20
    assert ticks == sorted(ticks) and -1000.0 in ticks and 10.0 in ticks  # the outer decades survive thinning
    assert symlog_ticks([3, 0.2], 1e-2) == [0.0, 0.01, 0.1, 1.0]
    assert symlog_ticks([0.001], 1e-2) == [0.0]

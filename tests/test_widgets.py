"""Each widget callback, called with non-default values, changes what the explorer shows.

Uses tiny untrained CNNs and real CIFAR-10 test images: the point is the wiring (control ->
compute -> figure), not the numbers.
"""

import pytest
import torch
from conftest import tiny_cnn

from jeat_core.sampling import ClassGaussian

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


@pytest.mark.parametrize("key,value", [("model", "jeat"), ("label", 3), ("log10_step", 0.3), ("steps", 20),
                                       ("noise", 0.05), ("seed", 4), ("init", "uniform"), ("energy", "ce")])
def test_generation_explorer(setup, key, value):
    from jeat_core.widgets import generation_explorer

    models, x, y, cg, _ = setup
    e = generation_explorer(models, cg, n_images=2, steps=10, model_description="σ")
    before, after = _changed(e, key, value, lambda r: r["x"])
    assert _differs(before, after), key


@pytest.mark.parametrize("key,value", [("index", 3), ("eps255", 2.0)])
def test_attack_explorer(setup, key, value):
    from jeat_core.widgets import attack_explorer

    models, x, y, _, _ = setup
    e = attack_explorer(models["at"], x, y, n_steps=2)
    before, after = _changed(e, key, value, lambda r: r["images"]["energy"])
    assert _differs(before, after)


@pytest.mark.parametrize("key,value", [("model", "jeat"), ("index", 2), ("radius", 1.0), ("resolution", 13),
                                       ("seed", 3)])
def test_landscape_explorer(setup, key, value):
    from jeat_core.widgets import landscape_explorer

    models, x, y, _, _ = setup
    e = landscape_explorer(models, x, y, resolution=9)
    before, after = _changed(e, key, value, lambda r: next(iter(r["data"].values()))["grid"])
    assert before.shape != after.shape or _differs(before, after)


@pytest.mark.parametrize("key,value", [("n_probes", 3), ("n_images", 4)])
def test_fisher_explorer(setup, key, value):
    from jeat_core.widgets import fisher_explorer

    models, x, y, _, _ = setup
    e = fisher_explorer(models, x, y, n_probes=1, n_images=2, max_images=8)
    before, after = _changed(e, key, value, lambda r: [row["JFS"] for row in r["rows"]])
    assert _differs(before, after)
    assert e.last["rows"][0]["n"] == e.controls["n_images"].value


@pytest.mark.parametrize("key,value", [("eps255", 16.0), ("steps", 5)])
def test_robustness_explorer(setup, key, value):
    from jeat_core.widgets import robustness_explorer

    models, x, y, _, _ = setup
    e = robustness_explorer(models, x[:8], y[:8], steps=1)
    before, after = _changed(e, key, value, lambda r: (r["eps255"], r["steps"], r["rows"]))
    assert _differs(before, after)


@pytest.mark.parametrize("key,value", [("model", "jeat"), ("label", 1), ("seed", 2)])
def test_memorisation_explorer(setup, key, value):
    from jeat_core.widgets import memorisation_explorer

    models, _, _, cg, train_x = setup
    e = memorisation_explorer(models, cg, train_x, steps=3, k=3)
    before, after = _changed(e, key, value, lambda r: r["x"])
    assert _differs(before, after)
    # the reported neighbours really are the most similar training images
    from jeat_core.figures import ssim

    near = torch.from_numpy(train_x[e.last["idx"].numpy()]).permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(ssim(e.last["x"].expand_as(near), near), e.last["ssim"], atol=1e-4)


def test_bad_setting_is_reported_not_raised(setup):
    from jeat_core.widgets import generation_explorer

    models, _, _, cg, _ = setup
    e = generation_explorer(models, cg, n_images=2, steps=2)
    shown = e.last
    e.controls["noise"].value = -1.0  # FloatLogSlider clamps; force a bad value through compute instead
    e.compute = lambda **kw: (_ for _ in ()).throw(ValueError("step size must be positive"))
    e.refresh()
    assert "step size must be positive" in e.status.value and e.last is not None and shown is not None

"""Notebook 00's 2-D toy task (jeat_core.paper.toy2d): points as one-pixel images through the library's own
training loop, attacks, SGLD and sampler; the lab caches by the settings each method uses."""

import numpy as np
import pytest
import torch

from jeat_core.paper.toy2d import EPS_CHOICES, TOY_CLASSES, TOY_METHODS, ToyLab, ToySettings, toy_config, toy_points

TINY = ToySettings(n_train=256, n_test=64, steps=10, batch=64, buffer=100, log_every=2, resolution=9, n_shown=2,
                   n_paths=3)


@pytest.fixture(scope="module")
def lab():
    return ToyLab(TINY)


def test_toy_points_are_one_pixel_images_in_the_unit_square():
    s = toy_points(300, seed=4)
    assert s.x.dtype == np.uint8 and s.x.shape == (300, 1, 1, 2) and s.y.shape == (300,)
    assert set(np.unique(s.y)) == set(range(len(TOY_CLASSES)))
    assert np.array_equal(toy_points(300, seed=4).x, s.x) and not np.array_equal(toy_points(300, seed=5).x, s.x)


def test_toy_mlp_is_a_registered_smooth_classifier():
    from jeat_core.core.models import MODELS, build_model, check_arch

    assert "toy_mlp" in MODELS and check_arch("toy_mlp", {"hidden": 16, "n_classes": 4}) > 0
    m = build_model("toy_mlp", hidden=16)
    x = torch.rand(5, 2, 1, 1, requires_grad=True)
    (g,) = torch.autograd.grad(m(x)[:, 0].sum(), x)  # SiLU: a smooth energy with a gradient everywhere
    assert m(x).shape == (5, 4) and g.abs().sum() > 0


@pytest.mark.parametrize("method", TOY_METHODS)
def test_every_method_trains_on_the_toy_through_fit(lab, method):
    run = lab.fit(method)
    cfg = run.config
    assert cfg.method == method and cfg.model.name == "toy_mlp" and run.state.step == TINY.steps
    if cfg.uses_attack:
        assert cfg.attack.eps == 0.05
    if cfg.uses_sgld:  # the replay buffer holds chains of the data's shape, drawn from U(0, 1)
        assert run.state.buffer.data.shape == (TINY.buffer, 2, 1, 1)
        assert 0 <= float(run.state.buffer.data.min()) and float(run.state.buffer.data.max()) <= 1
    log = lab.logs[lab.key(method, 0.05, 0.05)]
    assert [r["step"] for r in log] == list(range(0, TINY.steps, TINY.log_every))
    assert all(np.isfinite(r["dthetaE_marginal_mean"]) for r in log)


def test_cifar_buffers_keep_their_shape():
    from jeat_core.train.methods import make_config
    from jeat_core.train.training import build_state

    state = build_state(make_config("jeat", "cpu", sgld=toy_config("jeat", settings=TINY).sgld), torch.device("cpu"), 5)
    assert state.buffer.data.shape == (TINY.buffer, 3, 32, 32)


def test_the_lab_trains_once_per_setting_a_method_uses(lab):
    assert lab.key("standard", 0.02, 0.02) == lab.key("standard", 0.12, 0.12) == ("standard", None, None)
    assert lab.key("at", 0.02, 0.02) == lab.key("at", 0.02, 0.12) != lab.key("at", 0.12, 0.02)
    assert lab.fit("noise", 0.02, 0.05) is lab.fit("noise", 0.12, 0.05)
    with pytest.raises(ValueError, match="unknown method"):
        lab.key("pgd", 0.05, 0.05)


def test_update_measures_the_attack_and_the_update(lab):
    std, at = lab.update("standard"), lab.update("at", eps=EPS_CHOICES[-1])
    assert np.array_equal(std["x_in"], std["x"]) and not np.any(std["joint"]["dx"])  # no attack: Δ_x E = 0
    assert np.abs(at["x_in"] - at["x"]).max() <= EPS_CHOICES[-1] + 1e-6  # an L-inf attack of radius ε
    assert at["joint"]["dx"].mean() > 0  # the CE attack raises E(x, y) (Eq. 14)
    assert np.any(at["joint"]["dtheta"]) and at["negatives"] is None and lab.update("jeat")["negatives"] is not None
    assert at["shown"].sum() == TINY.n_shown * len(TOY_CLASSES)


def test_paths_are_langevin_chains_from_class_gaussian_seeds(lab):
    p = lab.paths("at", 0.05, 0.05, label=1, eta=1e-3, steps=20)
    assert p.shape == (21, TINY.n_paths, 2) and p.min() >= 0 and p.max() <= 1
    assert np.array_equal(lab.paths("at", 0.05, 0.05, label=1, eta=1e-3, steps=0)[0], p[0])  # same seeds
    ce = lab.paths("at", 0.05, 0.05, label=1, eta=1e-3, steps=20, energy="ce")  # Eq. 16
    assert np.array_equal(ce[0], p[0]) and not np.array_equal(ce[-1], p[-1])
    assert lab.distance_to_class(p[0], 1).shape == (TINY.n_paths,)


def test_view_has_what_the_figure_draws(lab):
    from jeat_core.explore.toy_figures import plot_toy2d

    v = lab.view("jeat", label=2, eta=1e-4, steps=10)
    assert v["grids"]["joint"].shape == (len(TOY_CLASSES), TINY.resolution, TINY.resolution)
    assert v["grids"]["marginal"].shape == (TINY.resolution, TINY.resolution)
    logits_e = v["grids"]["joint"]  # E(x) = -logsumexp(-E(x, y)) on the grid (Eq. 12)
    assert np.allclose(-np.log(np.exp(-logits_e).sum(0)), v["grids"]["marginal"], atol=1e-4)
    fig = plot_toy2d(v)
    assert len(fig.axes) == 5 and "jeat" in fig._suptitle.get_text()


def test_warm_trains_each_setting_once(lab):
    rows = lab.warm(("standard", "noise"), eps=(0.05,), sigma=(0.02, 0.05))
    assert [(r["method"], r["σ"]) for r in rows] == [("standard", None), ("noise", 0.02), ("noise", 0.05)]

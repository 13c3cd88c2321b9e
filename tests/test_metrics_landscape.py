"""Fisher scores (Eq. 23/24: closed form on a quadratic, Hutchinson vs exact, no curvature for ReLU
nets) and energy landscapes (model-independent orthonormal directions, grids, slice statistics that
match the audit's flatness)."""

import pytest
import torch

from jeat_core.core.energy import energy_of
from jeat_core.core.landscape import energy_grid, landscape_stats, random_directions
from jeat_core.measure.metrics import fisher_score


def test_fisher_score_quadratic_closed_form():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(5, 5, generator=g)
    a = m @ m.T + torch.eye(5)
    x = torch.randn(64, 5, generator=g)

    def energy(z):
        return 0.5 * torch.einsum("bi,ij,bj->b", z, a, z)

    expected = (0.5 * (x @ a).pow(2).sum(1) - torch.trace(a)).mean()
    assert fisher_score(energy, x) == pytest.approx(float(expected), rel=1e-5)
    # Hutchinson on a quadratic is unbiased; with many probes it is close
    approx = fisher_score(energy, x, exact=False, n_probes=400, generator=g)
    assert approx == pytest.approx(float(expected), rel=0.02)


def test_hutchinson_matches_exact_on_smooth_net():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 32), torch.nn.SiLU(), torch.nn.Linear(32, 10))
    x = torch.rand(16, 3, 4, 4)
    y = torch.randint(0, 10, (16,))
    for kind in ("joint", "marginal"):
        fn = energy_of(net, kind, y)
        exact, per = fisher_score(fn, x, per_example=True)
        assert per.shape == (16,)
        approx = fisher_score(fn, x, exact=False, n_probes=300, generator=torch.Generator().manual_seed(1))
        trace_scale = abs(exact) + 1e-3
        assert abs(approx - exact) / trace_scale < 0.1, (kind, exact, approx)


def test_fisher_score_relu_has_no_curvature():
    """With ReLU, tr(Hess E(x,y)) = 0 almost everywhere: the score is ½‖∇E‖² only."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    fn = energy_of(net, "joint", y)
    xg = x.clone().requires_grad_(True)
    (gr,) = torch.autograd.grad(fn(xg).sum(), xg)
    assert fisher_score(fn, x) == pytest.approx(float(0.5 * gr.pow(2).sum(1).mean()), rel=1e-5)


def test_directions_are_model_independent_and_orthonormal():
    d1, d2 = random_directions((3, 8, 8), seed=7)
    e1, e2 = random_directions((3, 8, 8), seed=7)
    assert torch.equal(d1, e1) and torch.equal(d2, e2)
    assert float(d1.norm()) == pytest.approx(1.0) and float(d2.norm()) == pytest.approx(1.0)
    assert abs(float((d1 * d2).sum())) < 1e-5
    s1, _ = random_directions((3, 8, 8), seed=7, scale="linf")
    assert set(s1.unique().tolist()) == {-1.0, 1.0}


def test_energy_grid_and_stats():
    x = torch.zeros(1, 2, 2)
    d1, d2 = random_directions((1, 2, 2), seed=0)

    def energy(z):  # paraboloid centred at x: min at the centre, E = a² + b²
        return z.flatten(1).pow(2).sum(1)

    a, b, grid = energy_grid(energy, x, d1, d2, radius=1.0, resolution=21, batch_size=50)
    assert grid.shape == (21, 21)
    torch.testing.assert_close(grid, a[:, None] ** 2 + b[None, :] ** 2, atol=1e-5, rtol=0)
    s = landscape_stats(a, b, grid)
    assert s["center_is_min"] and s["center_rank"] == 0.0 and s["center_energy"] == pytest.approx(0.0, abs=1e-6)
    s2 = landscape_stats(a, b, -grid)
    assert not s2["center_is_min"] and s2["center_rank"] > 0.9
    with pytest.raises(ValueError, match="radius must be > 0"):
        energy_grid(energy, x, d1, d2, radius=0)


def test_slice_view_matches_the_energy_grids_and_the_audits_flatness():
    """One forward pass per point gives both Fig. 2 quantities: E(x', y) as energy_grid of the joint
    energy, and Δ log p(y|x') as minus energy_grid of cross-entropy (how the audit's landscape_numbers
    measures it), relative to the centre; flatness_dlogp is the audit's mean over the whole grid."""
    from conftest import tiny_cnn

    from jeat_core.core.landscape import logit_grid, slice_values, slice_view

    model = tiny_cnn(3)
    x = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    d1, d2 = random_directions((3, 32, 32), seed=2)
    a, b, logits = logit_grid(model, x, d1, d2, radius=2.0, resolution=7, batch_size=10)
    assert logits.shape == (7, 7, 10)
    for y in (0, 6):
        view = slice_view(a, b, logits, y)
        _, _, joint = energy_grid(energy_of(model, "joint", torch.tensor([y])), x, d1, d2, radius=2.0, resolution=7)
        _, _, ce = energy_grid(energy_of(model, "ce", torch.tensor([y])), x, d1, d2, radius=2.0, resolution=7)
        logp = -ce
        torch.testing.assert_close(view["grid"], joint, atol=1e-4, rtol=0)
        torch.testing.assert_close(view["dlogp"], logp - logp[3, 3], atol=1e-4, rtol=0)
        assert view["stats"]["flatness_dlogp"] == pytest.approx(float((logp - logp[3, 3]).abs().mean()), abs=1e-5)
        assert view["stats"]["p_center"] == pytest.approx(float(logp[3, 3].exp()), abs=1e-5)
        torch.testing.assert_close(slice_values(view, "energy"), joint - joint[3, 3], atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="unknown quantity"):
        slice_values(view, "logits")

"""Attacks as pure functions: perturbation bounds and ranges, FGSM = one-step PGD, no hidden state changes,
masks, layouts, the closed set of objectives (CE, energy, TRADES' KL), Tab. 1 in miniature and our PGD
against torchattacks' on the same model and seed."""

import pytest
import torch
from conftest import tiny_cnn

from jeat_core.core.attacks import OBJECTIVES, fgsm, fgsm_rs, kl_from, pgd
from jeat_core.core.data import to_float
from jeat_core.core.energy import cross_entropy, joint_energy


@pytest.fixture
def batch(toy):
    return to_float(toy.x[:32]), torch.from_numpy(toy.y[:32])


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("l2", 0.5)])
@pytest.mark.parametrize("objective", ["ce", "energy"])
def test_bounds_range_and_ascent(batch, norm, eps, objective):
    model = tiny_cnn()
    x, y = batch
    xa = pgd(model, x, y, eps=eps, step_size=eps / 4, n_steps=10, norm=norm, objective=objective,
             generator=torch.Generator().manual_seed(0))
    d = (xa - x).flatten(1)
    size = d.abs().max(1).values if norm == "linf" else d.norm(dim=1)
    assert (size <= eps + 1e-5).all()
    assert xa.min() >= 0 and xa.max() <= 1
    obj = cross_entropy if objective == "ce" else joint_energy
    with torch.no_grad():
        assert obj(model(xa), y).mean() > obj(model(x), y).mean()


def test_fgsm_is_one_step_pgd(batch):
    model = tiny_cnn()
    x, y = batch
    for objective in ("ce", "energy"):
        a = fgsm(model, x, y, eps=8 / 255, objective=objective)
        b = pgd(model, x, y, eps=8 / 255, step_size=8 / 255, n_steps=1, random_start=False, objective=objective)
        torch.testing.assert_close(a, b)


def test_fgsm_rs_bounds_and_targeted(batch):
    model = tiny_cnn()
    x, y = batch
    for grad_at in ("perturbed", "clean"):
        xa = fgsm_rs(model, x, y, eps=8 / 255, grad_at=grad_at, generator=torch.Generator().manual_seed(1))
        assert (xa - x).abs().max() <= 8 / 255 + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    target = (y + 1) % 10
    xt = pgd(model, x, target, eps=0.1, step_size=0.02, n_steps=10, targeted=True, objective="energy")
    with torch.no_grad():
        assert joint_energy(model(xt), target).mean() < joint_energy(model(x), target).mean()


def test_no_hidden_state_changes(batch):
    model = tiny_cnn().train()
    x, y = batch
    pgd(model, x, y, eps=8 / 255, step_size=2 / 255, n_steps=2)
    assert model.training and all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("kw,msg", [
    (dict(eps=-0.1), "eps must be >= 0"),
    (dict(eps=float("nan")), "eps must be a finite number"),
    (dict(n_steps=-1), "n_steps must be an integer >= 0"),
    (dict(norm="l3"), "unknown norm 'l3'"),
    (dict(objective="hinge"), "unknown objective 'hinge'"),
])
def test_bad_arguments(batch, kw, msg):
    x, y = batch
    args = dict(eps=8 / 255, step_size=2 / 255, n_steps=1) | kw
    with pytest.raises(ValueError) as e:
        pgd(tiny_cnn(), x, y, **args)
    assert msg in str(e.value)


def test_mask_attacks_only_the_selected_examples_with_the_full_attacks_iterates(batch):
    """pgd(mask=...) draws the random start for the whole batch, so each attacked example ends where
    the unmasked attack takes it; the others come back unchanged (and robust_accuracy, which
    attacks only the clean-correct examples, counts exactly what the full attack counts)."""
    from jeat_core.measure.metrics import robust_accuracy

    model = tiny_cnn()
    x, y = batch
    kw = dict(eps=8 / 255, step_size=2 / 255, n_steps=5)
    full = pgd(model, x, y, generator=torch.Generator().manual_seed(0), **kw)
    mask = torch.arange(len(x)) % 3 == 0
    part = pgd(model, x, y, generator=torch.Generator().manual_seed(0), mask=mask, **kw)
    torch.testing.assert_close(part[mask], full[mask], atol=1e-6, rtol=0)
    assert torch.equal(part[~mask], x[~mask])
    assert torch.equal(pgd(model, x, y, mask=torch.zeros(len(x), dtype=torch.bool), **kw), x)

    with torch.no_grad():
        ok = model(x).argmax(1) == y
        expected = int((ok & (model(full).argmax(1) == y)).sum())
    r = robust_accuracy(model, x, y, attack="pgd5", batch_size=len(x), seed=0)
    assert r["robust_acc"] == expected / len(x)
    for bad in (mask.long(), mask[:5], [True] * len(x)):
        with pytest.raises(ValueError, match="mask must be a bool tensor of shape"):
            pgd(model, x, y, mask=bad, **kw)


def test_labels_are_checked_for_the_whole_batch_even_when_masked(batch):
    """A label out of the model's range is an error even for examples that are not attacked (a label
    of 10 on a 10-class model is never classified correctly, so robust_accuracy never attacks it)."""
    from jeat_core.measure.metrics import robust_accuracy

    model = tiny_cnn()
    x, y = batch
    bad = y.clone()
    bad[3] = 10
    mask = torch.ones(len(x), dtype=torch.bool)
    mask[3] = False
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
        pgd(model, x, bad, eps=8 / 255, step_size=2 / 255, n_steps=1, mask=mask)
    for attack in ("pgd1", "none"):
        with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
            robust_accuracy(model, x, bad, attack=attack)


def test_result_keeps_the_layout_of_x(batch):
    model = tiny_cnn()
    x, y = batch
    kw = dict(eps=8 / 255, step_size=2 / 255, n_steps=1)
    for xx in (x, x.contiguous(memory_format=torch.channels_last)):
        cl = not xx.is_contiguous()
        for mask in (None, torch.arange(len(x)) % 2 == 0, torch.zeros(len(x), dtype=torch.bool)):
            for channels_last in (None, True, False):
                xa = pgd(model, xx, y, mask=mask, channels_last=channels_last, **kw)
                assert xa.is_contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)


def test_channels_last_changes_only_the_layout(batch):
    """The default channels-last iteration gives the contiguous-layout attack's images (up to float
    rounding) and returns them contiguous."""
    model = tiny_cnn()
    x, y = batch
    kw = dict(eps=8 / 255, step_size=2 / 255, n_steps=5)
    a = pgd(model, x, y, generator=torch.Generator().manual_seed(0), **kw)  # the CPU default: channels-last
    b = pgd(model, x, y, generator=torch.Generator().manual_seed(0), channels_last=False, **kw)
    assert a.is_contiguous() and b.is_contiguous()
    # a sign(∇) of a near-zero gradient may flip under rounding: allow a handful of pixels to differ
    assert ((a - b).abs() > 1e-5).float().mean() < 1e-3


def test_bad_inputs(batch):
    x, y = batch
    m = tiny_cnn()
    cases = [
        (lambda: pgd(m, x * 2, y, eps=0.1, step_size=0.1, n_steps=1), "values in [0, 1]"),
        (lambda: pgd(m, x[0], y, eps=0.1, step_size=0.1, n_steps=1), "shape (B, C, H, W)"),
        (lambda: pgd(m, x, y[:3], eps=0.1, step_size=0.1, n_steps=1), "y must have shape (32,)"),
        (lambda: pgd(m, x, y + 10, eps=0.1, step_size=0.1, n_steps=1), "labels must lie in [0, 9]"),
        (lambda: pgd(m, x, y - 100, eps=0.1, step_size=0.1, n_steps=1), "labels must be >= 0"),
        (lambda: fgsm(m, x, y.float(), eps=0.1), "y must be integers (class labels)"),
    ]
    for call, msg in cases:
        with pytest.raises(ValueError) as e:
            call()
        assert msg in str(e.value)


@pytest.mark.slow
def test_table1_in_miniature(standard_model, cifar_test):
    """Tab. 1: on a standard model both the CE attack (Eq. 14) and the energy attack (Eq. 18)
    at 8/255 drive accuracy close to 0 (200 images: the shipped standard model keeps none of 1,000)."""
    x, y = cifar_test.tensors(200)
    from jeat_core.cli import evaluate

    clean = evaluate(standard_model, x, y, attack="none")["clean_acc"]
    assert clean > 0.4, f"the test model is undertrained ({clean:.3f})"
    for attack in ("pgd20", "energy-pgd20"):
        r = evaluate(standard_model, x, y, attack=attack)["robust_acc"]
        assert r < 0.05, f"{attack}: robust accuracy {r:.3f} on a standard model"


@pytest.mark.slow
def test_pgd_agrees_with_torchattacks(standard_model, cifar_test):
    """Our PGD and torchattacks' PGD give the same adversarial accuracy (within 1 point on 500
    real test images) at a radius where accuracy is neither 0 nor clean (on the shipped standard
    model they agree image for image on the first 1,000)."""
    import torchattacks

    x, y = cifar_test.tensors(500)
    eps, alpha, steps = 1 / 255, 0.25 / 255, 10
    torch.manual_seed(0)
    peer = torchattacks.PGD(standard_model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    ours_correct = peer_correct = 0
    g = torch.Generator().manual_seed(0)
    for i in range(0, len(x), 250):
        xb, yb = x[i:i + 250], y[i:i + 250]
        xo = pgd(standard_model, xb, yb, eps=eps, step_size=alpha, n_steps=steps, generator=g)
        xp = peer(xb, yb)
        with torch.no_grad():
            ours_correct += int((standard_model(xo).argmax(1) == yb).sum())
            peer_correct += int((standard_model(xp).argmax(1) == yb).sum())
    ours, theirs = ours_correct / len(x), peer_correct / len(x)
    with torch.no_grad():
        clean = float((standard_model(x).argmax(1) == y).float().mean())
    assert 0.05 < ours < clean - 0.05, f"radius not informative: clean {clean:.3f}, adversarial {ours:.3f}"
    assert abs(ours - theirs) <= 0.01, f"ours {ours:.3f} vs torchattacks {theirs:.3f}"


def test_objectives_are_a_closed_set(batch):
    """Every name of the closed set runs; any other is an error (never a silent fallback)."""
    x, y = batch
    model = tiny_cnn()
    ref = {"kl": {"reference": model(x).detach()}}
    for name in OBJECTIVES:
        pgd(model, x, y, eps=8 / 255, step_size=2 / 255, n_steps=1, objective=name, **ref.get(name, {}))
    for bad in ("hinge", "KL", "", None):
        with pytest.raises(ValueError, match="unknown objective"):
            pgd(model, x, y, eps=8 / 255, step_size=2 / 255, n_steps=1, objective=bad)


def test_kl_objective_is_the_kl_divergence_and_pgd_ascends_it(batch):
    import torch.nn.functional as F

    x, y = batch
    net = tiny_cnn()

    def model(z):  # logits of a trained scale (an untrained tiny net's KLs are at float rounding)
        return 50 * net(z)

    with torch.no_grad():
        clean = model(x)
    other = clean + torch.randn_like(clean)
    want = F.kl_div(F.log_softmax(other, 1), F.log_softmax(clean, 1), log_target=True, reduction="none").sum(1)
    assert torch.allclose(kl_from(clean)(other, y), want, atol=1e-5)
    assert torch.allclose(kl_from(clean)(clean, y), torch.zeros(len(x)), atol=1e-6)  # 0 at the clean point
    xa = pgd(model, x, y, eps=8 / 255, step_size=2 / 255, n_steps=10, objective="kl", reference=clean,
             generator=torch.Generator().manual_seed(0))
    x0 = pgd(model, x, y, eps=8 / 255, step_size=2 / 255, n_steps=0, objective="kl", reference=clean,
             generator=torch.Generator().manual_seed(0))  # the random start alone
    with torch.no_grad():
        assert kl_from(clean)(model(xa), y).mean() > kl_from(clean)(model(x0), y).mean() > 0


def test_kl_objective_needs_its_reference(batch):
    x, y = batch
    model = tiny_cnn()
    kw = dict(eps=8 / 255, step_size=2 / 255, n_steps=1)
    with pytest.raises(ValueError, match="needs reference"):
        pgd(model, x, y, objective="kl", **kw)
    with pytest.raises(ValueError, match="only used by the kl objective"):
        pgd(model, x, y, objective="ce", reference=model(x).detach(), **kw)
    with pytest.raises(ValueError, match=r"\(B, K\) clean logits"):
        pgd(model, x, y, objective="kl", reference=model(x[:3]).detach(), **kw)
    with pytest.raises(ValueError, match="gradient at the clean point is 0"):
        fgsm_rs(model, x, y, eps=8 / 255, objective="kl", reference=model(x).detach(), grad_at="clean")

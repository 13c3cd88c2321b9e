"""Generation metrics with uncertainty, verdict rules and both Fisher-score conventions: known answers."""

import math

import pytest
import torch
from conftest import tiny_cnn

from jeat_core.core.energy import energy_of
from jeat_core.core.sampling import (
    GenerationConfig,
    generate,
    generate_snapshots,
    generation_energy,
    langevin,
    sampler_for,
)
from jeat_core.measure.metrics import KIDReference, fisher_score, fisher_scores_piecewise_linear, kid, robust_accuracy
from jeat_core.measure.stats import bootstrap_ci, proportion_difference_ci, wilson_interval
from jeat_core.measure.verdict_rules import combine, equivalence_verdict, verdict_from_ci


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    g = torch.Generator().manual_seed(0)
    same, shifted = [], []
    for _ in range(30):
        a, b = torch.randn(100, 8, generator=g), torch.randn(100, 8, generator=g)
        same.append(kid(a, b))
        shifted.append(kid(a + 0.5, b))
    same_t = torch.tensor(same)
    se = same_t.std() / math.sqrt(len(same))
    assert abs(float(same_t.mean())) < 3 * float(se)  # unbiased: mean over repeats ~ 0
    assert min(shifted) > 0 and sum(shifted) / len(shifted) > 10 * float(se)
    # a set against itself: the unbiased estimate drops the diagonal from the within-set terms only, so it
    # is −O(1/n) and vanishes as n grows
    small, large = torch.randn(200, 8, generator=g), torch.randn(3000, 8, generator=g)
    assert abs(kid(large, large)) < abs(kid(small, small)) / 5
    assert abs(kid(large, large)) < 0.01 * kid(large + 0.5, large)


def test_a_reference_shared_by_many_sets_gives_the_same_numbers_computed_once():
    """KID's within-reference term and PRDC's real radii, computed once and passed in (the rulers cache
    them per reference), give bit-identical numbers to recomputing them for every set."""
    from jeat_core.measure.gen_eval import knn_radii, prdc
    from jeat_core.measure.metrics import self_kernel_mean

    g = torch.Generator().manual_seed(0)
    real = torch.randn(300, 16, generator=g)
    yy, radii = self_kernel_mean(real), knn_radii(real, 5)
    for shift in (0.0, 0.3, 1.0):
        fake = torch.randn(80, 16, generator=g) + shift
        assert kid(fake, real, yy=yy) == kid(fake, real)
        assert prdc(real, fake, real_radii=radii) == prdc(real, fake)


def test_bootstrap_interval_covers_the_true_mean():
    g = torch.Generator().manual_seed(1)
    hits = 0
    for r in range(100):
        v = torch.randn(60, generator=g, dtype=torch.float64) + 2.0
        lo, hi = bootstrap_ci(v, n_boot=300, seed=r)
        hits += lo <= 2.0 <= hi
    assert hits >= 85  # nominal 95%; the percentile bootstrap under-covers a little at n = 60


def test_wilson_and_newcombe_intervals():
    lo, hi = wilson_interval(50, 100)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(0.19, abs=0.01)
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0) and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    lo, hi = proportion_difference_ci(60, 100, 40, 100)
    assert 0 < lo < 0.2 < hi
    lo, hi = proportion_difference_ci(50, 100, 50, 100)
    assert lo < 0 < hi


def test_kid_reference_difference_prefers_the_set_from_the_reference_distribution():
    g = torch.Generator().manual_seed(2)
    ref = KIDReference(torch.randn(400, 8, generator=g), n_boot=100)
    good, bad = torch.randn(200, 8, generator=g), torch.randn(200, 8, generator=g) * 1.5 + 0.3
    d = ref.difference(good, bad)
    assert d["ci"][1] < 0 and d["ci"][0] <= d["diff"] <= d["ci"][1]
    s = ref.score(good)
    assert s["kid_ci"][0] <= s["kid"] <= s["kid_ci"][1] and s["n"] == 200 and s["fid"] >= 0


def test_verdicts_from_intervals():
    assert verdict_from_ci((-0.3, -0.1), -1) == "reproduced"
    assert verdict_from_ci((0.1, 0.3), -1) == "not reproduced"
    assert verdict_from_ci((-0.1, 0.2), -1) == "inconclusive"
    assert verdict_from_ci((0.15, 0.3), 1, null=0.1) == "reproduced"
    assert verdict_from_ci((0.05, 0.3), 1, null=0.1) == "inconclusive"
    assert combine(["reproduced", "reproduced"]) == "reproduced"
    assert combine(["reproduced", "inconclusive"]) == "inconclusive"
    assert combine(["inconclusive", "not reproduced"]) == "not reproduced"
    assert equivalence_verdict((-0.01, 0.02), 0.05) == "reproduced"
    assert equivalence_verdict((0.06, 0.2), 0.05) == "not reproduced"
    assert equivalence_verdict((0.0, 0.08), 0.05) == "inconclusive"
    with pytest.raises(ValueError):
        verdict_from_ci((0, 1), 0)


def test_piecewise_linear_fisher_equals_exact_double_backprop_on_a_relu_net():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
                              torch.nn.Linear(16, 4)).double()
    x, y = torch.randn(7, 6, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0, 1, 2])
    jfs, mfs = fisher_scores_piecewise_linear(net, x, y)
    _, jfs_exact = fisher_score(energy_of(net, "joint", y), x, exact=True, per_example=True)
    _, mfs_exact = fisher_score(energy_of(net, "marginal"), x, exact=True, per_example=True)
    assert torch.allclose(jfs, jfs_exact, rtol=1e-9) and torch.allclose(mfs, mfs_exact, rtol=1e-9)
    assert (jfs >= 0).all() and (mfs >= 0).all()
    # with a smooth activation the conventions differ (the true Hessian is no longer 0)
    smooth = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.SiLU(), torch.nn.Linear(16, 4)).double()
    j2, _ = fisher_scores_piecewise_linear(smooth, x, y)
    _, j2_exact = fisher_score(energy_of(smooth, "joint", y), x, exact=True, per_example=True)
    assert not torch.allclose(j2, j2_exact)


def test_robust_accuracy_never_exceeds_clean_accuracy(toy):
    x, y = toy.tensors(128)
    for seed in range(3):
        r = robust_accuracy(tiny_cnn(seed), x, y, attack="pgd3", seed=seed)
        assert r["robust_acc"] <= r["clean_acc"]
        assert r["robust_ci"][0] <= r["robust_acc"] <= r["robust_ci"][1] and r["n"] == 128


def test_attack_names_say_what_runs(toy):
    """The attack's name carries its step count and is the result's label (`pgd3` ran 3 steps):
    a 3-step attack is never recorded as PGD-20, and a name outside the grammar is an error."""
    from jeat_core.core.attacks import pgd
    from jeat_core.measure.metrics import ATTACKS, parse_attack

    assert [parse_attack(a) for a in ATTACKS][:4] == [("none", 0, 1), ("ce", 1, 1), ("ce", 20, 1), ("energy", 20, 1)]
    assert parse_attack("pgd3") == ("ce", 3, 1) and parse_attack("energy-pgd7") == ("energy", 7, 1)
    for bad in ("pgd", "pgd0", "pgd-3", "cw", "PGD20", "energy-fgsm", 20):
        with pytest.raises(ValueError, match="unknown attack"):
            parse_attack(bad)
    x, y = toy.tensors(32)
    model = tiny_cnn(0)
    r = robust_accuracy(model, x, y, attack="pgd3", batch_size=len(x))
    assert r["attack"] == "pgd3"
    with torch.no_grad():
        ok = model(x).argmax(1) == y
    g = torch.Generator().manual_seed(0)  # robust_accuracy's seed 0, one batch
    xa = pgd(model, x, y, eps=8 / 255, step_size=2 / 255, n_steps=3, generator=g, mask=ok)
    with torch.no_grad():
        assert r["robust_acc"] == int((ok & (model(xa).argmax(1) == y)).sum()) / len(x)


def test_generate_matches_langevin_and_snapshots_share_one_chain():
    m = tiny_cnn(0)
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    cfg = GenerationConfig(step_size=0.5, n_steps=6, noise_std=0.01)
    out = generate(m, y, x, cfg, seed=3)
    ref = langevin(generation_energy(m, y, "joint"), x, step_size=0.5, n_steps=6, noise_std=0.01, clamp=(0, 1),
                   generator=torch.Generator().manual_seed(3))
    assert torch.equal(out, ref)
    snaps = generate_snapshots(m, y, x, cfg, at=(0, 3, 6), seed=3)
    assert torch.equal(snaps[6], out) and torch.equal(snaps[0], x) and set(snaps) == {0, 3, 6}
    l2 = generate(m, y, x, GenerationConfig(step="l2", step_size=0.1, n_steps=1, noise_std=0.0))
    moved = (l2 - x).flatten(1).norm(dim=1)
    assert (moved <= 0.1 + 1e-5).all() and (moved > 0).any()  # a normalised step moves at most η (clamped)


def test_generation_config_validates_and_reads_the_manifest():
    for bad in [dict(energy="x"), dict(step="sgd"), dict(step_size=-1.0), dict(step_size=float("nan")),
                dict(n_steps=-1), dict(noise_std=-0.1)]:
        with pytest.raises(ValueError):
            GenerationConfig(**bad)
    assert sampler_for({}) == GenerationConfig()
    man = {"sampler": {"joint": {"step": "l2", "step_size": 0.5, "n_steps": 20, "noise_std": 0.0, "grid": []}}}
    assert sampler_for(man, "joint") == GenerationConfig(step="l2", step_size=0.5, n_steps=20, noise_std=0.0)
    assert sampler_for(man, "ce") == GenerationConfig(energy="ce")
    assert sampler_for(man, "joint", max_steps=5).n_steps == 5 and sampler_for(man, max_steps=50).n_steps == 20
    assert sampler_for(None, max_steps=7) == GenerationConfig(n_steps=7)  # the defaults, K capped

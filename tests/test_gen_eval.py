"""Known answers for the ruler-independent generation metrics (jeat_core.measure.gen_eval)."""

import pytest
import torch

from jeat_core.measure.gen_eval import (
    Comparison,
    Standardizer,
    claim_parts,
    fid_difference,
    holm_levels,
    independent_kid_difference,
    kernel_argument,
    kid_difference,
    kid_point,
    prdc,
)
from jeat_core.measure.verdict_rules import LEAN_AGAINST, LEAN_TOWARD, ONE_RUN, image_level_verdict, part_verdict


def gauss(n, d=8, shift=0.0, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def test_standardised_kid_ignores_any_per_dimension_affine_change():
    real, fake = gauss(300, seed=1), gauss(200, shift=0.3, seed=2)
    scale = torch.linspace(0.1, 30, 8, dtype=torch.float64)
    shift = torch.linspace(-50, 5, 8, dtype=torch.float64)
    before = kid_point(Standardizer(real)(fake), Standardizer(real)(real))
    real2, fake2 = real * scale + shift, fake * scale + shift
    after = kid_point(Standardizer(real2)(fake2), Standardizer(real2)(real2))
    assert after == pytest.approx(before, rel=1e-9, abs=1e-12)
    assert abs(kid_point(fake2, real2) - kid_point(fake, real)) > 10 * abs(before)  # raw KID is not invariant
    assert abs(kernel_argument(Standardizer(real2)(real2))) < 0.1 < kernel_argument(real2 + 3)


def test_paired_interval_is_narrower_when_the_sets_share_their_seeds():
    """Two sets generated from the same seeds (image i of both starts at z_i) differ by a small
    shift: pairing removes the seed variance they share; independent resampling keeps it."""
    real = gauss(400, seed=0)
    z = 3 * gauss(300, seed=1)  # the seeds spread the sets widely: the variance pairing removes
    fa = z + 0.05 * gauss(300, seed=2)
    fb = z + 0.25 + 0.05 * gauss(300, seed=3)
    paired = kid_difference([fa], [fb], real, space="toy", n_boot=600)
    indep = independent_kid_difference(fa, fb, real, n_boot=600)
    width = lambda c: c.ci()[1] - c.ci()[0]  # noqa: E731
    assert paired.diff == pytest.approx(indep.diff, rel=1e-9)
    assert width(paired) < 0.7 * width(indep)
    assert paired.ci()[1] < 0 < indep.ci()[1]  # a (unshifted) is closer: decided once paired, not before
    fid = fid_difference([fa], [fb], real, space="toy", n_boot=60)
    assert fid.diff < 0 and fid.n_boot == 60


def test_two_level_bootstrap_adds_the_training_seed_variance():
    real = gauss(300, seed=0)
    z = gauss(200, seed=1)
    runs_a = [z + s + 0.05 * gauss(200, seed=10 + i) for i, s in enumerate((0.0, 0.3, -0.3))]
    runs_b = [z + 0.05 + 0.05 * gauss(200, seed=20 + i) for i in range(3)]
    one = kid_difference(runs_a[:1], runs_b[:1], real, space="toy", n_boot=400)
    three = kid_difference(runs_a, runs_b, real, space="toy", n_boot=400)
    assert three.training_seeds == 3 and one.training_seeds == 1
    assert (three.ci()[1] - three.ci()[0]) > 2 * (one.ci()[1] - one.ci()[0])


def test_prdc_on_gaussians_with_known_overlap():
    real = gauss(600, d=4, seed=0)
    same = prdc(real, gauss(600, d=4, seed=1))
    assert same["precision"] > 0.8 and same["recall"] > 0.8 and 0.8 < same["density"] < 1.2
    assert same["coverage"] > 0.9
    far = prdc(real, gauss(600, d=4, shift=20.0, seed=2))
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0, "k": 5}
    narrow = prdc(real, 0.2 * gauss(600, d=4, seed=3))  # all fakes in the bulk: precise, low recall/coverage
    assert narrow["precision"] > 0.95 and narrow["recall"] < 0.3 and narrow["coverage"] < 0.5
    assert narrow["density"] > same["density"]


def rec(metric, lo, hi, runs=5):
    return {"metric": metric, "ci": [lo, hi], "training_seeds": runs}


@pytest.mark.parametrize("table,direction,want", [
    ([rec("kid", -3, -1), rec("kid", -2, 1), rec("fid", -9, -2)], "a<b", "reproduced"),
    ([rec("kid", -3, -1), rec("kid", 0.5, 2)], "a<b", "depends on the ruler"),
    ([rec("kid", 1, 3), rec("kid", -0.5, 2), rec("fid", 2, 5)], "a<b", "not reproduced"),
    ([rec("kid", 1, 3), rec("fid", -5, -1)], "a<b", "depends on the ruler"),
    ([rec("kid", -1, 3), rec("fid", -5, -1)], "a<b", LEAN_TOWARD),  # primary undecided, others agree
    ([rec("kid", -3, 1), rec("kid", 1, 2), rec("fid", 2, 5)], "a<b", LEAN_AGAINST),  # others all against
    ([rec("kid", -1, 3), rec("kid", -5, -1), rec("fid", 1, 2)], "a<b", "depends on the ruler"),
    ([rec("kid", 1, 3)], "a>b", "reproduced"),
    ([rec("kid", -1, 1)], "a>b", "inconclusive"),
])
def test_the_verdict_rule_on_hand_made_tables(table, direction, want):
    assert part_verdict(table, direction) == want


def test_one_run_per_side_gets_no_verdict_over_runs():
    """A part whose primary comparison has one run on a side is not decided over runs, whatever its
    intervals; what its one run per side shows is kept as the image-level verdict."""
    table = [rec("kid", -3, -1, runs=1), rec("fid", -9, -2, runs=1)]
    assert part_verdict(table, "a<b") == ONE_RUN
    assert image_level_verdict(table, "a<b") == "reproduced"


def test_verdict_rule_refuses_bad_input():
    with pytest.raises(ValueError, match="paper_direction"):
        part_verdict([rec("kid", 1, 2)], "a=b")
    with pytest.raises(ValueError, match="KID comparison"):
        part_verdict([rec("fid", 1, 2)], "a<b")


def test_holm_levels():
    assert holm_levels([0.001, 0.04, 0.2]) == pytest.approx([1 - 0.05 / 3, 1 - 0.05 / 2, 1 - 0.05 / 2])
    assert holm_levels([0.01, 0.02]) == pytest.approx([1 - 0.05 / 2, 0.95])
    assert holm_levels([0.5]) == pytest.approx([0.95])


def test_claim_parts_apply_holm_before_the_rule():
    """Two parts whose 95% intervals barely exclude 0 (p ≈ 0.035 each) beside a strong one: Holm tests
    the second smallest p at α/2 = 0.025, stops there, and both weak parts are inconclusive."""
    g = torch.Generator().manual_seed(0)

    def cmp(mean, sd):
        return Comparison("s", "kid", mean, mean + sd * torch.randn(8000, generator=g, dtype=torch.float64), 10)

    strong, weak1, weak2 = cmp(-1.0, 0.1), cmp(-0.2, 0.095), cmp(-0.2, 0.095)
    assert weak1.ci(0.95)[1] < 0 and 0.025 < weak1.p_value() < 0.05  # excludes 0 on its own
    parts = claim_parts([{"name": n, "a": "p", "b": n, "paper_direction": "a<b", "comparisons": [c]}
                         for n, c in (("x", strong), ("y", weak1), ("z", weak2))])
    assert [p["image_level_verdict"] for p in parts] == ["reproduced", "inconclusive", "inconclusive"]
    assert [p["verdict"] for p in parts] == [ONE_RUN] * 3  # one run per side: no verdict over runs
    assert [p["comparisons"][0]["ci_level"] for p in parts] == pytest.approx([1 - 0.05 / 3, 0.975, 0.975])
    assert all(image_level_verdict(p["comparisons"], "a<b") == p["image_level_verdict"] for p in parts)


def test_run_level_comparisons_decide_with_welch_and_holm():
    """With five runs a side a comparison's interval is Welch's t-interval on the run values (not the image
    bootstrap), at its Holm level; a paired comparison (one set of runs measured two ways) is a paired t."""
    from scipy import stats as st

    a, b = (0.19, 0.20, 0.18, 0.21, 0.19), (0.25, 0.22, 0.27, 0.24, 0.26)
    c = Comparison("s", "kid", 0.0, torch.zeros(10), 10, training_seeds=5, points_a=a, points_b=b)
    ref = st.ttest_ind(a, b, equal_var=False)
    assert c.p_value() == pytest.approx(ref.pvalue) and c.ci(0.95) == pytest.approx(tuple(ref.confidence_interval()))
    rec = c.record()
    assert rec["interval"] == "Welch t on run means" and rec["runs_a"] == list(a) and rec["df"] < 8
    weak = Comparison("s", "kid", 0.0, torch.zeros(10), 10, training_seeds=5, points_a=a,
                      points_b=tuple(v + 0.012 for v in a[1:] + a[:1]))
    parts = claim_parts([{"name": n, "a": "p", "b": n, "paper_direction": "a<b", "comparisons": [x]}
                         for n, x in (("x", c), ("y", weak))])
    assert parts[0]["verdict"] == "reproduced" and parts[0]["comparisons"][0]["ci_level"] == pytest.approx(0.975)
    pc = Comparison("s", "kid", 0.0, torch.zeros(10), 10, training_seeds=5, points_a=a, points_b=b,
                    run_pairing="paired")
    assert pc.p_value() == pytest.approx(st.ttest_rel(a, b).pvalue)

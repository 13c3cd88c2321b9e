"""Protects the run-level inference of the method comparisons (jeat_core.measure.stats, docs/evaluation.md,
*Run-level inference*): the intervals keep their coverage at the paper's five runs and at three, across
run/image variance ratios spanning the measured ones, where the earlier percentile two-level bootstrap
does not; the t-intervals agree with scipy's and refuse one run per side."""

import numpy as np
import pytest
import torch
from scipy import stats as st

from jeat_core.measure import stats
from jeat_core.measure.stats import resampled_run_means

# (sd_run, sd_image) per side, in primary-KID units: the measured JEAT (run SD ≈ 0.002) and AT
# (≈ 0.023) runs with a per-run image SE ≈ 0.007, and ratios run/image from 0.1 to 10 on both sides
SETTINGS = [
    ((0.002, 0.023), (0.007, 0.007)),   # as measured: one side image-dominated, the other run-dominated
    ((0.023, 0.023), (0.007, 0.007)),   # both run-dominated (ratio ≈ 3)
    ((0.0007, 0.0007), (0.007, 0.007)),  # both image-dominated (ratio 0.1)
    ((0.07, 0.0007), (0.007, 0.007)),   # ratio 10 against 0.1
]


def percentile_two_level(a, b, sd_image, g, level, n_boot=1000):
    """The earlier scheme: each run's image-bootstrap replicates around its value, the runs resampled
    with replacement per replicate (metrics.resampled_run_means), a percentile interval."""
    tg = torch.Generator().manual_seed(int(g.integers(1 << 31)))
    reps = []
    for v, sd in ((a, sd_image[0]), (b, sd_image[1])):
        per_run = torch.as_tensor(v)[:, None] + sd * torch.randn(len(v), n_boot, generator=tg, dtype=torch.float64)
        reps.append(resampled_run_means(per_run, tg))
    d = (reps[0] - reps[1]).numpy()
    return tuple(np.quantile(d, [(1 - level) / 2, (1 + level) / 2]))


@pytest.mark.parametrize("runs", [3, 5])
@pytest.mark.parametrize("sd_run,sd_image", SETTINGS)
def test_run_level_intervals_keep_their_coverage(runs, sd_run, sd_image):
    cov = stats.coverage(stats.t_scheme, runs=runs, sd_run=sd_run, sd_image=sd_image, trials=3000)
    assert cov >= 0.93, f"Welch coverage {cov:.3f} at R={runs}, sd_run={sd_run}, sd_image={sd_image}"


def test_the_percentile_two_level_bootstrap_under_covers_at_three_runs():
    """The same simulation fails the earlier scheme where one side is run-dominated (as AT's runs are)."""
    cov = stats.coverage(percentile_two_level, runs=3, sd_run=(0.002, 0.023), sd_image=(0.007, 0.007),
                         trials=1500)
    assert cov < 0.93, f"percentile two-level coverage {cov:.3f}"


def test_welch_matches_scipy():
    a, b = [0.1935, 0.1903, 0.1938], [0.245, 0.2584, 0.213]
    r = stats.welch(a, b)
    ref = st.ttest_ind(a, b, equal_var=False)
    assert r.p_value() == pytest.approx(ref.pvalue, rel=1e-9)
    lo, hi = r.ci(0.95)
    ci = ref.confidence_interval(0.95)
    assert (lo, hi) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert r.record()["interval"] == stats.METHODS["welch"]


def test_paired_is_a_one_sample_t_on_differences():
    a, b = np.array([1.0, 2.0, 4.0]), np.array([0.5, 1.0, 2.0])
    r = stats.paired(a, b)
    ref = st.ttest_1samp(a - b, 0)
    assert r.p_value() == pytest.approx(ref.pvalue) and r.df == 2
    with pytest.raises(ValueError, match="as many values"):
        stats.paired([1, 2, 3], [1, 2])


def test_one_run_per_side_is_refused_by_name():
    with pytest.raises(ValueError, match=stats.ONE_RUN):
        stats.welch([0.2], [0.1, 0.3])


def test_shared_images_mean_adds_both_variances():
    g = np.random.default_rng(0)
    img = g.normal(0, 1, 500)
    same = np.stack([img, img, img])  # runs without run variance: the image interval
    r = stats.shared_images_mean(same)
    assert r.se == pytest.approx(img.std(ddof=1) / np.sqrt(500))
    spread = same + np.array([[-1.0], [0.0], [1.0]])  # add run variance: wider, fewer df
    r2 = stats.shared_images_mean(spread)
    assert r2.se > r.se and r2.df < r.df
    one = stats.shared_images_mean(img[None])
    assert one.ci() == pytest.approx(tuple(st.t.interval(0.95, 499, img.mean(), img.std(ddof=1) / np.sqrt(500))))


def test_identical_runs_give_a_point_interval():
    r = stats.welch([0.2, 0.2], [0.1, 0.1])
    assert r.ci() == (pytest.approx(0.1), pytest.approx(0.1)) and r.p_value() == 0.0

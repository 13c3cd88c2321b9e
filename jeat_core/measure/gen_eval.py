"""Generation metrics that survive a change of ruler: standardised feature spaces, paired
differences over seeds (and training seeds), precision/recall/density/coverage, and the verdict
rule of the generation claims (``docs/evaluation.md``).

Why: KID's cubic kernel ``(xᵀy/d + 1)³`` assumes ``xᵀy/d = O(1)``. On the evaluator's raw pooled
features (non-negative, mean ≈ 2.6 per dimension) it is ≈ 7, and KID then mostly measures the mean
feature norm. :class:`Standardizer` rescales every dimension by the real reference set's mean and
standard deviation, after which ``xᵀy/d`` is O(1) and KID no longer depends on any per-dimension
affine change of the features (tested).

Pairing: every set in a comparison is generated from the same class-Gaussian seeds and the same
Langevin noise, so set a's image i and set b's image i share their start. :func:`kid_difference`
and :func:`fid_difference` therefore resample *seed indices* jointly for both sets (one real
resample shared by both), which removes the seed-to-seed variance the two sets have in common.
With several training runs per method they bootstrap at two levels: runs (with replacement, per
method), then seed indices (shared by every run).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from jeat_core.measure import stats
from jeat_core.measure.metrics import frechet_distance, kid, polynomial_kernel
from jeat_core.measure.metrics import within_mean as _within
from jeat_core.measure.stats import resample_counts as _counts
from jeat_core.measure.stats import resampled_run_means
from jeat_core.measure.verdict_rules import image_level_verdict, part_verdict

KID_BOOT = 2000  # bootstrap resamples of a KID difference (the minimum)
FID_BOOT = 500  # ... of a FID difference (each needs eigendecompositions)


# ============================================================================ feature scaling
class Standardizer:
    """Per-dimension standardisation by a real reference set: ``(f − μ_real) / σ_real``.

    Dimensions whose reference standard deviation is below ``eps`` (dead units) are dropped: they
    carry nothing about the real distribution and would divide by ~0. The statistics are fitted once
    on the full reference set and held fixed under the bootstrap."""

    def __init__(self, real: Tensor, eps: float = 1e-6):
        r = real.double()
        self.mean, sd = r.mean(0), r.std(0)
        self.keep = sd > eps
        self.sd = sd.clamp_min(eps)

    def __call__(self, f: Tensor) -> Tensor:
        return ((f.double() - self.mean) / self.sd)[:, self.keep]


def kid_point(fx: Tensor, fy: Tensor, *, yy: Tensor | None = None) -> float:
    """Unbiased KID (cubic kernel) of two feature sets (the same estimator as :func:`metrics.kid`;
    ``yy``: the reference's within-set term, :func:`metrics.self_kernel_mean`, when already computed)."""
    return kid(fx, fy, yy=yy)


# ============================================================================ paired bootstrap
@dataclass
class Comparison:
    """``metric(a) − metric(b)`` in one feature space.

    ``n`` generated images per set (paired by seed index), ``training_seeds`` runs on the smaller side.
    ``points_a`` / ``points_b`` are each run's own value (its images against the reference): with two
    or more runs on each side the interval and p-value are **run-level** (:mod:`jeat_core.measure.stats`: Welch
    on run means, or a paired t on per-run differences when ``run_pairing == "paired"``, the same runs
    measured two ways); with one run on a side they come from the image bootstrap ``samples`` (not
    serialised) and the record says the comparison is not decided over runs."""

    feature_space: str
    metric: str
    diff: float
    samples: Tensor = field(repr=False)
    n: int
    training_seeds: int = 1
    paired: bool = True
    points_a: tuple[float, ...] = ()
    points_b: tuple[float, ...] = ()
    run_pairing: str = "welch"  # welch | paired

    @property
    def n_boot(self) -> int:
        return len(self.samples)

    @property
    def run_level(self) -> stats.RunLevel | None:
        """The run-level inference, or ``None`` with fewer than two runs on a side."""
        if min(len(self.points_a), len(self.points_b)) < 2:
            return None
        test = stats.paired if self.run_pairing == "paired" else stats.welch
        return test(self.points_a, self.points_b)

    def ci(self, level: float = 0.95) -> tuple[float, float]:
        """The run-level t-interval at ``level``; with one run on a side, the percentile interval of the
        image-bootstrap differences."""
        if (rl := self.run_level) is not None:
            return rl.ci(level)
        q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
        lo, hi = torch.quantile(self.samples.double(), q)
        return float(lo), float(hi)

    def p_value(self) -> float:
        """Two-sided p-value of ``diff = 0``: the run-level t-test's; with one run on a side the bootstrap's
        ``2·min(P*(d ≤ 0), P*(d ≥ 0))`` (at most 1). The ``1 − α`` interval excludes 0 exactly when it is
        below ``α`` (up to ties)."""
        if (rl := self.run_level) is not None:
            return rl.p_value()
        s = self.samples.double()
        return min(1.0, 2 * min(float((s <= 0).double().mean()), float((s >= 0).double().mean())))

    def record(self, level: float = 0.95) -> dict:
        lo, hi = self.ci(level)
        rl = self.run_level
        interval = (stats.METHODS[rl.method] if rl is not None
                    else f"image bootstrap ({stats.ONE_RUN})" if self.paired else "image bootstrap (unpaired)")
        out = {"feature_space": self.feature_space, "metric": self.metric, "diff": self.diff, "ci": [lo, hi],
               "ci_level": level, "n": self.n, "paired": self.paired, "n_boot": self.n_boot,
               "training_seeds": self.training_seeds, "p": self.p_value(), "interval": interval,
               "runs_a": list(self.points_a), "runs_b": list(self.points_b)}
        if rl is not None:
            out["df"] = rl.df
        return out


def _check_runs(fa: list[Tensor], fb: list[Tensor]) -> int:
    ns = {len(f) for f in (*fa, *fb)}
    if not fa or not fb or len(ns) != 1:
        raise ValueError(f"paired sets need one or more runs each, all with the same number of images; got "
                         f"{[len(f) for f in fa]} vs {[len(f) for f in fb]}")
    return ns.pop()


def _two_level(per_run_a: Tensor, per_run_b: Tensor, g: torch.Generator) -> Tensor:
    """Bootstrap differences of run means: ``per_run_*`` are ``(runs, n_boot)`` replicate values; each
    replicate also resamples the runs of each method (with replacement)."""
    return resampled_run_means(per_run_a, g) - resampled_run_means(per_run_b, g)


def kid_difference(fa: list[Tensor], fb: list[Tensor], real: Tensor, *, space: str, n_boot: int = KID_BOOT,
                   seed: int = 0, chunk: int = 250, run_pairing: str = "welch") -> Comparison:
    """KID(a) − KID(b), paired by seed index: ``fa``/``fb`` are the feature sets of one or more runs
    of each method, image i of every set generated from seed i; the real reference ``real`` is
    resampled once per replicate for both (its within-set term cancels)."""
    m = _check_runs(fa, fb)
    g = torch.Generator().manual_seed(seed)
    c, cy = _counts(m, n_boot, g), _counts(len(real), n_boot, g)
    real = real.double()
    per_run, points = [], []
    for f in (*fa, *fb):
        f = f.double()
        kxx, kxy = polynomial_kernel(f, f), polynomial_kernel(f, real)
        points.append(float((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1)) - 2 * kxy.mean()))
        vals = []
        for i in range(0, n_boot, chunk):
            cc, cyy = c[i:i + chunk], cy[i:i + chunk]
            xy = ((cc @ kxy) * cyy).sum(1) / (cc.sum(1) * cyy.sum(1))
            vals.append(_within(kxx, cc) - 2 * xy)
        per_run.append(torch.cat(vals))
    pr = torch.stack(per_run)
    na = len(fa)
    diffs = _two_level(pr[:na], pr[na:], g)
    diff = sum(points[:na]) / na - sum(points[na:]) / len(fb)
    return Comparison(space, "kid", diff, diffs, m, training_seeds=min(len(fa), len(fb)),
                      points_a=tuple(points[:na]), points_b=tuple(points[na:]), run_pairing=run_pairing)


def _weighted_moments(f: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    w = c / c.sum()
    mu = w @ f
    d = f - mu
    return mu, (d * w[:, None]).T @ d * (c.sum() / (c.sum() - 1))


def _fid_to(mu: Tensor, cov: Tensor, mu_y: Tensor, cov_y: Tensor, root_y: Tensor) -> float:
    cross = torch.linalg.eigvalsh(root_y @ cov @ root_y).clamp_min(0).sqrt().sum()
    return float((mu - mu_y).pow(2).sum() + cov.trace() + cov_y.trace() - 2 * cross)


def fid_difference(fa: list[Tensor], fb: list[Tensor], real: Tensor, *, space: str, n_boot: int = FID_BOOT,
                   seed: int = 0, run_pairing: str = "welch") -> Comparison:
    """FID(a) − FID(b), paired like :func:`kid_difference` (``n_boot`` ≥ 500 by default; each
    replicate draws one real resample shared by both sets)."""
    m = _check_runs(fa, fb)
    g = torch.Generator().manual_seed(seed + 1)
    c, cy = _counts(m, n_boot, g), _counts(len(real), n_boot, g)
    real = real.double()
    sets = [f.double() for f in (*fa, *fb)]
    points = [frechet_distance(f, real) for f in sets]
    per_run = torch.zeros(len(sets), n_boot, dtype=torch.float64)
    for b in range(n_boot):
        mu_y, cov_y = _weighted_moments(real, cy[b])
        w, v = torch.linalg.eigh(cov_y)
        root_y = (v * w.clamp_min(0).sqrt()) @ v.T
        for r, f in enumerate(sets):
            per_run[r, b] = _fid_to(*_weighted_moments(f, c[b]), mu_y, cov_y, root_y)
    na = len(fa)
    diffs = _two_level(per_run[:na], per_run[na:], g)
    diff = sum(points[:na]) / na - sum(points[na:]) / len(fb)
    return Comparison(space, "fid", diff, diffs, m, training_seeds=min(len(fa), len(fb)),
                      points_a=tuple(points[:na]), points_b=tuple(points[na:]), run_pairing=run_pairing)


def independent_kid_difference(fa: Tensor, fb: Tensor, real: Tensor, *, n_boot: int = KID_BOOT,
                               seed: int = 0) -> Comparison:
    """KID(a) − KID(b) with the two sets resampled *independently* (what ignoring the pairing gives;
    kept to show how much wider that interval is)."""
    m = _check_runs([fa], [fb])
    g = torch.Generator().manual_seed(seed)
    ca, cb, cy = _counts(m, n_boot, g), _counts(m, n_boot, g), _counts(len(real), n_boot, g)
    real = real.double()
    vals = []
    for f, c in ((fa.double(), ca), (fb.double(), cb)):
        kxx, kxy = polynomial_kernel(f, f), polynomial_kernel(f, real)
        vals.append(_within(kxx, c) - 2 * ((c @ kxy) * cy).sum(1) / (c.sum(1) * cy.sum(1)))
    return Comparison("independent", "kid", kid_point(fa, real) - kid_point(fb, real), vals[0] - vals[1], m,
                      paired=False)


# ============================================================================ PRDC
def knn_radii(f: Tensor, k: int = 5) -> Tensor:
    """Each row's distance to its k-th nearest *other* row of ``f`` (float64): the radii of PRDC's balls."""
    f = f.double()
    return torch.cdist(f, f).kthvalue(k + 1, dim=1).values  # +1: the point itself is at 0


def prdc(real: Tensor, fake: Tensor, *, k: int = 5, real_radii: Tensor | None = None) -> dict:
    """Precision and recall (Kynkäänniemi et al. 2019) and density and coverage (Naeem et al. 2020)
    with k-nearest-neighbour balls: a real image's ball has the radius to its k-th nearest other real
    image (a fake one's, to its k-th nearest other fake image).

    precision: share of fakes inside some real ball; recall: share of reals inside some fake ball;
    density: mean over fakes of the number of real balls containing it, divided by k; coverage: share
    of real balls that contain at least one fake. ``real_radii``: :func:`knn_radii` of ``real`` with
    this ``k``, when already computed (a reference shared by many sets)."""
    real, fake = real.double(), fake.double()
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"PRDC with k = {k} needs more than {k} images per set")
    r_rad = knn_radii(real, k) if real_radii is None else real_radii
    f_rad = knn_radii(fake, k)
    d = torch.cdist(real, fake)  # (N_real, N_fake)
    inside_real = d <= r_rad[:, None]  # fake j in real ball i
    return {"precision": float(inside_real.any(0).double().mean()),
            "recall": float((d <= f_rad[None, :]).any(1).double().mean()),
            "density": float(inside_real.double().sum(0).mean() / k),
            "coverage": float(inside_real.any(1).double().mean()), "k": k}


# ============================================================================ Holm, the claim parts
def holm_levels(p_values: list[float], alpha: float = 0.05) -> list[float]:
    """Holm's step-down for ``m`` tests, as the confidence level of each test's interval: the test with
    the r-th smallest p-value (r = 0, 1, ...) gets level ``1 − α/(m − r)`` until the first that is not
    rejected; it and every later one get that first non-rejected test's level. An interval at its Holm
    level excludes 0 exactly when Holm rejects its null (so the verdict rule can read the intervals)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    levels = [0.0] * m
    stop = None
    for r, i in enumerate(order):
        level = 1 - alpha / (m - r)
        if stop is None and p_values[i] > alpha / (m - r):
            stop = level
        levels[i] = level if stop is None else stop
    return levels


def claim_parts(parts: list[dict], alpha: float = 0.05) -> list[dict]:
    """Verdicts of a claim's parts with Holm's correction across the parts: each part is
    ``{"name", "a", "b", "paper_direction", "comparisons": [Comparison, ...]}`` (comparisons in the same
    order of feature spaces and metrics in every part); within each (space, metric) position the
    parts' intervals are set at their Holm levels; then :func:`part_verdict` decides each part."""
    if not parts:
        return []
    width = {len(p["comparisons"]) for p in parts}
    if len(width) != 1:
        raise ValueError("every part of a claim needs the same comparisons")
    n_cmp = width.pop()
    records = [[None] * n_cmp for _ in parts]
    for j in range(len(records[0])):
        col = [p["comparisons"][j] for p in parts]
        for i, (c, level) in enumerate(zip(col, holm_levels([c.p_value() for c in col], alpha))):
            records[i][j] = c.record(level)
    out = []
    for p, recs in zip(parts, records):
        out.append({"name": p["name"], "a": p["a"], "b": p["b"], "paper_direction": p["paper_direction"],
                    "verdict": part_verdict(recs, p["paper_direction"]),
                    "image_level_verdict": image_level_verdict(recs, p["paper_direction"]), "comparisons": recs})
    return out


def kernel_argument(f: Tensor) -> float:
    """Mean ``xᵀy/d`` over pairs of a feature set: the cubic kernel's argument (O(1) is its design
    point; the raw evaluator features give ≈ 7)."""
    f = f.double()
    s = f.sum(0)
    n = len(f)
    return float((s @ s - (f * f).sum()) / (n * (n - 1)) / f.shape[1])


__all__ = ["Standardizer", "Comparison", "kid_difference", "fid_difference", "independent_kid_difference",
           "prdc", "part_verdict", "image_level_verdict", "holm_levels", "claim_parts", "kernel_argument"]

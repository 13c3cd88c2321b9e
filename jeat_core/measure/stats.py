"""Run-level inference: how the audit decides a comparison of *methods* over their training runs.

The paper repeats every experiment five times and reports the mean and SD over runs (§4.1). A
method's value here is therefore the **mean over its training runs**, each run's value already
including its own image sampling (its generated images, its attacked test images); the interval of
a comparison carries the run-to-run variance with the degrees of freedom that R runs give:

* :func:`welch`: two methods, different runs: ``mean(a) − mean(b)`` with the Welch–Satterthwaite
  t-interval on the run values (each side's sample variance over runs, df from both);
* :func:`paired`: one set of runs measured two ways (claim 4: the same AT runs sampled by Eq. 16
  and by Eq. 17; claim 10: runs paired with AT's run of the same seed): a one-sample t-interval on
  the per-run differences, R − 1 df;
* :func:`shared_images_mean`: one method's mean over runs scored on the *same* test images (Tab. 3's
  seed rows): run variance (R − 1 df) plus the variance of the shared images (n − 1 df), combined by
  Satterthwaite.

Why not the percentile two-level bootstrap used before (``metrics.resampled_run_means``): resampling
R runs with replacement shrinks the run variance by (R − 1)/R and uses normal quantiles where
R − 1 degrees of freedom apply; at R = 3 its 95% intervals cover about 88% of the time when one side
is dominated by run variance (:func:`coverage`, ``tests/test_stats.py``). The t-intervals here keep
their coverage at R = 3 and R = 5 across run/image variance ratios from 0.1 to 10 (same test).

A comparison with fewer than two runs on a side has no run-level interval (:data:`ONE_RUN`):
:func:`welch` raises, and the audit reports such a part as not decided over runs. Nothing here
controls error *across* claims; Holm's correction (``gen_eval.holm_levels``) acts within a claim.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats as _st
from torch import Tensor

from jeat_core.core import rng
from jeat_core.measure.verdict_rules import ONE_RUN

METHODS = {"welch": "Welch t on run means", "paired": "paired t on per-run differences",
           "shared_images": "t on the run mean, run and shared-image variance (Satterthwaite df)"}


@dataclass(frozen=True)
class RunLevel:
    """A difference (or a mean) over training runs with its t-distribution: ``estimate``, standard
    error ``se``, degrees of freedom ``df``, the runs on each side and the interval ``method``."""

    estimate: float
    se: float
    df: float
    runs_a: int
    runs_b: int
    method: str

    def ci(self, level: float = 0.95) -> tuple[float, float]:
        """The two-sided t-interval at ``level`` (a point when ``se`` is 0)."""
        if self.se == 0:
            return self.estimate, self.estimate
        half = float(_st.t.ppf((1 + level) / 2, self.df)) * self.se
        return self.estimate - half, self.estimate + half

    def p_value(self) -> float:
        """Two-sided p-value of 0; an interval at ``1 − α`` excludes 0 exactly when it is below α."""
        if self.se == 0:
            return 0.0 if self.estimate != 0 else 1.0
        return float(2 * _st.t.sf(abs(self.estimate) / self.se, self.df))

    def record(self, level: float = 0.95) -> dict:
        lo, hi = self.ci(level)
        return {"estimate": self.estimate, "ci": [lo, hi], "ci_level": level, "se": self.se, "df": self.df,
                "runs": [self.runs_a, self.runs_b], "interval": METHODS[self.method], "p": self.p_value()}


def _values(v, what: str, least: int = 2) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).ravel()
    if len(a) < least or not np.all(np.isfinite(a)):
        raise ValueError(f"{what}: need at least {least} finite run values; got {list(np.round(a, 6))} ({ONE_RUN})")
    return a


def welch(a, b) -> RunLevel:
    """``mean(a) − mean(b)`` over two methods' runs (values, one per run; ≥ 2 each), Welch–Satterthwaite."""
    a, b = _values(a, "side a"), _values(b, "side b")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se > 0 else float(len(a) + len(b) - 2)
    return RunLevel(float(a.mean() - b.mean()), se, df, len(a), len(b), "welch")


def paired(a, b) -> RunLevel:
    """``mean(a − b)`` over runs measured both ways (``a[r]``, ``b[r]`` from run r or run pair r; ≥ 2)."""
    a, b = _values(a, "side a"), _values(b, "side b")
    if len(a) != len(b):
        raise ValueError(f"paired runs need as many values on each side; got {len(a)} and {len(b)}")
    d = a - b
    return RunLevel(float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))), float(len(d) - 1), len(d), len(d),
                    "paired")


def shared_images_mean(values) -> RunLevel:
    """The mean over runs of per-image values ``(runs, n)`` scored on the same ``n`` images: variance
    ``s²_runs/R + s²_images/n`` (run means; images' means over runs), df by Satterthwaite. With one run
    it is that run's t-interval over images."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] < 2:
        raise ValueError(f"shared_images_mean needs values of shape (runs, images ≥ 2); got {v.shape}")
    r, n = v.shape
    img = v.mean(0).var(ddof=1) / n
    run = v.mean(1).var(ddof=1) / r if r > 1 else 0.0
    se = math.sqrt(run + img)
    parts = ([run ** 2 / (r - 1)] if r > 1 else []) + [img ** 2 / (n - 1)]
    df = (run + img) ** 2 / sum(parts) if se > 0 else float(n - 1)
    return RunLevel(float(v.mean()), se, df, r, 0, "shared_images")


def coverage(scheme, *, runs: int, sd_run: tuple[float, float], sd_image: tuple[float, float],
             trials: int = 2000, level: float = 0.95, seed: int = 0) -> float:
    """Share of ``trials`` simulated comparisons (true difference 0) whose interval covers 0.

    Each side has ``runs`` runs; run r's value is ``u_r + e_r`` with a run effect ``u_r ~ N(0,
    sd_run²)`` and its own image-sampling error ``e_r ~ N(0, sd_image²)`` (per side). ``scheme(a, b,
    image_sd, g)`` returns an interval from the run values and the known per-run image SDs (a
    bootstrap scheme draws its replicates from them); :func:`t_scheme` is this module's."""
    g = np.random.default_rng(seed)
    hits = 0
    for _ in range(trials):
        a = g.normal(0, sd_run[0], runs) + g.normal(0, sd_image[0], runs)
        b = g.normal(0, sd_run[1], runs) + g.normal(0, sd_image[1], runs)
        lo, hi = scheme(a, b, sd_image, g, level)
        hits += lo <= 0 <= hi
    return hits / trials


def t_scheme(a, b, sd_image, g, level) -> tuple[float, float]:
    """:func:`welch` as a :func:`coverage` scheme (it needs only the run values)."""
    return welch(a, b).ci(level)



# ----------------------------------------------------------------------------- intervals of proportions, bootstrap
# (moved here from metrics: the statistics in one module; metrics re-exports them for one release)
def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a proportion ``k / n`` (``(0, 1)`` when ``n == 0``)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile_ci(samples, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap samples."""
    t = torch.as_tensor(samples, dtype=torch.float64)
    lo, hi = torch.quantile(t, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return float(lo), float(hi)


def bootstrap_ci(values: Tensor, stat: Callable[[Tensor], float] = lambda v: float(v.mean()), *,
                 n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` over the rows of ``values``."""
    g = torch.Generator().manual_seed(seed)
    n = len(values)
    return percentile_ci([stat(values[rng.randint(0, n, (n,), generator=g)]) for _ in range(n_boot)], level)


def resampled_run_means(per_run: Tensor, g: torch.Generator) -> Tensor:
    """``(runs, b, ...)`` bootstrap replicate values of each training run -> ``(b, ...)`` replicates of
    the mean over runs, each replicate drawing the runs with replacement (one run: its own replicates);
    trailing dimensions (several quantities) share a replicate's draw, so they stay paired. The run
    level of the generation claims' image bootstrap (their run-level intervals are :mod:`jeat_core.measure.stats`')."""
    s, b = per_run.shape[:2]
    if s == 1:
        return per_run[0]
    pick = rng.randint(0, s, (b, s), generator=g)  # replicate -> its runs
    return per_run[pick.T, torch.arange(b)].mean(0)


def resample_counts(n: int, n_boot: int, g: torch.Generator) -> Tensor:
    """Multiplicities ``(n_boot, n)`` (float64, each row summing to ``n``) of ``n_boot`` bootstrap
    resamples of ``n`` rows: a resample as a weight vector, so that kernel means over it are
    matrix products with the full kernel matrix (shared by :class:`KIDReference` and
    :mod:`jeat_core.measure.gen_eval`)."""
    idx = rng.randint(0, n, (n_boot, n), generator=g)
    return torch.zeros(n_boot, n, dtype=torch.float64).scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))


def proportion_difference_ci(k1: int, n1: int, k2: int, n2: int, z: float = 1.959964) -> tuple[float, float]:
    """95% interval of ``k1/n1 − k2/n2`` (Newcombe's hybrid score method from two Wilson intervals)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, z)
    l2, u2 = wilson_interval(k2, n2, z)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


__all__ = ["RunLevel", "welch", "paired", "shared_images_mean", "coverage", "t_scheme", "ONE_RUN", "METHODS",
           "wilson_interval", "proportion_difference_ci", "percentile_ci", "bootstrap_ci", "resampled_run_means",
           "resample_counts"]

"""Fisher scores (Eq. 23/24), classification and robust accuracy with Wilson intervals.

``FS = E_data[ ½ ‖∇_x E(x)‖² − tr(∇²_x E(x)) ]``: the score-matching objective (Hyvärinen) with
the model score ``s_θ = −∇_x E``. Lower is better. ``E`` may be the joint energy E(x, y) (JFS,
Eq. 23) or the marginal energy E(x) (MFS, Eq. 24). Gradients are taken in pixel space
(inputs in [0, 1], as the models see them).

The Hessian trace is exact for small inputs (one double-backward per input dimension) and a
Hutchinson estimate otherwise: ``tr(H) = E_v[vᵀHv]`` with Rademacher probes ``v``, each probe
costing one double-backward (``∇_x (∇_x E · v) = Hv``).
"""

from __future__ import annotations

import math
import re
import sys
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from jeat_core.core import rng
from jeat_core.core.attacks import fgsm, pgd
from jeat_core.core.energy import EnergyFn, check_label_range, check_labels
from jeat_core.core.models import accuracy  # noqa: F401  (re-exported: metrics.accuracy, for one release)
from jeat_core.measure import robustness
from jeat_core.measure.stats import (  # noqa: F401  (the statistics moved to stats; re-exported for one release)
    bootstrap_ci,
    percentile_ci,
    proportion_difference_ci,
    resample_counts,
    resampled_run_means,
    wilson_interval,
)

EXACT_MAX_DIM = 64


def fisher_score(
    energy_fn: EnergyFn,
    x: Tensor,
    *,
    n_probes: int = 4,
    exact: bool | None = None,
    per_example: bool = False,
    generator: torch.Generator | None = None,
) -> float | tuple[float, Tensor]:
    """Fisher score ``mean_b [½‖∇E(x_b)‖² − tr ∇²E(x_b)]`` (Eq. 23 with E(x,y), Eq. 24 with E(x)).

    Args:
        energy_fn: ``x -> (B,)`` per-example energies (examples must not interact, i.e. no
            batch norm in training mode).
        x: ``(B, ...)`` inputs.
        n_probes: Rademacher probes for the Hutchinson trace.
        exact: exact trace (``D`` double-backwards); default: exact when ``D <= 64``.
        per_example: also return the ``(B,)`` per-example scores.
    Returns:
        The mean score as a float (and the per-example tensor if ``per_example``).
    """
    if n_probes < 1:
        raise ValueError(f"n_probes must be >= 1; got {n_probes}")
    x = x.detach().clone().requires_grad_(True)
    d = x[0].numel()
    exact = d <= EXACT_MAX_DIM if exact is None else exact
    (g,) = torch.autograd.grad(energy_fn(x).sum(), x, create_graph=True)  # (B, ...)
    gf = g.flatten(1)
    half_sq = 0.5 * gf.detach().pow(2).sum(1)
    trace = torch.zeros_like(half_sq)
    if exact:
        for i in range(d):
            (hi,) = torch.autograd.grad(gf[:, i].sum(), x, retain_graph=True)
            trace += hi.flatten(1)[:, i].detach()
    else:
        for _ in range(n_probes):
            v = rng.rademacher(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            (hv,) = torch.autograd.grad((g * v).sum(), x, retain_graph=True)
            trace += (hv * v).flatten(1).sum(1).detach()
        trace /= n_probes
    scores = half_sq - trace
    mean = float(scores.mean())
    return (mean, scores) if per_example else mean


class AttackSpec(NamedTuple):
    """What an attack name runs (:func:`parse_attack`)."""

    objective: str  # "none", "ce" (Eq. 14), "energy" (Eq. 18) or "autoattack"
    n_steps: int  # PGD steps (0 for none and autoattack)
    restarts: int = 1  # random starts; an example is robust only if every one fails


# the attacks the CLI offers: the paper's (Tab. 1 / Tab. 3), then the strong references of
# jeat_core.measure.robustness (PGD-100 with 5 restarts; standard AutoAttack through torchattacks)
ATTACKS = ("none", "fgsm", "pgd20", "energy-pgd20", "pgd100-5", "autoattack")


def parse_attack(attack: str) -> AttackSpec:
    """The :class:`AttackSpec` ``(objective, n_steps, restarts)`` of an attack name, which says what runs.

    ``"none"``; ``"fgsm"`` (``("ce", 1, 1)``); L-inf PGD with ``k`` steps: ``"pgd{k}"`` ascends the
    cross-entropy (Eq. 14, objective ``"ce"``), ``"energy-pgd{k}"`` the joint energy E(x, y) (Eq. 18,
    objective ``"energy"``); ``"pgd{k}-{r}"`` (and ``"energy-pgd{k}-{r}"``) with ``r`` random restarts;
    ``"autoattack"``: standard L-inf AutoAttack (:func:`jeat_core.measure.robustness.autoattack`). Any other
    name is a ``ValueError``. The name is the label of :func:`robust_accuracy`'s result, so a record
    says what ran."""
    if attack == "none":
        return AttackSpec("none", 0)
    if attack == "fgsm":
        return AttackSpec("ce", 1)
    if attack == "autoattack":
        return AttackSpec("autoattack", 0)
    m = re.fullmatch(r"(energy-)?pgd([1-9][0-9]*)(?:-([1-9][0-9]*))?", attack) if isinstance(attack, str) else None
    if m is None:
        raise ValueError(f"unknown attack {attack!r}; choose none, fgsm, autoattack, pgd<k> or energy-pgd<k> "
                         f"(k steps), optionally -<r> restarts (the CLI's: {', '.join(ATTACKS)})")
    return AttackSpec("energy" if m[1] else "ce", int(m[2]), int(m[3] or 1))


def robust_accuracy(model, x: Tensor, y: Tensor, *, attack: str = "pgd20", eps: float = 8 / 255,
                    step_size: float = 2 / 255, batch_size: int = 250, seed: int = 0,
                    progress: bool = False, partial=None) -> dict:
    """Clean and robust accuracy of ``model`` on ``(x, y)`` (Tab. 1 / Tab. 3 protocol).

    ``attack`` names what runs (:func:`parse_attack`): ``"pgd{k}"`` is L-inf PGD with ``k`` steps
    (``"pgd20"``: the paper's), step ``step_size`` (2/255), random start; ``"energy-pgd{k}"`` ascends
    E(x, y) (Eq. 18) instead of the cross-entropy (Eq. 14); ``"fgsm"``; ``"none"``. An example counts
    as robust only when it is classified correctly both clean and after the attack (so robust ≤ clean
    always); PGD therefore attacks only the examples classified correctly when clean
    (``pgd(..., mask=...)``: the same random starts and iterates for those, about 1/clean-accuracy
    times faster). Returns ``{"clean_acc", "robust_acc", "clean_ci", "robust_ci", "n", "attack", "eps"}``
    with 95% Wilson intervals; ``"attack"`` is the name given, which says what ran.

    ``"pgd{k}-{r}"`` (restarts) and ``"autoattack"`` run :func:`jeat_core.measure.robustness.pgd_restarts` and
    :func:`~jeat_core.measure.robustness.autoattack`, whose records add the per-stage robust accuracy, the
    per-example results and the wall time; ``partial`` (a path) makes those two resumable.
    """
    y = check_labels(y, x, name="y")
    objective, n_steps, restarts = parse_attack(attack)
    if objective == "autoattack" or restarts > 1:

        if objective == "autoattack":
            return robustness.autoattack(model, x, y, eps=eps, seed=seed, batch_size=batch_size, progress=progress,
                                         partial=partial)
        return robustness.pgd_restarts(model, x, y, n_steps=n_steps, restarts=restarts, objective=objective, eps=eps,
                                       step_size=step_size, seed=seed, batch_size=batch_size, progress=progress,
                                       partial=partial)
    g = torch.Generator().manual_seed(seed)
    clean = robust = 0
    rng = range(0, len(x), batch_size)
    if progress:

        from tqdm.auto import tqdm  # progress bars: loaded only when asked for

        rng = tqdm(rng, desc=f"eval {attack}", unit="batch", file=sys.stderr)
    for i in rng:
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        with torch.no_grad():
            logits = model(xb)
        check_label_range(yb, logits.shape[-1])  # every label, attacked or not
        ok = logits.argmax(1) == yb
        clean += int(ok.sum())
        if attack == "none":
            continue
        if attack == "fgsm":
            xa = fgsm(model, xb, yb, eps=eps)
        else:
            xa = pgd(model, xb, yb, eps=eps, step_size=step_size, n_steps=n_steps,
                     objective=objective, generator=g, mask=ok)
        with torch.no_grad():
            robust += int((ok & (model(xa).argmax(1) == yb)).sum())
    n = len(x)
    if attack == "none":
        robust = clean
    return {"clean_acc": clean / max(n, 1), "robust_acc": robust / max(n, 1),
            "clean_ci": list(wilson_interval(clean, n)), "robust_ci": list(wilson_interval(robust, n)),
            "n": n, "attack": attack, "eps": eps}


# ----------------------------------------------------------------------------- generation metrics
@torch.no_grad()
def penultimate(model, x: Tensor, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """``(features (N, D), probabilities (N, K))``: the input of ``model``'s last ``nn.Linear`` and its
    softmax. For the evaluator (:mod:`jeat_core.measure.evaluator`) the features are its pooled representation."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    feats, probs = [], []
    h = last.register_forward_hook(lambda _m, inp, _out: feats.append(inp[0].detach().flatten(1)))
    try:
        for i in range(0, len(x), batch_size):
            probs.append(model(x[i:i + batch_size]).softmax(1))
    finally:
        h.remove()
    return torch.cat(feats), torch.cat(probs)


def frechet_distance(f1: Tensor, f2: Tensor) -> float:
    """FID between two feature sets ``(N, D)``: ``‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2 (Σ1^½ Σ2 Σ1^½)^½)``.

    The trace of the matrix square root is computed from the eigenvalues of the symmetric PSD
    matrix ``Σ1^½ Σ2 Σ1^½`` (same spectrum as ``Σ1 Σ2``), in float64, so no scipy is needed."""
    a, b = f1.double(), f2.double()
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = torch.cov(a.T), torch.cov(b.T)
    w, v = torch.linalg.eigh(s1)
    root1 = (v * w.clamp_min(0).sqrt()) @ v.T
    cross = torch.linalg.eigvalsh(root1 @ s2 @ root1).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).pow(2).sum() + s1.trace() + s2.trace() - 2 * cross)


def inception_score(probs: Tensor, splits: int = 1) -> float:
    """IS = ``exp(E_x KL(p(y|x) ‖ p(y)))`` from class probabilities ``(N, K)`` (mean over splits)."""
    scores = []
    for p in probs.double().chunk(splits):
        py = p.mean(0, keepdim=True)
        kl = (p * (p.clamp_min(1e-12).log() - py.clamp_min(1e-12).log())).sum(1).mean()
        scores.append(math.exp(float(kl)))
    return float(sum(scores) / len(scores))


def polynomial_kernel(a: Tensor, b: Tensor) -> Tensor:
    """The KID kernel ``k(a, b) = (aᵀb / D + 1)³`` (Bińkowski et al. 2018), float64 ``(N, M)``."""
    return (a.double() @ b.double().T / a.shape[1] + 1) ** 3


def _offdiag_mean(k: Tensor) -> Tensor:
    """Mean of a (batch of) square kernel matrices over distinct pairs (the diagonal excluded)."""
    n = k.shape[-1]
    return (k.sum((-2, -1)) - k.diagonal(dim1=-2, dim2=-1).sum(-1)) / (n * (n - 1))


def self_kernel_mean(f: Tensor) -> Tensor:
    """KID's within-set term of ``f (N, D)``: the mean cubic kernel over distinct pairs (float64, 0-d).
    A reference set's term is the same for every set scored against it: compute it once and pass it to
    :func:`kid` as ``yy``."""
    return _offdiag_mean(polynomial_kernel(f, f))


def kid(fx: Tensor, fy: Tensor, *, yy: Tensor | None = None) -> float:
    """Unbiased kernel inception distance (squared MMD, cubic polynomial kernel) between feature sets
    ``fx (M, D)`` and ``fy (N, D)``; its expectation is 0 when both come from one distribution.
    ``yy``: ``fy``'s :func:`self_kernel_mean`, when already computed (the same number, without the
    ``N × N`` kernel)."""
    if len(fx) < 2 or len(fy) < 2:
        raise ValueError("KID needs at least 2 samples per set")
    syy = self_kernel_mean(fy) if yy is None else yy
    return float(self_kernel_mean(fx) + syy - 2 * polynomial_kernel(fx, fy).mean((-2, -1)))


def within_mean(k: Tensor, c: Tensor) -> Tensor:
    """Mean kernel over pairs of *distinct* original rows, for each resample (row of ``c``, its
    multiplicities): ``(cᵀKc − Σ c_u² K_uu) / (n² − Σ c_u²)`` (a row paired with its own copy is a
    diagonal term, which the unbiased estimator excludes)."""
    c2 = c * c
    return (((c @ k) * c).sum(1) - c2 @ k.diagonal()) / (c.sum(1) ** 2 - c2.sum(1))


def _weighted_fid(fx: Tensor, cx: Tensor, mu_y: Tensor, cov_y: Tensor) -> float:
    """FID of a resample of ``fx`` with multiplicities ``cx`` against a Gaussian ``(mu_y, cov_y)``."""
    w = cx / cx.sum()
    mu = w @ fx
    d = fx - mu
    cov = (d * w[:, None]).T @ d * (cx.sum() / (cx.sum() - 1))
    wv, v = torch.linalg.eigh(cov)
    root = (v * wv.clamp_min(0).sqrt()) @ v.T
    cross = torch.linalg.eigvalsh(root @ cov_y @ root).clamp_min(0).sqrt().sum()
    return float((mu - mu_y).pow(2).sum() + cov.trace() + cov_y.trace() - 2 * cross)


class KIDReference:
    """Features of a real reference set, prepared once, so that KID/FID of many generated sets, their
    bootstrap intervals and the intervals of their *differences* are cheap.

    Bootstrap: generated and real rows are resampled with replacement; a resample is represented by
    its multiplicities ``c``, so its KID is a few matrix-vector products with the full kernel
    matrices (pairs of copies of one row count as diagonal terms and are excluded, as in the unbiased
    estimator). The ``n_boot`` real resamples are drawn once (fixed seed) and shared by every score
    and difference; in a difference of two KIDs against one real resample the real-real term cancels.
    """

    def __init__(self, real: Tensor, *, n_boot: int = 2000, n_boot_fid: int = 500, seed: int = 0):
        self.real = real.double()
        self.n_boot, self.n_boot_fid, self.seed = n_boot, n_boot_fid, seed
        kyy = polynomial_kernel(self.real, self.real)
        n = len(self.real)
        self.kyy_mean = float((kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1)))
        g = torch.Generator().manual_seed(seed)
        self.cy = resample_counts(n, n_boot, g)  # (n_boot, N)
        self.yy_boot = within_mean(kyy, self.cy)
        self._fid_y: list | None = None  # the real resamples' FID moments, made on first use (they are large)

    @property
    def fid_y(self) -> list:
        if self._fid_y is None:
            self._fid_y = []
            for c in self.cy[:self.n_boot_fid]:
                w = c / c.sum()
                mu = w @ self.real
                d = self.real - mu
                self._fid_y.append((mu, (d * w[:, None]).T @ d * (c.sum() / (c.sum() - 1))))
        return self._fid_y

    def _terms(self, fx: Tensor, salt: int) -> tuple[float, float, Tensor, Tensor, Tensor]:
        """The kernels of ``fx`` computed once: its within-set mean (off-diagonal) and cross mean with
        the reference, then per resample b the same two terms ``(n_boot,)`` and the multiplicities
        ``cx`` ``(n_boot, M)``."""
        kxx, kxy = polynomial_kernel(fx, fx), polynomial_kernel(fx, self.real)
        m = len(fx)
        point_xx = float((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1)))
        g = torch.Generator().manual_seed(self.seed + 1000 + salt)
        cx = resample_counts(m, self.n_boot, g)  # (n_boot, M)
        xx = within_mean(kxx, cx)
        xy = ((cx @ kxy) * self.cy).sum(1) / (cx.sum(1) * self.cy.sum(1))
        return point_xx, float(kxy.mean()), xx, xy, cx

    def score(self, fx: Tensor, *, fid_interval: bool = True) -> dict:
        """``{"kid", "kid_ci", "fid", "fid_ci", "n"}`` of generated features ``fx`` against the reference.
        KID's interval is a percentile bootstrap; FID's a bias-corrected one with ``n_boot_fid`` resamples
        (``None`` when ``fid_interval`` is false: its eigendecompositions are the slow part)."""
        fx = fx.double()
        point_xx, point_xy, xx, xy, cx = self._terms(fx, 0)
        boot_k = xx + self.yy_boot - 2 * xy
        m = len(fx)
        est = point_xx + self.kyy_mean - 2 * point_xy
        fid = frechet_distance(fx, self.real)
        # FID is biased upwards at finite n, and a resample (≈ 63% distinct rows) more so: the percentile
        # interval is shifted by the bootstrap's estimate of that bias (mean of resamples − estimate)
        fid_ci = None
        if fid_interval:
            boot_f = torch.tensor([_weighted_fid(fx, cx[b], *self.fid_y[b]) for b in range(len(self.fid_y))])
            bias = float(boot_f.mean()) - fid
            lo, hi = percentile_ci(boot_f)
            fid_ci = (lo - bias, hi - bias)
        return {"kid": est, "kid_ci": percentile_ci(boot_k), "fid": fid, "fid_ci": fid_ci, "n": m}

    def difference(self, fa: Tensor, fb: Tensor) -> dict:
        """KID(a) − KID(b) with a bootstrap 95% interval (negative: ``a`` closer to the real set).

        The sets are taken as **paired** (row i of both generated from seed i, as every generated set
        of this project is): one resample of row indices serves both, so the seed-to-seed variance they
        share cancels (``docs/evaluation.md``; :func:`jeat_core.measure.gen_eval.kid_difference` is the same
        estimator over several feature spaces and training runs). Sets of different sizes cannot be
        paired and are an error."""
        if len(fa) != len(fb):
            raise ValueError(f"a paired KID difference needs sets of one size; got {len(fa)} and {len(fb)}")
        pa_xx, pa_xy, xa, ya, _ = self._terms(fa.double(), 1)
        pb_xx, pb_xy, xb, yb, _ = self._terms(fb.double(), 1)  # the same salt: the same resamples of rows
        diffs = (xa - 2 * ya) - (xb - 2 * yb)
        return {"diff": (pa_xx - 2 * pa_xy) - (pb_xx - 2 * pb_xy), "ci": percentile_ci(diffs), "n": len(fa),
                "n_real": len(self.real), "paired": True}


# ----------------------------------------------------------------------------- Fisher, piecewise-linear
def fisher_scores_piecewise_linear(model, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Per-example JFS and MFS (Eq. 23/24) in the *piecewise-linear convention* ``∇²ₓ f_k ≡ 0``.

    That is what autograd gives for ReLU networks (the paper's WRN-28-10) almost everywhere. With
    ``J = ∂f/∂x`` (K × D) and ``p = softmax(f)``:

    * ``JFS = ½‖∇f_y‖²``  (E(x, y) = −f_y has zero Hessian);
    * ``MFS = ½‖Jᵀp‖² + tr(Jᵀ(diag p − ppᵀ)J) = Σ_k p_k ‖∇f_k‖² − ½‖Jᵀp‖²``
      (E(x) = −logsumexp f has Hessian ``−Jᵀ(diag p − ppᵀ)J`` when ∇²f = 0).

    Both are ≥ 0 (MFS ≥ ½‖Jᵀp‖² ≥ 0 by Jensen). Exact, one backward pass per class.
    Returns ``(jfs (B,), mfs (B,))``.
    """
    x = x.detach().clone().requires_grad_(True)
    logits = model(x)  # (B, K)
    k = logits.shape[1]
    grads = []
    for c in range(k):
        (gc,) = torch.autograd.grad(logits[:, c].sum(), x, retain_graph=c < k - 1)
        grads.append(gc.flatten(1).detach())
    jac = torch.stack(grads, 1)  # (B, K, D)
    p = logits.detach().softmax(1)  # (B, K)
    sq = jac.pow(2).sum(2)  # (B, K): ‖∇f_k‖²
    jfs = 0.5 * sq.gather(1, y.view(-1, 1).to(x.device)).squeeze(1)
    jtp = torch.einsum("bk,bkd->bd", p, jac)
    mfs = (p * sq).sum(1) - 0.5 * jtp.pow(2).sum(1)
    return jfs, mfs


# ----------------------------------------------------------------------------- SSIM neighbours (Fig. 7)
def _gauss_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    t = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """Mean SSIM (Wang et al. 2004; 11×11 Gaussian window, σ = 1.5, K = (0.01, 0.03), data range 1)
    between matching images of ``a`` and ``b`` ``(N, C, H, W)`` in [0, 1]; returns ``(N,)``."""
    c = a.shape[1]
    w = _gauss_window().to(a).expand(c, 1, 11, 11)

    def f(z):
        return torch.nn.functional.conv2d(z, w, groups=c)

    mu_a, mu_b = f(a), f(b)
    saa, sbb, sab = f(a * a) - mu_a ** 2, f(b * b) - mu_b ** 2, f(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    m = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return m.flatten(1).mean(1)


class TrainIndex:
    """Training images prepared once for :func:`nearest_by_ssim`: ``(N, C·H·W)`` float32 in
    NCHW order (614 MB for all 50,000 CIFAR-10 images) plus squared norms, so a query costs one
    matrix product (~0.1 s) instead of re-converting every image (~1 s per query)."""

    def __init__(self, train_x: np.ndarray, batch: int = 5000):
        self.images = train_x  # (N, H, W, C) uint8
        n, h, w, c = train_x.shape
        self.flat = torch.empty(n, c * h * w)
        for i in range(0, n, batch):
            chunk = torch.from_numpy(np.ascontiguousarray(train_x[i:i + batch].transpose(0, 3, 1, 2)))
            self.flat[i:i + batch] = chunk.flatten(1).float().div_(255)
        self.sq_norms = self.flat.pow(2).sum(1)  # (N,)

    def __len__(self) -> int:
        return len(self.flat)

    def l2_candidates(self, q: Tensor, n: int) -> Tensor:
        """Indices ``(Q, n)`` of the ``n`` nearest images in L2 to each flattened query ``q`` ``(Q, D)``."""
        d = self.sq_norms - 2 * q @ self.flat.T  # (Q, N): squared distance minus ||q||^2 (constant per row)
        return d.topk(min(n, d.shape[1]), largest=False).indices


@torch.no_grad()
def nearest_by_ssim(queries: Tensor, train_x, *, k: int = 10, prefilter: int = 256,
                    batch: int = 5000) -> tuple[Tensor, Tensor]:
    """For each query, the ``k`` training images with the highest SSIM.

    Exact SSIM against all training images is costly on a CPU, so candidates are first the
    ``prefilter`` nearest in L2 among *all* training images, then ranked by SSIM. ``train_x`` is
    ``(N, H, W, C)`` uint8 or a :class:`TrainIndex` of it (build one to search many times).
    Returns ``(indices (Q, k), ssim (Q, k))``.
    """
    index = train_x if isinstance(train_x, TrainIndex) else TrainIndex(train_x, batch)
    cand = index.l2_candidates(queries.flatten(1).float(), prefilter)  # (Q, P)
    idx_out, s_out = [], []
    for qi in range(len(queries)):
        imgs = torch.from_numpy(index.images[cand[qi].numpy()]).permute(0, 3, 1, 2).float().div(255)
        s = ssim(queries[qi:qi + 1].expand_as(imgs), imgs)
        top = s.topk(min(k, len(s)))
        idx_out.append(cand[qi][top.indices])
        s_out.append(top.values)
    return torch.stack(idx_out), torch.stack(s_out)

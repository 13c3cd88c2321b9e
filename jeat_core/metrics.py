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
from collections.abc import Callable

import torch
from torch import Tensor

from .energy import EnergyFn

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
            v = torch.randint(0, 2, x.shape, generator=generator).to(x) * 2 - 1
            (hv,) = torch.autograd.grad((g * v).sum(), x, retain_graph=True)
            trace += (hv * v).flatten(1).sum(1).detach()
        trace /= n_probes
    scores = half_sq - trace
    mean = float(scores.mean())
    return (mean, scores) if per_example else mean


@torch.no_grad()
def accuracy(model: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, *, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``, evaluated in batches."""
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size].to(x.device)).sum())
    return correct / max(len(x), 1)


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a proportion ``k / n`` (``(0, 1)`` when ``n == 0``)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


ATTACKS = ("none", "fgsm", "pgd20", "energy-pgd20")


def robust_accuracy(model, x: Tensor, y: Tensor, *, attack: str = "pgd20", eps: float = 8 / 255,
                    step_size: float = 2 / 255, batch_size: int = 250, seed: int = 0, progress: bool = False,
                    n_steps: int = 20) -> dict:
    """Clean and robust accuracy of ``model`` on ``(x, y)`` (Tab. 1 / Tab. 3 protocol).

    L-inf PGD-``n_steps`` (default 20), step 2/255, random start; ``"energy-pgd20"`` ascends E(x, y)
    (Eq. 18) instead of the cross-entropy (Eq. 14). An example counts as robust only when it is
    classified correctly both clean and after the attack (so robust ≤ clean always). Returns
    ``{"clean_acc", "robust_acc", "clean_ci", "robust_ci", "n", "attack", "eps"}`` with 95% Wilson
    intervals.
    """
    from .attacks import fgsm, pgd

    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACKS)}")
    g = torch.Generator().manual_seed(seed)
    clean = robust = 0
    rng = range(0, len(x), batch_size)
    if progress:
        import sys

        from tqdm.auto import tqdm

        rng = tqdm(rng, desc=f"eval {attack}", unit="batch", file=sys.stderr)
    for i in rng:
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        with torch.no_grad():
            ok = model(xb).argmax(1) == yb
        clean += int(ok.sum())
        if attack == "none":
            continue
        if attack == "fgsm":
            xa = fgsm(model, xb, yb, eps=eps)
        else:
            xa = pgd(model, xb, yb, eps=eps, step_size=step_size, n_steps=n_steps,
                     objective="energy" if attack == "energy-pgd20" else "ce", generator=g)
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
    softmax. For the evaluator (:mod:`jeat_core.evaluator`) the features are its pooled representation."""
    from torch import nn

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


def _kid_from_kernels(kxx: Tensor, kyy: Tensor, kxy: Tensor) -> Tensor:
    m, n = kxx.shape[-1], kyy.shape[-1]
    sxx = (kxx.sum((-2, -1)) - kxx.diagonal(dim1=-2, dim2=-1).sum(-1)) / (m * (m - 1))
    syy = (kyy.sum((-2, -1)) - kyy.diagonal(dim1=-2, dim2=-1).sum(-1)) / (n * (n - 1))
    return sxx + syy - 2 * kxy.mean((-2, -1))


def kid(fx: Tensor, fy: Tensor) -> float:
    """Unbiased kernel inception distance (squared MMD, cubic polynomial kernel) between feature sets
    ``fx (M, D)`` and ``fy (N, D)``; its expectation is 0 when both come from one distribution."""
    if len(fx) < 2 or len(fy) < 2:
        raise ValueError("KID needs at least 2 samples per set")
    return float(_kid_from_kernels(polynomial_kernel(fx, fx), polynomial_kernel(fy, fy), polynomial_kernel(fx, fy)))


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
    return percentile_ci([stat(values[torch.randint(0, n, (n,), generator=g)]) for _ in range(n_boot)], level)


class KIDReference:
    """Features of a real reference set with its kernel matrix computed once, so that KID/FID of
    many generated sets, their bootstrap intervals and the intervals of their *differences* are cheap.

    Bootstrap: generated and real rows are resampled with replacement (the same real resample for
    both sets of a difference), and the kernel matrices are indexed instead of recomputed.
    """

    def __init__(self, real: Tensor, *, n_boot: int = 200, seed: int = 0):
        self.real = real.double()
        self.kyy = polynomial_kernel(self.real, self.real)
        self.n_boot, self.seed = n_boot, seed

    def _resamples(self, n_gen: int, salt: int = 0):
        g = torch.Generator().manual_seed(self.seed + salt)
        n = len(self.real)
        for _ in range(self.n_boot):
            yield torch.randint(0, n_gen, (n_gen,), generator=g), torch.randint(0, n, (n,), generator=g)

    def _kid_idx(self, kxx, kxy, i, j) -> float:
        return float(_kid_from_kernels(kxx[i][:, i], self.kyy[j][:, j], kxy[i][:, j]))

    def score(self, fx: Tensor) -> dict:
        """``{"kid", "kid_ci", "fid", "fid_ci", "n"}`` of generated features ``fx`` against the reference."""
        fx = fx.double()
        kxx, kxy = polynomial_kernel(fx, fx), polynomial_kernel(fx, self.real)
        boot_k, boot_f = [], []
        for b, (i, j) in enumerate(self._resamples(len(fx))):
            boot_k.append(self._kid_idx(kxx, kxy, i, j))
            if b < 100:  # FID's eigendecompositions are the slow part: 100 resamples
                boot_f.append(frechet_distance(fx[i], self.real[j]))
        return {"kid": float(_kid_from_kernels(kxx, self.kyy, kxy)), "kid_ci": percentile_ci(boot_k),
                "fid": frechet_distance(fx, self.real), "fid_ci": percentile_ci(boot_f), "n": len(fx)}

    def difference(self, fa: Tensor, fb: Tensor) -> dict:
        """KID(a) − KID(b) with a bootstrap 95% interval (negative: ``a`` closer to the real set)."""
        fa, fb = fa.double(), fb.double()
        ka, kb = polynomial_kernel(fa, fa), polynomial_kernel(fb, fb)
        ka_y, kb_y = polynomial_kernel(fa, self.real), polynomial_kernel(fb, self.real)
        g = torch.Generator().manual_seed(self.seed + 1)
        diffs = []
        for _ in range(self.n_boot):
            i = torch.randint(0, len(fa), (len(fa),), generator=g)
            k = torch.randint(0, len(fb), (len(fb),), generator=g)
            j = torch.randint(0, len(self.real), (len(self.real),), generator=g)
            diffs.append(self._kid_idx(ka, ka_y, i, j) - self._kid_idx(kb, kb_y, k, j))
        est = float(_kid_from_kernels(ka, self.kyy, ka_y) - _kid_from_kernels(kb, self.kyy, kb_y))
        return {"diff": est, "ci": percentile_ci(diffs), "n": [len(fa), len(fb)], "n_real": len(self.real)}


def proportion_difference_ci(k1: int, n1: int, k2: int, n2: int, z: float = 1.959964) -> tuple[float, float]:
    """95% interval of ``k1/n1 − k2/n2`` (Newcombe's hybrid score method from two Wilson intervals)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, z)
    l2, u2 = wilson_interval(k2, n2, z)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


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

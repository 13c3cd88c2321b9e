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

from . import rng
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
            v = rng.rademacher(x.shape, generator=generator, device=x.device, dtype=x.dtype)
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

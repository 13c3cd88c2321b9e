"""Energy landscapes along two random directions (Fig. 2).

``grid[i, j] = E(x + a_i d1 + b_j d2, y)`` for ``a, b`` on ``[-radius, radius]``. The directions
depend only on the image shape and a seed - never on the model - so the same ``(d1, d2)`` is
used for every model and the plots are comparable. With ``scale="l2"`` (default) they are
orthonormal in L2 (``radius`` is an L2 distance in pixel space); with ``scale="linf"`` they
are random sign images (``radius`` is an L-inf distance, comparable to ``eps = 8/255``).

Fig. 2 keeps the logits of every point (:func:`logit_grid`) and shows from them both E(x', y)
and Δ log p(y | x') (:func:`slice_view`, :func:`landscape_slices`): the second is the energy change
without the marginal part E(x'), whose scale differs between models (the audit's flatness quantity).
"""

from __future__ import annotations

import torch
from torch import Tensor

from jeat_core.core import rng
from jeat_core.core.energy import EnergyFn

SCALES = ("l2", "linf")


def random_directions(shape, *, seed: int = 0, scale: str = "l2") -> tuple[Tensor, Tensor]:
    """Two directions of ``shape`` from ``seed`` (orthonormal for ``l2``, ±1 for ``linf``)."""
    g = torch.Generator().manual_seed(seed)
    if scale == "l2":
        d1 = rng.randn(shape, generator=g, device="cpu")
        d2 = rng.randn(shape, generator=g, device="cpu")
        d1 = d1 / d1.norm()
        d2 = d2 - (d2 * d1).sum() * d1  # Gram-Schmidt
        return d1, d2 / d2.norm()
    if scale == "linf":
        return tuple(rng.rademacher(shape, generator=g, device="cpu", dtype=torch.float32) for _ in range(2))
    raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")


def _plane(x: Tensor, d1: Tensor, d2: Tensor, radius: float, resolution: int):
    """``x`` as ``(1, C, H, W)``, the axis ``a`` ``(R,)`` and the ``(R*R, 2)`` coefficients of the grid."""
    if radius <= 0:
        raise ValueError(f"radius must be > 0; got {radius}")
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2; got {resolution}")
    x = x.reshape(1, *d1.shape) if x.dim() == d1.dim() else x
    a = torch.linspace(-radius, radius, resolution)
    aa, bb = torch.meshgrid(a, a, indexing="ij")
    return x, a, torch.stack([aa.flatten(), bb.flatten()], 1).to(x)  # (R*R, 2)


def _on_plane(fn, x: Tensor, d1: Tensor, d2: Tensor, coeffs: Tensor, batch_size: int) -> Tensor:
    """``fn`` at ``x + c0 d1 + c1 d2`` for each row of ``coeffs``, ``batch_size`` points at a time,
    concatenated on the CPU as float32."""
    d1, d2 = d1.to(x), d2.to(x)
    out = []
    for i in range(0, len(coeffs), batch_size):
        c = coeffs[i:i + batch_size]
        pts = x + c[:, 0, None, None, None] * d1 + c[:, 1, None, None, None] * d2  # (b, C, H, W)
        out.append(fn(pts).float().cpu())
    return torch.cat(out)


@torch.no_grad()
def energy_grid(
    energy_fn: EnergyFn,
    x: Tensor,
    d1: Tensor,
    d2: Tensor,
    *,
    radius: float,
    resolution: int = 41,
    batch_size: int = 256,
) -> tuple[Tensor, Tensor, Tensor]:
    """Evaluate ``energy_fn`` on the plane through ``x`` spanned by ``d1``, ``d2``.

    Args:
        energy_fn: ``(B, C, H, W) -> (B,)``; for E(x, y) build it with a label of batch size 1
            (it is broadcast) or use :func:`jeat_core.core.energy.energy_of` with a scalar label.
        x: one image ``(C, H, W)`` or ``(1, C, H, W)``.
        radius: half-width of the grid; ``resolution``: points per axis (odd keeps x on the grid).
    Returns:
        ``(a, b, grid)`` with ``a, b`` of shape ``(R,)`` and ``grid`` of shape ``(R, R)`` where
        ``grid[i, j]`` is the energy at ``x + a[i] d1 + b[j] d2``.
    """
    x, a, coeffs = _plane(x, d1, d2, radius, resolution)
    return a, a.clone(), _on_plane(energy_fn, x, d1, d2, coeffs, batch_size).view(resolution, resolution)


@torch.no_grad()
def logit_grid(model, x: Tensor, d1: Tensor, d2: Tensor, *, radius: float, resolution: int = 41,
               batch_size: int = 64) -> tuple[Tensor, Tensor, Tensor]:
    """The classifier's logits on the plane of :func:`energy_grid`: one forward pass per point.

    Every label's E(x', y) and log p(y | x') follow from these (:func:`slice_view`), so a caller
    that keeps them (the notebook-02 explorer) changes the label or the quantity shown without
    another forward pass. The points go through the model channels-last, ``batch_size`` at a time
    (channels-last is about a quarter faster for the small CNNs on one CPU thread; the values are the
    same up to rounding).

    Returns:
        ``(a, b, logits)``: ``a, b`` ``(R,)`` and ``logits`` ``(R, R, K)`` with ``logits[i, j]`` the
        logits at ``x + a[i] d1 + b[j] d2``.
    """
    x, a, coeffs = _plane(x, d1, d2, radius, resolution)

    def fn(pts):
        return model(pts.contiguous(memory_format=torch.channels_last))  # (b, K)

    logits = _on_plane(fn, x, d1, d2, coeffs, batch_size)
    return a, a.clone(), logits.view(resolution, resolution, -1)


def slice_view(a: Tensor, b: Tensor, logits: Tensor, y: int) -> dict:
    """Fig. 2's two views of one slice for label ``y``, from its logits ``(R, R, K)`` (:func:`logit_grid`).

    ``grid``: E(x', y) = −f(x')[y] (Eq. 12); ``dlogp``: log p(y | x') − log p(y | x), the change of the
    classifier's log-probability of ``y`` from its value at the image (the centre). Since
    E(x', y) = −log p(y | x') + E(x') (Eq. 13), ``−dlogp`` is the energy change without the
    marginal part E(x') = −logsumexp f(x'), which a classifier's training leaves free and which
    differs between models (their logit scales): the audit's flatness quantity (claim 3).
    ``stats``: :func:`landscape_stats` of both. Returns ``{"a", "b", "grid", "dlogp", "stats"}``.
    """
    grid = -logits[..., y]  # (R, R)
    logp = logits.log_softmax(-1)[..., y]  # (R, R)
    ci, cj = int(a.abs().argmin()), int(b.abs().argmin())
    return {"a": a, "b": b, "grid": grid, "dlogp": logp - logp[ci, cj],
            "stats": landscape_stats(a, b, grid, logp=logp)}


# what a Fig. 2 slice can show (relative to the image, the centre of the grid) -> its name
SLICE_QUANTITIES = {"dlogp": "log p(y|x′) − log p(y|x)", "energy": "E(x′, y) − E(x, y)"}


def slice_values(view: dict, quantity: str = "dlogp") -> Tensor:
    """The ``(R, R)`` values of a :func:`slice_view` that Fig. 2 colours (:data:`SLICE_QUANTITIES`):
    ``view["dlogp"]``, or for ``"energy"`` its grid of E(x', y) minus the value at the centre. A view
    without ``dlogp`` (an E(x, y) grid alone) can show ``"energy"`` only."""
    if quantity not in SLICE_QUANTITIES:
        raise ValueError(f"unknown quantity {quantity!r}; choose one of {', '.join(SLICE_QUANTITIES)}")
    if quantity == "energy":
        ci, cj = int(view["a"].abs().argmin()), int(view["b"].abs().argmin())
        return view["grid"] - view["grid"][ci, cj]
    if "dlogp" not in view:
        raise ValueError("no 'dlogp' in this slice: make it with landscape_slices / slice_view")
    return view["dlogp"]


def landscape_slices(models: dict, x: Tensor, y: int, *, radius: float = 2.0, resolution: int = 41, seed: int = 0,
                     scale: str = "l2") -> dict:
    """:func:`slice_view` of each model (name -> classifier) on the same directions (``seed``,
    ``scale``) through image ``x`` ``(C, H, W)`` for label ``y``: Fig. 2's data."""
    d1, d2 = random_directions(tuple(x.shape[-3:]), seed=seed, scale=scale)
    return {name: slice_view(*logit_grid(m, x, d1, d2, radius=radius, resolution=resolution), y)
            for name, m in models.items()}


def landscape_stats(a: Tensor, b: Tensor, grid: Tensor, *, within: float | None = None,
                    logp: Tensor | None = None) -> dict:
    """Numbers for "flat and low around the data" (Fig. 2).

    Returns ``flatness`` = mean |E(x+δ) − E(x)| over grid points with ‖(a, b)‖ ≤ ``within``
    (default: the whole grid radius), ``center_energy``, ``min_energy``, ``center_rank`` (share
    of those points with energy below the centre; 0 means x is the minimum) and
    ``center_is_min``. With ``logp`` (``(R, R)``: log p(y | x') on the same grid) also
    ``flatness_dlogp`` = mean |log p(y | x+δ) − log p(y | x)| over the **whole** square grid, the
    per-image quantity the audit averages over test images (claim 3,
    :func:`jeat_core.paper.experiments.landscape_numbers`), and ``p_center`` = p(y | x).
    """
    within = float(a.abs().max()) if within is None else within
    aa, bb = torch.meshgrid(a, b, indexing="ij")
    mask = (aa ** 2 + bb ** 2).sqrt() <= within + 1e-9
    ci, cj = int((a.abs()).argmin()), int((b.abs()).argmin())
    e0 = grid[ci, cj]
    region = grid[mask]
    out = {
        "flatness": float((region - e0).abs().mean()),
        "center_energy": float(e0),
        "min_energy": float(region.min()),
        "center_rank": float((region < e0).float().mean()),
        "center_is_min": bool(region.min() >= e0),
    }
    if logp is not None:
        out["flatness_dlogp"] = float((logp - logp[ci, cj]).abs().mean())
        out["p_center"] = float(logp[ci, cj].exp())
    return out

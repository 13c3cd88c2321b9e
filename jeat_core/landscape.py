"""Energy landscapes along two random directions (Fig. 2).

``grid[i, j] = E(x + a_i d1 + b_j d2, y)`` for ``a, b`` on ``[-radius, radius]``. The directions
depend only on the image shape and a seed - never on the model - so the same ``(d1, d2)`` is
used for every model and the plots are comparable. With ``scale="l2"`` (default) they are
orthonormal in L2 (``radius`` is an L2 distance in pixel space); with ``scale="linf"`` they
are random sign images (``radius`` is an L-inf distance, comparable to ``eps = 8/255``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import rng
from .energy import EnergyFn

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
            (it is broadcast) or use :func:`jeat_core.energy.energy_of` with a scalar label.
        x: one image ``(C, H, W)`` or ``(1, C, H, W)``.
        radius: half-width of the grid; ``resolution``: points per axis (odd keeps x on the grid).
    Returns:
        ``(a, b, grid)`` with ``a, b`` of shape ``(R,)`` and ``grid`` of shape ``(R, R)`` where
        ``grid[i, j]`` is the energy at ``x + a[i] d1 + b[j] d2``.
    """
    if radius <= 0:
        raise ValueError(f"radius must be > 0; got {radius}")
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2; got {resolution}")
    x = x.reshape(1, *d1.shape) if x.dim() == d1.dim() else x
    d1, d2 = d1.to(x), d2.to(x)
    a = torch.linspace(-radius, radius, resolution)
    aa, bb = torch.meshgrid(a, a, indexing="ij")
    coeffs = torch.stack([aa.flatten(), bb.flatten()], 1).to(x)  # (R*R, 2)
    out = []
    for i in range(0, len(coeffs), batch_size):
        c = coeffs[i:i + batch_size]
        pts = x + c[:, 0, None, None, None] * d1 + c[:, 1, None, None, None] * d2  # (b, C, H, W)
        out.append(energy_fn(pts).float().cpu())
    return a, a.clone(), torch.cat(out).view(resolution, resolution)


def landscape_stats(a: Tensor, b: Tensor, grid: Tensor, *, within: float | None = None) -> dict:
    """Numbers for "flat and low around the data" (Fig. 2).

    Returns ``flatness`` = mean |E(x+δ) − E(x)| over grid points with ‖(a, b)‖ ≤ ``within``
    (default: the whole grid radius), ``center_energy``, ``min_energy``, ``center_rank`` (share
    of those points with energy below the centre; 0 means x is the minimum) and
    ``center_is_min``.
    """
    within = float(a.abs().max()) if within is None else within
    aa, bb = torch.meshgrid(a, b, indexing="ij")
    mask = (aa ** 2 + bb ** 2).sqrt() <= within + 1e-9
    ci, cj = int((a.abs()).argmin()), int((b.abs()).argmin())
    e0 = grid[ci, cj]
    region = grid[mask]
    return {
        "flatness": float((region - e0).abs().mean()),
        "center_energy": float(e0),
        "min_energy": float(region.min()),
        "center_rank": float((region < e0).float().mean()),
        "center_is_min": bool(region.min() >= e0),
    }

"""Energies of a classifier's logits (Eq. 11-13).

Sign convention, written once for the whole project: **lower energy = more probable**.

With logits ``f(x)`` of shape ``(B, K)``:

* joint energy     ``E(x, y) = -f(x)[y]``                      (Eq. 12, first line)
* marginal energy  ``E(x)    = -logsumexp_k f(x)[k]``          (Eq. 12, second line)
* cross-entropy    ``-log p(y|x) = E(x, y) - E(x)``            (Eq. 13)

All functions are pure, take logits (not images) and return per-example tensors ``(B,)``.
:func:`energy_of` turns a model into an ``x -> (B,)`` energy function for attacks, Langevin
sampling, Fisher scores and landscapes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

EnergyFn = Callable[[Tensor], Tensor]

#: names accepted by :func:`energy_of` / :func:`energy_from_logits`
ENERGY_KINDS = ("joint", "marginal", "ce")


def _check_logits(logits: Tensor) -> None:
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (B, K); got shape {tuple(logits.shape)}")


def check_labels(y, like: Tensor, n_classes: int | None = None, *, broadcast: bool = False,
                 name: str = "labels") -> Tensor:
    """Class labels for the batch of ``like`` (logits or images): ``(B,)`` long on ``like``'s device.

    The one label check of the project (energies and attacks). ``y`` must be integers (not bool
    or float) of shape ``(B,)`` with ``B = len(like)``; with ``broadcast`` a scalar or a single label
    is repeated for the whole batch. Labels must be ``>= 0`` and, when ``n_classes`` is given,
    ``< n_classes``. ``name`` is how errors call ``y``."""
    y = torch.as_tensor(y, device=like.device)
    n = like.shape[0]
    if broadcast and (y.dim() == 0 or y.shape == (1,)):  # one label for the whole batch
        y = y.reshape(()).expand(n)
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the batch; got shape {tuple(y.shape)}")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise ValueError(f"{name} must be integers (class labels); got dtype {y.dtype}")
    if y.numel() and y.device.type != "meta":  # (each int() is a host sync on a GPU)
        if n_classes is not None:
            check_label_range(y, n_classes)
        elif int(y.min()) < 0:
            raise ValueError(f"labels must be >= 0; got {int(y.min())}")
    return y.long()


def check_label_range(y: Tensor, n_classes: int) -> None:
    """Raise ``ValueError`` unless every label of ``y`` lies in ``[0, n_classes)`` (once the model's
    K is known, e.g. from its first logits; :func:`check_labels` checks everything else)."""
    if y.numel() and y.device.type != "meta" and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes - 1}] for this model; "
                         f"got min {int(y.min())}, max {int(y.max())}")


def joint_energy(logits: Tensor, y: Tensor) -> Tensor:
    """``E(x, y) = -f(x)[y]`` (Eq. 12).

    Args:
        logits: ``(B, K)`` classifier outputs.
        y: ``(B,)`` integer labels (a scalar or a single label is broadcast to the batch).
    Returns:
        ``(B,)`` joint energies.
    """
    _check_logits(logits)
    y = check_labels(y, logits, logits.shape[1], broadcast=True)
    return -logits.gather(1, y[:, None]).squeeze(1)


def marginal_energy(logits: Tensor) -> Tensor:
    """``E(x) = -log sum_k exp f(x)[k]`` (Eq. 12). Returns ``(B,)``."""
    _check_logits(logits)
    return -torch.logsumexp(logits, dim=1)


def cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Per-example cross-entropy written as ``E(x, y) - E(x)`` (Eq. 13). Returns ``(B,)``."""
    return joint_energy(logits, y) - marginal_energy(logits)


def energy_from_logits(logits: Tensor, kind: str, y: Tensor | None = None) -> Tensor:
    """Dispatch on ``kind`` in :data:`ENERGY_KINDS`; ``y`` is required except for ``marginal``."""
    if kind == "marginal":
        return marginal_energy(logits)
    if kind not in ENERGY_KINDS:
        raise ValueError(f"unknown energy {kind!r}; choose one of {', '.join(ENERGY_KINDS)}")
    if y is None:
        raise ValueError(f"energy {kind!r} needs labels y")
    return joint_energy(logits, y) if kind == "joint" else cross_entropy(logits, y)


def energy_of(model: Callable[[Tensor], Tensor], kind: str = "joint", y: Tensor | None = None) -> EnergyFn:
    """Return ``x -> (B,)`` energy of ``model`` for ``kind``.

    ``"joint"`` is E(x, y) (used by Eq. 17 generation and the energy attack, Eq. 18), ``"ce"`` is
    E(x, y) - E(x) (Eq. 16 generation, CE attack Eq. 14) and ``"marginal"`` is E(x) (SGLD in
    Algorithm 1).
    """
    if kind not in ENERGY_KINDS:
        raise ValueError(f"unknown energy {kind!r}; choose one of {', '.join(ENERGY_KINDS)}")
    if kind != "marginal" and y is None:
        raise ValueError(f"energy {kind!r} needs labels y")

    def fn(x: Tensor) -> Tensor:
        return energy_from_logits(model(x), kind, y)

    return fn

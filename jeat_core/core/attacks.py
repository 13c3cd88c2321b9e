"""Adversarial attacks written in the energy view (Eq. 2, 3, 14, 18).

An attack ascends an objective built from the energies of :mod:`jeat_core.core.energy`:

* ``objective="ce"``     -> ``E(x, y) - E(x)``  (the usual CE attack, Eq. 14)
* ``objective="energy"`` -> ``E(x, y)``         (the energy attack, Eq. 18)
* ``objective="kl"``     -> ``KL(p(·|x) ‖ p(·|x'))`` with ``p(·|x)`` from the clean logits
  (``reference=``): TRADES' attack (Zhang et al. 2019); it needs no label, only the clean logits

:func:`pgd` is the one loop (Eq. 3); :func:`fgsm` is PGD with a single step of size ``eps``
(Eq. 2) and :func:`fgsm_rs` is FGSM from a uniform random start, the attack of Algorithm 1
(and of Wong et al., "Fast is better than free"). A *threat model* is a small pair
``step`` / ``project`` (:class:`LinfThreat`, :class:`L2Threat`).

All functions are pure: inputs in [0, 1], a new tensor returned, the model's mode and its
parameters' ``.grad`` untouched (input gradients come from ``torch.autograd.grad`` on the *sum*
of per-example objectives, so step sizes do not depend on batch size).
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from jeat_core.core import rng
from jeat_core.core.configs import (
    OBJECTIVES,  # the closed set of objective names (the training configs validate with it)
)
from jeat_core.core.energy import check_label_range, check_labels, cross_entropy, joint_energy

NORMS = ("linf", "l2")


# ----------------------------------------------------------------------------- frozen parameters
@contextlib.contextmanager
def frozen(model) -> Iterator:
    """Inside the block the parameters of ``model`` (an ``nn.Module``; anything else is left alone)
    do not require gradients; afterwards exactly those that did, do again.

    Input-gradient passes (attack steps, Langevin steps) then record no parameter branch in the
    autograd graph and keep no activations alive for weight gradients. The maths is unchanged.
    """
    params = [p for p in model.parameters() if p.requires_grad] if isinstance(model, nn.Module) else []
    for p in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p in params:
            p.requires_grad_(True)


def input_layout(x: Tensor, channels_last: bool | None) -> torch.memory_format:
    """The memory layout an input-gradient loop (attack, Langevin chain) iterates ``x`` in:
    channels-last for 4-D ``x`` when ``channels_last`` is true, or when it is ``None`` and ``x`` is
    on the CPU (oneDNN convolves that layout faster there, even with contiguous weights)."""
    cl = x.device.type == "cpu" if channels_last is None else bool(channels_last)
    return torch.channels_last if cl and x.dim() == 4 else torch.contiguous_format


# ----------------------------------------------------------------------------- threat models
@dataclass(frozen=True)
class LinfThreat:
    """L-inf ball of radius ``eps``: signed-gradient steps, coordinate-wise clipping."""

    eps: float

    def step(self, g: Tensor, step_size: float) -> Tensor:
        return step_size * g.sign()

    def project(self, delta: Tensor) -> Tensor:
        return delta.clamp(-self.eps, self.eps)

    def project_(self, delta: Tensor) -> Tensor:  # in place, same values as project
        return delta.clamp_(-self.eps, self.eps)

    def random(self, like: Tensor, generator: torch.Generator | None) -> Tensor:
        u = rng.rand_like(like, generator=generator)
        return (2 * u - 1) * self.eps


def _per_example_norm(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


@dataclass(frozen=True)
class L2Threat:
    """L2 ball of radius ``eps``: normalised-gradient steps, radial projection."""

    eps: float

    def step(self, g: Tensor, step_size: float) -> Tensor:
        return step_size * g / _per_example_norm(g).clamp_min(1e-12)

    def project(self, delta: Tensor) -> Tensor:
        n = _per_example_norm(delta)
        return delta * (self.eps / n.clamp_min(1e-12)).clamp(max=1.0)

    def project_(self, delta: Tensor) -> Tensor:
        return delta.mul_((self.eps / _per_example_norm(delta).clamp_min(1e-12)).clamp(max=1.0))

    def random(self, like: Tensor, generator: torch.Generator | None) -> Tensor:
        # uniform in the ball: gaussian direction, radius eps * U^(1/d)
        g = rng.randn_like(like, generator=generator)
        d = like[0].numel()
        u = rng.rand((like.shape[0],), generator=generator, device=like.device, dtype=like.dtype)
        r = (self.eps * u.pow(1.0 / d)).view(-1, *([1] * (like.dim() - 1)))
        return g / _per_example_norm(g).clamp_min(1e-12) * r


def threat_model(norm: str, eps: float) -> LinfThreat | L2Threat:
    if norm == "linf":
        return LinfThreat(eps)
    if norm == "l2":
        return L2Threat(eps)
    raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")


# ----------------------------------------------------------------------------- validation
def _check_number(name: str, value: float, *, allow_zero: bool = True) -> float:
    """``value`` as a Python float (numpy and 0-d tensor scalars accepted) if finite and >= 0."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.dtype.is_complex:
        value = value.item()
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}; got {value}")
    return float(value)


def _check_count(name: str, value: int) -> int:
    """``value`` as a Python int if it is an integer (not a bool) >= 0."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
    return int(value)


def check_images(x: Tensor, name: str = "x") -> None:
    """Raise ``ValueError`` unless ``x`` is a float ``(B, C, H, W)`` batch with values in [0, 1]."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W); got shape {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise ValueError(f"{name} must be a float tensor with values in [0, 1]; got dtype {x.dtype}")
    if x.numel() and x.device.type != "meta":  # meta tensors (shape-only tracing) have no values
        lo, hi = float(x.min()), float(x.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"{name} contains NaN or inf")
        if lo < 0 or hi > 1:
            raise ValueError(f"{name} must have values in [0, 1]; got range [{lo:.4g}, {hi:.4g}]")


def _ce_unchecked(logits: Tensor, y: Tensor) -> Tensor:
    return torch.logsumexp(logits, 1) - logits.gather(1, y[:, None]).squeeze(1)


def _energy_unchecked(logits: Tensor, y: Tensor) -> Tensor:
    return -logits.gather(1, y[:, None]).squeeze(1)


def kl_from(reference: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """The per-example ``KL(p ‖ q) = Σ_k p_k (log p_k − log q_k)`` of ``p = softmax(reference)`` (fixed,
    the clean logits) and ``q = softmax(logits)``: the objective TRADES' attack ascends (the label
    argument is ignored)."""
    log_p = torch.log_softmax(reference.detach().float(), 1)
    p = log_p.exp()

    def kl(logits: Tensor, y: Tensor) -> Tensor:
        return (p * (log_p - torch.log_softmax(logits.float(), 1))).sum(1)

    return kl


# name -> (the objective with its label checks, the same without them). The loops use the second:
# the attack checks the labels once (on a GPU each check is a host sync). Bitwise the same values
# and gradients: ``lse - l_y`` is ``(-l_y) - (-lse)``.
_OBJECTIVE_FNS: dict[str, tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor, Tensor], Tensor]]] = {
    "ce": (cross_entropy, _ce_unchecked),
    "energy": (joint_energy, _energy_unchecked),
}
NEEDS_REFERENCE = ("kl",)  # objectives of the clean logits (``reference=``) rather than of the label


def _objective(name: str, *, unchecked: bool = False, reference: Tensor | None = None
               ) -> Callable[[Tensor, Tensor], Tensor]:
    """The per-example objective ``name`` of :data:`OBJECTIVES`; an unknown name is an error, and so
    is a ``reference`` (clean logits) missing for ``kl`` or given to another objective."""
    if name not in OBJECTIVES or (name not in _OBJECTIVE_FNS and name not in NEEDS_REFERENCE):
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    if name in NEEDS_REFERENCE:
        if reference is None:
            raise ValueError(f"objective {name!r} needs reference= (the clean logits of x)")
        return kl_from(reference)
    if reference is not None:
        raise ValueError(f"reference= is only used by the {', '.join(NEEDS_REFERENCE)} objective, not {name!r}")
    return _OBJECTIVE_FNS[name][1 if unchecked else 0]


def _check_reference(reference: Tensor | None, x: Tensor) -> None:
    if reference is not None and (not isinstance(reference, Tensor) or reference.dim() != 2
                                  or reference.shape[0] != x.shape[0]):
        got = tuple(reference.shape) if isinstance(reference, Tensor) else type(reference).__name__
        raise ValueError(f"reference must be the (B, K) clean logits of x with B = {x.shape[0]}; got {got}")


def _logits(model: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, *, check: Tensor | None = None) -> Tensor:
    """``model(x)`` after checking that it gives ``(B, K)`` logits and that the labels ``check``
    (default ``y``) lie in ``[0, K)``."""
    logits = model(x)
    n_classes = logits.shape[-1]
    if logits.dim() != 2:
        raise ValueError(f"the model must return (B, K) logits; got shape {tuple(logits.shape)}")
    check_label_range(y if check is None else check, n_classes)
    return logits


# ----------------------------------------------------------------------------- attacks
def pgd(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    step_size: float,
    n_steps: int,
    norm: str = "linf",
    objective: str = "ce",
    random_start: bool = True,
    targeted: bool = False,
    generator: torch.Generator | None = None,
    mask: Tensor | None = None,
    channels_last: bool | None = None,
    reference: Tensor | None = None,
) -> Tensor:
    """Projected gradient ascent on an energy objective (Eq. 3; objective of Eq. 14 or 18, or TRADES' KL).

    ``x_n = Proj_{B(x_0, eps) ∩ [0,1]}( x_{n-1} + step(∇_x obj(x_{n-1}, y)) )``

    Args:
        model: maps ``(B, C, H, W)`` images in [0, 1] to ``(B, K)`` logits.
        x: ``(B, C, H, W)`` clean images in [0, 1].
        y: ``(B,)`` labels (the true labels; the *target* labels when ``targeted``).
        eps: radius of the threat model (e.g. ``8/255``).
        step_size: step per iteration (``η`` in Eq. 3).
        n_steps: number of iterations (0 returns the random start, or ``x``).
        norm: ``"linf"`` or ``"l2"``.
        objective: ``"ce"`` (E(x,y) - E(x), Eq. 14), ``"energy"`` (E(x,y), Eq. 18) or ``"kl"``
            (KL(p(·|x) ‖ p(·|x')), TRADES; needs ``reference``).
        random_start: start from a uniform point of the ball (Madry et al.).
        targeted: *descend* the objective for label ``y`` (move towards class y).
        generator: optional ``torch.Generator`` for the random start.
        mask: optional ``(B,)`` bool tensor: attack only these examples, return the others unchanged
            (:func:`jeat_core.measure.metrics.robust_accuracy` attacks only those classified correctly when
            clean). The random start is still drawn for the whole batch, so for a model that treats
            each example on its own (no batch norm in train mode) every attacked example gets the
            iterates of the full attack (up to float rounding). The label range is checked for the
            whole batch (when any example is attacked).
        channels_last: run the model on channels-last images. ``None`` (default): on CPU tensors
            only, where oneDNN convolves that layout faster even with contiguous weights (1.1–1.3×
            per PGD step on the shipped cpu models); ``True``/``False`` force it (training passes
            its ``channels_last`` setting). The values are the same up to float rounding. The
            model then receives channels-last tensors: one that flattens with ``.view`` needs
            ``.reshape``, or pass ``False``.
        reference: ``(B, K)`` clean logits of ``x``, for ``objective="kl"`` only.
    Returns:
        ``(B, C, H, W)`` adversarial images in the memory layout of ``x``, inside the eps-ball
        around ``x`` and in [0, 1].
    """
    check_images(x)
    y = check_labels(y, x, name="y")
    eps = _check_number("eps", eps)
    step_size = _check_number("step_size", step_size)
    n_steps = _check_count("n_steps", n_steps)
    _check_reference(reference, x)
    threat = threat_model(norm, eps)
    sign = -1.0 if targeted else 1.0

    idx = _mask_index(mask, x)
    obj = _objective(objective, unchecked=True,
                     reference=reference if reference is None or idx is None else reference[idx])

    x_in, y_all = x.detach(), y
    delta = threat.random(x_in, generator) if random_start else torch.zeros_like(x_in)  # whole batch
    if idx is not None:
        if idx.numel() == 0:
            return x_in.clone()
        x_in, y, delta = x_in[idx], y[idx], delta[idx]
    layout = input_layout(x_in, channels_last)
    x0 = x_in.contiguous(memory_format=layout)
    delta = ((x0 + delta).clamp(0, 1) - x0).detach().contiguous(memory_format=layout)
    with frozen(model):  # input gradients only: no parameter branch in the graph
        for i in range(n_steps):
            delta.requires_grad_(True)
            # the labels (all of them, attacked or not) are checked once, against the first logits
            logits = _logits(model, x0 + delta, y, check=y_all) if i == 0 else model(x0 + delta)
            loss = obj(logits, y).sum()
            (g,) = torch.autograd.grad(loss if sign > 0 else -loss, delta)
            with torch.no_grad():  # in place (fewer allocations), same arithmetic as project(delta + step)
                delta = threat.project_(delta.detach().add_(threat.step(g, step_size)))
                delta = (x0 + delta).clamp_(0, 1).sub_(x0)  # stay a valid image
    x_adv = (x0 + delta).detach()
    if idx is None:
        return torch.empty_like(x).copy_(x_adv)  # in the layout of x
    out = x.detach().clone()
    out[idx] = x_adv
    return out


def _mask_index(mask: Tensor | None, x: Tensor) -> Tensor | None:
    """The indices of the examples ``mask`` selects (``None``: all), after checking ``mask``."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != x.shape[:1]:
        got = f"{mask.dtype} of shape {tuple(mask.shape)}" if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a bool tensor of shape ({x.shape[0]},); got {got}")
    return mask.to(x.device).nonzero().squeeze(1)


def fgsm(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    objective: str = "ce",
    targeted: bool = False,
) -> Tensor:
    """FGSM (Eq. 2 / Eq. 14, or Eq. 18 with ``objective="energy"``): one L-inf step of size eps.

    Identical to ``pgd(..., step_size=eps, n_steps=1, random_start=False)``.
    """
    return pgd(model, x, y, eps=eps, step_size=eps, n_steps=1, norm="linf",
               objective=objective, random_start=False, targeted=targeted)


def fgsm_rs(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    step_size: float | None = None,
    objective: str = "energy",
    grad_at: str = "perturbed",
    generator: torch.Generator | None = None,
    channels_last: bool | None = None,
    reference: Tensor | None = None,
) -> Tensor:
    """FGSM with a uniform random start: the attack of Algorithm 1 (and of Wong et al. 2020).

    ``δ ~ U(-ε, ε);  δ <- clip(δ + α·sign(∇_x obj), -ε, ε);  x_adv = clip(x + δ, 0, 1)``

    Algorithm 1 writes ``α = ε`` and ``∇_x E(x, y)`` without saying where the gradient is taken.
    Our default takes it at the randomly perturbed point ``x + δ`` (``grad_at="perturbed"``, as in
    Wong et al.; the gradient at the clean point would make the random start pointless for the
    direction); ``grad_at="clean"`` takes the literal reading. ``step_size`` defaults to ``eps``;
    ``channels_last`` and ``reference`` (the ``kl`` objective's clean logits) as in :func:`pgd`.
    """
    check_images(x)
    y = check_labels(y, x, name="y")
    eps = _check_number("eps", eps)
    alpha = _check_number("step_size", eps if step_size is None else step_size)
    if grad_at not in ("perturbed", "clean"):
        raise ValueError(f"grad_at must be 'perturbed' or 'clean'; got {grad_at!r}")
    if grad_at == "perturbed":
        return pgd(model, x, y, eps=eps, step_size=alpha, n_steps=1, norm="linf", objective=objective,
                   random_start=True, generator=generator, channels_last=channels_last, reference=reference)
    if objective in NEEDS_REFERENCE:
        raise ValueError(f"the {objective} objective's gradient at the clean point is 0; use grad_at='perturbed'")
    obj = _objective(objective)
    threat = LinfThreat(eps)
    x0 = x.detach()
    delta = threat.random(x0, generator)
    xg = x0.clone().requires_grad_(True)
    with frozen(model):
        (g,) = torch.autograd.grad(obj(_logits(model, xg, y), y).sum(), xg)
    delta = threat.project(delta + threat.step(g, alpha))
    return (x0 + delta).clamp(0, 1).detach()

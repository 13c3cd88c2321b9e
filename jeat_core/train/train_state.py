"""What one training step works on: the :class:`TrainState`, the :class:`Batch` (with the Fig. 3
:class:`EnergyDynamics` measurement) and the :class:`LossResult` every method's loss returns.

Shared by :mod:`jeat_core.train.methods` (the losses), :mod:`jeat_core.train.guard` and :mod:`jeat_core.train.training`
(the loop), so none of those imports another for these types.
"""

from __future__ import annotations

import contextlib
import copy
import json
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from jeat_core.core.energy import joint_energy, marginal_energy
from jeat_core.core.sampling import ReplayBuffer


def world() -> tuple[int, int]:
    """``(rank, world size)`` of this process (``(0, 1)`` without torch.distributed)."""
    import torch.distributed as dist  # only under DDP (not in every torch build)

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@dataclass
class TrainState:
    """Everything that changes during training; ``state_dict()`` makes it resumable."""

    model: nn.Module  # maybe DDP-wrapped; ``core`` is the bare module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    generator: torch.Generator  # augmentation, noise, attacks, SGLD (per rank)
    buffer: ReplayBuffer | None = None
    step: int = 0
    device: torch.device = torch.device("cpu")
    events: list = field(default_factory=list)
    train_seconds: float = 0.0
    total_steps: int = 0
    energy_ref: float = 0.0  # guard: largest max |logit| up to the last good snapshot
    energy_window: float = 0.0  # guard: largest max |logit| since the last good snapshot
    ce_ref: float = -1.0  # guard: mean CE over the window before the last good snapshot (-1: none yet)
    ce_sum: float = 0.0  # guard: sum and count of CE since the last good snapshot
    ce_n: int = 0

    @property
    def core(self) -> nn.Module:
        m = getattr(self.model, "module", self.model)
        return getattr(m, "_orig_mod", m)

    def state_dict(self) -> dict:
        return {
            "model": {k: v.detach().cpu().clone() for k, v in self.core.state_dict().items()},
            "optimizer": _to_cpu(copy.deepcopy(self.optimizer.state_dict())),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "buffer": self.buffer.state_dict() if self.buffer is not None else None,
            "step": self.step,
            "events": json.dumps(self.events),
            "train_seconds": self.train_seconds,
            "energy_ref": self.energy_ref,
            "energy_window": self.energy_window,
            "ce_ref": self.ce_ref, "ce_sum": self.ce_sum, "ce_n": self.ce_n,
        }

    def load_state_dict(self, s: dict) -> None:
        self.core.load_state_dict(s["model"])
        self.optimizer.load_state_dict(s["optimizer"])
        self.scheduler.load_state_dict(s["scheduler"])
        try:
            self.generator.set_state(s["generator"])
        except RuntimeError:  # saved by a generator of another device type (CPU run resumed on a GPU)
            self.generator.manual_seed(int(s["step"]) * 7919 + 1)
        torch.set_rng_state(s["torch_rng"])
        if self.buffer is not None and s.get("buffer") is not None:
            self.buffer.load_state_dict(s["buffer"])
        self.step = int(s["step"])
        self.events = json.loads(s.get("events", "[]"))
        self.train_seconds = float(s.get("train_seconds", 0.0))
        self.energy_ref = float(s.get("energy_ref", 0.0))
        self.energy_window = float(s.get("energy_window", 0.0))
        self.ce_ref, self.ce_sum = float(s.get("ce_ref", -1.0)), float(s.get("ce_sum", 0.0))
        self.ce_n = int(s.get("ce_n", 0))


def _to_cpu(obj):
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


@contextlib.contextmanager
def evaluating(model: nn.Module):
    """Put ``model`` in eval mode inside the block and restore its previous mode after."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


def autocast(state: TrainState, cfg):
    """bf16 autocast on CUDA when ``cfg.amp``; nothing on the CPU."""
    if cfg.amp and state.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class EnergyDynamics:
    """The Fig. 3 / Eq. 15 measurement of one update, for E(x, y) and E(x).

    ``Δ_x E = E(x_in) − E(x_ori)`` before the update and ``Δ_θ E = E_after(x_in) − E_before(x_in)``
    after it, where ``x_in`` is the input the loss trains on (the attack example; the noisy image
    for ``noise``/``jem``; ``x`` for ``standard``). Energies are measured in eval mode without
    gradients, so the measurement changes neither the model nor any random stream.
    """

    def __init__(self, state: TrainState, cfg, x_ori: Tensor, y: Tensor):
        self.state, self.cfg, self.x_ori, self.y = state, cfg, x_ori, y
        self.x_in: Tensor | None = None
        self.e_ori: dict[str, Tensor] = {}
        self.e_in: dict[str, Tensor] = {}
        self.samples: dict[str, Tensor] = {}  # after(): the per-example values (the ΔE histograms)

    def _energies(self, x: Tensor) -> dict[str, Tensor]:
        with torch.no_grad(), evaluating(self.state.core) as m, autocast(self.state, self.cfg):
            logits = m(x)
            return {"joint": joint_energy(logits, self.y).float(), "marginal": marginal_energy(logits).float()}

    def before(self, x_in: Tensor) -> None:
        """Called by the loss with its training input, before the training forward pass."""
        self.x_in = x_in
        self.e_ori, self.e_in = self._energies(self.x_ori), self._energies(x_in)

    def after(self) -> dict[str, float]:
        """Called after the update: ``dxE_*`` and ``dthetaE_*`` means and variances (the per-example
        values stay in :attr:`samples`, keyed the same way without ``_mean``)."""
        if self.x_in is None:
            return {}
        e_after = self._energies(self.x_in)
        out = {}
        for k in ("joint", "marginal"):
            dx, dth = self.e_in[k] - self.e_ori[k], e_after[k] - self.e_in[k]
            self.samples.update({f"dxE_{k}": dx.cpu(), f"dthetaE_{k}": dth.cpu()})
            out.update({f"dxE_{k}_mean": float(dx.mean()), f"dxE_{k}_var": float(dx.var(unbiased=False)),
                        f"dthetaE_{k}_mean": float(dth.mean()), f"dthetaE_{k}_var": float(dth.var(unbiased=False))})
        return out


@dataclass
class Batch:
    """One training batch: images ``x`` ``(B, C, H, W)`` in [0, 1] and labels ``y`` ``(B,)``; at
    logging steps ``dynamics`` is told which input the loss trains on."""

    x: Tensor
    y: Tensor
    dynamics: EnergyDynamics | None = None


@dataclass
class LossResult:
    """What a method's loss returns: the loss to minimise and what the guard and the log need.

    ``ce`` (the classification cross-entropy) and ``max_abs_energy`` (max |logit| over every input
    of the step's forward pass) are what the divergence guard reads; ``terms`` are the method's own
    logged values (e.g. ``gen_loss``, ``kl``); ``chain_steps`` the mean SGLD steps of the chains
    just sampled (SGLD methods)."""

    loss: Tensor
    ce: float
    acc: float
    max_abs_energy: float
    terms: dict[str, float] = field(default_factory=dict)
    chain_steps: float | None = None

    def metrics(self) -> dict[str, float]:
        """The logged record (this key order is the log's)."""
        out = {"ce": self.ce, "acc": self.acc, **self.terms, "loss": float(self.loss.detach()),
               "max_abs_energy": self.max_abs_energy}
        if self.chain_steps is not None:
            out["chain_steps"] = self.chain_steps
        return out


@dataclass
class StepResult:
    """One applied update: the loss's result, the new learning rate and (at logging steps) the Fig. 3
    energy dynamics, as batch statistics (``dynamics``) and per example (``samples``, the ΔE histograms).
    ``metrics`` is the logged record; the guard reads the typed fields."""

    loss: LossResult
    lr: float
    dynamics: dict[str, float] = field(default_factory=dict)
    samples: dict[str, Tensor] = field(default_factory=dict)

    @property
    def ce(self) -> float:
        return self.loss.ce

    @property
    def max_abs_energy(self) -> float:
        return self.loss.max_abs_energy

    @property
    def metrics(self) -> dict[str, float]:
        return {**self.loss.metrics(), "lr": self.lr, **self.dynamics}

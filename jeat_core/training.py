"""Training: one loop (:func:`fit`) and one loss function per method.

Methods (Sec. 2.1, 3.2, 3.3, 3.4 of the paper, and JEM for comparison):

=========  ====================================================================================
standard   CE on clean images.
noise      CE on ``x + δ``, ``δ ~ N(0, σ²)`` (Sec. 3.2, "blind adversarial training").
at         CE on CE-attack examples (Eq. 1/14): FGSM with random start, or PGD-k.
prejeat    CE on energy-attack examples (Eq. 18).
jeat       Algorithm 1: energy attack; SGLD negatives on E(x) from a replay buffer; minimise
           ``[E(x_adv,y) − E(x_adv)] + [E(x_adv) − E(x̃_K)]`` (Eq. 19/20).
jem        Grathwohl et al.: CE on clean images + ``E(x) − E(x̃_K)``.
=========  ====================================================================================

Each method is a loss ``loss(state, batch, cfg) -> (loss tensor, metrics)`` in :data:`LOSSES`;
:func:`train_step` applies one update with it and :func:`fit` is the loop around that, calling three
small helpers: :class:`Batches` (the data), :class:`DivergenceGuard` (roll-back on divergence) and
:class:`RunWriter` (manifest, checkpoint, log). At logging steps :class:`EnergyDynamics` measures
the energy dynamics of Fig. 3 / Eq. 15 for E(x,y) and E(x): ``Δ_x E = E(x_adv) − E(x_ori)`` before
the update and ``Δ_θ E = E_after(x_adv) − E_before(x_adv)`` after it (for ``noise`` ``x_adv`` is
the noisy image; for ``standard``/``jem`` it is ``x``).

Choices the paper leaves open are fields of the configs (documented there) and settable from
the command line.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import __version__, rng
from .attacks import OBJECTIVES, fgsm_rs, frozen, pgd
from .checkpoints import ENERGY_LOG, STATE, load_state
from .data import DATASETS, Split, augment, load_split
from .energy import cross_entropy, joint_energy, marginal_energy
from .models import build_model, check_arch
from .sampling import ClassGaussian, ReplayBuffer, langevin

METHODS = ("standard", "noise", "at", "prejeat", "jeat", "jem")
PRESETS = ("cpu", "paper")


# ============================================================================ configs
# Every config validates itself in ``__post_init__`` (names and ranges), so a bad value is refused
# the same way from the Python API (``make_config``, ``dataclasses.replace``) and from the CLI.
def _check_number(name: str, v, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                  hi_open: bool = False, integer: bool = False, optional: bool = False) -> None:
    """Raise ``ValueError`` unless ``v`` is a finite number (an ``int`` when ``integer``) in the range."""
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)) \
            or (not integer and not math.isfinite(v)):
        raise ValueError(f"{name} must be {'an integer' if integer else 'a finite number'}; got {v!r}")
    if (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and (v > hi or (hi_open and v == hi))):
        span = f"{'(' if lo_open else '['}{'-inf' if lo is None else f'{lo:g}'}, " \
               f"{'inf' if hi is None else f'{hi:g}'}{')' if hi_open or hi is None else ']'}"
        raise ValueError(f"{name} must lie in {span}; got {v!r}")


def _check_choice(name: str, v, choices: tuple) -> None:
    if v not in choices:
        raise ValueError(f"unknown {name} {v!r}; choose one of {', '.join(map(str, choices))}")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture name in :data:`jeat_core.models.MODELS` and its keyword arguments."""

    name: str = "small_cnn"
    kwargs: dict = field(default_factory=dict)


OPTIMISERS = ("adam", "sgd")
SCHEDULES = ("cosine", "constant", "step")


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and schedule. ``schedule``: ``cosine`` (to 0) or ``constant``; linear warm-up
    over ``warmup_steps``; ``step`` multiplies by ``gamma`` at each fraction in ``milestones``."""

    name: str = "adam"  # adam | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    batch_size: int = 128
    warmup_steps: int = 200
    schedule: str = "cosine"  # cosine | constant | step
    milestones: tuple = (0.5, 0.75)
    gamma: float = 0.1
    grad_clip: float = 0.0  # 0 = off

    def __post_init__(self):
        _check_choice("optimiser", self.name, OPTIMISERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_number("lr", self.lr, 0.0, lo_open=True)
        _check_number("weight_decay", self.weight_decay, 0.0)
        _check_number("momentum", self.momentum, 0.0, 1.0, hi_open=True)
        _check_number("batch_size", self.batch_size, 1, integer=True)
        _check_number("warmup_steps", self.warmup_steps, 0, integer=True)
        for m in self.milestones:
            _check_number("milestones", m, 0.0, 1.0)
        _check_number("gamma", self.gamma, 0.0, lo_open=True)
        _check_number("grad_clip", self.grad_clip, 0.0)


ATTACK_KINDS = ("fgsm_rs", "pgd")
PGD_STEPS = 10  # n_steps of a training PGD attack when not given
PGD_STEP_SIZE = 2 / 255  # its step size when not given


@dataclass(frozen=True)
class AttackConfig:
    """Training attack. ``kind="fgsm_rs"``: FGSM from a uniform random start (Algorithm 1's
    attack); its step size defaults to ``eps`` as written in Algorithm 1 (Wong et al. use
    1.25·eps); the gradient is taken at the randomly perturbed point (``grad_at``, see
    :func:`jeat_core.attacks.fgsm_rs`). ``kind="pgd"``: ``n_steps`` (default 10) of PGD with
    ``step_size`` (default 2/255).

    ``step_size`` / ``n_steps`` left at ``None`` mean "the default of ``kind``"; the values used
    are :attr:`resolved_step_size` and :attr:`resolved_n_steps` (so ``replace(cfg, kind="pgd")``
    gets PGD's defaults, not FGSM's)."""

    kind: str = "fgsm_rs"  # fgsm_rs | pgd
    objective: str = "ce"  # ce (Eq. 14) | energy (Eq. 18)
    eps: float = 8 / 255
    step_size: float | None = None  # None -> eps (fgsm_rs) or 2/255 (pgd)
    n_steps: int | None = None  # None -> 1 (fgsm_rs) or 10 (pgd)
    grad_at: str = "perturbed"

    def __post_init__(self):
        _check_choice("attack kind", self.kind, ATTACK_KINDS)
        _check_choice("attack objective", self.objective, OBJECTIVES)
        _check_choice("grad_at", self.grad_at, ("perturbed", "clean"))
        _check_number("attack eps", self.eps, 0.0, 1.0)
        _check_number("attack step_size", self.step_size, 0.0, 1.0, lo_open=True, optional=True)
        _check_number("attack n_steps", self.n_steps, 1, integer=True, optional=True)

    @property
    def resolved_step_size(self) -> float:
        if self.step_size is not None:
            return self.step_size
        return self.eps if self.kind == "fgsm_rs" else PGD_STEP_SIZE

    @property
    def resolved_n_steps(self) -> int:
        if self.n_steps is not None:
            return self.n_steps
        return 1 if self.kind == "fgsm_rs" else PGD_STEPS


BUFFER_INITS = ("uniform", "class_gaussian")


@dataclass(frozen=True)
class SGLDConfig:
    """SGLD negatives for ``jeat``/``jem`` on the marginal energy E(x) (Algorithm 1).

    The update is ``x <- x − (η/2)∇E(x) + s·N(0, I)``. Defaults follow JEM's practical sampler
    (gradient step 1, noise 0.01, i.e. ``η = 2``, ``s = 0.01``) with fewer steps at cpu scale;
    ``noise_std=None`` gives exact Langevin (``s = sqrt(η)``) as Algorithm 1 writes it.
    ``batch_size`` negatives per step are drawn from a replay buffer of ``buffer_size`` chains,
    re-initialised with probability ``reinit_prob`` (ρ) from ``init``: ``"uniform"`` (U(0, 1), JEM)
    or ``"class_gaussian"`` (a class-Gaussian seed of a random class, :class:`~jeat_core.sampling.
    ClassGaussian` fitted on the training set; the informative init of JEM++ and of the seeds the
    paper generates from). The buffer counts every chain's SGLD steps since its (re-)init; the
    training log's ``chain_steps`` is the mean over the negatives of a step. A chain lives about
    ``1/ρ`` visits, i.e. ``n_steps/ρ`` SGLD steps when visits are frequent enough
    (``batch_size × steps_with_p(x) / buffer_size ≳ 1/ρ``).
    """

    step_size: float = 2.0
    noise_std: float | None = 0.01
    n_steps: int = 10
    buffer_size: int = 10000
    reinit_prob: float = 0.05
    batch_size: int = 64
    clamp: bool = True
    init: str = "uniform"  # uniform | class_gaussian (buffer init and re-init)

    def __post_init__(self):
        _check_choice("SGLD buffer init", self.init, BUFFER_INITS)
        _check_number("SGLD n_steps", self.n_steps, 1, integer=True)
        _check_number("SGLD step_size", self.step_size, 0.0, lo_open=True)
        _check_number("SGLD noise_std", self.noise_std, 0.0, optional=True)
        _check_number("SGLD buffer_size", self.buffer_size, 1, integer=True)
        _check_number("SGLD batch_size", self.batch_size, 1, integer=True)
        _check_number("reinit_prob", self.reinit_prob, 0.0, 1.0)


@dataclass(frozen=True)
class TrainConfig:
    """Fields shared by every method (the per-method configs below add their own)."""

    method: str = "standard"
    preset: str = "cpu"
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    dataset: str = "cifar10"
    epochs: float = 10.0
    max_steps: int | None = None  # stop after this many steps (smoke runs); None = epochs
    seed: int = 0
    augment: bool = True
    log_every: int = 50  # energy-dynamics log and metrics
    checkpoint_every: int = 500  # resumable state
    eval_n: int = 1000  # test images for the end-of-training clean accuracy
    deterministic: bool = False
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    channels_last: bool = True
    compile: bool = False
    # fine-tuning: start from the weights of this trained model (a shipped name such as
    # "cifar10-cpu/prejeat" or a run folder); its architecture must equal ``model``. The manifest
    # records it, so the total budget is the parent's plus this run's.
    init_from: str | None = None
    # divergence guard (see :func:`_is_bad`): every update is checked (finite loss, metrics and
    # parameters; max |logit| against an absolute ceiling and a relative rule), and the logits of
    # the updated model are probed before anything is saved
    max_abs_energy: float = 1e4  # absolute ceiling on max |logit|
    energy_floor: float = 50.0  # the relative rule never trips below this max |logit|
    energy_growth: float = 4.0  # ... and trips above energy_growth × the max |logit| of the known-good run
    guard_every: int = 50  # in-memory "last good" snapshot period
    max_retries: int = 3  # roll-backs in a row before giving up (reset after a recovery)
    lr_backoff: float = 0.5

    def __post_init__(self):
        _check_choice("method", self.method, METHODS)
        _check_choice("preset", self.preset, PRESETS)
        _check_choice("dataset", self.dataset, DATASETS)
        _check_number("epochs", self.epochs, 0.0, lo_open=True)
        _check_number("max_steps", self.max_steps, 1, integer=True, optional=True)
        _check_number("seed", self.seed, 0, 2 ** 31 - 1, integer=True)
        _check_number("log_every", self.log_every, 0, integer=True)
        _check_number("checkpoint_every", self.checkpoint_every, 0, integer=True)
        _check_number("eval_n", self.eval_n, 0, integer=True)
        if self.init_from is not None and not (isinstance(self.init_from, str) and self.init_from):
            raise ValueError(f"init_from must be a model name or folder; got {self.init_from!r}")
        _check_number("max_abs_energy", self.max_abs_energy, 0.0, lo_open=True)
        _check_number("energy_floor", self.energy_floor, 0.0)
        _check_number("energy_growth", self.energy_growth, 0.0, lo_open=True)
        _check_number("guard_every", self.guard_every, 1, integer=True)
        _check_number("max_retries", self.max_retries, 0, integer=True)
        _check_number("lr_backoff", self.lr_backoff, 0.0, 1.0, lo_open=True)

    @property
    def uses_attack(self) -> bool:
        """Whether the method trains on attacked inputs (the config has an ``attack``)."""
        return False

    @property
    def uses_sgld(self) -> bool:
        """Whether the method draws SGLD negatives from a replay buffer (the config has ``sgld``)."""
        return False


@dataclass(frozen=True)
class StandardConfig(TrainConfig):
    method: str = "standard"


@dataclass(frozen=True)
class NoiseConfig(TrainConfig):
    """Gaussian noise injection, ``δ ~ N(0, σ²)`` with σ in {8, 16, 24}/255 in the paper."""

    method: str = "noise"
    sigma: float = 16 / 255
    clip: bool = True  # clip x + δ to [0, 1]

    def __post_init__(self):
        super().__post_init__()
        _check_number("sigma", self.sigma, 0.0, 1.0, lo_open=True)


@dataclass(frozen=True)
class ATConfig(TrainConfig):
    method: str = "at"
    attack: AttackConfig = AttackConfig(objective="ce")

    @property
    def uses_attack(self) -> bool:
        return True


@dataclass(frozen=True)
class PreJEATConfig(TrainConfig):
    method: str = "prejeat"
    attack: AttackConfig = AttackConfig(objective="energy")

    @property
    def uses_attack(self) -> bool:
        return True


def _check_px_term(cfg) -> None:
    _check_number("energy_l2", cfg.energy_l2, 0.0)
    _check_number("gen_weight", cfg.gen_weight, 0.0)
    _check_number("gen_start", cfg.gen_start, 0.0, 1.0, hi_open=True)


@dataclass(frozen=True)
class JEATConfig(TrainConfig):
    """Algorithm 1. ``energy_l2`` adds ``λ (E(x_adv)² + E(x̃)²)``, the remedy for JEM-style
    energy blow-up (REFERENCES.md); 0 is the paper's objective."""

    method: str = "jeat"
    attack: AttackConfig = AttackConfig(objective="energy")
    sgld: SGLDConfig = SGLDConfig()
    energy_l2: float = 0.0
    gen_weight: float = 1.0  # weight of the p(x) term E(x_adv) − E(x̃); 1 is Algorithm 1
    gen_start: float = 0.0  # fraction of training run as PreJEAT before the p(x) term is switched on

    def __post_init__(self):
        super().__post_init__()
        _check_px_term(self)

    @property
    def uses_attack(self) -> bool:
        return True

    @property
    def uses_sgld(self) -> bool:
        return True


@dataclass(frozen=True)
class JEMConfig(TrainConfig):
    """JEM: CE on clean data + ``E(x̂) − E(x̃_K)`` with ``x̂ = x + N(0, data_noise²)``."""

    method: str = "jem"
    sgld: SGLDConfig = SGLDConfig()
    data_noise: float = 0.03
    energy_l2: float = 0.0
    gen_weight: float = 1.0  # weight of the p(x) term E(x̂) − E(x̃)
    gen_start: float = 0.0  # fraction of training run as a plain classifier before the p(x) term

    def __post_init__(self):
        super().__post_init__()
        _check_number("data_noise", self.data_noise, 0.0)
        _check_px_term(self)

    @property
    def uses_sgld(self) -> bool:
        return True


CONFIGS: dict[str, type[TrainConfig]] = {
    "standard": StandardConfig, "noise": NoiseConfig, "at": ATConfig,
    "prejeat": PreJEATConfig, "jeat": JEATConfig, "jem": JEMConfig,
}


def make_config(method: str, preset: str = "cpu", **overrides) -> TrainConfig:
    """The default config of ``method`` at ``preset`` scale, with top-level ``overrides``.

    ``cpu``: :class:`~jeat_core.models.SmallCNN` (SiLU, no norm), Adam, cosine schedule, sized
    to train within an hour on 2 CPU cores. ``paper``: WideResNet-28-10 (batch norm except for
    ``jeat``/``jem``, which cannot use it), SGD 0.1 / momentum 0.9 / wd 5e-4 for the classifiers,
    Adam 1e-4 with warm-up for the SGLD methods (JEM's settings), batch 128 (64 for SGLD methods).
    """
    if method not in CONFIGS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    cls = CONFIGS[method]
    sgld_method = method in ("jeat", "jem")
    if preset == "cpu":
        epochs = {"standard": 15, "noise": 10, "at": 6, "prejeat": 6, "jeat": 4, "jem": 4}[method]
        base: dict[str, Any] = dict(
            preset="cpu",
            model=ModelConfig("small_cnn", {"widths": [32, 64, 128], "act": "silu", "norm": "none"}),
            optim=OptimConfig("adam", lr=3e-4 if sgld_method else 1e-3, batch_size=128,
                              warmup_steps=200, schedule="cosine"),
            epochs=float(epochs))
        if sgld_method:  # short-run SGLD at cpu scale: K = 5 persistent steps on 64 chains
            base["sgld"] = SGLDConfig(n_steps=5, batch_size=64)
    else:
        base = dict(
            preset="paper",
            model=ModelConfig("wrn28_10", {"norm": "none" if sgld_method else "batch", "act": "silu"}),
            optim=(OptimConfig("adam", lr=1e-4, batch_size=64, warmup_steps=1000, schedule="step",
                               milestones=(0.8, 0.9), gamma=0.3) if sgld_method else
                   OptimConfig("sgd", lr=0.1, weight_decay=5e-4, batch_size=128, warmup_steps=0,
                               schedule="step", milestones=(0.5, 0.75))),
            epochs=150.0 if sgld_method else 100.0, log_every=100, checkpoint_every=1000,
            eval_n=10000)
        if sgld_method:
            base["sgld"] = SGLDConfig(n_steps=20, batch_size=64)
    base.update(overrides)
    try:
        return cls(method=method, **base)
    except TypeError as e:
        raise ValueError(f"bad option for method {method!r}: {e}") from e


def config_to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)


def saved_config(out: str | os.PathLike) -> TrainConfig:
    """The config stored in ``out/state.pt`` (what ``--resume`` continues with)."""
    from .checkpoints import CheckpointError

    path = Path(out) / STATE
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no training state at {path}; start without --resume")
    state = load_state(path)
    if "config" not in state:
        raise CheckpointError(f"{path} holds no config; it was not written by jeat train")
    try:
        return config_from_dict(json.loads(state["config"]))
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: unreadable config ({type(e).__name__}: {e})") from None


RESUMABLE = ("epochs", "max_steps")  # what a resumed run may change; the stored config wins for the rest


def resume_config(out: str | os.PathLike, **changes) -> TrainConfig:
    """The config a resumed run of ``out`` continues with: the stored one (:func:`saved_config`)
    with ``changes`` to the fields in :data:`RESUMABLE` (``fit(resume=True)`` and ``jeat train
    --resume`` both use this)."""
    other = sorted(set(changes) - set(RESUMABLE))
    if other:
        raise ValueError(f"a resumed run keeps its stored {', '.join(other)}; only {', '.join(RESUMABLE)} may change")
    return replace(saved_config(out), **changes)


def config_from_dict(d: dict) -> TrainConfig:
    """Inverse of :func:`config_to_dict` (used by ``--resume`` and manifests)."""
    cls = CONFIGS[d["method"]]
    kw = dict(d)
    kw["model"] = ModelConfig(**d["model"])
    o = dict(d["optim"])
    o["milestones"] = tuple(o.get("milestones", ()))
    kw["optim"] = OptimConfig(**o)
    if "attack" in d:
        kw["attack"] = AttackConfig(**d["attack"])
    if "sgld" in d:
        kw["sgld"] = SGLDConfig(**d["sgld"])
    return cls(**kw)


# ============================================================================ state
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


def _autocast(state: TrainState, cfg: TrainConfig):
    if cfg.amp and state.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ============================================================================ losses
class EnergyDynamics:
    """The Fig. 3 / Eq. 15 measurement of one update, for E(x, y) and E(x).

    ``Δ_x E = E(x_in) − E(x_ori)`` before the update and ``Δ_θ E = E_after(x_in) − E_before(x_in)``
    after it, where ``x_in`` is the input the loss trains on (the attack example; the noisy image
    for ``noise``/``jem``; ``x`` for ``standard``). Energies are measured in eval mode without
    gradients, so the measurement changes neither the model nor any random stream.
    """

    def __init__(self, state: TrainState, cfg: TrainConfig, x_ori: Tensor, y: Tensor):
        self.state, self.cfg, self.x_ori, self.y = state, cfg, x_ori, y
        self.x_in: Tensor | None = None
        self.e_ori: dict[str, Tensor] = {}
        self.e_in: dict[str, Tensor] = {}

    def _energies(self, x: Tensor) -> dict[str, Tensor]:
        with torch.no_grad(), evaluating(self.state.core) as m, _autocast(self.state, self.cfg):
            logits = m(x)
            return {"joint": joint_energy(logits, self.y).float(), "marginal": marginal_energy(logits).float()}

    def before(self, x_in: Tensor) -> None:
        """Called by the loss with its training input, before the training forward pass."""
        self.x_in = x_in
        self.e_ori, self.e_in = self._energies(self.x_ori), self._energies(x_in)

    def after(self) -> dict[str, float]:
        """Called after the update: ``dxE_*`` and ``dthetaE_*`` means and variances."""
        if self.x_in is None:
            return {}
        e_after = self._energies(self.x_in)
        out = {}
        for k in ("joint", "marginal"):
            dx, dth = self.e_in[k] - self.e_ori[k], e_after[k] - self.e_in[k]
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


def _loss(state: TrainState, cfg: TrainConfig, batch: Batch, x_in: Tensor, *, ce_on: Tensor | None = None,
          negatives: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
    """The objective every method shares, with one forward pass of the (possibly DDP) model.

    ``mean CE(x_ce, y)`` with ``x_ce = ce_on`` (default ``x_in``, the training input); with SGLD
    ``negatives`` x̃ also ``gen_weight·[mean E(x_in) − mean E(x̃)] + energy_l2·(E(x_in)² + E(x̃)²)``
    (Eq. 19/20; the weights are the config's).
    """
    if batch.dynamics is not None:
        batch.dynamics.before(x_in)
    y = batch.y
    parts = [x_in] + ([ce_on] if ce_on is not None else []) + ([negatives] if negatives is not None else [])
    with _autocast(state, cfg):
        logits = state.model(torch.cat(parts)).float()  # (sum of the parts' B, K)
    chunks = list(torch.split(logits, [len(p) for p in parts]))
    l_in = chunks.pop(0)
    l_ce = chunks.pop(0) if ce_on is not None else l_in
    ce = cross_entropy(l_ce, y).mean()
    loss = ce
    out = {"ce": float(ce.detach()), "acc": float((l_ce.argmax(1) == y).float().mean())}
    if negatives is not None:
        l_neg = chunks.pop(0)
        e_pos, e_neg = marginal_energy(l_in), marginal_energy(l_neg)
        gen = e_pos.mean() - e_neg.mean()
        loss = loss + cfg.gen_weight * gen
        if cfg.energy_l2:
            loss = loss + cfg.energy_l2 * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
        out.update(gen_loss=float(gen.detach()), e_pos=float(e_pos.mean().detach()),
                   e_neg=float(e_neg.mean().detach()))
    out["loss"] = float(loss.detach())
    out["max_abs_energy"] = float(logits.detach().abs().max()) if logits.numel() else 0.0
    return loss, out


def _attack(state: TrainState, cfg, x: Tensor, y: Tensor) -> Tensor:
    a: AttackConfig = cfg.attack
    with evaluating(state.core) as m, _autocast(state, cfg):
        if a.kind == "fgsm_rs":
            return fgsm_rs(m, x, y, eps=a.eps, step_size=a.resolved_step_size, objective=a.objective,
                           grad_at=a.grad_at, generator=state.generator, channels_last=cfg.channels_last)
        return pgd(m, x, y, eps=a.eps, step_size=a.resolved_step_size, n_steps=a.resolved_n_steps,
                   objective=a.objective, random_start=True, generator=state.generator,
                   channels_last=cfg.channels_last)


def _sgld_negatives(state: TrainState, cfg) -> Tensor:
    """Algorithm 1's inner loop: K SGLD steps on E(x) from the replay buffer, pushed back.

    Under DDP each rank runs ``batch_size / world`` chains, so the negatives, like the data, are a
    global batch split across ranks (the gradients are averaged: the same objective on any N)."""
    s: SGLDConfig = cfg.sgld
    x0, idx = state.buffer.sample(s.batch_size // _dist()[1], generator=state.generator)
    x0 = x0.to(state.device)
    if cfg.channels_last:  # the negatives then join the batch in the model's layout
        x0 = x0.contiguous(memory_format=torch.channels_last)
    with evaluating(state.core) as m, frozen(m), _autocast(state, cfg):  # input gradients only
        xk = langevin(lambda z: marginal_energy(m(z)).float(), x0, step_size=s.step_size,
                      n_steps=s.n_steps, noise_std=s.noise_std, clamp=(0.0, 1.0) if s.clamp else None,
                      generator=state.generator, channels_last=cfg.channels_last)
    state.buffer.push(xk, idx, steps=s.n_steps)
    return xk


def _chain_steps(state: TrainState, cfg) -> float:
    """Mean SGLD steps of the chains just sampled (since their (re-)init), this step's included."""
    return float(state.buffer.last_age.float().mean()) + cfg.sgld.n_steps


def _gen_on(state: TrainState, cfg) -> bool:
    """Whether the p(x) term is active at this step (off during the first ``gen_start`` of training)."""
    return state.step >= cfg.gen_start * state.total_steps


def standard_loss(state: TrainState, batch: Batch, cfg: StandardConfig):
    """CE on the clean images."""
    return _loss(state, cfg, batch, batch.x)


def noise_loss(state: TrainState, batch: Batch, cfg: NoiseConfig):
    """CE on ``x + δ``, ``δ ~ N(0, σ²)`` (clipped to [0, 1] when ``cfg.clip``)."""
    xn = batch.x + cfg.sigma * rng.randn_like(batch.x, generator=state.generator)
    if cfg.clip:
        xn = xn.clamp(0, 1)
    return _loss(state, cfg, batch, xn)


def at_loss(state: TrainState, batch: Batch, cfg: ATConfig):
    """CE on the attack example of ``cfg.attack`` (Eq. 1/14 for ``at``, Eq. 18 for ``prejeat``)."""
    return _loss(state, cfg, batch, _attack(state, cfg, batch.x, batch.y))


prejeat_loss = at_loss  # same loss; the config's attack objective is "energy" (Eq. 18)


def jeat_loss(state: TrainState, batch: Batch, cfg: JEATConfig):
    """Algorithm 1: CE + ``gen_weight·[E(x_adv) − E(x̃)]`` on the energy-attack example (Eq. 18)."""
    x_adv = _attack(state, cfg, batch.x, batch.y)
    if not _gen_on(state, cfg):  # warm-up: PreJEAT
        return _loss(state, cfg, batch, x_adv)
    neg = _sgld_negatives(state, cfg)
    loss, out = _loss(state, cfg, batch, x_adv, negatives=neg)
    return loss, {**out, "chain_steps": _chain_steps(state, cfg)}


def jem_loss(state: TrainState, batch: Batch, cfg: JEMConfig):
    """JEM: CE on the clean images + ``gen_weight·[E(x̂) − E(x̃)]`` with ``x̂ = x + N(0, data_noise²)``."""
    if not _gen_on(state, cfg):  # warm-up: a plain classifier
        return _loss(state, cfg, batch, batch.x)
    xn = (batch.x + cfg.data_noise * rng.randn_like(batch.x, generator=state.generator)).clamp(0, 1)
    neg = _sgld_negatives(state, cfg)
    # p(x) term on the noisy data, CE on the clean data (JEM); Δ-energies measured at x̂
    loss, out = _loss(state, cfg, batch, xn, ce_on=batch.x, negatives=neg)
    return loss, {**out, "chain_steps": _chain_steps(state, cfg)}


#: ``method -> loss(state, batch, cfg) -> (loss tensor, metrics)``
LOSSES: dict[str, Callable[[TrainState, Batch, Any], tuple[Tensor, dict[str, float]]]] = {
    "standard": standard_loss, "noise": noise_loss, "at": at_loss,
    "prejeat": prejeat_loss, "jeat": jeat_loss, "jem": jem_loss,
}


def apply_update(state: TrainState, cfg: TrainConfig, loss: Tensor) -> float:
    """Backward, optional gradient clipping, optimiser and scheduler step; returns the new lr."""
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.optim.grad_clip:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.optim.grad_clip)
    state.optimizer.step()
    state.scheduler.step()
    return state.optimizer.param_groups[0]["lr"]


def train_step(state: TrainState, x: Tensor, y: Tensor, cfg: TrainConfig,
               log_dynamics: bool = False) -> dict[str, float]:
    """One update of ``cfg.method`` on ``(x, y)``; with ``log_dynamics`` also the Fig. 3 energies.

    Returns the loss's metrics plus ``lr`` (and ``dxE_*``/``dthetaE_*`` when measured)."""
    dynamics = EnergyDynamics(state, cfg, x, y) if log_dynamics else None
    loss, metrics = LOSSES[cfg.method](state, Batch(x, y, dynamics), cfg)
    metrics = {**metrics, "lr": apply_update(state, cfg, loss)}
    if dynamics is not None:
        metrics.update(dynamics.after())
    return metrics


# ============================================================================ the loop
class TrainingDiverged(RuntimeError):
    """Training kept diverging after ``max_retries`` roll-backs."""


def _lr_lambda(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    o = cfg.optim

    def f(step: int) -> float:
        warm = min(1.0, (step + 1) / o.warmup_steps) if o.warmup_steps else 1.0
        frac = min(step / max(total_steps, 1), 1.0)
        if o.schedule == "cosine":
            sched = 0.5 * (1 + math.cos(math.pi * frac))
        elif o.schedule == "step":
            sched = o.gamma ** sum(frac >= m for m in o.milestones)
        elif o.schedule == "constant":
            sched = 1.0
        else:
            raise ValueError(f"unknown schedule {o.schedule!r}; choose cosine, step or constant")
        return warm * sched

    return f


def _dist():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device: str | None = None) -> tuple[int, int]:
    """Initialise torch.distributed when launched by ``torchrun`` (``WORLD_SIZE > 1``)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and (device or "cuda").startswith("cuda") else "gloo"
        dist.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return _dist()


def buffer_init_fn(cfg: TrainConfig, train: Split | None, device: torch.device) -> Callable | None:
    """The replay buffer's ``init_fn`` for ``cfg.sgld.init`` (``None``: the buffer's U(0, 1))."""
    if not cfg.uses_sgld or cfg.sgld.init == "uniform":
        return None
    if train is None:
        raise ValueError("a class-Gaussian buffer init needs the training set")
    cg = ClassGaussian(torch.from_numpy(train.x), torch.from_numpy(train.y))
    n_classes = len(cg.classes)

    def init(n: int, g: torch.Generator | None) -> Tensor:
        at = g.device if g is not None else "cpu"
        labels = torch.tensor(cg.classes)[rng.randint(0, n_classes, (n,), generator=g, device=at).cpu()]
        return cg.sample(labels, generator=g, device=device)

    return init


def build_state(cfg: TrainConfig, device: torch.device, steps_total: int,
                buffer_init: Callable | None = None) -> TrainState:
    rank, world = _dist()
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = build_model(cfg.model.name, **cfg.model.kwargs).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = model.parameters()
    o = cfg.optim
    if o.name == "adam":
        opt = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay) if o.weight_decay \
            else torch.optim.Adam(params, lr=o.lr)
    elif o.name == "sgd":
        opt = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=True)
    else:
        raise ValueError(f"unknown optimiser {o.name!r}; choose 'adam' or 'sgd'")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, steps_total))
    # the generator lives on the training device (draws there, no host round trip); jeat_core.rng
    # makes every draw correct for any generator/device pair
    gen = torch.Generator(device=device if device.type == "cuda" else "cpu").manual_seed(cfg.seed * 1000 + rank + 1)
    buffer = None
    if cfg.uses_sgld:
        buffer = ReplayBuffer(cfg.sgld.buffer_size, reinit_prob=cfg.sgld.reinit_prob, init_fn=buffer_init,
                              generator=gen, device=device)
    wrapped: nn.Module = model
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if cfg.compile:
        wrapped = torch.compile(wrapped)
    return TrainState(model=wrapped, optimizer=opt, scheduler=sched, generator=gen, buffer=buffer, device=device,
                      total_steps=steps_total)


def _load_init_from(state: TrainState, cfg: TrainConfig, probe: Tensor) -> dict:
    """Load ``cfg.init_from``'s weights into ``state`` (fine-tuning); returns what the manifest records.

    The divergence guard's known-good logit scale starts at the parent's (its max |logit| on
    ``probe`` training images), not at 0: a trained classifier's logits may exceed the guard's
    floor from the first step (the shipped ``standard`` reaches 68), which is not a divergence."""
    from .checkpoints import CheckpointError, load_model

    parent, man = load_model(cfg.init_from)
    arch = man.get("arch", {})
    if arch.get("name") != cfg.model.name or dict(arch.get("kwargs", {})) != dict(cfg.model.kwargs):
        raise CheckpointError(f"--init-from {cfg.init_from}: its architecture {arch} differs from this run's "
                              f"{ {'name': cfg.model.name, 'kwargs': dict(cfg.model.kwargs)} }")
    state.core.load_state_dict(parent.state_dict())
    with torch.no_grad():
        state.energy_ref = float(parent(probe.cpu()).abs().max())
    return {"model": str(cfg.init_from), "method": man.get("method"),
            "weights_sha256": man.get("weights", {}).get("sha256"),
            "epochs": man.get("epochs_done"), "train_seconds": man.get("train_seconds"),
            "max_abs_logit": round(state.energy_ref, 3)}  # where the divergence guard's reference starts


def _chain_stats(buffer: ReplayBuffer) -> dict:
    """SGLD steps per chain of the replay buffer (the mixing budget ``n_steps/ρ`` is meant to buy)."""
    a = buffer.age.float()
    return {"n": buffer.size, "mean_steps": round(float(a.mean()), 1), "median_steps": float(a.median()),
            "max_steps": int(a.max()), "share_ge_100": round(float((a >= 100).float().mean()), 3),
            "reinits": buffer.n_reinit, "sampled": buffer.n_sampled}


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _is_bad(metrics: dict, cfg: TrainConfig, energy_ref: float = 0.0, ce_ref: float = -1.0) -> str | None:
    """Why a step's ``metrics`` show divergence, or ``None``.

    * any non-finite loss or metric;
    * ``max_abs_energy`` (max |logit| over every input of the step) above ``cfg.max_abs_energy``;
    * the relative rule (energy blow-up): max |logit| above ``max(energy_floor, energy_growth ×
      energy_ref)`` while the cross-entropy is above ``ce_ref``. ``energy_ref`` is the largest max
      |logit| the run reached up to its last good snapshot and ``ce_ref`` the mean CE over the
      window before it (``< 0``: no snapshot yet, the CE condition is dropped). Large logits alone
      are what a confident classifier has (a standard CNN on the easy procedural data passes 50
      within 100 steps while its CE falls); in a blow-up the energies run away while the loss
      rises. The shipped cpu recipes stay below 27 over thousands of steps; ``jeat train --method
      jeat --gen-weight 1`` on CIFAR-10 passes 50 around step 85 with CE rising from 2.30 to 3.6,
      and reaches hundreds by step 100 (the energy blow-up of JEM), which this trips.
    """
    if not all(math.isfinite(v) for v in metrics.values() if isinstance(v, float)):
        bad = sorted(k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v))
        if all(k.startswith("dtheta") for k in bad):  # measured with the updated model (log steps)
            return f"non-finite energies after the update ({', '.join(bad[:2])})"
        return f"non-finite {', '.join(bad[:3])}"
    m = metrics.get("max_abs_energy", 0.0)
    if m > cfg.max_abs_energy:
        return f"max |logit| {m:.3g} > max_abs_energy {cfg.max_abs_energy:g}"
    limit = max(cfg.energy_floor, cfg.energy_growth * energy_ref)
    ce = metrics.get("ce")
    if m > limit and (ce_ref < 0 or ce is None or ce > ce_ref):
        rising = f" with CE {ce:.3g} above its mean {ce_ref:.3g} there" if ce_ref >= 0 and ce is not None else ""
        return (f"energy blow-up: max |logit| {m:.3g} > {limit:.3g} (max of {cfg.energy_floor:g} and "
                f"{cfg.energy_growth:g}× the {energy_ref:.3g} reached up to the last good state){rising}")
    return None


def _check_update(state: TrainState, probe: Tensor | None) -> dict[str, float]:
    """After an update: are all parameters finite, and (at save points) the logits of ``probe``?"""
    with torch.no_grad():
        finite = torch.stack([torch.isfinite(p).all() for p in state.core.parameters()]).all()
        out = {"params_finite": 1.0 if bool(finite) else float("nan")}
        if probe is not None and out["params_finite"] == 1.0:
            with evaluating(state.core) as m:
                logits = m(probe).float()
            out["probe_max_abs_logit"] = float(logits.abs().max())  # NaN / inf when the update broke it
    return out


def _stderr(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr, flush=True)


class Batches:
    """The training set as a sequence of batches indexed by step (what makes a resumed run see the
    same data as an uninterrupted one).

    Epoch ``e`` is the permutation seeded by ``cfg.seed·7919 + e``; step ``s`` takes the
    ``s mod steps_per_epoch``-th global batch of it and rank ``r`` of ``world`` every ``world``-th image
    from ``r``. The uint8 set stays on the GPU when training there (batches and augmentation too).
    """

    def __init__(self, train: Split, cfg: TrainConfig, device: torch.device, rank: int, world: int):
        self.xs = torch.from_numpy(train.x).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W) uint8
        self.ys = torch.from_numpy(train.y).long()
        if device.type == "cuda":
            self.xs, self.ys = self.xs.to(device), self.ys.to(device)
        self.device, self.rank, self.world = device, rank, world
        self.batch_size = cfg.optim.batch_size  # global
        if self.batch_size % world:
            raise ValueError(f"batch size {self.batch_size} is not divisible by the number of processes {world}")
        if cfg.uses_sgld and cfg.sgld.batch_size % world:
            raise ValueError(f"SGLD batch size {cfg.sgld.batch_size} is not divisible by the number of "
                             f"processes {world}")
        self.steps_per_epoch = len(self.ys) // self.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"batch size {self.batch_size} exceeds the training set size {len(self.ys)}")

    def total_steps(self, cfg: TrainConfig) -> int:
        return math.ceil(cfg.epochs * self.steps_per_epoch)

    def get(self, step: int, cfg: TrainConfig, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """This rank's ``(x, y)`` of ``step``: ``x`` float in [0, 1], augmented when ``cfg.augment``."""
        epoch, pos = divmod(step, self.steps_per_epoch)
        perm = rng.randperm(len(self.ys), generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch),
                            device="cpu")
        idx = perm[pos * self.batch_size:(pos + 1) * self.batch_size][self.rank::self.world]
        x = self.xs[idx].float().div_(255)
        if cfg.augment:
            x = augment(x, generator=generator)
        x, y = x.to(self.device, non_blocking=True), self.ys[idx].to(self.device, non_blocking=True)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y


class RunWriter:
    """The run folder: ``energy_log.jsonl``, and checkpoints (``model.safetensors``, ``state.pt``,
    ``manifest.json``, committed together by :func:`~jeat_core.checkpoints.commit_checkpoint`).

    Only rank 0 with an output folder writes; elsewhere :meth:`checkpoint` just returns the manifest.
    On resume the log keeps only the lines of steps before the resumed state's.
    """

    def __init__(self, out_dir: Path | None, rank: int, *, resume: bool, state: TrainState, batches: Batches,
                 train: Split, test: Split, total: int, device: torch.device, parent: dict | None,
                 report: Callable[[str], None] | None):
        self.out_dir = out_dir  # None: in memory only
        self.writes = out_dir is not None and rank == 0
        self.run = {"data": {"dataset": None, "source": train.source, "sha256": train.sha256,
                             "n_train": len(train), "n_test": len(test)},
                    "total_steps": total, "steps_per_epoch": batches.steps_per_epoch,
                    "world_size": batches.world, "device": str(device), "parent": parent}
        self.log_f = None
        if self.writes:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.out_dir / ENERGY_LOG
            if not resume and log_path.exists():
                log_path.unlink()
            elif resume and log_path.exists():  # drop lines written after the state we resume from
                kept = _read_energy_log(log_path, state.step, report)
                log_path.write_text("".join(ln + "\n" for ln in kept))
            self.log_f = open(log_path, "a")

    def log(self, record: dict) -> None:
        if self.log_f is not None:
            self.log_f.write(json.dumps(record) + "\n")
            self.log_f.flush()

    def manifest(self, state: TrainState, cfg: TrainConfig, metrics: dict) -> dict:
        r = self.run
        return {
            "method": cfg.method, "config": config_to_dict(cfg),
            "arch": {"name": cfg.model.name, "kwargs": dict(cfg.model.kwargs)},
            "data": {**r["data"], "dataset": cfg.dataset},
            "metrics": metrics, "train_seconds": round(state.train_seconds, 2), "steps": state.step,
            "total_steps": r["total_steps"], "epochs_done": round(state.step / r["steps_per_epoch"], 3),
            "divergence_events": state.events, "world_size": r["world_size"], "device": r["device"],
            **({"init_from": r["parent"]} if r["parent"] else {}),
            **({"sgld_chains": _chain_stats(state.buffer)} if state.buffer is not None else {}),
            "git_commit": _git_commit(), "jeat_version": __version__,
            "torch_version": torch.__version__,
        }

    def checkpoint(self, state: TrainState, cfg: TrainConfig, metrics: dict) -> dict:
        """Save the resumable state with ``metrics`` in its manifest (rank 0 with a folder); returns the manifest."""
        from .checkpoints import commit_checkpoint

        m = self.manifest(state, cfg, metrics)
        if not self.writes:
            return m
        s = state.state_dict()
        s["config"] = json.dumps(config_to_dict(cfg))
        return commit_checkpoint(self.out_dir, model=state.model, state=s, manifest=m,
                                 metadata={"method": cfg.method})

    def close(self) -> None:
        if self.log_f is not None:
            self.log_f.close()
            self.log_f = None


class DivergenceGuard:
    """Checks every update and undoes the ones that diverge.

    :meth:`check` says why an update is bad (:func:`_is_bad` on its metrics; non-finite
    parameters; at save points the updated model's logits on a probe), agreed across DDP ranks.
    :meth:`roll_back` restores the last good snapshot, multiplies the lr by ``lr_backoff``, reseeds
    (``seed + retry``) and returns the new config; after ``max_retries`` failures in a row it saves
    the last good state and raises :class:`TrainingDiverged`. :meth:`accept` keeps the energy / CE
    references, and every ``guard_every`` steps a new snapshot (resetting the retry budget once the
    run is past the step that failed). Each action is an event in the manifest and a ``report`` line.
    """

    def __init__(self, state: TrainState, cfg: TrainConfig, writer: RunWriter, rank: int, world: int,
                 report: Callable[[str], None] | None):
        self.writer, self.rank, self.world, self.report = writer, rank, world, report
        self.good = copy.deepcopy(state.state_dict())
        self.retries, self.failed_at, self.base_seed = 0, -1, cfg.seed

    def _say(self, state: TrainState, event: dict, line: str) -> None:
        state.events.append(event)
        if self.report is not None and self.rank == 0:
            self.report(f"jeat guard: {line}")

    def check(self, state: TrainState, cfg: TrainConfig, metrics: dict, probe: Tensor | None
              ) -> tuple[str | None, dict]:
        """``(why the update is bad or None, the post-update check)``."""
        post = _check_update(state, probe)  # the update itself, before any save
        bad = _is_bad(metrics, cfg, state.energy_ref, state.ce_ref)
        if bad is None and post["params_finite"] != 1.0:
            bad = "non-finite parameters after the update"
        elif bad is None and "probe_max_abs_logit" in post:
            bad = _is_bad({"max_abs_energy": post["probe_max_abs_logit"], "ce": metrics.get("ce")}, cfg,
                          state.energy_ref, state.ce_ref)
            bad = bad and f"after the update: {bad}"
        if self.world > 1:
            flag = torch.tensor([1.0 if bad else 0.0], device=state.device)
            torch.distributed.all_reduce(flag)
            bad = bad or ("diverged on another rank" if flag.item() else None)
        return bad, post

    def roll_back(self, state: TrainState, cfg: TrainConfig, bad: str) -> TrainConfig:
        self.retries += 1
        retries, good = self.retries, self.good
        self.failed_at = max(self.failed_at, state.step)
        old_lr, new_lr = cfg.optim.lr, cfg.optim.lr * cfg.lr_backoff
        event = {"step": state.step, "reason": bad, "retry": retries,
                 "rolled_back_to": int(good["step"]), "new_lr": new_lr, "new_seed": self.base_seed + retries}
        events = state.events
        state.load_state_dict(copy.deepcopy(good))
        state.events = events
        if retries > cfg.max_retries:
            self._say(state, {**event, "action": "stopped"},
                      f"step {event['step']}: {bad}; {retries - 1} roll-backs did not help: stopped, the last "
                      f"good state (step {good['step']}) is saved")
            self.writer.checkpoint(state, cfg, {"diverged": True})  # the last good state, with the events
            out_dir = self.writer.out_dir
            raise TrainingDiverged(
                f"{cfg.method} training diverged at step {event['step']} ({bad}); {retries} failures in a "
                f"row, stopped. The last good state (step {good['step']}) is saved"
                f"{' in ' + str(out_dir) if out_dir is not None else ''}. "
                f"Try a lower --lr, --energy-l2 0.1, a smaller --gen-weight, or more SGLD steps.")
        cfg = replace(cfg, optim=replace(cfg.optim, lr=new_lr), seed=self.base_seed + retries)
        for g in state.optimizer.param_groups:
            g["initial_lr"] = new_lr
        state.scheduler.base_lrs = [new_lr for _ in state.scheduler.base_lrs]
        state.generator.manual_seed(cfg.seed * 1000 + self.rank + 1)
        self._say(state, {**event, "action": "rolled back, lr lowered, reseeded"},
                  f"step {event['step']}: {bad}; rolled back to step {good['step']}, lr {old_lr:.3g} -> "
                  f"{new_lr:.3g}, seed {cfg.seed} (retry {retries} of {cfg.max_retries})")
        return cfg

    def accept(self, state: TrainState, cfg: TrainConfig, metrics: dict, post: dict) -> None:
        """Book an accepted update (``state.step`` already counts it)."""
        state.energy_window = max(state.energy_window, metrics.get("max_abs_energy", 0.0),
                                  post.get("probe_max_abs_logit", 0.0))
        if "ce" in metrics:
            state.ce_sum, state.ce_n = state.ce_sum + metrics["ce"], state.ce_n + 1
        if state.step % cfg.guard_every == 0:
            state.energy_ref, state.energy_window = max(state.energy_ref, state.energy_window), 0.0
            if state.ce_n:
                state.ce_ref, state.ce_sum, state.ce_n = state.ce_sum / state.ce_n, 0.0, 0
            if self.retries and state.step > self.failed_at:
                self._say(state, {"step": state.step, "action": "recovered", "retries_used": self.retries},
                          f"step {state.step}: recovered past step {self.failed_at}; retry budget reset")
                self.retries = 0
            self.good = copy.deepcopy(state.state_dict())


@dataclass
class FitResult:
    state: TrainState
    config: TrainConfig
    manifest: dict
    out: Path | None


def fit(cfg: TrainConfig, *, out: str | os.PathLike | None = None, data_root=None, device: str | None = None,
        resume: bool = False, overwrite: bool = False, progress: bool = True, train_data: Split | None = None,
        test_data: Split | None = None, callbacks: tuple[Callable[[int, dict], None], ...] = (),
        report: Callable[[str], None] | None = _stderr) -> FitResult:
    """Train ``cfg`` and write ``out/{model.safetensors, manifest.json, state.pt, energy_log.jsonl}``.

    Args:
        cfg: a method config (:func:`make_config`).
        out: output folder (``None``: keep in memory only). It is locked while training (a second
            writer gets an error); a fresh run needs it empty.
        data_root: data folder (see :mod:`jeat_core.data`); ``train_data``/``test_data`` override.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``; default CUDA when available.
        resume: continue from ``out/state.pt`` (the config stored there wins for everything but
            ``max_steps`` / ``epochs``, see :func:`resume_config`).
        overwrite: delete a previous run's files in ``out`` first.
        callbacks: ``f(step, metrics)`` called after every step.
        report: receives one line for each action of the divergence guard (default: stderr);
            the same actions are recorded in the manifest's ``divergence_events``.
    Returns:
        :class:`FitResult` with the final state, the (possibly guard-modified) config and manifest.
    """
    from .checkpoints import RunLock, prepare_run_folder

    rank, _ = init_distributed(device)
    if out is None or rank:
        if resume and out is None:
            raise FileNotFoundError("--resume: no output folder given")
        return _fit(cfg, out, data_root, device, resume, progress, train_data, test_data, callbacks, report)
    with RunLock(out):
        prepare_run_folder(out, resume=resume, overwrite=overwrite)
        return _fit(cfg, out, data_root, device, resume, progress, train_data, test_data, callbacks, report)


def _read_energy_log(path: Path, before_step: int, report) -> list[str]:
    """Lines of ``path`` for steps before ``before_step``; a torn last line (a kill mid-write) is dropped."""
    from .checkpoints import CheckpointError

    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    kept = []
    for i, ln in enumerate(lines):
        try:
            step = json.loads(ln)["step"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            if i == len(lines) - 1:
                if report:
                    report(f"jeat: dropped a torn last line of {path} (written when the run was killed)")
                continue
            raise CheckpointError(f"{path} line {i + 1} is not a JSON log record ({type(e).__name__}); "
                                  f"fix or delete that line to resume") from None
        if step < before_step:
            kept.append(ln)
    return kept


def _training_device(device: str | None) -> torch.device:
    if device is None:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    if dev.type == "cuda" and dev.index is None:  # "cuda" -> this process's GPU (DDP needs the index)
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def _restore(state: TrainState, saved: dict, path: Path) -> None:
    """Load a resumed run's ``state.pt`` into ``state``, with a clear error when it does not fit."""
    from .checkpoints import CheckpointError

    try:
        state.load_state_dict(saved)
    except (RuntimeError, KeyError, ValueError, TypeError) as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        why = next((ln for ln in lines if "size mismatch" in ln or "key" in ln.lower()), lines[0] if lines else "")
        raise CheckpointError(f"{path} does not fit the stored config's model/optimiser "
                              f"({type(e).__name__}: {why[:200]})") from None


def _fit(cfg, out, data_root, device, resume, progress, train_data, test_data, callbacks, report) -> FitResult:
    rank, world = init_distributed(device)
    dev = _training_device(device)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    out_dir = Path(out) if out is not None else None
    saved = None
    if resume:  # the one place a run is continued: the stored config and state win
        if out_dir is None or not (out_dir / STATE).is_file():
            raise FileNotFoundError(f"--resume: no training state at {out_dir}/{STATE}; start without --resume")
        saved = load_state(out_dir / STATE)
        cfg = resume_config(out_dir, epochs=cfg.epochs, max_steps=cfg.max_steps)
    check_arch(cfg.model.name, cfg.model.kwargs)

    train = train_data or load_split("train", dataset=cfg.dataset, data_root=data_root, with_hash=True)
    test = test_data or load_split("test", dataset=cfg.dataset, data_root=data_root)
    batches = Batches(train, cfg, dev, rank, world)
    total = batches.total_steps(cfg)
    stop_at = total if cfg.max_steps is None else min(total, cfg.max_steps)

    state = build_state(cfg, dev, total, buffer_init_fn(cfg, train, dev))
    parent = _load_init_from(state, cfg, batches.xs[:256].float().div(255).to(dev)) if cfg.init_from else None
    if saved is not None:
        _restore(state, saved, out_dir / STATE)
    writer = RunWriter(out_dir, rank, resume=resume, state=state, batches=batches, train=train, test=test,
                       total=total, device=dev, parent=parent, report=report)
    guard = DivergenceGuard(state, cfg, writer, rank, world, report)
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=stop_at, initial=state.step, desc=f"train {cfg.method}", unit="step")
    last: dict = {}
    state.model.train()
    try:
        while state.step < stop_at:
            t0 = time.perf_counter()
            x, y = batches.get(state.step, cfg, state.generator)
            log_now = cfg.log_every > 0 and state.step % cfg.log_every == 0
            metrics = train_step(state, x, y, cfg, log_now)
            nxt = state.step + 1  # the step count once this update is accepted
            saves = (nxt % cfg.guard_every == 0 or nxt == stop_at
                     or (cfg.checkpoint_every and nxt % cfg.checkpoint_every == 0))
            bad, post = guard.check(state, cfg, metrics, x[:16] if saves else None)
            if bad:
                cfg = guard.roll_back(state, cfg, bad)
                if bar is not None:
                    bar.n = state.step
                    bar.set_postfix_str(f"diverged ({bad}); rolled back")
                continue
            state.step += 1
            state.train_seconds += time.perf_counter() - t0
            last = metrics
            if log_now:
                writer.log({"step": state.step - 1, "epoch": round((state.step - 1) / batches.steps_per_epoch, 4),
                            **metrics})
            for cb in callbacks:
                cb(state.step, metrics)
            guard.accept(state, cfg, metrics, post)
            if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 and state.step < stop_at:
                writer.checkpoint(state, cfg, {"train_" + k: v for k, v in last.items()})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{metrics['acc']:.2f}")
    finally:
        if bar is not None:
            bar.close()
        writer.close()

    final = {"train_" + k: v for k, v in last.items()}
    if cfg.eval_n:
        from .metrics import accuracy

        xt, yt = test.tensors(cfg.eval_n)
        with evaluating(state.core) as m:
            final["clean_acc"] = accuracy(m, xt.to(dev), yt.to(dev))
        final["eval_n"] = len(yt)
    return FitResult(state, cfg, writer.checkpoint(state, cfg, final), out_dir)

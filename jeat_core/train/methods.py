"""The training methods: each one is a config class, a loss function and one :data:`METHODS` entry.

Methods (Sec. 2.1, 3.2, 3.3, 3.4 of the paper, and JEM for comparison):

=========  ====================================================================================
standard   CE on clean images.
noise      CE on ``x + δ``, ``δ ~ N(0, σ²)`` (Sec. 3.2, "blind adversarial training").
at         CE on CE-attack examples (Eq. 1/14): FGSM with random start, or PGD-k.
prejeat    CE on energy-attack examples (Eq. 18).
jeat       Algorithm 1: energy attack; SGLD negatives on E(x) from a replay buffer; minimise
           ``[E(x_adv,y) − E(x_adv)] + [E(x_adv) − E(x̃_K)]`` (Eq. 19/20).
jem        Grathwohl et al.: CE on clean images + ``E(x) − E(x̃_K)``.
trades     Zhang et al. 2019 (not in the paper; a robust classifier of another objective): CE on clean
           images + ``β·KL(p(·|x) ‖ p(·|x_adv))``, the attack ascending that KL.
=========  ====================================================================================

A loss is ``loss(state, batch, cfg) -> LossResult``, built from the shared pieces below:
:func:`attack_examples` (the config's training attack), :func:`sgld_negatives` (Algorithm 1's inner
loop), :func:`forward` (one forward pass over the step's named inputs: ``forward(state, cfg, batch,
x_adv, clean=batch.x)`` gives ``fwd["train"]`` and ``fwd["clean"]``), :func:`classification` (mean CE
of given logits), :func:`with_px_term` (the p(x) term of Eq. 19/20) and :func:`with_kl_term`
(TRADES' KL). A method's budget per preset (``cpu_epochs``, ``paper_epochs``) is a class attribute of
its config; its own command-line flags are declared on its fields with
:func:`~jeat_core.core.configs.option` (the p(x) term's, shared by jeat and jem, by
:data:`ENERGY_L2`, :data:`GEN_WEIGHT` and :data:`GEN_START`). The command line, ``--resume``, the
presets, the benchmarks, the widgets and the tests read :data:`METHODS`; adding a method is a config,
a loss and a :func:`register` call (docs/methods.md walks through one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, ClassVar

import torch
from torch import Tensor

from jeat_core.core import rng
from jeat_core.core.attacks import fgsm_rs, frozen, pgd
from jeat_core.core.configs import (
    PRESETS,
    UNIT_HALF_OPEN,
    WEIGHT,
    AttackConfig,
    ModelConfig,
    OptimConfig,
    Range,
    SGLDConfig,
    TrainConfig,
    check_choice,
    merge_flags,
    option,
)
from jeat_core.core.energy import cross_entropy, marginal_energy
from jeat_core.core.sampling import langevin
from jeat_core.train.train_state import Batch, LossResult, TrainState, autocast, evaluating, world


# ============================================================================ shared pieces
def attack_examples(state: TrainState, cfg, x: Tensor, y: Tensor, *, reference: Tensor | None = None) -> Tensor:
    """The training attack of ``cfg.attack`` on ``(x, y)``, run in eval mode (``reference``: the
    clean logits, for the ``kl`` objective)."""
    a: AttackConfig = cfg.attack
    ref = {} if reference is None else {"reference": reference}
    with evaluating(state.core) as m, autocast(state, cfg):
        if a.kind == "fgsm_rs":
            return fgsm_rs(m, x, y, eps=a.eps, step_size=a.resolved_step_size, objective=a.objective,
                           grad_at=a.grad_at, generator=state.generator, channels_last=cfg.channels_last, **ref)
        return pgd(m, x, y, eps=a.eps, step_size=a.resolved_step_size, n_steps=a.resolved_n_steps,
                   objective=a.objective, random_start=True, generator=state.generator,
                   channels_last=cfg.channels_last, **ref)


def sgld_negatives(state: TrainState, cfg) -> Tensor:
    """Algorithm 1's inner loop: K SGLD steps on E(x) from the replay buffer, pushed back.

    Under DDP each rank runs ``batch_size / world`` chains, so the negatives, like the data, are a
    global batch split across ranks (the gradients are averaged: the same objective on any N)."""
    s: SGLDConfig = cfg.sgld
    x0, idx = state.buffer.sample(s.batch_size // world()[1], generator=state.generator)
    x0 = x0.to(state.device)
    if cfg.channels_last:  # the negatives then join the batch in the model's layout
        x0 = x0.contiguous(memory_format=torch.channels_last)
    with evaluating(state.core) as m, frozen(m), autocast(state, cfg):  # input gradients only
        xk = langevin(lambda z: marginal_energy(m(z)).float(), x0, step_size=s.step_size,
                      n_steps=s.n_steps, noise_std=s.noise_std, clamp=(0.0, 1.0) if s.clamp else None,
                      generator=state.generator, channels_last=cfg.channels_last)
    state.buffer.push(xk, idx, steps=s.n_steps)
    return xk


def chain_steps(state: TrainState, cfg) -> float:
    """Mean SGLD steps of the chains just sampled (since their (re-)init), this step's included."""
    return float(state.buffer.last_age.float().mean()) + cfg.sgld.n_steps


def px_term_on(state: TrainState, cfg) -> bool:
    """Whether the p(x) term is active at this step (off during the first ``gen_start`` of training)."""
    return state.step >= cfg.gen_start * state.total_steps


# the p(x) term's fields (Eq. 19/20), declared once and shared by jeat and jem: a config writes
# ``energy_l2: float = ENERGY_L2()`` (each call is a fresh field with the same declaration)
ENERGY_L2 = partial(option, 0.0, "--energy-l2", WEIGHT, "L2 penalty on energies (JEM stabiliser)")
GEN_WEIGHT = partial(option, 1.0, "--gen-weight", WEIGHT, "weight of the p(x) term (1 = paper)")
GEN_START = partial(option, 0.0, "--gen-start", UNIT_HALF_OPEN,
                    "fraction of training before the p(x) term starts (a warm-up without it)")


@dataclass
class Forward:
    """The logits of one forward pass of the (possibly DDP) model over a step's named inputs:
    ``fwd[name]`` is the ``(B_name, K)`` logits of the input passed as ``name`` to :func:`forward`
    (``"train"``: the training input); ``logits`` is every row, in the order the inputs were given."""

    logits: Tensor  # every part, for the guard's max |logit|
    parts: dict[str, Tensor]

    def __getitem__(self, name: str) -> Tensor:
        if name not in self.parts:
            raise KeyError(f"this forward pass has no input named {name!r}; it has {', '.join(self.parts)} "
                           f"(pass it to forward(), e.g. forward(state, cfg, batch, x, {name}=...))")
        return self.parts[name]

    def __contains__(self, name: str) -> bool:
        return name in self.parts

    @property
    def max_abs(self) -> float:
        """max |logit| over every input of the pass (what the divergence guard reads)."""
        return float(self.logits.detach().abs().max()) if self.logits.numel() else 0.0


def forward(state: TrainState, cfg, batch: Batch, train: Tensor, **inputs: Tensor | None) -> Forward:
    """One forward pass over the step's inputs, concatenated in the order given: ``train`` (the
    training input, where the Fig. 3 energy dynamics are measured), then each named input of
    ``inputs`` (``clean=batch.x``, ``negatives=x̃``; one given as ``None`` is left out). One pass, not
    one per input, so batch-norm statistics, DDP's gradient sync and the speed are those of one
    batch; the order is part of the numbers (the golden fingerprints pin it). ``fwd[name]`` gives
    each input's logits."""
    named = {"train": train, **{k: v for k, v in inputs.items() if v is not None}}
    for k, v in named.items():
        if not isinstance(v, Tensor):
            raise ValueError(f"forward(): input {k!r} must be a tensor of images; got {type(v).__name__}")
    if batch.dynamics is not None:
        batch.dynamics.before(train)
    parts = list(named.values())
    with autocast(state, cfg):
        logits = state.model(torch.cat(parts)).float()  # (sum of the parts' B, K)
    return Forward(logits, dict(zip(named, torch.split(logits, [len(p) for p in parts]))))


def classification(logits: Tensor, y: Tensor, *, max_abs: float) -> LossResult:
    """Mean cross-entropy ``E(x, y) − E(x)`` (Eq. 13) of ``logits`` (e.g. ``fwd["clean"]``) against
    ``y``, with the pass's ``max_abs`` (``fwd.max_abs``) for the guard."""
    ce = cross_entropy(logits, y).mean()
    return LossResult(ce, float(ce.detach()), float((logits.argmax(1) == y).float().mean()), max_abs)


def with_px_term(res: LossResult, positives: Tensor, negatives: Tensor, cfg) -> LossResult:
    """``res`` plus ``gen_weight·[mean E(x⁺) − mean E(x̃)] + energy_l2·(E(x⁺)² + E(x̃)²)`` (Eq. 19/20),
    from the logits of the data ``positives`` (x⁺: x_adv in JEAT, x̂ in JEM) and of the SGLD
    ``negatives`` x̃."""
    e_pos, e_neg = marginal_energy(positives), marginal_energy(negatives)
    gen = e_pos.mean() - e_neg.mean()
    loss = res.loss + cfg.gen_weight * gen
    if cfg.energy_l2:
        loss = loss + cfg.energy_l2 * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
    return replace(res, loss=loss, terms={**res.terms, "gen_loss": float(gen.detach()),
                                          "e_pos": float(e_pos.mean().detach()), "e_neg": float(e_neg.mean().detach())})


def with_kl_term(res: LossResult, p_logits: Tensor, q_logits: Tensor, beta: float) -> LossResult:
    """``res`` plus ``β·mean_i KL(p_i ‖ q_i)`` between the predictions of ``p_logits`` (TRADES: the
    clean input's) and ``q_logits`` (the attack example's), gradients through both."""
    log_p, log_q = torch.log_softmax(p_logits, 1), torch.log_softmax(q_logits, 1)
    kl = (log_p.exp() * (log_p - log_q)).sum(1).mean()
    return replace(res, loss=res.loss + beta * kl, terms={**res.terms, "kl": float(kl.detach())})


# ============================================================================ the registry
@dataclass(frozen=True)
class Method:
    """A training method: its config class (defaults, validation, budget, options) and its loss."""

    name: str
    config: type[TrainConfig]
    loss: Callable[[TrainState, Batch, Any], LossResult]
    summary: str

    @property
    def uses_attack(self) -> bool:
        return self.config.has_field("attack")

    @property
    def uses_sgld(self) -> bool:
        return self.config.has_field("sgld")


METHODS: dict[str, Method] = {}


def register(config: type[TrainConfig], loss: Callable, summary: str) -> Method:
    """Add a method to :data:`METHODS` (its name is the config's ``method`` default). A flag it
    declares that another method declares with another meaning is an error now, naming both
    (:func:`~jeat_core.core.configs.merge_flags`)."""
    name = config.__dataclass_fields__["method"].default
    if name in METHODS:
        raise ValueError(f"method {name!r} is registered twice")
    merge_flags([*((n, m.config.all_options()) for n, m in METHODS.items()), (name, config.all_options())])
    METHODS[name] = Method(name, config, loss, summary)
    return METHODS[name]


def get_method(name: str) -> Method:
    """The registry entry of ``name``; an unknown name is an error listing the known ones."""
    check_choice("method", name, tuple(METHODS))
    return METHODS[name]


# ============================================================================ the methods
@dataclass(frozen=True)
class StandardConfig(TrainConfig):
    cpu_epochs: ClassVar[float] = 15.0
    method: str = "standard"


def standard_loss(state: TrainState, batch: Batch, cfg: StandardConfig) -> LossResult:
    """CE on the clean images."""
    fwd = forward(state, cfg, batch, batch.x)
    return classification(fwd["train"], batch.y, max_abs=fwd.max_abs)


@dataclass(frozen=True)
class NoiseConfig(TrainConfig):
    """Gaussian noise injection, ``δ ~ N(0, σ²)`` with σ in {8, 16, 24}/255 in the paper."""

    cpu_epochs: ClassVar[float] = 10.0
    method: str = "noise"
    sigma: float = option(16 / 255, "--sigma", Range(0.0, 1.0, lo_open=True), "noise std (e.g. 16/255)")
    clip: bool = True  # clip x + δ to [0, 1]


def noise_loss(state: TrainState, batch: Batch, cfg: NoiseConfig) -> LossResult:
    """CE on ``x + δ``, ``δ ~ N(0, σ²)`` (clipped to [0, 1] when ``cfg.clip``)."""
    xn = batch.x + cfg.sigma * rng.randn_like(batch.x, generator=state.generator)
    if cfg.clip:
        xn = xn.clamp(0, 1)
    fwd = forward(state, cfg, batch, xn)
    return classification(fwd["train"], batch.y, max_abs=fwd.max_abs)


@dataclass(frozen=True)
class ATConfig(TrainConfig):
    cpu_epochs: ClassVar[float] = 6.0
    method: str = "at"
    attack: AttackConfig = AttackConfig(objective="ce")


def at_loss(state: TrainState, batch: Batch, cfg: ATConfig) -> LossResult:
    """CE on the attack example of ``cfg.attack`` (Eq. 1/14 for ``at``, Eq. 18 for ``prejeat``)."""
    fwd = forward(state, cfg, batch, attack_examples(state, cfg, batch.x, batch.y))
    return classification(fwd["train"], batch.y, max_abs=fwd.max_abs)


@dataclass(frozen=True)
class PreJEATConfig(TrainConfig):
    cpu_epochs: ClassVar[float] = 6.0
    method: str = "prejeat"
    attack: AttackConfig = AttackConfig(objective="energy")


prejeat_loss = at_loss  # same loss; the config's attack objective is "energy" (Eq. 18)


@dataclass(frozen=True)
class JEATConfig(TrainConfig):
    """Algorithm 1. ``energy_l2`` adds ``λ (E(x_adv)² + E(x̃)²)``, the remedy for JEM-style
    energy blow-up (checkpoints/README.md, the ablation); 0 is the paper's objective."""

    cpu_epochs: ClassVar[float] = 4.0
    paper_epochs: ClassVar[float] = 150.0
    method: str = "jeat"
    attack: AttackConfig = AttackConfig(objective="energy")
    sgld: SGLDConfig = SGLDConfig()
    energy_l2: float = ENERGY_L2()
    gen_weight: float = GEN_WEIGHT()  # weight of the p(x) term E(x_adv) − E(x̃); 1 is Algorithm 1
    gen_start: float = GEN_START()  # fraction of training run as PreJEAT before the p(x) term is switched on


def jeat_loss(state: TrainState, batch: Batch, cfg: JEATConfig) -> LossResult:
    """Algorithm 1: CE + ``gen_weight·[E(x_adv) − E(x̃)]`` on the energy-attack example (Eq. 18)."""
    x_adv = attack_examples(state, cfg, batch.x, batch.y)
    if not px_term_on(state, cfg):  # warm-up: PreJEAT
        fwd = forward(state, cfg, batch, x_adv)
        return classification(fwd["train"], batch.y, max_abs=fwd.max_abs)
    fwd = forward(state, cfg, batch, x_adv, negatives=sgld_negatives(state, cfg))
    res = classification(fwd["train"], batch.y, max_abs=fwd.max_abs)
    return replace(with_px_term(res, fwd["train"], fwd["negatives"], cfg), chain_steps=chain_steps(state, cfg))


@dataclass(frozen=True)
class JEMConfig(TrainConfig):
    """JEM: CE on clean data + ``E(x̂) − E(x̃_K)`` with ``x̂ = x + N(0, data_noise²)``."""

    cpu_epochs: ClassVar[float] = 4.0
    paper_epochs: ClassVar[float] = 150.0
    update_inputs: ClassVar[int] = 2  # CE on x, the p(x) term on x + noise
    method: str = "jem"
    sgld: SGLDConfig = SGLDConfig()
    data_noise: float = 0.03
    energy_l2: float = ENERGY_L2()
    gen_weight: float = GEN_WEIGHT()  # weight of the p(x) term E(x̂) − E(x̃)
    gen_start: float = GEN_START()  # fraction of training run as a plain classifier before the p(x) term

    def __post_init__(self):
        super().__post_init__()
        Range(0.0).check("data_noise", self.data_noise)


def jem_loss(state: TrainState, batch: Batch, cfg: JEMConfig) -> LossResult:
    """JEM: CE on the clean images + ``gen_weight·[E(x̂) − E(x̃)]`` with ``x̂ = x + N(0, data_noise²)``."""
    if not px_term_on(state, cfg):  # warm-up: a plain classifier
        fwd = forward(state, cfg, batch, batch.x)
        return classification(fwd["train"], batch.y, max_abs=fwd.max_abs)
    xn = (batch.x + cfg.data_noise * rng.randn_like(batch.x, generator=state.generator)).clamp(0, 1)
    neg = sgld_negatives(state, cfg)
    # p(x) term on the noisy data, CE on the clean data (JEM); Δ-energies measured at x̂
    fwd = forward(state, cfg, batch, xn, clean=batch.x, negatives=neg)
    res = classification(fwd["clean"], batch.y, max_abs=fwd.max_abs)
    return replace(with_px_term(res, fwd["train"], fwd["negatives"], cfg), chain_steps=chain_steps(state, cfg))


@dataclass(frozen=True)
class TRADESConfig(TrainConfig):
    """TRADES (Zhang et al. 2019): ``CE(f(x), y) + β·KL(p(·|x) ‖ p(·|x_adv))`` with ``x_adv`` from an
    attack that ascends that KL from a random start (:func:`jeat_core.core.attacks.kl_from`).

    Choices: β = 6 (the paper's CIFAR-10 value). Zhang et al. attack with PGD-10 (step 2/255 from a
    ``0.001·N(0, I)`` start); the cpu preset gives every attack method the same budget of one
    FGSM-RS step (uniform start in the ε-ball, step ε), so ``--attack pgd`` restores theirs. The
    attack runs in eval mode on the clean logits of that mode; the loss's KL is taken between the
    training-mode logits of ``x`` and ``x_adv`` (gradients through both, as in their code), averaged
    over the batch. The Fig. 3 energy dynamics are measured at ``x_adv``."""

    cpu_epochs: ClassVar[float] = 6.0
    update_inputs: ClassVar[int] = 2  # CE on x, the KL between x and x_adv
    method: str = "trades"
    attack: AttackConfig = AttackConfig(objective="kl")
    beta: float = option(6.0, "--beta", WEIGHT, "weight β of the KL term (6 in Zhang et al.)")


def trades_loss(state: TrainState, batch: Batch, cfg: TRADESConfig) -> LossResult:
    """``CE(f(x), y) + β·mean KL(p(·|x) ‖ p(·|x_adv))`` with the KL-ascent attack example ``x_adv``."""
    with torch.no_grad(), evaluating(state.core) as m, autocast(state, cfg):
        clean = m(batch.x).float()
    x_adv = attack_examples(state, cfg, batch.x, batch.y, reference=clean)
    fwd = forward(state, cfg, batch, x_adv, clean=batch.x)
    res = classification(fwd["clean"], batch.y, max_abs=fwd.max_abs)
    return with_kl_term(res, fwd["clean"], fwd["train"], cfg.beta)


register(StandardConfig, standard_loss, "CE on clean images")
register(NoiseConfig, noise_loss, "CE on Gaussian-noised images (Sec. 3.2)")
register(ATConfig, at_loss, "CE on CE-attack examples (Eq. 1/14)")
register(PreJEATConfig, prejeat_loss, "CE on energy-attack examples (Eq. 18)")
register(JEATConfig, jeat_loss, "Algorithm 1: energy attack + SGLD p(x) term (Eq. 19/20)")
register(JEMConfig, jem_loss, "JEM: CE on clean images + SGLD p(x) term")
register(TRADESConfig, trades_loss, "TRADES: CE on clean images + β·KL(clean ‖ KL-attack example)")


# ============================================================================ presets
def make_config(method: str, preset: str = "cpu", **overrides) -> TrainConfig:
    """The default config of ``method`` at ``preset`` scale, with top-level ``overrides``.

    ``cpu``: :class:`~jeat_core.core.models.SmallCNN` (SiLU, no norm), Adam, cosine schedule, the
    method's ``cpu_epochs`` (sized to train within an hour on 2 CPU cores). ``paper``:
    WideResNet-28-10 (batch norm except for the SGLD methods, which cannot use it), SGD 0.1 /
    momentum 0.9 / wd 5e-4 for the classifiers, Adam 1e-4 with warm-up for the SGLD methods (JEM's
    settings), batch 128 (64 for SGLD methods), the method's ``paper_epochs``.
    """
    cls = get_method(method).config
    check_choice("preset", preset, PRESETS)
    sgld_method = cls.has_field("sgld")
    if preset == "cpu":
        base: dict[str, Any] = dict(
            preset="cpu",
            model=ModelConfig("small_cnn", {"widths": [32, 64, 128], "act": "silu", "norm": "none"}),
            optim=OptimConfig("adam", lr=3e-4 if sgld_method else 1e-3, batch_size=128,
                              warmup_steps=200, schedule="cosine"),
            epochs=float(cls.cpu_epochs))
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
            epochs=float(cls.paper_epochs), log_every=100, checkpoint_every=1000, eval_n=10000)
        if sgld_method:
            base["sgld"] = SGLDConfig(n_steps=20, batch_size=64)
    base.update(overrides)
    try:
        return cls(method=method, **base)
    except TypeError as e:
        raise ValueError(f"bad option for method {method!r}: {e}") from e


def config_from_dict(d: dict) -> TrainConfig:
    """Inverse of :func:`~jeat_core.core.configs.config_to_dict` (used by ``--resume`` and manifests)."""
    cls = get_method(d["method"]).config
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

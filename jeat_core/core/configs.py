"""Training configs and the one set of number/choice validators (no torch import).

Every config validates itself in ``__post_init__`` (names and ranges), so a bad value is refused the
same way from the Python API (``make_config``, ``dataclasses.replace``) and from the command line.
The limits are :class:`Range` objects that the configs *check* and the ``jeat`` command *parses*
with (:meth:`Range.parse` reads ``8/255`` too), so the two cannot disagree.

A config field that the command line sets is declared once as an :class:`Option` (flag, the field's
dotted path, its range or choices): the shared ones in :data:`COMMON_OPTIONS`, :data:`ATTACK_OPTIONS`
and :data:`SGLD_OPTIONS`, the method-specific ones on the method's config class
(``options`` class attribute, see :mod:`jeat_core.train.methods`). ``jeat train`` builds its flags, the
"does not apply to this method" errors and the ``--resume`` comparison from these declarations.

The method configs themselves (one per method, beside its loss) live in :mod:`jeat_core.train.methods`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from dataclasses import dataclass, field
from typing import ClassVar

PRESETS = ("cpu", "paper")
DATASETS = ("cifar10", "cifar100", "procedural")  # jeat_core.core.data loads these
OBJECTIVES = ("ce", "energy", "kl")  # attack objectives (Eq. 14, Eq. 18, TRADES' KL); a closed set
ATTACK_KINDS = ("fgsm_rs", "pgd")
OPTIMISERS = ("adam", "sgd")
SCHEDULES = ("cosine", "constant", "step")
BUFFER_INITS = ("uniform", "class_gaussian")
PGD_STEPS = 10  # n_steps of a training PGD attack when not given
PGD_STEP_SIZE = 2 / 255  # its step size when not given


# ============================================================================ validators
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _decimal(part: str, text: str) -> float:
    part = part.strip()
    if not _DECIMAL.fullmatch(part):
        raise ValueError(f"{text!r} is not a number or fraction (e.g. 0.03 or 8/255)")
    v = float(part)  # never hangs, unlike Fraction("1e-99999999")
    if not math.isfinite(v):
        raise ValueError(f"{text!r} is too large")
    if v == 0 and re.search(r"[1-9]", re.split("[eE]", part)[0]):
        raise ValueError(f"{text!r} is too small (it underflows to 0)")
    return v


@dataclass(frozen=True)
class Range:
    """The allowed values of a number: ``[lo, hi]`` (open ends with ``lo_open``/``hi_open``; ``None``
    is unbounded), an ``int`` when ``integer``. :meth:`check` validates a value of the Python API,
    :meth:`parse` reads and validates a command-line string; both raise ``ValueError``."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False

    def contains(self, v: float) -> bool:
        lo, hi = self.lo, self.hi
        return not ((lo is not None and (v < lo or (self.lo_open and v == lo)))
                    or (hi is not None and (v > hi or (self.hi_open and v == hi))))

    def span(self) -> str:
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        return f"{'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open or self.hi is None else ']'}"

    def check(self, name: str, v, *, optional: bool = False) -> None:
        """Raise ``ValueError`` unless ``v`` is a finite real number (an ``int`` when ``integer``) in range."""
        if v is None and optional:
            return
        if isinstance(v, bool) or not isinstance(v, numbers.Integral if self.integer else numbers.Real) \
                or (not self.integer and not math.isfinite(v)):
            raise ValueError(f"{name} must be {'an integer' if self.integer else 'a finite number'}; got {v!r}")
        if not self.contains(v):
            raise ValueError(f"{name} must lie in {self.span()}; got {v!r}")

    def parse(self, text: str) -> float | int:
        """A command-line value: an integer, or a decimal or fraction of two (``8/255``), in range."""
        return self._parse_int(text) if self.integer else self._parse_float(text)

    def _parse_int(self, text: str) -> int:
        t = str(text).strip()
        if not re.fullmatch(r"[+-]?\d+", t):
            raise ValueError(f"{text!r} is not an integer")
        if len(t.lstrip("+-")) > 30 or not self.contains(int(t)):
            raise ValueError(f"{text!r} must be an integer in [{self.lo}, {self.hi}]")
        return int(t)

    def _parse_float(self, text: str) -> float:
        parts = str(text).split("/")
        if len(parts) > 2:
            raise ValueError(f"{text!r} is not a number or fraction (e.g. 0.03 or 8/255)")
        vals = [_decimal(p, text) for p in parts]
        v = vals[0]
        if len(vals) == 2:
            if vals[1] == 0:
                raise ValueError(f"{text!r} divides by zero")
            v = vals[0] / vals[1]
            if not math.isfinite(v):
                raise ValueError(f"{text!r} is too large")
            if v == 0 and vals[0] != 0:
                raise ValueError(f"{text!r} is too small (it underflows to 0)")
        if self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)):
            raise ValueError(f"{text!r} must be {'>' if self.lo_open else '>='} {self.lo:g}")
        if self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi)):
            raise ValueError(f"{text!r} must be {'<' if self.hi_open else '<='} {self.hi:g}")
        return v


def check_choice(name: str, v, choices: tuple) -> None:
    """Raise ``ValueError`` unless ``v`` is one of ``choices`` (never a silent fallback)."""
    if v not in choices:
        raise ValueError(f"unknown {name} {v!r}; choose one of {', '.join(map(str, choices))}")


BIG = 10 ** 9
NONNEG = Range(0.0)
POSITIVE = Range(0.0, lo_open=True)
UNIT = Range(0.0, 1.0)  # a radius, step or probability in [0, 1]
UNIT_HALF_OPEN = Range(0.0, 1.0, hi_open=True)
POSITIVE_INT = Range(1, BIG, integer=True)
NONNEG_INT = Range(0, BIG, integer=True)
SEED = Range(0, 2 ** 31 - 1, integer=True)
BATCH = Range(1, 65536, integer=True)
STEPS = Range(1, 10000, integer=True)
EPOCHS = Range(0.0, 10000.0, lo_open=True)
BUFFER = Range(1, 200_000, integer=True)
TEST_IMAGES = Range(0, 10 ** 7, integer=True)
WEIGHT = Range(0.0, 1e6)  # a loss weight or clipping norm


# ============================================================================ command-line options
@dataclass(frozen=True)
class Option:
    """A config field the command line sets.

    ``flag`` (``--sgld-steps``) sets ``path`` (``sgld.n_steps``, dotted into sub-configs); ``kind`` is
    a :class:`Range` (a number), a tuple (a choice), or ``"switch"`` (a flag without value that sets
    the field to ``not invert``). ``compare`` is the attribute ``--resume`` compares with the stored
    run (default ``path``; e.g. the resolved attack step count)."""

    flag: str
    path: str
    kind: Range | tuple | str
    help: str = ""
    invert: bool = False
    compare: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def get_path(cfg, path: str):
    """``cfg.a.b`` for ``path="a.b"`` (``None`` when a part is missing)."""
    for part in path.split("."):
        cfg = getattr(cfg, part, None)
    return cfg


def set_path(cfg, path: str, value):
    """A copy of ``cfg`` with ``path`` (dotted) set to ``value``; the sub-configs validate again."""
    head, _, rest = path.partition(".")
    if not rest:
        return dataclasses.replace(cfg, **{head: value})
    return dataclasses.replace(cfg, **{head: set_path(getattr(cfg, head), rest, value)})


# ============================================================================ configs
@dataclass(frozen=True)
class ModelConfig:
    """Architecture name in :data:`jeat_core.core.models.MODELS` and its keyword arguments."""

    name: str = "small_cnn"
    kwargs: dict = field(default_factory=dict)


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
        check_choice("optimiser", self.name, OPTIMISERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        POSITIVE.check("lr", self.lr)
        NONNEG.check("weight_decay", self.weight_decay)
        Range(0.0, 1.0, hi_open=True).check("momentum", self.momentum)
        BATCH.check("batch_size", self.batch_size)
        NONNEG_INT.check("warmup_steps", self.warmup_steps)
        for m in self.milestones:
            UNIT.check("milestones", m)
        POSITIVE.check("gamma", self.gamma)
        WEIGHT.check("grad_clip", self.grad_clip)


@dataclass(frozen=True)
class AttackConfig:
    """Training attack. ``kind="fgsm_rs"``: FGSM from a uniform random start (Algorithm 1's
    attack); its step size defaults to ``eps`` as written in Algorithm 1 (Wong et al. use
    1.25·eps); the gradient is taken at the randomly perturbed point (``grad_at``, see
    :func:`jeat_core.core.attacks.fgsm_rs`). ``kind="pgd"``: ``n_steps`` (default 10) of PGD with
    ``step_size`` (default 2/255). ``objective``: ``ce`` (Eq. 14), ``energy`` (Eq. 18) or ``kl``
    (TRADES: KL(p(·|x) ‖ p(·|x_adv)); its gradient at the clean point is 0, so it needs
    ``grad_at="perturbed"``).

    ``step_size`` / ``n_steps`` left at ``None`` mean "the default of ``kind``"; the values used
    are :attr:`resolved_step_size` and :attr:`resolved_n_steps` (so ``replace(cfg, kind="pgd")``
    gets PGD's defaults, not FGSM's)."""

    kind: str = "fgsm_rs"  # fgsm_rs | pgd
    objective: str = "ce"  # ce (Eq. 14) | energy (Eq. 18) | kl (TRADES)
    eps: float = 8 / 255
    step_size: float | None = None  # None -> eps (fgsm_rs) or 2/255 (pgd)
    n_steps: int | None = None  # None -> 1 (fgsm_rs) or 10 (pgd)
    grad_at: str = "perturbed"

    def __post_init__(self):
        check_choice("attack kind", self.kind, ATTACK_KINDS)
        check_choice("attack objective", self.objective, OBJECTIVES)
        check_choice("grad_at", self.grad_at, ("perturbed", "clean"))
        if self.objective == "kl" and self.grad_at == "clean" and self.kind == "fgsm_rs":
            raise ValueError("the kl objective's gradient at the clean point is 0; use grad_at='perturbed'")
        UNIT.check("attack eps", self.eps)
        Range(0.0, 1.0, lo_open=True).check("attack step_size", self.step_size, optional=True)
        STEPS.check("attack n_steps", self.n_steps, optional=True)

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


@dataclass(frozen=True)
class SGLDConfig:
    """SGLD negatives for ``jeat``/``jem`` on the marginal energy E(x) (Algorithm 1).

    The update is ``x <- x − (η/2)∇E(x) + s·N(0, I)``. Defaults follow JEM's practical sampler
    (gradient step 1, noise 0.01, i.e. ``η = 2``, ``s = 0.01``) with fewer steps at cpu scale;
    ``noise_std=None`` gives exact Langevin (``s = sqrt(η)``) as Algorithm 1 writes it.
    ``batch_size`` negatives per step are drawn from a replay buffer of ``buffer_size`` chains,
    re-initialised with probability ``reinit_prob`` (ρ) from ``init``: ``"uniform"`` (U(0, 1), JEM)
    or ``"class_gaussian"`` (a class-Gaussian seed of a random class, :class:`~jeat_core.core.sampling.
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
        check_choice("SGLD buffer init", self.init, BUFFER_INITS)
        STEPS.check("SGLD n_steps", self.n_steps)
        Range(0.0, 1e6, lo_open=True).check("SGLD step_size", self.step_size)
        Range(0.0, 10.0).check("SGLD noise_std", self.noise_std, optional=True)
        BUFFER.check("SGLD buffer_size", self.buffer_size)
        BATCH.check("SGLD batch_size", self.batch_size)
        UNIT.check("reinit_prob", self.reinit_prob)


@dataclass(frozen=True)
class TrainConfig:
    """Fields shared by every method (the method configs of :mod:`jeat_core.train.methods` add their own).

    Class attributes (not fields, so not in manifests) give a method's budget at each preset:
    ``cpu_epochs`` and ``paper_epochs``; ``options``, its method-specific command-line options; and
    ``update_inputs``, how many copies of the batch its update's forward pass sees (2 when CE and
    another term are taken on different inputs)."""

    cpu_epochs: ClassVar[float] = 10.0
    paper_epochs: ClassVar[float] = 100.0
    options: ClassVar[tuple[Option, ...]] = ()
    update_inputs: ClassVar[int] = 1  # copies of the batch in the update's forward pass (benchmarks count it)

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
    # divergence guard (see :func:`jeat_core.train.guard.why_bad`): every update is checked (finite loss,
    # metrics and parameters; max |logit| against an absolute ceiling and a relative rule), and the
    # logits of the updated model are probed before anything is saved
    max_abs_energy: float = 1e4  # absolute ceiling on max |logit|
    energy_floor: float = 50.0  # the relative rule never trips below this max |logit|
    energy_growth: float = 4.0  # ... and trips above energy_growth × the max |logit| of the known-good run
    guard_every: int = 50  # in-memory "last good" snapshot period
    max_retries: int = 3  # roll-backs in a row before giving up (reset after a recovery)
    lr_backoff: float = 0.5

    def __post_init__(self):
        own = type(self).__dataclass_fields__["method"].default
        if self.method != own:
            raise ValueError(f"{type(self).__name__} is the config of method {own!r}; got method={self.method!r}")
        check_choice("preset", self.preset, PRESETS)
        check_choice("dataset", self.dataset, DATASETS)
        EPOCHS.check("epochs", self.epochs)
        POSITIVE_INT.check("max_steps", self.max_steps, optional=True)
        SEED.check("seed", self.seed)
        NONNEG_INT.check("log_every", self.log_every)
        NONNEG_INT.check("checkpoint_every", self.checkpoint_every)
        TEST_IMAGES.check("eval_n", self.eval_n)
        if self.init_from is not None and not (isinstance(self.init_from, str) and self.init_from):
            raise ValueError(f"init_from must be a model name or folder; got {self.init_from!r}")
        POSITIVE.check("max_abs_energy", self.max_abs_energy)
        NONNEG.check("energy_floor", self.energy_floor)
        POSITIVE.check("energy_growth", self.energy_growth)
        POSITIVE_INT.check("guard_every", self.guard_every)
        NONNEG_INT.check("max_retries", self.max_retries)
        Range(0.0, 1.0, lo_open=True).check("lr_backoff", self.lr_backoff)

    @property
    def uses_attack(self) -> bool:
        """Whether the method trains on attacked inputs (its config has an ``attack``)."""
        return isinstance(getattr(self, "attack", None), AttackConfig)

    @property
    def uses_sgld(self) -> bool:
        """Whether the method draws SGLD negatives from a replay buffer (its config has ``sgld``)."""
        return isinstance(getattr(self, "sgld", None), SGLDConfig)

    @classmethod
    def has_field(cls, name: str) -> bool:
        return name in {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def all_options(cls) -> tuple[Option, ...]:
        """Every command-line option this config accepts: the common ones, the attack's or SGLD's
        when it has those sub-configs, and its own (``options``)."""
        out = list(COMMON_OPTIONS)
        if cls.has_field("attack"):
            out += ATTACK_OPTIONS
        if cls.has_field("sgld"):
            out += SGLD_OPTIONS
        return tuple(out) + tuple(cls.options)


COMMON_OPTIONS: tuple[Option, ...] = (
    Option("--preset", "preset", PRESETS, "cpu (default) or paper"),
    Option("--dataset", "dataset", DATASETS),
    Option("--epochs", "epochs", EPOCHS),
    Option("--max-steps", "max_steps", POSITIVE_INT, "stop after N steps (smoke runs)"),
    Option("--seed", "seed", SEED),
    Option("--lr", "optim.lr", POSITIVE),
    Option("--batch-size", "optim.batch_size", BATCH),
    Option("--grad-clip", "optim.grad_clip", WEIGHT, "clip the gradient norm to this (0 = off)"),
    Option("--warmup-steps", "optim.warmup_steps", NONNEG_INT, "linear learning-rate warm-up steps"),
    Option("--init-from", "init_from", "text",
           "start from this trained model's weights (fine-tune; same architecture)"),
    Option("--log-every", "log_every", NONNEG_INT),
    Option("--checkpoint-every", "checkpoint_every", NONNEG_INT),
    Option("--eval-n", "eval_n", TEST_IMAGES, "test images for the final clean accuracy"),
    Option("--deterministic", "deterministic", "switch"),
    Option("--no-amp", "amp", "switch", invert=True),
    Option("--compile", "compile", "switch"),
)
ATTACK_OPTIONS: tuple[Option, ...] = (
    Option("--attack", "attack.kind", ATTACK_KINDS, "training attack"),
    Option("--eps", "attack.eps", UNIT, "attack radius in [0, 1], e.g. 8/255"),
    Option("--attack-steps", "attack.n_steps", STEPS, compare="attack.resolved_n_steps"),
    Option("--attack-step-size", "attack.step_size", Range(0.0, 1.0, lo_open=True),
           compare="attack.resolved_step_size"),
)
SGLD_OPTIONS: tuple[Option, ...] = (
    Option("--sgld-steps", "sgld.n_steps", STEPS, "K in Algorithm 1"),
    Option("--sgld-step-size", "sgld.step_size", Range(0.0, 1e6, lo_open=True), "η: drift is -(η/2)∇E"),
    Option("--sgld-noise", "sgld.noise_std", Range(0.0, 10.0), "noise std s (sqrt(η) is exact Langevin)"),
    Option("--buffer-size", "sgld.buffer_size", BUFFER),
    Option("--reinit-prob", "sgld.reinit_prob", UNIT, "ρ in Algorithm 1"),
    Option("--buffer-init", "sgld.init", BUFFER_INITS,
           "replay-buffer init and re-init: uniform (JEM) or class_gaussian (Santurkar's seeds)"),
    Option("--sgld-batch", "sgld.batch_size", BATCH, "SGLD negatives per step"),
)
# the p(x) term of the SGLD methods (Eq. 19/20), declared by jeat and jem
PX_OPTIONS: tuple[Option, ...] = (
    Option("--energy-l2", "energy_l2", WEIGHT, "L2 penalty on energies (JEM stabiliser)"),
    Option("--gen-weight", "gen_weight", WEIGHT, "weight of the p(x) term (1 = paper)"),
    Option("--gen-start", "gen_start", UNIT_HALF_OPEN,
           "fraction of training before the p(x) term starts (a warm-up without it)"),
)


def check_px_term(cfg) -> None:
    """The fields of the p(x) term (``energy_l2``, ``gen_weight``, ``gen_start``)."""
    WEIGHT.check("energy_l2", cfg.energy_l2)
    WEIGHT.check("gen_weight", cfg.gen_weight)
    UNIT_HALF_OPEN.check("gen_start", cfg.gen_start)


def config_to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)

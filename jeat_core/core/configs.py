"""Training configs and the one set of number/choice validators (no torch import).

Every config validates itself in ``__post_init__`` (names and ranges), so a bad value is refused the
same way from the Python API (``make_config``, ``dataclasses.replace``) and from the command line.
The limits are :class:`Range` objects that the configs *check* and the ``jeat`` command *parses*
with (:meth:`Range.parse` reads ``8/255`` too), so the two cannot disagree.

A config field that the command line sets is declared once, on the field itself, with :func:`option`
(its default, flag, range or choices and help: ``sigma: float = option(16 / 255, "--sigma", Range(...),
"noise std")``). The declared range or choices also validate the field (:func:`check_options`, called
by each config's ``__post_init__``), so one declaration serves parsing and validation.
:meth:`TrainConfig.all_options` walks a config's fields (into sub-configs such as ``optim``, ``attack``
and ``sgld``, as dotted paths like ``sgld.n_steps``); ``jeat train`` builds its flags, the "does not
apply to this method" errors and the ``--resume`` comparison from it, and :func:`merge_flags` joins the
declarations of one flag by several methods (an error naming both methods when they differ in meaning).

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
OPTION = "option"  # the key of a field's metadata that holds its Option
KINDS = ("switch", "text")  # the kinds that are neither a Range nor a tuple of choices
# the flags of `jeat train` itself (jeat_core/cli.py; tests/test_registry.py checks the list), which no
# config field may declare
TRAIN_FLAGS = ("--help", "--method", "--data-root", "--out", "--resume", "--overwrite", "--device", "--no-progress")


@dataclass(frozen=True)
class Option:
    """How the command line sets a config field, and the limits the field is validated with.

    Declared on the field with :func:`option`. ``flag`` (``--sgld-steps``) sets the field; ``kind`` is
    a :class:`Range` (a number), a tuple (a choice), ``"switch"`` (a flag without value that sets the
    field to ``not invert``) or ``"text"`` (a string, checked by the config itself). ``compare`` is the
    attribute ``--resume`` compares with the stored run (default: the field; e.g. the resolved attack
    step count ``resolved_n_steps``), relative to the config the field is on. ``label`` names the field
    in validation messages (default: its name), ``optional`` lets it be ``None``. ``path`` is the
    field's dotted path from the training config (``sgld.n_steps``), filled in by
    :meth:`TrainConfig.all_options`."""

    flag: str
    kind: Range | tuple | str
    help: str = ""
    invert: bool = False
    compare: str | None = None
    label: str | None = None
    optional: bool = False
    path: str = ""

    def __post_init__(self):
        if not (isinstance(self.flag, str) and re.fullmatch(r"--[a-z0-9][a-z0-9-]*", self.flag)):
            raise ValueError(f"an option's flag is '--' and lower-case words joined by '-' (e.g. --sgld-steps); "
                             f"got {self.flag!r}")
        if self.flag in TRAIN_FLAGS:
            raise ValueError(f"{self.flag} is a flag of `jeat train` itself; give the option another flag")
        if not (isinstance(self.kind, (Range, tuple)) or self.kind in KINDS):
            raise ValueError(f"option {self.flag}: kind must be a Range, a tuple of choices or one of "
                             f"{', '.join(KINDS)}; got {self.kind!r}")

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def meaning(self) -> tuple:
        """What the flag does: the field it sets and how (two declarations with equal meanings are one
        flag; their help texts may differ)."""
        return self.path, self.kind, self.invert, self.compare

    def check(self, v, name: str | None = None) -> None:
        """Raise ``ValueError`` unless ``v`` lies in the declared range or choices."""
        what = self.label or name or self.path
        if isinstance(self.kind, Range):
            self.kind.check(what, v, optional=self.optional)
        elif isinstance(self.kind, tuple):
            check_choice(what, v, self.kind)


def option(default, flag: str, kind: Range | tuple | str, help: str = "", *, label: str | None = None,
           optional: bool = False, invert: bool = False, compare: str | None = None):
    """A config field the command line sets: ``sigma: float = option(16 / 255, "--sigma", Range(0.0, 1.0,
    lo_open=True), "noise std")``. The declaration (an :class:`Option` in the field's metadata) gives
    the flag, the range or choices that both the command line parses with and the config validates
    with (:func:`check_options`), and the help text; the default is checked against it now."""
    o = Option(flag, kind, help, invert, compare, label, optional)
    o.check(default, flag.lstrip("-"))
    return field(default=default, metadata={OPTION: o})


def check_options(cfg) -> None:
    """Validate each field of the config ``cfg`` declared with :func:`option` against its range or
    choices (a sub-config validates its own fields when it is built)."""
    for f in dataclasses.fields(cfg):
        o = f.metadata.get(OPTION)
        if o is not None:
            o.check(getattr(cfg, f.name), f.name)


def options_of(cls, prefix: str = "") -> tuple[Option, ...]:
    """The :class:`Option` of every declared field of the config class ``cls``, with its dotted
    ``path`` (``prefix`` + name) and ``compare``. Order: class by class from the base (so the flags
    every method shares come before a method's own), each class's own fields before its sub-configs'
    (a field whose default is a config is a sub-config: ``optim``, ``attack``, ``sgld``)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out, seen = [], set()
    for c in reversed(cls.__mro__):
        added = [n for n in getattr(c, "__dataclass_fields__", {}) if n in fields and n not in seen]
        seen.update(added)
        nested = []
        for name in added:
            f = fields[name]
            o = f.metadata.get(OPTION)
            if o is not None:
                out.append(dataclasses.replace(o, path=prefix + name, compare=o.compare and prefix + o.compare))
                continue
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if dataclasses.is_dataclass(default) and not isinstance(default, type):
                nested += options_of(type(default), f"{prefix}{name}.")
        out += nested
    return tuple(out)


def merge_flags(declared) -> dict[str, list[tuple[str, Option]]]:
    """``dest -> [(method, Option), ...]`` from ``declared``, pairs ``(method, its options)``.

    A flag that several methods declare is one flag when the declarations mean the same
    (:attr:`Option.meaning`: the same field, range or choices; the help texts may differ). Two
    declarations of one flag that differ in meaning, within a method or between two, are a
    ``ValueError`` naming both methods."""
    out: dict[str, list[tuple[str, Option]]] = {}
    for method, options in declared:
        for o in options:
            prev = out.setdefault(o.dest, [])
            for other, p in prev:
                if p.meaning != o.meaning:
                    raise ValueError(
                        f"flag {o.flag} is declared twice with different meanings: by method {other!r} "
                        f"({_means(p)}) and by method {method!r} ({_means(o)}); declare a shared flag once "
                        f"(functools.partial(option, ...)) or give one of them another flag")
            prev.append((method, o))
    return out


def _means(o: Option) -> str:
    kind = o.kind.span() if isinstance(o.kind, Range) else o.kind
    return f"sets {o.path} to {kind}" + (" inverted" if o.invert else "") + (
        f", --resume compares {o.compare}" if o.compare else "")


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
    lr: float = option(1e-3, "--lr", POSITIVE)
    weight_decay: float = 0.0
    momentum: float = 0.9
    batch_size: int = option(128, "--batch-size", BATCH)
    warmup_steps: int = option(200, "--warmup-steps", NONNEG_INT, "linear learning-rate warm-up steps")
    schedule: str = "cosine"  # cosine | constant | step
    milestones: tuple = (0.5, 0.75)
    gamma: float = 0.1
    grad_clip: float = option(0.0, "--grad-clip", WEIGHT, "clip the gradient norm to this (0 = off)")

    def __post_init__(self):
        check_choice("optimiser", self.name, OPTIMISERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_options(self)
        NONNEG.check("weight_decay", self.weight_decay)
        Range(0.0, 1.0, hi_open=True).check("momentum", self.momentum)
        for m in self.milestones:
            UNIT.check("milestones", m)
        POSITIVE.check("gamma", self.gamma)


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

    kind: str = option("fgsm_rs", "--attack", ATTACK_KINDS, "training attack", label="attack kind")
    objective: str = "ce"  # ce (Eq. 14) | energy (Eq. 18) | kl (TRADES)
    eps: float = option(8 / 255, "--eps", UNIT, "attack radius in [0, 1], e.g. 8/255", label="attack eps")
    step_size: float | None = option(  # None -> eps (fgsm_rs) or 2/255 (pgd)
        None, "--attack-step-size", Range(0.0, 1.0, lo_open=True), label="attack step_size", optional=True,
        compare="resolved_step_size")
    n_steps: int | None = option(  # None -> 1 (fgsm_rs) or 10 (pgd)
        None, "--attack-steps", STEPS, label="attack n_steps", optional=True, compare="resolved_n_steps")
    grad_at: str = "perturbed"

    def __post_init__(self):
        check_options(self)
        check_choice("attack objective", self.objective, OBJECTIVES)
        check_choice("grad_at", self.grad_at, ("perturbed", "clean"))
        if self.objective == "kl" and self.grad_at == "clean" and self.kind == "fgsm_rs":
            raise ValueError("the kl objective's gradient at the clean point is 0; use grad_at='perturbed'")

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

    step_size: float = option(2.0, "--sgld-step-size", Range(0.0, 1e6, lo_open=True), "η: drift is -(η/2)∇E",
                              label="SGLD step_size")
    noise_std: float | None = option(0.01, "--sgld-noise", Range(0.0, 10.0), "noise std s (sqrt(η) is exact Langevin)",
                                     label="SGLD noise_std", optional=True)
    n_steps: int = option(10, "--sgld-steps", STEPS, "K in Algorithm 1", label="SGLD n_steps")
    buffer_size: int = option(10000, "--buffer-size", BUFFER, label="SGLD buffer_size")
    reinit_prob: float = option(0.05, "--reinit-prob", UNIT, "ρ in Algorithm 1")
    batch_size: int = option(64, "--sgld-batch", BATCH, "SGLD negatives per step", label="SGLD batch_size")
    clamp: bool = True
    init: str = option(  # uniform | class_gaussian (buffer init and re-init)
        "uniform", "--buffer-init", BUFFER_INITS,
        "replay-buffer init and re-init: uniform (JEM) or class_gaussian (Santurkar's seeds)", label="SGLD buffer init")

    def __post_init__(self):
        check_options(self)


@dataclass(frozen=True)
class TrainConfig:
    """Fields shared by every method (the method configs of :mod:`jeat_core.train.methods` add their own).

    A field the command line sets is declared with :func:`option` (its flag, range or choices and help
    on the field; they validate it too). Class attributes (not fields, so not in manifests) give a
    method's budget at each preset, ``cpu_epochs`` and ``paper_epochs``, and ``update_inputs``, how
    many copies of the batch its update's forward pass sees (2 when CE and another term are taken on
    different inputs)."""

    cpu_epochs: ClassVar[float] = 10.0
    paper_epochs: ClassVar[float] = 100.0
    update_inputs: ClassVar[int] = 1  # copies of the batch in the update's forward pass (benchmarks count it)

    method: str = "standard"
    preset: str = option("cpu", "--preset", PRESETS, "cpu (default) or paper")
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    dataset: str = option("cifar10", "--dataset", DATASETS)
    epochs: float = option(10.0, "--epochs", EPOCHS)
    max_steps: int | None = option(  # stop after this many steps (smoke runs); None = epochs
        None, "--max-steps", POSITIVE_INT, "stop after N steps (smoke runs)", optional=True)
    seed: int = option(0, "--seed", SEED)
    augment: bool = True
    log_every: int = option(50, "--log-every", NONNEG_INT)  # energy-dynamics log and metrics
    checkpoint_every: int = option(500, "--checkpoint-every", NONNEG_INT)  # resumable state
    eval_n: int = option(  # test images for the end-of-training clean accuracy
        1000, "--eval-n", TEST_IMAGES, "test images for the final clean accuracy")
    deterministic: bool = option(False, "--deterministic", "switch")
    amp: bool = option(True, "--no-amp", "switch", invert=True)  # bf16 autocast on CUDA (ignored on CPU)
    channels_last: bool = True
    compile: bool = option(False, "--compile", "switch")
    # fine-tuning: start from the weights of this trained model (a shipped name such as
    # "cifar10-cpu/prejeat" or a run folder); its architecture must equal ``model``. The manifest
    # records it, so the total budget is the parent's plus this run's.
    init_from: str | None = option(None, "--init-from", "text",
                                   "start from this trained model's weights (fine-tune; same architecture)")
    # divergence guard (see :func:`jeat_core.train.guard.why_bad`): every update is checked (finite loss,
    # metrics and parameters; max |logit| against an absolute ceiling and a relative rule), and the
    # logits of the updated model are probed before anything is saved
    max_abs_energy: float = 1e4  # absolute ceiling on max |logit|
    energy_floor: float = 50.0  # the relative rule never trips below this max |logit|
    energy_growth: float = 4.0  # ... and trips above energy_growth × the max |logit| of the known-good run
    guard_every: int = 50  # in-memory "last good" snapshot period
    max_retries: int = 3  # roll-backs in a row before giving up (reset after a recovery)
    lr_backoff: float = 0.5

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "options" in vars(cls):
            raise TypeError(f"{cls.__name__}.options: a method's flags are declared on their fields, e.g. "
                            f"`beta: float = option(6.0, \"--beta\", WEIGHT, \"help\")` (docs/methods.md)")

    def __post_init__(self):
        own = type(self).__dataclass_fields__["method"].default
        if self.method != own:
            raise ValueError(f"{type(self).__name__} is the config of method {own!r}; got method={self.method!r}")
        check_options(self)  # the declared fields, the method's own included
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
        """Every command-line option this config accepts: its fields declared with :func:`option`
        and its sub-configs' (``optim``, and ``attack`` or ``sgld`` when it has those), by
        :func:`options_of`."""
        return options_of(cls)


def config_to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)

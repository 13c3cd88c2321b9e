"""The feature spaces ("rulers") generated images are scored in, each one registry entry, and the
paired comparisons of generated sets across them (the protocol of ``docs/evaluation.md``; the
statistics are :mod:`jeat_core.measure.gen_eval`'s).

A :class:`Ruler` is a name, a feature function ``features(ctx, images) -> (N, D)``, whether those
features are standardised by the real reference set, and a role: ``primary`` (the first KID
comparison of every claim part), ``check`` (an independent ruler a verdict must not contradict) or
``diagnostic`` (shown in the tables, never used for a verdict). :func:`register_ruler` adds one, and
every comparison, audit record and rendered table that iterates :data:`RULERS` picks it up:

    register_ruler("pixels/4x4/std", PixelFeatures(4), role="diagnostic", standardise=True,
                   description="images average-pooled to 4 x 4 x 3, standardised")

A feature function that reads an evaluator checkpoint says so by an ``evaluator`` attribute (the
checkpoint's name, as :class:`EvaluatorFeatures` has); a ruler whose evaluator is not shipped is
skipped, and the records say so (:func:`missing`). A feature function without one (a plain function,
:class:`PixelFeatures`) needs no checkpoint and is always available.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import Tensor

from jeat_core.core.checkpoints import CheckpointError, atomic_write_bytes, load_model
from jeat_core.core.user_model import model_hash
from jeat_core.measure.evaluator import EVALUATOR, EVALUATOR_B
from jeat_core.measure.gen_eval import (
    FID_BOOT,
    KID_BOOT,
    Comparison,
    Standardizer,
    fid_difference,
    kernel_argument,
    kid_difference,
    kid_point,
    knn_radii,
    prdc,
)
from jeat_core.measure.metrics import frechet_distance, penultimate, self_kernel_mean
from jeat_core.measure.stats import wilson_interval


class Context(Protocol):
    """What the rulers need of a context (:class:`jeat_core.paper.experiments.Context` is one): a cache
    of values by key and the test set. A protocol, so that measuring needs nothing of the paper layer."""

    def cached(self, key: tuple, make: Callable[[], Any]) -> Any: ...

    def test(self) -> tuple[Tensor, Tensor]: ...


REFERENCE = (5000, 10000)  # real test images every generated set is scored against
ROLES = ("primary", "check", "diagnostic")


def _evaluator(ctx: Context, name: str):
    return ctx.cached(("evaluator-model", name), lambda: load_model(name)[0])


# ----------------------------------------------------------------------------- feature functions
@dataclass(frozen=True)
class EvaluatorFeatures:
    """An evaluator checkpoint's features: its penultimate ones (the input of its last linear layer)
    or, with ``view="mid"``, its mid-level ones (the output of its second stage, averaged over space)."""

    evaluator: str  # checkpoint name: the ruler needs it shipped
    view: str = "penultimate"
    batch: int = 500

    def __post_init__(self):
        if self.view not in ("penultimate", "mid"):
            raise ValueError(f"EvaluatorFeatures view must be 'penultimate' or 'mid', not {self.view!r}")

    def __call__(self, ctx: Context, images: Tensor) -> Tensor:
        model, b = _evaluator(ctx, self.evaluator), self.batch
        if self.view == "penultimate":
            return penultimate(model, images, b)[0]
        return torch.cat([model.mid_features(images[i:i + b]) for i in range(0, len(images), b)])


@dataclass(frozen=True)
class PixelFeatures:
    """The images themselves, average-pooled to ``size`` x ``size`` per channel and flattened
    (``3 size²`` dimensions): a ruler that no network has learned, needing no checkpoint."""

    size: int = 8

    def __post_init__(self):
        if self.size < 1:
            raise ValueError(f"PixelFeatures size must be a positive integer, not {self.size!r}")

    def __call__(self, ctx: Context, images: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(images, self.size).flatten(1)


# ----------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Ruler:
    """One feature space generated images are scored in (see the module's docstring)."""

    name: str
    features: Callable[[Context, Tensor], Tensor]  # (ctx, images (N, C, H, W)) -> (N, D)
    standardise: bool
    role: str
    description: str

    @property
    def evaluator(self) -> str | None:
        """The checkpoint the feature function needs (and whose accuracy the set metrics report), or
        ``None`` for a ruler that needs none."""
        return getattr(self.features, "evaluator", None)


RULERS: dict[str, Ruler] = {}  # name -> ruler, in registration order (primary first, as registered below)


def register_ruler(name: str, features: Callable[[Context, Tensor], Tensor], *, role: str, standardise: bool,
                   description: str) -> Ruler:
    """Add a ruler to :data:`RULERS` and return it: the one call a new feature space needs. ``features``
    maps ``(ctx, images)`` to ``(N, D)`` features; ``role`` is one of :data:`ROLES` (at most one primary)."""
    if not name or name in RULERS:
        raise ValueError(f"a ruler needs a new, non-empty name; {name!r} is taken or empty "
                         f"(registered: {', '.join(RULERS)})")
    if role not in ROLES:
        raise ValueError(f"ruler {name!r}: role must be one of {', '.join(ROLES)}, not {role!r}")
    if not callable(features):
        raise ValueError(f"ruler {name!r}: features must be callable as features(ctx, images), got {features!r}")
    if role == "primary" and any(r.role == "primary" for r in RULERS.values()):
        raise ValueError(f"ruler {name!r}: there is already a primary ruler ({primary().name})")
    RULERS[name] = Ruler(name, features, standardise, role, description)
    return RULERS[name]


def unregister_ruler(name: str) -> Ruler:
    """Remove a ruler from :data:`RULERS` (a test's throwaway one) and return it."""
    ruler(name)
    return RULERS.pop(name)


def ruler(name: str) -> Ruler:
    """The registered ruler called ``name``; an unknown name is an error listing the known ones."""
    if name not in RULERS:
        raise ValueError(f"unknown ruler {name!r}; registered: {', '.join(RULERS)}")
    return RULERS[name]


def of_role(*roles: str) -> list[Ruler]:
    """The registered rulers of ``roles`` (shipped or not), in role order, then registration order."""
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise ValueError(f"unknown role(s) {', '.join(map(repr, bad))}; roles are {', '.join(ROLES)}")
    return sorted((s for s in RULERS.values() if s.role in roles), key=lambda s: ROLES.index(s.role))


register_ruler("eval-A/std", EvaluatorFeatures(EVALUATOR), role="primary", standardise=True,
               description="evaluator A's penultimate features, standardised by the real reference set")
register_ruler("eval-B/std", EvaluatorFeatures(EVALUATOR_B), role="check", standardise=True,
               description="evaluator B's (another family and seed) penultimate features, standardised")
register_ruler("eval-A/mid/std", EvaluatorFeatures(EVALUATOR, "mid"), role="check", standardise=True,
               description="evaluator A's second-stage features, averaged over space, standardised")
register_ruler("eval-A/raw", EvaluatorFeatures(EVALUATOR), role="diagnostic", standardise=False,
               description="evaluator A's raw penultimate features (KID there mostly measures the feature norm)")
register_ruler("pixels/8x8/std", PixelFeatures(8), role="diagnostic", standardise=True,
               description="the images average-pooled to 8 x 8 x 3 = 192 pixel values, standardised (no network)")


def available(ctx: Context, roles: tuple[str, ...] = ("primary", "check")) -> list[Ruler]:
    """The rulers of ``roles`` that can be measured here (their evaluator shipped, or none needed),
    primary first."""
    out = []
    for s in of_role(*roles):
        if s.evaluator is not None:
            try:
                _evaluator(ctx, s.evaluator)
            except (CheckpointError, FileNotFoundError):
                continue
        out.append(s)
    return out


def missing(ctx: Context) -> list[str]:
    """Names of the rulers whose evaluator is not shipped (reported, never silently dropped)."""
    have = {s.name for s in available(ctx, ROLES)}
    return [n for n in RULERS if n not in have]


@torch.no_grad()
def raw_features(ctx: Context, space: Ruler, images: Tensor) -> Tensor:
    """The un-standardised features of ``images`` in ``space`` (``(N, D)`` float64)."""
    return space.features(ctx, images).double()


def primary() -> Ruler:
    """The primary ruler (the first KID comparison of every claim part; sampler tuning's metric)."""
    found = of_role("primary")
    if not found:
        raise ValueError(f"no primary ruler is registered (registered: {', '.join(RULERS) or 'none'})")
    return found[0]


FEATURE_STORE = "JEAT_FEATURE_CACHE"  # a folder: real images' features kept across processes (off when unset)


@functools.lru_cache(maxsize=1)
def _feature_code_version() -> str:
    """sha256 of the code that turns images into features: this module, the evaluators and the models."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in (here / "rulers.py", here / "metrics.py", here / "evaluator.py", here.parent / "core" / "models.py"):
        h.update(f.read_bytes())
    return h.hexdigest()


def _store_path(ctx: Context, space: Ruler, images: Tensor) -> Path | None:
    """Where ``space``'s features of ``images`` are kept under ``$JEAT_FEATURE_CACHE``, or ``None`` (no
    store set, or a feature function from outside this library, whose code the key cannot see). The key
    is the content of everything the features depend on: the ruler's name and feature function, the
    feature code, torch's version, the evaluator's weights and the images themselves."""
    root = os.environ.get(FEATURE_STORE)
    if not root or not type(space.features).__module__.startswith("jeat_core."):
        return None
    h = hashlib.sha256()
    for part in (space.name, repr(space.features), _feature_code_version(), torch.__version__,
                 str(images.dtype), str(tuple(images.shape))):
        h.update(part.encode() + b"\0")
    if space.evaluator is not None:
        h.update(model_hash(_evaluator(ctx, space.evaluator)).encode())
    h.update(images.detach().cpu().contiguous().numpy().tobytes())
    return Path(root) / f"{h.hexdigest()[:32]}.safetensors"


def stored_raw_features(ctx: Context, space: Ruler, images: Tensor) -> Tensor:
    """:func:`raw_features`, read from ``$JEAT_FEATURE_CACHE`` when an earlier process computed them for
    the same content (else computed and kept there). With the variable unset, exactly :func:`raw_features`.
    The test suite sets it (inside ``build/``): each notebook kernel and test process would otherwise
    compute the 5,000 reference images' features of every ruler again."""
    path = _store_path(ctx, space, images)
    if path is not None and path.is_file():
        return load_tensors(path.read_bytes())["features"]
    f = raw_features(ctx, space, images)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, save_tensors({"features": f.contiguous()}))
    return f


def real_features(ctx: Context, space: Ruler, ref: tuple[int, int] = REFERENCE) -> Tensor:
    """Raw features of the real test images ``ref`` (``[lo, hi)``) in ``space`` (computed once per context;
    across processes too with ``$JEAT_FEATURE_CACHE``, :func:`stored_raw_features`)."""
    lo, hi = ref
    return ctx.cached(("real-features", space.name, ref),
                      lambda: stored_raw_features(ctx, space, ctx.test()[0][lo:hi]))


def _standardizer(ctx: Context, space: Ruler, ref: tuple[int, int]) -> Standardizer:
    return ctx.cached(("standardizer", space.name, ref), lambda: Standardizer(real_features(ctx, space, ref)))


def features(ctx: Context, space: Ruler, images: Tensor, ref: tuple[int, int] = REFERENCE) -> Tensor:
    """Features of ``images`` in ``space``, standardised by the real images ``ref`` when the space says so."""
    f = raw_features(ctx, space, images)
    return _standardizer(ctx, space, ref)(f) if space.standardise else f


def reference(ctx: Context, space: Ruler, ref: tuple[int, int] = REFERENCE) -> Tensor:
    """The real images ``ref``'s features in ``space`` (computed once per context)."""
    if not space.standardise:
        return real_features(ctx, space, ref)
    return ctx.cached(("reference", space.name, ref),
                      lambda: _standardizer(ctx, space, ref)(real_features(ctx, space, ref)))


PRDC_K = 5  # PRDC's neighbourhood size


def reference_terms(ctx: Context, space: Ruler, ref: tuple[int, int] = REFERENCE) -> dict[str, Tensor]:
    """What every set scored against the real images ``ref`` shares, computed once per context: KID's
    within-reference term (``"yy"``) and PRDC's real ball radii (``"radii"``, k = :data:`PRDC_K`). The
    same numbers as recomputing them per set, without an ``N × N`` kernel and distance matrix each time."""
    def make() -> dict[str, Tensor]:
        real = reference(ctx, space, ref)
        return {"yy": self_kernel_mean(real), "radii": knn_radii(real, PRDC_K)}
    return ctx.cached(("reference-terms", space.name, ref), make)


def kid(ctx: Context, space: Ruler, images: Tensor, ref: tuple[int, int] = REFERENCE) -> float:
    """Unbiased KID of ``images`` against the real images ``ref`` in ``space`` (a point, no interval:
    sampler tuning ranks cells by it)."""
    return kid_point(features(ctx, space, images, ref), reference(ctx, space, ref),
                     yy=reference_terms(ctx, space, ref)["yy"])


def set_metrics(ctx: Context, space: Ruler, images: Tensor, labels: Tensor | None = None,
                ref: tuple[int, int] = REFERENCE) -> dict:
    """KID, FID, precision/recall/density/coverage (k = 5) and the kernel argument of one set in
    ``space`` against the reference; given the intended ``labels`` and a ruler with an evaluator,
    also that evaluator's accuracy on them (with its Wilson 95% interval). ``ref``: the real test images
    ``[lo, hi)`` scored against (default :data:`REFERENCE`)."""
    f, real, terms = features(ctx, space, images, ref), reference(ctx, space, ref), reference_terms(ctx, space, ref)
    out = {"space": space.name, "n": len(f), "kid": kid_point(f, real, yy=terms["yy"]),
           "fid": frechet_distance(f, real),
           **{k: v for k, v in prdc(real, f, k=PRDC_K, real_radii=terms["radii"]).items() if k != "k"},
           "kernel_argument": kernel_argument(f)}
    if labels is not None and space.evaluator is not None:
        hits = int((evaluator_predictions(ctx, space, images) == labels).sum())
        out["eval_acc"], out["eval_acc_ci"] = hits / len(labels), list(wilson_interval(hits, len(labels)))
    return out


@torch.no_grad()
def evaluator_predictions(ctx: Context, space: Ruler, images: Tensor, batch: int = 500) -> Tensor:
    """The class ``space``'s evaluator assigns to each image (a ruler without an evaluator has none)."""
    if space.evaluator is None:
        raise ValueError(f"ruler {space.name!r} has no evaluator to classify images; rulers with one: "
                         f"{', '.join(s.name for s in RULERS.values() if s.evaluator is not None)}")
    model = _evaluator(ctx, space.evaluator)
    model.eval()
    return torch.cat([model(images[i:i + batch]).argmax(1) for i in range(0, len(images), batch)])


def compare(ctx: Context, a: list[Tensor], b: list[Tensor], *, spaces: list[Ruler] | None = None,
            n_boot_kid: int = KID_BOOT, n_boot_fid: int = FID_BOOT, fid: bool = True,
            run_pairing: str = "welch", ref: tuple[int, int] = REFERENCE) -> list[Comparison]:
    """Paired differences ``metric(a) − metric(b)`` in each space: KID in every space first (the
    primary one leading), then FID. ``a``/``b`` are the image sets of one or more training runs per
    side, image i of every set generated from seed i (with the same Langevin noise); ``run_pairing``
    ``"paired"`` when run r of ``a`` and of ``b`` are one training run measured two ways; ``ref`` the
    real test images ``[lo, hi)`` (default :data:`REFERENCE`)."""
    spaces = available(ctx) if spaces is None else spaces
    feats = {s.name: ([features(ctx, s, x, ref) for x in a], [features(ctx, s, x, ref) for x in b],
                      reference(ctx, s, ref))
             for s in spaces}
    out = [kid_difference(fa, fb, real, space=name, n_boot=n_boot_kid, run_pairing=run_pairing)
           for name, (fa, fb, real) in feats.items()]
    if fid:
        out += [fid_difference(fa, fb, real, space=name, n_boot=n_boot_fid, run_pairing=run_pairing)
                for name, (fa, fb, real) in feats.items()]
    return out

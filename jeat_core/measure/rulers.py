"""The feature spaces ("rulers") generated images are scored in, listed once, and the paired
comparisons of generated sets across them (the protocol of ``docs/evaluation.md``; the statistics
are :mod:`jeat_core.measure.gen_eval`'s).

A :class:`FeatureSpace` names an evaluator checkpoint, a view of it (its penultimate features or
its mid-level, spatially averaged ones), whether the features are standardised by the real
reference set, and its role: ``primary`` (the first KID comparison of every claim part),
``check`` (an independent ruler a verdict must not contradict) or ``diagnostic`` (shown, never
used for a verdict: the raw features whose KID mostly measures the feature norm). A space whose
evaluator is not shipped is skipped, and the records say so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from jeat_core.core.checkpoints import CheckpointError, load_model
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
    prdc,
)
from jeat_core.measure.metrics import frechet_distance, penultimate
from jeat_core.measure.stats import wilson_interval


class Context(Protocol):
    """What the rulers need of a context (:class:`jeat_core.paper.experiments.Context` is one): a cache
    of values by key and the test set. A protocol, so that measuring needs nothing of the paper layer."""

    def cached(self, key: tuple, make: Callable[[], Any]) -> Any: ...

    def test(self) -> tuple[Tensor, Tensor]: ...


REFERENCE = (5000, 10000)  # real test images every generated set is scored against
ROLES = ("primary", "check", "diagnostic")


@dataclass(frozen=True)
class FeatureSpace:
    name: str
    evaluator: str  # checkpoint name
    view: str  # "penultimate" | "mid"
    standardise: bool
    role: str
    description: str

    def __post_init__(self):
        if self.view not in ("penultimate", "mid") or self.role not in ROLES:
            raise ValueError(f"bad feature space {self}")


FEATURE_SPACES: dict[str, FeatureSpace] = {s.name: s for s in (
    FeatureSpace("eval-A/std", EVALUATOR, "penultimate", True, "primary",
                 "evaluator A's penultimate features, standardised by the real reference set"),
    FeatureSpace("eval-B/std", EVALUATOR_B, "penultimate", True, "check",
                 "evaluator B's (another family and seed) penultimate features, standardised"),
    FeatureSpace("eval-A/mid/std", EVALUATOR, "mid", True, "check",
                 "evaluator A's second-stage features, averaged over space, standardised"),
    FeatureSpace("eval-A/raw", EVALUATOR, "penultimate", False, "diagnostic",
                 "evaluator A's raw penultimate features (KID there mostly measures the feature norm)"),
)}


def _evaluator(ctx: Context, name: str):
    return ctx.cached(("evaluator-model", name), lambda: load_model(name)[0])


def available(ctx: Context, roles: tuple[str, ...] = ("primary", "check")) -> list[FeatureSpace]:
    """The spaces of ``roles`` whose evaluator is shipped, primary first."""
    out = []
    for s in FEATURE_SPACES.values():
        if s.role not in roles:
            continue
        try:
            _evaluator(ctx, s.evaluator)
        except (CheckpointError, FileNotFoundError):
            continue
        out.append(s)
    return sorted(out, key=lambda s: ROLES.index(s.role))


def missing(ctx: Context) -> list[str]:
    """Names of the spaces whose evaluator is not shipped (reported, never silently dropped)."""
    have = {s.name for s in available(ctx, ROLES)}
    return [n for n in FEATURE_SPACES if n not in have]


@torch.no_grad()
def raw_features(ctx: Context, space: FeatureSpace, images: Tensor, batch: int = 500) -> Tensor:
    """The un-standardised features of ``images`` in ``space`` (``(N, D)`` float64)."""
    model = _evaluator(ctx, space.evaluator)
    if space.view == "penultimate":
        return penultimate(model, images, batch)[0].double()
    return torch.cat([model.mid_features(images[i:i + batch]) for i in range(0, len(images), batch)]).double()


def primary() -> FeatureSpace:
    """The primary space (the first KID comparison of every claim part; sampler tuning's metric)."""
    return next(s for s in FEATURE_SPACES.values() if s.role == "primary")


def real_features(ctx: Context, space: FeatureSpace, ref: tuple[int, int] = REFERENCE) -> Tensor:
    """Raw features of the real test images ``ref`` (``[lo, hi)``) in ``space`` (computed once per context)."""
    lo, hi = ref
    return ctx.cached(("real-features", space.name, ref),
                      lambda: raw_features(ctx, space, ctx.test()[0][lo:hi]))


def _standardizer(ctx: Context, space: FeatureSpace, ref: tuple[int, int]) -> Standardizer:
    return ctx.cached(("standardizer", space.name, ref), lambda: Standardizer(real_features(ctx, space, ref)))


def features(ctx: Context, space: FeatureSpace, images: Tensor, ref: tuple[int, int] = REFERENCE) -> Tensor:
    """Features of ``images`` in ``space``, standardised by the real images ``ref`` when the space says so."""
    f = raw_features(ctx, space, images)
    return _standardizer(ctx, space, ref)(f) if space.standardise else f


def reference(ctx: Context, space: FeatureSpace, ref: tuple[int, int] = REFERENCE) -> Tensor:
    """The real images ``ref``'s features in ``space`` (computed once per context)."""
    if not space.standardise:
        return real_features(ctx, space, ref)
    return ctx.cached(("reference", space.name, ref),
                      lambda: _standardizer(ctx, space, ref)(real_features(ctx, space, ref)))


def kid(ctx: Context, space: FeatureSpace, images: Tensor, ref: tuple[int, int] = REFERENCE) -> float:
    """Unbiased KID of ``images`` against the real images ``ref`` in ``space`` (a point, no interval:
    sampler tuning ranks cells by it)."""
    return kid_point(features(ctx, space, images, ref), reference(ctx, space, ref))


def set_metrics(ctx: Context, space: FeatureSpace, images: Tensor, labels: Tensor | None = None) -> dict:
    """KID, FID, precision/recall/density/coverage (k = 5) and the kernel argument of one set in
    ``space`` against the reference; given the intended ``labels``, also the space's evaluator's
    accuracy on them (with its Wilson 95% interval)."""
    f, real = features(ctx, space, images), reference(ctx, space)
    out = {"space": space.name, "n": len(f), "kid": kid_point(f, real), "fid": frechet_distance(f, real),
           **{k: v for k, v in prdc(real, f).items() if k != "k"}, "kernel_argument": kernel_argument(f)}
    if labels is not None:
        hits = int((evaluator_predictions(ctx, space, images) == labels).sum())
        out["eval_acc"], out["eval_acc_ci"] = hits / len(labels), list(wilson_interval(hits, len(labels)))
    return out


@torch.no_grad()
def evaluator_predictions(ctx: Context, space: FeatureSpace, images: Tensor, batch: int = 500) -> Tensor:
    """The class ``space``'s evaluator assigns to each image."""
    model = _evaluator(ctx, space.evaluator)
    model.eval()
    return torch.cat([model(images[i:i + batch]).argmax(1) for i in range(0, len(images), batch)])


def compare(ctx: Context, a: list[Tensor], b: list[Tensor], *, spaces: list[FeatureSpace] | None = None,
            n_boot_kid: int = KID_BOOT, n_boot_fid: int = FID_BOOT, fid: bool = True,
            run_pairing: str = "welch") -> list[Comparison]:
    """Paired differences ``metric(a) − metric(b)`` in each space: KID in every space first (the
    primary one leading), then FID. ``a``/``b`` are the image sets of one or more training runs per
    side, image i of every set generated from seed i (with the same Langevin noise); ``run_pairing``
    ``"paired"`` when run r of ``a`` and of ``b`` are one training run measured two ways."""
    spaces = available(ctx) if spaces is None else spaces
    feats = {s.name: ([features(ctx, s, x) for x in a], [features(ctx, s, x) for x in b], reference(ctx, s))
             for s in spaces}
    out = [kid_difference(fa, fb, real, space=name, n_boot=n_boot_kid, run_pairing=run_pairing)
           for name, (fa, fb, real) in feats.items()]
    if fid:
        out += [fid_difference(fa, fb, real, space=name, n_boot=n_boot_fid, run_pairing=run_pairing)
                for name, (fa, fb, real) in feats.items()]
    return out

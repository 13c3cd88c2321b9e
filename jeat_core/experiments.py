"""Experiments: the measurements behind the paper's generation figures, Fisher scores and Fig. 2
numbers, returning data (records), with one cached context (zoo, data, seeds, evaluator).

Generation protocol (Figs. 4-6, Tab. 2), used by ``jeat audit`` and ``jeat tune-samplers``:

* **Seeds**: class-conditional Gaussians fitted on the training images (Santurkar et al.), balanced
  labels (the same number per class). Validation seeds (``VAL_SEED``) choose samplers; fresh seeds
  (``TEST_SEED``) score them.
* **Evaluator**: the independent classifier of :mod:`jeat_core.evaluator`; its pooled features feed
  KID and FID, its predictions the *evaluator accuracy* (share of samples classified as the intended
  class). A CIFAR-trained feature space, not Inception.
* **Reference**: real test images ``[5000, 10000)``; the real-vs-real floor uses test images
  ``[0, n)``, disjoint from it. Validation uses ``[0, 2000)`` as its reference.
* **Best vs best**: each (model, energy) gets the sampler of :data:`SAMPLER_GRID` × :data:`STEP_COUNTS`
  with the lowest validation KID, stored in its manifest (``manifest["sampler"][energy]``) and used
  by ``jeat generate`` and the explorers; a comparison *at matched distance moved* from the seeds
  is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .checkpoints import load_model
from .data import CIFAR10_CLASSES, load_split
from .energy import energy_of
from .evaluator import EVALUATOR
from .landscape import energy_grid, landscape_stats, random_directions
from .metrics import KIDReference, fisher_score, fisher_scores_piecewise_linear, penultimate, wilson_interval
from .sampling import (
    ClassGaussian,
    GenerationConfig,
    generate,
    generate_snapshots,
    generation_energy,
    sampler_for,
)

VAL_SEED, TEST_SEED = 1, 2
STEP_COUNTS = (10, 20, 40, 60)
SAMPLER_GRID = (
    GenerationConfig(step="langevin", step_size=0.1, n_steps=60, noise_std=0.001),
    GenerationConfig(step="langevin", step_size=0.3, n_steps=60, noise_std=0.001),
    GenerationConfig(step="langevin", step_size=1.0, n_steps=60, noise_std=0.001),
    GenerationConfig(step="langevin", step_size=3.0, n_steps=60, noise_std=0.001),
    GenerationConfig(step="langevin", step_size=10.0, n_steps=60, noise_std=0.001),
    GenerationConfig(step="l2", step_size=0.5, n_steps=60, noise_std=0.0),
)
# (model, energy) pairs whose samplers the audit compares
TUNED_PAIRS = (("at", "joint"), ("at", "ce"), ("prejeat", "joint"), ("jeat", "joint"), ("jem", "joint"),
               ("noise-8", "joint"), ("noise-16", "joint"), ("noise-24", "joint"))


def balanced_labels(per_class: int, n_classes: int = 10) -> Tensor:
    """``(per_class * n_classes,)`` labels 0, 1, ..., K-1, 0, 1, ..."""
    return torch.arange(n_classes).repeat(per_class)


def sampler_record(cfg: GenerationConfig) -> dict:
    return {k: v for k, v in asdict(cfg).items() if k != "energy"}


def describe(cfg: GenerationConfig) -> str:
    kind = "Langevin η" if cfg.step == "langevin" else "L2 step"
    return f"{kind} {cfg.step_size:g}, K {cfg.n_steps}, s {cfg.noise_std:g}"


@dataclass
class Context:
    """Lazily loaded, cached inputs of the experiments: models, data, seeds, evaluator, references."""

    data_root: str | None = None
    preset: str = "cifar10-cpu"
    paths: dict = field(default_factory=dict)  # name -> checkpoint folder (candidates not shipped yet)
    _cache: dict = field(default_factory=dict, repr=False)

    def cached(self, key, make: Callable[[], Any]):
        """``make()``, computed once per ``key`` (hashable) for the life of this context."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def model(self, name: str):
        """``(model, manifest)`` of a shipped model (``CheckpointError`` when it is not shipped)."""
        return self.cached(("model", name), lambda: load_model(self.paths.get(name, f"{self.preset}/{name}")))

    def models(self, names) -> dict:
        """Zoo name -> model, for each of ``names``."""
        return {n: self.model(n)[0] for n in names}

    def manifests(self, names) -> dict:
        """Zoo name -> manifest, for each of ``names``."""
        return {n: self.model(n)[1] for n in names}

    def use_sampler(self, name: str, energy: str, entry: dict) -> None:
        """Generate with ``entry`` (a :func:`sampler_entry`) as model ``name``'s tuned sampler for ``energy``
        from now on in this context: it is set in the loaded manifest, in memory only (:func:`store_sampler`
        writes a manifest on disk). Generation sets already made are not recomputed."""
        self.model(name)[1].setdefault("sampler", {})[energy] = entry

    def test(self) -> tuple[Tensor, Tensor]:
        return self.cached("test", lambda: load_split("test", data_root=self.data_root).tensors())

    def train_split(self):
        return self.cached("train", lambda: load_split("train", data_root=self.data_root))

    def class_gaussian(self) -> ClassGaussian:
        return self.cached("cg", lambda: ClassGaussian(self.train_split().x, self.train_split().y))

    def seeds(self, per_class: int, seed: int) -> tuple[Tensor, Tensor]:
        """``(seeds, labels)``: class-Gaussian seeds for balanced labels."""
        def make():
            labels = balanced_labels(per_class)
            return self.class_gaussian().sample(labels, generator=torch.Generator().manual_seed(seed)), labels
        return self.cached(("seeds", per_class, seed), make)

    def evaluator(self):
        return self.cached("evaluator", lambda: load_model(EVALUATOR)[0])

    def features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return penultimate(self.evaluator(), x)

    def reference(self, lo: int, hi: int) -> KIDReference:
        return self.cached(("ref", lo, hi), lambda: KIDReference(self.features(self.test()[0][lo:hi])[0]))


def score_images(ctx: Context, images: Tensor, labels: Tensor, ref: KIDReference, seeds: Tensor | None = None,
                 *, fid_interval: bool = True) -> dict:
    """KID and FID (bootstrap 95% CIs) against ``ref``, evaluator accuracy (Wilson CI) and, given the
    seeds, the mean L2 distance moved from them."""
    f, p = ctx.features(images)
    out = ref.score(f, fid_interval=fid_interval)
    hits = int((p.argmax(1) == labels).sum())
    out["eval_acc"], out["eval_acc_ci"] = hits / len(labels), list(wilson_interval(hits, len(labels)))
    if seeds is not None:
        out["l2_moved"] = float((images - seeds).flatten(1).norm(dim=1).mean())
    out["features"] = f
    return out


def public(rec: dict) -> dict:
    """A score record without its feature tensor, rounded for tables and JSON."""
    def r(v):
        if isinstance(v, float):
            return float(f"{v:.4g}")
        if isinstance(v, (list, tuple)):
            return [r(u) for u in v]
        return v
    return {k: r(v) for k, v in rec.items() if k != "features"}


def tune_sampler(ctx: Context, name: str, energy: str, *, per_class: int = 10,
                 progress=lambda msg: None) -> dict:
    """Validation KID of every sampler in the grid for one (model, energy); returns
    ``{"best": GenerationConfig, "rows": [...]}`` (rows: sampler, KID, CI, eval acc, L2 moved)."""
    model, _ = ctx.model(name)
    seeds, labels = ctx.seeds(per_class, VAL_SEED)
    ref = ctx.reference(0, 2000)
    rows = []
    for base in SAMPLER_GRID:
        cfg = replace(base, energy=energy)
        t0 = time.time()
        snaps = generate_snapshots(model, labels, seeds, cfg, at=STEP_COUNTS, seed=VAL_SEED)
        for k, images in snaps.items():
            rec = public(score_images(ctx, images, labels, ref, seeds, fid_interval=False))
            rows.append({"sampler": sampler_record(replace(cfg, n_steps=k)), **rec})
        progress(f"{name} {energy}: {describe(cfg)} ({time.time() - t0:.0f} s): "
                 + ", ".join(f"K {r['sampler']['n_steps']} KID {r['kid']:.2e}" for r in rows[-len(snaps):]))
    best = min(rows, key=lambda r: r["kid"])
    return {"best": GenerationConfig(energy=energy, **best["sampler"]), "rows": rows}


def matched_distance(rows_a: list[dict], rows_b: list[dict]) -> dict:
    """Compare two validation grids at the same L2 distance moved from the seeds: the better grid's
    best row (lowest KID of either grid) against the other grid's row whose ``l2_moved`` is closest
    to it. (Matching *any* pair at their closest distance could compare two poor samplers.)"""
    best_a, best_b = min(rows_a, key=lambda r: r["kid"]), min(rows_b, key=lambda r: r["kid"])
    if best_a["kid"] <= best_b["kid"]:
        ra, rb = best_a, min(rows_b, key=lambda r: abs(r["l2_moved"] - best_a["l2_moved"]))
    else:
        ra, rb = min(rows_a, key=lambda r: abs(r["l2_moved"] - best_b["l2_moved"])), best_b
    return {"a": {"sampler": ra["sampler"], "kid": ra["kid"], "l2_moved": ra["l2_moved"]},
            "b": {"sampler": rb["sampler"], "kid": rb["kid"], "l2_moved": rb["l2_moved"]}}


def generation_set(ctx: Context, name: str, energy: str = "joint", *, per_class: int = 100,
                   max_steps: int | None = None) -> dict:
    """Generate ``per_class`` images per class on fresh seeds with the model's own best sampler
    (``manifest["sampler"][energy]``, else the defaults; ``max_steps`` caps K for smoke runs) and
    score them against the reference test images [5000, 10000)."""
    def make():
        model, manifest = ctx.model(name)
        cfg = sampler_for(manifest, energy, max_steps=max_steps)
        seeds, labels = ctx.seeds(per_class, TEST_SEED)
        images = generate(model, labels, seeds, cfg, seed=TEST_SEED)
        rec = score_images(ctx, images, labels, ctx.reference(5000, 10000), seeds)
        rec.update(sampler=sampler_record(cfg), model=name, energy=energy, images=images)
        return rec

    return ctx.cached(("gen", name, energy, per_class, max_steps), make)


def baselines(ctx: Context, *, per_class: int = 100) -> dict:
    """The real-vs-real floor (test images [0, n) against [5000, 10000)) and the class-Gaussian-seed
    baseline (the seeds themselves, scored like generated images)."""
    def make():
        n = per_class * 10
        ref = ctx.reference(5000, 10000)
        x, y = ctx.test()
        seeds, labels = ctx.seeds(per_class, TEST_SEED)
        return {"real": score_images(ctx, x[:n], y[:n], ref), "seeds": score_images(ctx, seeds, labels, ref)}
    return ctx.cached(("baselines", per_class), make)


def kid_difference(ctx: Context, a: dict, b: dict) -> dict:
    """KID(a) − KID(b) with a bootstrap 95% CI over generated and reference images."""
    return ctx.reference(5000, 10000).difference(a["features"], b["features"])


# ----------------------------------------------------------------------------- Fisher scores
def fisher_rows(models: dict, x: Tensor, y: Tensor, *, n_probes: int = 2, batch: int = 100,
                seed: int = 0) -> list[dict]:
    """Tab. 2 in both conventions for ``models`` (name -> model), mean ± standard error over ``x``:

    * ``JFS``/``MFS``: Eq. 23/24 as written, ``½‖∇E‖² − tr ∇²E`` (Hutchinson trace, Rademacher probes);
    * ``JFS_pl``/``MFS_pl``: the piecewise-linear convention ``∇²ₓf ≡ 0`` (exact, see
      :func:`jeat_core.metrics.fisher_scores_piecewise_linear`), the one the paper's numbers follow.
    """
    from .energy import energy_of

    rows = []
    for name, model in models.items():
        cols: dict[str, list[Tensor]] = {"JFS": [], "MFS": [], "JFS_pl": [], "MFS_pl": []}
        g = torch.Generator().manual_seed(seed)
        for i in range(0, len(x), batch):
            xb, yb = x[i:i + batch], y[i:i + batch]
            cols["JFS"].append(fisher_score(energy_of(model, "joint", yb), xb, n_probes=n_probes, per_example=True,
                                            generator=g)[1])
            cols["MFS"].append(fisher_score(energy_of(model, "marginal"), xb, n_probes=n_probes, per_example=True,
                                            generator=g)[1])
            j, m = fisher_scores_piecewise_linear(model, xb, yb)
            cols["JFS_pl"].append(j)
            cols["MFS_pl"].append(m)
        row = {"model": name, "n": len(x), "probes": n_probes}
        for k, v in cols.items():
            t = torch.cat(v).double()
            row[k], row[k + "_se"] = float(t.mean()), float(t.std() / math.sqrt(len(t))) if len(t) > 1 else 0.0
        rows.append(row)
    return rows


def fisher_table(ctx: Context, names: list[str], *, n: int = 500, n_probes: int = 2, batch: int = 100) -> list[dict]:
    """:func:`fisher_rows` of shipped models on the first ``n`` test images."""
    x, y = ctx.test()
    return fisher_rows({name: ctx.model(name)[0] for name in names}, x[:n], y[:n], n_probes=n_probes, batch=batch)


# ----------------------------------------------------------------------------- Fig. 2 numbers
def landscape_numbers(ctx: Context, names: list[str], *, n: int = 50, radius: float = 2.0,
                      resolution: int = 15) -> dict:
    """Per model, over ``n`` test images: flatness in units of log-probability — the mean
    ``|Δ log p(x', y)|`` over a 2-D slice of L2 radius ``radius`` (directions as Fig. 2), which removes
    the logit-scale confound of raw energies — and the rank of the image's own E(x, y) within its slice
    (0 = x is the slice minimum), each with a bootstrap 95% CI over images."""
    from .energy import energy_of
    from .landscape import energy_grid, random_directions
    from .metrics import bootstrap_ci

    x, y = ctx.test()
    out = {}
    for name in names:
        model, _ = ctx.model(name)
        flat, rank, is_min = [], [], []
        for i in range(n):
            d1, d2 = random_directions(x[i].shape, seed=i)
            ce = energy_of(model, "ce", torch.tensor([int(y[i])]))
            logp = -energy_grid(ce, x[i], d1, d2, radius=radius, resolution=resolution)[2]  # (R, R): log p(y|x')
            c = resolution // 2
            flat.append(float((logp - logp[c, c]).abs().mean()))
            e = -logp
            rank.append(float((e < e[c, c] - 1e-9).double().mean()))
            is_min.append(float(rank[-1] == 0.0))
        ft, rt = torch.tensor(flat, dtype=torch.float64), torch.tensor(rank, dtype=torch.float64)
        out[name] = {"flatness_logp": float(ft.mean()), "flatness_ci": list(bootstrap_ci(ft)),
                     "rank_of_x": float(rt.mean()), "rank_ci": list(bootstrap_ci(rt)),
                     "x_is_min": f"{int(sum(is_min))}/{n}", "n": n}
    return out


# ----------------------------------------------------------------------------- command line
def tune_main(argv: list[str] | None = None) -> int:
    """``jeat tune-samplers``: choose each shipped model's best sampler on validation seeds (lowest
    KID of the evaluator's features) and store it in its manifest (``manifest["sampler"][energy]``,
    with the whole grid's KIDs)."""
    from .checkpoints import resolve, write_json

    p = argparse.ArgumentParser(prog="jeat tune-samplers", description=tune_main.__doc__)
    p.add_argument("--data-root")
    p.add_argument("--per-class", type=int, default=10)
    p.add_argument("--only", help="comma-separated model names")
    p.add_argument("--dry-run", action="store_true", help="do not write manifests")
    p.add_argument("--report", help="also write every grid row as JSON here")
    a = p.parse_args(argv)
    ctx = Context(data_root=a.data_root)
    only = set(a.only.split(",")) if a.only else None

    def say(msg: str) -> None:
        print(f"[tune] {msg}", file=sys.stderr, flush=True)

    report = {}
    for name, energy in TUNED_PAIRS:
        if only and name not in only:
            continue
        res = tune_sampler(ctx, name, energy, per_class=a.per_class, progress=say)
        say(f"{name} {energy}: best {describe(res['best'])}")
        entry = sampler_entry(res, a.per_class)
        report.setdefault(name, {})[energy] = entry
        if a.report:
            write_json(Path(a.report), report)
        if not a.dry_run:
            store_sampler(resolve(f"{ctx.preset}/{name}"), energy, entry)
    return 0


def sampler_entry(tuned: dict, per_class: int) -> dict:
    """What ``manifest["sampler"][energy]`` stores for a :func:`tune_sampler` result."""
    return {**sampler_record(tuned["best"]),
            "chosen_by": f"lowest KID of the evaluator's features on {per_class * 10} validation seeds "
                         f"(seed {VAL_SEED}) against real test images [0, 2000)",
            "grid": tuned["rows"]}


def store_sampler(folder, energy: str, entry: dict) -> None:
    """Write a tuned sampler into a checkpoint's manifest (``manifest["sampler"][energy]``)."""
    from .checkpoints import MANIFEST, read_manifest, write_json

    manifest = read_manifest(folder)
    manifest.setdefault("sampler", {})[energy] = entry
    write_json(Path(folder) / MANIFEST, manifest)


if __name__ == "__main__":
    sys.exit(tune_main())


# ----------------------------------------------------------------------------- presenter inputs
# Computations that figures, widgets and the audit share (figures re-exports them for the notebooks).
def read_energy_log(path: str | Path) -> list[dict]:
    """The records of a run's ``energy_log.jsonl`` (Fig. 3's data)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def contour_data(models: dict, x: Tensor, y: int, *, radius: float = 2.0, resolution: int = 41, seed: int = 0,
                 scale: str = "l2") -> dict:
    """E(x + a d1 + b d2, y) for each model on the same directions (Fig. 2), with flatness stats."""
    d1, d2 = random_directions(tuple(x.shape[-3:]), seed=seed, scale=scale)
    out = {}
    for name, m in models.items():
        a, b, grid = energy_grid(energy_of(m, "joint", torch.tensor([y])), x, d1, d2, radius=radius,
                                 resolution=resolution)
        out[name] = {"a": a, "b": b, "grid": grid, "stats": landscape_stats(a, b, grid)}
    return out


SATURATED_BROKEN = 0.25  # share of pixels at 0 or 1 above which a chain counts as broken


@torch.no_grad()
def _energy(model, labels: Tensor, energy: str, x: Tensor) -> Tensor:
    return generation_energy(model, labels, energy)(x)


def chain_diagnostics(model, labels: Tensor, x0: Tensor, x: Tensor, *, energy: str = "joint") -> dict:
    """What a Langevin chain did, in numbers a reader can check against the picture.

    Args:
        model: the generating classifier; ``labels`` ``(B,)``; ``x0`` the seeds and ``x`` the
            final images, both ``(B, C, H, W)`` in [0, 1]; ``energy`` the sampler's energy
            (``"joint"``: U = E(x, y), Eq. 17; ``"ce"``: U = E(x, y) − E(x), Eq. 16).
    Returns:
        ``l2`` mean L2 distance moved from the seed; ``energy_before`` / ``energy_after`` mean U
        at the seeds and at the final images; ``saturated`` share of final pixels at 0 or 1
        (``saturated_seed`` for the seeds); ``broken`` (bool) and ``reason``: the chain counts as
        broken when its output is mostly clipped pixels (more than ``SATURATED_BROKEN`` and more
        than twice the seeds' share: e.g. η = 10 gives colour noise), when U is not finite, or
        when U rose (the steps overshoot instead of descending).
    """
    u0, u1 = _energy(model, labels, energy, x0), _energy(model, labels, energy, x)
    sat = float(((x <= 1e-4) | (x >= 1 - 1e-4)).float().mean())
    sat0 = float(((x0 <= 1e-4) | (x0 >= 1 - 1e-4)).float().mean())
    out = {"l2": float((x - x0).flatten(1).norm(dim=1).mean()), "energy_before": float(u0.mean()),
           "energy_after": float(u1.mean()), "saturated": sat, "saturated_seed": sat0, "energy": energy}
    reasons = []
    if not (torch.isfinite(u0).all() and torch.isfinite(u1).all() and torch.isfinite(x).all()):
        reasons.append("the energy is not finite")
    if sat > SATURATED_BROKEN and sat > 2 * sat0:
        reasons.append(f"{sat:.0%} of pixels are clipped at 0 or 1 (seeds: {sat0:.0%}): the images are "
                       "colour noise, the step size is too large")
    if out["energy_after"] > out["energy_before"]:
        reasons.append(f"the energy rose ({out['energy_before']:.3g} → {out['energy_after']:.3g}): "
                       "the chain did not descend")
    out["broken"], out["reason"] = bool(reasons), "; ".join(reasons)
    return out


def independent_judge(generator: str, loaded: dict | None = None, *, preset: str = "cifar10-cpu"):
    """A classifier to score generated images that did **not** generate them: ``(name, model)``.

    The independent evaluator (``<preset>/evaluator``, trained only to score) when it exists,
    otherwise the first zoo model other than ``generator`` among ``standard``, ``at``, ``jeat``
    and whatever ``loaded`` (zoo name -> model, reused instead of loading again) holds. Returns
    ``(None, None)`` if there is none."""
    from .checkpoints import CheckpointError, load_model, resolve

    loaded = loaded or {}
    candidates = ["evaluator"] + [n for n in ("standard", "at", "jeat", *loaded) if n != generator]
    for name in dict.fromkeys(candidates):
        if name == generator:
            continue
        if name in loaded:
            return name, loaded[name]
        try:
            if (resolve(f"{preset}/{name}") / "model.safetensors").is_file():
                return name, load_model(f"{preset}/{name}")[0]
        except CheckpointError:
            continue
    return None, None


# ----------------------------------------------------------------------------- paper figures and tables
# One producer per paper figure and table, returning data. `jeat figures` (figures.make_all) and the
# notebooks call the same producers with the same settings; the only override is the size, and it is
# named: PAPER_SIZES (what `jeat figures` writes) or SMOKE_SIZES (`--smoke`, JEAT_SMOKE=1).
MODEL_LABELS = {"standard": "Normal", "at": "AT", "prejeat": "PreJEAT", "jeat": "JEAT", "jem": "JEM",
                "noise-8": "σ = 8/255", "noise-16": "σ = 16/255", "noise-24": "σ = 24/255"}
FIGURE_SEED = 0  # class-Gaussian seeds of Figs. 4-7 (torch.Generator seed)
FIGURE_LABEL = 8  # ship: the class of Figs. 4 and 5
FIG2_MODELS, FIG2_IMAGE, FIG2_RADIUS = ("standard", "at", "prejeat", "jeat"), 0, 2.0
FIG3_MODEL = "at"
FIG4_RUNS = {"(a) AT, Eq. 16": ("at", "ce"), "(b) AT, Eq. 17": ("at", "joint"),
             "(c) PreJEAT, Eq. 17": ("prejeat", "joint")}  # row -> (zoo name, energy)
FIG4_MODELS = tuple(dict.fromkeys(name for name, _ in FIG4_RUNS.values()))  # ("at", "prejeat")
FIG5_MODELS = ("noise-8", "noise-16", "noise-24")
FIG6_MODELS = ("at", "prejeat", "jem", "jeat")
FIG7_MODEL, FIG7_LABELS, FIG7_K = "jeat", (0, 2, 4, 6, 8), 10
TABLE1_MODEL = "standard"
TABLE2_MODELS = ("standard", "at", "jem", "jeat")
TABLE3_MODELS = ("jem", "jeat", "at")


@dataclass(frozen=True)
class FigureSizes:
    """How large the paper figures and tables are (the one setting a smoke run changes).

    ``per_class``: images per class in Figs. 4-6; ``max_steps``: cap on each model's tuned number
    of Langevin steps K; ``fig7_classes``: Fig. 7 shows one image of each of the first classes of
    :data:`FIG7_LABELS`; ``n_train``: training images Fig. 7 searches (``None``: all 50,000);
    ``n_test``: test images of Tab. 1 and Tab. 3; ``n_fisher``/``n_probes``: Tab. 2;
    ``resolution``: grid points per side of Fig. 2."""

    per_class: int = 8
    max_steps: int = 60
    fig7_classes: int = len(FIG7_LABELS)
    n_train: int | None = None
    n_test: int = 1000
    n_fisher: int = 200
    n_probes: int = 4
    resolution: int = 41

    def __post_init__(self):
        for k, v in asdict(self).items():
            if not (v is None and k == "n_train") and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"FigureSizes.{k} must be a positive int; got {v!r}")
        if self.fig7_classes > len(FIG7_LABELS):
            raise ValueError(f"FigureSizes.fig7_classes must be <= {len(FIG7_LABELS)}; got {self.fig7_classes}")


PAPER_SIZES = FigureSizes()
SMOKE_SIZES = FigureSizes(per_class=2, max_steps=5, fig7_classes=2, n_train=2000, n_test=64, n_fisher=16,
                          n_probes=1, resolution=9)


@dataclass
class ImageRows:
    """A figure of image rows (Figs. 4-7): what :func:`jeat_core.figures.plot_image_rows` draws.

    ``rows`` maps a row label to images ``(N, C, H, W)`` in [0, 1], drawn ``nrow`` per line under
    ``title``; ``labels`` ``(N,)`` and ``seeds`` are the chains' targets and starts (shared by every
    generated row); ``runs`` maps a generated row to ``(zoo name, energy, GenerationConfig)``;
    ``extra`` holds what a caption or table needs beyond the images."""

    rows: dict[str, Tensor]
    nrow: int
    title: str = ""
    labels: Tensor | None = None
    seeds: Tensor | None = None
    runs: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def tuned_generation(model, manifest: dict | None, labels: Tensor, seeds: Tensor, energy: str = "joint", *,
                     max_steps: int | None = None) -> tuple[Tensor, GenerationConfig]:
    """Images from the model's own best sampler (``manifest["sampler"][energy]``, else the defaults;
    best vs best), its K capped at ``max_steps``; returns ``(images, the sampler used)``."""
    cfg = sampler_for(manifest, energy, max_steps=max_steps)
    return generate(model, labels, seeds, cfg), cfg


def figure_seeds(class_gaussian: ClassGaussian, labels: Tensor, seed: int = FIGURE_SEED) -> Tensor:
    """Class-Gaussian seeds of the generation figures (the same for every model of a figure)."""
    return class_gaussian.sample(labels, generator=torch.Generator().manual_seed(seed))


def _generated_rows(runs: dict, models: dict, manifests: dict, labels: Tensor, seeds: Tensor, sizes: FigureSizes,
                    **layout) -> ImageRows:
    rows, used = {}, {}
    for row, (name, energy) in runs.items():
        rows[row], cfg = tuned_generation(models[name], manifests.get(name), labels, seeds, energy,
                                          max_steps=sizes.max_steps)
        used[row] = (name, energy, cfg)
    return ImageRows(rows, labels=labels, seeds=seeds, runs=used, **layout)


def fig2_data(models: dict, x: Tensor, y: Tensor, *, sizes: FigureSizes = PAPER_SIZES) -> dict:
    """Fig. 2: :func:`contour_data` of the :data:`FIG2_MODELS` (picked from ``models``, zoo name ->
    classifier) around test image :data:`FIG2_IMAGE` of ``x``/``y``, radius :data:`FIG2_RADIUS`."""
    return contour_data({n: models[n] for n in FIG2_MODELS}, x[FIG2_IMAGE], int(y[FIG2_IMAGE]), radius=FIG2_RADIUS,
                        resolution=sizes.resolution)


def fig3_data(preset: str = "cifar10-cpu") -> dict:
    """Fig. 3: the energy log of the :data:`FIG3_MODEL` run (``{"log": records, "title": ...}``)."""
    from .checkpoints import ENERGY_LOG, resolve

    return {"log": read_energy_log(resolve(f"{preset}/{FIG3_MODEL}") / ENERGY_LOG),
            "title": f"{MODEL_LABELS[FIG3_MODEL]} ({preset.removeprefix('cifar10-')} preset)"}


def fig4_rows(models: dict, manifests: dict, class_gaussian: ClassGaussian, *,
              sizes: FigureSizes = PAPER_SIZES) -> ImageRows:
    """Fig. 4: the same ship seeds through AT with Eq. 16, AT with Eq. 17 and PreJEAT with Eq. 17
    (:data:`FIG4_RUNS`), each with its tuned sampler. ``models``/``manifests``: zoo name -> classifier
    / manifest (a superset is fine); ``class_gaussian`` fitted on the training images."""

    labels = torch.full((sizes.per_class,), FIGURE_LABEL)
    return _generated_rows(FIG4_RUNS, models, manifests, labels, figure_seeds(class_gaussian, labels), sizes,
                           nrow=sizes.per_class, title=f"label: {CIFAR10_CLASSES[FIGURE_LABEL]}")


def fig5_rows(models: dict, manifests: dict, class_gaussian: ClassGaussian, *,
              sizes: FigureSizes = PAPER_SIZES) -> ImageRows:
    """Fig. 5: the same ship seeds through the noise-trained classifiers (:data:`FIG5_MODELS`), Eq. 17,
    each with its tuned sampler (arguments as :func:`fig4_rows`)."""
    labels = torch.full((sizes.per_class,), FIGURE_LABEL)
    runs = {MODEL_LABELS[n]: (n, "joint") for n in FIG5_MODELS}
    return _generated_rows(runs, models, manifests, labels, figure_seeds(class_gaussian, labels), sizes,
                           nrow=sizes.per_class,
                           title=f"noise-trained classifiers, label: {CIFAR10_CLASSES[FIGURE_LABEL]}")


def fig6_rows(models: dict, manifests: dict, class_gaussian: ClassGaussian, *,
              sizes: FigureSizes = PAPER_SIZES) -> ImageRows:
    """Fig. 6: Eq. 17 samples of :data:`FIG6_MODELS` from the same seeds, ``per_class`` per class; in
    each model's panel one line per class (airplane first), ``per_class`` images a line (arguments
    as :func:`fig4_rows`)."""
    labels = torch.arange(10).repeat_interleave(sizes.per_class)  # (10 * per_class,): 0, 0, ..., 9, 9
    runs = {MODEL_LABELS[n]: (n, "joint") for n in FIG6_MODELS}
    return _generated_rows(runs, models, manifests, labels, figure_seeds(class_gaussian, labels), sizes,
                           nrow=sizes.per_class)


def fig7_rows(models: dict, manifests: dict, class_gaussian: ClassGaussian, train_x, *,
              sizes: FigureSizes = PAPER_SIZES) -> ImageRows:
    """Fig. 7: one :data:`FIG7_MODEL` sample per class of :data:`FIG7_LABELS` (its tuned sampler), each
    followed by its :data:`FIG7_K` SSIM-nearest images among ``train_x`` (``(N, H, W, C)`` uint8 or a
    :class:`jeat_core.metrics.TrainIndex` of it; pass only the first ``sizes.n_train`` when set).
    ``extra``: ``ssim`` ``(Q, K)`` and ``indices`` ``(Q, K)`` of the neighbours."""
    from .metrics import TrainIndex, nearest_by_ssim

    labels = torch.tensor(FIG7_LABELS[:sizes.fig7_classes])
    seeds = figure_seeds(class_gaussian, labels)
    gen, cfg = tuned_generation(models[FIG7_MODEL], manifests.get(FIG7_MODEL), labels, seeds,
                                max_steps=sizes.max_steps)
    idx, sim = nearest_by_ssim(gen, train_x, k=FIG7_K)
    images = train_x.images if isinstance(train_x, TrainIndex) else train_x
    near = torch.from_numpy(images[idx.flatten().numpy()]).permute(0, 3, 1, 2).float().div(255)  # (Q*K, C, H, W)
    # one row per generated image, named by its class (labels are distinct), so no two rows share a key
    rows = {f"generated {CIFAR10_CLASSES[int(labels[i])]} → {FIG7_K} most similar training images "
            f"(SSIM {float(sim[i, 0]):.2f} best)":
            torch.cat([gen[i:i + 1], near[i * FIG7_K:(i + 1) * FIG7_K]]) for i in range(len(gen))}
    return ImageRows(rows, nrow=FIG7_K + 1, labels=labels, seeds=seeds, runs={"generated": (FIG7_MODEL, "joint", cfg)},
                     extra={"ssim": sim, "indices": idx, "generated": gen})


def table1_rows(model, x: Tensor, y: Tensor, *, sizes: FigureSizes = PAPER_SIZES, eps: float = 8 / 255,
                seed: int = 0, progress: bool = False) -> list[dict]:
    """Tab. 1 on the first ``sizes.n_test`` of ``x``/``y`` for ``model`` (:data:`TABLE1_MODEL`):
    accuracy with no attack, the CE attack (Eq. 14) and the energy attack (Eq. 18), both PGD-20
    (L-inf, step 2/255, random start). ``progress``: a tqdm bar over the attacks."""
    from .metrics import robust_accuracy

    x, y = x[:sizes.n_test], y[:sizes.n_test]
    attacks = [("No attack", "none"), ("CE attack (Eq. 14)", "pgd20"), ("Energy attack (Eq. 18)", "energy-pgd20")]
    if progress:
        from tqdm.auto import tqdm

        attacks = tqdm(attacks, desc="Tab. 1")
    rows = []
    for name, attack in attacks:
        r = robust_accuracy(model, x, y, attack=attack, eps=eps, seed=seed)
        rows.append({"attack": name, "accuracy": r["robust_acc"], "n": r["n"], "eps": eps})
    return rows


def table2_fisher_rows(models: dict, x: Tensor, y: Tensor, *, sizes: FigureSizes = PAPER_SIZES, seed: int = 0,
                       batch_size: int = 100) -> list[dict]:
    """Tab. 2 for :data:`TABLE2_MODELS` (picked from ``models``) on the first ``sizes.n_fisher`` of
    ``x``/``y``: joint (Eq. 23) and marginal (Eq. 24) Fisher scores in both conventions with
    standard errors (:func:`fisher_rows`, ``sizes.n_probes`` probes), rows labelled."""
    rows = fisher_rows({n: models[n] for n in TABLE2_MODELS}, x[:sizes.n_fisher], y[:sizes.n_fisher],
                       n_probes=sizes.n_probes, batch=batch_size, seed=seed)
    return [{**r, "model": MODEL_LABELS.get(r["model"], r["model"])} for r in rows]


def table3_rows(models: dict, x: Tensor, y: Tensor, *, sizes: FigureSizes = PAPER_SIZES,
                eps: float = 8 / 255, seed: int = 0) -> list[dict]:
    """Tab. 3 for :data:`TABLE3_MODELS` (picked from ``models``) on the first ``sizes.n_test`` of
    ``x``/``y``: clean accuracy and PGD-20 robustness (L-inf, eps 8/255, step 2/255, random start)."""
    from .metrics import robust_accuracy

    rows = []
    for name in TABLE3_MODELS:
        r = robust_accuracy(models[name], x[:sizes.n_test], y[:sizes.n_test], attack="pgd20", eps=eps, seed=seed)
        rows.append({"model": MODEL_LABELS.get(name, name), "clean_acc": r["clean_acc"], "pgd20_acc": r["robust_acc"],
                     "n": r["n"], "eps": eps})
    return rows


# ----------------------------------------------------------------------------- the paper's items (one list)
@dataclass(frozen=True)
class PaperItem:
    """One figure or table of the paper, listed once in :data:`PAPER_ITEMS`, which ``jeat figures``
    (:func:`jeat_core.figures.make_all`), the notebooks' exports and the tests read.

    ``id``: the stem of its files (``"fig2_energy_contours"``); ``title``: what it shows (a table's
    heading; ``{n}``: its rows' number of test images); ``producer``: the function of this module
    that computes its data, which its notebook calls too; ``inputs``: ``(ctx, sizes) -> keyword
    arguments`` of the producer from a :class:`Context` (how ``jeat figures`` calls it);
    ``plot``: how :mod:`jeat_core.figures` draws the data, a key of ``figures.PLOTS``, or
    ``"table"`` (saved as Markdown and JSON); ``notebook``: the number of the notebook that
    reproduces it (``"02"``: ``notebooks/02_*.py``)."""

    id: str
    title: str
    producer: Callable
    inputs: Callable[[Context, FigureSizes], dict]
    plot: str
    notebook: str

    @property
    def exports(self) -> tuple[str, ...]:
        """Its file names: ``<id>.md`` and ``<id>.json`` for a table, ``<id>.pdf`` and ``<id>.png`` for a figure."""
        return tuple(f"{self.id}.{ext}" for ext in (("md", "json") if self.plot == "table" else ("pdf", "png")))

    def compute(self, ctx: Context, sizes: FigureSizes = PAPER_SIZES):
        """The producer's data on ``ctx``'s models and data at ``sizes`` (what ``jeat figures`` draws)."""
        return self.producer(**self.inputs(ctx, sizes))


def _test_images(ctx: Context) -> dict:
    x, y = ctx.test()
    return {"x": x, "y": y}


def _generators(ctx: Context, names) -> dict:
    """Inputs of a generation figure: its models, their manifests (tuned samplers) and the seeds' Gaussians."""
    return {"models": ctx.models(names), "manifests": ctx.manifests(names), "class_gaussian": ctx.class_gaussian()}


# in the order `jeat figures` makes them
PAPER_ITEMS: dict[str, PaperItem] = {item.id: item for item in (
    PaperItem("table1_attacks", "Tab. 1: CE vs energy attack, standard model (n={n})", table1_rows,
              lambda ctx, sizes: {"model": ctx.model(TABLE1_MODEL)[0], **_test_images(ctx), "sizes": sizes},
              "table", "01"),
    PaperItem("fig2_energy_contours", "Fig. 2: E(x, y) around a test image, one colour scale", fig2_data,
              lambda ctx, sizes: {"models": ctx.models(FIG2_MODELS), **_test_images(ctx), "sizes": sizes},
              "contours", "02"),
    PaperItem("fig3_delta_energy", "Fig. 3: Δ_x E and Δ_θ E during adversarial training", fig3_data,
              lambda ctx, sizes: {"preset": ctx.preset}, "delta_energy", "03"),
    PaperItem("fig4_eq16_vs_eq17", "Fig. 4: generation from AT with Eq. 16 and Eq. 17, and from PreJEAT", fig4_rows,
              lambda ctx, sizes: {**_generators(ctx, FIG4_MODELS), "sizes": sizes}, "image_rows", "04"),
    PaperItem("fig5_noise_generation", "Fig. 5: generation from noise-trained classifiers", fig5_rows,
              lambda ctx, sizes: {**_generators(ctx, FIG5_MODELS), "sizes": sizes}, "image_rows", "05"),
    PaperItem("fig6_generation_by_model", "Fig. 6: generation by AT, PreJEAT, JEM and JEAT, every class", fig6_rows,
              lambda ctx, sizes: {**_generators(ctx, FIG6_MODELS), "sizes": sizes}, "image_rows", "06"),
    PaperItem("fig7_nearest_neighbours", "Fig. 7: JEAT samples and their SSIM-nearest training images", fig7_rows,
              lambda ctx, sizes: {**_generators(ctx, [FIG7_MODEL]), "train_x": ctx.train_split().x[:sizes.n_train],
                                  "sizes": sizes}, "image_rows", "09"),
    PaperItem("table2_fisher", "Tab. 2: Fisher scores (lower is better)", table2_fisher_rows,
              lambda ctx, sizes: {"models": ctx.models(TABLE2_MODELS), **_test_images(ctx), "sizes": sizes},
              "table", "07"),
    PaperItem("table3_robustness", "Tab. 3: clean and PGD-20 accuracy (n={n})", table3_rows,
              lambda ctx, sizes: {"models": ctx.models(TABLE3_MODELS), **_test_images(ctx), "sizes": sizes},
              "table", "08"),
)}

"""Experiments: the measurements behind the paper's generation figures, Fisher scores and Fig. 2
numbers, returning data (records), with one cached context (zoo, data, seeds, evaluator). The
paper's figures and tables themselves (one producer each, listed once) are in :mod:`jeat_core.paper.paper_items`.

Generation protocol (Figs. 4-6, Tab. 2), used by ``jeat audit`` and ``jeat tune-samplers``:

* **Seeds**: class-conditional Gaussians fitted on the training images (Santurkar et al.), balanced
  labels (the same number per class). Validation seeds (``VAL_SEED``) choose samplers; fresh seeds
  (``TEST_SEED``) score them.
* **Evaluator**: the independent classifier of :mod:`jeat_core.measure.evaluator`; its pooled features feed
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

from jeat_core.core.checkpoints import (
    MANIFEST,
    CheckpointError,
    load_model,
    notify_read,
    observing_reads,
    read_manifest,
    resolve,
    write_json,
)
from jeat_core.core.data import load_split
from jeat_core.core.energy import energy_of
from jeat_core.core.landscape import energy_grid, landscape_stats, random_directions
from jeat_core.core.sampling import (
    ClassGaussian,
    GenerationConfig,
    generate,
    generate_snapshots,
    generation_energy,
    sampler_for,
    uniform_init,
)
from jeat_core.measure import rulers
from jeat_core.measure.evaluator import EVALUATOR
from jeat_core.measure.metrics import KIDReference, fisher_score, fisher_scores_piecewise_linear, penultimate
from jeat_core.measure.stats import bootstrap_ci, wilson_interval

VAL_SEED, TEST_SEED, RESCORE_SEED = 1, 2, 3  # seed streams: tuning shortlist, scoring, tuning rescore
VAL_REAL = (0, 2000)  # real test images sampler tuning scores against (the audit uses [5000, 10000))
STEP_COUNTS = (10, 20, 40, 60)
SAMPLER_GRID = (
    GenerationConfig(step="langevin", step_size=0.1, n_steps=60, noise_std=0.001),
    GenerationConfig(step="langevin", step_size=0.3, n_steps=60, noise_std=0.001),
    GenerationConfig(step="langevin", step_size=1.0, n_steps=60, noise_std=0.001),
    GenerationConfig(step="langevin", step_size=3.0, n_steps=60, noise_std=0.001),
    GenerationConfig(step="langevin", step_size=10.0, n_steps=60, noise_std=0.001),
    GenerationConfig(step="l2", step_size=0.5, n_steps=60, noise_std=0.0),
)
# the sampler as the paper writes it (Eq. 9, Algorithm 1's generation): Langevin with noise s = √η,
# tuned as its own family over η (the same step counts, seeds and ruler as the tuned grid)
AS_WRITTEN_GRID = tuple(GenerationConfig(step="langevin", step_size=eta, n_steps=60, noise_std=eta ** 0.5)
                        for eta in (1e-4, 1e-3, 1e-2, 1e-1))
SAMPLER_FAMILIES = {"tuned": SAMPLER_GRID, "as-written": AS_WRITTEN_GRID}


def sampler_key(energy: str, family: str = "tuned") -> str:
    """Where ``manifest["sampler"]`` keeps a family's sampler for ``energy``: ``"joint"``, ``"ce"``
    (the tuned family) or ``"joint/as-written"``."""
    if family not in SAMPLER_FAMILIES:
        raise ValueError(f"unknown sampler family {family!r}; choose one of {', '.join(SAMPLER_FAMILIES)}")
    return energy if family == "tuned" else f"{energy}/{family}"
# (model, energy) pairs whose samplers the audit compares
TUNED_PAIRS = (("at", "joint"), ("at", "ce"), ("prejeat", "joint"), ("jeat", "joint"), ("jem", "joint"),
               ("noise-8", "joint"), ("noise-16", "joint"), ("noise-24", "joint"), ("trades", "joint"))
# each method compared over training seeds: its shipped run, then -s1 ... -s4 where shipped (same recipe,
# --seed k); the paper repeats every experiment five times (§4.1)
SEED_RUNS = 5
TRAINING_SEEDS = {m: (m, *(f"{m}-s{k}" for k in range(1, SEED_RUNS)))
                  for m in ("at", "prejeat", "jeat", "noise-8", "noise-16", "noise-24", "standard", "jem")}
TUNED_PAIRS += tuple((run, "joint") for m, runs in TRAINING_SEEDS.items() if m != "standard" for run in runs[1:])
TUNED_PAIRS += tuple((run, "ce") for run in TRAINING_SEEDS["at"][1:])  # Eq. 16 vs 17 (claim 4) over AT's runs


def training_runs(method: str, preset: str = "cifar10-cpu", paths: dict | None = None) -> list[str]:
    """The shipped training runs of ``method``: the method itself, then each of its ``-s1``, ``-s2`` runs
    (:data:`TRAINING_SEEDS`) whose checkpoint exists (``paths``: name -> folder overrides, as
    :attr:`Context.paths`); a method without extra seeds is its one run. Nothing is loaded."""
    out = []
    for run in TRAINING_SEEDS.get(method, (method,)):
        try:
            resolve((paths or {}).get(run, f"{preset}/{run}"))
        except CheckpointError:  # that seed is not shipped
            continue
        out.append(run)
    return out


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
    _reads: dict = field(default_factory=dict, repr=False)  # key -> the checkpoint reads of its make()

    def cached(self, key, make: Callable[[], Any]):
        """``make()``, computed once per ``key`` (hashable) for the life of this context.

        The checkpoints ``make()`` read are remembered and told again to the read observers on every
        later use (:func:`~jeat_core.core.checkpoints.notify_read`), so a measurement that takes a
        cached value still shows what it depends on (the audit's cache, :mod:`jeat_core.paper.audit_cache`)."""
        if key not in self._cache:
            reads: list = []
            with observing_reads(lambda name, folder: reads.append((name, folder))):
                self._cache[key] = make()
            self._reads[key] = reads
        else:
            for name, folder in self._reads.get(key, ()):
                notify_read(name, folder)
        return self._cache[key]

    def model(self, name: str):
        """``(model, manifest)`` of a shipped model (``CheckpointError`` when it is not shipped)."""
        return self.cached(("model", name), lambda: load_model(self.paths.get(name, f"{self.preset}/{name}")))

    def training_runs(self, method: str) -> list[str]:
        """The shipped training runs of ``method`` (:func:`training_runs`) in this context's preset and paths."""
        return training_runs(method, self.preset, self.paths)

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


FULL_PRECISION = ("runs_a", "runs_b", "ci_level")  # an interval is recomputed from these (tests/test_audit.py)


def public(rec: dict) -> dict:
    """A score record without its feature tensor, rounded for tables and JSON."""
    def r(v):
        if isinstance(v, float):
            return float(f"{v:.4g}")
        if isinstance(v, (list, tuple)):
            return [r(u) for u in v]
        return v
    return {k: (v if k in FULL_PRECISION else r(v)) for k, v in rec.items() if k != "features"}


def tune_sampler(ctx: Context, name: str, energy: str, *, per_class: int = 10, rescore_per_class: int = 50,
                 top: int = 3, grid: tuple[GenerationConfig, ...] = SAMPLER_GRID,
                 step_counts: tuple[int, ...] = STEP_COUNTS, progress=lambda msg: None) -> dict:
    """Choose one (model, energy)'s sampler by the primary ruler (``docs/evaluation.md``, *Sampler
    tuning*): score every cell of the grid by primary-space KID on ``10·per_class`` validation seeds
    (stream ``VAL_SEED``), rescore the ``top`` cells on ``10·rescore_per_class`` fresh validation
    seeds (stream ``RESCORE_SEED``), keep the best. Both against real test images ``VAL_REAL``
    (disjoint from the audit's seeds and reference). Returns ``{"best": GenerationConfig, "rows":
    [...], "top": [...]}``; a row's ``kid`` is the primary-space KID and ``kid_raw`` the raw-feature
    KID (a diagnostic).

    ``grid`` × ``step_counts`` are the cells (default :data:`SAMPLER_GRID` × :data:`STEP_COUNTS`, the
    frozen protocol's; ``jeat lens`` passes a smaller grid on a CPU). ``rescore_per_class=0`` skips the
    rescoring: the shortlist's best is kept (its ``kid`` then is the shortlist KID)."""
    space = rulers.primary()
    model, _ = ctx.model(name)
    seeds, labels = ctx.seeds(per_class, VAL_SEED)
    ref = ctx.reference(*VAL_REAL)
    rows = []
    for base in grid:
        cfg = replace(base, energy=energy)
        t0 = time.time()
        snaps = generate_snapshots(model, labels, seeds, cfg, at=step_counts, seed=VAL_SEED)
        for k, images in snaps.items():
            rec = public(score_images(ctx, images, labels, ref, seeds, fid_interval=False))
            rec = {"kid": float(f"{rulers.kid(ctx, space, images, VAL_REAL):.4g}"), "kid_raw": rec.pop("kid"),
                   "kid_raw_ci": rec.pop("kid_ci"), "fid_raw": rec.pop("fid"), **rec}
            rows.append({"sampler": sampler_record(replace(cfg, n_steps=k)), **rec})
        progress(f"{name} {energy}: {describe(cfg)} ({time.time() - t0:.0f} s): "
                 + ", ".join(f"K {r['sampler']['n_steps']} KID {r['kid']:.3g}" for r in rows[-len(snaps):]))
    shortlist = sorted(rows, key=lambda r: r["kid"])[:top]
    if rescore_per_class == 0:  # no rescoring: the shortlist's best, scored on the grid's seeds
        r = shortlist[0]
        return {"best": GenerationConfig(energy=energy, **r["sampler"]), "rows": rows, "space": space.name,
                "top": [{"sampler": r["sampler"], "kid_shortlist": r["kid"], "n_shortlist": 10 * per_class,
                         "kid": r["kid"], "n": 10 * per_class}]}
    seeds2, labels2 = ctx.seeds(rescore_per_class, RESCORE_SEED)
    finals = []
    for r in shortlist:
        cfg = GenerationConfig(energy=energy, **r["sampler"])
        images = generate(model, labels2, seeds2, cfg, seed=RESCORE_SEED)
        finals.append({"sampler": r["sampler"], "kid_shortlist": r["kid"], "n_shortlist": 10 * per_class,
                       "kid": float(f"{rulers.kid(ctx, space, images, VAL_REAL):.4g}"), "n": len(images)})
        progress(f"{name} {energy}: rescored {describe(cfg)} on {len(images)} seeds: KID {finals[-1]['kid']:.3g}")
    finals.sort(key=lambda r: r["kid"])
    return {"best": GenerationConfig(energy=energy, **finals[0]["sampler"]), "rows": rows, "top": finals,
            "space": space.name}


STARTS = ("class_gaussian", "uniform")  # where generation chains start: the paper's seeds, or Algorithm 1's U(0, 1)


def start_images(ctx: Context, per_class: int, start: str = "class_gaussian") -> tuple[Tensor, Tensor]:
    """``(x₀, labels)`` of a generation set: the class-Gaussian seeds of stream ``TEST_SEED``, or
    ``"uniform"``: U(0, 1) noise (Algorithm 1's "random sample"), from the same stream, same labels."""
    if start not in STARTS:
        raise ValueError(f"unknown start {start!r}; choose one of {', '.join(STARTS)}")
    seeds, labels = ctx.seeds(per_class, TEST_SEED)
    if start == "uniform":
        seeds = ctx.cached(("uniform-starts", per_class), lambda: uniform_init(
            len(labels), generator=torch.Generator().manual_seed(TEST_SEED)))
    return seeds, labels


def generation_set(ctx: Context, name: str, energy: str = "joint", *, per_class: int = 100,
                   max_steps: int | None = None, family: str = "tuned", start: str = "class_gaussian") -> dict:
    """Generate ``per_class`` images per class on fresh seeds with the model's own best sampler of
    ``family`` (``manifest["sampler"][sampler_key(energy, family)]``, else the defaults; ``max_steps``
    caps K for smoke runs) and score them against the reference test images [5000, 10000). ``start``:
    the chains start from class-Gaussian seeds, or from U(0, 1) noise (:func:`start_images`)."""
    def make():
        model, manifest = ctx.model(name)
        cfg = sampler_for(manifest, energy, max_steps=max_steps, key=sampler_key(energy, family))
        seeds, labels = start_images(ctx, per_class, start)
        images = generate(model, labels, seeds, cfg, seed=TEST_SEED)
        rec = score_images(ctx, images, labels, ctx.reference(5000, 10000), seeds)
        rec.update(sampler=sampler_record(cfg), model=name, energy=energy, images=images, start=start)
        return rec

    key = ("gen", name, energy, per_class, max_steps, family) + (() if start == "class_gaussian" else (start,))
    return ctx.cached(key, make)


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
                seed: int = 0, per_example: bool = False) -> list[dict]:
    """Tab. 2 in both conventions for ``models`` (name -> model), mean ± standard error over ``x``:

    * ``JFS``/``MFS``: Eq. 23/24 as written, ``½‖∇E‖² − tr ∇²E`` (Hutchinson trace, Rademacher probes);
    * ``JFS_pl``/``MFS_pl``: the piecewise-linear convention ``∇²ₓf ≡ 0`` (exact, see
      :func:`jeat_core.measure.metrics.fisher_scores_piecewise_linear`), the one the paper's numbers follow.

    ``per_example``: each row also holds ``"per_example"``, the four scores of every image (lists in the
    order of ``x``), for intervals paired over the same images (``jeat lens``).
    """
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
        if per_example:
            row["per_example"] = {k: torch.cat(v).double().tolist() for k, v in cols.items()}
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
    (0 = x is the slice minimum), each with a bootstrap 95% CI over images; ``per_image`` keeps each
    image's flatness (image i's slice uses direction seed i), for intervals paired over images."""
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
                     "x_is_min": f"{int(sum(is_min))}/{n}", "n": n, "per_image": flat}
    return out


# ----------------------------------------------------------------------------- command line
def tune_main(argv: list[str] | None = None) -> int:
    """``jeat tune-samplers``: choose each shipped model's best sampler on validation seeds (lowest
    primary-space KID: a grid shortlist, its top 3 rescored on fresh seeds) and store it in its manifest
    (``manifest["sampler"][energy]``, with the top 3 and the whole grid)."""
    p = argparse.ArgumentParser(prog="jeat tune-samplers", description=tune_main.__doc__)
    p.add_argument("--data-root")
    p.add_argument("--per-class", type=int, default=10, help="validation seeds per class for the grid (default 10)")
    p.add_argument("--rescore-per-class", type=int, default=50,
                   help="fresh validation seeds per class for rescoring the top 3 (default 50: 500 images)")
    p.add_argument("--only", help="comma-separated model names")
    p.add_argument("--energy", choices=("joint", "ce"),
                   help="tune only this energy's sampler (default: each one the audit uses)")
    p.add_argument("--family", choices=tuple(SAMPLER_FAMILIES), default="tuned",
                   help="the grid: tuned (the frozen protocol's) or as-written (Langevin with noise √η, Eq. 9); "
                        "stored under manifest['sampler'][energy] or [energy + '/as-written']")
    p.add_argument("--dry-run", action="store_true", help="do not write manifests")
    p.add_argument("--report", help="also write every grid row as JSON here")
    a = p.parse_args(argv)
    if a.per_class < 1 or a.rescore_per_class < 1:
        p.error("--per-class and --rescore-per-class must be at least 1")
    ctx = Context(data_root=a.data_root)
    only = set(a.only.split(",")) if a.only else None
    known = {n for n, _ in TUNED_PAIRS}
    if only and only - known:
        p.error(f"--only: unknown model(s) {', '.join(sorted(only - known))}; tuned models: {', '.join(sorted(known))}")

    def say(msg: str) -> None:
        print(f"[tune] {msg}", file=sys.stderr, flush=True)

    report = {}
    for name, energy in TUNED_PAIRS:
        if (only and name not in only) or (a.energy and energy != a.energy):
            continue
        try:
            ctx.model(name)
        except (CheckpointError, FileNotFoundError):
            say(f"{name}: not shipped, skipped")
            continue
        res = tune_sampler(ctx, name, energy, per_class=a.per_class, rescore_per_class=a.rescore_per_class,
                           grid=SAMPLER_FAMILIES[a.family], progress=say)
        say(f"{name} {energy}: best {describe(res['best'])}")
        entry = sampler_entry(res, a.per_class)
        key = sampler_key(energy, a.family)
        report.setdefault(name, {})[key] = entry
        if a.report:
            write_json(Path(a.report), report)
        if not a.dry_run:
            store_sampler(resolve(f"{ctx.preset}/{name}"), key, entry)
    return 0


def sampler_entry(tuned: dict, per_class: int) -> dict:
    """What ``manifest["sampler"][energy]`` stores for a :func:`tune_sampler` result: the chosen
    sampler, how it was chosen, the top cells as rescored, and the whole shortlist grid."""
    n2 = tuned["top"][0]["n"] if tuned.get("top") else 0
    return {**sampler_record(tuned["best"]),
            "chosen_by": f"lowest {tuned.get('space', 'primary-space')} KID: grid on {per_class * 10} validation "
                         f"seeds (stream {VAL_SEED}), top {len(tuned.get('top', []))} rescored on {n2} fresh "
                         f"validation seeds (stream {RESCORE_SEED}), against real test images "
                         f"[{VAL_REAL[0]}, {VAL_REAL[1]})",
            "top": tuned.get("top", []), "grid": tuned["rows"]}


def store_sampler(folder, energy: str, entry: dict) -> None:
    """Write a tuned sampler into a checkpoint's manifest (``manifest["sampler"][energy]``)."""
    manifest = read_manifest(folder)
    manifest.setdefault("sampler", {})[energy] = entry
    write_json(Path(folder) / MANIFEST, manifest)


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


if __name__ == "__main__":
    sys.exit(tune_main())

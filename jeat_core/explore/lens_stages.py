"""The measurements of ``jeat lens``: the paper's analyses on any CIFAR-10 classifier, beside the zoo.

Each stage measures the user's model and the shipped models :data:`ZOO` (Normal, AT, PreJEAT, JEAT)
with the same n, the same test images, seeds and intervals, so that every comparison with a zoo
model is paired (the same images or the same generation seeds):

* ``energy`` — E(x, y) = −f(x)[y] and E(x) = −logsumexp f(x) (Eq. 12) on test images, clean accuracy;
* ``attacks`` — Tab. 1 and Tab. 3: L∞ PGD-20 (ε 8/255, step 2/255, random start) ascending the
  cross-entropy E(x, y) − E(x) (Eq. 14) or the energy E(x, y) (Eq. 18)
  (:func:`jeat_core.measure.robustness.pgd_restarts`, one start: per-image results, resumable per batch);
* ``landscape`` — Fig. 2 and claim 3's flatness, mean |Δ log p(y | x′)| over a 2-D slice of L2 radius
  2 through each test image (:func:`jeat_core.paper.experiments.landscape_numbers`), and one slice to draw;
* ``fisher`` — Tab. 2: JFS / MFS (Eq. 23/24) in both conventions (:func:`jeat_core.paper.experiments.fisher_rows`);
* ``generation`` — Fig. 4: Eq. 16 vs Eq. 17 from class-Gaussian seeds, each (model, energy) with its
  sampler chosen by the frozen protocol (:func:`jeat_core.paper.experiments.tune_sampler`) on a grid of the
  run's size, scored on fresh seeds by the primary ruler (:mod:`jeat_core.measure.rulers`), paired KID differences;
* ``autoattack`` — Tab. 3's masking check: standard AutoAttack on the user's model; the zoo's from
  the per-image records in their manifests (read, not rerun: ``jeat eval --attack autoattack --record``).

Every stage (and every long unit inside one) is cached in the report folder under a key that hashes
the user model's weights, the zoo's weights, the test images, the device and the stage's settings: an
interrupted report resumes, and a stage computed for another model or other settings is recomputed,
never mixed in. Intervals: Wilson for accuracies, percentile bootstrap over images for means and for
paired differences (user − zoo model on the same images), bootstrap over seed indices for KID.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import load, save
from torch import Tensor, nn

from jeat_core.core.checkpoints import atomic_write_bytes, find_eval, load_model, write_json
from jeat_core.core.energy import joint_energy, marginal_energy
from jeat_core.core.landscape import landscape_slices
from jeat_core.core.sampling import GenerationConfig, generate
from jeat_core.core.user_model import UserModel, UserModelError
from jeat_core.measure import rulers
from jeat_core.measure.gen_eval import KID_BOOT, kid_point
from jeat_core.measure.metrics import frechet_distance
from jeat_core.measure.robustness import autoattack, masks_of, pgd_restarts, require_torchattacks
from jeat_core.measure.stats import bootstrap_ci, wilson_interval
from jeat_core.paper.experiments import (
    SAMPLER_GRID,
    STEP_COUNTS,
    TEST_SEED,
    Context,
    fisher_rows,
    landscape_numbers,
    sampler_record,
    tune_sampler,
)
from jeat_core.paper.paper_items import FIG2_IMAGE, FIG2_MODELS, FIG2_RADIUS, recorded_autoattack

ZOO = FIG2_MODELS  # the shipped models every number is placed beside: standard, at, prejeat, jeat
EPS, STEP = 8 / 255, 2 / 255  # Tab. 1 / Tab. 3's threat model
ENERGIES = {"joint": "Eq. 17", "ce": "Eq. 16"}
VERSION = 1  # of the cached records (part of every key)


@dataclass(frozen=True)
class LensSizes:
    """How many images each stage measures (the same for the user's model and the zoo's)."""

    name: str
    n_energy: int  # test images of the energy view
    n_attack: int  # test images of the CE and energy PGD-20 attacks (Tab. 1, Tab. 3)
    n_land: int  # test images with a landscape slice each (claim 3)
    resolution: int  # grid points per side of a slice
    n_fisher: int  # test images of Tab. 2
    n_probes: int  # Hutchinson probes of Eq. 23/24 as written
    gen_per_class: int  # validation seeds per class for the sampler grid
    rescore_per_class: int  # fresh validation seeds per class for the shortlist (0: no rescoring)
    top: int  # shortlisted grid cells
    test_per_class: int  # fresh seeds per class scored (the generated sets)
    grid: tuple[GenerationConfig, ...]
    step_counts: tuple[int, ...]
    autoattack: bool  # run AutoAttack (the zoo's is read from its manifests)
    n_autoattack: int
    radius: float = FIG2_RADIUS
    kid_boot: int = KID_BOOT
    batch_size: int = 250

    def table(self) -> list[tuple[str, str]]:
        """``(stage, what it measures at these sizes)`` rows, printed before a run."""
        return [("energy", f"{self.n_energy} test images"),
                ("attacks", f"{self.n_attack} test images, PGD-20 CE and energy"),
                ("landscape", f"{self.n_land} test images, {self.resolution}×{self.resolution} slice each"),
                ("fisher", f"{self.n_fisher} test images, {self.n_probes} probe(s)"),
                ("generation", f"{len(self.grid)} samplers × K in {', '.join(map(str, self.step_counts))} on "
                               f"{10 * self.gen_per_class} validation seeds, {10 * self.test_per_class} fresh seeds "
                               f"scored, per model and energy"),
                ("autoattack", f"{self.n_autoattack} test images" if self.autoattack else "off (--autoattack)")]


# two cells of the frozen grid (SAMPLER_GRID): AT's tuned Langevin step and the scale-free normalised L2 step,
# which suits a model whose logit scale is unknown
QUICK_GRID = (GenerationConfig(step="langevin", step_size=1.0, n_steps=10, noise_std=0.001),
              GenerationConfig(step="l2", step_size=0.5, n_steps=10, noise_std=0.0))
SIZES = {
    # tests: seconds
    "smoke": LensSizes("smoke", n_energy=16, n_attack=4, n_land=2, resolution=5, n_fisher=4, n_probes=1,
                       gen_per_class=1, rescore_per_class=0, top=1, test_per_class=1, grid=QUICK_GRID[1:],
                       step_counts=(2,), autoattack=False, n_autoattack=4, kid_boot=200, batch_size=16),
    # a WideResNet-28-10 on 2 CPU cores in under 15 minutes (docs/lens.md has the measured stage times)
    "quick": LensSizes("quick", n_energy=100, n_attack=10, n_land=3, resolution=9, n_fisher=6, n_probes=1,
                       gen_per_class=1, rescore_per_class=0, top=1, test_per_class=1, grid=QUICK_GRID,
                       step_counts=(5, 10), autoattack=False, n_autoattack=16, batch_size=16),
    # a GPU: the audit's sizes (docs/evaluation.md's protocol, the whole sampler grid)
    "full": LensSizes("full", n_energy=10000, n_attack=1000, n_land=50, resolution=15, n_fisher=500, n_probes=2,
                      gen_per_class=10, rescore_per_class=50, top=3, test_per_class=100, grid=SAMPLER_GRID,
                      step_counts=STEP_COUNTS, autoattack=True, n_autoattack=1000, batch_size=250),
}


class OnDevice(nn.Module):
    """``model`` on ``device`` taking inputs anywhere: the library's CPU tensors (test images, seeds)
    go to the device and the logits come back, gradients included."""

    def __init__(self, model: nn.Module, device):
        super().__init__()
        self.model, self.device = model, torch.device(device)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x.to(self.device)).to(x.device)


# ----------------------------------------------------------------------------- the lens
class Lens:
    """The user's model beside the zoo: one :class:`~jeat_core.paper.experiments.Context` holding all of
    them (the user's under its own name), the report folder's cache, and the keys of the stages."""

    def __init__(self, user: UserModel, out: str | Path, sizes: LensSizes, *, data_root=None, zoo=ZOO,
                 device=None):
        check_name(user.name, zoo)
        self.user, self.out, self.sizes, self.zoo = user, Path(out), sizes, tuple(zoo)
        self.cache = self.out / "cache"
        self.ctx = Context(data_root=data_root)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.ctx.cached(("model", user.name), lambda: (self._placed(user.model), user.manifest))
        self.zoo_sha = {}
        for name in self.zoo:
            model, manifest = load_model(f"{self.ctx.preset}/{name}", device=self.device)
            self.ctx.cached(("model", name), lambda m=model, man=manifest: (self._placed(m), man))
            self.zoo_sha[name] = manifest.get("weights", {}).get("sha256", "")

    def _placed(self, model: nn.Module) -> nn.Module:
        return model if self.device.type == "cpu" else OnDevice(model, self.device)

    @property
    def names(self) -> list[str]:
        return [self.user.name, *self.zoo]

    def model(self, name: str) -> nn.Module:
        return self.ctx.model(name)[0]

    def test(self, n: int) -> tuple[Tensor, Tensor]:
        x, y = self.ctx.test()
        return x[:n], y[:n]

    def data_sha(self) -> str:
        def make():
            x, y = self.ctx.test()
            return hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()
        return self.ctx.cached("test-sha256", make)

    def key(self, stage: str, settings: dict) -> str:
        """What a cached record of ``stage`` must match: weights (user and zoo), data, device, settings."""
        blob = json.dumps({"stage": stage, "settings": settings, "user": self.user.weights_sha256,
                           "zoo": self.zoo_sha, "data": self.data_sha(), "device": self.device.type,
                           "version": VERSION}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def cached(self, path: str, key: str, make: Callable[[], dict]) -> tuple[dict, bool]:
        """``(record, was_cached)``: ``cache/<path>.json`` when its key is ``key``, else ``make()`` written there."""
        f = self.cache / f"{path}.json"
        if f.is_file():
            try:
                rec = json.loads(f.read_text())
                if rec.get("key") == key:
                    return rec["result"], True
            except (ValueError, KeyError):
                pass
        result = make()
        write_json(f, {"key": key, "user_weights_sha256": self.user.weights_sha256, "result": result})
        return result, False


# ----------------------------------------------------------------------------- statistics
def mean_ci(v) -> dict:
    """Mean with a percentile-bootstrap 95% interval over the images."""
    t = torch.as_tensor(v, dtype=torch.float64)
    return {"mean": float(t.mean()), "ci": list(bootstrap_ci(t)) if len(t) > 1 else [float(t.mean())] * 2,
            "n": len(t)}


def share(mask) -> dict:
    """A proportion with its 95% Wilson interval."""
    m = torch.as_tensor(mask, dtype=torch.bool)
    k, n = int(m.sum()), len(m)
    return {"mean": k / max(n, 1), "ci": list(wilson_interval(k, n)), "n": n}


def paired(a, b) -> dict:
    """``mean(a − b)`` over the same images with a percentile-bootstrap 95% interval (paired)."""
    d = torch.as_tensor(a, dtype=torch.float64) - torch.as_tensor(b, dtype=torch.float64)
    ci = list(bootstrap_ci(d)) if len(d) > 1 else [float(d.mean())] * 2
    return {"diff": float(d.mean()), "ci": ci, "n": len(d), "paired": True}


def bits(mask: Tensor) -> str:
    return "".join("1" if v else "0" for v in mask.tolist())


def unbits(text: str) -> Tensor:
    return torch.tensor([c == "1" for c in text], dtype=torch.bool)


def versus(lens: Lens, per_model: dict, field: str) -> dict:
    """The user's model minus each zoo model, paired over images, for the per-image list ``field``."""
    u = per_model[lens.user.name][field]
    return {name: paired(unbits(u).double() if isinstance(u, str) else u,
                         unbits(per_model[name][field]).double() if isinstance(u, str) else per_model[name][field])
            for name in lens.zoo}


# ----------------------------------------------------------------------------- stages
@torch.no_grad()
def energy_stage(lens: Lens, st: LensSizes, tick) -> dict:
    """E(x, y) and E(x) (Eq. 12) and clean accuracy on the first ``n_energy`` test images."""
    x, y = lens.test(st.n_energy)
    per = {}
    for name in lens.names:
        model = lens.model(name)
        logits = torch.cat([model(x[i:i + st.batch_size]) for i in range(0, len(x), st.batch_size)]).cpu()
        per[name] = {"joint": joint_energy(logits, y).tolist(), "marginal": marginal_energy(logits).tolist(),
                     "correct": bits(logits.argmax(1) == y)}
        per[name].update(joint_mean=mean_ci(per[name]["joint"]), marginal_mean=mean_ci(per[name]["marginal"]),
                         clean=share(unbits(per[name]["correct"])))
        tick(name)
    return {"n": len(x), "per_model": per, "clean_vs_zoo": versus(lens, per, "correct")}


def attack_stage(lens: Lens, st: LensSizes, tick) -> dict:
    """Tab. 1 and Tab. 3: PGD-20 ascending E(x, y) − E(x) (Eq. 14) and E(x, y) (Eq. 18) on the same images;
    an image is robust only if classified correctly clean and attacked. Each (model, attack) is a unit,
    resumable after every batch (``pgd_restarts(partial=...)``)."""
    x, y = lens.test(st.n_attack)
    per = {}
    for name in lens.names:
        per[name] = {}
        for objective in ("ce", "energy"):
            def make(name=name, objective=objective):
                part = lens.cache / "attacks" / f"{name}-{objective}.partial.json"
                rec = pgd_restarts(lens.model(name), x, y, n_steps=20, restarts=1, objective=objective, eps=EPS,
                                   step_size=STEP, seed=0, batch_size=st.batch_size, partial=part)
                part.unlink(missing_ok=True)
                m = masks_of(rec)
                return {"clean": bits(m["clean"]), "robust": bits(m["restart-1"]), "seconds": rec["seconds"]}
            settings = {"n": len(x), "objective": objective, "batch": st.batch_size, "model": name}
            rec, _ = lens.cached(f"attacks/{name}-{objective}", lens.key("attacks-unit", settings), make)
            per[name][objective] = rec["robust"]
            per[name]["correct"] = rec["clean"]
            tick(f"{name} {objective}")
        p = per[name]
        p.update(clean=share(unbits(p["correct"])), ce_robust=share(unbits(p["ce"])),
                 energy_robust=share(unbits(p["energy"])),
                 energy_minus_ce=paired(unbits(p["energy"]).double(), unbits(p["ce"]).double()))
        if name in lens.zoo:
            _, manifest = lens.ctx.model(name)
            p["recorded"] = {a: {k: e[k] for k in ("robust_acc", "robust_ci", "n") if k in e}
                             for a in ("pgd20", "energy-pgd20") if (e := find_eval(manifest, a)) is not None}
    return {"n": len(x), "eps": EPS, "step_size": STEP, "per_model": per,
            "pgd20_vs_zoo": versus(lens, per, "ce"), "energy_vs_zoo": versus(lens, per, "energy"),
            "recorded_note": "Recorded: the zoo manifest's record (jeat eval --record: robust_accuracy on its first "
                             "n test images, another random start; not paired with these)"}


def landscape_stage(lens: Lens, st: LensSizes, tick) -> dict:
    """Claim 3's flatness (:func:`~jeat_core.paper.experiments.landscape_numbers`: image i sliced along the
    directions of seed i) per model, paired differences, and Fig. 2's slice of test image 0."""
    x, y = lens.test(max(st.n_land, FIG2_IMAGE + 1))
    per, slices = {}, {}
    for name in lens.names:
        num = landscape_numbers(lens.ctx, [name], n=st.n_land, radius=st.radius, resolution=st.resolution)[name]
        per[name] = {"flatness": mean_ci(num["per_image"]), "per_image": num["per_image"],
                     "rank_of_x": {"mean": num["rank_of_x"], "ci": num["rank_ci"], "n": num["n"]},
                     "x_is_min": num["x_is_min"]}
        view = landscape_slices({name: lens.model(name)}, x[FIG2_IMAGE], int(y[FIG2_IMAGE]), radius=st.radius,
                                resolution=st.resolution)[name]
        slices[name] = {k: (v.tolist() if isinstance(v, Tensor) else v) for k, v in view.items()}
        tick(name)
    return {"n": st.n_land, "radius": st.radius, "resolution": st.resolution, "per_model": per,
            "flatness_vs_zoo": versus(lens, per, "per_image"), "slice": {"image": FIG2_IMAGE, "views": slices}}


FISHER_KEYS = ("JFS_pl", "MFS_pl", "JFS", "MFS")


def fisher_stage(lens: Lens, st: LensSizes, tick) -> dict:
    """Tab. 2: JFS (Eq. 23) and MFS (Eq. 24) as written (Hutchinson trace) and in the piecewise-linear
    convention (∇²f ≡ 0, the one the paper's numbers follow); the same probes for every model."""
    x, y = lens.test(st.n_fisher)
    per = {}
    for name in lens.names:
        (row,) = fisher_rows({name: lens.model(name)}, x, y, n_probes=st.n_probes, batch=min(st.batch_size, len(x)),
                             seed=0, per_example=True)
        per[name] = {"per_image": row["per_example"],
                     **{k: {"mean": row[k], "se": row[k + "_se"], "n": len(x),
                            "ci": [row[k] - 1.96 * row[k + "_se"], row[k] + 1.96 * row[k + "_se"]]}
                        for k in FISHER_KEYS}}
        tick(name)
    u = per[lens.user.name]["per_image"]
    vs = {name: {k: paired(u[k], per[name]["per_image"][k]) for k in FISHER_KEYS} for name in lens.zoo}
    return {"n": len(x), "n_probes": st.n_probes, "per_model": per, "vs_zoo": vs}


def _save_images(path: Path, images: Tensor) -> None:
    atomic_write_bytes(path, save({"images": images.contiguous()}))


def load_images(path: Path) -> Tensor:
    return load(path.read_bytes())["images"]


def generation_stage(lens: Lens, st: LensSizes, tick) -> dict:
    """Fig. 4 / claim 4 for every model: each energy's sampler tuned on validation seeds (frozen protocol,
    this run's grid), images from the same fresh class-Gaussian seeds and Langevin noise for every
    (model, energy), scored by the primary ruler (KID, FID, evaluator accuracy) and compared paired
    (KID differences over seed indices): Eq. 17 − Eq. 16 per model, and the user's model − each zoo model."""
    space = rulers.primary()
    seeds, labels = lens.ctx.seeds(st.test_per_class, TEST_SEED)
    _save_images(lens.cache / "generation" / "seeds.safetensors", seeds)  # for the figure
    images, sets = {}, {}
    for name in lens.names:
        for energy in ENERGIES:
            unit = f"generation/{name}-{energy}"
            settings = {k: v for k, v in asdict(st).items() if k in ("gen_per_class", "rescore_per_class", "top",
                                                                       "test_per_class", "grid", "step_counts")}

            def make(name=name, energy=energy, unit=unit):
                tuned = tune_sampler(lens.ctx, name, energy, per_class=st.gen_per_class,
                                     rescore_per_class=st.rescore_per_class, top=st.top, grid=st.grid,
                                     step_counts=st.step_counts)
                x = generate(lens.model(name), labels, seeds, tuned["best"], seed=TEST_SEED)
                _save_images(lens.cache / f"{unit}.safetensors", x)
                return {"sampler": sampler_record(tuned["best"]), "grid": tuned["rows"], "space": tuned["space"]}

            rec, _ = lens.cached(unit, lens.key("generation-unit", {**settings, "model": name, "energy": energy}),
                                 make)
            images[name, energy] = load_images(lens.cache / f"{unit}.safetensors")
            sets[f"{name}|{energy}"] = {**rec, "metrics": _set(lens, space, images[name, energy], labels, seeds)}
            tick(f"{name} {ENERGIES[energy]}")
    x, y = lens.ctx.test()
    n = len(labels)
    baselines = {"real test images [0, n)": _set(lens, space, x[:n], y[:n]),
                 "class-Gaussian seeds": _set(lens, space, seeds, labels)}
    u = lens.user.name
    return {"n": n, "space": space.name, "sets": sets, "baselines": baselines,
            "eq17_minus_eq16": {m: _kid_diff(lens, st, images[m, "joint"], images[m, "ce"]) for m in lens.names},
            "vs_zoo": {m: {e: _kid_diff(lens, st, images[u, e], images[m, e]) for e in ENERGIES} for m in lens.zoo},
            "images": {"labels": labels.tolist()}}


def _set(lens: Lens, space, images: Tensor, labels: Tensor, seeds: Tensor | None = None) -> dict:
    """KID against the reference in ``space`` and FID when there are more images than feature dimensions
    (else ``None``: the covariance is singular) (:func:`jeat_core.measure.rulers.set_metrics` without its
    precision/recall), the evaluator's accuracy on the intended ``labels`` (Wilson) and the L2 distance
    moved from ``seeds``."""
    f, real = rulers.features(lens.ctx, space, images), rulers.reference(lens.ctx, space)
    hits = int((rulers.evaluator_predictions(lens.ctx, space, images) == labels).sum())
    yy = rulers.reference_terms(lens.ctx, space)["yy"]  # the reference's own KID term, computed once
    rec = {"n": len(f), "kid": kid_point(f, real, yy=yy),
           "fid": frechet_distance(f, real) if len(f) > f.shape[1] else None,
           "eval_acc": hits / len(labels), "eval_acc_ci": list(wilson_interval(hits, len(labels)))}
    if seeds is not None:
        rec["l2_moved"] = float((images - seeds).flatten(1).norm(dim=1).mean())
    return rec


def _kid_diff(lens: Lens, st: LensSizes, a: Tensor, b: Tensor) -> dict:
    (c,) = rulers.compare(lens.ctx, [a], [b], spaces=[rulers.primary()], n_boot_kid=st.kid_boot, fid=False)
    return c.record()


def autoattack_stage(lens: Lens, st: LensSizes, tick) -> dict:
    """Standard L∞ AutoAttack (APGD-CE, APGD-T, FAB-T, Square 5,000 queries) on the user's model, resumable per
    batch; the zoo's robust accuracy read from the per-image records of its manifests (the same first test
    images), so the user − zoo differences are paired; PGD-20 − AutoAttack per model where both ran here."""
    require_torchattacks()
    x, y = lens.test(st.n_autoattack)
    u = lens.user.name

    def make():
        part = lens.cache / "autoattack" / f"{u}.partial.json"
        rec = autoattack(lens.model(u), x, y, eps=EPS, batch_size=st.batch_size, partial=part)
        part.unlink(missing_ok=True)
        return {k: v for k, v in rec.items()}

    rec, _ = lens.cached(f"autoattack/{u}", lens.key("autoattack-unit", {"n": len(x), "batch": st.batch_size}), make)
    tick(u)
    final = masks_of(rec)[rec["stages"][-1]["stage"]]
    per = {u: {"robust": share(final), "robust_bits": bits(final), "source": "measured here",
               "stages": {s["stage"]: s["robust_acc"] for s in rec["stages"]}, "seconds": rec["seconds"]}}
    vs = {}
    for name in lens.zoo:
        zrec = recorded_autoattack(lens.ctx.model(name)[1], EPS)
        if zrec is None or "per_example" not in zrec or zrec["n"] < len(x):
            per[name] = {"source": f"no standard AutoAttack record with n ≥ {len(x)} in its manifest"}
        else:
            zm = masks_of(zrec)[zrec["stages"][-1]["stage"]][:len(x)]
            per[name] = {"robust": share(zm), "robust_bits": bits(zm),
                         "source": f"read from its manifest (recorded n = {zrec['n']}, its first {len(x)} images)"}
            vs[name] = paired(final.double(), zm.double())
        tick(name)
    return {"n": len(x), "eps": EPS, "per_model": per, "vs_zoo": vs, "settings": rec["settings"]}


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    paper: str
    run: Callable[[Lens, LensSizes, Callable[[str], None]], dict]
    fields: tuple[str, ...]  # the LensSizes fields its result depends on
    units: Callable[[Lens], int]  # progress-bar length

    def settings(self, st: LensSizes) -> dict:
        return {k: getattr(st, k) for k in self.fields}


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("energy", "The energy view", "Eq. 12-13", energy_stage, ("n_energy", "batch_size"), lambda lz: len(lz.names)),
    Stage("attacks", "CE vs energy attack, PGD-20 robustness", "Tab. 1, Tab. 3 (Eq. 14, 18)", attack_stage,
          ("n_attack", "batch_size"), lambda lz: 2 * len(lz.names)),
    Stage("landscape", "Energy landscape and flatness", "Fig. 2, claim 3", landscape_stage,
          ("n_land", "resolution", "radius"), lambda lz: len(lz.names)),
    Stage("fisher", "Fisher scores", "Tab. 2 (Eq. 23, 24)", fisher_stage, ("n_fisher", "n_probes", "batch_size"),
          lambda lz: len(lz.names)),
    Stage("generation", "Eq. 16 vs Eq. 17 generation", "Fig. 4, claim 4 (Eq. 16, 17)", generation_stage,
          ("gen_per_class", "rescore_per_class", "top", "test_per_class", "grid", "step_counts", "kid_boot"),
          lambda lz: 2 * len(lz.names)),
    Stage("autoattack", "AutoAttack", "Tab. 3, claim 10", autoattack_stage, ("n_autoattack", "batch_size"),
          lambda lz: 1 + len(lz.zoo)),
)}


def run_stage(lens: Lens, stage: Stage, *, progress: bool = False) -> dict:
    """One stage, from the cache when its key matches, else measured (with a tqdm bar when ``progress``).
    Returns ``{"result", "key", "seconds", "cached"}``; ``seconds`` is the time it took when measured."""
    key = lens.key(stage.name, stage.settings(lens.sizes))
    bar = None
    if progress:
        from tqdm.auto import tqdm  # progress bars: loaded only when asked for

        bar = tqdm(total=stage.units(lens), desc=f"[lens] {stage.name}", unit="step", file=sys.stderr)

    def tick(what: str) -> None:
        if bar is not None:
            bar.set_postfix_str(what)
            bar.update(1)

    t0 = time.time()
    timed = {}

    def make() -> dict:
        res = stage.run(lens, lens.sizes, tick)
        timed["seconds"] = round(time.time() - t0, 1)
        return {**res, "seconds": timed["seconds"]}

    try:
        result, cached = lens.cached(stage.name, key, make)
    finally:
        if bar is not None:
            bar.close()
    return {"result": result, "key": key, "seconds": result.get("seconds"), "cached": cached}


def chosen_stages(stages: list[str] | None, st: LensSizes) -> list[str]:
    """The stages a report runs, in :data:`STAGES` order: ``stages`` (checked), or by default every stage
    but ``autoattack``, which runs when the sizes ask for it (``--full``, ``--autoattack``)."""
    if stages is None:
        return [s for s in STAGES if s != "autoattack" or st.autoattack]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"--stages: unknown stage {unknown[0]!r}; choose from {', '.join(STAGES)}")
    return [s for s in STAGES if s in stages]


def check_name(name: str | None, zoo=ZOO) -> None:
    """The user's model needs a name of its own beside the zoo's."""
    if name in zoo:
        raise UserModelError(f"--name {name!r} is a zoo model's name; choose another")


def sizes_for(name: str, **over) -> LensSizes:
    """The named sizes (:data:`SIZES`), with fields replaced by ``over`` (e.g. ``autoattack=True``)."""
    if name not in SIZES:
        raise ValueError(f"unknown sizes {name!r}; choose one of {', '.join(SIZES)}")
    return replace(SIZES[name], **{k: v for k, v in over.items() if v is not None})

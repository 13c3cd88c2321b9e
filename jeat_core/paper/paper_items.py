"""The paper's figures and tables: one producer per item, returning data, and the one list of them.

:data:`PAPER_ITEMS` lists every figure and table once (:class:`PaperItem`: producer, inputs, plot,
files, notebook); ``jeat figures`` (:func:`jeat_core.explore.figures.make_all`), the notebooks' exports and the
tests read it. Each producer (``fig2_data`` ... ``fig7_rows``, ``table1_rows`` ... ``table3_rows``)
takes models and data and returns numbers or :class:`ImageRows`; the notebooks call the same producers
with the same settings. The only override is the size, and it is named: :data:`PAPER_SIZES` (what
``jeat figures`` writes) or :data:`SMOKE_SIZES` (``--smoke``, ``JEAT_SMOKE=1``).

The measurements these share with the audit (the cached :class:`~jeat_core.paper.experiments.Context`,
Fisher scores, contour grids, energy logs) live in :mod:`jeat_core.paper.experiments`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import Tensor

from jeat_core.core.checkpoints import ENERGY_LOG, CheckpointError, find_eval, resolve
from jeat_core.core.data import CIFAR10_CLASSES
from jeat_core.core.landscape import landscape_slices
from jeat_core.core.sampling import ClassGaussian, GenerationConfig, generate, sampler_for
from jeat_core.measure.metrics import TrainIndex, nearest_by_ssim, robust_accuracy
from jeat_core.measure.robustness import is_standard, masks_of
from jeat_core.measure.stats import bootstrap_ci, shared_images_mean, wilson_interval
from jeat_core.paper.experiments import TRAINING_SEEDS, Context, fisher_rows, read_energy_log, training_runs
from jeat_core.train.methods import make_config
from jeat_core.train.training import Batches, build_state, train_step

MODEL_LABELS = {"standard": "Normal", "at": "AT", "prejeat": "PreJEAT", "jeat": "JEAT", "jem": "JEM",
                "noise-8": "σ = 8/255", "noise-16": "σ = 16/255", "noise-24": "σ = 24/255", "trades": "TRADES"}
FIGURE_SEED = 0  # class-Gaussian seeds of Figs. 4-7 (torch.Generator seed)
FIGURE_LABEL = 8  # ship: the class of Figs. 4 and 5
FIG2_MODELS, FIG2_IMAGE, FIG2_RADIUS = ("standard", "at", "prejeat", "jeat"), 0, 2.0
FIG3_MODEL = "at"
FIG4_RUNS = {"(a) AT, Eq. 16": ("at", "ce"), "(b) AT, Eq. 17": ("at", "joint"),
             "(c) PreJEAT, Eq. 17": ("prejeat", "joint")}  # row -> (zoo name, energy)
FIG4_MODELS = tuple(dict.fromkeys(name for name, _ in FIG4_RUNS.values()))  # ("at", "prejeat")
FIG5_MODELS = ("noise-8", "noise-16", "noise-24")
FIG6_MODELS = ("at", "prejeat", "jem", "jeat", "trades")  # TRADES: not in the paper (a robust classifier, other loss)
FIG7_MODEL, FIG7_LABELS, FIG7_K = "jeat", (0, 2, 4, 6, 8), 10
TABLE1_MODEL = "standard"
TABLE2_MODELS = ("standard", "at", "jem", "jeat")
TABLE3_MODELS = ("jem", "jeat", "prejeat", "at", "noise-8", "noise-16", "noise-24")


@dataclass(frozen=True)
class FigureSizes:
    """How large the paper figures and tables are (the one setting a smoke run changes).

    ``per_class``: images per class in Figs. 4-6; ``max_steps``: cap on each model's tuned number
    of Langevin steps K; ``fig7_classes``: Fig. 7 shows one image of each of the first classes of
    :data:`FIG7_LABELS`; ``n_train``: training images Fig. 7 searches (``None``: all 50,000);
    ``n_test``: test images of Tab. 1 and Tab. 3; ``n_fisher``/``n_probes``: Tab. 2;
    ``resolution``: grid points per side of Fig. 2; ``hist_steps``: length of the fresh run whose per-example
    ΔE the histograms show (at its first and last update)."""

    per_class: int = 8
    max_steps: int = 60
    fig7_classes: int = len(FIG7_LABELS)
    n_train: int | None = None
    n_test: int = 1000
    n_fisher: int = 200
    n_probes: int = 4
    resolution: int = 41
    hist_steps: int = 100

    def __post_init__(self):
        for k, v in asdict(self).items():
            if not (v is None and k == "n_train") and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"FigureSizes.{k} must be a positive int; got {v!r}")
        if self.fig7_classes > len(FIG7_LABELS):
            raise ValueError(f"FigureSizes.fig7_classes must be <= {len(FIG7_LABELS)}; got {self.fig7_classes}")


PAPER_SIZES = FigureSizes()
SMOKE_SIZES = FigureSizes(per_class=2, max_steps=5, fig7_classes=2, n_train=2000, n_test=64, n_fisher=16,
                          n_probes=1, resolution=9, hist_steps=2)


@dataclass
class ImageRows:
    """A figure of image rows (Figs. 4-7): what :func:`jeat_core.explore.figures.plot_image_rows` draws.

    ``rows`` maps a row label to images ``(N, C, H, W)`` in [0, 1], drawn ``nrow`` per line under
    ``title``; ``labels`` ``(N,)`` and ``seeds`` are the chains' targets and starts (shared by every
    generated row); ``runs`` maps a generated row to ``(zoo name, energy, GenerationConfig)``;
    ``extra`` holds what a caption or table needs beyond the images."""

    rows: dict[str, Tensor]
    nrow: int
    title: str = ""
    side_by_side: bool = False  # panels in one row (Fig. 6, as in the paper) instead of stacked
    line_names: list[str] | None = None  # a name per line of images, left of the first panel (Fig. 6's classes)
    split_after: int | None = None  # columns set apart from the rest (Fig. 7's generated image)
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


SEED_ROW = "seeds x₀ (every chain starts here)"


def moved_map(images: Tensor, seeds: Tensor) -> Tensor:
    """``|x_K − x_0|`` per pixel (mean over colour channels) as a grey image in [0, 1], each image scaled
    by its own largest change: where a chain moved its seed, black where it left it alone."""
    d = (images - seeds).abs().mean(1, keepdim=True)
    d = d / d.flatten(1).amax(1).clamp_min(1e-12)[:, None, None, None]
    return d.expand(-1, 3, -1, -1).contiguous()


def _generated_rows(runs: dict, models: dict, manifests: dict, labels: Tensor, seeds: Tensor, sizes: FigureSizes,
                    *, moved: bool = False, **layout) -> ImageRows:
    """Each of ``runs`` (row label -> (zoo name, energy)) generated from ``seeds`` with its tuned sampler;
    with ``moved`` the seeds lead as a row of their own and each generated row is followed by its
    :func:`moved_map` (Figs. 4 and 5: what the chain changed)."""
    rows, used = ({SEED_ROW: seeds} if moved else {}), {}
    for row, (name, energy) in runs.items():
        rows[row], cfg = tuned_generation(models[name], manifests.get(name), labels, seeds, energy,
                                          max_steps=sizes.max_steps)
        used[row] = (name, energy, cfg)
        if moved:
            rows[f"|x_K − x₀| of {row} (per image, white = most moved)"] = moved_map(rows[row], seeds)
    return ImageRows(rows, labels=labels, seeds=seeds, runs=used, **layout)


def fig2_data(models: dict, x: Tensor, y: Tensor, *, sizes: FigureSizes = PAPER_SIZES) -> dict:
    """Fig. 2: :func:`jeat_core.core.landscape.landscape_slices` of the :data:`FIG2_MODELS` (picked from
    ``models``, zoo name -> classifier) around test image :data:`FIG2_IMAGE` of ``x``/``y`` for its
    label, radius :data:`FIG2_RADIUS`, directions of seed 0 (the audit's for image 0): per model
    ``{"a", "b", "grid": E(x', y), "dlogp": Δ log p(y | x'), "stats"}``."""
    return landscape_slices({n: models[n] for n in FIG2_MODELS}, x[FIG2_IMAGE], int(y[FIG2_IMAGE]),
                            radius=FIG2_RADIUS, resolution=sizes.resolution)


def fig3_data(preset: str = "cifar10-cpu") -> dict:
    """Fig. 3: the energy logs of the :data:`FIG3_MODEL` training runs: ``{"log": the shipped run's
    records, "runs": run name -> records (the shipped run, then each training seed shipped), "control":
    the standard model's records (training without attack, ε = 0) or ``None``, "title"}``."""
    runs = {}
    for run in training_runs(FIG3_MODEL, preset):
        path = resolve(f"{preset}/{run}") / ENERGY_LOG
        if path.exists():
            runs[run] = read_energy_log(path)
    try:  # standard training: the ε = 0 control
        control = resolve(f"{preset}/standard") / ENERGY_LOG
    except CheckpointError:
        control = None
    return {"log": runs[FIG3_MODEL], "runs": runs,
            "control": read_energy_log(control) if control is not None and control.exists() else None,
            "title": f"{MODEL_LABELS[FIG3_MODEL]} ({preset.removeprefix('cifar10-')} preset, {len(runs)} training run"
                     f"{'s' if len(runs) > 1 else ''})"}


def fig3_histograms(train, trained=None, *, method: str = FIG3_MODEL, sizes: FigureSizes = PAPER_SIZES,
                    seed: int = 0) -> dict:
    """The ΔE histograms: per-example Δ_x E(x, y), Δ_θ E(x, y) and Δ_θ E(x) (Eq. 15) of single updates
    at chosen points of ``method``'s training (cpu recipe, its batch size), where Fig. 3 shows batch means.

    Points: the first and the ``sizes.hist_steps``-th update of a fresh run on the recipe's schedule
    (inside its warm-up, so the learning rate is still rising) and, with ``trained`` (the shipped model
    of ``method``), one update of the trained weights at the recipe's peak learning rate: a probe, since
    the end of the cosine schedule has a learning rate of 0, which would move nothing. Returns
    ``{"points": {label: {"dxE_joint", "dthetaE_joint", "dthetaE_marginal": numpy arrays, one value per
    image}}, "method", "batch"}``."""
    steps = sizes.hist_steps
    cfg = make_config(method, "cpu", log_every=0, checkpoint_every=0, eval_n=0, seed=seed, channels_last=False)
    device = torch.device("cpu")
    keep = ("dxE_joint", "dthetaE_joint", "dthetaE_marginal")
    points: dict[str, dict] = {}
    batches = Batches(train, cfg, device, 0, 1)
    state = build_state(cfg, device, batches.total_steps(cfg))  # the whole recipe's schedule, stopped early
    for s in range(steps):
        x, y = batches.get(s, cfg, state.generator)
        got = train_step(state, x, y, cfg, log_dynamics=s in (0, steps - 1)).samples
        if got:
            points[f"fresh run, update {s + 1}"] = {k: got[k].numpy() for k in keep}
        state.step += 1
    if trained is not None:
        model = copy.deepcopy(trained).to(device).train()  # the shipped weights in their own architecture
        for param in model.parameters():
            param.requires_grad_(True)
        probe = build_state(cfg, device, batches.total_steps(cfg))
        optimizer = type(probe.optimizer)(model.parameters(), **probe.optimizer.defaults)  # the recipe's, peak lr
        probe = replace(probe, model=model, optimizer=optimizer,
                        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0))
        x, y = batches.get(steps, cfg, probe.generator)
        got = train_step(probe, x, y, cfg, log_dynamics=True).samples
        points["trained model, one update (probe)"] = {k: got[k].numpy() for k in keep}
    return {"points": points, "method": method, "batch": len(next(iter(points.values()))["dxE_joint"])}


def fig4_rows(models: dict, manifests: dict, class_gaussian: ClassGaussian, *,
              sizes: FigureSizes = PAPER_SIZES) -> ImageRows:
    """Fig. 4: the same ship seeds through AT with Eq. 16, AT with Eq. 17 and PreJEAT with Eq. 17
    (:data:`FIG4_RUNS`), each with its tuned sampler; the seeds first, and under each row what its
    chains changed (:func:`moved_map`). ``models``/``manifests``: zoo name -> classifier
    / manifest (a superset is fine); ``class_gaussian`` fitted on the training images."""

    labels = torch.full((sizes.per_class,), FIGURE_LABEL)
    return _generated_rows(FIG4_RUNS, models, manifests, labels, figure_seeds(class_gaussian, labels), sizes,
                           moved=True, nrow=sizes.per_class, title=f"label: {CIFAR10_CLASSES[FIGURE_LABEL]}")


def fig5_rows(models: dict, manifests: dict, class_gaussian: ClassGaussian, *,
              sizes: FigureSizes = PAPER_SIZES) -> ImageRows:
    """Fig. 5: the same ship seeds through the noise-trained classifiers (:data:`FIG5_MODELS`), Eq. 17,
    each with its tuned sampler (arguments as :func:`fig4_rows`)."""
    labels = torch.full((sizes.per_class,), FIGURE_LABEL)
    runs = {MODEL_LABELS[n]: (n, "joint") for n in FIG5_MODELS}
    return _generated_rows(runs, models, manifests, labels, figure_seeds(class_gaussian, labels), sizes,
                           moved=True, nrow=sizes.per_class,
                           title=f"noise-trained classifiers, label: {CIFAR10_CLASSES[FIGURE_LABEL]}")


SEED_PANEL = "seeds (start)"  # the class-Gaussian seeds every Fig. 6 chain starts from


def fig6_rows(models: dict, manifests: dict, class_gaussian: ClassGaussian, *,
              sizes: FigureSizes = PAPER_SIZES) -> ImageRows:
    """Fig. 6: Eq. 17 samples of :data:`FIG6_MODELS` from the same seeds, ``per_class`` per class; in
    each model's panel one line per class (airplane first), ``per_class`` images a line (arguments
    as :func:`fig4_rows`)."""
    labels = torch.arange(10).repeat_interleave(sizes.per_class)  # (10 * per_class,): 0, 0, ..., 9, 9
    runs = {MODEL_LABELS[n]: (n, "joint") for n in FIG6_MODELS}
    seeds = figure_seeds(class_gaussian, labels)
    fig = _generated_rows(runs, models, manifests, labels, seeds, sizes, nrow=sizes.per_class, side_by_side=True)
    fig.rows = {SEED_PANEL: seeds.clamp(0, 1), **fig.rows}  # where every chain starts
    fig.line_names = [CIFAR10_CLASSES[int(c)] for c in labels[::sizes.per_class]]
    return fig


def fig7_rows(models: dict, manifests: dict, class_gaussian: ClassGaussian, train_x, *,
              sizes: FigureSizes = PAPER_SIZES) -> ImageRows:
    """Fig. 7: one :data:`FIG7_MODEL` sample per class of :data:`FIG7_LABELS` (its tuned sampler), each
    followed by its :data:`FIG7_K` SSIM-nearest images among ``train_x`` (``(N, H, W, C)`` uint8 or a
    :class:`jeat_core.measure.metrics.TrainIndex` of it; pass only the first ``sizes.n_train`` when set).
    ``extra``: ``ssim`` ``(Q, K)`` and ``indices`` ``(Q, K)`` of the neighbours."""
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
    return ImageRows(rows, nrow=FIG7_K + 1, split_after=1, labels=labels, seeds=seeds,
                     runs={"generated": (FIG7_MODEL, "joint", cfg)},
                     extra={"ssim": sim, "indices": idx, "generated": gen})


def table1_rows(model, x: Tensor, y: Tensor, *, sizes: FigureSizes = PAPER_SIZES, eps: float = 8 / 255,
                seed: int = 0, progress: bool = False) -> list[dict]:
    """Tab. 1 on the first ``sizes.n_test`` of ``x``/``y`` for ``model`` (:data:`TABLE1_MODEL`):
    accuracy with no attack, the CE attack (Eq. 14) and the energy attack (Eq. 18), both PGD-20
    (L-inf, step 2/255, random start). ``progress``: a tqdm bar over the attacks."""
    x, y = x[:sizes.n_test], y[:sizes.n_test]
    attacks = [("No attack", "none"), ("CE attack (Eq. 14)", "pgd20"), ("Energy attack (Eq. 18)", "energy-pgd20")]
    if progress:
        from tqdm.auto import tqdm  # progress bars: loaded only when asked for

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


def recorded_autoattack(manifest: dict | None, eps: float = 8 / 255) -> dict | None:
    """A manifest's recorded standard AutoAttack eval at ``eps`` (100 iterations, Square 5,000
    queries; ``jeat eval --attack autoattack --record``), or ``None``."""
    rec = find_eval(manifest or {}, "autoattack", eps)
    return rec if rec and is_standard(rec) else None


def table3_rows(models: dict, x: Tensor, y: Tensor, *, sizes: FigureSizes = PAPER_SIZES,
                eps: float = 8 / 255, seed: int = 0, manifests: dict | None = None) -> list[dict]:
    """Tab. 3 for :data:`TABLE3_MODELS` (picked from ``models``) on the first ``sizes.n_test`` of
    ``x``/``y``: clean accuracy and PGD-20 robustness (L-inf, eps 8/255, step 2/255, random start),
    and beside it the standard AutoAttack robust accuracy (the worst case of its four attacks) with
    its n and Wilson CI as recorded in ``manifests[name]`` (too slow to rerun here; ``None`` where a
    model has no record: ``jeat eval --attack autoattack --record``)."""
    rows = []
    for name in TABLE3_MODELS:
        r = robust_accuracy(models[name], x[:sizes.n_test], y[:sizes.n_test], attack="pgd20", eps=eps, seed=seed)
        aa = recorded_autoattack((manifests or {}).get(name), eps)
        rows.append({"model": MODEL_LABELS.get(name, name), "clean_acc": r["clean_acc"], "pgd20_acc": r["robust_acc"],
                     "n": r["n"], "autoattack_acc": aa["robust_acc"] if aa else None,
                     "autoattack_ci": [round(v, 4) for v in aa["robust_ci"]] if aa else None,
                     "autoattack_n": aa["n"] if aa else None, "eps": eps})
    return rows


def table3_seed_rows(manifests: dict, *, eps: float = 8 / 255) -> list[dict]:
    """Tab. 3 across training seeds, from the records only (nothing is attacked here): for each method
    with extra training seeds (:data:`~jeat_core.paper.experiments.TRAINING_SEEDS`: AT, PreJEAT, JEAT) one row
    per run in ``manifests`` (run name -> manifest; the shipped run and its ``-s1``/``-s2``) and a row
    ``"mean of k runs"``.

    Per run: ``clean_acc`` (its record, the full test set), ``pgd20_acc`` (its record, ``pgd20_n``
    images), and on the first ``n`` test images, ``n`` being the smallest standard AutoAttack record
    among the method's runs (the shipped run's 1,000 are cut to its seeds' 500): ``autoattack_acc``
    with its Wilson interval, ``pgd100_5_acc`` (``None`` without a PGD-100×5 record that long) and
    ``gap`` = PGD-100×5 − AutoAttack, paired per image, with a bootstrap 95% interval. The mean row
    averages each number over the runs; its ``autoattack_ci`` and ``gap_ci`` are t-intervals whose
    variance adds the runs' (R − 1 df) and the shared images' (n − 1 df)
    (:func:`~jeat_core.measure.stats.shared_images_mean`), so they carry both the training-seed and the
    image-sampling variance, and ``spread`` is
    AutoAttack's range over the runs. A method whose runs do not all have a standard AutoAttack
    record with per-example results gets no rows at all."""
    def final(record, n):  # per-image robustness after the record's last stage, first n images
        if not record or record["n"] < n or "per_example" not in record:
            return None
        return list(masks_of(record).values())[-1][:n]

    rows = []
    for method, runs in TRAINING_SEEDS.items():
        runs = [r for r in runs if r in manifests]
        aa = {r: recorded_autoattack(manifests[r], eps) for r in runs}
        if not runs or not all(a and "per_example" in a for a in aa.values()):
            continue
        n = min(a["n"] for a in aa.values())
        out, per_image = [], {"autoattack_acc": [], "gap": []}  # (n,) per run, for the mean row's intervals
        for run in runs:
            man = manifests[run]
            clean, pgd20 = find_eval(man, "none", eps), find_eval(man, "pgd20", eps)
            robust_aa = final(aa[run], n)
            robust_pgd = final(find_eval(man, "pgd100-5", eps), n)
            k = int(robust_aa.sum())
            row = {"model": MODEL_LABELS.get(method, method), "run": run, "seed": man.get("config", {}).get("seed"),
                   "clean_acc": clean["clean_acc"] if clean else None,
                   "pgd20_acc": pgd20["robust_acc"] if pgd20 else None, "pgd20_n": pgd20["n"] if pgd20 else None,
                   "n": n, "autoattack_acc": k / n, "autoattack_ci": [round(v, 4) for v in wilson_interval(k, n)],
                   "pgd100_5_acc": None, "gap": None, "gap_ci": None, "spread": None}
            per_image["autoattack_acc"].append(robust_aa.double())
            if robust_pgd is not None:
                d = robust_pgd.double() - robust_aa.double()
                row.update(pgd100_5_acc=float(robust_pgd.double().mean()), gap=float(d.mean()),
                           gap_ci=[round(v, 4) for v in bootstrap_ci(d)])
                per_image["gap"].append(d)
            out.append(row)
        rows += out
        if len(out) >= 2:
            mean = {**{k: None for k in out[0]}, "model": MODEL_LABELS.get(method, method),
                    "run": f"mean of {len(out)} runs", "n": n}
            for key, ci in (("clean_acc", None), ("pgd20_acc", None), ("autoattack_acc", "autoattack_ci"),
                            ("pgd100_5_acc", None), ("gap", "gap_ci")):
                vals = [r[key] for r in out]
                if None in vals:
                    continue
                mean[key] = sum(vals) / len(vals)
                if ci:  # run and shared-image variance: replaces the per-run interval
                    mean[ci] = [round(v, 4) for v in shared_images_mean(torch.stack(per_image[key]).numpy()).ci()]
            aa_runs = [r["autoattack_acc"] for r in out]
            mean["spread"] = max(aa_runs) - min(aa_runs)  # AutoAttack's range over runs
            rows.append(mean)
    return rows


# ----------------------------------------------------------------------------- the paper's items (one list)
@dataclass(frozen=True)
class PaperItem:
    """One figure or table of the paper, listed once in :data:`PAPER_ITEMS`, which ``jeat figures``
    (:func:`jeat_core.explore.figures.make_all`), the notebooks' exports and the tests read.

    ``id``: the stem of its files (``"fig2_energy_contours"``); ``title``: what it shows (a table's
    heading; ``{n}``: its rows' number of test images); ``producer``: the function of this module
    that computes its data, which its notebook calls too; ``inputs``: ``(ctx, sizes) -> keyword
    arguments`` of the producer from a :class:`Context` (how ``jeat figures`` calls it);
    ``draw``: its own draw function, ``data -> matplotlib Figure`` taking the producer's return
    value unchanged, or ``None`` for a table (saved as Markdown and JSON). Drawing belongs to the
    explore layer, which this one may not import, so the item names its function as
    ``"module:function"`` (resolved when drawn, by :func:`jeat_core.explore.figures.draw_function`);
    a callable works too (a notebook's or a test's own). ``notebook``: the number of the notebook
    that reproduces it (``"02"``: ``notebooks/02_*.py``)."""

    id: str
    title: str
    producer: Callable
    inputs: Callable[[Context, FigureSizes], dict]
    draw: str | Callable | None
    notebook: str

    @property
    def is_table(self) -> bool:
        return self.draw is None

    @property
    def exports(self) -> tuple[str, ...]:
        """Its file names: ``<id>.md`` and ``<id>.json`` for a table, ``<id>.pdf`` and ``<id>.png`` for a figure."""
        return tuple(f"{self.id}.{ext}" for ext in (("md", "json") if self.is_table else ("pdf", "png")))

    def compute(self, ctx: Context, sizes: FigureSizes = PAPER_SIZES):
        """The producer's data on ``ctx``'s models and data at ``sizes`` (what ``jeat figures`` draws)."""
        return self.producer(**self.inputs(ctx, sizes))


def _test_images(ctx: Context) -> dict:
    x, y = ctx.test()
    return {"x": x, "y": y}


def _generators(ctx: Context, names) -> dict:
    """Inputs of a generation figure: its models, their manifests (tuned samplers) and the seeds' Gaussians."""
    return {"models": ctx.models(names), "manifests": ctx.manifests(names), "class_gaussian": ctx.class_gaussian()}


# the draw functions the figures name (in the explore layer, which this one may not import)
FIGURES = "jeat_core.explore.figures:"
IMAGE_ROWS = FIGURES + "plot_image_rows"  # an ImageRows grid, with the producer's own layout

# in the order `jeat figures` makes them
PAPER_ITEMS: dict[str, PaperItem] = {item.id: item for item in (
    PaperItem("table1_attacks", "Tab. 1: CE vs energy attack, standard model (n={n})", table1_rows,
              lambda ctx, sizes: {"model": ctx.model(TABLE1_MODEL)[0], **_test_images(ctx), "sizes": sizes},
              None, "01"),
    PaperItem("fig2_energy_contours",
              "Fig. 2: Δ log p(y | x') around a test image, a colour scale per panel and one shared",
              fig2_data,
              lambda ctx, sizes: {"models": ctx.models(FIG2_MODELS), **_test_images(ctx), "sizes": sizes},
              FIGURES + "draw_fig2", "02"),
    PaperItem("fig3_delta_energy", "Fig. 3: Δ_x E and Δ_θ E during adversarial training", fig3_data,
              lambda ctx, sizes: {"preset": ctx.preset}, FIGURES + "draw_fig3", "03"),
    PaperItem("fig3_delta_energy_hist", "ΔE histograms: per-example Δ_x E and Δ_θ E of single updates (Eq. 15)",
              fig3_histograms,
              lambda ctx, sizes: {"train": ctx.train_split(), "trained": ctx.model(FIG3_MODEL)[0], "sizes": sizes},
              FIGURES + "plot_delta_energy_hist", "03"),
    PaperItem("fig4_eq16_vs_eq17", "Fig. 4: generation from AT with Eq. 16 and Eq. 17, and from PreJEAT", fig4_rows,
              lambda ctx, sizes: {**_generators(ctx, FIG4_MODELS), "sizes": sizes}, IMAGE_ROWS, "04"),
    PaperItem("fig5_noise_generation", "Fig. 5: generation from noise-trained classifiers", fig5_rows,
              lambda ctx, sizes: {**_generators(ctx, FIG5_MODELS), "sizes": sizes}, IMAGE_ROWS, "05"),
    PaperItem("fig6_generation_by_model", "Fig. 6: generation by AT, PreJEAT, JEM and JEAT, every class", fig6_rows,
              lambda ctx, sizes: {**_generators(ctx, FIG6_MODELS), "sizes": sizes}, IMAGE_ROWS, "06"),
    PaperItem("fig7_nearest_neighbours", "Fig. 7: JEAT samples and their SSIM-nearest training images", fig7_rows,
              lambda ctx, sizes: {**_generators(ctx, [FIG7_MODEL]), "train_x": ctx.train_split().x[:sizes.n_train],
                                  "sizes": sizes}, IMAGE_ROWS, "09"),
    PaperItem("table2_fisher",
              "Tab. 2: Fisher scores, Eq. 23/24 as written and piecewise-linear (_pl), mean and SE (n={n})",
              table2_fisher_rows,
              lambda ctx, sizes: {"models": ctx.models(TABLE2_MODELS), **_test_images(ctx), "sizes": sizes},
              None, "07"),
    PaperItem("table3_robustness",
              "Tab. 3: clean and PGD-20 accuracy (n={n}), and the recorded AutoAttack accuracy (its own n)",
              table3_rows,
              lambda ctx, sizes: {"models": ctx.models(TABLE3_MODELS), **_test_images(ctx), "sizes": sizes,
                                  "manifests": ctx.manifests(TABLE3_MODELS)},
              None, "08"),
)}

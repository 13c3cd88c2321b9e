"""Interactive explorers for the notebooks (ipywidgets).

An :class:`~jeat_core.explore.explorer.Explorer` owns its controls, a ``compute(**values) -> dict``
function and a ``draw(result) -> Figure`` function. A change of any control recomputes and redraws;
expensive pieces (models, fitted class Gaussians, attacks of one image) are cached so a slider answers in
about two seconds on a laptop CPU at the default sizes. ``explorer.last`` holds the latest
result, so tests (and curious readers) can inspect what the figure shows.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable

import torch

from jeat_core.core.attacks import pgd
from jeat_core.core.data import CIFAR10_CLASSES
from jeat_core.core.energy import joint_energy, marginal_energy
from jeat_core.core.landscape import SLICE_QUANTITIES, logit_grid, random_directions, slice_values, slice_view
from jeat_core.core.sampling import GenerationConfig, generate, sampler_for, uniform_init
from jeat_core.explore.explorer import (  # noqa: F401  (moved to explorer; re-exported for one release)
    EXTRA_DELAY_S,
    Explorer,
    label_dropdown,
    require,
    torch_threads,
)
from jeat_core.explore.figures import MODEL_LABELS, plot_contours, surface_3d
from jeat_core.explore.plotting import MODEL_COLOURS, image_grid, subplots
from jeat_core.explore.toy_figures import plot_toy2d
from jeat_core.measure.metrics import TrainIndex, nearest_by_ssim
from jeat_core.measure.metrics import robust_accuracy as evaluate
from jeat_core.paper.experiments import chain_diagnostics, describe, fisher_rows, independent_judge
from jeat_core.paper.toy2d import EPS_CHOICES, ETA_CHOICES, SIGMA_CHOICES, TOY_CLASSES, TOY_METHODS


# ----------------------------------------------------------------------------- notebook 00
def toy_explorer(lab, *, method: str = "jeat", eps: float = 0.05, sigma: float = 0.05, label: int = 0,
                 eta: float = 1e-3, steps: int = 100) -> Explorer:
    """Method, ε (training attack), σ (noise), class y, η and Langevin steps for notebook 00's 2-D toy
    task: ``lab`` (a :class:`jeat_core.paper.toy2d.ToyLab`) trains and measures,
    :func:`jeat_core.explore.figures.plot_toy2d` draws. A (method, ε, σ) not trained yet trains once
    (seconds; :meth:`ToyLab.warm` trains them ahead); the class, η and steps reuse the model."""
    import ipywidgets as w  # the notebook stack: only inside a notebook


    wide = {"description_width": "initial"}  # the labels in full ("Langevin steps" is cut at the default width)

    def choice(options, value, description):
        return w.SelectionSlider(options=[(f"{v:g}", v) for v in options], value=value, description=description,
                                 style=wide)

    controls = {"method": w.Dropdown(options=list(TOY_METHODS), value=method, description="method", style=wide),
                "eps": choice(EPS_CHOICES, eps, "ε (attack)"), "sigma": choice(SIGMA_CHOICES, sigma, "σ (noise)"),
                "label": w.Dropdown(options=[(n, i) for i, n in enumerate(TOY_CLASSES)], value=label,
                                    description="class y", style=wide),
                "eta": choice(ETA_CHOICES, eta, "η (Langevin)"),
                "steps": w.IntSlider(steps, 0, 200, step=10, description="Langevin steps", style=wide)}
    return Explorer(controls, lambda **v: lab.view(**v), plot_toy2d, title="The energy view in two dimensions")


# ----------------------------------------------------------------------------- notebook 01
def attack_explorer(model, x, y, *, eps: float = 8 / 255, n_steps: int = 20) -> Explorer:
    """Image picker + ε: CE attack (Eq. 14) vs energy attack (Eq. 18) on one image."""
    import ipywidgets as w  # the notebook stack: only inside a notebook


    @functools.lru_cache(maxsize=64)
    def attacked(i: int, eps255: float):
        xi, yi = x[i:i + 1], y[i:i + 1]
        g = torch.Generator().manual_seed(0)
        res = {"x": xi}
        for obj in ("ce", "energy"):
            res[obj] = pgd(model, xi, yi, eps=eps255 / 255, step_size=max(eps255 / 255 / 4, 1e-6), n_steps=n_steps,
                           objective=obj, generator=g)
        return res

    def compute(index: int, eps255: float) -> dict:
        imgs = attacked(index, round(eps255, 3))
        out = {"index": index, "eps": eps255 / 255, "label": int(y[index]), "images": imgs, "rows": []}
        with torch.no_grad():
            for name, xi in imgs.items():
                lg = model(xi)
                out["rows"].append({"input": name, "E(x,y)": float(joint_energy(lg, y[index:index + 1])),
                                    "E(x)": float(marginal_energy(lg)), "pred": CIFAR10_CLASSES[int(lg.argmax())]})
        return out

    def draw(r: dict):
        fig, axes = subplots(1, 4, figsize=(10, 2.6), gridspec_kw={"width_ratios": [1, 1, 1, 1.6]})
        names = {"x": "clean", "ce": "CE attack (Eq. 14)", "energy": "energy attack (Eq. 18)"}
        for ax, row in zip(axes[:3], r["rows"]):
            ax.imshow(r["images"][row["input"]][0].permute(1, 2, 0).numpy())
            ax.set_title(f"{names[row['input']]}\npred: {row['pred']}", fontsize=8)
            ax.axis("off")
        ax = axes[3]
        xs = range(len(r["rows"]))
        ax.bar([i - 0.2 for i in xs], [row["E(x,y)"] for row in r["rows"]], 0.4, label="E(x, y)", color="#d62728")
        ax.bar([i + 0.2 for i in xs], [row["E(x)"] for row in r["rows"]], 0.4, label="E(x)", color="#1f77b4")
        ax.set_xticks(list(xs), ["clean", "CE", "energy"])
        ax.set_ylabel("energy")
        ax.legend(frameon=False, fontsize=8)
        fig.suptitle(f"true label: {CIFAR10_CLASSES[r['label']]}, ε = {r['eps'] * 255:.1f}/255", fontsize=9)
        fig.tight_layout()
        return fig

    controls = {"index": w.IntSlider(0, 0, len(x) - 1, description="image"),
                "eps255": w.FloatSlider(eps * 255, min=0.0, max=16.0, step=0.5, description="ε × 255")}
    return Explorer(controls, compute, draw, title="CE attack vs energy attack")


# ----------------------------------------------------------------------------- notebook 04
def _tuned(manifest: dict | None, energy: str) -> dict:
    return ((manifest or {}).get("sampler") or {}).get(energy) or {}


ETA_LADDER = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # Langevin step sizes the explorer offers


def _tuned_langevin(manifest: dict | None, energy: str, max_steps: int | None):
    """The model's tuned sampler for ``energy`` (K capped at ``max_steps``), or ``None`` when it has
    none or its best is the L2 step (the generation explorer runs Langevin; that optimum does not transfer)."""
    cfg = sampler_for(manifest, energy, max_steps=max_steps)
    return cfg if _tuned(manifest, energy) and cfg.step == "langevin" else None


def _generation_controls(models: dict, manifests: dict, cfg, label: int, model_description: str,
                         model: str) -> dict:
    """The generation explorer's controls, starting at the sampler ``cfg``; η on a log ladder that
    holds every model's tuned value exactly (a log slider would round 3 to 3.16)."""
    import ipywidgets as w  # the notebook stack: only inside a notebook


    etas = set(ETA_LADDER) | {float(cfg.step_size)}
    for name in models:
        for energy in ("joint", "ce"):
            if _tuned(manifests.get(name), energy):
                etas.add(float(sampler_for(manifests.get(name), energy).step_size))
    return {
        "model": w.Dropdown(options=list(models), value=model, description=model_description),
        "label": label_dropdown(label),
        "step_size": w.SelectionSlider(options=[(f"{v:g}", v) for v in sorted(etas)], value=float(cfg.step_size),
                                       description="η (log)"),
        "steps": w.IntSlider(cfg.n_steps, 0, 200, step=5, description="steps"),
        "noise": w.FloatLogSlider(max(cfg.noise_std, 1e-4), base=10, min=-4, max=-0.5, description="noise s"),
        "seed": w.IntSlider(0, 0, 20, description="seed"),
        "init": w.Dropdown(options=["class_gaussian", "uniform"], description="init"),
        "energy": w.Dropdown(options=[("E(x,y) — Eq. 17", "joint"), ("E(x,y)−E(x) — Eq. 16", "ce")],
                             description="energy"),
    }


def _generation_summary(r: dict) -> list[str]:
    """What a generation explorer's chain did, and p(y | x) from the independent judge."""
    d = r["diag"]
    u = "E(x,y)" if r["energy"] == "joint" else "E(x,y)−E(x)"
    conf = (f"p({CIFAR10_CLASSES[r['label']]} | x) by {r['judge']} (not the generator): "
            f"{float(r['p_label'].mean()):.2f}" if r["p_label"] is not None else "no independent classifier")
    return [f"moved L2 {d['l2']:.2f} from the seed · U = {u}: {d['energy_before']:.3g} → {d['energy_after']:.3g}"
            f" · clipped pixels {d['saturated']:.0%} (seeds {d['saturated_seed']:.0%})", conf]


def _draw_generation(r: dict, n_images: int):
    """Seeds above, generated images below, the sampler in the title and the summary underneath."""
    fig, axes = subplots(2, 1, figsize=(max(n_images * 0.8, 5.5), 3.2))
    axes[0].imshow(image_grid(r["x0"], n_images))
    axes[0].set_title("seeds", fontsize=8, loc="left")
    axes[1].imshow(image_grid(r["x"], n_images))
    eq = "Eq. 17, E(x,y)" if r["energy"] == "joint" else "Eq. 16, E(x,y) − E(x)"
    sampler = "model's tuned sampler" if r["tuned"] else "sampler"
    axes[1].set_title(f"{r['model']} → {CIFAR10_CLASSES[r['label']]} ({eq}; {sampler}: η={r['step_size']:.3g}, "
                      f"{r['steps']} steps, noise {r['noise']:.3g})", fontsize=8, loc="left")
    for ax in axes:
        ax.axis("off")
    fig.text(0.01, 0.02, "\n".join(_generation_summary(r)), fontsize=8, va="bottom")
    if r["diag"]["broken"]:
        fig.text(0.01, 0.98, "⚠ chain broken: " + r["diag"]["reason"], fontsize=7, color="#b00", va="top",
                 wrap=True)
    fig.subplots_adjust(bottom=0.25, top=0.85 if r["diag"]["broken"] else 0.9)
    return fig


def _generation_note(r: dict) -> str:
    """Under the figure only the warning of a broken chain: the summary is in the figure itself (which
    a viewer without widgets sees too), so it is not repeated."""
    if not r["diag"]["broken"]:
        return ""
    return (f"<span style='font-size:90%'><b style='color:#b00'>⚠ chain broken: {r['diag']['reason']}. The "
            "confidence under the images is not evidence of a good sample.</b></span>")


def generation_explorer(models: dict, class_gaussian, *, manifests: dict | None = None, zoo_names: dict | None = None,
                        judge: Callable | None = None, n_images: int = 6, label: int = 8,
                        max_steps: int | None = None, model_description: str = "model",
                        title: str = "Langevin generation", model: str | None = None) -> Explorer:
    """Model, label, step size η (a log ladder plus the tuned values), steps, noise, seed, init and
    energy (Eq. 16 vs Eq. 17).

    ``models`` maps a display name to a classifier (in notebook 05 the names are the training
    noise levels and ``model_description="σ"``); ``zoo_names`` maps a display name to its zoo
    name (default: the same) and ``manifests`` a display name to its manifest. The sampler starts
    from the model's own tuned settings (:func:`jeat_core.core.sampling.sampler_for`) when its manifest
    has them, else from the :class:`jeat_core.core.sampling.GenerationConfig` defaults; changing the
    model or the energy loads that model's tuned settings, if any. ``max_steps`` caps K (smoke
    runs; the figures' ``FigureSizes.max_steps``).

    Each panel reports what the chain did (:func:`jeat_core.paper.experiments.chain_diagnostics`), warns
    when it broke, and reports p(y | x) from a classifier that did **not** generate the images:
    ``judge(zoo_name) -> (name, model)``, by default :func:`jeat_core.paper.experiments.independent_judge`
    (the independent evaluator when shipped). Models whose manifest says ``method: evaluator``
    are never offered as generators.
    """
    manifests = manifests or {}
    zoo_names = {k: (zoo_names or {}).get(k, k) for k in models}
    models = {k: m for k, m in models.items()
              if zoo_names[k] != "evaluator" and (manifests.get(k) or {}).get("method") != "evaluator"}
    if not models:
        raise ValueError("no generating model given (the evaluator only scores)")
    by_zoo = {zoo_names[k]: m for k, m in models.items()}
    judge = judge or (lambda zoo: independent_judge(zoo, by_zoo))
    judges = {}

    def judge_for(name: str):
        if name not in judges:
            judges[name] = judge(zoo_names[name])
        return judges[name]

    @functools.lru_cache(maxsize=64)
    def seeds(lbl: int, init: str, seed: int):
        labels = torch.full((n_images,), lbl)
        g = torch.Generator().manual_seed(seed)
        if init == "class_gaussian":
            return class_gaussian.sample(labels, generator=g)
        return uniform_init(n_images, generator=g)

    @functools.lru_cache(maxsize=64)
    def run(model: str, label: int, eta: float, steps: int, noise: float, seed: int, init: str, energy: str):
        cfg = GenerationConfig(energy=energy, step_size=eta, n_steps=steps, noise_std=noise)  # validates
        x0, labels = seeds(label, init, seed), torch.full((n_images,), label)
        x = generate(models[model], labels, x0, cfg, seed=seed)
        judge_name, judge_model = judge_for(model)
        p = None
        if judge_model is not None:
            with torch.no_grad():
                p = judge_model(x).softmax(1)[:, label]
        return {"x0": x0, "x": x, "diag": chain_diagnostics(models[model], labels, x0, x, energy=energy),
                "p_label": p, "judge": judge_name}

    def compute(model: str, label: int, step_size: float, steps: int, noise: float, seed: int, init: str,
                energy: str) -> dict:
        r = run(model, label, float(step_size), steps, round(noise, 8), seed, init, energy)
        return {**r, "label": label, "step_size": float(step_size), "steps": steps, "noise": noise, "energy": energy,
                "model": model, "tuned": _is_tuned(manifests.get(model), energy, float(step_size), steps, noise)}

    def _is_tuned(manifest, energy, step_size, steps, noise) -> bool:  # do the controls hold the tuned sampler?
        c = _tuned_langevin(manifest, energy, max_steps)
        return c is not None and (abs(c.step_size - step_size) < 1e-9 and c.n_steps == steps
                                  and abs(c.noise_std - noise) < 1e-9)

    def tuned_values(values: dict) -> dict:
        c = _tuned_langevin(manifests.get(values["model"]), values["energy"], max_steps)
        return {} if c is None else {"step_size": c.step_size, "steps": c.n_steps, "noise": c.noise_std}

    first = next(iter(models)) if model is None else model
    if first not in models:
        raise ValueError(f"model {first!r} is not among the generating models: {', '.join(models)}")
    cfg = _tuned_langevin(manifests.get(first), "joint", max_steps) or sampler_for(None, max_steps=max_steps)
    controls = _generation_controls(models, manifests, cfg, label, model_description, first)
    for lbl in range(len(CIFAR10_CLASSES)):  # warm the seed cache: a label change then costs only the chain
        if lbl in getattr(class_gaussian, "classes", range(len(CIFAR10_CLASSES))):
            seeds(lbl, "class_gaussian", 0)
    for name in models:
        judge_for(name)
    return Explorer(controls, compute, lambda r: _draw_generation(r, n_images), title=title, note=_generation_note,
                    links={"model": tuned_values, "energy": tuned_values})


# ----------------------------------------------------------------------------- notebook 02
def landscape_explorer(models: dict, x, y, *, radius: float = 2.0, resolution: int = 13, seed: int = 0,
                       quantity: str = "dlogp", surface: bool = True) -> Explorer:
    """Model, label, colour (Δ log p(y | x') or ΔE(x, y)), image, radius, resolution and direction
    seed for the Fig. 2 contour of one model (:func:`jeat_core.explore.figures.plot_contours`, its own
    colour scale), with (``surface``, a check box) the same slice as a rotatable Plotly 3-D surface
    that follows the controls. The label starts at the image's true class ("true label").

    Cost: a new slice (model, image, radius, resolution or seed) is ``resolution²`` forward passes
    (13² ≈ 0.2-0.3 s on one core); its logits are kept (:func:`jeat_core.core.landscape.logit_grid`, the
    last 64 slices), so the label, the colour and a slice seen before cost only the drawing
    (≈ 0.1 s). The slider stops at 41. The Plotly surface follows the figure (see :class:`Explorer`)."""
    import ipywidgets as w  # the notebook stack: only inside a notebook


    if quantity not in SLICE_QUANTITIES:
        raise ValueError(f"unknown quantity {quantity!r}; choose one of {', '.join(SLICE_QUANTITIES)}")

    @functools.lru_cache(maxsize=32)
    def directions(seed: int):
        return random_directions(tuple(x.shape[-3:]), seed=seed)

    @functools.lru_cache(maxsize=64)
    def logits(model: str, index: int, radius: float, resolution: int, seed: int):
        d1, d2 = directions(seed)
        return logit_grid(models[model], x[index], d1, d2, radius=radius, resolution=resolution)  # (a, b, (R, R, K))

    def compute(model: str, label: int, quantity: str, index: int, radius: float, resolution: int, seed: int,
                surface: bool) -> dict:
        true = int(y[index])
        lbl = true if label < 0 else label
        view = slice_view(*logits(model, index, round(radius, 3), resolution, seed), lbl)
        return {"data": {model: view}, "stats": view["stats"], "label": lbl, "true_label": true, "model": model,
                "index": index, "quantity": quantity, "radius": round(radius, 3), "seed": seed, "surface": surface}

    def draw(r: dict):
        name = CIFAR10_CLASSES[r["label"]]
        which = "true label" if r["label"] == r["true_label"] else f"true: {CIFAR10_CLASSES[r['true_label']]}"
        return plot_contours(r["data"], quantity=r["quantity"], fast=True,
                             title=f"test image {r['index']} ({CIFAR10_CLASSES[r['true_label']]}), label y = {name} "
                                   f"({which})\ntwo random directions (seed {r['seed']}), L2 radius {r['radius']:g}")

    def note(r: dict) -> str:
        s = r["stats"]
        return ("<span style='font-size:90%'>"
                f"p(y | x) at the image: {s['p_center']:.2f} · mean |Δ log p(y | x′)| over the slice: "
                f"{s['flatness_dlogp']:.3g} (the audit's flatness, one image) · mean |ΔE(x, y)| within the radius: "
                f"{s['flatness']:.3g} · {s['center_rank']:.0%} of the slice has a lower E(x, y) than the image"
                f"{' (the image is the slice minimum)' if s['center_is_min'] else ''}</span>")

    def extra(r: dict) -> dict | None:
        if not r["surface"]:
            return None
        d = r["data"][r["model"]]
        fig = surface_3d(d["a"], d["b"], slice_values(d, r["quantity"]), model=MODEL_LABELS.get(r["model"], r["model"]),
                         zlabel=SLICE_QUANTITIES[r["quantity"]], quantity=r["quantity"],
                         title=f"test image {r['index']} ({CIFAR10_CLASSES[r['true_label']]}), "
                               f"y = {CIFAR10_CLASSES[r['label']]}")
        return {"application/vnd.plotly.v1+json": json.loads(fig.to_json()),
                "text/plain": f"[3-D surface: {r['model']}, test image {r['index']}]"}

    wide = {"description_width": "initial"}
    controls = {
        "model": w.Dropdown(options=list(models), description="model"),
        "label": w.Dropdown(options=[("true label", -1)] + [(n, i) for i, n in enumerate(CIFAR10_CLASSES)],
                            value=-1, description="label y"),
        "quantity": w.Dropdown(options=[("Δ log p(y | x′)", "dlogp"), ("ΔE(x, y)", "energy")], value=quantity,
                               description="colour"),
        "index": w.IntSlider(0, 0, len(x) - 1, description="image"),
        "radius": w.FloatSlider(radius, min=0.25, max=8.0, step=0.25, description="radius (L2)"),
        "resolution": w.IntSlider(resolution, 9, 41, step=4, description="resolution"),
        "seed": w.IntSlider(seed, 0, 20, description="direction seed", style=wide),
        "surface": w.Checkbox(surface, description="3-D surface (follows the figure)", indent=False),
    }
    with torch_threads(1):  # warm the cache: switching the model at the default settings is then instant
        for name in models:
            logits(name, 0, round(radius, 3), resolution, seed)
    return Explorer(controls, compute, draw, title="Energy landscape (Fig. 2)", note=note, extra=extra)


# ----------------------------------------------------------------------------- notebook 07
def fisher_explorer(models: dict, x, y, *, n_probes: int = 2, n_images: int = 8, max_images: int = 64) -> Explorer:
    """Number of Hutchinson probes and of test images for Tab. 2 (JFS, Eq. 23; MFS, Eq. 24)."""
    import ipywidgets as w  # the notebook stack: only inside a notebook


    @functools.lru_cache(maxsize=32)
    def rows(n_probes: int, n_images: int):  # Tab. 2's rows (as figures.table2_fisher_rows labels them)
        out = fisher_rows(models, x[:n_images], y[:n_images], n_probes=n_probes, batch=100, seed=0)
        return [{**r, "model": MODEL_LABELS.get(r["model"], r["model"])} for r in out]

    def compute(n_probes: int, n_images: int) -> dict:
        return {"rows": rows(n_probes, n_images), "n_probes": n_probes, "n_images": n_images}

    def draw(r: dict):
        names = list(models)
        labels = [MODEL_LABELS.get(n, n) for n in names]
        colours = [MODEL_COLOURS.get(n, "#555555") for n in names]
        fig, axes = subplots(2, 2, figsize=(8, 4.6), sharex=True)
        for col, (key, eq) in enumerate([("JFS", "Eq. 23, E(x, y)"), ("MFS", "Eq. 24, E(x)")]):
            for row, (suffix, what) in enumerate([("", "as written (Hutchinson; probe noise)"),
                                                  ("_pl", "piecewise-linear (exact; lower = flatter)")]):
                ax = axes[row, col]
                vals = [rr[key + suffix] for rr in r["rows"]]
                ses = [rr[key + suffix + "_se"] for rr in r["rows"]]
                ax.bar(labels, vals, color=colours, capsize=2, yerr=ses)
                ax.set_yscale("symlog", linthresh=1e-2)
                ax.set_yticks(symlog_ticks([v + d for v, e in zip(vals, ses) for d in (-e, e)], 1e-2))
                ax.axhline(0, color="k", lw=0.5)
                ax.set_title(f"{key} ({eq}), {what}", fontsize=8)
        probes = f"{r['n_probes']} Hutchinson probe{'s' if r['n_probes'] > 1 else ''}"
        fig.suptitle(f"{r['n_images']} test images, {probes}; bars ± 1 SE over images", fontsize=9)
        fig.tight_layout()
        return fig

    controls = {"n_probes": w.IntSlider(n_probes, 1, 16, description="probes"),
                "n_images": w.IntSlider(min(n_images, len(x)), 2, min(max_images, len(x)), description="images")}
    return Explorer(controls, compute, draw, title="Fisher scores (Tab. 2)")


# ----------------------------------------------------------------------------- notebook 08
def symlog_ticks(values, linthresh: float, most: int = 7) -> list[float]:
    """Ticks for a symlog axis over ``values``: 0 and signed decades from ``linthresh`` up, every
    second (third, ...) decade when more than ``most`` ticks would crowd the axis."""
    def decades(top: float) -> list[int]:
        return list(range(round(math.log10(linthresh)), math.floor(math.log10(top)) + 1)) if top > linthresh else []

    pos = decades(max([v for v in values if v > 0], default=0))
    neg = decades(max([-v for v in values if v < 0], default=0))
    step = 1
    while (len(pos[::step]) + len(neg[::step]) + 1) > most:
        step += 1
    return sorted([0.0, *(10.0 ** k for k in pos[::-1][::step]), *(-(10.0 ** k) for k in neg[::-1][::step])])


def robustness_explorer(models: dict, x, y, *, eps255: float = 8.0, steps: int = 10) -> Explorer:
    """ε and number of PGD steps (L-inf, step ε/4, random start) for Tab. 3 on ``len(x)`` images."""
    import ipywidgets as w  # the notebook stack: only inside a notebook


    @functools.lru_cache(maxsize=64)
    def result(name: str, eps255: float, steps: int):
        return evaluate(models[name], x, y, attack=f"pgd{steps}", eps=eps255 / 255,
                        step_size=max(eps255 / 255 / 4, 1e-6))

    def compute(eps255: float, steps: int) -> dict:
        eps255 = round(eps255, 3)
        return {"eps255": eps255, "steps": steps, "rows": {n: result(n, eps255, steps) for n in models}}

    def draw(r: dict):
        names = list(r["rows"])
        fig, ax = subplots(figsize=(1.3 * len(names) + 2, 3.2))
        xs = range(len(names))
        colours = [MODEL_COLOURS.get(n, "#555555") for n in names]
        clean = [100 * r["rows"][n]["clean_acc"] for n in names]
        robust = [100 * r["rows"][n]["robust_acc"] for n in names]
        # clean: a light bar outlined in the model's colour; attacked: the model's colour, outlined in
        # black (so the palest colour, σ = 8/255's, still shows)
        ax.bar([i - 0.2 for i in xs], clean, 0.4, color="#eeeeee", edgecolor=colours, linewidth=1.5, label="clean")
        ax.bar([i + 0.2 for i in xs], robust, 0.4, color=colours, edgecolor="black", linewidth=0.5,
               label=f"PGD-{r['steps']}")
        for i, (c, a) in enumerate(zip(clean, robust)):
            ax.text(i - 0.2, c + 1.5, f"{c:.0f}", ha="center", fontsize=8)
            ax.text(i + 0.2, a + 1.5, f"{a:.0f}", ha="center", fontsize=8)
        ax.set_xticks(list(xs), [MODEL_LABELS.get(n, n) for n in names], fontsize=9)
        ax.set_ylabel("accuracy (%)", fontsize=10)
        ax.set_ylim(0, 112)  # room above a 100% bar for its number
        ax.set_yticks(range(0, 101, 20))
        ax.legend(frameon=False, fontsize=9, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside, never on a bar
        ax.set_title(f"L∞ ε = {r['eps255']:.1f}/255, PGD-{r['steps']} (step ε/4, random start), n = {len(x)} "
                     "test images", fontsize=10)
        fig.tight_layout()
        return fig

    controls = {"eps255": w.FloatSlider(eps255, min=1.0, max=16.0, step=1.0, description="ε × 255"),
                "steps": w.IntSlider(steps, 1, 40, description="PGD steps")}
    return Explorer(controls, compute, draw, title="Robustness (Tab. 3)")


# ----------------------------------------------------------------------------- notebook 09
def memorisation_explorer(models: dict, class_gaussian, train_x, *, manifests: dict | None = None, label: int = 8,
                          max_steps: int | None = None, k: int = 5) -> Explorer:
    """Model and label: one generated image and its ``k`` SSIM-nearest training images (Fig. 7).

    Each model generates with its own tuned sampler, as Fig. 7 does
    (:func:`jeat_core.paper.paper_items.fig7_rows`): ``manifests[name]["sampler"]["joint"]`` read by
    :func:`jeat_core.core.sampling.sampler_for` (the :class:`GenerationConfig` defaults without one),
    K capped at ``max_steps`` like the figure's ``FigureSizes.max_steps``; the figure names it.
    The search covers every image of ``train_x`` (``(N, H, W, C)`` uint8 or a prepared
    :class:`jeat_core.measure.metrics.TrainIndex`; an L2 prefilter picks 256 candidates per query among
    all of them, then SSIM ranks those; see :func:`jeat_core.measure.metrics.nearest_by_ssim`)."""
    import ipywidgets as w  # the notebook stack: only inside a notebook


    index = train_x if isinstance(train_x, TrainIndex) else TrainIndex(train_x)

    @functools.lru_cache(maxsize=64)
    def result(model: str, label: int, seed: int):
        labels = torch.tensor([label])
        x0 = class_gaussian.sample(labels, generator=torch.Generator().manual_seed(seed))
        cfg = sampler_for((manifests or {}).get(model), "joint", max_steps=max_steps)
        xg = generate(models[model], labels, x0, cfg, seed=seed)
        idx, sim = nearest_by_ssim(xg, index, k=k)
        near = torch.from_numpy(index.images[idx[0].numpy()]).permute(0, 3, 1, 2).float().div(255)
        return {"x": xg, "near": near, "idx": idx[0], "ssim": sim[0], "sampler": describe(cfg),
                "diag": chain_diagnostics(models[model], labels, x0, xg)}

    def compute(model: str, label: int, seed: int) -> dict:
        return {"model": model, "label": label, "seed": seed, **result(model, label, seed)}

    def draw(r: dict):

        # the generated image set apart from its neighbours (a wider slot, so a wider gap, and a red frame)
        fig, axes = subplots(1, k + 1, figsize=(1.3 * (k + 1) + 0.3, 2.1),
                             gridspec_kw={"width_ratios": [1.25] + [1] * k, "wspace": 0.08})
        axes[0].imshow(r["x"][0].permute(1, 2, 0).numpy())
        axes[0].set_title(f"generated\n({r['model']}, {CIFAR10_CLASSES[r['label']]})", fontsize=7)
        for j in range(k):
            axes[j + 1].imshow(r["near"][j].permute(1, 2, 0).numpy())
            axes[j + 1].set_title(f"train #{int(r['idx'][j])}\nSSIM {float(r['ssim'][j]):.2f}", fontsize=7)
        for ax in axes[1:]:
            ax.axis("off")
        axes[0].set_xticks([])
        axes[0].set_yticks([])
        for spine in axes[0].spines.values():
            spine.set_edgecolor("#d62728")
            spine.set_linewidth(2)
        d = r["diag"]
        fig.text(0.01, 0.01, f"chain ({r['sampler']}): moved L2 {d['l2']:.2f} from the seed, E(x,y) "
                             f"{d['energy_before']:.3g} → {d['energy_after']:.3g}, clipped pixels {d['saturated']:.0%}"
                             + (f" — ⚠ chain broken: {d['reason']}" if d["broken"] else ""),
                 fontsize=7, color="#b00" if d["broken"] else "black")
        fig.subplots_adjust(bottom=0.15)
        return fig

    controls = {"model": w.Dropdown(options=list(models), description="model"), "label": label_dropdown(label),
                "seed": w.IntSlider(0, 0, 20, description="seed")}
    return Explorer(controls, compute, draw, title=f"Nearest training images by SSIM (of {len(index):,})")

"""Interactive explorers for the notebooks (ipywidgets).

An :class:`Explorer` owns its controls, a ``compute(**values) -> dict`` function and a
``draw(result) -> Figure`` function. A change of any control recomputes and redraws; expensive
pieces (models, fitted class Gaussians, attacks of one image) are cached so a slider answers in
about two seconds on a laptop CPU at the default sizes. ``explorer.last`` holds the latest
result, so tests (and curious readers) can inspect what the figure shows.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch

from .data import CIFAR10_CLASSES


class Explorer:
    def __init__(self, controls: dict, compute: Callable[..., dict], draw: Callable[[dict], object], *,
                 title: str = ""):
        import ipywidgets as w

        self.controls, self.compute, self.draw, self.title = controls, compute, draw, title
        self.png: bytes | None = None
        self.out = w.Output()
        self.status = w.HTML("")
        self.last: dict | None = None
        for c in controls.values():
            if hasattr(c, "continuous_update"):
                c.continuous_update = False  # recompute when a slider is released, not at every pixel
            c.observe(lambda _change: self.refresh(), names="value")
        header = [w.HTML(f"<b>{title}</b>")] if title else []
        boxes = [w.HBox(list(controls.values())[i:i + 3]) for i in range(0, len(controls), 3)]
        self.widget = w.VBox(header + boxes + [self.status, self.out])
        self.refresh()

    def values(self) -> dict:
        return {k: c.value for k, c in self.controls.items()}

    def refresh(self) -> dict:
        """Recompute with the controls' values and show the new figure.

        The figure is rendered to PNG here and written into the output widget's ``outputs`` in
        one update (no flicker; no reliance on output capture, which headless runners such as
        nbclient handle poorly). A ``ValueError`` from ``compute`` is shown as a message and the
        previous figure stays."""
        import base64
        import io

        self.status.value = "<i>computing…</i>"
        try:
            self.last = self.compute(**self.values())
            fig = self.draw(self.last)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
            self.png = buf.getvalue()
            self.out.outputs = ({"output_type": "display_data", "metadata": {},
                                 "data": {"image/png": base64.b64encode(self.png).decode("ascii"),
                                          "text/plain": f"<figure: {self.title or 'explorer'}>"}},)
            self.status.value = ""
        except ValueError as e:  # bad combination of settings: say so, keep the old figure
            self.status.value = f"<span style='color:#b00'>{e}</span>"
        return self.last

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def label_dropdown(value: int = 8, description: str = "label"):
    import ipywidgets as w

    return w.Dropdown(options=[(n, i) for i, n in enumerate(CIFAR10_CLASSES)], value=value, description=description)


# ----------------------------------------------------------------------------- notebook 01
def attack_explorer(model, x, y, *, eps: float = 8 / 255, n_steps: int = 20) -> Explorer:
    """Image picker + ε: CE attack (Eq. 14) vs energy attack (Eq. 18) on one image."""
    import ipywidgets as w

    from .attacks import pgd
    from .energy import joint_energy, marginal_energy

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
        from .figures import subplots

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
def generation_explorer(models: dict, class_gaussian, *, n_images: int = 8, label: int = 8,
                        step_size: float = 0.25, steps: int = 40, noise: float = 0.001,
                        model_description: str = "model", title: str = "Langevin generation") -> Explorer:
    """Model, label, step size (log), steps, noise, seed, init and energy (Eq. 16 vs Eq. 17).

    ``models`` maps a display name to a classifier; in notebook 05 the names are the training
    noise levels and ``model_description="σ"``."""
    import ipywidgets as w

    from .figures import generate, image_grid
    from .sampling import uniform_init

    @functools.lru_cache(maxsize=32)
    def seeds(lbl: int, init: str, seed: int):
        labels = torch.full((n_images,), lbl)
        g = torch.Generator().manual_seed(seed)
        if init == "class_gaussian":
            return class_gaussian.sample(labels, generator=g)
        return uniform_init(n_images, generator=g)

    def compute(model: str, label: int, log10_step: float, steps: int, noise: float, seed: int, init: str,
                energy: str) -> dict:
        x0 = seeds(label, init, seed)
        eta = 10 ** log10_step
        labels = torch.full((n_images,), label)
        x, chain = generate(models[model], labels, x0, energy=energy, step_size=eta, n_steps=steps,
                            noise_std=noise, seed=seed, record_every=max(1, steps // 4) if steps else None) \
            if steps else (x0, x0[None])
        with torch.no_grad():
            p = models[model](x).softmax(1)[:, label]
        return {"x0": x0, "x": x, "chain": chain, "p_label": p, "label": label, "step_size": eta, "steps": steps,
                "noise": noise, "energy": energy, "model": model}

    def draw(r: dict):
        from .figures import subplots

        fig, axes = subplots(2, 1, figsize=(n_images * 0.75, 2.4))
        axes[0].imshow(image_grid(r["x0"], n_images))
        axes[0].set_title("seeds", fontsize=8, loc="left")
        axes[1].imshow(image_grid(r["x"], n_images))
        eq = "Eq. 17, E(x,y)" if r["energy"] == "joint" else "Eq. 16, E(x,y) − E(x)"
        p = float(r["p_label"].mean())
        axes[1].set_title(f"{r['model']} → {CIFAR10_CLASSES[r['label']]} ({eq}; η={r['step_size']:.3g}, "
                          f"{r['steps']} steps, noise {r['noise']:.3g}); mean p(y|x) = {p:.2f}", fontsize=8, loc="left")
        for ax in axes:
            ax.axis("off")
        fig.tight_layout()
        return fig

    controls = {
        "model": w.Dropdown(options=list(models), description=model_description),
        "label": label_dropdown(label),
        "log10_step": w.FloatSlider(math.log10(step_size), min=-3, max=1, step=0.1, description="log₁₀ η",
                                    readout_format=".1f"),
        "steps": w.IntSlider(steps, 0, 200, step=10, description="steps"),
        "noise": w.FloatLogSlider(noise, base=10, min=-4, max=-0.5, description="noise s"),
        "seed": w.IntSlider(0, 0, 20, description="seed"),
        "init": w.Dropdown(options=["class_gaussian", "uniform"], description="init"),
        "energy": w.Dropdown(options=[("E(x,y) — Eq. 17", "joint"), ("E(x,y)−E(x) — Eq. 16", "ce")],
                             description="energy"),
    }
    return Explorer(controls, compute, draw, title=title)


# ----------------------------------------------------------------------------- notebook 02
def landscape_explorer(models: dict, x, y, *, radius: float = 2.0, resolution: int = 21, seed: int = 0) -> Explorer:
    """Model, image, radius, resolution and direction seed for the Fig. 2 contour of E(x, y)."""
    import ipywidgets as w

    from .figures import contour_data, plot_contours

    @functools.lru_cache(maxsize=64)
    def grid(model: str, index: int, radius: float, resolution: int, seed: int):
        return contour_data({model: models[model]}, x[index], int(y[index]), radius=radius, resolution=resolution,
                            seed=seed)

    def compute(model: str, index: int, radius: float, resolution: int, seed: int) -> dict:
        d = grid(model, index, round(radius, 3), resolution, seed)
        return {"data": d, "stats": d[model]["stats"], "label": int(y[index]), "model": model}

    def draw(r: dict):
        return plot_contours(r["data"], title=f"E(x, y = {CIFAR10_CLASSES[r['label']]}) along two random directions")

    controls = {
        "model": w.Dropdown(options=list(models), description="model"),
        "index": w.IntSlider(0, 0, len(x) - 1, description="image"),
        "radius": w.FloatSlider(radius, min=0.25, max=8.0, step=0.25, description="radius (L2)"),
        "resolution": w.IntSlider(resolution, 9, 61, step=4, description="resolution"),
        "seed": w.IntSlider(seed, 0, 20, description="direction seed"),
    }
    return Explorer(controls, compute, draw, title="Energy landscape (Fig. 2)")


def surface_3d(a, b, grid, *, title: str = ""):
    """Plotly 3-D surface of an energy grid (for the notebooks)."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Surface(x=b.numpy(), y=a.numpy(), z=grid.numpy(), colorscale="Viridis",
                               colorbar={"title": "E(x, y)"}))
    fig.update_layout(title=title, height=480, scene={"xaxis_title": "direction 2", "yaxis_title": "direction 1",
                                                      "zaxis_title": "E(x, y)"})
    return fig


# ----------------------------------------------------------------------------- notebook 07
def fisher_explorer(models: dict, x, y, *, n_probes: int = 2, n_images: int = 8, max_images: int = 64) -> Explorer:
    """Number of Hutchinson probes and of test images for Tab. 2 (JFS, Eq. 23; MFS, Eq. 24)."""
    import ipywidgets as w

    from .figures import MODEL_COLOURS, MODEL_LABELS, table2_fisher_rows

    @functools.lru_cache(maxsize=32)
    def rows(n_probes: int, n_images: int):
        return table2_fisher_rows(models, x[:n_images], y[:n_images], n_probes=n_probes)

    def compute(n_probes: int, n_images: int) -> dict:
        return {"rows": rows(n_probes, n_images), "n_probes": n_probes, "n_images": n_images}

    def draw(r: dict):
        from .figures import subplots

        names = list(models)
        fig, axes = subplots(1, 2, figsize=(8, 2.8))
        for ax, key, eq in [(axes[0], "JFS", "Eq. 23, E(x, y)"), (axes[1], "MFS", "Eq. 24, E(x)")]:
            vals = [row[key] for row in r["rows"]]
            ax.bar([MODEL_LABELS.get(n, n) for n in names], vals,
                   color=[MODEL_COLOURS.get(n, "#555555") for n in names])
            ax.set_yscale("symlog")
            ax.set_ylabel(f"{key} (lower is better)")
            ax.set_title(f"{key} ({eq})")
        fig.suptitle(f"{r['n_images']} test images, {r['n_probes']} Hutchinson probes", fontsize=9)
        fig.tight_layout()
        return fig

    controls = {"n_probes": w.IntSlider(n_probes, 1, 16, description="probes"),
                "n_images": w.IntSlider(min(n_images, len(x)), 2, min(max_images, len(x)), description="images")}
    return Explorer(controls, compute, draw, title="Fisher scores (Tab. 2)")


# ----------------------------------------------------------------------------- notebook 08
def robustness_explorer(models: dict, x, y, *, eps255: float = 8.0, steps: int = 10) -> Explorer:
    """ε and number of PGD steps (L-inf, step ε/4, random start) for Tab. 3 on ``len(x)`` images."""
    import ipywidgets as w

    from .cli import evaluate
    from .figures import MODEL_COLOURS, MODEL_LABELS

    @functools.lru_cache(maxsize=64)
    def result(name: str, eps255: float, steps: int):
        return evaluate(models[name], x, y, attack="pgd20", eps=eps255 / 255, step_size=max(eps255 / 255 / 4, 1e-6),
                        n_steps=steps)

    def compute(eps255: float, steps: int) -> dict:
        eps255 = round(eps255, 3)
        return {"eps255": eps255, "steps": steps, "rows": {n: result(n, eps255, steps) for n in models}}

    def draw(r: dict):
        from .figures import subplots

        names = list(r["rows"])
        fig, ax = subplots(figsize=(1.3 * len(names) + 2, 2.8))
        xs = range(len(names))
        colours = [MODEL_COLOURS.get(n, "#555555") for n in names]
        ax.bar([i - 0.2 for i in xs], [100 * r["rows"][n]["clean_acc"] for n in names], 0.4, color=colours,
               alpha=0.45, label="clean")
        ax.bar([i + 0.2 for i in xs], [100 * r["rows"][n]["robust_acc"] for n in names], 0.4, color=colours,
               label=f"PGD-{r['steps']}")
        ax.set_xticks(list(xs), [MODEL_LABELS.get(n, n) for n in names])
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.legend(frameon=False, fontsize=8)
        ax.set_title(f"L∞ ε = {r['eps255']:.1f}/255, {r['steps']} steps, n = {len(x)}", fontsize=9)
        fig.tight_layout()
        return fig

    controls = {"eps255": w.FloatSlider(eps255, min=1.0, max=16.0, step=1.0, description="ε × 255"),
                "steps": w.IntSlider(steps, 1, 40, description="PGD steps")}
    return Explorer(controls, compute, draw, title="Robustness (Tab. 3)")


# ----------------------------------------------------------------------------- notebook 09
def memorisation_explorer(models: dict, class_gaussian, train_x, *, label: int = 8, steps: int = 40,
                          step_size: float = 0.25, noise: float = 0.001, k: int = 5) -> Explorer:
    """Model and label: one generated image and its ``k`` SSIM-nearest training images (Fig. 7).

    The search covers every image of ``train_x`` (an L2 prefilter picks 256 candidates per query
    among all of them, then SSIM ranks those; see :func:`jeat_core.figures.nearest_by_ssim`)."""
    import ipywidgets as w

    from .figures import generate, nearest_by_ssim

    @functools.lru_cache(maxsize=64)
    def result(model: str, label: int, seed: int):
        labels = torch.tensor([label])
        x0 = class_gaussian.sample(labels, generator=torch.Generator().manual_seed(seed))
        xg = generate(models[model], labels, x0, step_size=step_size, n_steps=steps, noise_std=noise, seed=seed)
        idx, sim = nearest_by_ssim(xg, train_x, k=k)
        near = torch.from_numpy(train_x[idx[0].numpy()]).permute(0, 3, 1, 2).float().div(255)
        return {"x": xg, "near": near, "idx": idx[0], "ssim": sim[0]}

    def compute(model: str, label: int, seed: int) -> dict:
        return {"model": model, "label": label, "seed": seed, **result(model, label, seed)}

    def draw(r: dict):
        from .figures import subplots

        fig, axes = subplots(1, k + 1, figsize=(1.3 * (k + 1), 1.9))
        axes[0].imshow(r["x"][0].permute(1, 2, 0).numpy())
        axes[0].set_title(f"generated\n({r['model']}, {CIFAR10_CLASSES[r['label']]})", fontsize=7)
        for j in range(k):
            axes[j + 1].imshow(r["near"][j].permute(1, 2, 0).numpy())
            axes[j + 1].set_title(f"train #{int(r['idx'][j])}\nSSIM {float(r['ssim'][j]):.2f}", fontsize=7)
        for ax in axes:
            ax.axis("off")
        fig.tight_layout()
        return fig

    controls = {"model": w.Dropdown(options=list(models), description="model"), "label": label_dropdown(label),
                "seed": w.IntSlider(0, 0, 20, description="seed")}
    return Explorer(controls, compute, draw, title=f"Nearest training images by SSIM (of {len(train_x):,})")

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

        self.controls, self.compute, self.draw = controls, compute, draw
        self.out = w.Output()
        self.status = w.HTML("")
        self.last: dict | None = None
        for c in controls.values():
            c.observe(lambda _change: self.refresh(), names="value")
        header = [w.HTML(f"<b>{title}</b>")] if title else []
        boxes = [w.HBox(list(controls.values())[i:i + 3]) for i in range(0, len(controls), 3)]
        self.widget = w.VBox(header + boxes + [self.status, self.out])
        self.refresh()

    def values(self) -> dict:
        return {k: c.value for k, c in self.controls.items()}

    def refresh(self) -> dict:
        import matplotlib.pyplot as plt
        from IPython.display import clear_output, display

        self.status.value = "<i>computing…</i>"
        try:
            self.last = self.compute(**self.values())
            fig = self.draw(self.last)
            with self.out:
                clear_output(wait=True)
                display(fig)
            plt.close(fig)
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
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 4, figsize=(10, 2.6), gridspec_kw={"width_ratios": [1, 1, 1, 1.6]})
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
                        step_size: float = 0.25, steps: int = 40, noise: float = 0.001) -> Explorer:
    """Model, label, step size (log), steps, noise, seed, init and energy (Eq. 16 vs Eq. 17)."""
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
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, 1, figsize=(n_images * 0.75, 2.4))
        axes[0].imshow(image_grid(r["x0"], n_images))
        axes[0].set_title("seeds", fontsize=8, loc="left")
        axes[1].imshow(image_grid(r["x"], n_images))
        eq = "Eq. 17, E(x,y)" if r["energy"] == "joint" else "Eq. 16, E(x,y) − E(x)"
        p = float(r["p_label"].mean())
        p = float(r["p_label"].mean())
        axes[1].set_title(f"{r['model']} → {CIFAR10_CLASSES[r['label']]} ({eq}; η={r['step_size']:.3g}, "
                          f"{r['steps']} steps, noise {r['noise']:.3g}); mean p(y|x) = {p:.2f}", fontsize=8, loc="left")
        for ax in axes:
            ax.axis("off")
        fig.tight_layout()
        return fig

    controls = {
        "model": w.Dropdown(options=list(models), description="model"),
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
    return Explorer(controls, compute, draw, title="Langevin generation")


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

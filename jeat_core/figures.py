"""Paper figures and tables as functions shared by the notebooks and ``jeat figures``.

Each ``*_data`` function computes numbers (tensors / dicts) from models; each ``plot_*`` function
turns them into a matplotlib figure. ``save_figure`` writes ``.pdf`` (vector) and ``.png``;
``save_table`` writes ``.md`` and ``.json``. Model colours are fixed across figures
(:data:`MODEL_COLOURS`) and classes are shown by name.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .experiments import (  # noqa: F401  (computed there; re-exported for the notebooks)
    SATURATED_BROKEN,
    chain_diagnostics,
    contour_data,
    independent_judge,
    read_energy_log,
)
from .experiments import generate_images as generate  # noqa: F401  (re-exported)
from .sampling import ClassGaussian

MODEL_COLOURS = {"standard": "#7f7f7f", "noise-8": "#c7e9c0", "noise-16": "#74c476", "noise-24": "#238b45",
                 "at": "#1f77b4", "prejeat": "#ff7f0e", "jem": "#9467bd", "jeat": "#d62728"}
MODEL_LABELS = {"standard": "Normal", "at": "AT", "prejeat": "PreJEAT", "jeat": "JEAT", "jem": "JEM",
                "noise-8": "σ = 8/255", "noise-16": "σ = 16/255", "noise-24": "σ = 24/255"}


def _figure_class():
    """A matplotlib ``Figure`` that shows itself as a PNG in Jupyter (``_repr_png_``).

    Built on first use so importing :mod:`jeat_core.figures` does not import matplotlib. No
    pyplot and no inline backend are involved: the figure renders the same way in JupyterLab,
    in a headless ``nbclient`` run and in ``jeat figures`` (which saves it with
    :func:`save_figure`)."""
    global _FIGURE_CLASS
    if _FIGURE_CLASS is None:
        from matplotlib.figure import Figure

        class JeatFigure(Figure):
            def _repr_png_(self) -> bytes:
                return figure_png(self)

            def __repr__(self) -> str:  # a description instead of "<Figure size 649x448.8 with 4 Axes>"
                titles = [t for t in [self._suptitle.get_text() if self._suptitle else ""]
                          + [ax.get_title() or ax.get_title(loc="left") for ax in self.axes] if t]
                return f"[figure: {'; '.join(titles)[:200] or 'untitled'}]"

        _FIGURE_CLASS = JeatFigure
    return _FIGURE_CLASS


_FIGURE_CLASS = None


def subplots(*args, **kwargs):
    """``Figure`` + axes like ``plt.subplots``, but *not* registered with pyplot: nothing
    accumulates in pyplot's figure list when explorers redraw, and a notebook shows the figure
    once, as a PNG, when it is a cell's value (see :func:`_figure_class`). Style: 9-pt fonts."""
    import matplotlib as mpl

    with mpl.rc_context({"font.size": 9, "axes.titlesize": 10}):
        fig = _figure_class()(figsize=kwargs.pop("figsize", None), dpi=110, layout=kwargs.pop("layout", None))
        axes = fig.subplots(*args, **kwargs)
    return fig, axes


def figure_png(fig, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (tight bounding box): what notebooks and explorers display."""
    import io

    buf = io.BytesIO()
    # a figure with a layout engine (constrained) already fits its canvas; "tight" would draw it twice
    tight = None if fig.get_layout_engine() is not None else "tight"
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches=tight)
    return buf.getvalue()


def save_figure(fig, out_dir: str | Path, name: str) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.pdf", out / f"{name}.png"]
    fig.savefig(paths[0], bbox_inches="tight")
    fig.savefig(paths[1], dpi=150, bbox_inches="tight")
    return paths


def save_table(rows: list[dict], out_dir: str | Path, name: str, *, title: str = "", notes: str = "") -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = [f"# {title}\n" if title else "", table_markdown(rows)]
    if notes:
        md.append("\n" + notes)
    (out / f"{name}.md").write_text("\n".join(md).lstrip() + "\n")
    (out / f"{name}.json").write_text(json.dumps({"title": title, "rows": rows, "notes": notes}, indent=2) + "\n")
    return [out / f"{name}.md", out / f"{name}.json"]


def table_markdown(rows: list[dict], formats: dict | None = None) -> str:
    """A Markdown table of ``rows`` (dicts with the same keys). ``formats`` maps a column to a
    format string (e.g. ``{"accuracy": "{:.1%}"}``); other floats get 4 significant digits.
    In a notebook use :class:`Table`, which displays as a table."""
    cols = list(rows[0]) if rows else []
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(_fmt(r[c], (formats or {}).get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(md)


def _fmt(v, fmt: str | None = None) -> str:
    if fmt is not None and isinstance(v, (int, float)):
        return fmt.format(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)) and v and all(isinstance(e, float) for e in v):
        return "[" + ", ".join(f"{e:.3g}" for e in v) + "]"
    return str(v)


class Table:
    """Rows shown as a table in Jupyter (Markdown) and as Markdown text elsewhere.

    ``Table(rows, formats={"accuracy": "{:.1%}"}, title="Tab. 1")``; ``rows`` is a list of dicts
    with the same keys (the same rows :func:`save_table` writes)."""

    def __init__(self, rows: list[dict], *, formats: dict | None = None, title: str = ""):
        self.rows, self.formats, self.title = rows, formats or {}, title

    def markdown(self) -> str:
        head = f"**{self.title}**\n\n" if self.title else ""
        return head + table_markdown(self.rows, self.formats)

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def __repr__(self) -> str:
        return self.markdown()


def image_grid(x: Tensor, nrow: int) -> np.ndarray:
    """``(N, C, H, W)`` in [0, 1] -> one ``(H', W', C)`` array with 1-pixel white gutters."""
    n, c, h, w = x.shape
    ncol = nrow
    rows = (n + ncol - 1) // ncol
    grid = np.ones((rows * (h + 1) - 1, ncol * (w + 1) - 1, c), dtype=np.float32)
    for i in range(n):
        r, k = divmod(i, ncol)
        grid[r * (h + 1):r * (h + 1) + h, k * (w + 1):k * (w + 1) + w] = x[i].permute(1, 2, 0).cpu().numpy()
    return grid


# ----------------------------------------------------------------------------- Fig. 2
def plot_contours(data: dict, *, title: str = ""):
    """Fig. 2 panels on **one** colour scale, so flatness can be compared by eye.

    Each panel shows ``E(x + a d1 + b d2, y) − E(x, y)``: the energy relative to its value at the
    image (the star), because absolute energies of different models differ by an offset that says
    nothing about flatness. The colour scale is symmetric around 0 and shared by all panels
    (one colour bar)."""
    from matplotlib.colors import Normalize
    from matplotlib.ticker import MaxNLocator

    names = list(data)
    rel = {n: _relative_grid(data[n]) for n in names}
    vmax = max(float(np.abs(g).max()) for g in rel.values()) or 1.0
    norm = Normalize(-vmax, vmax)
    levels = np.linspace(-vmax, vmax, 21)
    fig, axes = subplots(1, len(names), figsize=(2.7 * len(names) + 0.9, 2.9), squeeze=False, layout="constrained")
    for ax, name in zip(axes[0], names):
        d = data[name]
        cs = ax.contourf(d["b"].numpy(), d["a"].numpy(), rel[name], levels=levels, cmap="RdBu_r", norm=norm,
                         extend="both")
        ax.plot(0, 0, marker="*", color="black", markersize=11, markeredgecolor="white")
        ax.set_title(f"{MODEL_LABELS.get(name, name)}\nflatness {d['stats']['flatness']:.3g}")
        ax.set_xlabel("direction 2 (L2)")
        ax.set_ylabel("direction 1 (L2)")
        ax.set_aspect("equal")
    cb = fig.colorbar(cs, ax=list(axes[0]), label="E(x+δ, y) − E(x, y)", shrink=0.85)
    cb.locator = MaxNLocator(5)  # a few labelled ticks, not one per contour level
    cb.update_ticks()
    if title:
        fig.suptitle(title)
    return fig


def _relative_grid(d: dict) -> np.ndarray:
    """``grid − E(x, y)`` with ``E(x, y)`` read at ``a = b = 0`` (the grid's centre)."""
    a, b, grid = d["a"].numpy(), d["b"].numpy(), d["grid"].numpy()
    i, j = int(np.abs(a).argmin()), int(np.abs(b).argmin())
    return grid - grid[i, j]


def flatness_order(data: dict) -> list[tuple[str, float]]:
    """``[(model label, flatness)]`` from flattest to sharpest (the Fig. 2 numbers, sorted)."""
    return sorted(((MODEL_LABELS.get(n, n), float(d["stats"]["flatness"])) for n, d in data.items()),
                  key=lambda t: t[1])


# ----------------------------------------------------------------------------- Fig. 3
def plot_delta_energy(log: list[dict], *, title: str = ""):
    """Fig. 3: Δ_x E and Δ_θ E for E(x,y) (a) and E(x) (b); points = mean, bars = ± std."""
    steps = np.array([r["step"] for r in log])
    fig, axes = subplots(1, 2, figsize=(9, 3.2))
    for ax, kind, label in [(axes[0], "joint", "E(x, y)"), (axes[1], "marginal", "E(x)")]:
        for key, colour, name in [("dxE", "#d62728", "Δ_x"), ("dthetaE", "#1f77b4", "Δ_θ")]:
            mean = np.array([r[f"{key}_{kind}_mean"] for r in log])
            std = np.sqrt(np.array([r[f"{key}_{kind}_var"] for r in log]))
            ax.errorbar(steps, mean, yerr=std, fmt="o", ms=2.5, lw=0.6, color=colour, label=f"{name} {label}")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xlabel("training step")
        ax.set_ylabel("energy change")
        ax.legend(frameon=False)
    axes[0].set_title("(a) E(x, y)")
    axes[1].set_title("(b) E(x)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- generation
def generation_table(runs: dict, seeds: Tensor, labels: Tensor, *, loaded: dict | None = None) -> list[dict]:
    """One row of :func:`chain_diagnostics` per generated panel, with p(y | x) from a classifier
    that did not generate it (:func:`independent_judge`).

    ``runs`` maps a row name to ``(zoo_name, model, images, energy)``; ``seeds`` and ``labels``
    are the chains' starts and targets; ``loaded`` zoo name -> model (reused as judges)."""
    rows = []
    for row, (zoo, model, images, energy) in runs.items():
        d = chain_diagnostics(model, labels, seeds, images, energy=energy)
        judge_name, judge = independent_judge(zoo, loaded)
        p = None
        if judge is not None:
            with torch.no_grad():
                p = float(judge(images).softmax(1).gather(1, labels[:, None]).mean())
        rows.append({"panel": row, "moved L2": d["l2"], "U before": d["energy_before"], "U after": d["energy_after"],
                     "clipped pixels": d["saturated"], "p(y | x)": p if p is not None else "—",
                     "scored by": judge_name or "—", "chain": "BROKEN: " + d["reason"] if d["broken"] else "ok"})
    return rows


GENERATION_FORMATS = {"moved L2": "{:.2f}", "U before": "{:.3g}", "U after": "{:.3g}", "clipped pixels": "{:.0%}",
                      "p(y | x)": "{:.2f}"}


def plot_image_rows(rows: dict[str, Tensor], *, nrow: int, title: str = ""):
    """One panel per entry of ``rows`` (name -> images), stacked vertically."""
    fig, axes = subplots(len(rows), 1, figsize=(nrow * 0.55 + 1.5, 0.62 * sum(
        (len(v) + nrow - 1) // nrow for v in rows.values()) + 0.4 * len(rows)), squeeze=False)
    for ax, (name, imgs) in zip(axes[:, 0], rows.items()):
        ax.imshow(image_grid(imgs, nrow), interpolation="nearest")
        ax.set_title(name, fontsize=9, loc="left")
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- SSIM neighbours (Fig. 7)
from .metrics import TrainIndex, nearest_by_ssim, ssim  # noqa: E402,F401  (computed in metrics; re-exported)


# ----------------------------------------------------------------------------- tables
def table1_rows(model, x: Tensor, y: Tensor, *, eps: float = 8 / 255, seed: int = 0,
                progress: bool = False) -> list[dict]:
    """Tab. 1: accuracy with no attack, the CE attack (Eq. 14) and the energy attack (Eq. 18),
    both PGD-20 (L-inf, step 2/255, random start). ``progress``: a tqdm bar over the attacks."""
    from .metrics import robust_accuracy as evaluate

    rows = []
    attacks = [("No attack", "none"), ("CE attack (Eq. 14)", "pgd20"), ("Energy attack (Eq. 18)", "energy-pgd20")]
    if progress:
        from tqdm.auto import tqdm

        attacks = tqdm(attacks, desc="Tab. 1")
    for name, attack in attacks:
        r = evaluate(model, x, y, attack=attack, eps=eps, seed=seed)
        rows.append({"attack": name, "accuracy": r["robust_acc"], "n": r["n"], "eps": eps})
    return rows


def table2_fisher_rows(models: dict, x: Tensor, y: Tensor, *, n_probes: int = 4, seed: int = 0,
                       batch_size: int = 100) -> list[dict]:
    """Tab. 2: joint (Eq. 23) and marginal (Eq. 24) Fisher scores on real test images, in both
    conventions with standard errors (:func:`jeat_core.experiments.fisher_rows`), rows labelled."""
    from .experiments import fisher_rows

    rows = fisher_rows(models, x, y, n_probes=n_probes, batch=batch_size, seed=seed)
    return [{**r, "model": MODEL_LABELS.get(r["model"], r["model"])} for r in rows]


def table3_rows(models: dict, x: Tensor, y: Tensor, *, eps: float = 8 / 255, seed: int = 0) -> list[dict]:
    """Tab. 3: clean accuracy and PGD-20 robustness (L-inf, eps 8/255, step 2/255, random start)."""
    from .metrics import robust_accuracy as evaluate

    rows = []
    for name, m in models.items():
        r = evaluate(m, x, y, attack="pgd20", eps=eps, seed=seed)
        rows.append({"model": MODEL_LABELS.get(name, name), "clean_acc": r["clean_acc"], "pgd20_acc": r["robust_acc"],
                     "n": r["n"], "eps": eps})
    return rows


# ----------------------------------------------------------------------------- all figures (`jeat figures`)
def _models(names, preset: str = "cifar10-cpu") -> dict:
    from .checkpoints import load_model

    return {n: load_model(f"{preset}/{n}")[0] for n in names}


def make_all(out: str | Path = "figures", *, smoke: bool = False, data_root=None) -> dict:
    """Write every figure and table the shipped models allow. Returns ``{name: paths or reason}``.

    Generated images (Figs. 4-7) use each model's own tuned sampler (``manifest["sampler"]``).

    ``smoke`` uses tiny sizes (a few images, few steps) to check the pipeline in minutes.
    """
    from .checkpoints import CheckpointError, resolve
    from .data import load_split

    test = load_split("test", data_root=data_root)
    n = 64 if smoke else 1000
    x, y = test.tensors(n)
    steps = 5 if smoke else 60
    per_class = 2 if smoke else 8
    report: dict = {}

    def job(name, fn):
        try:
            report[name] = [str(p) for p in fn()]
        except CheckpointError as e:
            report[name] = f"skipped: {e}"

    def train_gaussian():
        train = load_split("train", data_root=data_root)
        return ClassGaussian(train.x, train.y)

    cg = {}

    def seeds(labels, seed=0):
        if "cg" not in cg:
            cg["cg"] = train_gaussian()
        return cg["cg"].sample(labels, generator=torch.Generator().manual_seed(seed))

    job("table1_attacks", lambda: save_table(
        table1_rows(_models(["standard"])["standard"], x, y), out, "table1_attacks",
        title=f"Tab. 1: CE vs energy attack, standard model (n={n})"))
    job("fig2_energy_contours", lambda: save_figure(plot_contours(contour_data(
        _models(["standard", "at", "prejeat", "jeat"]), x[0], int(y[0]), resolution=9 if smoke else 41)),
        out, "fig2_energy_contours"))
    job("fig3_delta_energy", lambda: save_figure(plot_delta_energy(
        read_energy_log(resolve("cifar10-cpu/at") / "energy_log.jsonl"), title="AT (cpu preset)"),
        out, "fig3_delta_energy"))

    def tuned(name: str, labels: Tensor, s: Tensor, energy: str = "joint") -> Tensor:
        """Generation with the model's own best sampler (manifest; best vs best), capped in smoke runs."""
        from dataclasses import replace

        from .checkpoints import load_model
        from .sampling import generate as sample
        from .sampling import sampler_for

        model, manifest = load_model(f"cifar10-cpu/{name}")
        cfg = sampler_for(manifest, energy)
        return sample(model, labels, s, replace(cfg, n_steps=min(cfg.n_steps, steps)))

    def fig4():
        labels = torch.full((per_class,), 8)
        s = seeds(labels)
        rows = {"(a) AT, Eq. 16": tuned("at", labels, s, "ce"), "(b) AT, Eq. 17": tuned("at", labels, s),
                "(c) PreJEAT, Eq. 17": tuned("prejeat", labels, s)}
        return save_figure(plot_image_rows(rows, nrow=per_class, title="label: ship"), out, "fig4_eq16_vs_eq17")

    job("fig4_eq16_vs_eq17", fig4)

    def fig5():
        labels = torch.full((per_class,), 8)
        s = seeds(labels)
        rows = {MODEL_LABELS[k]: tuned(k, labels, s) for k in ("noise-8", "noise-16", "noise-24")}
        return save_figure(plot_image_rows(rows, nrow=per_class, title="noise-trained classifiers, label: ship"),
                           out, "fig5_noise_generation")

    job("fig5_noise_generation", fig5)

    def fig6():
        labels = torch.arange(10).repeat_interleave(per_class)
        s = seeds(labels)
        rows = {MODEL_LABELS[k]: tuned(k, labels, s) for k in ("at", "prejeat", "jem", "jeat")}
        return save_figure(plot_image_rows(rows, nrow=per_class), out, "fig6_generation_by_model")

    job("fig6_generation_by_model", fig6)

    def fig7():
        labels = torch.arange(0, 10, 2)[: 2 if smoke else 5]
        gen = tuned("jeat", labels, seeds(labels))
        train = load_split("train", data_root=data_root)
        idx, sim = nearest_by_ssim(gen, train.x[:2000] if smoke else train.x, k=10)
        near = torch.from_numpy(train.x[idx.flatten().numpy()]).permute(0, 3, 1, 2).float().div(255)
        rows = {f"generated → 10 most similar training images (SSIM {float(sim[i, 0]):.2f} best)":
                torch.cat([gen[i:i + 1], near[i * 10:(i + 1) * 10]]) for i in range(len(gen))}
        return save_figure(plot_image_rows(rows, nrow=11), out, "fig7_nearest_neighbours")

    job("fig7_nearest_neighbours", fig7)
    job("table2_fisher", lambda: save_table(
        table2_fisher_rows(_models(["standard", "at", "jem", "jeat"]), x[:16 if smoke else 200],
                           y[:16 if smoke else 200], n_probes=1 if smoke else 4), out, "table2_fisher",
        title="Tab. 2: Fisher scores (lower is better)"))
    job("table3_robustness", lambda: save_table(
        table3_rows(_models(["jem", "jeat", "at"]), x, y), out, "table3_robustness",
        title=f"Tab. 3: clean and PGD-20 accuracy (n={n})"))
    return report

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
from .paper_items import (  # noqa: F401  (computed there; re-exported for the notebooks)
    MODEL_LABELS,
    PAPER_ITEMS,
    PAPER_SIZES,
    SMOKE_SIZES,
    table1_rows,
    table2_fisher_rows,
    table3_rows,
)

MODEL_COLOURS = {"standard": "#7f7f7f", "noise-8": "#c7e9c0", "noise-16": "#74c476", "noise-24": "#238b45",
                 "at": "#1f77b4", "prejeat": "#ff7f0e", "jem": "#9467bd", "jeat": "#d62728"}


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
    # a few symmetric labelled ticks inside the scale, not one per contour level (and none on the
    # extension triangles, whose labels would overlap the end ticks)
    cb.set_ticks([t for t in MaxNLocator(5, symmetric=True).tick_values(-vmax, vmax) if -vmax <= t <= vmax])
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


def image_rows_table(fig, models: dict) -> list[dict]:
    """:func:`generation_table` of the generated rows of a figure producer's ``ImageRows``
    (Figs. 4-6); ``models`` zoo name -> model (the generators, reused as judges)."""
    runs = {row: (zoo, models[zoo], fig.rows[row], energy) for row, (zoo, energy, _) in fig.runs.items()}
    return generation_table(runs, fig.seeds, fig.labels, loaded=models)


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

# ----------------------------------------------------------------------------- all figures (`jeat figures`)
# How each kind of paper item is drawn from its producer's data (`PaperItem.plot`; "table": saved, not drawn)
PLOTS = {"contours": lambda data: plot_contours(data),  # Fig. 2: fig2_data's dict
         "delta_energy": lambda data: plot_delta_energy(data["log"], title=data["title"]),  # Fig. 3: fig3_data
         "image_rows": lambda data: plot_image_rows(data.rows, nrow=data.nrow, title=data.title)}  # ImageRows


def save_paper_table(rows: list[dict], out_dir: str | Path, name: str) -> list[Path]:
    """:func:`save_table` of a paper table (``name`` a table of :data:`PAPER_ITEMS`) under its title."""
    item = PAPER_ITEMS[name]
    if item.plot != "table":
        raise ValueError(f"{name} is a figure, not a table: save it with save_figure")
    return save_table(rows, out_dir, name, title=item.title.format(n=rows[0].get("n") if rows else 0))


def save_paper_item(name: str, data, out_dir: str | Path) -> list[Path]:
    """Draw (a figure, :data:`PLOTS`) or tabulate (a table) paper item ``name`` of :data:`PAPER_ITEMS`
    from its producer's ``data`` and save it in ``out_dir`` as the item's files."""
    item = PAPER_ITEMS[name]
    if item.plot == "table":
        return save_paper_table(data, out_dir, name)
    return save_figure(PLOTS[item.plot](data), out_dir, name)


def make_all(out: str | Path = "figures", *, smoke: bool = False, data_root=None) -> dict:
    """Write every figure and table of :data:`PAPER_ITEMS` the shipped models allow. Returns
    ``{name: paths or reason}``.

    Each item's data come from its producer in :mod:`jeat_core.paper_items` (``fig2_data`` ...
    ``fig7_rows``, ``table1_rows`` ... ``table3_rows``), the ones the notebooks call; this function
    only plots and saves. Generated images (Figs. 4-7) use each model's own tuned sampler
    (``manifest["sampler"]``).

    ``smoke`` uses :data:`SMOKE_SIZES` (a few images, few steps) to check the pipeline in minutes;
    otherwise :data:`PAPER_SIZES`.
    """
    from . import experiments as ex
    from .checkpoints import CheckpointError

    sizes = SMOKE_SIZES if smoke else PAPER_SIZES
    ctx = ex.Context(data_root=data_root)
    report: dict = {}
    for name, item in PAPER_ITEMS.items():
        try:
            report[name] = [str(p) for p in save_paper_item(name, item.compute(ctx, sizes), out)]
        except CheckpointError as e:
            report[name] = f"skipped: {e}"
    return report

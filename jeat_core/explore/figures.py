"""Paper figures and tables as functions shared by the notebooks and ``jeat figures``.

Each ``*_data`` function computes numbers (tensors / dicts) from models; each ``plot_*`` function
turns them into a matplotlib figure. ``save_figure`` writes ``.pdf`` (vector) and ``.png``;
``save_table`` writes ``.md`` and ``.json`` (the drawing kit: :mod:`jeat_core.explore.plotting`; notebook
00's toy figure: :mod:`jeat_core.explore.toy_figures`). Model colours are fixed across figures
(:data:`MODEL_COLOURS`) and classes are shown by name.
"""

from __future__ import annotations

import importlib
import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from jeat_core.core.checkpoints import CheckpointError
from jeat_core.core.landscape import SLICE_QUANTITIES, slice_values
from jeat_core.explore.plotting import (  # noqa: F401  (the drawing kit moved to plotting; re-exported for one release)
    MODEL_COLOURS,
    Table,
    figure_png,
    image_grid,
    save_figure,
    save_table,
    subplots,
    table_markdown,
)
from jeat_core.explore.toy_figures import TOY_COLOURS, plot_toy2d  # noqa: F401  (moved; re-exported for one release)
from jeat_core.paper import experiments as ex
from jeat_core.paper.claims import claim_effects
from jeat_core.paper.experiments import (  # noqa: F401  (computed there; re-exported for the notebooks)
    SATURATED_BROKEN,
    chain_diagnostics,
    contour_data,
    independent_judge,
    read_energy_log,
)
from jeat_core.paper.paper_items import (  # noqa: F401  (computed there; re-exported for the notebooks)
    MODEL_LABELS,
    PAPER_ITEMS,
    PAPER_SIZES,
    SMOKE_SIZES,
    ImageRows,
    PaperItem,
    table1_rows,
    table2_fisher_rows,
    table3_rows,
)

# ----------------------------------------------------------------------------- Fig. 2
# how a Fig. 2 panel shows each quantity of jeat_core.core.landscape.SLICE_QUANTITIES: its flatness statistic
# (a key of the slice's stats), the statistic's name in the title, the colour map (blue = y more likely /
# lower energy than at the image in both)
CONTOUR_QUANTITIES = {"dlogp": ("flatness_dlogp", "mean |Δ log p|", "RdBu"),
                      "energy": ("flatness", "mean |ΔE|", "RdBu_r")}


def contour_values(d: dict, quantity: str = "dlogp") -> np.ndarray:
    """The ``(R, R)`` values a Fig. 2 panel colours (:func:`jeat_core.core.landscape.slice_values`)."""
    return np.asarray(slice_values(d, quantity), dtype=np.float64)


def plot_contours(data: dict, *, title: str = "", quantity: str = "dlogp", fast: bool = False, shared: bool = False):
    """Fig. 2: one panel per model (``data``: :func:`jeat_core.paper.paper_items.fig2_data`), **each on its
    own colour scale**, its flatness number in its title.

    ``quantity="dlogp"`` (default) colours log p(y | x') − log p(y | x), the change of the class
    probability along the slice, in the audit's units (claim 3); ``"energy"`` colours
    E(x', y) − E(x, y). Both are relative to the image (the star), so white means "as at the image"
    and blue "y more likely / lower energy than at the image".

    Why Δ log p and per-panel scales: raw energies mix the classifier's log-probability with the
    marginal part E(x') (E(x', y) = −log p(y | x') + E(x'), Eq. 13), whose scale is set by each
    model's logits, not by how flat its prediction is; and on one shared scale the sharpest model
    (Normal) sets the range, so the robust panels came out as one near-uniform colour. With a scale
    per panel every panel shows its structure; compare flatness by the numbers in the titles (mean
    |Δ log p| over the whole slice, the per-image quantity the audit averages) and by the colour
    bars' ranges, not by the depth of colour. Each scale is symmetric around 0 and spans exactly
    its panel's values.

    ``shared``: a second row draws every panel on **one** colour scale (symmetric around 0, spanning all
    panels' values), so the difference in steepness is seen, not read off the colour bars: there the
    sharpest model sets the range and a flat model's panel stays near white. The saved Fig. 2 has both
    rows. ``fast``: a fixed layout instead of matplotlib's constrained one (the explorer redraws it at
    every change; the saved Fig. 2 keeps the constrained layout). The title is wrapped to the
    figure's width, so a long one is never cut off."""
    from matplotlib.colors import Normalize  # matplotlib: heavy, loaded only to draw


    names = list(data)
    values = {n: contour_values(data[n], quantity) for n in names}  # (an unknown quantity: ValueError)
    bar_label, (stat, stat_name, cmap) = SLICE_QUANTITIES[quantity], CONTOUR_QUANTITIES[quantity]
    n = len(names)
    width = 3.15 * n + 0.3 if n > 1 else 4.2
    title = _wrap_to(width, title, TITLE_PT) if title else ""
    head = 0.55 + 0.17 * (title.count("\n") + 1 if title else 0)  # inches above the axes: the titles
    height = (2.2 + head + 0.6) if n > 1 else (2.45 + head + 0.5)  # axes, titles, axis labels (+ caption)
    shared = shared and n > 1
    rows = 2 if shared else 1
    height += 2.6 if shared else 0
    fig, axes = subplots(rows, n, figsize=(width, height), squeeze=False, layout=None if fast else "constrained")
    if fast:  # fixed margins in inches (what constrained layout would find, without its cost)
        from matplotlib.layout_engine import PlaceHolderLayoutEngine  # matplotlib: heavy, loaded only to draw

        fig.subplots_adjust(left=0.62 / width, right=1 - 0.7 / width, bottom=0.5 / height, top=1 - head / height,
                            wspace=0.55)  # right: the colour bar's label
        fig.set_layout_engine(PlaceHolderLayoutEngine(adjust_compatible=True, colorbar_gridspec=True))
    for ax, name in zip(axes[0], names):
        d, v = data[name], values[name]
        vmax = float(np.abs(v).max()) or 1e-12  # this panel's own range, symmetric around 0
        levels = np.linspace(-vmax, vmax, 21)
        cs = ax.contourf(d["b"].numpy(), d["a"].numpy(), v, levels=levels, cmap=cmap, norm=Normalize(-vmax, vmax))
        ax.plot(0, 0, marker="*", color="black", markersize=11, markeredgecolor="white")
        flat = d["stats"].get(stat)
        ax.set_title(f"{MODEL_LABELS.get(name, name)}\n{stat_name} = {flat:.3g}" if flat is not None
                     else MODEL_LABELS.get(name, name), fontsize=10)
        ax.set_xlabel("direction 2 (L2)")
        ax.set_ylabel("direction 1 (L2)")
        ax.set_aspect("equal")
        cb = fig.colorbar(cs, ax=ax, shrink=0.8, pad=0.03, format="%.2g")
        cb.set_ticks(np.linspace(-vmax, vmax, 5))  # ends, halves and 0: evenly spaced, never crowded
        cb.ax.tick_params(labelsize=7)
    cb.set_label(bar_label)
    if shared:
        vmax = max(float(np.abs(v).max()) for v in values.values()) or 1e-12
        levels = np.linspace(-vmax, vmax, 21)
        for ax, name in zip(axes[1], names):
            d = data[name]
            cs = ax.contourf(d["b"].numpy(), d["a"].numpy(), values[name], levels=levels, cmap=cmap,
                             norm=Normalize(-vmax, vmax))
            ax.plot(0, 0, marker="*", color="black", markersize=11, markeredgecolor="white")
            ax.set_title(f"{MODEL_LABELS.get(name, name)}, one shared scale", fontsize=9)
            ax.set_xlabel("direction 2 (L2)")
            ax.set_ylabel("direction 1 (L2)")
            ax.set_aspect("equal")
        cb = fig.colorbar(cs, ax=list(axes[1]), shrink=0.8, pad=0.02, format="%.2g")
        cb.set_ticks(np.linspace(-vmax, vmax, 5))
        cb.ax.tick_params(labelsize=7)
        cb.set_label(bar_label)
    if n > 1:
        blue = "y more likely than" if quantity == "dlogp" else "lower energy than"
        rows_text = "top row: each panel on its own scale; bottom row: one scale for all" if shared else \
            "each panel on its own scale"
        fig.supxlabel(f"colour: {bar_label}, {rows_text} (blue: {blue} at the image ★)", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=TITLE_PT)
    return fig


TITLE_PT = 9  # the point size of a Fig. 2 title (the explorer's, wrapped to the figure's width)


def _wrap_to(width_in: float, text: str, fontsize: float) -> str:
    """``text`` with each line wrapped to ``width_in`` inches at ``fontsize`` points (at most
    0.6 em a character, DejaVu Sans' widest common letters; so it is never cut off)."""
    chars = max(16, int(width_in * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def flatness_order(data: dict, stat: str = "flatness_dlogp") -> list[tuple[str, float]]:
    """``[(model label, flatness)]`` from flattest to sharpest (the Fig. 2 numbers, sorted): by
    ``stat``, mean |Δ log p| (default, the audit's quantity) or ``"flatness"`` (mean |ΔE|)."""
    return sorted(((MODEL_LABELS.get(n, n), float(d["stats"][stat])) for n, d in data.items()),
                  key=lambda t: t[1])


# ----------------------------------------------------------------------------- Fig. 3
def plot_delta_energy(runs: dict[str, list[dict]] | list[dict], *, title: str = "",
                      control: list[dict] | None = None):
    """Fig. 3: Δ_x E and Δ_θ E for E(x,y) (a) and E(x) (b). ``runs``: one energy log, or run name ->
    log (training seeds of one recipe): the first drawn as points = mean and bars = ± std over the
    batch, the others as their means only (small hollow markers, one shape per run) behind it.
    ``control``: the energy log of standard training (ε = 0, no attack), whose Δ_θ E is drawn as a
    grey line over the same steps: the sign an update gives without adversarial training."""
    from matplotlib.lines import Line2D  # matplotlib: heavy, loaded only to draw
    from matplotlib.ticker import MaxNLocator  # matplotlib: heavy, loaded only to draw

    (name, log), *rest = (runs if isinstance(runs, dict) else {"": runs}).items()
    others = dict(rest)
    steps = np.array([r["step"] for r in log])
    fig, axes = subplots(1, 2, figsize=(9, 3.7 if others else 3.4))
    shapes = dict(zip(others, "sD^v"))
    for ax, kind in [(axes[0], "joint"), (axes[1], "marginal")]:
        for key, colour in [("dxE", "#d62728"), ("dthetaE", "#1f77b4")]:
            for run, other in others.items():
                ax.plot([r["step"] for r in other], [r[f"{key}_{kind}_mean"] for r in other], shapes[run], ms=2.2,
                        mfc="none", mew=0.5, color=colour, alpha=0.55, ls="")
            mean = np.array([r[f"{key}_{kind}_mean"] for r in log])
            std = np.sqrt(np.array([r[f"{key}_{kind}_var"] for r in log]))
            ax.errorbar(steps, mean, yerr=std, fmt="o", ms=2.5, lw=0.6, color=colour)
        if control:
            c = [r for r in control if r["step"] <= steps.max() and r["step"] > 0]
            ax.plot([r["step"] for r in c], [r[f"dthetaE_{kind}_mean"] for r in c], "-", color="0.45", lw=0.9,
                    zorder=0)
        ax.axhline(0, color="k", lw=0.6)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole (a short live run has few)
        ax.set_xlabel("training step")
        ax.set_ylabel("energy change")
    axes[0].set_title("(a) E(x, y)")
    axes[1].set_title("(b) E(x)")
    handles = [Line2D([], [], color="#d62728", marker="s", ls="", label=r"$\Delta_x E$ (the attack)"),
               Line2D([], [], color="#1f77b4", marker="s", ls="", label=r"$\Delta_\theta E$ (the update)"),
               Line2D([], [], color="0.3", marker="o", lw=0.6, label=f"{name or 'this run'}: mean ± SD over the batch")]
    handles += [Line2D([], [], color="0.3", marker=shapes[run], mfc="none", ls="", label=f"{run}: mean")
                for run in others]
    if control:
        handles.append(Line2D([], [], color="0.45", lw=0.9, label=r"standard training (ε = 0): $\Delta_\theta E$"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), frameon=False, fontsize=7.5)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def plot_delta_energy_hist(data: dict):
    """The ΔE histograms (:func:`jeat_core.paper_items.fig3_histograms`): per-example Δ_x E(x, y), Δ_θ E(x, y)
    and Δ_θ E(x) of single updates, one outline per point of training, each scaled by its largest |value|
    (the factor in the legend); in each panel the share of images with the sign Fig. 3's claim is about."""
    from matplotlib.lines import Line2D  # matplotlib: heavy, loaded only to draw

    panels = [("dxE_joint", r"(a) $\Delta_x E(x, y)$: the attack", ">"),
              ("dthetaE_joint", r"(b) $\Delta_\theta E(x, y)$: the update", "<"),
              ("dthetaE_marginal", r"(c) $\Delta_\theta E(x)$: the update", ">")]
    fig, axes = subplots(1, 3, figsize=(11, 3.6))
    colours = ["#9ecae1", "#3182bd", "#d62728"]
    points = list(data["points"].items())
    for ax, (key, what, sign) in zip(axes, panels):
        lines = []
        for (_, values), colour in zip(points, colours):
            v = np.asarray(values[key], dtype=float)
            scale = np.abs(v).max() or 1.0
            ax.hist(v / scale, bins=30, range=(-1, 1), histtype="step", lw=1.3, color=colour)
            share = np.mean(v > 0) if sign == ">" else np.mean(v < 0)
            lines.append((f"{share:.0%} {sign} 0 (×{scale:.1e})", colour))
        for k, (text, colour) in enumerate(lines):
            ax.text(0.02, 0.97 - 0.08 * k, text, transform=ax.transAxes, color=colour, fontsize=7.5, va="top")
        ax.axvline(0, color="k", lw=0.6)
        ax.set_title(what)
        ax.set_xlabel("change / its largest |value|")
    axes[0].set_ylabel(f"images (of {data['batch']})")
    fig.legend(handles=[Line2D([], [], color=c, lw=1.3, label=label) for (label, _), c in zip(points, colours)],
               loc="lower center", ncol=len(points), frameon=False, fontsize=8)
    fig.suptitle(f"{data['method'].upper()}: per-example energy changes of single updates (Fig. 3 plots their means)")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def plot_autoattack_stages(records: dict[str, dict | None], *, pgd20: dict[str, float] | None = None):
    """Notebook 08: per model with a record (name -> its recorded AutoAttack eval; ``None``: named in
    the title as not recorded yet), the robust accuracy after each stage of the cascade (clean,
    APGD-CE, APGD-T, FAB-T, Square) with Wilson 95% CIs; the label over a bar says how many points
    that attack removed. ``pgd20`` (name -> accuracy): our PGD-20 on the same images, drawn as a
    dashed line, for the gap the masking check scores."""
    missing = [n for n, r in records.items() if r is None]
    names = [n for n, r in records.items() if r is not None]
    if not names:
        fig, ax = subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"no AutoAttack record yet for {', '.join(missing)}\n"
                "(jeat eval --attack autoattack --record)", ha="center", va="center", fontsize=9)
        return fig
    from matplotlib.ticker import PercentFormatter  # matplotlib: heavy, loaded only to draw

    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = subplots(rows, cols, figsize=(max(3.0 * cols + 0.6, 5.0), 3.2 * rows + 0.7), squeeze=False,
                         sharey=True)
    for ax in axes.flat[len(names):]:
        ax.remove()
    for ax, name in zip(axes.flat, names):
        rec = records[name]
        ax.set_title(MODEL_LABELS.get(name, name), fontsize=10)
        stages = [("clean", rec["clean_acc"], rec["clean_ci"])] + [
            (s["stage"], s["robust_acc"], s["robust_ci"]) for s in rec["stages"]]
        acc = np.array([a for _, a, _ in stages])
        lo, hi = np.array([c[0] for *_, c in stages]), np.array([c[1] for *_, c in stages])
        xs = np.arange(len(stages))
        ax.bar(xs, acc, color=["#999999"] + ["#d62728", "#ff7f0e", "#9467bd", "#2ca02c"][:len(stages) - 1])
        ax.errorbar(xs, acc, yerr=np.clip([acc - lo, hi - acc], 0, None), fmt="none", color="k", lw=0.7, capsize=2)
        for i in range(1, len(stages)):  # how many percentage points this attack removed
            drop = 100 * (acc[i - 1] - acc[i])
            ax.text(xs[i], hi[i] + 0.015, f"{drop:.1f}" if drop > 0 else "0", ha="center", fontsize=7.5)
        if pgd20 and name in pgd20:
            ax.axhline(pgd20[name], color="k", ls="--", lw=0.8, label=f"PGD-20 (ours): {pgd20[name]:.1%}")
            ax.legend(loc="upper right", fontsize=7.5, frameon=False)
        ax.set_xticks(xs, [n for n, *_ in stages], fontsize=8)
        ax.set_xlabel(f"n = {rec['n']:,} test images", fontsize=8)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_ylim(0, min(1.0, float(hi.max()) + 0.12))  # room for the labels over the bars
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy after the stage")
    title = ("AutoAttack, stage by stage: each attack runs on the points the earlier ones left; over a bar, the "
             "percentage points of accuracy it removed" + (f". No record yet: {', '.join(missing)}" if missing else ""))
    fig.suptitle(_wrap_to(fig.get_figwidth(), title, 10), fontsize=10)
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


def plot_image_rows(rows, *, nrow: int | None = None, title: str = "", side_by_side: bool = False,
                    line_names: list[str] | None = None, split_after: int | None = None):
    """One panel per entry of ``rows`` (name -> images), stacked vertically, or side by side in one row.
    ``rows`` may also be a figure producer's :class:`~jeat_core.paper.paper_items.ImageRows`, whose layout
    fields then fill the keywords. ``line_names``: a name per line of images, written left of the
    first panel (Fig. 6's classes); ``split_after``: set the first columns apart (Fig. 7)."""
    if isinstance(rows, ImageRows):
        nrow, title, side_by_side = rows.nrow, rows.title, rows.side_by_side
        line_names, split_after, rows = rows.line_names, rows.split_after, rows.rows
    if nrow is None:
        raise ValueError("plot_image_rows: give nrow (images per line)")
    if side_by_side:
        return _panels_side_by_side(rows, nrow=nrow, title=title, line_names=line_names)
    width = nrow * 0.55 + 1.5
    title = _wrap_to(width - 0.2, title, 12)  # a narrow figure (few images a line) wraps, never clips
    names = {name: _wrap_to(width - 0.2, name, 9) for name in rows}
    text_lines = title.count("\n") + sum(n.count("\n") for n in names.values())
    fig, axes = subplots(len(rows), 1, figsize=(width, 0.62 * sum((len(v) + nrow - 1) // nrow for v in rows.values())
                                                + 0.4 * len(rows) + 0.2 * text_lines), squeeze=False)
    for ax, (name, imgs) in zip(axes[:, 0], rows.items()):
        ax.imshow(image_grid(imgs, nrow, split_after=split_after), interpolation="nearest")
        ax.set_title(names[name], fontsize=9, loc="left")
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig


def _panels_side_by_side(rows: dict[str, Tensor], *, nrow: int, title: str = "", line_names: list[str] | None = None):
    lines = max((len(v) + nrow - 1) // nrow for v in rows.values())
    margin = 0.8 if line_names else 0.0
    fig, axes = subplots(1, len(rows), figsize=(len(rows) * (nrow * 0.42 + 0.2) + margin, lines * 0.42 + 0.8),
                         squeeze=False)
    for i, (ax, (name, imgs)) in enumerate(zip(axes[0], rows.items())):
        grid = image_grid(imgs, nrow)
        ax.imshow(grid, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        if i == 0 and line_names:  # the class of each line, left of the first panel
            h = imgs.shape[-2] + 1
            ax.set_xticks([])
            ax.set_yticks([k * h + (h - 1) / 2 for k in range(len(line_names))], line_names, fontsize=8)
            ax.tick_params(length=0)
            for spine in ax.spines.values():
                spine.set_visible(False)
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- SSIM neighbours (Fig. 7)
from jeat_core.measure.metrics import TrainIndex, nearest_by_ssim, ssim  # noqa: E402,F401  (computed in metrics; re-exported)


# ----------------------------------------------------------------------------- all figures (`jeat figures`)
# The draw functions the paper items name (`PaperItem.draw`): each takes its producer's data unchanged
def draw_fig2(data: dict):
    """Fig. 2 from :func:`~jeat_core.paper.paper_items.fig2_data`: the contours, a colour scale per
    panel and one shared row."""
    return plot_contours(data, shared=True)


def draw_fig3(data: dict):
    """Fig. 3 from :func:`~jeat_core.paper.paper_items.fig3_data`: its runs' Δ-energy curves and the control."""
    return plot_delta_energy(data["runs"], title=data["title"], control=data.get("control"))


def draw_function(item: PaperItem) -> Callable:
    """The draw function of figure ``item``: its ``draw`` callable, or the function its
    ``"module:function"`` reference names (a clear error when the reference is broken)."""
    if item.is_table:
        raise ValueError(f"{item.id} is a table, not a figure: save it with save_paper_table")
    if callable(item.draw):
        return item.draw
    module, _, name = item.draw.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"paper item {item.id}: its draw reference {item.draw!r} does not name a function "
                         f"('module:function'): {e}") from e
    if not callable(fn):
        raise ValueError(f"paper item {item.id}: {item.draw!r} is not callable")
    return fn


def save_paper_table(rows: list[dict], out_dir: str | Path, name: str) -> list[Path]:
    """:func:`save_table` of a paper table (``name`` a table of :data:`PAPER_ITEMS`) under its title."""
    item = PAPER_ITEMS[name]
    if not item.is_table:
        raise ValueError(f"{name} is a figure, not a table: save it with save_figure")
    return save_table(rows, out_dir, name, title=item.title.format(n=rows[0].get("n") if rows else 0))


def save_paper_item(name: str, data, out_dir: str | Path) -> list[Path]:
    """Draw (a figure, with the item's own draw function) or tabulate (a table) paper item ``name``
    of :data:`PAPER_ITEMS` from its producer's ``data`` and save it in ``out_dir`` as the item's files."""
    item = PAPER_ITEMS[name]
    if item.is_table:
        return save_paper_table(data, out_dir, name)
    return save_figure(draw_function(item)(data), out_dir, name)


def make_all(out: str | Path = "figures", *, smoke: bool = False, data_root=None, only=None) -> dict:
    """Write every figure and table of :data:`PAPER_ITEMS` the shipped models allow. Returns
    ``{name: paths or reason}``.

    Each item's data come from its producer in :mod:`jeat_core.paper.paper_items` (``fig2_data`` ...
    ``fig7_rows``, ``table1_rows`` ... ``table3_rows``), the ones the notebooks call; this function
    only plots and saves. Generated images (Figs. 4-7) use each model's own tuned sampler
    (``manifest["sampler"]``).

    ``smoke`` uses :data:`SMOKE_SIZES` (a few images, few steps) to check the pipeline in minutes;
    otherwise :data:`PAPER_SIZES`. ``only`` (names of :data:`PAPER_ITEMS`, or ``"claims"`` for the hero
    figure) limits the work to those items.
    """
    unknown = set(only or ()) - set(PAPER_ITEMS) - {"claims"}
    if unknown:
        raise ValueError(f"unknown figure(s) {', '.join(sorted(unknown))}; "
                         f"choose from claims, {', '.join(PAPER_ITEMS)}")

    sizes = SMOKE_SIZES if smoke else PAPER_SIZES
    ctx = ex.Context(data_root=data_root)
    report: dict = {}
    if (Path(out) / "audit.json").is_file() and (not only or "claims" in only):  # the hero figure, from the audit
        report["claims"] = [str(p) for p in save_claims(Path(out) / "audit.json", out)]
    for name, item in PAPER_ITEMS.items():
        if only and name not in only:
            continue
        try:
            report[name] = [str(p) for p in save_paper_item(name, item.compute(ctx, sizes), out)]
        except CheckpointError as e:
            report[name] = f"skipped: {e}"
    return report


# ----------------------------------------------------------------------------- notebook 02 (3-D view of Fig. 2)
def surface_3d(a, b, grid, *, model: str = "", title: str = "", zlabel: str = "E(x, y)", quantity: str | None = None):
    """Plotly 3-D surface of a grid on the slice (``zlabel``: what it holds, E(x, y) by default),
    named by its model, with full axis titles. ``quantity``: a key of :data:`CONTOUR_QUANTITIES`
    whose colour map and symmetric range the 2-D panel uses (so both views read alike; default:
    Viridis over the grid's range)."""
    import plotly.graph_objects as go  # plotly: heavy, loaded only for the interactive views

    colours = {"colorscale": "Viridis"}
    if quantity is not None:
        vmax = float(np.abs(np.asarray(grid)).max()) or 1e-12
        colours = {"colorscale": plotly_colorscale(CONTOUR_QUANTITIES[quantity][2]), "cmin": -vmax, "cmax": vmax}
    fig = go.Figure(go.Surface(x=b.numpy(), y=a.numpy(), z=grid.numpy(), **colours,
                               colorbar={"title": {"text": zlabel}}))
    head = f"{model}: {zlabel} around {title}" if model else f"{zlabel} around {title}"
    fig.update_layout(title={"text": head + " (drag to rotate)"}, height=520,
                      margin={"l": 10, "r": 10, "t": 50, "b": 10},
                      scene={"xaxis": {"title": {"text": "direction 2 (L2)"}},
                             "yaxis": {"title": {"text": "direction 1 (L2)"}},
                             "zaxis": {"title": {"text": zlabel}},
                             "camera": {"eye": {"x": 1.6, "y": 1.6, "z": 1.0}}})
    return fig


def plotly_colorscale(cmap: str, n: int = 11) -> list[list]:
    """Matplotlib's colour map ``cmap`` as a Plotly colour scale (``n`` stops), so a Plotly view and a
    matplotlib panel of the same values share their colours (Plotly's own "RdBu" runs the other way)."""
    from matplotlib import colormaps  # matplotlib: heavy, loaded only to draw

    cm = colormaps[cmap]
    return [[t, "rgb({},{},{})".format(*(int(round(255 * c)) for c in cm(t)[:3]))] for t in np.linspace(0, 1, n)]


# ----------------------------------------------------------------------------- the hero figure (claims at a glance)
VERDICT_COLOURS = {"reproduced": "#2ca02c", "not reproduced": "#d62728", "depends on the ruler": "#9467bd",
                   "inconclusive, leaning toward the paper": "#98c98a",
                   "inconclusive, leaning against the paper": "#e8a0a0", "inconclusive": "#7f7f7f",
                   "one run per side: not decided over runs": "#b0a070", "not measurable here": "#c7c7c7"}
CLAIM_GROUPS = (("paper", "The paper's claims"),
                ("added", "Checks we added (not the paper's claims; not in its tally)"))


def plot_claims(rows: list[dict], *, title: str = ""):
    """Every claim part's effect with its 95% interval, coloured by verdict (rows of
    :func:`jeat_core.paper.verdicts.claim_effects`). The quantities have different units, so each row has its
    own scale: its null (or the centre of its band) at the middle line, the paper's predicted direction
    to the right, the interval scaled to fit; the numbers themselves are printed at the right."""
    from matplotlib.patches import Patch, Rectangle  # matplotlib: heavy, loaded only to draw

    items: list = []  # a group's heading (str), then its rows
    for source, heading in CLAIM_GROUPS:
        group = [r for r in rows if r.get("source", "paper") == source]
        items += [heading, *group] if group else []
    n = len(items)
    fig, ax = subplots(figsize=(11.5, 0.34 * n + 1.5))
    for i, r in enumerate(items):
        y = n - 1 - i
        if isinstance(r, str):
            ax.text(-2.6, y, r, ha="left", va="center", fontsize=9, weight="bold")
            continue
        colour = VERDICT_COLOURS.get(r["verdict"], "k")
        ax.text(-1.3, y, r["label"], ha="right", va="center", fontsize=8)
        if r["value"] is None:
            ax.text(0, y, r["verdict"], ha="center", va="center", fontsize=7, color="0.45", style="italic")
            continue
        centre = r["null"] if r["band"] is None else sum(r["band"]) / 2
        sign = r["direction"] or 1
        ends = [r["value"], *r["ci"], *(r["band"] or [])]
        scale = max(abs(v - centre) for v in ends) * 1.15 or 1.0

        def t(v, c=centre, s=sign, k=scale):
            return (v - c) * s / k

        if r["band"] is not None:
            ax.add_patch(Rectangle((min(t(b) for b in r["band"]), y - 0.35), abs(t(r["band"][1]) - t(r["band"][0])),
                                   0.7, color="0.9", zorder=0))
        lo, hi = sorted((t(r["ci"][0]), t(r["ci"][1])))
        ax.plot([lo, hi], [y, y], color=colour, lw=3, solid_capstyle="butt")
        ax.plot([t(r["value"])], [y], "o", color=colour, markeredgecolor="k", markersize=5)
        num = f"{r['value']:.3g} [{r['ci'][0]:.3g}, {r['ci'][1]:.3g}]"
        ax.text(1.3, y, f"{num}  {r['unit']}", ha="left", va="center", fontsize=7)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlim(-1.25, 1.25)
    ax.set_ylim(-0.8, n - 0.2)
    ax.set_yticks([])
    ax.set_xticks([-1, 0, 1], ["against the paper", "null / band centre", "paper's direction"], fontsize=8)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    handles = [Patch(color=c, label=v) for v, c in VERDICT_COLOURS.items() if any(r["verdict"] == v for r in rows)]
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(handles), frameon=False,
              fontsize=8)
    if title:
        ax.set_title(title, fontsize=10, pad=22)
    return fig


def save_claims(audit: str | Path, out_dir: str | Path) -> list[Path]:
    """Draw ``figures/claims.png`` (+ PDF) from an audit report (``jeat audit --out figures/audit.md``
    writes ``audit.json``)."""
    report = json.loads(Path(audit).read_text())
    rows = claim_effects(report)
    kind = "smoke run, not a result" if report.get("smoke") else "full run"
    fig = plot_claims(rows, title=f"Claims at our scale: each part's effect with its 95% interval "
                                  f"({Path(audit).name}, {kind}; each row on its own scale)")
    return save_figure(fig, out_dir, "claims")

"""Notebook 00's figure of the 2-D toy task (:func:`plot_toy2d`): each class's energy E(x, y), the
marginal E(x), one update's Δ_x E / Δ_θ E per point and the Langevin paths, for what
:class:`jeat_core.paper.toy2d.ToyLab` measured."""

from __future__ import annotations

import numpy as np

from jeat_core.explore.plotting import subplots
from jeat_core.paper.toy2d import TOY_CLASSES

# classes A-D of jeat_core.paper.toy2d: warm and light colours, which stand out on viridis (dark blue to
# yellow) as well as on panel (c)'s white ground
TOY_COLOURS = ("#ff2e2e", "#ff9f1c", "#ff5ccd", "#17d4ff")


def _toy_panel(ax, grid: np.ndarray, axis: np.ndarray, title: str, *, filled: bool = True):
    ext = (axis[0], axis[-1], axis[0], axis[-1])
    # darker = lower energy, as in the paper's Fig. 2; colours and contour levels span the lower 90% of
    # the grid's values, so the far corners (where energies of a classifier run off) do not flatten the rest
    lo, hi = float(grid.min()), float(np.quantile(grid, 0.9))
    im = ax.imshow(grid, origin="lower", extent=ext, cmap="viridis", vmin=lo, vmax=hi,
                   interpolation="bilinear") if filled else None
    ax.contour(axis, axis, grid, levels=np.linspace(lo, hi, 10), colors="white" if filled else "0.55",
               linewidths=0.5, alpha=0.7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xticks([0, 0.5, 1])
    ax.set_yticks([0, 0.5, 1])
    ax.set_title(title, fontsize=9)
    return im


def _toy_updates(ax, u: dict, kind: str, mask: np.ndarray) -> None:
    """Arrows x → x_in (the training input: Δ_x E) and a triangle at x_in for the sign of Δ_θ E."""
    x, xin, dth = u["x"][mask], u["x_in"][mask], u[kind]["dtheta"][mask]
    moved = np.linalg.norm(xin - x, axis=1) > 1e-6
    if moved.any():
        ax.quiver(x[moved, 0], x[moved, 1], (xin - x)[moved, 0], (xin - x)[moved, 1], angles="xy",
                  scale_units="xy", scale=1, color="white", width=0.006, headwidth=4, zorder=3)
    ax.scatter(x[:, 0], x[:, 1], s=10, c="white", edgecolors="black", linewidths=0.5, zorder=4)
    down = dth < 0
    size = 18 + 60 * np.abs(dth) / (np.abs(dth).max() or 1.0)
    # black and white, so the update's sign never reads as a class colour
    ax.scatter(xin[down, 0], xin[down, 1], s=size[down], marker="v", c="white", edgecolors="black",
               linewidths=0.6, zorder=5)
    ax.scatter(xin[~down, 0], xin[~down, 1], s=size[~down], marker="^", c="black", edgecolors="white",
               linewidths=0.6, zorder=5)


def plot_toy2d(view: dict):
    """Notebook 00: the energy view in two dimensions, from :meth:`jeat_core.paper.toy2d.ToyLab.view`.

    (a) E(x, y) of the chosen class with that class's shown points: arrows ``x → x_in`` (the
    training input; Δ_x E) and at ``x_in`` a triangle pointing the way one update moved E(x_in, y)
    (▼ down, ▲ up; size ∝ |Δ_θ E|); (b) the same for E(x) with every shown point, and the replay
    buffer's SGLD samples (×) for the SGLD methods; (c) Langevin paths on E(x, y) (Eq. 17) from
    class-Gaussian seeds (○ start, ● end) over E(x, y)'s contour lines; (d) Δ_x E and (e) Δ_θ E
    during training (Fig. 3: means over the logged updates of ``view["log"]``, with the share of
    updates that lowered the energy), each on its own scale."""
    from matplotlib.lines import Line2D  # matplotlib: heavy, loaded only to draw


    g, u, label = view["grids"], view["update"], view["label"]
    axis, name = g["axis"], TOY_CLASSES[label]
    xd, yd = view["data"]
    fig, axes = subplots(1, 4, figsize=(12.4, 3.4), gridspec_kw={"width_ratios": [1, 1, 1, 0.75]})
    # a fixed layout (tight_layout or a tight bounding box would cost the explorer half a second):
    # the placeholder engine keeps it and tells figure_png not to draw the figure twice
    from matplotlib.layout_engine import PlaceHolderLayoutEngine

    fig.subplots_adjust(left=0.03, right=0.985, bottom=0.14, top=0.84, wspace=0.32)
    fig.set_layout_engine(PlaceHolderLayoutEngine(adjust_compatible=True, colorbar_gridspec=True))
    keep = slice(None, None, max(1, len(yd) // 800))  # the data as a backdrop: 800 points are enough
    xd, colours = xd[keep], np.array(TOY_COLOURS)[yd[keep]]
    for ax in axes[:3]:
        ax.scatter(xd[:, 0], xd[:, 1], s=5, c=colours, alpha=0.8, edgecolors="black", linewidths=0.15, zorder=1)
    _toy_panel(axes[0], g["joint"][label], axis, f"(a) E(x, y={name}): attack and update")
    _toy_updates(axes[0], u, "joint", u["shown"] & (u["y"] == label))
    _toy_panel(axes[1], g["marginal"], axis, "(b) E(x): attack and update")
    if u["negatives"] is not None:
        neg = u["negatives"][:: max(1, len(u["negatives"]) // 200)]
        axes[1].scatter(neg[:, 0], neg[:, 1], s=8, marker="x", c="black", linewidths=0.6, zorder=2)
    _toy_updates(axes[1], u, "marginal", u["shown"])
    _toy_panel(axes[2], g["joint"][label], axis, f"(c) Langevin on E(x, y={name}), Eq. 17", filled=False)
    p = view["paths"]  # (T, n, 2)
    c = TOY_COLOURS[label]
    for i in range(p.shape[1]):
        axes[2].plot(p[:, i, 0], p[:, i, 1], color=c, lw=0.8, alpha=0.8, zorder=3)
    axes[2].scatter(p[0, :, 0], p[0, :, 1], s=16, facecolors="white", edgecolors=c, zorder=4)
    axes[2].scatter(p[-1, :, 0], p[-1, :, 1], s=16, c=c, edgecolors="black", linewidths=0.4, zorder=5)
    axes[2].text(0.02, 0.02, f"η = {view['eta']:g}, {view['steps']} steps, noise √η", transform=axes[2].transAxes,
                 fontsize=7)
    axes[2].legend(handles=[Line2D([], [], marker="o", ls="", color=c, markeredgecolor="k", markeredgewidth=0.3,
                                   label=f"class {n}") for n, c in zip(TOY_CLASSES, TOY_COLOURS)],
                   loc="upper left", fontsize=6.5, frameon=True, framealpha=0.8, handletextpad=0.1, borderpad=0.3)
    # (d), (e): Fig. 3's quantities over the training run (means over the logged updates, each point
    # at its own label), the attack's Δ_x E and the update's Δ_θ E each on its own scale
    gs = axes[3].get_subplotspec().subgridspec(2, 1, hspace=0.8)
    axes[3].remove()
    log = view["log"]
    for i, (key, what, colour) in enumerate([("dxE", r"(d) $\Delta_x E$ (attacks)", "#d62728"),
                                             ("dthetaE", r"(e) $\Delta_\theta E$ (updates)", "#1f77b4")]):
        ax = fig.add_subplot(gs[i])
        steps = [[r[f"{key}_{kind}_mean"] for r in log] for kind in ("joint", "marginal")]
        vals = [float(np.mean(v)) if v else 0.0 for v in steps]
        lim = max(abs(v) for v in vals) * 1.25 or 1.0
        ax.barh([0, 1], vals, color=colour, height=0.6)
        for j, (v, per_step) in enumerate(zip(vals, steps)):  # the value, written in the empty half
            neg = f", {np.mean(np.array(per_step) < 0):.0%} < 0" if key == "dthetaE" and per_step else ""
            ax.text(-0.5 * lim if v >= 0 else 0.5 * lim, j, f"{v:+.2g}{neg}", va="center",  # mid empty half
                    ha="center", fontsize=7)
        ax.set_xlim(-lim, lim)
        ax.set_yticks([0, 1], ["E(x, y)", "E(x)"], fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0, color="k", lw=0.6)
        ax.set_xticks([])  # the values are written on the bars
        ax.set_title(f"{what}, mean of {len(log)} steps", fontsize=8)
    handles = [Line2D([], [], marker=m, ls="", color=c, markeredgecolor="k", label=t) for m, c, t in
               [("v", "white", r"one more update: $\Delta_\theta E < 0$"),
                ("^", "black", r"$\Delta_\theta E > 0$")]]
    if u["negatives"] is not None:
        handles.append(Line2D([], [], marker="x", ls="", color="k", label="SGLD samples x̃"))
    axes[1].legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, frameon=False, fontsize=7)
    used = [f"ε = {view['eps']:g}" if view["uses"][1] is not None else "",
            f"σ = {view['sigma']:g}" if view["uses"][2] is not None else ""]
    fig.suptitle(f"{view['method']} ({', '.join(s for s in used if s) or 'no ε, σ'}): clean accuracy "
                 f"{view['clean_acc']:.1%}, trained in {view['train_seconds']:.1f} s", fontsize=10)
    return fig

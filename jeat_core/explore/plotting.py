"""The drawing kit every figure, explorer and report shares: matplotlib figures that are not registered
with pyplot and show themselves as PNGs in Jupyter (:func:`subplots`), their PNG bytes
(:func:`figure_png`), ``.pdf`` + ``.png`` files (:func:`save_figure`), ``.md`` + ``.json`` tables
(:func:`save_table`, :class:`Table`), image grids, and the models' fixed colours (:data:`MODEL_COLOURS`).
Matplotlib loads on the first drawing, not on import."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from torch import Tensor

MODEL_COLOURS = {"standard": "#7f7f7f", "noise-8": "#c7e9c0", "noise-16": "#74c476", "noise-24": "#238b45",
                 "at": "#1f77b4", "prejeat": "#ff7f0e", "jem": "#9467bd", "jeat": "#d62728", "trades": "#8c564b"}


def _figure_class():
    """A matplotlib ``Figure`` that shows itself as a PNG in Jupyter (``_repr_png_``).

    Built on first use so importing :mod:`jeat_core.explore.figures` does not import matplotlib. No
    pyplot and no inline backend are involved: the figure renders the same way in JupyterLab,
    in a headless ``nbclient`` run and in ``jeat figures`` (which saves it with
    :func:`save_figure`)."""
    global _FIGURE_CLASS
    if _FIGURE_CLASS is None:
        from matplotlib.figure import Figure  # matplotlib: heavy, loaded only to draw

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
    import matplotlib as mpl  # matplotlib: heavy, loaded only to draw

    with mpl.rc_context({"font.size": 9, "axes.titlesize": 10}):
        fig = _figure_class()(figsize=kwargs.pop("figsize", None), dpi=110, layout=kwargs.pop("layout", None))
        axes = fig.subplots(*args, **kwargs)
    return fig, axes


def figure_png(fig, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (tight bounding box): what notebooks and explorers display."""
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

    def esc(text: str) -> str:  # a "|" inside a cell ("p(y | x)") would split it
        return str(text).replace("|", "\\|")

    md = ["| " + " | ".join(esc(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(esc(_fmt(r[c], (formats or {}).get(c))) for c in cols) + " |" for r in rows]
    return "\n".join(md)


def _fmt(v, fmt: str | None = None) -> str:
    if v is None:  # not measured (e.g. no AutoAttack record yet)
        return "—"
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


def image_grid(x: Tensor, nrow: int, *, split_after: int | None = None, split_gap: int = 6) -> np.ndarray:
    """``(N, C, H, W)`` in [0, 1] -> one ``(H', W', C)`` array with 1-pixel white gutters, ``nrow``
    images a line; ``split_after``: a ``split_gap``-pixel gutter after that many columns (sets the
    first column apart, as Fig. 7's generated image)."""
    n, c, h, w = x.shape
    ncol = nrow
    rows = (n + ncol - 1) // ncol
    extra = split_gap - 1 if split_after else 0

    def left(k: int) -> int:
        return k * (w + 1) + (extra if split_after and k >= split_after else 0)

    grid = np.ones((rows * (h + 1) - 1, ncol * (w + 1) - 1 + extra, c), dtype=np.float32)
    for i in range(n):
        r, k = divmod(i, ncol)
        grid[r * (h + 1):r * (h + 1) + h, left(k):left(k) + w] = x[i].permute(1, 2, 0).cpu().numpy()
    return grid

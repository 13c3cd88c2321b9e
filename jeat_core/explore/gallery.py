"""The static site's view of the notebooks (presenter): explorer galleries and Plotly as HTML.

A live explorer (:class:`jeat_core.explore.widgets.Explorer`) needs a kernel; a page of the static site
(``make site``, ``docs/site.md``) has none. There each explorer is shown as a **gallery**: a few
states computed when the site is built, one control stepped through a ladder of values (the ε
ladder of the attacks, the Langevin step size η, the models of a figure, σ of the noise-trained
models), each state with its figure, its note and (Fig. 2) its rotatable Plotly surface.

The site build injects, after every notebook cell that makes an explorer, a hidden cell::

    gallery(last_explorer(globals()), kind="landscape_explorer")

``kind`` (the name of the function that made the explorer) picks the default ladder from
:data:`LADDERS`; a notebook cell can choose its own with a ``gallery`` entry in its metadata,
e.g. ``# %% tags=["figure"] gallery={"eps255": [0, 4, 8]}`` (one control and its values, or
``"all"``: every option of a drop-down).

An explorer is used through what it exposes (``controls``, ``refresh``, ``png``, ``note``,
``status``, ``extra_out``), so this module imports no other presenter. Nothing here runs in
JupyterLab: only the site build calls it.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

ALL = "all"
MAX_STATES = 6  # a gallery is a few states, not a sweep (docs/site/_static/jeat-site.css shows up to 6)


# ----------------------------------------------------------------------------- which states
def _options(control) -> list | None:
    """``[(label, value), ...]`` of a drop-down or selection slider, else ``None``."""
    labels, values = getattr(control, "_options_labels", None), getattr(control, "_options_values", None)
    if labels is None or values is None:
        return None
    return list(zip(labels, values))


def spread(values: Sequence, current, n: int = 4) -> list:
    """``n`` of ``values`` evenly spaced from first to last, always including ``current``."""
    values = list(values)
    if len(values) <= n:
        return values
    picked = {values[round(i * (len(values) - 1) / (n - 1))] for i in range(n)}
    if current in values:
        picked.add(current)
        if len(picked) > n:  # drop the picked value nearest to the current one (never the ends)
            inner = [v for v in picked if v != current and v not in (values[0], values[-1])]
            if inner:
                picked.discard(min(inner, key=lambda v: abs(values.index(v) - values.index(current))))
    return [v for v in values if v in picked]


def _eta_ladder(explorer) -> tuple[str, list]:
    """The Langevin step-size ladder (notebook 04), or every model when the explorer is about the
    models (a custom title or model description: Fig. 5's σ, Fig. 6's models)."""
    model = explorer.controls.get("model")
    if model is not None and (getattr(model, "description", "model") != "model"
                              or getattr(explorer, "title", "") != "Langevin generation"):
        return "model", ALL
    step = explorer.controls["step_size"]
    return "step_size", spread([v for _, v in _options(step) or []], step.value)


# the default ladder of each explorer: ``explorer -> (control, values)``; values ``ALL``: every option
LADDERS: dict[str, Callable[[object], tuple[str, Sequence | str]]] = {
    "attack_explorer": lambda e: ("eps255", [0.0, 2.0, 4.0, 8.0, 16.0]),  # the ε ladder
    "landscape_explorer": lambda e: ("model", ALL),  # Fig. 2's models, each with its 3-D surface
    "generation_explorer": _eta_ladder,  # the η ladder, or σ / the models
    "fisher_explorer": lambda e: ("n_probes", [1, 4, 16]),
    "robustness_explorer": lambda e: ("eps255", [2.0, 4.0, 8.0, 16.0]),
    "memorisation_explorer": lambda e: ("model", ALL),
}


def _fallback(explorer) -> tuple[str, Sequence | str]:
    """An explorer without a ladder: its first drop-down's options, else its first slider's ends and value."""
    for name, c in explorer.controls.items():
        if _options(c) is not None:
            return name, ALL
    for name, c in explorer.controls.items():
        if hasattr(c, "min") and hasattr(c, "max"):
            return name, sorted({c.min, c.value, c.max})
    raise ValueError("an explorer without controls has no gallery")


def ladder(explorer, kind: str = "", choice: dict | None = None) -> tuple[str, list]:
    """The control a gallery steps through and its values: ``choice`` (``{control: values}``, a
    cell's ``gallery`` metadata), else :data:`LADDERS` ``[kind]``, else the first drop-down or slider."""
    if choice:
        (name, values), = choice.items()
    else:
        name, values = (LADDERS[kind] if kind in LADDERS else _fallback)(explorer)
    if name not in explorer.controls:
        raise KeyError(f"explorer has no control {name!r}; it has {sorted(explorer.controls)}")
    control = explorer.controls[name]
    options = _options(control)
    if values == ALL:
        if options is None:
            raise ValueError(f"{name!r} is not a drop-down: give its values")
        values = [v for _, v in options]
    values = list(values)
    if options is None and hasattr(control, "min"):  # a slider clips what it is given: keep distinct values
        values = list(dict.fromkeys(min(max(v, control.min), control.max) for v in values))
    return name, values[:MAX_STATES]


# ----------------------------------------------------------------------------- the gallery
@dataclass
class State:
    """One state of a gallery: the caption, the figure (PNG bytes), the explorer's note (HTML),
    the error it reported (a refused combination), an extra MIME bundle (a Plotly surface), and
    whether it is the notebook's own setting."""

    caption: str
    png: bytes | None
    note: str = ""
    error: str = ""
    extra: dict = field(default_factory=dict)
    current: bool = False  # the notebook's own setting (shown first on the page)


def _label(control, value) -> str:
    for label, v in _options(control) or []:
        if v == value:
            return str(label)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _description(control, name: str) -> str:
    return getattr(control, "description", "") or name


def _text(html_text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", html_text or "")).strip()


def collect(explorer, name: str, values: Sequence) -> list[State]:
    """Set control ``name`` to each of ``values`` in turn (each change recomputes, linked controls
    follow as in JupyterLab) and keep what the explorer shows; then set it back."""
    control = explorer.controls[name]
    original = control.value
    states = []
    try:
        for v in values:
            if control.value != v:
                control.value = v  # observed: the explorer recomputes (and applies its links)
            elif explorer.png is None:
                explorer.refresh()
            error = _text(explorer.status.value)
            outputs = getattr(getattr(explorer, "extra_out", None), "outputs", ()) or ()
            label, desc = _label(control, v), _description(control, name)
            caption = label if label.startswith(desc) or "=" in label else f"{desc} = {label}"
            if v == original:
                caption += " (the notebook's setting)"
            states.append(State(caption, None if error else explorer.png, explorer.note.value or "", error,
                                dict(outputs[0].get("data", {})) if outputs and not error else {}, v == original))
    finally:
        if control.value != original:
            control.value = original
    return states


def plotly_html(fig, *, height: int | None = None) -> str:
    """A Plotly figure (a ``Figure`` or its JSON dict) as an HTML ``<div>`` + script that draws it
    with the page's ``Plotly`` (the site loads plotly.js itself: no CDN)."""
    import plotly.io as pio  # plotly: heavy, loaded only for the interactive views

    if isinstance(fig, dict):
        fig = dict(fig)
        if height:
            fig["layout"] = {**fig.get("layout", {}), "height": height}
    return pio.to_html(fig, include_plotlyjs=False, full_html=False, config={"responsive": True},
                       validate=False)


@dataclass
class Gallery:
    """A few states of an explorer, shown as HTML (a grid of figures with captions)."""

    title: str
    control: str
    states: list[State]

    def html(self) -> str:
        """One tab per state (pure HTML + CSS radio buttons, no script): the reader steps through
        the states as through the explorer's control; every state is in the page."""
        uid = "jg-" + hashlib.sha256((self.title + "|".join(s.caption for s in self.states)).encode()).hexdigest()[:8]
        tabs, panels = [], []
        first = next((i for i, s in enumerate(self.states) if s.current), 0)
        for i, s in enumerate(self.states):
            checked = " checked" if i == first else ""
            tabs.append(f'<input type="radio" name="{uid}" id="{uid}-{i}"{checked}>'
                        f'<label for="{uid}-{i}">{html.escape(s.caption)}</label>')
            parts = [f"<figcaption>{html.escape(s.caption)}</figcaption>"]
            if s.png:
                parts.append(f'<img src="data:image/png;base64,{base64.b64encode(s.png).decode("ascii")}" '
                             f'alt="{html.escape(self.title)}: {html.escape(s.caption)}">')
            if s.error:
                parts.append(f'<p class="jeat-gallery-error">{html.escape(s.error)}</p>')
            if s.note:
                parts.append(f'<div class="jeat-gallery-note">{s.note}</div>')
            plot = s.extra.get("application/vnd.plotly.v1+json")
            if plot:
                parts.append(f'<div class="jeat-gallery-plotly">{plotly_html(plot, height=480)}</div>')
            panels.append(f'<figure class="jeat-gallery-state">{"".join(parts)}</figure>')
        lead = (f"<p class=\"jeat-gallery-lead\"><b>{html.escape(self.title)}</b>: {len(self.states)} states of "
                f"<code>{html.escape(self.control)}</code>, computed when this page was built (choose one below). "
                "In JupyterLab every control of this explorer is live.</p>")
        return (f'<div class="jeat-gallery">{lead}<div class="jeat-gallery-tabs">{"".join(tabs)}'
                f'<div class="jeat-gallery-panels">{"".join(panels)}</div></div></div>')

    def _repr_mimebundle_(self, **kwargs):
        text = f"[gallery: {self.title}, {self.control} = " + ", ".join(s.caption for s in self.states) + "]"
        return {"text/html": self.html(), "text/plain": text}


def gallery(explorer, *, kind: str = "", choice: dict | None = None) -> Gallery:
    """The explorer as a :class:`Gallery` of a few states (see :func:`ladder` for which)."""
    name, values = ladder(explorer, kind, choice)
    title = getattr(explorer, "title", "") or kind.replace("_", " ") or "explorer"
    return Gallery(title, _description(explorer.controls[name], name), collect(explorer, name, values))


def is_explorer(obj) -> bool:
    return all(hasattr(obj, a) for a in ("controls", "refresh", "png", "note", "status"))


def last_explorer(namespace: dict):
    """The explorer the previous cell made: its displayed result (``Out``), else the last explorer
    bound to a name in ``namespace`` (a notebook's ``globals()``)."""
    history, out = namespace.get("In") or [], namespace.get("Out") or {}
    previous = len(history) - 2  # IPython's In: '' first, then one entry per cell run, this cell last
    if is_explorer(out.get(previous)):
        return out[previous]
    found = [v for k, v in namespace.items() if not k.startswith("_") and is_explorer(v)]
    if not found:
        raise LookupError("no explorer in this notebook's namespace")
    return found[-1]


# ----------------------------------------------------------------------------- Plotly on the site
def use_site_renderer() -> None:
    """Show Plotly figures as HTML that the site's own plotly.js draws (``make site`` calls this
    in a hidden first cell; JupyterLab keeps its own renderer)."""
    import plotly.io as pio  # plotly: heavy, loaded only for the interactive views
    from plotly.io.base_renderers import MimetypeRenderer  # plotly: heavy, loaded only for the interactive views

    class SiteRenderer(MimetypeRenderer):
        def to_mimebundle(self, fig_dict):
            return {"text/html": plotly_html(fig_dict)}

    pio.renderers["jeat_site"] = SiteRenderer()
    pio.renderers.default = "jeat_site"

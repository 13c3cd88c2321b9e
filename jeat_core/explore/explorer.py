"""What every notebook explorer is made of (:mod:`jeat_core.explore.widgets` builds them).

An :class:`Explorer` owns its controls, a ``compute(**values) -> dict`` function and a
``draw(result) -> Figure`` function. A change of any control recomputes and redraws; ``explorer.last``
holds the latest result, so tests (and curious readers) can inspect what the figure shows. Also here:
:func:`torch_threads` (the thread count an explorer computes with), :func:`require` (a notebook cell's
names, checked) and :func:`label_dropdown`.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Callable

import torch

from jeat_core.core.data import CIFAR10_CLASSES
from jeat_core.explore.plotting import figure_png


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run torch ops with ``n`` intra-op threads, restoring the previous number afterwards.

    Explorers compute small batches (a few images); on a 2-core machine that other work shares,
    two OpenMP threads contend with it and a Langevin step is up to 10× slower than with one,
    so explorer callbacks use one thread by default."""
    old = torch.get_num_threads()
    if n and n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n and n != old:
            torch.set_num_threads(old)


EXTRA_DELAY_S = 0.25  # how long an explorer's extra bundle (a Plotly surface) waits for its figure to show


def _kernel_loop():
    """The running IPython kernel's event loop (tornado ``IOLoop``) while it handles a comm message,
    i.e. a control moved in the browser; ``None`` otherwise: a script, the tests, or a cell's code
    setting a control (the static site's galleries), which must see the extra bundle at once."""
    try:
        from IPython import get_ipython  # the notebook stack: only inside a notebook
    except ImportError:
        return None
    kernel = getattr(get_ipython(), "kernel", None)
    loop, get_parent = getattr(kernel, "io_loop", None), getattr(kernel, "get_parent", None)
    if loop is None or get_parent is None:
        return None
    parent = get_parent("shell") or {}
    return loop if parent.get("header", {}).get("msg_type") == "comm_msg" else None


def require(namespace: dict, *names: str, cell: str) -> None:
    """Raise a ``NameError`` that says which cell to run first when ``names`` are not defined
    in ``namespace`` (a notebook's ``globals()``); e.g. an explorer cell run before the setup cell."""
    missing = [n for n in names if n not in namespace]
    if missing:
        raise NameError(f"{', '.join(missing)} not defined yet: run {cell} first "
                        "(or Run ▸ Run All Cells).")


class Explorer:
    """Controls + ``compute(**values) -> dict`` + ``draw(result) -> Figure``.

    Optional ``note(result) -> str`` (HTML under the figure: diagnostics, warnings) and
    ``extra(result) -> dict`` (a MIME bundle shown below, e.g. a Plotly 3-D surface).
    ``links`` maps a control name to ``f(values) -> {control: new value}``, applied (without
    extra recomputations) when that control changes, e.g. a model's own sampler settings.
    ``seconds`` is the time of the latest update up to the new figure (compute + draw + PNG),
    ``timings`` all of them; ``extra_seconds`` the time of the latest ``extra`` bundle.

    The ``extra`` bundle is sent after the figure. When a control changes in a running kernel it is
    sent a moment later (:data:`EXTRA_DELAY_S`), from the kernel's event loop: a browser needs a
    second or more to build a new Plotly WebGL surface, and the figure should not wait for it.
    """

    def __init__(self, controls: dict, compute: Callable[..., dict], draw: Callable[[dict], object], *,
                 title: str = "", note: Callable[[dict], str] | None = None,
                 extra: Callable[[dict], dict] | None = None, links: dict | None = None, threads: int | None = 1):
        import ipywidgets as w  # the notebook stack: only inside a notebook

        self.controls, self.compute, self.draw, self.title = controls, compute, draw, title
        self.note_fn, self.extra_fn, self.links, self.threads = note, extra, links or {}, threads
        self.png: bytes | None = None
        self.out = w.Output()
        self.extra_out = w.Output()
        self.status = w.HTML("")
        self.note = w.HTML("")
        self.last: dict | None = None
        self.seconds: float | None = None
        self.extra_seconds: float | None = None
        self.timings: list[float] = []
        self._held = False
        self._updates = 0  # refreshes so far: a deferred extra bundle of an older one is dropped
        for key, c in controls.items():
            if hasattr(c, "continuous_update"):
                c.continuous_update = False  # recompute when a slider is released, not at every pixel
            c.observe(lambda _change, key=key: self._changed(key), names="value")
        header = [w.HTML(f"<b>{title}</b>")] if title else []
        boxes = [w.HBox(list(controls.values())[i:i + 3]) for i in range(0, len(controls), 3)]
        self.widget = w.VBox(header + boxes + [self.status, self.out, self.note, self.extra_out])
        self.refresh()

    def values(self) -> dict:
        return {k: c.value for k, c in self.controls.items()}

    @contextlib.contextmanager
    def hold(self):
        """Change several controls with one recomputation at the end."""
        held, self._held = self._held, True
        try:
            yield
        finally:
            self._held = held
        if not held:
            self.refresh()

    def _changed(self, key: str) -> None:
        if self._held:
            return
        if key in self.links:
            updates = self.links[key](self.values())
            if updates:
                with self.hold():
                    for k, v in updates.items():
                        self.controls[k].value = v
                return
        self.refresh(defer_extra=True)

    def refresh(self, *, defer_extra: bool = False) -> dict:
        """Recompute with the controls' values and show the new figure.

        The figure is rendered to PNG here and written into the output widget's ``outputs`` in
        one update (no flicker; no reliance on output capture, which headless runners such as
        nbclient handle poorly). A ``ValueError`` from ``compute`` is shown as a message and the
        previous figure stays. The ``extra`` bundle follows the figure (``defer_extra``: from the
        kernel's event loop, :meth:`_show_extra`)."""
        self.status.value = "<i>computing…</i>"
        self._updates += 1
        t0 = time.perf_counter()
        result = None
        try:
            with torch_threads(self.threads):
                result = self.compute(**self.values())
                fig = self.draw(result)
                png = figure_png(fig)
            self.last, self.png = result, png
            self.out.outputs = ({"output_type": "display_data", "metadata": {},
                                 "data": {"image/png": base64.b64encode(png).decode("ascii"),
                                          "text/plain": f"[figure: {self.title or 'explorer'}]"}},)
            self.note.value = self.note_fn(result) if self.note_fn else ""
            self.status.value = ""
        except ValueError as e:  # bad combination of settings: say so, keep the old figure
            self.status.value = f"<span style='color:#b00'>{e}</span>"
            result = None
        self.seconds = time.perf_counter() - t0
        self.timings.append(self.seconds)
        if result is not None and self.extra_fn:
            self._show_extra(result, defer=defer_extra)
        return self.last

    def _show_extra(self, result: dict, *, defer: bool) -> None:
        """Compute and show ``extra(result)`` (``None`` clears it): now, or with ``defer`` inside a
        running kernel :data:`EXTRA_DELAY_S` later from its event loop, once the figure's message
        is out (dropped if the controls changed again in between)."""
        update = self._updates

        def show():
            if update != self._updates:
                return
            t0 = time.perf_counter()
            with torch_threads(self.threads):
                extra = self.extra_fn(result)
            self.extra_out.outputs = () if extra is None else (
                {"output_type": "display_data", "metadata": {}, "data": extra},)
            self.extra_seconds = time.perf_counter() - t0

        loop = _kernel_loop() if defer else None
        if loop is None:
            show()
        else:  # add_callback is thread-safe; call_later then runs on the loop's own thread
            loop.add_callback(lambda: loop.call_later(EXTRA_DELAY_S, show))

    def _repr_mimebundle_(self, **kwargs):
        """The live widget, plus the current figure as a PNG for viewers without widgets
        (a saved notebook on GitHub, nbconvert, a headless run)."""
        bundle = self.widget._repr_mimebundle_(**kwargs) or {}
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data = dict(data)
        if self.png:
            data["image/png"] = base64.b64encode(self.png).decode("ascii")
        data["text/plain"] = f"[explorer: {self.title or 'figure'}]"
        return data


def label_dropdown(value: int = 8, description: str = "label"):
    import ipywidgets as w  # the notebook stack: only inside a notebook

    return w.Dropdown(options=[(n, i) for i, n in enumerate(CIFAR10_CLASSES)], value=value, description=description)

"""Notebook 3's live training run (ipywidgets): a presenter, like :mod:`jeat_core.explore.widgets`.

:class:`LiveTraining` trains a fresh cpu-preset model with :func:`jeat_core.train.training.fit` and
redraws Fig. 3 (Δ_x E / Δ_θ E, :func:`jeat_core.explore.figures.plot_delta_energy`) as it goes.
"""

from __future__ import annotations

import base64
from dataclasses import replace

from jeat_core.explore.figures import plot_delta_energy
from jeat_core.explore.plotting import figure_png
from jeat_core.train import methods as registry  # registry.METHODS read at call time
from jeat_core.train.training import fit, make_config


class LiveTraining:
    """A short live training run (notebook 3): method, steps and ε controls, a *Run* button, a
    progress bar with "step k/N", and the Fig. 3 plot of Δ_x E / Δ_θ E redrawn as it goes.

    ``run()`` trains a fresh cpu-preset model with :func:`jeat_core.train.training.fit` (batch 64,
    logging every step) and returns the log; the button calls it too. Like
    :class:`jeat_core.explore.widgets.Explorer`, it displays as the live widget plus the latest plot as a
    PNG for viewers without widgets."""

    def __init__(self, train_data, test_data, *, steps: int = 30, eps255: float = 8.0, method: str = "at"):
        import ipywidgets as w  # the notebook stack: only inside a notebook

        self.train_data, self.test_data = train_data, test_data
        self.steps = w.IntSlider(steps, 2, 200, description="steps")
        self.eps = w.FloatSlider(eps255, min=0.0, max=16.0, step=1.0, description="ε × 255")

        # fast enough to watch
        attack_only = [n for n, m in registry.METHODS.items() if m.uses_attack and not m.uses_sgld]
        self.method = w.Dropdown(options=attack_only, value=method, description="method")
        self.button = w.Button(description="Run")
        self.progress = w.IntProgress(0, 0, steps, description="")
        self.label = w.HTML("")
        self.out = w.Output()
        self.png: bytes | None = None
        self.log: list[dict] = []
        self.button.on_click(lambda _b: self.run())
        self.widget = w.VBox([w.HBox([self.method, self.steps, self.eps, self.button]),
                              w.HBox([self.progress, self.label]), self.out])

    def _show(self, title: str) -> None:
        self.png = figure_png(plot_delta_energy(self.log, title=title))
        self.out.outputs = ({"output_type": "display_data", "metadata": {},
                             "data": {"image/png": base64.b64encode(self.png).decode("ascii"),
                                      "text/plain": f"[figure: {title}]"}},)

    def run(self) -> list[dict]:
        n, method, eps = self.steps.value, self.method.value, self.eps.value
        cfg = make_config(method, "cpu", max_steps=n, log_every=1, checkpoint_every=0, eval_n=0)
        cfg = replace(cfg, attack=replace(cfg.attack, eps=eps / 255), optim=replace(cfg.optim, batch_size=64))
        self.log, self.button.disabled = [], True
        self.progress.max, self.progress.value = n, 0
        redraw = max(1, n // 15)
        title = f"live run: {method}, ε = {eps:.0f}/255"

        def on_step(step: int, metrics: dict) -> None:
            self.log.append({"step": step - 1, **metrics})
            self.progress.value = step
            self.label.value = f"step {step}/{n} · loss {metrics['loss']:.3f}"
            if step % redraw == 0 or step == n:
                self._show(f"{title} (step {step}/{n})")

        try:
            fit(cfg, train_data=self.train_data, test_data=self.test_data, progress=False, device="cpu",
                callbacks=(on_step,))
            self.label.value = f"done: {n}/{n} steps"
        finally:
            self.button.disabled = False
        return self.log

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs) or {}
        data = dict(bundle[0] if isinstance(bundle, tuple) else bundle)
        if self.png:
            data["image/png"] = base64.b64encode(self.png).decode("ascii")
        data["text/plain"] = "[live training run]"
        return data

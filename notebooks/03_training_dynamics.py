# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3 · What adversarial training does to the energies (Fig. 3, Eq. 15)
#
# During adversarial training, at each logged step we measure (Eq. 15)
#
# * $\Delta_x E = E(x_{adv}) - E(x_{ori})$ — how much the attack raised the energy (before the update);
# * $\Delta_\theta E = E_{\theta'}(x_{adv}) - E_\theta(x_{adv})$ — how much the parameter update lowered it,
#
# for both $E(x, y)$ and $E(x)$. The paper finds $\Delta_x E(x,y) > 0$, $\Delta_\theta E(x,y) < 0$,
# and $\Delta_\theta E(x)$ fluctuating around 0: classification training never shapes $E(x)$.
# `jeat train` writes these numbers to `energy_log.jsonl` next to every checkpoint.

# %% tags=["parameters"]
import os

SMOKE = os.environ.get("JEAT_SMOKE") == "1"
MODEL = "at"
LIVE_STEPS = 6 if SMOKE else 60
FIGURES = os.environ.get("JEAT_FIGURES", "../figures")

# %%
import numpy as np

from jeat_core.checkpoints import ENERGY_LOG, resolve
from jeat_core.figures import plot_delta_energy, read_energy_log, save_figure

log = read_energy_log(resolve(f"cifar10-cpu/{MODEL}") / ENERGY_LOG)
fig = plot_delta_energy(log, title=f"Energy changes during adversarial training ({MODEL}, cpu preset)")
fig

# %%
for key in ("dxE_joint_mean", "dthetaE_joint_mean", "dthetaE_marginal_mean"):
    v = np.array([r[key] for r in log])
    print(f"{key:>24}: mean {v.mean():+.4f}, positive in {np.mean(v > 0):.0%} of {len(v)} logged steps")

# %% [markdown]
# ## A short live run
# Train a fresh model for a few steps with the CE attack (or the energy attack) and watch the
# same quantities. Change `ε` and the number of steps with the sliders, then press *Run*.

# %%
import ipywidgets as w
from IPython.display import display

from jeat_core.data import load_split
from jeat_core.training import fit, make_config

steps_w = w.IntSlider(LIVE_STEPS, 2, 200, description="steps")
eps_w = w.FloatSlider(8.0, min=0.0, max=16.0, step=1.0, description="ε × 255")
method_w = w.Dropdown(options=["at", "prejeat"], description="method")
run_w = w.Button(description="Run")
out = w.Output()
train_data, test_data = load_split("train"), load_split("test")
live = {}


def run_live(_=None):
    from dataclasses import replace

    cfg = make_config(method_w.value, "cpu", max_steps=steps_w.value, log_every=1, checkpoint_every=0, eval_n=0)
    cfg = replace(cfg, attack=replace(cfg.attack, eps=eps_w.value / 255), optim=replace(cfg.optim, batch_size=64))
    res = fit(cfg, train_data=train_data, test_data=test_data, progress=True, device="cpu",
              callbacks=(lambda step, m: live.setdefault("log", []).append({"step": step - 1, **m}),))
    with out:
        out.clear_output(wait=True)
        display(plot_delta_energy(live.pop("log"), title=f"live run: {method_w.value}, ε = {eps_w.value:.0f}/255"))
    return res


run_w.on_click(run_live)
display(w.HBox([method_w, steps_w, eps_w, run_w]), out)
run_live()

# %%
print(*save_figure(fig, FIGURES, "fig3_delta_energy"), sep="\n")

# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
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

from jeat_core.paper.paper_items import PAPER_SIZES, SMOKE_SIZES

SMOKE = os.environ.get("JEAT_SMOKE") == "1"
SIZES = SMOKE_SIZES if SMOKE else PAPER_SIZES
LIVE_STEPS = 4 if SMOKE else 30  # about 2.5 s per step on 2 CPU cores
FIGURES = os.environ.get("JEAT_FIGURES", "../figures-local")  # git-ignored; `make figures` writes figures/

# %% tags=["figure"]
import numpy as np

from jeat_core.explore.figures import plot_delta_energy
from jeat_core.explore.plotting import Table, save_figure
from jeat_core.paper.paper_items import fig3_data
from jeat_core.paper.prose import say

fig3 = fig3_data()  # the producer `jeat figures` calls too: the energy logs of the shipped AT runs (seeds)
fig = plot_delta_energy(fig3["runs"], title=fig3["title"], control=fig3["control"])  # the shipped run first
fig

# %% [markdown]
# **The control.** The grey line is the standard model's $\Delta_\theta E$ over the same steps: training
# with no attack at all (ε = 0). Its update also lowers $E(x, y)$ of the batch it learns from, so the
# half of claim 2 that says $\Delta_\theta E(x, y) < 0$ is what *any* classification update does, not
# something adversarial training adds; what AT adds is $\Delta_x E(x, y) > 0$, the attack raising the
# joint energy of the inputs the update then lowers. The next cell prints the control's numbers.

# %%
ctrl = [r["dthetaE_joint_mean"] for r in fig3["control"] or [] if 0 < r["step"] <= fig3["log"][-1]["step"]]
if ctrl:
    say(f"standard training, Δ_θ E(x, y) over its first {fig3['log'][-1]['step']} steps: mean {np.mean(ctrl):+.4f}, "
        f"negative at {np.mean(np.array(ctrl) < 0):.0%} of {len(ctrl)} logged steps")

# %% [markdown]
# The same recipe trained from three seeds (`at`, `at-s1`, `at-s2`; the seeds log every 10 steps,
# the first run every 50). Per run and quantity: the mean over its logged steps and the share of
# steps with a positive value. The audit's claim 2 pools the logged steps of all runs for its
# intervals, and calls the claim not reproduced if any single run contradicts it.

# %%
Table([{"run": run, "quantity": key.removesuffix("_mean"), "mean over logged steps": float(np.mean(v)),
        "share of steps > 0": float(np.mean(np.array(v) > 0)), "logged steps": len(v)}
       for run, run_log in fig3["runs"].items()
       for key in ("dxE_joint_mean", "dthetaE_joint_mean", "dthetaE_marginal_mean")
       for v in [[r[key] for r in run_log if r["step"] > 0]]],  # step 0 measures no update: left out, as in the audit
      formats={"mean over logged steps": "{:+.4f}", "share of steps > 0": "{:.0%}"})

# %% [markdown]
# ## The ΔE histograms: every image of one update, not the batch's mean
# Fig. 3 draws one point per update: the mean over the batch (with its SD). A mean can hide a split
# batch, so here are the per-example distributions of $\Delta_x E(x, y)$, $\Delta_\theta E(x, y)$ and
# $\Delta_\theta E(x)$ (Eq. 15) for single AT updates at three points of training: the first update
# of a fresh run, a later one inside the recipe's learning-rate warm-up, and one update of the
# shipped, trained AT model at the recipe's peak learning rate (a probe: the schedule ends at a
# learning rate of 0, which would move nothing). Each outline is scaled by its largest |value| so the
# three points fit one axis (the factor is in the legend), with the share of images of the sign the
# paper's claim is about. It trains a fresh model for 100 steps (2 in smoke mode), a few minutes on
# 2 cores.

# %% tags=["figure"]
from jeat_core.core.checkpoints import load_model
from jeat_core.core.data import load_split
from jeat_core.explore.figures import plot_delta_energy_hist
from jeat_core.paper.paper_items import fig3_histograms

hist = fig3_histograms(load_split("train"), load_model("cifar10-cpu/at")[0], sizes=SIZES)
fig_hist = plot_delta_energy_hist(hist)
fig_hist

# %%
for point, v in hist["points"].items():
    say(f"{point}: Δ_x E(x, y) > 0 for {np.mean(v['dxE_joint'] > 0):.0%} of {hist['batch']} images, "
        f"Δ_θ E(x, y) < 0 for {np.mean(v['dthetaE_joint'] < 0):.0%}, Δ_θ E(x) > 0 for "
        f"{np.mean(v['dthetaE_marginal'] > 0):.0%}")

# %% [markdown]
# Read with the batch means above (the cell prints each point's shares). What to look for: whether the
# attack raises $E(x, y)$ for (nearly) every image, not just on average; whether an update lowers
# $E(x, y)$ for most images of its batch or only on average (an update is a compromise over the batch);
# and whether $\Delta_\theta E(x)$ takes both signs once training is under way, the per-example face of
# "fluctuates around 0". At the very first update of a fresh model all three can share one sign: the
# weights are random and the learning rate is near 0 at the start of the warm-up.

# %% [markdown]
# ## Why $\Delta_\theta E(x)$ hovers near 0: the softmax ignores a common shift of the logits
# Add the same constant $c$ to every logit: $p(y\mid x)$ (Eq. 11), and so the cross-entropy, do
# not change, while both energies of Eq. 12 drop by exactly $c$. So the gradient of CE with
# respect to the logits, $p - e_y$, sums to zero over the classes: CE asks for *no* change of the
# logits' common level, and that level is what $E(x) = -\log\sum_k e^{f_k}$ measures. A CE update
# lowers $E(x_{adv}, y)$ because it raises $f_y$ relative to the others (Fig. 3a), but $E(x)$ moves
# only as a side effect of the shared weights, up about as often as down (Fig. 3b). Nothing in
# classification training shapes $E(x)$; JEAT (notebook 6) adds a term that does.

# %%
import torch
import torch.nn.functional as F

from jeat_core.core.energy import joint_energy, marginal_energy

f = torch.randn(4, 10, generator=torch.Generator().manual_seed(0)) * 3  # logits of 4 images
labels = torch.tensor([0, 3, 5, 9])
for c in (0.0, 5.0):
    print(f"logits + {c:.0f}: CE {F.cross_entropy(f + c, labels):.4f}   "
          f"mean E(x, y) {joint_energy(f + c, labels).mean():+.4f}   mean E(x) {marginal_energy(f + c).mean():+.4f}")
f_ = f.clone().requires_grad_(True)
(g,) = torch.autograd.grad(F.cross_entropy(f_, labels, reduction="sum"), f_)
print("∂CE/∂f summed over the 10 classes, per image:", [f"{v:+.1e}" for v in g.sum(1).tolist()])

# %% [markdown]
# ## A short live run
# Train a fresh model with the CE attack (`at`), the energy attack (`prejeat`) or TRADES and watch
# the same quantities. (TRADES, Zhang et al. 2019, is not in the paper: a robust classifier trained
# by cross-entropy on clean images plus β·KL(p(·|x) ‖ p(·|x_adv)), the attack ascending that KL
# instead of an energy; it is here as a robust model of another objective.) The bar shows "step k/N"
# (then "done: N/N steps") and the plot is redrawn as
# the run goes. It runs 30 steps (4 in smoke mode) of batch 64; change the method, the number of steps (up to 200) or
# `ε`, then press *Run*. The runs use the cpu preset's 200-step learning-rate warm-up followed by
# a cosine decay to 0 at the last step, so a run of 30 steps never gets near the full learning
# rate: its changes are tiny (the cell after the run prints their size), and only the signs are worth reading.

# %% tags=["figure"]
from IPython.display import display

from jeat_core.core.data import load_split
from jeat_core.explore.live_training import LiveTraining

live = LiveTraining(load_split("train"), load_split("test"), steps=LIVE_STEPS)
handle = display(live, display_id=True)
_ = live.run()
handle.update(live)  # the saved notebook keeps the final plot as a picture too

# %%
def signs(log: list[dict]) -> str:
    """The size and signs of a live run's Fig. 3 quantities, as a sentence."""
    v = {k: np.array([r[k] for r in log]) for k in ("dxE_joint_mean", "dxE_marginal_mean", "dthetaE_joint_mean",
                                                     "dthetaE_marginal_mean")}
    size = max(float(np.abs(a).max()) for a in v.values())
    dxj, dxm, dtj, dtm = v.values()
    return (f"{len(log)} steps: the largest change is {size:.1e}; Δ_x E(x, y) > 0 at {np.mean(dxj > 0):.0%} of the "
            f"steps (mean {dxj.mean():+.2g}), Δ_x E(x) > 0 at {np.mean(dxm > 0):.0%}, Δ_θ E(x, y) < 0 at "
            f"{np.mean(dtj < 0):.0%} (mean {dtj.mean():+.2g}), Δ_θ E(x) < 0 at {np.mean(dtm < 0):.0%} "
            f"(mean {dtm.mean():+.2g})")


say(f"This run ({live.method.value}, ε = {live.eps.value:g}/255), " + signs(live.log) + "." if live.log
    else "The live run logged no step.")

# %% [markdown]
# ### What to try
# Fresh cpu-preset models, batch 64, every step logged; after a run, `say(signs(live.log))` prints
# its numbers as the cell under the run does:
#
# * **More steps.** At 30 steps (`at`) the changes are tiny (the run above). At 150 steps, with the
#   learning rate further up its warm-up, does Fig. 3's picture appear: Δ_x E(x, y) > 0 at every
#   step, Δ_θ E(x, y) < 0 at most of them, and Δ_θ E(x) around zero?
# * **The energy attack** (`prejeat`, 30 steps): is Δ_x E(x) > 0 at more steps than under `at`'s CE
#   attack? Ascending E(x, y) alone should drag E(x) up with it (notebook 1 measures it on the
#   trained models).
# * **ε = 0** (`at` with no attack): Δ_x E = 0 at every step by construction; is Δ_θ E(x, y) still
#   negative (the control's numbers above)? An update lowers the energy of whatever it trains on; what
#   adversarial training adds is *where* those points are: higher-energy points next to the data
#   (Δ_x E(x, y) > 0).

# %%
print(*save_figure(fig, FIGURES, "fig3_delta_energy"), *save_figure(fig_hist, FIGURES, "fig3_delta_energy_hist"),
      sep="\n")

# %% [markdown]
# ## What holds at our scale
# What `jeat audit` last measured for the paper's claims this notebook tests: the paper's
# statement, our number with its interval and n, the verdict, and why it may differ at our scale.
# The table is rendered from `figures/audit.json`, so it changes when the audit does.

# %%
from jeat_core.paper.verdicts import verdict_table

verdict_table("03")

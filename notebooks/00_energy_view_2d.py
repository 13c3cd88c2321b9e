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
# # 0 · The energy view in two dimensions (Fig. 1, Eq. 4–20)
#
# The paper's Fig. 1 is a cartoon: an energy-based model (EBM) and an adversarially trained
# classifier both make the energy low and flat around the data, *in different ways*. In two
# dimensions we can draw the real thing. Four classes of points in the unit square, a small MLP
# trained in about a second with each method, and on the plane:
#
# * the energies $E(x, y)$ and $E(x)$ as contour maps (darker = lower energy);
# * one training step: the attack's move $x \to x_{adv}$ (it raises the energy, $\Delta_x E$)
#   and what the parameter update then did to the energy at $x_{adv}$ ($\Delta_\theta E$);
# * Langevin paths from class-Gaussian seeds (Eq. 17).
#
# Nothing here is a toy re-implementation: a point is a one-pixel image with two channels,
# `(B, 2, 1, 1)` in $[0, 1]^2$, and goes through the same energies, attacks, SGLD, losses,
# training loop and sampler as the CIFAR-10 notebooks (`jeat_core.toy2d` only picks toy sizes).
# The classifier is the registry's `toy_mlp` (two SiLU layers of 64).

# %% tags=["parameters"]
import os

from jeat_core.paper.toy2d import SMOKE_TOY, ToySettings

SMOKE = os.environ.get("JEAT_SMOKE") == "1"
SETTINGS = SMOKE_TOY if SMOKE else ToySettings()  # 2,000 points, 150 updates of 256 (smoke: fewer)
WARM_ALL = not SMOKE  # train every (method, ε, σ) the explorer offers now, so each control answers at once
FIGURES = os.environ.get("JEAT_FIGURES", "../figures-local")  # git-ignored; `make figures` writes figures/

# %% [markdown]
# ## Two energies from one classifier (Eq. 11–13)
#
# A classifier with logits $f(x)$ defines $p(y \mid x) = \exp f(x)[y] / \sum_k \exp f(x)[k]$
# (Eq. 11), and from it two energies (Eq. 12):
#
# $$E(x, y) = -f(x)[y], \qquad E(x) = -\log \sum_k \exp f(x)[k].$$
#
# Lower energy means more probable: $p(x, y) \propto e^{-E(x, y)}$ and $p(x) \propto e^{-E(x)}$
# (Eq. 5 and 7). The cross-entropy is exactly their difference (Eq. 13):
# $-\log p(y \mid x) = E(x, y) - E(x)$. The cell below makes the toy data, trains the standard model
# and checks Eq. 13 on it.

# %%
import time

import torch
import torch.nn.functional as F

from jeat_core.core.data import to_float
from jeat_core.core.energy import joint_energy, marginal_energy
from jeat_core.paper.toy2d import TOY_CLASSES, ToyLab

torch.set_num_threads(1)  # tiny models: one thread is faster than two, and leaves the other core free
t_start = time.perf_counter()
lab = ToyLab(SETTINGS)
standard = lab.fit("standard").state.core
x, y = to_float(lab.test.x), torch.from_numpy(lab.test.y)  # (N, 2, 1, 1): points as one-pixel images
with torch.no_grad():
    logits = standard(x)
gap = (joint_energy(logits, y) - marginal_energy(logits) - F.cross_entropy(logits, y, reduction="none")).abs().max()
print(f"{len(lab.train)} training points, {len(lab.test)} test points, classes {', '.join(TOY_CLASSES)}; "
      f"x has shape {tuple(x.shape)}")
print(f"max |E(x,y) − E(x) − CE| over the test points: {float(gap):.1e}")

# %% [markdown]
# ## Fig. 1 (a): how an EBM shapes its energy (Eq. 5, 6, 9, 10)
#
# An EBM models $p_\theta(x) = e^{-E_\theta(x)}/Z_\theta$ (Eq. 5). Its likelihood gradient is
# (Eq. 6)
#
# $$\nabla_\theta \mathcal L_{ML} = \mathbb E_{x^+ \sim p_D}[\nabla_\theta E_\theta(x^+)]
#   - \mathbb E_{x^- \sim p_\theta}[\nabla_\theta E_\theta(x^-)]:$$
#
# **push the energy of the data down, and of the model's own samples up**. The samples come from
# Langevin dynamics, $\tilde x_t = \tilde x_{t-1} - \tfrac{\eta}{2}\nabla_x E(\tilde x_{t-1}) + \sqrt\eta\,\epsilon$
# (Eq. 9; Eq. 10 is the same on $E(x, y)$). Where the samples land in a region without data, the
# update raises the energy there, until low energy is left only near the data. JEAT (Algorithm 1)
# adds exactly this term for $E(x)$, with the samples drawn by SGLD from a replay buffer (Eq. 19, 20).
#
# ## Fig. 1 (b): how adversarial training shapes it (Eq. 1, 14, 15)
#
# Adversarial training (Eq. 1) attacks with the CE loss, which in energies is (Eq. 14)
#
# $$x_{adv} = x + \epsilon\,\mathrm{sign}\,\nabla_x\big(E(x, y) - E(x)\big),$$
#
# so the attack climbs $E(x, y) - E(x)$: $\Delta_x E(x, y) = E(x_{adv}, y) - E(x, y) > 0$. The update
# then lowers the loss at $x_{adv}$; in the paper's measurements (Fig. 3) it pushes
# $E(x_{adv}, y)$ down ($\Delta_\theta E(x, y) < 0$) while $E(x)$ is **left free**: the softmax ignores
# a constant added to every logit, so the loss cannot see the level of $E(x)$. The cell below shows it.
# The energy attack (Eq. 18) drops the $-E(x)$ and climbs $E(x, y)$ alone (PreJEAT, JEAT).

# %%
c = 5.0  # add the same constant to every logit
with torch.no_grad():
    ce, ce_c = F.cross_entropy(logits, y), F.cross_entropy(logits + c, y)
    shift = float((marginal_energy(logits + c) - marginal_energy(logits)).mean())
print(f"CE before {float(ce):.6f}, after adding {c} to every logit {float(ce_c):.6f}; E(x) moved by {shift:+.2f}")

# %% [markdown]
# ## Train every method
#
# `standard` (CE on clean points), `noise` (CE on $x + \mathcal N(0, \sigma^2)$, Sec. 3.2), `at`
# (CE on FGSM-with-random-start examples, Eq. 14), `prejeat` (the energy attack, Eq. 18, CE loss)
# and `jeat` (Algorithm 1: the energy attack, plus $E(x_{adv}) - E(\tilde x_K)$ with $\tilde x_K$
# from 5 exact SGLD steps on $E(x)$ from a 1,000-chain buffer). Each is `jeat_core.training.fit` on
# the 2,000 points, 150 updates of 256 (Adam, learning rate 0.01). The explorer below offers three
# values of $\epsilon$ and $\sigma$ (in units of the square); with `WARM_ALL` every combination is
# trained now, so that no control waits for a training.

# %%
from jeat_core.explore.plotting import Table
from jeat_core.paper.toy2d import TOY_METHODS

if WARM_ALL:
    rows = lab.warm()
else:  # the explorer's defaults only; another setting trains when chosen (seconds)
    rows = lab.warm(TOY_METHODS, eps=(0.05,), sigma=(0.05,))
Table(rows, formats={"seconds": "{:.2f}", "clean accuracy": "{:.1%}"})

# %% [markdown]
# ## Adversarial training in the plane
#
# Panel (a): $E(x, y{=}A)$ of the AT model with the points of class A from one training batch:
# white arrows $x \to x_{adv}$ (the attack, $\Delta_x E$), and at $x_{adv}$ a triangle for the sign of
# $\Delta_\theta E$ after one more update with the method's own loss (▼ the energy fell, ▲ it rose;
# larger = more). Panel (b): the same for $E(x)$, every class. Panel (c): Langevin paths on
# $E(x, y{=}A)$ (Eq. 17) from class-Gaussian seeds of A (○ start, ● end). Panels (d) and (e): Fig. 3's
# $\Delta_x E$ and $\Delta_\theta E$ during training (Eq. 15; means over every fifth update, and the
# share of updates that lowered the energy), measured by the training loop itself.

# %% tags=["figure"]
from jeat_core.explore.toy_figures import plot_toy2d

fig_at = plot_toy2d(lab.view("at", eps=0.05, label=0, eta=1e-3, steps=100))
fig_at

# %% [markdown]
# Every attack climbs both energies (d), and on average the updates bring the energy at $x_{adv}$ back
# down (e) — but only about half of them do (57% for $E(x, y)$, 43% for $E(x)$ at the default sizes;
# the smoke run's few updates differ), and the
# single update drawn in (a) and (b) goes either way from point to point: what the update guarantees
# is a lower *cross-entropy* at $x_{adv}$, not a lower energy. And the lowest $E(x, y{=}A)$ is not at
# the data: it is in the far corner, where the logit of A keeps growing, so Langevin chains on
# Eq. 17 leave the data and run there. Nothing in the loss asks $E(x)$ to be low at the data and
# high elsewhere.

# %% [markdown]
# ## JEAT in the plane
#
# The same picture for JEAT. The crosses in (b) are the replay buffer's SGLD samples $\tilde x$
# whose energy the update pushes up (Fig. 1 (a)).

# %% tags=["figure"]
fig = plot_toy2d(lab.view("jeat", eps=0.05, label=0, eta=1e-3, steps=100))
fig

# %% [markdown]
# Now $E(x)$ is a basin around the data and rises towards the edges, and $E(x, y{=}A)$, which is
# $E(x)$ plus the cross-entropy, has its low region on class A. The Langevin chains stay near the
# data (they wander over the basin, which after 150 updates is still wider than the class), and
# at the default sizes more of JEAT's updates lower the energy at $x_{adv}$ (e) than AT's.
#
# ## Santurkar's step (Eq. 4) vs the energy step (Eq. 17)
#
# Santurkar et al. generate by descending the CE loss with noise (Eq. 4); in energies that is
# Eq. 16, a descent of $E(x, y) - E(x)$, which also climbs $E(x)$. Eq. 17 descends $E(x, y)$ alone.
# How far from the data of their class do the chains end (mean over the four classes, 100 exact
# Langevin steps of $\eta = 10^{-3}$)? The seeds start on the data.

# %%
import numpy as np


def end_distance(method: str, energy: str) -> float:
    """Mean distance from a chain's last point to the nearest training point of its class."""
    d = [lab.distance_to_class(lab.paths(method, 0.05, 0.05, label=k, eta=1e-3, steps=100, energy=energy)[-1], k)
         for k in range(len(TOY_CLASSES))]
    return float(np.mean(np.concatenate(d)))


Table([{"method": m, "Eq. 16 (CE, Santurkar)": end_distance(m, "ce"), "Eq. 17 (E(x, y))": end_distance(m, "joint")}
       for m in TOY_METHODS], formats={"Eq. 16 (CE, Santurkar)": "{:.3f}", "Eq. 17 (E(x, y))": "{:.3f}"})

# %% [markdown]
# ## Explore: method, ε, σ, class, η and steps
#
# *method* and *ε* (the training attack's $\ell_\infty$ radius) or *σ* (the noise of `noise`) choose
# the trained model; *class y* the energy drawn in (a) and (c); *η* and *steps* the Langevin chains
# of (c), exact ($\text{noise} = \sqrt\eta$). Each change redraws in about half a second (the
# models were trained above).

# %% tags=["figure"]
from jeat_core.explore.widgets import require, toy_explorer

require(globals(), "lab", cell="the parameters cell and the first code cell")
explorer = toy_explorer(lab)
explorer

# %% [markdown]
# How long each control took to answer here (each moved once, as a reader would; compute + draw + PNG),
# then all are set back at once:

# %%
latency, defaults = [], explorer.values()
for key, value in [("method", "at"), ("eps", 0.12), ("sigma", 0.12), ("label", 2), ("eta", 1e-4), ("steps", 200)]:
    explorer.controls[key].value = value
    latency.append({"control": key, "new value": str(value), "seconds": explorer.seconds})
with explorer.hold():  # one redraw for all
    for key, value in defaults.items():
        explorer.controls[key].value = value
Table(latency, formats={"seconds": "{:.2f}"})

# %%
from jeat_core.explore.plotting import save_figure

print(*save_figure(fig, FIGURES, "toy2d_jeat"), sep="\n")
print(f"this notebook's computations took {time.perf_counter() - t_start:.0f} s")

# %% [markdown]
# ## What to try
#
# What we saw when we tried these (class A, the distances are the mean over the four classes of
# 12 chains' distance to their class's nearest training point, as in the table above):
#
# * **`noise`, σ = 0.02 → 0.12.** The noise is a *blind* attack: the arrows in (a) and (b) point
#   anywhere, and on average they *lower* E(x) (Δ_x E(x) in (d) goes from about 0 to −0.3: away from
#   the data this classifier's E(x) is lower, not higher). The larger σ, the flatter the energies
#   near the data and the nearer the Eq. 17 chains end (0.38 → 0.23), at a small cost in accuracy
#   (98.2% → 97.4%); most chains still drift to the corner. AT does the same with ε (0.38 → 0.24).
# * **`at` vs `jeat` as η grows (200 steps).** At η = 1e-5 no chain moves far from its seed
#   (0.01 for both). From η = 1e-4 AT's chains leave the data (0.20 at 1e-4, 0.37 at 3e-3), while
#   JEAT's stay within 0.02 of it at every η offered: its E(x, y) has its minimum where the data are.
# * **`jeat`, ε = 0.02 → 0.12.** The basin of E(x) widens, the arrows in (a) grow long enough to
#   reach the centre between the classes, the chains wander further (0.006 → 0.07) and the accuracy
#   drops (98.0% → 96.0%).
#
# ## What holds here
#
# * Eq. 13 holds to float precision, and adding a constant to every logit leaves CE unchanged while
#   moving E(x) by that constant: the classification loss cannot shape E(x).
# * Every attack raises E(x, y) (and E(x)) at the data; on average the updates then lower the energy
#   at $x_{adv}$, as in Fig. 1 (b) and Fig. 3 — but for AT only about half of them do, for E(x, y)
#   as for E(x); the paper's "E(x) fluctuates around 0" is the E(x) half of this. Notebook 3 checks
#   Fig. 3 on CIFAR-10.
# * Only JEAT, whose loss includes the EBM term of Fig. 1 (a), makes E(x, y) low *at* the data, so
#   only its Eq. 17 chains stay there; AT's chains end only a little nearer the data than the
#   standard model's (0.35 vs 0.39 at ε = 0.05; 0.24 at ε = 0.12). That robust classifiers generate images
#   is a statement about high-dimensional images; this toy shows the mechanism, not the claim.
# * Eq. 16 (Santurkar's step) ends about as far from the data (≈ 0.11) for every model here: it
#   descends the cross-entropy, which is small anywhere deep inside the class's region.
# * The toy is easy (every method classifies about 98% of the test points), so robustness
#   differences (Tab. 3) are not visible here.

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
# from a few exact SGLD steps on $E(x)$ from a replay buffer). Each is `jeat_core.training.fit` on
# the toy training points with Adam; the cell prints the sizes (`ToySettings`). The explorer below
# offers a few values of $\epsilon$ and $\sigma$ (in units of the square); with `WARM_ALL` every
# combination is trained now, so that no control waits for a training.

# %%
from jeat_core.explore.plotting import Table
from jeat_core.paper.prose import say
from jeat_core.paper.toy2d import EPS_CHOICES, ETA_CHOICES, SIGMA_CHOICES, TOY_METHODS

say(f"Sizes: {SETTINGS.n_train:,} training points, {SETTINGS.steps} updates of {SETTINGS.batch} (Adam, learning "
    f"rate {SETTINGS.lr:g}); jeat's SGLD: {SETTINGS.sgld_steps} exact steps of size {SETTINGS.sgld_step:g} from a "
    f"{SETTINGS.buffer:,}-chain buffer. The explorer offers ε in {EPS_CHOICES} and σ in {SIGMA_CHOICES}.")
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
# What panels (d) and (e) show for AT, in numbers (from the training log the figure draws; a smoke run's
# few updates say little):

# %%
import numpy as np


def log_summary(method: str, eps: float = 0.05, sigma: float = 0.05) -> dict:
    """Means of the attack's Δ_x E and the update's Δ_θ E over a toy run's logged updates, and the share
    of updates that lowered the energy at x_adv (Δ_θ E < 0), for E(x, y) ("joint") and E(x) ("marginal")."""
    log = lab.logs[lab.key(method, eps, sigma)]
    out = {"n": len(log)}
    for kind in ("joint", "marginal"):
        dx, dth = (np.array([r[f"{q}_{kind}_mean"] for r in log]) for q in ("dxE", "dthetaE"))
        out[kind] = {"dx": float(dx.mean()), "dtheta": float(dth.mean()), "lowered": float((dth < 0).mean())}
    return out


at_log = log_summary("at")
aj, am = at_log["joint"], at_log["marginal"]
say(f"Over AT's {at_log['n']} logged updates the attack "
    + ("raised both energies on average" if aj["dx"] > 0 and am["dx"] > 0 else "did not raise both energies on average")
    + f" (mean Δ_x E(x, y) {aj['dx']:+.3g}, Δ_x E(x) {am['dx']:+.3g}); the update's mean Δ_θ E was "
    f"{aj['dtheta']:+.3g} for E(x, y) and {am['dtheta']:+.3g} for E(x), and it lowered the energy at x_adv at "
    f"{aj['lowered']:.0%} of the updates for E(x, y) and {am['lowered']:.0%} for E(x).")

# %% [markdown]
# So the updates need not lower the energy at $x_{adv}$, and the
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
# data (they wander over the basin, which at the end of this short training is still wider than the
# class). How often JEAT's updates lowered the energy at $x_{adv}$ (e), beside AT's:

# %%
jeat_log = log_summary("jeat")
say("; ".join(f"{what}: JEAT lowered it at {jeat_log[k]['lowered']:.0%} of its updates, "
              f"AT at {at_log[k]['lowered']:.0%}"
              f" ({'more often' if jeat_log[k]['lowered'] > at_log[k]['lowered'] else 'not more often'} for JEAT)"
              for k, what in (("joint", "E(x, y)"), ("marginal", "E(x)"))) + ".")

# %% [markdown]
# ## Santurkar's step (Eq. 4) vs the energy step (Eq. 17)
#
# Santurkar et al. generate by descending the CE loss with noise (Eq. 4); in energies that is
# Eq. 16, a descent of $E(x, y) - E(x)$, which also climbs $E(x)$. Eq. 17 descends $E(x, y)$ alone.
# How far from the data of their class do the chains end (mean over the four classes, exact
# Langevin steps; the table's title gives η and the number of steps)? The seeds start on the data.

# %%
ETA, STEPS = 1e-3, 100  # the chains of the figures above


def end_distance(method: str, energy: str = "joint", eps: float = 0.05, sigma: float = 0.05, eta: float = ETA,
                 steps: int = STEPS) -> float:
    """Mean distance from a chain's last point to the nearest training point of its class."""
    d = [lab.distance_to_class(lab.paths(method, eps, sigma, label=k, eta=eta, steps=steps, energy=energy)[-1], k)
         for k in range(len(TOY_CLASSES))]
    return float(np.mean(np.concatenate(d)))


distances = [{"method": m, "Eq. 16 (CE, Santurkar)": end_distance(m, "ce"), "Eq. 17 (E(x, y))": end_distance(m)}
             for m in TOY_METHODS]
Table(distances, formats={"Eq. 16 (CE, Santurkar)": "{:.3f}", "Eq. 17 (E(x, y))": "{:.3f}"},
      title=f"mean distance to the class's nearest training point after {STEPS} exact Langevin steps of η = {ETA:g}")

# %% [markdown]
# ## Explore: method, ε, σ, class, η and steps
#
# *method* and *ε* (the training attack's $\ell_\infty$ radius) or *σ* (the noise of `noise`) choose
# the trained model; *class y* the energy drawn in (a) and (c); *η* and *steps* the Langevin chains
# of (c), exact ($\text{noise} = \sqrt\eta$). Each change only redraws (the models were trained
# above); the cell after the explorer times each control.

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
# Class A; a chain's distance is, as in the table above, the mean over the four classes of the
# chains' distance to their class's nearest training point. The cell after this list measures each
# experiment on the models trained above (smoke mode trains the missing ones in seconds):
#
# * **`noise`, σ from the smallest to the largest value.** The noise is a *blind* attack: the arrows
#   in (a) and (b) point anywhere, and on average they need not raise E(x) (watch Δ_x E(x) in (d)).
#   Does a larger σ flatten the energies near the data, so that the Eq. 17 chains end nearer, and at
#   what cost in accuracy? AT with ε, the same question.
# * **`at` vs `jeat` as η grows (200 steps).** How far do the chains move at the smallest η? Do
#   AT's chains leave the data as η grows, while JEAT's, whose E(x, y) has its minimum where the data
#   are, stay near it?
# * **`jeat`, ε from the smallest to the largest value.** The basin of E(x) widens, the arrows in (a)
#   grow long enough to reach the centre between the classes; how far do the chains wander, and
#   what happens to the accuracy?

# %%
lo, hi = min(EPS_CHOICES), max(EPS_CHOICES)
s_lo, s_hi = min(SIGMA_CHOICES), max(SIGMA_CHOICES)


def acc(method: str, eps: float = 0.05, sigma: float = 0.05) -> float:
    return lab.fit(method, eps, sigma).manifest["metrics"]["clean_acc"]


def nearer(a: float, b: float) -> str:
    return "nearer" if b < a else "not nearer"


d_noise = [end_distance("noise", sigma=s) for s in (s_lo, s_hi)]
d_at = [end_distance("at", eps=e) for e in (lo, hi)]
dx_noise = [log_summary("noise", sigma=s)["marginal"]["dx"] for s in (s_lo, s_hi)]
say(f"noise, σ = {s_lo:g} → {s_hi:g}: mean Δ_x E(x) {dx_noise[0]:+.2g} → {dx_noise[1]:+.2g}; the Eq. 17 chains end "
    f"{d_noise[0]:.2f} → {d_noise[1]:.2f} from the data ({nearer(*d_noise)} at the larger σ), accuracy "
    f"{acc('noise', sigma=s_lo):.1%} → {acc('noise', sigma=s_hi):.1%}. AT, ε = {lo:g} → {hi:g}: "
    f"{d_at[0]:.2f} → {d_at[1]:.2f} ({nearer(*d_at)} at the larger ε).")
ETA_TRY, STEPS_TRY = sorted(ETA_CHOICES), 200
by_eta = {m: [end_distance(m, eta=e, steps=STEPS_TRY) for e in ETA_TRY] for m in ("at", "jeat")}
say(f"at vs jeat, {STEPS_TRY} steps, distance at η = " + ", ".join(f"{e:g}" for e in ETA_TRY) + ": "
    + "; ".join(f"{m} " + ", ".join(f"{v:.2f}" for v in d) for m, d in by_eta.items())
    + f". JEAT's chains end at most {max(by_eta['jeat']):.2f} from the data at every η offered, AT's up to "
    f"{max(by_eta['at']):.2f}.")
d_jeat = [end_distance("jeat", eps=e) for e in (lo, hi)]
say(f"jeat, ε = {lo:g} → {hi:g}: the chains end {d_jeat[0]:.3f} → {d_jeat[1]:.3f} from the data "
    f"({'further' if d_jeat[1] > d_jeat[0] else 'not further'} at the larger ε), accuracy "
    f"{acc('jeat', eps=lo):.1%} → {acc('jeat', eps=hi):.1%}.")

# %% [markdown]
# ## What holds here
#
# * Eq. 13 holds to float precision, and adding a constant to every logit leaves CE unchanged while
#   moving E(x) by that constant: the classification loss cannot shape E(x).
# * The attacks and the updates: the first line below, from the training logs. Fig. 1 (b) and Fig. 3
#   expect the attack to raise the energy at the data and the update to lower it at $x_{adv}$; the
#   share of AT's updates that do (printed after the AT figure) is what the paper's "E(x) fluctuates
#   around 0" describes for E(x). Notebook 3 checks Fig. 3 on CIFAR-10.
# * That robust classifiers generate images is a statement about high-dimensional images; this toy
#   shows the mechanism, not the claim. What the chains and the accuracies of this run say:

# %%
attacked = {m: log_summary(m) for m in ("at", "prejeat", "jeat")}
raise_both = all(s[k]["dx"] > 0 for s in attacked.values() for k in ("joint", "marginal"))
lower_both = all(s[k]["dtheta"] < 0 for s in attacked.values() for k in ("joint", "marginal"))
say(f"The attacks of {', '.join(attacked)} {'raise' if raise_both else 'do not all raise'} both energies at the data "
    f"on average, and their updates {'lower' if lower_both else 'do not all lower'} both at x_adv on average; "
    "the share of updates that lowered E(x, y): "
    + ", ".join(f"{m} {s['joint']['lowered']:.0%}" for m, s in attacked.items()) + "; E(x): "
    + ", ".join(f"{m} {s['marginal']['lowered']:.0%}" for m, s in attacked.items()) + ".")
d = {r["method"]: r for r in distances}
d_at_hi = end_distance("at", eps=hi)
jeat_nearest = d["jeat"]["Eq. 17 (E(x, y))"] == min(r["Eq. 17 (E(x, y))"] for r in distances)
say(f"Eq. 17 chains: JEAT's, whose loss includes the EBM term of Fig. 1 (a), end {d['jeat']['Eq. 17 (E(x, y))']:.2f} "
    f"from the data ({'the nearest' if jeat_nearest else 'not the nearest'} of the methods); AT's "
    f"{d['at']['Eq. 17 (E(x, y))']:.2f} against the standard model's {d['standard']['Eq. 17 (E(x, y))']:.2f} "
    "at ε = 0.05, "
    f"and {d_at_hi:.2f} at ε = {hi:g}.")
eq16 = [r["Eq. 16 (CE, Santurkar)"] for r in distances]
say(f"Eq. 16 (Santurkar's step) ends {min(eq16):.2f}–{max(eq16):.2f} from the data across the models: it descends "
    "the cross-entropy, which is small anywhere deep inside the class's region.")
accs = [r["clean accuracy"] for r in rows if r["clean accuracy"] is not None]
say(f"Every model trained here classifies {min(accs):.1%}–{max(accs):.1%} of the test points: "
    + ("the toy is easy, so robustness differences (Tab. 3) are not visible here." if min(accs) > 0.9 else
       "a spread wide enough that the methods differ in accuracy here."))

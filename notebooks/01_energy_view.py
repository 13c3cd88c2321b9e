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
# # 1 · The energy view of a classifier (Eq. 11–13, Tab. 1)
#
# A classifier with logits $f(x)$ defines two energies (Eq. 12):
#
# * the **joint energy** $E(x, y) = -f(x)[y]$ — low when the image looks like class $y$;
# * the **marginal energy** $E(x) = -\log\sum_k \exp f(x)[k]$ — low when the image looks like *any* class.
#
# The cross-entropy loss is exactly their difference (Eq. 13): $-\log p(y\mid x) = E(x, y) - E(x)$.
# So the usual (CE) adversarial attack, which ascends the loss (Eq. 14), follows the gradient of
# *both* energies: up in $E(x, y)$ and down in $E(x)$. The paper's **energy attack** (Eq. 18)
# ascends $E(x, y)$ alone — and on a normal classifier it is just as effective (Tab. 1). This
# notebook checks both facts on real CIFAR-10 images, and measures what each attack actually does
# to $E(x)$ (not always what its gradient asks for).
#
# **PreJEAT** is adversarial training with that energy attack: the classifier is trained by the
# usual cross-entropy (Eq. 13), but on examples made by ascending $E(x, y)$ (Eq. 18) instead of the
# loss (Eq. 14). It is the paper's first step from adversarial training (AT) towards JEAT
# (Algorithm 1), which then also replaces the cross-entropy by $-\log p(x, y)$ (Eq. 19); the
# notebooks from 02 on compare Normal, AT, PreJEAT and JEAT side by side.

# %% tags=["parameters"]
import os

from jeat_core.paper.paper_items import PAPER_SIZES, SMOKE_SIZES, TABLE1_MODEL

SMOKE = os.environ.get("JEAT_SMOKE") == "1"
SIZES = SMOKE_SIZES if SMOKE else PAPER_SIZES  # Tab. 1 at the size `jeat figures` writes it (or `--smoke`'s)
MODEL = f"cifar10-cpu/{TABLE1_MODEL}"  # Tab. 1's model: the standard classifier
N_EVAL = SIZES.n_test  # test images
N_DELTA = 16 if SMOKE else 200  # test images for the energy changes under attack (PGD-20 costs ~0.1 s an image)
EPS = 8 / 255
FIGURES = os.environ.get("JEAT_FIGURES", "../figures-local")  # git-ignored; `make figures` writes figures/

# %% [markdown]
# ## Setup: the model and the test images

# %%
import torch
import torch.nn.functional as F

from jeat_core.core.checkpoints import load_model
from jeat_core.core.data import load_split
from jeat_core.core.energy import joint_energy, marginal_energy

model, manifest = load_model(MODEL)
test = load_split("test")
x, y = test.tensors(N_EVAL)
print(f"{MODEL}: method={manifest['method']}, trained {manifest['steps']} steps")

# %% [markdown]
# ## Eq. 13 on real images
# For every test image, $E(x,y) - E(x)$ equals PyTorch's cross-entropy to floating-point precision.

# %%
with torch.no_grad():
    logits = model(x)
e_joint, e_marg = joint_energy(logits, y), marginal_energy(logits)
diff = (e_joint - e_marg) - F.cross_entropy(logits, y, reduction="none")
print(f"max |E(x,y) - E(x) - CE| over {len(x)} images: {diff.abs().max():.2e}")

# %% [markdown]
# ## Energies under attack
# Both attacks raise $E(x, y)$. The CE attack's objective $E(x, y) - E(x)$ also contains $-E(x)$,
# so its gradient pushes $E(x)$ *down*; but $E(x) = -\log\sum_k e^{f_k}$ is dominated by the
# largest logit, which on a correctly classified image is $f_y$ itself, so lowering $f_y$ (raising
# $E(x, y)$) drags $E(x)$ up with it. Which effect wins depends on the model. The cell below measures
# it with PGD-20 at ε = 8/255 on the standard classifier and on the adversarially trained one (AT),
# and reads the same quantity, $\Delta_x E(x)$, from AT's training log (notebook 3, Fig. 3).

# %%
import numpy as np

from jeat_core.core.attacks import pgd
from jeat_core.explore.plotting import Table
from jeat_core.paper.paper_items import fig3_data

at_model, at_manifest = load_model("cifar10-cpu/at")
xd, yd = x[:N_DELTA], y[:N_DELTA]
delta_rows = []
for name, m in (("standard", model), ("at", at_model)):
    with torch.no_grad():
        l0 = m(xd)
    for objective, eq in (("ce", "CE attack (Eq. 14)"), ("energy", "energy attack (Eq. 18)")):
        xa = pgd(m, xd, yd, eps=EPS, step_size=2 / 255, n_steps=20, objective=objective,
                 generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            la = m(xa)
        dj = joint_energy(la, yd) - joint_energy(l0, yd)
        dm = marginal_energy(la) - marginal_energy(l0)
        kept = (l0.argmax(1) == yd) & (la.argmax(1) == yd)  # classified right before and after the attack
        delta_rows.append({"model": name, "attack": eq, "mean ΔE(x,y)": float(dj.mean()),
                           "mean ΔE(x)": float(dm.mean()), "share with E(x) up": float((dm > 0).float().mean()),
                           "accuracy left": float(kept.float().mean())})
delta_table = Table(delta_rows, title=f"PGD-20, ε = 8/255, first {len(xd)} test images",
                    formats={"mean ΔE(x,y)": "{:+.3f}", "mean ΔE(x)": "{:+.3f}", "share with E(x) up": "{:.0%}",
                             "accuracy left": "{:.1%}"})
at_log = np.array([r["dxE_marginal_mean"] for r in fig3_data()["log"]])
print(f"AT's training log: Δ_x E(x) > 0 at {int((at_log > 0).sum())} of {len(at_log)} logged steps "
      f"(mean {at_log.mean():+.3f}): during adversarial training the CE attack raises E(x) too.")
delta_table

# %% [markdown]
# Pick an image and a radius below and watch the two bars of each attack.

# %% tags=["figure"]
from jeat_core.explore.widgets import attack_explorer, require

require(globals(), "model", "x", "y", cell="the parameters cell and the Setup cell")
attack_explorer(model, x, y, eps=EPS)

# %% [markdown]
# ### What to try
# Each experiment below is measured by the cell after this list (PGD-20 with the explorer's step
# ε/4, on the images of the table above):
#
# * **Small ε on the standard model.** Is the energy attack weaker than the CE attack at small
#   radii, and do both reach 0 at 8/255?
# * **The AT model** (`model, _ = load_model("cifar10-cpu/at")`, then rerun the explorer cell). Is
#   the energy attack the weaker one on a robust classifier even at 8/255? The manifests' records
#   on more images say the same or not.
# * **Watch the E(x) bar** while you step through images. How often does each attack raise E(x) on
#   each model (the table's last column)?

# %%
from jeat_core.measure.metrics import robust_accuracy
from jeat_core.paper.prose import recorded_accuracy, say

left = {(r["model"], r["attack"]): r["accuracy left"] for r in delta_rows}
up = {(r["model"], r["attack"]): r["share with E(x) up"] for r in delta_rows}
CE, EN = "CE attack (Eq. 14)", "energy attack (Eq. 18)"
small = {e: {obj: robust_accuracy(model, xd, yd, attack=f"{pre}pgd20", eps=e / 255, step_size=e / 255 / 4)["robust_acc"]
             for obj, pre in (("ce", ""), ("energy", "energy-"))} for e in (1, 2)}


def weaker(energy: float, ce: float) -> str:
    return "weaker" if energy > ce else "not weaker"


say(f"Standard model, {len(xd)} images: at 2/255 the energy attack left {small[2]['energy']:.1%} accuracy against "
    f"the CE attack's {small[2]['ce']:.1%} ({weaker(small[2]['energy'], small[2]['ce'])}); at 1/255 "
    f"{small[1]['energy']:.1%} vs "
    f"{small[1]['ce']:.1%}; at 8/255 {left['standard', EN]:.1%} vs {left['standard', CE]:.1%}.")
rec = {k: recorded_accuracy(at_manifest, k) for k in ("energy-pgd20", "pgd20")}
say(f"AT at 8/255: the energy attack left {left['at', EN]:.1%} against the CE attack's {left['at', CE]:.1%} "
    f"({weaker(left['at', EN], left['at', CE])})"
    + (f"; the manifest's records: {rec['energy-pgd20']['acc']:.1%} (n = {rec['energy-pgd20']['n']:,}) vs "
       f"{rec['pgd20']['acc']:.1%} (n = {rec['pgd20']['n']:,})." if all(rec.values()) else
       "; the manifest has no record of both attacks."))
say(f"E(x) rose under the CE attack for {up['standard', CE]:.0%} of the images on the standard model and "
    f"{up['at', CE]:.0%} on AT; under the energy attack for {up['standard', EN]:.0%} and {up['at', EN]:.0%}.")

# %% [markdown]
# ## Tab. 1
# Accuracy under PGD-20 ($\ell_\infty$, step 2/255, random start) with either objective, on the
# first 1,000 test images (64 in smoke mode; the table's `n` column says which ran).
# `table1_rows` is the producer `jeat figures` calls too, so this is the table it writes (at the
# same size).

# %%
from jeat_core.explore.figures import save_paper_table
from jeat_core.explore.plotting import Table
from jeat_core.paper.paper_items import table1_rows

rows = table1_rows(model, x, y, sizes=SIZES, eps=EPS, progress=True)  # about 4 minutes at 1000 images
Table(rows, formats={"accuracy": "{:.1%}", "eps": "{:.4f}"})

# %%
print(*save_paper_table(rows, FIGURES, "table1_attacks"), sep="\n")

# %% [markdown]
# ## What holds at our scale
# What `jeat audit` last measured for the paper's claims this notebook tests: the paper's
# statement, our number with its interval and n, the verdict, and why it may differ at our scale.
# The table is rendered from `figures/audit.json`, so it changes when the audit does.

# %%
from jeat_core.paper.verdicts import verdict_table

verdict_table("01")

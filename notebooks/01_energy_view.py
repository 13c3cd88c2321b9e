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
# So the usual (CE) adversarial attack, which ascends the loss (Eq. 14), moves *both* energies;
# the paper's **energy attack** (Eq. 18) ascends $E(x, y)$ alone — and on a normal classifier it is
# just as effective (Tab. 1). This notebook checks both facts on real CIFAR-10 images.

# %% tags=["parameters"]
import os

from jeat_core.paper_items import PAPER_SIZES, SMOKE_SIZES, TABLE1_MODEL

SMOKE = os.environ.get("JEAT_SMOKE") == "1"
SIZES = SMOKE_SIZES if SMOKE else PAPER_SIZES  # Tab. 1 at the size `jeat figures` writes it (or `--smoke`'s)
MODEL = f"cifar10-cpu/{TABLE1_MODEL}"  # Tab. 1's model: the standard classifier
N_EVAL = SIZES.n_test  # test images
EPS = 8 / 255
FIGURES = os.environ.get("JEAT_FIGURES", "../figures-local")  # git-ignored; `make figures` writes figures/

# %% [markdown]
# ## Setup: the model and the test images

# %%
import torch
import torch.nn.functional as F

from jeat_core.checkpoints import load_model
from jeat_core.data import load_split
from jeat_core.energy import joint_energy, marginal_energy

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
# Pick an image and a radius: the CE attack (Eq. 14) and the energy attack (Eq. 18) both raise
# $E(x, y)$, but only the CE attack also *lowers* $E(x)$ on purpose.

# %% tags=["figure"]
from jeat_core.widgets import attack_explorer, require

require(globals(), "model", "x", "y", cell="the parameters cell and the Setup cell")
attack_explorer(model, x, y, eps=EPS)

# %% [markdown]
# ## Tab. 1
# Accuracy under PGD-20 ($\ell_\infty$, step 2/255, random start) with either objective, on the
# first `SIZES.n_test` test images. `table1_rows` is the producer `jeat figures` calls too, so
# this is the table it writes (at the same size).

# %%
from jeat_core.figures import Table, save_paper_table
from jeat_core.paper_items import table1_rows

rows = table1_rows(model, x, y, sizes=SIZES, eps=EPS, progress=True)  # about 4 minutes at 1000 images
Table(rows, formats={"accuracy": "{:.1%}", "eps": "{:.4f}"})

# %%
print(*save_paper_table(rows, FIGURES, "table1_attacks"), sep="\n")

# %% [markdown]
# ## What holds at our scale
# What `jeat audit` last measured for the paper's claims this notebook reproduces: the paper's
# statement, our number with its interval and n, the verdict, and why it may differ at our scale.
# The table is rendered from `figures/audit.json`, so it changes when the audit does.

# %%
from jeat_core.verdicts import verdict_table

verdict_table("01")

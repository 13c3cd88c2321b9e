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
# # 7 · Fisher scores: how well does each energy match the data? (Tab. 2)
#
# The paper scores a model's density by the Fisher divergence to the data, which up to a
# constant is the score-matching objective (Hyvärinen, 2005):
#
# $$\mathrm{FS} = \mathbb E_{x\sim p_{data}}\Big[\tfrac12\lVert\nabla_x E(x)\rVert^2
#   - \operatorname{tr}\nabla_x^2 E(x)\Big],$$
#
# with the joint energy $E(x, y)$ (**JFS**, Eq. 23) or the marginal $E(x)$ (**MFS**, Eq. 24).
# Lower is better. The trace is a Hutchinson estimate with Rademacher probes (each probe is one
# double-backward). The paper reports the order Normal > AT > JEM > JEAT for both.

# %% tags=["parameters"]
import os

from jeat_core.paper_items import PAPER_SIZES, SMOKE_SIZES, TABLE2_MODELS

SMOKE = os.environ.get("JEAT_SMOKE") == "1"
SIZES = SMOKE_SIZES if SMOKE else PAPER_SIZES  # Tab. 2 at the size `jeat figures` writes it (or `--smoke`'s)
MODELS = list(TABLE2_MODELS)  # Tab. 2's models: standard, at, jem, jeat
N_IMAGES = SIZES.n_fisher  # test images
N_PROBES = SIZES.n_probes  # Hutchinson probes per image
FIGURES = os.environ.get("JEAT_FIGURES", "../figures-local")  # git-ignored; `make figures` writes figures/

# %% [markdown]
# ## Setup: the models and the test images

# %%
from jeat_core.checkpoints import load_model
from jeat_core.data import load_split
from jeat_core.figures import save_paper_table
from jeat_core.paper_items import table2_fisher_rows

models = {name: load_model(f"cifar10-cpu/{name}")[0] for name in MODELS}
x, y = load_split("test").tensors(max(N_IMAGES, 64))

# %% [markdown]
# ## Tab. 2 on our models

# %%
from jeat_core.figures import Table

rows = table2_fisher_rows(models, x, y, sizes=SIZES)  # the producer `jeat figures` calls too
Table(rows, formats={"JFS": "{:.4g}", "MFS": "{:.4g}"})

# %% [markdown]
# Both terms matter: a sharp energy has a large gradient norm *and* a large positive curvature
# (which lowers the score). Split into the two parts for the first model:

# %%
import torch

from jeat_core.energy import energy_of

grad_rows = []
for name, m in models.items():
    xg = x[:N_IMAGES].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(energy_of(m, "joint", y[:N_IMAGES])(xg).sum(), xg)
    grad_rows.append({"model": name, "mean ½‖∇E(x,y)‖²": float(0.5 * grad.flatten(1).pow(2).sum(1).mean())})
Table(grad_rows, formats={"mean ½‖∇E(x,y)‖²": "{:.3g}"})

# %% [markdown]
# ## Explore: number of probes and of images
# Watch how the estimate settles as the number of probes grows.

# %% tags=["figure"]
from jeat_core.widgets import fisher_explorer, require

require(globals(), "models", "x", "y", cell="the parameters cell and the Setup cell")
fisher_explorer(models, x, y, n_probes=1, n_images=4, max_images=64)

# %%
print(*save_paper_table(rows, FIGURES, "table2_fisher"), sep="\n")

# %% [markdown]
# ## What holds at our scale
# What `jeat audit` last measured for the paper's claims this notebook reproduces: the paper's
# statement, our number with its interval and n, the verdict, and why it may differ at our scale.
# The table is rendered from `figures/audit.json`, so it changes when the audit does.

# %%
from jeat_core.verdicts import verdict_table

verdict_table("07")

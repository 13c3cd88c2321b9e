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
# # 8 · Robustness (Tab. 3)
#
# JEAT adds a generative term to adversarial training; does it cost robustness? Tab. 3 of the
# paper reports clean accuracy and PGD-20 accuracy (L∞, ε = 8/255, step 2/255, random start)
# for AT, JEM and JEAT: JEM has almost none, JEAT about as much as AT.
# The shipped models' numbers on the full test set are in their manifests
# (`checkpoints/README.md`); here we recompute them on a subset you choose.

# %% tags=["parameters"]
import os

from jeat_core.paper_items import PAPER_SIZES, SMOKE_SIZES

SMOKE = os.environ.get("JEAT_SMOKE") == "1"
SIZES = SMOKE_SIZES if SMOKE else PAPER_SIZES  # Tab. 3 at the size `jeat figures` writes it (or `--smoke`'s)
MODELS = ["standard", "at", "prejeat", "jem", "jeat"]  # Tab. 3 shows jem, jeat, at (paper_items.TABLE3_MODELS)
N = SIZES.n_test  # test images
FIGURES = os.environ.get("JEAT_FIGURES", "../figures-local")  # git-ignored; `make figures` writes figures/

# %% [markdown]
# ## Setup: the models and the test images

# %%
from jeat_core.checkpoints import load_model
from jeat_core.data import load_split
from jeat_core.figures import save_paper_table
from jeat_core.paper_items import table3_rows

models, manifests = {}, {}
for name in MODELS:
    models[name], manifests[name] = load_model(f"cifar10-cpu/{name}")
x, y = load_split("test").tensors(N)

# %% [markdown]
# ## What the manifests record (full test set for clean accuracy)

# %%
from jeat_core.checkpoints import find_eval
from jeat_core.figures import Table


def _acc(record, field):
    return f"{record[field]:.2%} (n={record['n']:,})" if record else "—"


Table([{"model": name, "clean": _acc(find_eval(man, "none"), "clean_acc"),
        "PGD-20, ε = 8/255": _acc(find_eval(man, "pgd20"), "robust_acc"),
        "energy PGD-20": _acc(find_eval(man, "energy-pgd20"), "robust_acc")} for name, man in manifests.items()])

# %% [markdown]
# ## Tab. 3 (JEM, JEAT, AT) recomputed on the first N test images
# `table3_rows` is the producer `jeat figures` calls too, so this is the table it writes (at the
# same size).

# %%
rows = table3_rows(models, x, y, sizes=SIZES)  # the producer `jeat figures` calls too
Table(rows, formats={"clean_acc": "{:.1%}", "pgd20_acc": "{:.1%}", "eps": "{:.4f}"})

# %% [markdown]
# ## Explore: ε and the number of PGD steps
# A robust model degrades gracefully as ε grows; a model whose accuracy does not fall with more
# steps at large ε would hint at gradient masking.

# %% tags=["figure"]
from jeat_core.widgets import require, robustness_explorer

require(globals(), "models", "x", "y", cell="the parameters cell and the Setup cell")
robustness_explorer(models, x[: 8 if SMOKE else 12], y[: 8 if SMOKE else 12], steps=2 if SMOKE else 5)

# %%
print(*save_paper_table(rows, FIGURES, "table3_robustness"), sep="\n")

# %% [markdown]
# ## What holds at our scale
# What `jeat audit` last measured for the paper's claims this notebook reproduces: the paper's
# statement, our number with its interval and n, the verdict, and why it may differ at our scale.
# The table is rendered from `figures/audit.json`, so it changes when the audit does.

# %%
from jeat_core.verdicts import verdict_table

verdict_table("08")

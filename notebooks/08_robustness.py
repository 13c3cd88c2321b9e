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

SMOKE = os.environ.get("JEAT_SMOKE") == "1"
MODELS = ["standard", "at", "prejeat", "jem", "jeat"]
N = 16 if SMOKE else 500
FIGURES = os.environ.get("JEAT_FIGURES", "../figures-local")  # git-ignored; `make figures` writes figures/

# %% [markdown]
# ## Setup: the models and the test images

# %%
from jeat_core.checkpoints import load_model
from jeat_core.data import load_split
from jeat_core.figures import save_table, table3_rows

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
# ## Tab. 3 recomputed on the first N test images

# %%
rows = table3_rows(models, x, y)
Table(rows, formats={"clean_acc": "{:.1%}", "pgd20_acc": "{:.1%}", "eps": "{:.4f}"})

# %% [markdown]
# ## Explore: ε and the number of PGD steps
# A robust model degrades gracefully as ε grows; a model whose accuracy does not fall with more
# steps at large ε would hint at gradient masking.

# %% tags=["figure"]
from jeat_core.widgets import require, robustness_explorer

require(globals(), "models", "x", "y", cell="the parameters cell and the Setup cell")
robustness_explorer(models, x[: 8 if SMOKE else 16], y[: 8 if SMOKE else 16], steps=2 if SMOKE else 5)

# %%
print(*save_table(rows, FIGURES, "table3_robustness", title=f"Tab. 3: clean and PGD-20 accuracy (n={N})"), sep="\n")

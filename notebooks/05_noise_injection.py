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
# # 5 · Noise-trained classifiers also generate (Fig. 5)
#
# Section 4 of the paper argues that what makes a classifier generative is a **flat, low
# energy around the data**, not adversarial training as such. Training with Gaussian noise
# $x + \delta$, $\delta \sim \mathcal N(0, \sigma^2 I)$, also lowers $E(x, y)$ in a neighbourhood
# of each training image, just isotropically instead of in the worst-case direction. The paper
# trains three classifiers with $\sigma = 8, 16, 24$ /255 and finds that the generated images
# (Eq. 17, Langevin on $E(x, y)$ from class-Gaussian seeds) get better as $\sigma$ grows: a
# wider smoothed neighbourhood, a smoother landscape for the chain to descend.

# %% tags=["parameters"]
import os

from jeat_core.paper_items import PAPER_SIZES, SMOKE_SIZES

SMOKE = os.environ.get("JEAT_SMOKE") == "1"
SIZES = SMOKE_SIZES if SMOKE else PAPER_SIZES  # Fig. 5 at the size `jeat figures` writes it (or `--smoke`'s)
MODELS = {"σ = 8/255": "noise-8", "σ = 16/255": "noise-16", "σ = 24/255": "noise-24", "σ = 0 (standard)": "standard"}
LABEL = 8  # ship, as in Fig. 5 (the explorer's first label)
FIGURES = os.environ.get("JEAT_FIGURES", "../figures-local")  # git-ignored; `make figures` writes figures/

# %% [markdown]
# ## Setup: models and class-Gaussian seeds

# %%
from jeat_core.checkpoints import load_model
from jeat_core.data import load_split
from jeat_core.figures import GENERATION_FORMATS, Table, image_rows_table, plot_image_rows, save_figure
from jeat_core.paper_items import fig5_rows
from jeat_core.sampling import ClassGaussian

models, manifests = {}, {}  # by zoo name ("noise-8", ...)
for name in MODELS.values():
    models[name], manifests[name] = load_model(f"cifar10-cpu/{name}")
train = load_split("train")
class_gaussian = ClassGaussian(train.x, train.y)

# %% [markdown]
# ## Fig. 5: the same seeds through the three noise-trained classifiers
# Each row starts from the same class-Gaussian seeds (seed 0); only the classifier (its training
# noise) changes, and each runs its own tuned sampler (`manifest["sampler"]`, best vs best, K
# capped at `SIZES.max_steps`). `fig5_rows` is the producer `jeat figures` calls too, so this is
# the figure it writes (at the same size). The standard classifier ($\sigma = 0$) is not in the
# figure; pick it in the explorer below for reference.

# %% tags=["figure"]
fig5 = fig5_rows(models, manifests, class_gaussian, sizes=SIZES)
fig = plot_image_rows(fig5.rows, nrow=fig5.nrow, title=fig5.title, side_by_side=fig5.side_by_side)
fig

# %% [markdown]
# How far did each chain move from the seed, did it descend, did it break, and does a classifier
# that did **not** generate the images (named in the table: the independent evaluator when it
# is shipped, else another zoo model) see the label? A generator's own confidence in its samples
# says little: it is what the chain maximised.

# %%
Table(image_rows_table(fig5, models), formats=GENERATION_FORMATS)

# %% [markdown]
# ## Explore: σ, label, step size, steps, noise

# %% tags=["figure"]
from jeat_core.widgets import generation_explorer, require

require(globals(), "models", "manifests", "class_gaussian", cell="the parameters cell and the Setup cell")
generation_explorer({label: models[name] for label, name in MODELS.items()}, class_gaussian,
                    manifests={label: manifests[name] for label, name in MODELS.items()}, zoo_names=MODELS,
                    n_images=4 if SMOKE else 6, label=LABEL, max_steps=SIZES.max_steps,
                    model_description="σ",
                    title="Generation from noise-trained classifiers")

# %%
print(*save_figure(fig, FIGURES, "fig5_noise_generation"), sep="\n")

# %% [markdown]
# ## What holds at our scale
# What `jeat audit` last measured for the paper's claims this notebook reproduces: the paper's
# statement, our number with its interval and n, the verdict, and why it may differ at our scale.
# The table is rendered from `figures/audit.json`, so it changes when the audit does.

# %%
from jeat_core.verdicts import verdict_table

verdict_table("05")

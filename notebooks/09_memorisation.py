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
# # 9 · Are the samples copies of training images? (Fig. 7)
#
# A generator that reproduces its training set would look good for the wrong reason. Following
# the paper, for each generated image we find the most similar images among **all 50,000**
# training images by SSIM (structural similarity; 1 = identical). An L2 pre-filter keeps the 256
# nearest training images per query and SSIM ranks those (`jeat_core.figures.nearest_by_ssim`).

# %% tags=["parameters"]
import os

from jeat_core.paper.paper_items import PAPER_SIZES, SMOKE_SIZES

SMOKE = os.environ.get("JEAT_SMOKE") == "1"
SIZES = SMOKE_SIZES if SMOKE else PAPER_SIZES  # Fig. 7 at the size `jeat figures` writes it (or `--smoke`'s)
MODELS = ["jeat", "at", "prejeat"]  # Fig. 7 shows JEAT; the explorer all three
N_TRAIN = SIZES.n_train  # training images searched (None: all 50,000)
FIGURES = os.environ.get("JEAT_FIGURES", "../figures-local")  # git-ignored; `make figures` writes figures/

# %% [markdown]
# ## Setup: models, class-Gaussian seeds and the search index of training images

# %%
from jeat_core.core.data import CIFAR10_CLASSES
from jeat_core.explore.figures import TrainIndex, nearest_by_ssim, plot_image_rows
from jeat_core.explore.plotting import Table, save_figure
from jeat_core.paper.experiments import Context
from jeat_core.paper.paper_items import fig7_rows

ctx = Context()  # the shipped models, the data and the seeds' Gaussians, loaded once (the audit's own)
models, manifests = ctx.models(MODELS), ctx.manifests(MODELS)
train = ctx.train_split()
train_x = train.x if N_TRAIN is None else train.x[:N_TRAIN]
class_gaussian = ctx.class_gaussian()
train_index = TrainIndex(train_x)  # float32 copy (614 MB for 50,000 images): each search then takes ~0.1 s
print(f"searching {len(train_x):,} training images")

# %% [markdown]
# ## Fig. 7: generated images (first column) and their ten nearest training images
# One JEAT sample per class (airplane, bird, deer, frog, ship; the first two in smoke mode; seed 0),
# each from a class-Gaussian seed (notebook 4) with the tuned sampler (`manifest["sampler"]`, K
# capped at 60 steps; smoke mode caps it at 5 and searches only the first 2,000 training images).
# `fig7_rows` is the producer `jeat figures` calls too, so this is the figure it writes (at the
# same size).

# %% tags=["figure"]
fig7 = fig7_rows(models, manifests, class_gaussian, train_index, sizes=SIZES)
labels, sim = fig7.labels, fig7.extra["ssim"]
print("rows, top to bottom:", ", ".join(CIFAR10_CLASSES[int(lb)] for lb in labels))
fig = plot_image_rows(fig7)
fig

# %% [markdown]
# For scale: the SSIM between a test image and its nearest training image (the same search)
# tells what "similar but not a copy" looks like on CIFAR-10.

# %%
xt = ctx.test()[0][:len(labels)]
_, sim_test = nearest_by_ssim(xt, train_index, k=1)
Table([{"": "generated (label)", **{CIFAR10_CLASSES[int(lb)]: float(sim[i, 0]) for i, lb in enumerate(labels)}},
       {"": "real test image", **{CIFAR10_CLASSES[int(lb)]: float(sim_test[i, 0]) for i, lb in enumerate(labels)}}],
      formats={CIFAR10_CLASSES[int(lb)]: "{:.3f}" for lb in labels}, title="best SSIM to a training image")

# %% [markdown]
# ## Explore: model and label
# Each model generates with its own tuned sampler (K capped at 60 steps, 5 in smoke mode), as in
# Fig. 7; the line under the images names it.

# %% tags=["figure"]
from jeat_core.explore.widgets import memorisation_explorer, require

require(globals(), "models", "manifests", "class_gaussian", "train_index",
        cell="the parameters cell and the Setup cell")
memorisation_explorer(models, class_gaussian, train_index, manifests=manifests, max_steps=SIZES.max_steps)

# %% [markdown]
# ### What to try
# One sample per class, the ten classes, seed 0; the score is the best SSIM to any of the searched
# training images, mean over the ten. The cell after this list computes each case:
#
# * **The seeds themselves** (`nearest_by_ssim(class_gaussian.sample(...), train_index, k=1)`): how
#   much does a blurry class-Gaussian draw already resemble *some* training image? That is the
#   baseline a generated image starts from.
# * **Model against model.** Do JEAT's samples come closer to training images than their seeds,
#   and AT's and PreJEAT's? A score below the seeds' means the chain added textures no training
#   image has; above, that it drifted towards training images (1 = identical, a copy).
# * **Longer chains.** JEAT with K = 200 instead of its tuned K (`generate(models["jeat"], ...,
#   dataclasses.replace(cfg, n_steps=200))`): does running the chain longer move the samples
#   towards the data, and onto a training image?

# %%
import dataclasses

import torch

from jeat_core.core.sampling import generate, sampler_for
from jeat_core.paper.prose import say

try_labels = torch.arange(10)
try_seeds = class_gaussian.sample(try_labels, generator=torch.Generator().manual_seed(0))


def best_ssim(images) -> torch.Tensor:
    return nearest_by_ssim(images, train_index, k=1)[1][:, 0]


base = best_ssim(try_seeds)
tuned = {name: sampler_for(manifests[name], "joint", max_steps=SIZES.max_steps) for name in MODELS}
scores = {name: best_ssim(generate(models[name], try_labels, try_seeds, cfg, seed=0)) for name, cfg in tuned.items()}
LONG = 10 if SMOKE else 200
long_run = best_ssim(generate(models["jeat"], try_labels, try_seeds, dataclasses.replace(tuned["jeat"], n_steps=LONG),
                              seed=0))
say(f"Best SSIM to one of {len(train_x):,} training images, mean over the ten classes: the seeds "
    f"{float(base.mean()):.3f}; "
    + ", ".join(f"{name} {float(v.mean()):.3f} ({'above' if v.mean() > base.mean() else 'below'} the seeds, K = "
                f"{tuned[name].n_steps})" for name, v in scores.items()) + ".")
say(f"JEAT with K = {LONG} instead of its tuned {tuned['jeat'].n_steps}: {float(long_run.mean()):.3f} on average "
    f"({'closer to' if long_run.mean() > scores['jeat'].mean() else 'no closer to'} the data than at its tuned K), the "
    f"most similar {float(long_run.max()):.3f} ({'a copy' if long_run.max() > 0.95 else 'not a copy'}).")

# %%
print(*save_figure(fig, FIGURES, "fig7_nearest_neighbours"), sep="\n")

# %% [markdown]
# ## What holds at our scale
# What `jeat audit` last measured for the paper's claims this notebook tests: the paper's
# statement, our number with its interval and n, the verdict, and why it may differ at our scale.
# The table is rendered from `figures/audit.json`, so it changes when the audit does.

# %%
from jeat_core.paper.verdicts import verdict_table

verdict_table("09")

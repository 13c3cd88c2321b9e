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

SMOKE = os.environ.get("JEAT_SMOKE") == "1"
MODELS = ["jeat", "at", "prejeat"]
LABELS = [0, 2] if SMOKE else [0, 2, 4, 6, 8]
STEPS = 5 if SMOKE else 60
N_TRAIN = 2000 if SMOKE else None  # None: all 50,000
FIGURES = os.environ.get("JEAT_FIGURES", "../figures-local")  # git-ignored; `make figures` writes figures/

# %% [markdown]
# ## Setup: models, class-Gaussian seeds and the search index of training images

# %%
import torch

from jeat_core.checkpoints import load_model
from jeat_core.data import CIFAR10_CLASSES, load_split
from jeat_core.figures import Table, TrainIndex, generate, nearest_by_ssim, plot_image_rows, save_figure
from jeat_core.sampling import ClassGaussian

models = {name: load_model(f"cifar10-cpu/{name}")[0] for name in MODELS}
train = load_split("train")
train_x = train.x if N_TRAIN is None else train.x[:N_TRAIN]
class_gaussian = ClassGaussian(train.x, train.y)
train_index = TrainIndex(train_x)  # float32 copy (614 MB for 50,000 images): each search then takes ~0.1 s
print(f"searching {len(train_x):,} training images")

# %% [markdown]
# ## Fig. 7: generated images (first column) and their ten nearest training images

# %% tags=["figure"]
labels = torch.tensor(LABELS)
gen = generate(models[MODELS[0]], labels, class_gaussian.sample(labels, generator=torch.Generator().manual_seed(0)),
               n_steps=STEPS)
idx, sim = nearest_by_ssim(gen, train_index, k=10)
near = torch.from_numpy(train_x[idx.flatten().numpy()]).permute(0, 3, 1, 2).float().div(255)
rows = {f"{CIFAR10_CLASSES[int(lb)]}: best SSIM {float(sim[i, 0]):.2f}":
        torch.cat([gen[i:i + 1], near[i * 10:(i + 1) * 10]]) for i, lb in enumerate(labels)}
fig = plot_image_rows(rows, nrow=11, title=f"{MODELS[0]}: generated → 10 most similar training images")
fig

# %% [markdown]
# For scale: the SSIM between a test image and its nearest training image (the same search)
# tells what "similar but not a copy" looks like on CIFAR-10.

# %%
xt, _ = load_split("test").tensors(len(LABELS))
_, sim_test = nearest_by_ssim(xt, train_index, k=1)
Table([{"": "generated (label)", **{CIFAR10_CLASSES[int(lb)]: float(sim[i, 0]) for i, lb in enumerate(labels)}},
       {"": "real test image", **{CIFAR10_CLASSES[int(lb)]: float(sim_test[i, 0]) for i, lb in enumerate(labels)}}],
      formats={CIFAR10_CLASSES[int(lb)]: "{:.3f}" for lb in labels}, title="best SSIM to a training image")

# %% [markdown]
# ## Explore: model and label

# %% tags=["figure"]
from jeat_core.widgets import memorisation_explorer, require

require(globals(), "models", "class_gaussian", "train_index", cell="the parameters cell and the Setup cell")
memorisation_explorer(models, class_gaussian, train_index, steps=min(STEPS, 40))

# %%
print(*save_figure(fig, FIGURES, "fig7_nearest_neighbours"), sep="\n")

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

SMOKE = os.environ.get("JEAT_SMOKE") == "1"
MODELS = {"σ = 8/255": "noise-8", "σ = 16/255": "noise-16", "σ = 24/255": "noise-24", "σ = 0 (standard)": "standard"}
LABEL = 8  # ship, as in Fig. 5
N_IMAGES = 4 if SMOKE else 8
STEPS = 5 if SMOKE else 60
STEP_SIZE, NOISE = 0.25, 0.001  # jeat generate's defaults
FIGURES = os.environ.get("JEAT_FIGURES", "../figures-local")  # git-ignored; `make figures` writes figures/

# %% [markdown]
# ## Setup: models and class-Gaussian seeds

# %%
import torch

from jeat_core.checkpoints import load_model
from jeat_core.data import CIFAR10_CLASSES, load_split
from jeat_core.figures import GENERATION_FORMATS, Table, generate, generation_table, plot_image_rows, save_figure
from jeat_core.sampling import ClassGaussian

models, manifests = {}, {}
for label, name in MODELS.items():
    models[label], manifests[label] = load_model(f"cifar10-cpu/{name}")
train = load_split("train")
class_gaussian = ClassGaussian(train.x, train.y)

# %% [markdown]
# ## Fig. 5: the same seeds through the three noise-trained classifiers
# Each row starts from the same class-Gaussian seeds; only the classifier (its training noise)
# changes. The last row is the standard classifier ($\sigma = 0$) for reference.

# %% tags=["figure"]
labels = torch.full((N_IMAGES,), LABEL)
seeds = class_gaussian.sample(labels, generator=torch.Generator().manual_seed(0))
rows = {"class-Gaussian seeds": seeds}
for label, m in models.items():
    rows[label] = generate(m, labels, seeds, step_size=STEP_SIZE, n_steps=STEPS, noise_std=NOISE)
fig = plot_image_rows(rows, nrow=N_IMAGES, title=f"noise-trained classifiers, Eq. 17, label: {CIFAR10_CLASSES[LABEL]}")
fig

# %% [markdown]
# How far did each chain move from the seed, did it descend, did it break, and does a classifier
# that did **not** generate the images (named in the table: the independent evaluator when it
# is shipped, else another zoo model) see the label? A generator's own confidence in its samples
# says little: it is what the chain maximised.

# %%
Table(generation_table({label: (MODELS[label], models[label], rows[label], "joint") for label in models}, seeds,
                       labels, loaded={MODELS[k]: m for k, m in models.items()}), formats=GENERATION_FORMATS)

# %% [markdown]
# ## Explore: σ, label, step size, steps, noise

# %% tags=["figure"]
from jeat_core.widgets import generation_explorer, require

require(globals(), "models", "manifests", "class_gaussian", cell="the parameters cell and the Setup cell")
generation_explorer(models, class_gaussian, manifests=manifests, zoo_names=MODELS, n_images=4 if SMOKE else 6,
                    label=LABEL, step_size=STEP_SIZE, steps=min(STEPS, 40), noise=NOISE, model_description="σ",
                    title="Generation from noise-trained classifiers")

# %%
print(*save_figure(fig, FIGURES, "fig5_noise_generation"), sep="\n")

# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
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
FIGURES = os.environ.get("JEAT_FIGURES", "../figures")

# %%
import torch

from jeat_core.checkpoints import load_model
from jeat_core.data import CIFAR10_CLASSES, load_split
from jeat_core.figures import generate, plot_image_rows, save_figure
from jeat_core.sampling import ClassGaussian

models = {label: load_model(f"cifar10-cpu/{name}")[0] for label, name in MODELS.items()}
train = load_split("train")
class_gaussian = ClassGaussian(train.x, train.y)

# %% [markdown]
# ## Fig. 5: the same seeds through the three noise-trained classifiers
# Each row starts from the same class-Gaussian seeds; only the classifier (its training noise)
# changes. The last row is the standard classifier ($\sigma = 0$) for reference.

# %%
labels = torch.full((N_IMAGES,), LABEL)
seeds = class_gaussian.sample(labels, generator=torch.Generator().manual_seed(0))
rows = {"class-Gaussian seeds": seeds}
for label, m in models.items():
    rows[label] = generate(m, labels, seeds, step_size=STEP_SIZE, n_steps=STEPS, noise_std=NOISE)
fig = plot_image_rows(rows, nrow=N_IMAGES, title=f"noise-trained classifiers, Eq. 17, label: {CIFAR10_CLASSES[LABEL]}")
fig

# %% [markdown]
# How confident is each classifier that its own samples show the label, and how far did the
# chain move from the seed? (A classifier whose chain barely moves has a flat but uninformative
# energy; one whose samples are confidently the label has a landscape worth descending.)

# %%
with torch.no_grad():
    for label, m in models.items():
        p = m(rows[label]).softmax(1)[:, LABEL].mean()
        dist = (rows[label] - seeds).flatten(1).norm(dim=1).mean()
        print(f"{label:>18}: mean p({CIFAR10_CLASSES[LABEL]} | x) = {float(p):.2f}, "
              f"mean L2 from seed = {float(dist):.2f}")

# %% [markdown]
# ## Explore: σ, label, step size, steps, noise

# %%
from jeat_core.widgets import generation_explorer

generation_explorer(models, class_gaussian, n_images=N_IMAGES, label=LABEL, step_size=STEP_SIZE,
                    steps=min(STEPS, 40), noise=NOISE, model_description="σ",
                    title="Generation from noise-trained classifiers")

# %%
print(*save_figure(fig, FIGURES, "fig5_noise_generation"), sep="\n")

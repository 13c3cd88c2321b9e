# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4 · Generating images with a robust classifier: Eq. 16 vs Eq. 17 (Fig. 4)
#
# Santurkar et al. generate an image of class $y$ by descending the cross-entropy from a seed
# drawn from a class-conditional Gaussian. In the energy view that is Langevin dynamics on
# $U = E(x,y) - E(x)$ (**Eq. 16**):
#
# $$x \leftarrow x - \tfrac{\eta}{2}\nabla_x\big(E(x,y) - E(x)\big) + s\,\epsilon .$$
#
# The paper argues that $E(x)$ is poorly shaped by classification training (Fig. 3b) and only
# adds label-independent noise, so it drops it and samples $p(x, y)$ directly with
# $U = E(x, y)$ (**Eq. 17**). Exact Langevin has $s = \sqrt{\eta}$; like JEM we decouple the
# step from the noise and let you set both.

# %% tags=["parameters"]
import os

SMOKE = os.environ.get("JEAT_SMOKE") == "1"
MODELS = ["at", "prejeat", "jeat", "standard"]
LABEL = 8  # ship, as in Fig. 4
N_IMAGES = 4 if SMOKE else 8
STEPS = 5 if SMOKE else 40
STEP_SIZE, NOISE = 0.25, 0.001  # jeat generate's defaults
FIGURES = os.environ.get("JEAT_FIGURES", "../figures")

# %%
import torch

from jeat_core.checkpoints import load_model
from jeat_core.data import CIFAR10_CLASSES, load_split
from jeat_core.figures import generate, plot_image_rows, save_figure
from jeat_core.sampling import ClassGaussian

models = {name: load_model(f"cifar10-cpu/{name}")[0] for name in MODELS}
train = load_split("train")
class_gaussian = ClassGaussian(train.x, train.y)  # N(mu_y, Sigma_y + 1e-4 I), full 3072-d
print("models:", ", ".join(models))

# %% [markdown]
# ## Explore
# Every control re-runs the chain (seeds are cached per label/init/seed). Try the AT model with
# the two energies, then push the step size up until the chain breaks.

# %%
from jeat_core.widgets import generation_explorer

explorer = generation_explorer(models, class_gaussian, n_images=N_IMAGES, label=LABEL, step_size=STEP_SIZE,
                               steps=STEPS, noise=NOISE)
explorer

# %% [markdown]
# ## Fig. 4: the same seeds, three samplers
# (a) AT model with Eq. 16, (b) AT model with Eq. 17, (c) PreJEAT model with Eq. 17.

# %%
labels = torch.full((N_IMAGES,), LABEL)
seeds = class_gaussian.sample(labels, generator=torch.Generator().manual_seed(0))
rows = {
    "(a) AT, Eq. 16 (E(x,y) − E(x))": generate(models["at"], labels, seeds, energy="ce", step_size=STEP_SIZE,
                                              n_steps=STEPS, noise_std=NOISE),
    "(b) AT, Eq. 17 (E(x,y))": generate(models["at"], labels, seeds, energy="joint", step_size=STEP_SIZE,
                                       n_steps=STEPS, noise_std=NOISE),
    "(c) PreJEAT, Eq. 17": generate(models["prejeat"], labels, seeds, energy="joint", step_size=STEP_SIZE,
                                   n_steps=STEPS, noise_std=NOISE),
}
fig = plot_image_rows({"class-Gaussian seeds": seeds, **rows}, nrow=N_IMAGES,
                      title=f"label: {CIFAR10_CLASSES[LABEL]}")
fig

# %% [markdown]
# ## The chain as it evolves

# %%
_, chain = generate(models["at"], labels[:4], seeds[:4], energy="joint", step_size=STEP_SIZE, n_steps=STEPS,
                    noise_std=NOISE, record_every=max(1, STEPS // 5))
plot_image_rows({f"step {i * max(1, STEPS // 5)}": c for i, c in enumerate(chain)}, nrow=4)

# %%
print(*save_figure(fig, FIGURES, "fig4_eq16_vs_eq17"), sep="\n")

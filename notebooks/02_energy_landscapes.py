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
# # 2 · Energy landscapes around real images (Fig. 2)
#
# The paper's central picture: a **normal** classifier's $E(x, y)$ is sharp around a real image,
# and its low-energy region lies away from the image; **adversarial training** flattens and
# lowers the energy around the data; **PreJEAT** and **JEAT** (trained against the energy attack,
# Eq. 18) flatten it further, so Langevin chains started near the data stay near the data.
#
# We slice the input space through an image $x$ along two random directions $d_1, d_2$
# (seeded; the same for every model) and plot $E(x + a d_1 + b d_2, y)$.

# %% tags=["parameters"]
import os

SMOKE = os.environ.get("JEAT_SMOKE") == "1"
MODELS = ["standard", "at", "prejeat", "jeat"]
IMAGE = 0
RADIUS = 2.0  # L2 distance in pixel space (an 8/255 L-inf ball has L2 radius ~1.74)
RESOLUTION = 9 if SMOKE else 41
FIGURES = os.environ.get("JEAT_FIGURES", "../figures")

# %%
from jeat_core.checkpoints import load_model
from jeat_core.data import CIFAR10_CLASSES, load_split
from jeat_core.figures import contour_data, plot_contours, save_figure

models = {name: load_model(f"cifar10-cpu/{name}")[0] for name in MODELS}
x, y = load_split("test").tensors(16)

# %% [markdown]
# ## Fig. 2: four models, one image, the same directions
# The blue star is the real image. "flatness" is the mean $|E(x+\delta, y) - E(x, y)|$ over the
# slice: lower is flatter.

# %%
data = contour_data(models, x[IMAGE], int(y[IMAGE]), radius=RADIUS, resolution=RESOLUTION)
fig = plot_contours(data, title=f"E(x, y = {CIFAR10_CLASSES[int(y[IMAGE])]}) around a test image")
fig

# %%
{name: d["stats"] for name, d in data.items()}

# %% [markdown]
# ## Explore: change the model, the image, the radius, the resolution and the directions

# %%
from jeat_core.widgets import landscape_explorer, surface_3d

landscape_explorer(models, x, y, radius=RADIUS, resolution=9 if SMOKE else 21)

# %% [markdown]
# ## The same slice in 3-D (drag to rotate)

# %%
d = data["jeat" if "jeat" in data else MODELS[-1]]
surface_3d(d["a"], d["b"], d["grid"], title="E(x, y) around a real image")

# %%
print(*save_figure(fig, FIGURES, "fig2_energy_contours"), sep="\n")

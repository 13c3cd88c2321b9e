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

from jeat_core.paper_items import PAPER_SIZES, SMOKE_SIZES

SMOKE = os.environ.get("JEAT_SMOKE") == "1"
SIZES = SMOKE_SIZES if SMOKE else PAPER_SIZES  # Fig. 4 at the size `jeat figures` writes it (or `--smoke`'s)
MODELS = ["at", "prejeat", "jeat", "standard"]
LABEL = 8  # ship, as in Fig. 4 (the explorer's first label)
FIGURES = os.environ.get("JEAT_FIGURES", "../figures-local")  # git-ignored; `make figures` writes figures/

# %% [markdown]
# ## Setup: models and class-Gaussian seeds

# %%

from jeat_core.checkpoints import load_model
from jeat_core.data import load_split
from jeat_core.figures import GENERATION_FORMATS, Table, image_rows_table, plot_image_rows, save_figure
from jeat_core.paper_items import fig4_rows
from jeat_core.sampling import ClassGaussian, generate_snapshots

models, manifests = {}, {}
for name in MODELS:
    models[name], manifests[name] = load_model(f"cifar10-cpu/{name}")
train = load_split("train")
class_gaussian = ClassGaussian(train.x, train.y)  # N(mu_y, Sigma_y + 1e-4 I), full 3072-d
print("models:", ", ".join(models))

# %% [markdown]
# ## Explore
# Every control re-runs the chain (seeds are cached per label/init/seed). Each model starts from
# its own tuned sampler when its manifest has one, else from `GenerationConfig`'s defaults (K
# capped at `SIZES.max_steps`, as in the figures). Below the pictures: how far the chain moved,
# the energy before and after, the share of clipped pixels, a warning when the chain broke, and
# p(y | x) from a classifier that did *not* generate the images (named). Try the AT model with
# the two energies, then push the step size up until the chain breaks.

# %% tags=["figure"]
from jeat_core.widgets import generation_explorer, require

require(globals(), "models", "manifests", "class_gaussian", cell="the parameters cell and the Setup cell")
explorer = generation_explorer(models, class_gaussian, manifests=manifests, n_images=4 if SMOKE else 6,
                               label=LABEL, max_steps=SIZES.max_steps)
explorer

# %% [markdown]
# ## Fig. 4: the same seeds, three samplers
# (a) AT model with Eq. 16 ($U = E(x,y) - E(x)$), (b) AT model with Eq. 17 ($U = E(x,y)$),
# (c) PreJEAT model with Eq. 17; every row starts from the same class-Gaussian seeds (seed 0) and
# runs its model's own tuned sampler (`manifest["sampler"]`, best vs best, K capped at
# `SIZES.max_steps`). `fig4_rows` is the producer `jeat figures` calls too, so this is the figure
# it writes (at the same size); the seeds themselves are the first row of the chain below.

# %% tags=["figure"]
fig4 = fig4_rows(models, manifests, class_gaussian, sizes=SIZES)
labels, seeds = fig4.labels, fig4.seeds
fig = plot_image_rows(fig4.rows, nrow=fig4.nrow, title=fig4.title, side_by_side=fig4.side_by_side)
fig

# %% [markdown]
# What each chain did (U is the sampler's energy: $E(x,y) - E(x)$ for Eq. 16, $E(x, y)$ for Eq. 17):

# %%
Table(image_rows_table(fig4, models), formats=GENERATION_FORMATS)

# %% [markdown]
# ## The chain as it evolves
# The first four Fig. 4 seeds through row (b)'s chain: the AT model, Eq. 17, its tuned sampler
# (`fig4.runs` holds each row's model, energy and `GenerationConfig`); step 0 is the seeds.

# %% tags=["figure"]
name, _, cfg = fig4.runs["(b) AT, Eq. 17"]
every = max(1, cfg.n_steps // 5)
snaps = generate_snapshots(models[name], labels[:4], seeds[:4], cfg, at=(*range(0, cfg.n_steps, every), cfg.n_steps))
plot_image_rows({f"step {k}": x for k, x in snaps.items()}, nrow=4)

# %%
print(*save_figure(fig, FIGURES, "fig4_eq16_vs_eq17"), sep="\n")

# %% [markdown]
# ## What holds at our scale
# What `jeat audit` last measured for the paper's claims this notebook reproduces: the paper's
# statement, our number with its interval and n, the verdict, and why it may differ at our scale.
# The table is rendered from `figures/audit.json`, so it changes when the audit does.

# %%
from jeat_core.verdicts import verdict_table

verdict_table("04")

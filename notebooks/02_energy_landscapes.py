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
# # 2 · Energy landscapes around real images (Fig. 2)
#
# The paper's central picture: a **normal** classifier's $E(x, y)$ is sharp around a real image,
# and its low-energy region lies away from the image; **adversarial training** flattens and
# lowers the energy around the data. The paper also reports that **PreJEAT** and **JEAT**
# (trained against the energy attack, Eq. 18) flatten it *further*; we measure whether our small
# CPU models show that, on one image here and on the audit's test images, and say so below.
#
# We slice the input space through an image $x$ along two random directions $d_1, d_2$
# (seeded; the same for every model) and evaluate the classifier at every point
# $x' = x + a d_1 + b d_2$ of the slice.

# %% tags=["parameters"]
import os

from jeat_core.paper.paper_items import FIG2_IMAGE, FIG2_MODELS, FIG2_RADIUS, PAPER_SIZES, SMOKE_SIZES

SMOKE = os.environ.get("JEAT_SMOKE") == "1"
SIZES = SMOKE_SIZES if SMOKE else PAPER_SIZES  # Fig. 2 at the size `jeat figures` writes it (or `--smoke`'s)
MODELS = list(FIG2_MODELS)  # Fig. 2's models: standard, at, prejeat, jeat
IMAGE = FIG2_IMAGE  # Fig. 2's test image (0); the explorer below picks others
RADIUS = FIG2_RADIUS  # L2 distance in pixel space (2.0; an 8/255 L-inf ball has L2 radius ~1.74)
FIGURES = os.environ.get("JEAT_FIGURES", "../figures-local")  # git-ignored; `make figures` writes figures/

# %% [markdown]
# ## Setup: the models and the test images

# %%
from jeat_core.core.checkpoints import load_model
from jeat_core.core.data import CIFAR10_CLASSES, load_split
from jeat_core.explore.figures import MODEL_LABELS, flatness_order, plot_contours
from jeat_core.explore.plotting import Table, save_figure
from jeat_core.paper.paper_items import fig2_data

models = {name: load_model(f"cifar10-cpu/{name}")[0] for name in MODELS}
x, y = load_split("test").tensors(16)

# %% [markdown]
# **Your own classifier.** Set `JEAT_USER_MODEL=path/to/models.py:build` (a function returning the
# network; or a shipped name or `jeat train` run folder) and `JEAT_USER_WEIGHTS=weights.pt` (or
# `.safetensors`; add `JEAT_USER_NORMALIZE=cifar10` if it expects normalised inputs) before starting
# JupyterLab, and the explorer below offers it as `yours` beside the shipped models (docs/lens.md).
# Fig. 2 itself keeps the paper's four models.

# %%
from jeat_core.core.user_model import from_env

user = from_env()  # None unless JEAT_USER_MODEL is set
if user is not None:
    models[user.name] = user.model
    print(f"your model: {user.source} as {user.name!r}")

# %% [markdown]
# ## What to plot: Δ log p, each panel on its own scale
# The paper draws $E(x', y) = -f(x')[y]$. Raw energies of different models are not comparable,
# because of what a classifier's training leaves free. By Eq. 13,
#
# $$E(x', y) = -\log p(y \mid x') + E(x'), \qquad E(x') = -\log \textstyle\sum_k e^{f(x')[k]} ,$$
#
# and cross-entropy only sees the first term: adding any function $c(x')$ to all ten logits changes
# $E(x', y)$ by $-c(x')$ and no prediction at all. So a change of $E(x', y)$ along the slice mixes
# the change of the class probability with that of the free part $E(x')$, whose size is set by
# the model's **logit scale** (our robust models have far smaller logits than the normal one, see
# $E(x, y)$ at $x$ in the table below) and, for JEAT, whose generative term trains $E(x')$
# directly, by its model of $p(x)$. That is the logit-scale confound. The change of
# $\log p(y \mid x')$ removes it: it is the audit's flatness quantity (claim 3).
#
# So each panel shows $\Delta \log p = \log p(y \mid x') - \log p(y \mid x)$: white is "as at the
# image" (the star), blue "$y$ more likely than at the image", red "less likely". Each panel has
# **its own colour scale**, spanning exactly its values: on one shared scale the sharpest model sets
# the range and the robust panels come out as one near-uniform colour. Compare flatness by the
# number in each title, the mean $|\Delta \log p|$ over the slice (lower is flatter), and by the
# colour bars' ranges, not by the depth of colour. The explorer below also shows the raw
# $E(x', y) - E(x, y)$.

# %% [markdown]
# ## Fig. 2: four models, one image, the same directions

# %% tags=["figure"]
data = fig2_data(models, x, y, sizes=SIZES)  # the producer `jeat figures` calls too
print(f"log p(y = {CIFAR10_CLASSES[int(y[IMAGE])]} | x') around test image {IMAGE}, radius {RADIUS}, "
      f"{SIZES.resolution} x {SIZES.resolution} grid")
fig = plot_contours(data, shared=True)
fig

# %%
stats = [{"model": MODEL_LABELS.get(n, n), "flatness (Δ log p)": d["stats"]["flatness_dlogp"],
          "flatness (ΔE)": d["stats"]["flatness"], "p of y at x": d["stats"]["p_center"],
          "E(x, y) at x": d["stats"]["center_energy"], "share of slice below x": d["stats"]["center_rank"]}
         for n, d in data.items()]
Table(stats, formats={"flatness (Δ log p)": "{:.4f}", "flatness (ΔE)": "{:.4f}", "p of y at x": "{:.2f}",
                      "E(x, y) at x": "{:.2f}", "share of slice below x": "{:.0%}"})

# %% [markdown]
# **What the numbers say.** The paper expects Normal ≫ AT > PreJEAT ≈ JEAT in flatness. The cell
# below writes the comparison from the numbers above (this image, both quantities) and from
# `figures/audit.json` (claim 3: mean $|\Delta \log p|$ over the audit's test images, one random
# slice each, with bootstrap 95% intervals), so the text follows the measurement when either changes.
# One image is one draw: the per-image order of the robust models changes from image to image.

# %%
import json

from IPython.display import Markdown

from jeat_core.paper.verdicts import AUDIT


def ranked(values: dict) -> str:
    return " < ".join(f"{k} {v:.3g}" for k, v in sorted(values.items(), key=lambda kv: kv[1]))


def flatter(a: str, b: str, values: dict) -> str:
    return "flatter" if values[a] < values[b] else "less flat"


one = dict(flatness_order(data))  # mean |Δ log p| on this image's slice, flattest first
raw = dict(flatness_order(data, "flatness"))  # mean |ΔE(x, y)|
audit = json.loads(AUDIT.read_text())
claim = next(c for c in audit["claims"] if c["id"] == 3)
fifty = {MODEL_LABELS[n]: r for n, r in claim["ours"].items()}
mean = {k: r["flatness_dlogp"] for k, r in fifty.items()}
ci = {k: r["ci"] for k, r in fifty.items()}
best, second = sorted(mean, key=mean.get)[:2]
below_normal = all(ci[k][1] < ci["Normal"][0] for k in mean if k != "Normal")
one_best, raw_best = min(one, key=one.get), min(raw, key=raw.get)
lines = [
    f"**This image** (test image {IMAGE}), flattest first. In Δ log p: {ranked(one)}. In raw energy "
    f"(mean |ΔE(x, y)|): {ranked(raw)}. "
    + ("The two quantities agree on the flattest model." if one_best == raw_best else
       f"The two disagree: raw energy calls {raw_best} the flattest, Δ log p {one_best}; the difference is "
       "the free part E(x') (see above)."),
    "",
    f"**Over {claim['n']} test images** (audit{', smoke run: not a result' if audit.get('smoke') else ''}), "
    "mean |Δ log p| [95% CI]: "
    + "; ".join(f"{k} {mean[k]:.3g} [{ci[k][0]:.3g}, {ci[k][1]:.3g}]" for k in sorted(mean, key=mean.get)) + ".",
    f"- {best} is the flattest on average; "
    + (f"its interval overlaps {second}'s, so the order of the two is not resolved at n = {claim['n']}."
       if ci[best][1] >= ci[second][0] else f"its interval lies below {second}'s."),
    ("- Every robust model is flatter than Normal with non-overlapping intervals" if below_normal else
     "- Not every robust model's interval lies below Normal's") + f" (the audit's verdict: **{claim['reproduced']}**).",
    f"- The paper's *further* flattening by PreJEAT and JEAT: on average PreJEAT is {flatter('PreJEAT', 'AT', mean)} "
    f"than AT, JEAT {flatter('JEAT', 'AT', mean)}.",
]
Markdown("\n".join(lines))

# %% [markdown]
# ## Explore: change the model, the label, the colour, the image, the radius, the resolution and the directions
# One model at a time, on its own colour scale, with its flatness in the title; below it the same
# numbers for this slice (p(y | x) at the image, mean |Δ log p|, mean |ΔE|), then the slice as a
# 3-D surface (drag to rotate). **label y** starts at the image's true class; **colour** switches
# between Δ log p(y | x′) and the raw E(x′, y) − E(x, y).
#
# **Speed.** A new slice (model, image, radius, resolution or direction seed) costs one forward pass
# per grid point, so the default grid is a coarse one (its size is the **resolution** slider's
# start; `benchmarks/explorer_latency.py --only 02` times a change on your machine). Fig. 2's
# 41 × 41 grid is about ten times the points of 13 × 13. The slice's logits are kept, so the label,
# the colour and a slice seen before cost only the drawing. The 3-D surface follows the figure a
# moment later: a browser takes longer to build a new WebGL surface than the figure, so untick
# **3-D surface** to explore faster.

# %% tags=["figure"]
from jeat_core.explore.widgets import landscape_explorer, require

require(globals(), "models", "x", "y", cell="the parameters cell and the Setup cell")
EXPLORE_RESOLUTION = 9 if SMOKE else 13
landscape_explorer(models, x, y, radius=RADIUS, resolution=EXPLORE_RESOLUTION)

# %% [markdown]
# ## What to try
# Three experiments with the explorer; the cell after this list measures each on the shipped
# `cifar10-cpu` models at the explorer's defaults (it prints the grid, radius and direction seed),
# so your numbers move with the models.
#
# 1. **The logit-scale confound, on Fig. 2's image.** Pick AT, then JEAT, and switch **colour**
#    between the two quantities. Do the two models rank the same in raw energy (mean |ΔE|) as in
#    Δ log p? Where they differ, the difference is the free part E(x′), which JEAT's generative
#    term shapes and which no prediction depends on.
# 2. **Where Δ log p is blind: a confident prediction.** Pick Normal and an image it classifies with
#    p(y | x) near 1 (the cell below takes image 2 and prints its p(y | x)). A saturated softmax keeps
#    log p(y | x′) at 0 whatever the logits do, so the slice can look flat in Δ log p while its raw
#    energy is sharp. Then set **label y** to the runner-up class. This is why Normal's mean over
#    the audit's images is set by a few images near a decision boundary: compare it with the median.
# 3. **One image is one draw.** With AT and JEAT, step **image** through the test images (and the
#    **direction seed**): which of the two is flatter changes from image to image. The ranking of
#    the robust models rests on the audit's average over images and its interval, not on a picture.

# %%
import torch

from jeat_core.core.landscape import landscape_slices
from jeat_core.paper.experiments import Context, landscape_numbers
from jeat_core.paper.prose import audit_settings, say

say(f"Explorer defaults: {EXPLORE_RESOLUTION} × {EXPLORE_RESOLUTION} grid, L2 radius {RADIUS:g}, direction seed 0.")
try1 = {n: v["stats"] for n, v in landscape_slices({n: models[n] for n in ("at", "jeat")}, x[IMAGE], int(y[IMAGE]),
                                                     radius=RADIUS, resolution=EXPLORE_RESOLUTION).items()}
a1, j1 = try1["at"], try1["jeat"]
say(f"1. Test image {IMAGE}: mean |ΔE| JEAT {j1['flatness']:.2g} against AT {a1['flatness']:.2g} (JEAT "
    f"{j1['flatness'] / a1['flatness']:.1f} times AT's); mean |Δ log p| JEAT {j1['flatness_dlogp']:.3g}, AT "
    f"{a1['flatness_dlogp']:.3g}. The two quantities "
    + ("agree" if (j1["flatness"] < a1["flatness"]) == (j1["flatness_dlogp"] < a1["flatness_dlogp"]) else "disagree")
    + " on which of the two is flatter.")
CONFIDENT = 2  # the test image of experiment 2
with torch.no_grad():
    runner_up = int(models["standard"](x[CONFIDENT:CONFIDENT + 1])[0].topk(2).indices[1])
two = landscape_slices(models, x[CONFIDENT], int(y[CONFIDENT]), radius=RADIUS, resolution=EXPLORE_RESOLUTION)
n2 = two["standard"]["stats"]
others = {n: v["stats"] for n, v in two.items() if n != "standard"}
alt = landscape_slices({"standard": models["standard"]}, x[CONFIDENT], runner_up, radius=RADIUS,
                       resolution=EXPLORE_RESOLUTION)["standard"]["stats"]
say(f"2. Normal on test image {CONFIDENT} ({CIFAR10_CLASSES[int(y[CONFIDENT])]}): p(y | x) = {n2['p_center']:.2f}, "
    f"mean |Δ log p| {n2['flatness_dlogp']:.2g} ("
    + ("flatter" if n2["flatness_dlogp"] < min(o["flatness_dlogp"] for o in others.values()) else "not flatter")
    + f" than every robust model's on this image), mean |ΔE| {n2['flatness']:.3g} ("
    + ("the sharpest" if n2["flatness"] > max(o["flatness"] for o in others.values()) else "not the sharpest")
    + f" of all). With label y = {CIFAR10_CLASSES[runner_up]}, the runner-up class, mean |Δ log p| becomes "
    f"{alt['flatness_dlogp']:.2g}.")
N_LAND = 4 if SMOKE else audit_settings().get("n_land", 50)  # the audit's images, slices 15 × 15 (image i, seed i)
per_image = {n: torch.tensor(r["per_image"])
             for n, r in landscape_numbers(Context(), ["standard", "at", "jeat"], n=N_LAND).items()}
say(f"3. Over the first {N_LAND} test images (the audit's slices): Normal's mean |Δ log p| is "
    f"{float(per_image['standard'].mean()):.2g}, its median {float(per_image['standard'].median()):.2g}; JEAT was "
    f"flatter than AT on {int((per_image['jeat'] < per_image['at']).sum())} of {N_LAND} images, with the "
    + ("lower" if per_image["jeat"].mean() < per_image["at"].mean() else "higher") + " mean.")

# %%
print(*save_figure(fig, FIGURES, "fig2_energy_contours"), sep="\n")

# %% [markdown]
# ## What holds at our scale
# What `jeat audit` last measured for the paper's claims this notebook tests: the paper's
# statement, our number with its interval and n, the verdict, and why it may differ at our scale.
# The table is rendered from `figures/audit.json`, so it changes when the audit does.

# %%
from jeat_core.paper.verdicts import verdict_table

verdict_table("02")

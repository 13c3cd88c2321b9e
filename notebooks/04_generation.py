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
# Santurkar et al. generate an image of class $y$ by descending the cross-entropy $\mathcal L$ from
# a seed drawn from a class-conditional Gaussian (**Eq. 4**: $x' = x - \tfrac{\eta}{2}\nabla_x
# \mathcal L(x, y) + \sqrt{\eta}\,\epsilon$). With $\mathcal L = E(x,y) - E(x)$ (Eq. 13) that is
# Langevin dynamics on $U = E(x,y) - E(x)$ (**Eq. 16**):
#
# $$x \leftarrow x - \tfrac{\eta}{2}\nabla_x\big(E(x,y) - E(x)\big) + s\,\epsilon .$$
#
# The paper argues that $E(x)$ is poorly shaped by classification training (Fig. 3b) and only
# adds label-independent noise, so it drops it and samples $p(x, y)$ directly with
# $U = E(x, y)$ (**Eq. 17**).
#
# **The noise.** Exact Langevin (Eq. 9) adds $s = \sqrt{\eta}$; like JEM we decouple the step from
# the noise. Each shipped model's tuned sampler is a Langevin step with its own noise $s$ or
# Santurkar's normalised L2 step (with its own noise, none in Santurkar's code); the table after the
# setup cell shows each beside $\sqrt\eta$, and the line under it says how far below exact
# Langevin's noise they are. Where $s \ll \sqrt\eta$ the chains are in effect **gradient descent**
# from class-Gaussian seeds on $U$, not samplers of $p(x, y)$. What exact Langevin noise does is one
# of the experiments under the explorer.
#
# **Santurkar's step.** Their code does not take the plain gradient step of Eq. 4 but a
# *normalised* one, $x \leftarrow x - \eta\,\nabla U/\lVert\nabla U\rVert_2$ (a fixed L2 length η
# per step, their targeted L2 PGD without the projection). It is `step="l2"` in
# `GenerationConfig`; the sampler tuning tried it beside the Langevin step sizes (the line under
# the sampler table prints the step lengths it tried).

# %% tags=["parameters"]
import os

from jeat_core.paper.paper_items import PAPER_SIZES, SMOKE_SIZES

SMOKE = os.environ.get("JEAT_SMOKE") == "1"
SIZES = SMOKE_SIZES if SMOKE else PAPER_SIZES  # Fig. 4 at the size `jeat figures` writes it (or `--smoke`'s)
MODELS = ["at", "prejeat", "jeat", "standard"]
LABEL = 8  # ship, as in Fig. 4 (the explorer's first label)
FIGURES = os.environ.get("JEAT_FIGURES", "../figures-local")  # git-ignored; `make figures` writes figures/

# %% [markdown]
# ## Setup: models and class-Gaussian seeds

# %%

from jeat_core.core.sampling import generate_snapshots
from jeat_core.explore.figures import GENERATION_FORMATS, image_rows_table, plot_image_rows
from jeat_core.explore.plotting import Table, save_figure
from jeat_core.paper.experiments import Context
from jeat_core.paper.paper_items import fig4_rows

ctx = Context()  # the shipped models, the data and the seeds' Gaussians, loaded once (the audit's own)
models, manifests = ctx.models(MODELS), ctx.manifests(MODELS)
train = ctx.train_split()
class_gaussian = ctx.class_gaussian()  # N(mu_y, Sigma_y + 1e-4 I), full 3072-d

# your own classifier (docs/lens.md): JEAT_USER_MODEL=path/to/models.py:build, JEAT_USER_WEIGHTS=weights.pt
# (JEAT_USER_NORMALIZE=cifar10 if it expects normalised inputs; JEAT_USER_REPORT=a `jeat lens` report folder
# gives it the samplers tuned there) before starting JupyterLab: the explorer offers it as `yours`
from jeat_core.core.user_model import from_env

user = from_env()  # None unless JEAT_USER_MODEL is set
if user is not None:
    models[user.name], manifests[user.name] = user.model, user.manifest
print("models:", ", ".join(models))

# %% [markdown]
# **Class-Gaussian seeds.** Every chain here starts from a seed of Santurkar et al.'s class
# Gaussian (the paper's §2.2): for class $y$, the mean $\mu_y$ and covariance $\Sigma_y$ of that
# class's 5,000 training images at full resolution (3 × 32 × 32 = 3,072 dimensions), plus
# $10^{-4} I$ to keep it well conditioned. `ClassGaussian` draws from $\mathcal N(\mu_y,
# \Sigma_y + 10^{-4} I)$ exactly without forming the 3,072 × 3,072 matrix ($\mu_y + X_c^\top z /
# \sqrt{n-1}$ with the centred class images $X_c$ and $z \sim \mathcal N(0, I_n)$) and clips to
# [0, 1]. The seeds are blurry colour blobs with the class's average layout, and already carry
# some of its identity: the next cell prints how often the independent evaluator classifies them
# as their class, before any chain has run, the floor every generated row must beat.

# %%
import math

from jeat_core.paper.prose import sampler_rows, say, seed_baseline

base = seed_baseline()
if base:
    say(f"The evaluator classifies {base['eval_acc']:.1%} of {base['n']:,} class-Gaussian seeds "
        f"({base['n'] // 10} per class) as their class (the seed row of figures/audit.json); chance is 10%.")
tuned_rows = sampler_rows(manifests)
if tuned_rows:
    ratio = max(r["noise s"] / math.sqrt(r["η"]) if r["step"] == "langevin" else r["noise s"] for r in tuned_rows)
    l2_tried = sorted({g["sampler"]["step_size"] for man in manifests.values()
                       for sam in (man.get("sampler") or {}).values() for g in sam.get("grid", [])
                       if g["sampler"]["step"] == "l2"})
    say(f"Largest noise of a tuned sampler, as a share of exact Langevin's √η (for an L2 step: its s itself): "
        f"{ratio:.2g}" + (": every chain is in effect gradient descent." if ratio < 0.1 else ".")
        + (f" The tuning grid's L2 step lengths: {', '.join(f'{v:g}' for v in l2_tried)}." if l2_tried else ""))
else:
    say("No model here has a tuned sampler (manifest['sampler']).")
Table(tuned_rows, formats={"η": "{:g}", "noise s": "{:g}", "exact Langevin √η": "{:.2f}"},
      title="each model's tuned sampler (manifest['sampler']): the noise s against exact Langevin's √η")

# %% [markdown]
# ## Why Eq. 16's step vanishes, derived
# With $p = \mathrm{softmax}(f(x))$, the gradient of Eq. 16's energy
# $U = E(x,y) - E(x) = -\log p(y\mid x)$ is
#
# $$\nabla_x U = -\nabla_x f_y + \sum_k p_k \nabla_x f_k
#   = -(1 - p_y)\,\nabla_x f_y + \sum_{k \ne y} p_k\,\nabla_x f_k .$$
#
# Every term carries a factor that goes to 0 as $p_y \to 1$: once the chain's image is classified
# as $y$ with confidence, Eq. 16's drift stops, wherever the image is. Eq. 17's energy
# $U = E(x, y) = -f_y$ has gradient $-\nabla_x f_y$, with no such factor: it keeps pushing $f_y$ up,
# towards images the model finds *very* typical of $y$, which on a flat, robust energy are
# natural-looking images and on a steep one are saturated patterns (the chain "runs off", as the
# explorer's η = 10 shows). The next cell checks the identity on the AT model, by autograd against
# the formula built from the ten per-class gradients, on four test images.

# %%
import torch

x_all, y_all = ctx.test()
x4, y4 = x_all[:4], y_all[:4]
at_model = models["at"]
x4 = x4.clone().requires_grad_(True)
logits = at_model(x4)
(g_autograd,) = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, y4, reduction="sum"), x4,
                                    retain_graph=True)
p4 = logits.softmax(1).detach()
per_class = torch.stack([torch.autograd.grad(logits[:, k].sum(), x4, retain_graph=True)[0] for k in range(10)], 1)
onehot = torch.nn.functional.one_hot(y4, 10).double()
g_formula = (-(1 - p4.double()) * onehot + p4.double() * (1 - onehot))[..., None, None, None] * per_class.double()
g_formula = g_formula.sum(1)
err = float((g_formula - g_autograd.double()).abs().max() / g_autograd.abs().max())
say(f"largest difference between autograd and the formula, relative to the gradient's size: {err:.1e}; "
    f"p(y|x) of the four images: {', '.join(f'{v:.3f}' for v in p4[torch.arange(4), y4].tolist())} "
    f"(the closer to 1, the smaller Eq. 16's step)")

# %% [markdown]
# **What notebook 00 predicted.** On its 2-D toy the same algebra shows in where chains end: Eq. 16
# chains stop once the cross-entropy is small, anywhere inside the class's region, and end closer to
# the data than Eq. 17 chains of the non-JEAT models, which keep climbing $f_y$ past it. The
# prediction for CIFAR-10 is therefore about *where* the chains go, not that Eq. 17 must generate
# better images: the moved L2 distances of the Fig. 4 rows below and the audit's part 4a (its verdict
# at the end of this notebook, decided over the AT runs) are where it is tested. The next cell reads
# the outcome from the audit.

# %%
from jeat_core.paper.prose import audit_claim

c4 = audit_claim(4)
part = (c4 or {}).get("parts", [None])[0]
kid = next((x for x in (part or {}).get("comparisons", []) if x["metric"] == "kid"), None)
if kid is None:
    say("Claim 4 is not in this audit: nothing to compare the toy's prediction with.")
else:
    lean = ("Eq. 16's samples score better, the toy's direction (its chains stop nearer the data)" if kid["diff"] > 0
            else "Eq. 17's samples score better, against the toy's direction")
    say(f"Part 4a over AT's training runs: KID(Eq. 17) − KID(Eq. 16) = {kid['diff']:+.4f} "
        f"[{kid['ci'][0]:+.4f}, {kid['ci'][1]:+.4f}] ({kid['feature_space']}, {kid['ci_level']:.1%} interval): "
        f"{lean} on average; the verdict is '{part['verdict']}'.")

# %% [markdown]
# ## Explore
# Every control re-runs the chain (seeds are cached per label/init/seed), K capped at 60 steps
# (5 in smoke mode), as in the figures. The controls start at the first model's tuned Eq. 17
# sampler. Choosing a model or an energy that has a tuned sampler in its manifest (the table
# above) loads it; choosing one that has none (the next cell lists them) **keeps whatever values
# the controls hold**, and the panel's title then says "sampler" instead of "model's tuned
# sampler". Below the pictures: how far the chain moved, the energy before and after, the share of
# clipped pixels, a warning when the chain broke, and p(y | x) from a classifier that did *not*
# generate the images (named).

# %%
untuned = [f"{name} with {'Eq. 17' if e == 'joint' else 'Eq. 16'}" for name in MODELS for e in ("joint", "ce")
           if not ((manifests[name].get("sampler") or {}).get(e))]
print("no tuned sampler (the controls keep their values):", ", ".join(untuned) or "none")

# %% tags=["figure"]
from jeat_core.explore.widgets import generation_explorer, require

require(globals(), "models", "manifests", "class_gaussian", cell="the parameters cell and the Setup cell")
explorer = generation_explorer(models, class_gaussian, manifests=manifests, n_images=4 if SMOKE else 6,
                               label=LABEL, max_steps=SIZES.max_steps)
explorer

# %% [markdown]
# ### What to try
# On the AT model, from class-Gaussian seeds (seed 0); "accuracy" is the share of images the
# independent evaluator classifies as the intended class. The cell after this list runs each
# experiment on a balanced set of seeds and prints what it found, beside the seeds themselves:
#
# * **Exact Langevin noise.** Take a small η and push the noise to the slider's top (about √η
#   at η = 0.1), and at a large η take s = √η (in code: `generate(models["at"], labels, seeds,
#   GenerationConfig("joint", 3.0, 10, 3 ** 0.5))` after `from jeat_core.core.sampling import
#   GenerationConfig, generate`). Does the chain break (clipped pixels, colour noise) and the
#   accuracy fall to chance, against the whisper of noise the tuned samplers keep?
# * **η = 10 with each energy.** Does Eq. 17 break at this step while Eq. 16 (AT's tuned Eq. 16
#   sampler) stays intact? Eq. 16's gradient shrinks as p(y | x) → 1, so it should need, and
#   tolerate, larger steps.
# * **Santurkar's normalised step** (in code: `GenerationConfig("joint", 0.5, 20, 0.0, "l2")`, a
#   cell of the tuning grid): how far does it move, and how does it score, beside the tuned Langevin
#   sampler?

# %%
import dataclasses

from jeat_core.core.sampling import GenerationConfig, generate, sampler_for
from jeat_core.paper.experiments import chain_diagnostics, describe, independent_judge

judge_name, judge = independent_judge("at", models)
try_labels = torch.arange(10).repeat_interleave(1 if SMOKE else 5)  # 5 seeds a class (1 in smoke mode)
try_seeds = class_gaussian.sample(try_labels, generator=torch.Generator().manual_seed(0))


def cap(cfg: GenerationConfig) -> GenerationConfig:
    return dataclasses.replace(cfg, n_steps=min(cfg.n_steps, SIZES.max_steps))


def trial(cfg: GenerationConfig) -> dict:
    """Run ``cfg`` (K capped as in the figures) on the AT model from the seeds above: moved L2, clipped pixels,
    accuracy by the independent judge, and whether the chain broke."""
    cfg = cap(cfg)
    out = generate(models["at"], try_labels, try_seeds, cfg, seed=0)
    d = chain_diagnostics(models["at"], try_labels, try_seeds, out, energy=cfg.energy)
    with torch.no_grad():
        acc = float((judge(out).argmax(1) == try_labels).float().mean()) if judge is not None else float("nan")
    return {"cfg": describe(cfg), "l2": d["l2"], "clipped": d["saturated"], "acc": acc, "broken": d["broken"]}


def line(r: dict) -> str:
    return (f"{r['cfg']}: moved {r['l2']:.1f}, {r['clipped']:.0%} of the pixels clipped, accuracy {r['acc']:.0%}"
            + (" (chain broken)" if r["broken"] else ""))


tuned17, tuned16 = sampler_for(manifests["at"], "joint"), sampler_for(manifests["at"], "ce")
with torch.no_grad():
    seeds_acc = float((judge(try_seeds).argmax(1) == try_labels).float().mean()) if judge is not None else float("nan")
say(f"{len(try_seeds)} seeds, scored by {judge_name}: the seeds alone {seeds_acc:.0%}.")
small = trial(dataclasses.replace(tuned17, step_size=0.1))
top = trial(dataclasses.replace(tuned17, step_size=0.1, noise_std=10 ** -0.5))
big = trial(GenerationConfig("joint", 3.0, 10, 3 ** 0.5))
say(f"Exact Langevin noise: {line(top)}; against {line(small)}; {line(big)}. "
    + ("Exact noise costs accuracy here, which is why the tuning keeps the noise small."
       if max(top["acc"], big["acc"]) < small["acc"] else "Exact noise does not cost accuracy here."))
e17 = trial(GenerationConfig("joint", 10.0, 20, tuned17.noise_std))
e16 = trial(dataclasses.replace(tuned16, step_size=10.0))  # AT's tuned Eq. 16 sampler at η = 10
say(f"η = 10: Eq. 17, {line(e17)}; Eq. 16, {line(e16)}. Eq. 17 "
    + ("broke and Eq. 16 did not" if e17["broken"] and not e16["broken"] else
       "did not break" if not e17["broken"] else "broke, and so did Eq. 16") + " at this step.")
l2 = trial(GenerationConfig("joint", 0.5, 20, 0.0, "l2"))
say(f"Santurkar's normalised step: {line(l2)}; AT's tuned Eq. 17 sampler: {line(trial(tuned17))}.")

# %% [markdown]
# ## Fig. 4: the same seeds, three samplers
# (a) AT model with Eq. 16 ($U = E(x,y) - E(x)$), (b) AT model with Eq. 17 ($U = E(x,y)$),
# (c) PreJEAT model with Eq. 17; every row starts from the same class-Gaussian seeds (seed 0) and
# runs its model's own tuned sampler (`manifest["sampler"]`, best vs best, K capped at 60 steps;
# 5 in smoke mode). `fig4_rows` is the producer `jeat figures` calls too, so this is the figure
# it writes (at the same size); the seeds themselves are the first row of the chain below.

# %% tags=["figure"]
fig4 = fig4_rows(models, manifests, class_gaussian, sizes=SIZES)
labels, seeds = fig4.labels, fig4.seeds
fig = plot_image_rows(fig4)
fig

# %% [markdown]
# What each chain did (U is the sampler's energy: $E(x,y) - E(x)$ for Eq. 16, $E(x, y)$ for Eq. 17),
# with the seeds as the first row. Where the seeds of this class already get a high p(y | x) from the
# evaluator (the seed row), the generated images can hardly improve on them; the audit's verdict
# (below) scores all ten classes.

# %%
from jeat_core.paper.prose import seed_row

Table([seed_row(seeds, labels, loaded=models), *image_rows_table(fig4, models)], formats=GENERATION_FORMATS)

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
# ## How generation is scored
# The paper judges Figs. 4–6 by eye and Tab. 2 by Inception IS/FID. Here a verdict comes from
# numbers with intervals ([`docs/evaluation.md`](../docs/evaluation.md)):
#
# * **KID and FID.** Both compare a set of generated images with real test images *in the feature
#   space of a classifier*. FID fits a Gaussian to each set's features and measures the distance
#   between the two Gaussians; KID (the kernel inception distance) is the squared distance between
#   the two sets' mean embeddings under a cubic polynomial kernel, estimated without bias, so it is
#   usable at 1,000 images where FID is still biased by the sample size. Lower is better; 0 means
#   the sets are indistinguishable in that space.
# * **Whose features.** Not Inception (no offline weights here) and never one of the generators:
#   two independent CIFAR-trained evaluators (`eval-A`, a BN-ReLU ResNet, and `eval-B`, a VGG).
# * **Why raw features mislead.** KID's kernel is $(x^\top y/d + 1)^3$, designed for features whose
#   scaled dot products are of order 1. eval-A's raw penultimate features are long (their norms are
#   in the table below), so the kernel's argument is far from that design point and the cube
#   magnifies differences in feature *norm* over differences in what the images show: raw KID is
#   large even between two sets of real images. The **primary ruler** therefore standardises each
#   feature by the mean and SD of the real reference images first (`eval-A/std`);
#   `eval-B/std` and eval-A's middle layer (`eval-A/mid/std`) are the two **check rulers**, and raw
#   eval-A only a diagnostic, beside a ruler no network learned (`pixels/8x8/std`: the images
#   average-pooled to 8 × 8 per channel, standardised). The cell below shows the effect on 200 real
#   images and 200 seeds, in every diagnostic ruler and the primary one.
# * **Paired intervals.** Every set is generated from the same seeds with the same Langevin noise,
#   so `KID(a) − KID(b)` is resampled by seed index: the seeds' own variance cancels.
# * **Over training runs.** A claim about *methods* is decided over their training runs: each
#   run's KID is one value, and the interval is Welch's t on those values (a paired t when one set of
#   runs is sampled two ways, as here: Eq. 17 vs Eq. 16 on each AT run). A part with one run on a
#   side is reported as *one run per side: not decided over runs*.
# * **Holm.** A claim split into parts (6a, 6b, 6c) tests each part at Holm's level, so the chance
#   of one spurious "reproduced" among them stays at 5%. Nothing controls it across claims.
# * **The verdict.** *Reproduced* when the primary interval excludes 0 in the paper's direction and
#   no ruler disagrees; *not reproduced* the other way; *depends on the ruler* when rulers exclude 0
#   in opposite directions; *inconclusive* otherwise, *leaning* toward or against the paper when
#   only the check rulers decide.

# %%
from jeat_core.measure import rulers, stats
from jeat_core.paper.prose import audit_claim

x_test, _ = ctx.test()
real_small, (seed_small, _) = x_test[:200], ctx.seeds(20, 0)
rows = []
for space in (*rulers.available(ctx, ("diagnostic",)), rulers.primary()):  # every diagnostic ruler, then the primary
    f_real, f_seed = (rulers.features(ctx, space, im) for im in (real_small, seed_small))
    rows.append({"ruler": space.name, "feature norm (real)": float(f_real.norm(dim=1).mean()),
                 "feature norm (seeds)": float(f_seed.norm(dim=1).mean()),
                 "KID real": rulers.kid(ctx, space, real_small), "KID seeds": rulers.kid(ctx, space, seed_small)})
Table(rows, formats={k: "{:.3g}" for k in rows[0] if k != "ruler"},
      title="200 real test images and 200 class-Gaussian seeds against the reference images [5000, 10000)")

# %% [markdown]
# The run-level interval of a part, recomputed from the per-run values `figures/audit.json` stores
# (claim 4's part 4a: each AT run's primary KID with Eq. 17 and with Eq. 16):

# %%
four = audit_claim(4)
part = four["parts"][0] if four and four.get("parts") else None
cmp = part["comparisons"][0] if part else {}
if len(cmp.get("runs_a", [])) >= 2:
    rl = stats.paired(cmp["runs_a"], cmp["runs_b"])
    lo, hi = rl.ci(cmp["ci_level"])
    say(f"Part {part['name']}: KID(Eq. 17) − KID(Eq. 16) per AT run = "
        f"{', '.join(f'{a - b:+.4f}' for a, b in zip(cmp['runs_a'], cmp['runs_b']))}; mean {rl.estimate:+.4f}, "
        f"{cmp['ci_level']:.1%} paired t-interval [{lo:+.4f}, {hi:+.4f}] with {rl.df:.0f} df: "
        f"{part['verdict']}.")
else:
    say("figures/audit.json has no per-run values for part 4a yet (one run per side).")

# %% [markdown]
# ## What holds at our scale
# What `jeat audit` last measured for the paper's claims this notebook tests: the paper's
# statement, our number with its interval and n, the verdict, and why it may differ at our scale.
# The table is rendered from `figures/audit.json`, so it changes when the audit does.

# %%
from jeat_core.paper.verdicts import verdict_table

verdict_table("04")

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
# # 6 · JEAT: adversarial training that also shapes $E(x)$ (Algorithm 1, Fig. 6)
#
# Adversarial training lowers $E(x, y)$ around the data but leaves $E(x)$ alone (notebook 3).
# **JEAT** adds the missing piece. It replaces PreJEAT's cross-entropy by the joint likelihood
# (**Eq. 19**):
#
# $$-\log p_\theta(x, y) = -\log p_\theta(y \mid x) - \log p_\theta(x),$$
#
# the first term the usual CE, the second a maximum-likelihood term for the marginal
# $p_\theta(x) = e^{-E_\theta(x)}/Z_\theta$ (Eq. 5). Its gradient needs the partition function:
# since $\nabla_\theta \log Z_\theta = -\mathbb E_{x' \sim p_\theta}[\nabla_\theta E_\theta(x')]$,
#
# $$-\nabla_\theta \log p_\theta(x) = \nabla_\theta E_\theta(x) - \mathbb E_{x' \sim p_\theta}
# \big[\nabla_\theta E_\theta(x')\big] \qquad \text{(Eq. 20, up to sign).}$$
#
# (The paper prints Eq. 20 as $\nabla_\theta \log p_\theta(x) = -\nabla_\theta E_\theta(x) - \mathbb E[\nabla_\theta
# E_\theta(x')]$; differentiating $\log Z_\theta$ gives a plus before the expectation there, which is the
# line above with both sides negated and the form Algorithm 1 implements.) The expectation over the model's own
# samples is intractable, so, like JEM, JEAT estimates it with a few samples $\tilde x$ from
# short-run SGLD on $E_\theta(x)$ (Algorithm 1: $\tilde x \leftarrow \tilde x - \tfrac{\alpha}{2}
# \nabla E_\theta(\tilde x) + \sqrt\alpha\,\epsilon$, K steps). With $\tilde x$ held fixed,
# $E_\theta(x) - E_\theta(\tilde x)$ has exactly that gradient: lower the energy of the data, raise
# the energy of what the model currently generates. JEAT evaluates it at the *energy-attack*
# example $x_{adv}$ instead of the clean image:
#
# $$\mathcal L = \mathrm{CE}(x_{adv}, y) + \big[E_\theta(x_{adv}) - E_\theta(\tilde x)\big],
# \qquad \tilde x = \text{K SGLD steps on } E_\theta(x) \text{ from the buffer.}$$
#
# **The replay buffer.** K steps from noise would give poor samples of $p_\theta$. Instead the
# chains *persist*: a buffer $B$ holds past $\tilde x$; each training step draws chains from $B$,
# runs K more SGLD steps on them and writes them back, so over training a chain accumulates many
# times K steps. With probability $\rho$ (the reinitialisation probability) a drawn chain is
# restarted from a fresh seed instead, which keeps the buffer from collapsing onto a few modes. The
# picture after the first step below shows both.
#
# One step of Algorithm 1:
# 1. $x_{adv}$: FGSM with random start on $E(x, y)$ (the energy attack, Eq. 18), $\epsilon = 8/255$;
# 2. $\tilde x$: draw chains from the replay buffer $B$ (each re-initialised with probability
#    $\rho$: to $U(0,1)$ in Algorithm 1; from the class-Gaussian seeds in the shipped model),
#    run $K$ SGLD steps on $E(x)$, write them back;
# 3. update $\theta$ on the loss above.
#
# The shipped `jeat` is a fine-tune of the shipped PreJEAT with this loss at a weight $w$ below 1,
# plus a small penalty $\lambda\,(E(x_{adv})^2 + E(\tilde x)^2)$ on the energies' size, K SGLD steps
# and a persistent buffer; the setup cell prints $w$, $\lambda$, K, the buffer and the length of the
# fine-tune from its manifest. Weight 1 destroys the classifier at this scale (the ablation in
# `checkpoints/README.md`). The setup cell also prints its SGLD step α and noise beside exact
# Langevin's $\sqrt\alpha$: where the noise is far below $\sqrt\alpha$, the SGLD is close to
# gradient descent.

# %% tags=["parameters"]
import os

from jeat_core.paper.paper_items import FIG6_MODELS, PAPER_SIZES, SMOKE_SIZES

SMOKE = os.environ.get("JEAT_SMOKE") == "1"
SIZES = SMOKE_SIZES if SMOKE else PAPER_SIZES  # Fig. 6 at the size `jeat figures` writes it (or `--smoke`'s)
MODELS = list(FIG6_MODELS)  # AT, PreJEAT, JEM, JEAT, and TRADES (not in the paper)
WALK_MODEL = "jeat"
SGLD_STEPS = 3 if SMOKE else 20
FIGURES = os.environ.get("JEAT_FIGURES", "../figures-local")  # git-ignored; `make figures` writes figures/

# %% [markdown]
# ## Setup: models, data and class-Gaussian seeds

# %%
import torch

from jeat_core.core.attacks import fgsm_rs
from jeat_core.core.data import CIFAR10_CLASSES, load_split
from jeat_core.core.energy import joint_energy, marginal_energy
from jeat_core.core.sampling import ReplayBuffer, langevin
from jeat_core.explore.figures import GENERATION_FORMATS, image_rows_table, plot_image_rows
from jeat_core.explore.plotting import Table, save_figure
from jeat_core.paper.experiments import Context
from jeat_core.paper.paper_items import fig6_rows
from jeat_core.paper.prose import say

ctx = Context()  # the shipped models and the seeds' Gaussians, loaded once (the audit's own)
models, manifests = ctx.models(MODELS), ctx.manifests(MODELS)
train, test = ctx.train_split(), load_split("test")
class_gaussian = ctx.class_gaussian()
model = models[WALK_MODEL]
cfg = manifests[WALK_MODEL]["config"]
print(f"{WALK_MODEL}: attack {cfg['attack']}, SGLD {cfg['sgld']}")
print(f"SGLD step α = {cfg['sgld']['step_size']:g}, noise {cfg['sgld']['noise_std']:g}; "
      f"exact Langevin would add √α = {cfg['sgld']['step_size'] ** 0.5:.2f}")
say(f"The recipe: a fine-tune of {cfg.get('init_from') or 'no model (from scratch)'} for {cfg['epochs']:g} epoch(s), "
    f"generative term at weight w = {cfg.get('gen_weight', 1.0):g}, energy penalty λ = {cfg.get('energy_l2', 0.0):g}, "
    f"K = {cfg['sgld']['n_steps']} SGLD steps on chains from a {cfg['sgld']['buffer_size']:,}-chain buffer "
    f"({cfg['sgld'].get('init', 'uniform')} init, reinitialisation probability ρ = {cfg['sgld']['reinit_prob']:g}).")

# %% [markdown]
# ## Algorithm 1, one step at a time (on the shipped JEAT model, no update)

# %% tags=["figure"]
g = torch.Generator().manual_seed(0)
x, y = test.tensors(8)
x_adv = fgsm_rs(model, x, y, eps=8 / 255, objective="energy", generator=g)  # step 1: Eq. 18
init = cfg["sgld"].get("init", "uniform")  # the model's own buffer init: class-Gaussian seeds or U(0, 1)
seed_fn = ((lambda n, gen: class_gaussian.sample(torch.randint(0, 10, (n,), generator=gen), generator=gen))
           if init == "class_gaussian" else None)
buffer = ReplayBuffer(100, reinit_prob=cfg["sgld"]["reinit_prob"], init_fn=seed_fn, generator=g)  # a fresh buffer
x0, idx = buffer.sample(8, generator=g)
x_tilde = langevin(lambda z: marginal_energy(model(z)), x0, step_size=cfg["sgld"]["step_size"],
                   n_steps=SGLD_STEPS, noise_std=cfg["sgld"]["noise_std"], clamp=(0, 1), generator=g)  # step 2
buffer.push(x_tilde, idx)
with torch.no_grad():
    lx, la, lt = model(x), model(x_adv), model(x_tilde)


def mean2(t) -> str:  # a batch mean to 2 decimals, signed, never "-0.00"
    return f"{round(float(t.mean()), 2) + 0.0:+.2f}"


print(f"E(x, y):  clean {mean2(joint_energy(lx, y))} → attacked {mean2(joint_energy(la, y))}")
print(f"E(x):     clean {mean2(marginal_energy(lx))}, attacked {mean2(marginal_energy(la))}, "
      f"SGLD samples {mean2(marginal_energy(lt))}")
print("step 3 would lower E(x_adv) and raise E(x̃): the generative term is",
      mean2(marginal_energy(la) - marginal_energy(lt)))
plot_image_rows({"x (test images)": x, "x_adv (energy attack, ε = 8/255)": x_adv,
                 f"buffer seeds ({init})": x0, f"x̃ after {SGLD_STEPS} SGLD steps on E(x)": x_tilde}, nrow=8)

# %% [markdown]
# **What "JEAT optimises E(x, y) directly" means.** Algorithm 1's loss adds the classification term
# and the generative term, and the marginal energy of the adversarial example cancels between them:
#
# $$\underbrace{E(x_{adv}, y) - E(x_{adv})}_{\text{CE, Eq. 13}}
#   + \underbrace{E(x_{adv}) - E(\tilde x_K)}_{p(x)\text{ term}} = E(x_{adv}, y) - E(\tilde x_K).$$
#
# So at weight 1 JEAT lowers the joint energy of the attacked data and raises the marginal energy of
# its SGLD samples; it never asks for $E(x_{adv})$ itself. (At the shipped recipe's weight $w < 1$,
# printed in the setup cell, the cancellation is partial: $(1 - w)\,E(x_{adv})$ is left, pushed up as
# in plain adversarial training.)
# The next cell checks the identity on the batch above.

# %%
ce = joint_energy(la, y) - marginal_energy(la)  # -log p(y | x_adv), per image
lhs = ce.mean() + (marginal_energy(la).mean() - marginal_energy(lt).mean())
rhs = joint_energy(la, y).mean() - marginal_energy(lt).mean()
say(f"CE + [E(x_adv) − E(x̃)] = {float(lhs):+.4f};  E(x_adv, y) − E(x̃) = {float(rhs):+.4f};  "
    f"cross-entropy from torch: {float(torch.nn.functional.cross_entropy(la, y)):+.4f} (the first term)")

# %% [markdown]
# ## Persistent chains and ρ, in a picture
# The age of each chain in a small buffer (SGLD steps since its last (re)initialisation) over
# training steps, drawn with the library's own `ReplayBuffer`: 8 slots, 4 drawn per step, K steps
# each, at the shipped ρ and at ρ = 1. With a small ρ a chain's age climbs by K every time it is
# drawn, to many times K, and drops back when it is restarted; with ρ = 1 every draw is a
# fresh seed, so no chain ever runs more than K steps: short-run SGLD without persistence.

# %% tags=["figure"]
from jeat_core.explore.plotting import subplots

rho_shipped, k_steps = cfg["sgld"]["reinit_prob"], cfg["sgld"]["n_steps"]
fig_buf, axes = subplots(1, 2, figsize=(9, 2.6), sharey=True)
for ax, rho in zip(axes, (rho_shipped, 1.0)):
    gb = torch.Generator().manual_seed(1)
    toy = ReplayBuffer(8, shape=(1,), reinit_prob=rho, init_fn=lambda n, gen: torch.zeros(n, 1), generator=gb)
    ages = []
    for _ in range(60):
        z, slots = toy.sample(4, generator=gb)
        toy.push(z, slots, steps=k_steps)
        ages.append(toy.age.clone())
    ages = torch.stack(ages)  # (steps, slots)
    for s in range(ages.shape[1]):
        ax.step(range(len(ages)), ages[:, s], where="post", lw=1)
    ax.set_title(f"ρ = {rho:g}: {toy.n_reinit} restarts in {toy.n_sampled} draws", fontsize=9)
    ax.set_xlabel("training step")
axes[0].set_ylabel("SGLD steps since (re)init")
fig_buf.tight_layout()
fig_buf

# %% [markdown]
# ## Longer chains from the buffer
# Back to the real buffer: we keep sampling from it and show what the chains look like after more
# rounds.

# %% tags=["figure"]
for _ in range(3):
    x0, idx = buffer.sample(8, generator=g)
    buffer.push(langevin(lambda z: marginal_energy(model(z)), x0, step_size=cfg["sgld"]["step_size"],
                         n_steps=SGLD_STEPS, noise_std=cfg["sgld"]["noise_std"], clamp=(0, 1), generator=g), idx)
with torch.no_grad():
    pred = model(buffer.data[idx]).argmax(1)
plot_image_rows({"buffer after 4 rounds (prediction: " + ", ".join(CIFAR10_CLASSES[int(p)] for p in pred[:4])
                 + ", …)": buffer.data[idx]}, nrow=8)

# %% [markdown]
# ## Fig. 6: class-conditional samples (Eq. 17) from AT, PreJEAT, JEM and JEAT
# Same class-Gaussian seeds (seed 0) for every model, each with its own tuned sampler
# (`manifest["sampler"]`, best vs best, K capped at 60 steps, 5 in smoke mode; the cell under the
# figure prints each one's step rule, η, K and noise s beside exact Langevin's √η: where s ≪ √η the
# chains are in effect gradient descent on E(x, y) from class-Gaussian seeds). The seeds are
# $\mathcal N(\mu_y, \Sigma_y + 10^{-4} I)$ fitted on each
# class's training images (notebook 4 explains them). The panels stand side by
# side as in the paper: first the seeds every chain starts from, then AT, PreJEAT, JEM, JEAT and
# TRADES (not in the paper: a robust classifier trained with a KL term instead of an energy
# objective; how it scores as a generator is in `figures/README.md`). In each model's panel,
# one line per class (airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck, top
# to bottom), 8 samples a line (2 in smoke mode). `fig6_rows` is the producer `jeat figures` calls
# too, so this is the figure it writes (at the same size).

# %% tags=["figure"]
fig6 = fig6_rows(models, manifests, class_gaussian, sizes=SIZES)
fig = plot_image_rows(fig6)
fig

# %% [markdown]
# What each chain did, and p(y | x) from a classifier that did not generate the images, with the
# seeds as the first row (the floor a generated row has to beat):

# %%
from jeat_core.paper.prose import sampler_rows, say, seed_baseline, seed_row

for r in sampler_rows(manifests, energies=("joint",)):
    noise = (f"noise s = {r['noise s']:g} against exact Langevin's √η = {r['exact Langevin √η']:.2f}"
             if r["step"] == "langevin" else f"noise s = {r['noise s']:g} (normalised L2 step)")
    say(f"{r['model']}: {r['step']} step, η = {r['η']:g}, K = {r['K']}, {noise}")
base = seed_baseline()
if base:
    say(f"On the audit's {base['n']:,} seeds the evaluator's accuracy is {base['eval_acc']:.1%} "
        "(the seed row of figures/audit.json).")
Table([seed_row(fig6.seeds, fig6.labels, loaded=models), *image_rows_table(fig6, models)], formats=GENERATION_FORMATS)

# %% [markdown]
# ## Explore: model and label

# %% tags=["figure"]
from jeat_core.explore.widgets import generation_explorer, require

require(globals(), "models", "manifests", "class_gaussian", cell="the parameters cell and the Setup cell")
generation_explorer(models, class_gaussian, manifests=manifests, n_images=4 if SMOKE else 6, max_steps=SIZES.max_steps,
                    title="Samples by model (Fig. 6)", model="jeat")  # opens on JEAT, the paper's model

# %% [markdown]
# ### What to try
# Two experiments with the library (the audit, not these, scores generation); the cell after this
# list runs both and prints what it found:
#
# * **ρ = 1: no persistence.** Set `reinit_prob=1.0` in the Algorithm 1 cell and rerun it and the
#   "Longer chains" cell. The cell below does it on a small class-Gaussian buffer with the shipped
#   JEAT's SGLD: does the chains' mean E(x̃) sink further, below the test images', at the shipped ρ
#   (persistent chains, many times K steps old) than at ρ = 1, where no chain runs more than K
#   steps? The persistent chains should reach the low-energy regions the p(x) term is there to
#   push up.
# * **Uniform seeds** (the explorer's `init`). From U(0, 1) noise, how far do JEAT's and JEM's
#   tuned samplers move the seeds, and how often does the evaluator recognise the intended class,
#   against the same samplers from class-Gaussian seeds? The difference is how much of the work the
#   seeds carry.

# %%
from jeat_core.core.sampling import generate, sampler_for, uniform_init
from jeat_core.paper.experiments import chain_diagnostics, describe, independent_judge

SLOTS, DRAWN, ROUNDS = 32, 16, 3 if SMOKE else 10  # a small buffer: chains, chains drawn a round, rounds
sgld = cfg["sgld"]


def energy_of_rounds(rho: float) -> dict:
    """Mean E(x̃) of the first chains drawn (``start``) and of the drawn chains after each round of SGLD_STEPS
    steps (``rounds``), and the oldest chain's age in SGLD steps (``oldest``)."""
    gen = torch.Generator().manual_seed(0)
    buf = ReplayBuffer(SLOTS, reinit_prob=rho, init_fn=seed_fn, generator=gen)
    means, start = [], None
    for _ in range(ROUNDS):
        z0, slots = buf.sample(DRAWN, generator=gen)
        if start is None:
            with torch.no_grad():
                start = float(marginal_energy(model(z0)).mean())
        z = langevin(lambda v: marginal_energy(model(v)), z0, step_size=sgld["step_size"], n_steps=SGLD_STEPS,
                     noise_std=sgld["noise_std"], clamp=(0, 1), generator=gen)
        buf.push(z, slots, steps=SGLD_STEPS)
        with torch.no_grad():
            means.append(float(marginal_energy(model(z)).mean()))
    return {"start": start, "rounds": means, "oldest": int(buf.age.max())}


with torch.no_grad():
    e_test = float(marginal_energy(model(test.tensors(100)[0])).mean())
shipped, fresh = energy_of_rounds(rho_shipped), energy_of_rounds(1.0)
late = {k: r["rounds"][ROUNDS // 2:] for k, r in (("shipped", shipped), ("fresh", fresh))}  # the later rounds
say(f"{SLOTS} chains ({init} init), {DRAWN} drawn a round, {ROUNDS} rounds of {SGLD_STEPS} SGLD steps. The drawn "
    f"chains' mean E(x̃) started at {shipped['start']:+.2f}; over the later rounds it lay between "
    f"{min(late['shipped']):+.2f} and {max(late['shipped']):+.2f} at the shipped ρ = {rho_shipped:g} (oldest chain "
    f"{shipped['oldest']} steps), between {min(late['fresh']):+.2f} and {max(late['fresh']):+.2f} at ρ = 1 (oldest "
    f"{fresh['oldest']}). The test images' mean E(x) is {e_test:+.2f}: the persistent chains sank "
    + ("lower than the fresh ones" if max(late["shipped"]) < min(late["fresh"])
       else "not clearly lower than the fresh ones")
    + (", below the test images." if max(late["shipped"]) < e_test else "."))
judge_name, judge = independent_judge("jeat", models)
try_labels = torch.arange(10).repeat_interleave(1 if SMOKE else 5)  # 5 seeds a class (1 in smoke mode)
starts = {"uniform": uniform_init(len(try_labels), generator=torch.Generator().manual_seed(0)),
          "class-Gaussian": class_gaussian.sample(try_labels, generator=torch.Generator().manual_seed(0))}


def accuracy(images) -> float:
    with torch.no_grad():
        return float((judge(images).argmax(1) == try_labels).float().mean()) if judge is not None else float("nan")


parts = [f"{len(try_labels)} seeds, scored by {judge_name}; the uniform noise itself "
         f"{accuracy(starts['uniform']):.0%}, the class-Gaussian seeds {accuracy(starts['class-Gaussian']):.0%}"]
for name in ("jeat", "jem"):
    gcfg = sampler_for(manifests[name], "joint", max_steps=SIZES.max_steps)
    runs = {k: generate(models[name], try_labels, x0, gcfg, seed=0) for k, x0 in starts.items()}
    parts.append(f"{name} ({describe(gcfg)}): from uniform seeds moved "
                 f"{chain_diagnostics(models[name], try_labels, starts['uniform'], runs['uniform'])['l2']:.1f}, "
                 f"accuracy {accuracy(runs['uniform']):.0%}; from class-Gaussian seeds "
                 f"{accuracy(runs['class-Gaussian']):.0%}")
say("; ".join(parts) + ".")

# %%
print(*save_figure(fig, FIGURES, "fig6_generation_by_model"), sep="\n")

# %% [markdown]
# ## What holds at our scale
# What `jeat audit` last measured for the paper's claims this notebook tests: the paper's
# statement, our number with its interval and n, the verdict, and why it may differ at our scale.
# The table is rendered from `figures/audit.json`, so it changes when the audit does.

# %%
from jeat_core.paper.verdicts import verdict_table

verdict_table("06")

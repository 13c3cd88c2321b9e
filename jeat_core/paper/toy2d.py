"""Notebook 00's toy task: Fig. 1 of the paper in two dimensions, through the library's own code.

A point of the plane is a one-pixel, two-channel "image": ``(B, 2, 1, 1)`` in [0, 1]², so the
energies (:mod:`jeat_core.core.energy`), the training attacks, the SGLD of Algorithm 1 and the losses
(:mod:`jeat_core.train.methods`), the loop (:func:`jeat_core.train.training.fit`) and the Langevin sampler
(:func:`jeat_core.core.sampling.langevin`) run on it unchanged; the classifier is the registry's
``toy_mlp`` (:class:`jeat_core.core.models.ToyMLP`). Nothing here re-implements a method: this module
picks toy-sized settings (:func:`toy_config`) and measures, on a grid over the plane,

* ``E(x, y)`` for every class and ``E(x)`` (Eq. 12);
* one training update on a few points (:meth:`ToyLab.update`): the training input ``x_in``
  (the attack example for ``at``/``prejeat``/``jeat``, the noisy point for ``noise``, ``x`` for
  ``standard``), ``Δ_x E = E(x_in) − E(x)`` and ``Δ_θ E = E_after(x_in) − E_before(x_in)`` per point
  for E(x, y) and E(x) (Eq. 15, measured by :class:`jeat_core.train.train_state.EnergyDynamics`);
* Langevin paths on ``E(x, y)`` (Eq. 17) from class-Gaussian seeds (:class:`ClassGaussian`).

:class:`ToyLab` caches every trained model and measurement, so an explorer that changes only the
sampler reuses the model, and one that returns to a setting answers at once.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from jeat_core.core.configs import ModelConfig, OptimConfig, SGLDConfig
from jeat_core.core.data import Split, to_float
from jeat_core.core.energy import energy_of, joint_energy, marginal_energy
from jeat_core.core.sampling import ClassGaussian, langevin
from jeat_core.train.methods import get_method, make_config
from jeat_core.train.train_state import Batch, EnergyDynamics
from jeat_core.train.training import apply_update, fit

TOY_METHODS = ("standard", "noise", "at", "prejeat", "jeat")  # entries of jeat_core.train.methods.METHODS
TOY_CLASSES = ("A", "B", "C", "D")
# class k: a Gaussian blob around a point of a ring about the centre, elongated along the ring
_ANGLES = np.pi / 4 + np.pi / 2 * np.arange(len(TOY_CLASSES))
TOY_CENTRES = 0.5 + 0.2 * np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], 1)  # (K, 2)
TOY_STD = (0.07, 0.035)  # along the ring, across it
EPS_CHOICES = (0.02, 0.05, 0.12)  # L-inf radius of the training attack, in units of the plane
SIGMA_CHOICES = (0.02, 0.05, 0.12)  # std of the injected noise (method "noise")
ETA_CHOICES = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)  # Langevin step sizes η (noise sqrt(η): exact Langevin)


@dataclass(frozen=True)
class ToySettings:
    """Sizes of the toy task. ``steps`` updates of batch ``batch`` (Adam, constant ``lr``) on
    ``n_train`` points; ``hidden``: width of the two SiLU layers; ``resolution``: grid points per
    side over [0, 1]²; ``n_shown``: points per class whose update is drawn (of the update's batch);
    ``n_paths``: Langevin chains; SGLD (``jeat``): ``sgld_steps`` exact-Langevin steps of size
    ``sgld_step`` on E(x) from a replay buffer of ``buffer`` chains (uniform init, re-init
    probability 0.05); ``log_every``: the Fig. 3 energies are measured every that many updates."""

    n_train: int = 2000
    n_test: int = 500
    steps: int = 150
    batch: int = 256
    lr: float = 1e-2
    hidden: int = 64
    sgld_steps: int = 5
    sgld_step: float = 3e-3
    buffer: int = 1000
    log_every: int = 5
    resolution: int = 61
    n_shown: int = 8
    n_paths: int = 12
    seed: int = 0


SMOKE_TOY = ToySettings(n_train=512, n_test=128, steps=30, batch=128, resolution=25, n_shown=4, n_paths=4)


def toy_points(n: int, *, seed: int = 0) -> Split:
    """``n`` points of the four-class mixture as a :class:`Split`: ``x`` uint8 ``(n, 1, 1, 2)`` (a point
    quantised to 1/255, as images are), ``y`` ``(n,)`` balanced-at-random labels."""
    g = np.random.default_rng(seed)
    y = g.integers(0, len(TOY_CLASSES), n)
    along = np.stack([-np.sin(_ANGLES), np.cos(_ANGLES)], 1)[y]  # (n, 2) unit tangent of the ring
    across = np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], 1)[y]
    z = g.normal(size=(n, 2))
    x = TOY_CENTRES[y] + TOY_STD[0] * z[:, :1] * along + TOY_STD[1] * z[:, 1:] * across
    x8 = (np.clip(x, 0, 1) * 255).round().astype(np.uint8).reshape(n, 1, 1, 2)
    return Split(x8, y.astype(np.int64), f"toy2d(n={n}, seed={seed})")


def toy_config(method: str, *, eps: float = 0.05, sigma: float = 0.05, settings: ToySettings = ToySettings()):
    """The method's config (:func:`jeat_core.train.methods.make_config`) at toy size: ``toy_mlp``, Adam with a
    constant learning rate, no augmentation, no checkpoints, the Fig. 3 energies measured every
    ``settings.log_every`` updates; ``eps`` sets the training attack's radius (FGSM with random
    start, step ε, as Algorithm 1), ``sigma`` the noise of ``noise``; SGLD as :class:`ToySettings`
    says. A setting a method does not have is ignored. The divergence guard's floor is raised to
    200: a classifier of four well-separated classes legitimately reaches logits of 50."""
    s = settings
    cls = get_method(method).config
    kw = dict(model=ModelConfig("toy_mlp", {"n_classes": len(TOY_CLASSES), "hidden": s.hidden}),
              optim=OptimConfig("adam", lr=s.lr, batch_size=s.batch, warmup_steps=0, schedule="constant"),
              epochs=s.steps / max(1, s.n_train // s.batch), max_steps=s.steps, seed=s.seed, augment=False,
              channels_last=False, log_every=s.log_every, checkpoint_every=0, eval_n=s.n_test, energy_floor=200.0)
    if cls.has_field("sigma"):
        kw["sigma"] = sigma
    if cls.has_field("sgld"):
        kw["sgld"] = SGLDConfig(step_size=s.sgld_step, noise_std=None, n_steps=s.sgld_steps, buffer_size=s.buffer,
                                batch_size=64)
    cfg = make_config(method, "cpu", **kw)
    if cfg.uses_attack:
        cfg = replace(cfg, attack=replace(cfg.attack, eps=eps))
    return cfg


def _energies(model, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    with torch.no_grad():
        logits = model(x)
    return {"joint": joint_energy(logits, y), "marginal": marginal_energy(logits)}


def _plane(t: Tensor) -> np.ndarray:
    """``(..., 2, 1, 1)`` points -> ``(..., 2)`` numpy coordinates."""
    return t.reshape(*t.shape[:-3], 2).numpy()


class ToyLab:
    """The toy task's data, trained models and measurements, cached by their settings.

    ``key(method, eps, sigma)`` drops the settings a method does not use (``standard`` ignores both),
    so e.g. moving σ while showing ``at`` trains nothing. ``seconds`` records each training's time and
    ``logs`` its Fig. 3 energies (``dxE_*``/``dthetaE_*`` of every logged update, as ``jeat train``
    writes them to ``energy_log.jsonl``)."""

    def __init__(self, settings: ToySettings = ToySettings()):
        self.settings = s = settings
        self.train, self.test = toy_points(s.n_train, seed=s.seed), toy_points(s.n_test, seed=s.seed + 1)
        x, y = to_float(self.train.x), torch.from_numpy(self.train.y)  # (N, 2, 1, 1), (N,)
        self.class_gaussian = ClassGaussian(x, y)
        per_class = s.batch // len(TOY_CLASSES)
        pick = torch.cat([(y == k).nonzero().squeeze(1)[:per_class] for k in range(len(TOY_CLASSES))])
        self.batch = x[pick], y[pick]  # one training batch, per_class points of each class: (B, 2, 1, 1), (B,)
        self.shown = (torch.arange(len(pick)) % per_class < s.n_shown).numpy()  # the points whose update is drawn
        self.runs: dict = {}
        self.seconds: dict = {}
        self.logs: dict = {}
        self._cache: dict = {}

    def key(self, method: str, eps: float, sigma: float) -> tuple:
        cls = get_method(method).config
        return (method, round(float(eps), 6) if cls.has_field("attack") else None,
                round(float(sigma), 6) if cls.has_field("sigma") else None)

    def fit(self, method: str, eps: float = 0.05, sigma: float = 0.05):
        """The :class:`~jeat_core.train.training.FitResult` of ``method`` (trained once per key)."""
        k = self.key(method, eps, sigma)
        if k not in self.runs:
            t0 = time.perf_counter()
            cfg = toy_config(method, eps=eps, sigma=sigma, settings=self.settings)
            log: dict = {}  # step -> record; a step redone after a roll-back keeps its last record

            def on_step(step: int, metrics: dict) -> None:
                if "dxE_joint_mean" in metrics:
                    log[step - 1] = {"step": step - 1, **metrics}

            self.runs[k] = fit(cfg, train_data=self.train, test_data=self.test, progress=False, device="cpu",
                               callbacks=(on_step,))
            self.seconds[k] = time.perf_counter() - t0
            self.logs[k] = [log[i] for i in sorted(log) if i < self.runs[k].state.step]
        return self.runs[k]

    def warm(self, methods=TOY_METHODS, eps=EPS_CHOICES, sigma=SIGMA_CHOICES) -> list[dict]:
        """Train every (method, ε, σ) the explorer offers that is not trained yet (a method only over
        the settings it has); returns one row per trained model: method, ε, σ, seconds, clean accuracy."""
        keys = dict.fromkeys(self.key(m, e, s) for m in methods for e in eps for s in sigma)
        rows = []
        for k in keys:
            run = self.fit(k[0], k[1] if k[1] is not None else eps[0], k[2] if k[2] is not None else sigma[0])
            rows.append({"method": k[0], "ε": k[1], "σ": k[2], "seconds": self.seconds[k],
                         "clean accuracy": run.manifest["metrics"].get("clean_acc")})
        return rows

    def _cached(self, name: str, key: tuple, make):
        if (name, key) not in self._cache:
            self._cache[name, key] = make()
        return self._cache[name, key]

    def grids(self, method: str, eps: float = 0.05, sigma: float = 0.05) -> dict:
        """``{"axis": (R,), "joint": (K, R, R), "marginal": (R, R)}``: E(x, y) for every class and E(x)
        on the grid ``axis × axis`` over [0, 1]² (row i: second coordinate ``axis[i]``)."""
        def make():
            r = self.settings.resolution
            axis = torch.linspace(0, 1, r)
            b, a = torch.meshgrid(axis, axis, indexing="ij")
            pts = torch.stack([a.flatten(), b.flatten()], 1).view(-1, 2, 1, 1)  # (R², 2, 1, 1)
            with torch.no_grad():
                logits = self.fit(method, eps, sigma).state.core(pts)  # (R², K)
            return {"axis": axis.numpy(), "joint": (-logits).T.reshape(-1, r, r).numpy(),
                    "marginal": marginal_energy(logits).reshape(r, r).numpy()}
        return self._cached("grids", self.key(method, eps, sigma), make)

    def update(self, method: str, eps: float = 0.05, sigma: float = 0.05) -> dict:
        """One more training update of the trained model (a copy of its training state: model,
        optimiser, buffer, generator) on one batch of training points (``batch // 4`` of each class),
        with the method's own loss.

        Returns per point of the batch ``x``, ``x_in`` (what the loss trained on), labels ``y``,
        ``shown`` (the first ``n_shown`` of each class, which the figure draws), and for
        ``joint``/``marginal``: ``dx`` (``E(x_in) − E(x)``, before the update) and ``dtheta``
        (``E_after(x_in) − E_before(x_in)``); ``negatives``: the replay buffer after the update (SGLD
        methods; ``None`` otherwise)."""
        def make():
            run = self.fit(method, eps, sigma)
            state, cfg = copy.deepcopy(run.state), run.config
            x, y = self.batch
            dyn = EnergyDynamics(state, cfg, x, y)
            res = get_method(cfg.method).loss(state, Batch(x, y, dyn), cfg)
            apply_update(state, cfg, res.loss)
            after = _energies(state.core, dyn.x_in, y)
            out = {"x": _plane(x), "x_in": _plane(dyn.x_in), "y": y.numpy(), "shown": self.shown,
                   "negatives": _plane(state.buffer.data) if state.buffer is not None else None}
            for k in ("joint", "marginal"):
                out[k] = {"dx": (dyn.e_in[k] - dyn.e_ori[k]).numpy(), "dtheta": (after[k] - dyn.e_in[k]).numpy()}
            return out
        return self._cached("update", self.key(method, eps, sigma), make)

    def paths(self, method: str, eps: float, sigma: float, *, label: int, eta: float, steps: int,
              energy: str = "joint") -> np.ndarray:
        """Langevin chains on E(x, y = label) (Eq. 17; ``energy="ce"``: on E(x, y) − E(x), Eq. 16, the
        energy form of Santurkar et al.'s Eq. 4), exact (noise ``sqrt(η)``), clamped to [0, 1], from
        class-Gaussian seeds of ``label``; ``(T, n_paths, 2)`` with T ≤ 101 recorded iterates."""
        def make():
            n = self.settings.n_paths
            labels = torch.full((n,), int(label))
            g = torch.Generator().manual_seed(self.settings.seed)
            seeds = self.class_gaussian.sample(labels, generator=g)  # (n, 2, 1, 1)
            if steps == 0:
                return _plane(seeds[None])
            model = self.fit(method, eps, sigma).state.core
            _, chain = langevin(energy_of(model, energy, labels), seeds, step_size=eta, n_steps=steps,
                                noise_std=None, clamp=(0.0, 1.0), record_every=max(1, steps // 100), generator=g,
                                channels_last=False)
            return _plane(chain)
        return self._cached("paths", (*self.key(method, eps, sigma), int(label), float(eta), int(steps), energy), make)

    def distance_to_class(self, points: np.ndarray, label: int) -> np.ndarray:
        """Distance of each point ``(n, 2)`` to the nearest training point of class ``label`` (how far
        a chain ended from the data it should sample)."""
        data = _plane(to_float(self.train.x[self.train.y == label]))  # (n_c, 2)
        return np.sqrt(((points[:, None, :] - data[None]) ** 2).sum(-1)).min(1)

    def view(self, method: str, eps: float = 0.05, sigma: float = 0.05, *, label: int = 0, eta: float = 1e-3,
             steps: int = 100) -> dict:
        """Everything :func:`jeat_core.explore.figures.plot_toy2d` draws for these settings."""
        run = self.fit(method, eps, sigma)
        return {"method": method, "eps": eps, "sigma": sigma, "label": int(label), "eta": float(eta),
                "steps": int(steps), "grids": self.grids(method, eps, sigma), "update": self.update(method, eps, sigma),
                "paths": self.paths(method, eps, sigma, label=label, eta=eta, steps=steps),
                "data": (_plane(to_float(self.train.x)), self.train.y), "uses": self.key(method, eps, sigma),
                "log": self.logs[self.key(method, eps, sigma)],
                "clean_acc": run.manifest["metrics"].get("clean_acc"),
                "train_seconds": self.seconds[self.key(method, eps, sigma)]}

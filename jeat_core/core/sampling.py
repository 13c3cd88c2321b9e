"""Langevin / SGLD sampling, generation seeds and the replay buffer (Eq. 9, 10, 16, 17; Alg. 1).

One update rule serves every sampler in the paper, :func:`langevin_step`:

    x_{t+1} = x_t - (η/2) ∇_x U(x_t) + s · ε,     ε ~ N(0, I)

with ``U`` an energy (:mod:`jeat_core.core.energy`): ``U = E(x, y) - E(x)`` is "CE generation"
(Eq. 16, Santurkar et al.), ``U = E(x, y)`` is "energy generation" (Eq. 17 / Eq. 10) and
``U = E(x)`` is the SGLD of Algorithm 1. Exact Langevin dynamics (Eq. 9) has ``s = sqrt(η)``;
practical samplers decouple the two (JEM: a step of 1 on the gradient with noise 0.01 - in our
``η/2`` convention that is ``η = 2``, ``s = 0.01``). Both are supported and ``noise_std=None``
means exact Langevin. The one variant, ``step="l2"``, replaces the drift by Santurkar et al.'s
normalised L2 step ``-η ∇U/‖∇U‖₂`` (how their code runs Eq. 4).

One loop, :func:`langevin`, repeats the update; class-conditional generation (:func:`generate`,
:func:`generate_snapshots`) runs that loop with the settings of a :class:`GenerationConfig`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from jeat_core.core import rng
from jeat_core.core.attacks import input_layout
from jeat_core.core.energy import EnergyFn, energy_of

GENERATION_ENERGIES = {"ce": "ce", "joint": "joint"}  # Eq. 16, Eq. 17
STEPS = ("langevin", "l2")  # the drift of an update: -(η/2)∇U, or Santurkar's normalised -η ∇U/‖∇U‖₂


def langevin_step(energy_fn: EnergyFn, x: Tensor, *, step_size: float, noise_std: float, step: str = "langevin",
                  clamp: tuple[float, float] | None = None, generator: torch.Generator | None = None) -> Tensor:
    """One update of Eq. 16/17 (and Algorithm 1's SGLD): ``x - (η/2) ∇U(x) + s·ε``, then the clamp.

    ``step="l2"`` takes Santurkar et al.'s normalised step ``x - η ∇U/‖∇U‖₂ + s·ε`` instead (per
    image; Eq. 4 as their code runs it). ``∇U`` is taken on the sum of ``energy_fn(x)`` (``(B,)``),
    so η does not depend on the batch size. One ``N(0, I)`` draw of ``x``'s shape from
    ``generator`` when ``noise_std > 0``, none otherwise. ``x`` ``(B, ...)`` is a chain's own
    iterate: it is updated in place and returned (detached); pass a copy to keep it.
    """
    x.requires_grad_(True)
    (g,) = torch.autograd.grad(energy_fn(x).sum(), x)
    with torch.no_grad():  # in place on the chain's own tensor; the same arithmetic as x - (η/2)·g + s·ε
        x = x.detach()
        if step == "langevin":
            x.sub_(0.5 * step_size * g)
        else:
            norm = g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))  # (B, 1, ...)
            x.sub_(step_size * g / norm)
        if noise_std > 0:
            x.add_(rng.randn_like(x, generator=generator).mul_(noise_std))
        if clamp is not None:
            x.clamp_(*clamp)
    return x


def langevin(
    energy_fn: EnergyFn,
    x0: Tensor,
    *,
    step_size: float,
    n_steps: int,
    noise_std: float | None = None,
    step: str = "langevin",
    clamp: tuple[float, float] | None = None,
    record_every: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    channels_last: bool | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Run ``n_steps`` of Langevin dynamics on ``energy_fn`` from ``x0`` (Eq. 9/10/16/17): the one
    loop of every sampler here, :func:`langevin_step` ``n_steps`` times.

    Args:
        energy_fn: ``x -> (B,)`` energies; gradients are taken on their sum.
        x0: ``(B, ...)`` starting points (not modified).
        step_size: ``η``; the drift is ``-(η/2) ∇U``.
        n_steps: number of updates ``K``.
        noise_std: ``s``; ``None`` -> ``sqrt(η)`` (exact Langevin), ``0`` -> gradient descent.
        step: ``"langevin"`` (the drift above) or ``"l2"`` (Santurkar's normalised step ``-η ∇U/‖∇U‖₂``).
        clamp: ``(lo, hi)`` to clip after every step (e.g. ``(0, 1)`` for images), or ``None``.
        record_every: if set, also return the chain ``(T, B, ...)`` holding ``x0`` and every
            ``record_every``-th iterate (the final one always included).
        generator: optional ``torch.Generator`` for the noise.
        progress: show a tqdm bar.
        channels_last: iterate on channels-last images (4-D ``x0`` only). ``None`` (default):
            for CPU tensors, where oneDNN convolves that layout faster even with contiguous
            weights; ``True``/``False`` force it (training passes its ``channels_last``
            setting). The same values up to float rounding; ``x_K`` keeps the layout of ``x0``
            and the chain is contiguous. ``energy_fn`` then receives channels-last tensors
            (flatten with ``.reshape``, not ``.view``), or pass ``False``.
    Returns:
        ``x_K`` (detached), or ``(x_K, chain)`` when ``record_every`` is set.
    """
    step_size = _real("step_size", step_size)
    if not isinstance(n_steps, numbers.Integral) or isinstance(n_steps, bool) or n_steps < 0:
        raise ValueError(f"n_steps must be an integer >= 0; got {n_steps!r}")
    n_steps = int(n_steps)
    s = math.sqrt(step_size) if noise_std is None else _real("noise_std", noise_std)
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; choose one of {', '.join(STEPS)}")
    if record_every is not None and (not isinstance(record_every, numbers.Integral) or record_every < 1):
        raise ValueError(f"record_every must be a positive integer; got {record_every!r}")
    clamp = _clamp(clamp)
    if not isinstance(x0, Tensor) or not x0.dtype.is_floating_point:
        raise ValueError(f"x0 must be a float tensor; got {getattr(x0, 'dtype', type(x0).__name__)}")
    if x0.numel() and x0.device.type != "meta" and not bool(torch.isfinite(x0).all()):
        raise ValueError(f"x0 contains NaN or inf ({int((~torch.isfinite(x0)).sum())} values); "
                         f"Langevin would spread them to the whole image")

    x = x0.detach().clone(memory_format=input_layout(x0, channels_last))
    chain = [x0.detach().clone(memory_format=torch.contiguous_format)] if record_every else None
    steps = range(n_steps)
    if progress:
        from tqdm.auto import tqdm  # progress bars: loaded only when asked for

        steps = tqdm(steps, desc="langevin", leave=False)
    for t in steps:
        x = langevin_step(energy_fn, x, step_size=step_size, noise_std=s, step=step, clamp=clamp, generator=generator)
        if chain is not None and ((t + 1) % record_every == 0 or t + 1 == n_steps):
            chain.append(x.clone(memory_format=torch.contiguous_format))
    x = torch.empty_like(x0).copy_(x)  # in the layout of x0
    if chain is not None:
        return x, torch.stack(chain)
    return x


def _clamp(clamp) -> tuple[float, float] | None:
    """``clamp`` checked: ``None`` or a pair of finite numbers ``lo <= hi``."""
    if clamp is None:
        return None
    if not isinstance(clamp, (tuple, list)) or len(clamp) != 2:
        raise ValueError(f"clamp must be a pair (lo, hi) or None; got {clamp!r}")
    lo, hi = (_real(n, v, signed=True) for n, v in zip(("clamp[0]", "clamp[1]"), clamp))
    if lo > hi:
        raise ValueError(f"clamp must have lo <= hi; got {clamp!r}")
    return lo, hi


def _real(name: str, value, *, signed: bool = False) -> float:
    """``value`` as a finite Python float (numpy and 0-d tensor scalars accepted), >= 0 unless ``signed``."""
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) \
            or (not signed and value < 0):
        raise ValueError(f"{name} must be a finite number{'' if signed else ' >= 0'}; got {value!r}")
    return float(value)


def generation_energy(model: Callable[[Tensor], Tensor], y: Tensor, energy: str = "joint") -> EnergyFn:
    """Energy for class-conditional generation: ``"ce"`` -> Eq. 16, ``"joint"`` -> Eq. 17."""
    if energy not in GENERATION_ENERGIES:
        raise ValueError(f"unknown generation energy {energy!r}; choose 'joint' (Eq. 17) or 'ce' (Eq. 16)")
    return energy_of(model, GENERATION_ENERGIES[energy], y)



@dataclass(frozen=True)
class GenerationConfig:
    """Settings of class-conditional Langevin generation (Eq. 16 / Eq. 17).

    ``energy``: ``"joint"`` (Eq. 17, U = E(x, y)) or ``"ce"`` (Eq. 16, U = E(x, y) − E(x)).
    ``step``: ``"langevin"`` — ``x ← x − (η/2)∇U + s·ε`` with ``step_size`` η; or ``"l2"`` — the
    normalised-gradient step of Santurkar et al.'s targeted L2 PGD, ``x ← x − η ∇U/‖∇U‖₂ + s·ε``
    (per image; no projection, their ε of 30 never binds on CIFAR). ``n_steps`` K, ``noise_std`` s
    (decoupled from η, as in JEM and its followers); images are clamped to [0, 1] after every step.
    The defaults were chosen by eye on the cpu AT model; each shipped model stores its own best
    settings in ``manifest["sampler"]`` (chosen on validation seeds by the evaluator's KID), see :func:`sampler_for`.
    """

    energy: str = "joint"
    step_size: float = 0.25
    n_steps: int = 60
    noise_std: float = 0.001
    step: str = "langevin"

    def __post_init__(self):
        if self.energy not in GENERATION_ENERGIES:
            raise ValueError(f"unknown generation energy {self.energy!r}; choose 'joint' (Eq. 17) or 'ce' (Eq. 16)")
        if self.step not in STEPS:
            raise ValueError(f"unknown generation step {self.step!r}; choose one of {', '.join(STEPS)}")
        if not (math.isfinite(self.step_size) and 0 <= self.step_size <= 100):
            raise ValueError(f"step_size must be in [0, 100]; got {self.step_size!r}")
        if not (isinstance(self.n_steps, int) and 0 <= self.n_steps <= 100_000):
            raise ValueError(f"n_steps must be an integer in [0, 100000]; got {self.n_steps!r}")
        if not (math.isfinite(self.noise_std) and 0 <= self.noise_std <= 10):
            raise ValueError(f"noise_std must be in [0, 10]; got {self.noise_std!r}")


def sampler_for(manifest: dict | None, energy: str = "joint", *, max_steps: int | None = None,
                key: str | None = None) -> GenerationConfig:
    """The model's own best sampler for ``energy`` (``manifest["sampler"][key or energy]``; ``key``
    ``"joint/as-written"`` for the family of Eq. 9 as written) or the :class:`GenerationConfig`
    defaults; ``max_steps`` caps its K (smoke runs, ``FigureSizes.max_steps``)."""
    tuned = ((manifest or {}).get("sampler") or {}).get(key or energy) or {}
    conv = {"step": str, "step_size": float, "n_steps": int, "noise_std": float}
    cfg = GenerationConfig(energy=energy, **{k: f(tuned[k]) for k, f in conv.items() if k in tuned})
    return cfg if max_steps is None else replace(cfg, n_steps=min(cfg.n_steps, max_steps))


def generate(model: Callable[[Tensor], Tensor], labels: Tensor, seeds: Tensor,
             cfg: GenerationConfig = GenerationConfig(), *, seed: int = 0,
             channels_last: bool | None = None) -> Tensor:
    """Class-conditional generation (Eq. 16 or Eq. 17 by ``cfg.energy``): :func:`langevin` from
    ``seeds`` ``(B, C, H, W)`` in [0, 1] towards ``labels`` ``(B,)`` with the settings ``cfg``,
    clamped to [0, 1] after every step, the noise drawn from a generator seeded with ``seed`` on
    the seeds' device. ``channels_last`` as in :func:`langevin`. Returns ``(B, C, H, W)``."""
    return generate_snapshots(model, labels, seeds, cfg, at=(cfg.n_steps,), seed=seed,
                              channels_last=channels_last)[cfg.n_steps]


def generate_snapshots(model: Callable[[Tensor], Tensor], labels: Tensor, seeds: Tensor, cfg: GenerationConfig,
                       *, at: tuple[int, ...], seed: int = 0,
                       channels_last: bool | None = None) -> dict[int, Tensor]:
    """One chain of ``max(at)`` steps of ``cfg`` (its ``n_steps`` ignored); ``{k: images after k
    steps}`` for each ``k`` in ``at`` (``0`` gives the seeds), contiguous. The chain is
    :func:`langevin` run segment by segment with one generator, so ``generate_snapshots(...,
    at=(K,))[K]`` is :func:`generate` with ``n_steps=K`` and every snapshot lies on that chain."""
    if not at or min(at) < 0:
        raise ValueError(f"at must hold step counts >= 0; got {at!r}")
    g = torch.Generator(device=seeds.device).manual_seed(seed)
    energy_fn = generation_energy(model, labels, cfg.energy)
    out, x, done = {}, seeds.detach(), 0
    for k in sorted(set(at)):
        x = langevin(energy_fn, x, step_size=cfg.step_size, n_steps=k - done, noise_std=cfg.noise_std, step=cfg.step,
                     clamp=(0.0, 1.0), generator=g, channels_last=channels_last)
        out[k], done = x.contiguous(), k
    return out


# ----------------------------------------------------------------------------- seeds
def uniform_init(n: int, shape=(3, 32, 32), *, device=None, generator: torch.Generator | None = None) -> Tensor:
    """``n`` images drawn from U(0, 1) (the SGLD init of Algorithm 1)."""
    return rng.rand((n, *shape), generator=generator, device=device)


class ClassGaussian:
    """Class-conditional Gaussian seeds ``N(μ_y, Σ_y + λI)`` in pixel space (Santurkar et al.).

    ``μ_y`` and ``Σ_y`` are the mean and (unbiased) covariance of the class's training images at
    full resolution (3×32×32 = 3072 dimensions), ``λ = 1e-4``. Sampling is exact without forming
    the 3072×3072 covariance: with the centred class data ``X_c`` (n×D),
    ``μ + X_cᵀ z / sqrt(n-1) + sqrt(λ) ε`` with ``z ~ N(0, I_n)``, ``ε ~ N(0, I_D)`` has covariance
    ``X_cᵀX_c/(n-1) + λI = Σ_y + λI``. Samples are clipped to [0, 1].

    Args:
        x: ``(N, C, H, W)`` float images in [0, 1] or ``(N, H, W, C)`` uint8.
        y: ``(N,)`` labels.
        ridge: ``λ``.
    """

    def __init__(self, x: Tensor, y: Tensor, *, ridge: float = 1e-4):
        x = _as_float_nchw(x)
        y = torch.as_tensor(y).long().cpu()
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x and y differ in length: {x.shape[0]} vs {y.shape[0]}")
        self.shape = tuple(x.shape[1:])
        self.ridge = ridge
        self.classes = sorted(int(c) for c in torch.unique(y))
        self._centred: dict[int, Tensor] = {}
        self.means: dict[int, Tensor] = {}
        for c in self.classes:
            xc = x[y == c].flatten(1)  # (n_c, D)
            if xc.shape[0] < 2:
                raise ValueError(f"class {c} has fewer than 2 images; cannot fit a covariance")
            mu = xc.mean(0)
            self.means[c] = mu
            self._centred[c] = (xc - mu) / math.sqrt(xc.shape[0] - 1)

    def covariance(self, c: int) -> Tensor:
        """``Σ_c + λI`` as a dense ``(D, D)`` matrix (for tests and inspection)."""
        a = self._centred[c]
        return a.T @ a + self.ridge * torch.eye(a.shape[1])

    def sample(self, labels: Tensor, *, generator: torch.Generator | None = None, device=None) -> Tensor:
        """One seed per entry of ``labels``; returns ``(B, C, H, W)`` in [0, 1] on ``device``."""
        labels = torch.as_tensor(labels).long().cpu()
        out = torch.empty((labels.shape[0], int(math.prod(self.shape))))
        for c in torch.unique(labels).tolist():
            if c not in self._centred:
                raise ValueError(f"no images of class {c} were given to fit the class Gaussian")
            idx = (labels == c).nonzero().squeeze(1)
            a = self._centred[c]
            z = rng.randn((idx.numel(), a.shape[0]), generator=generator, device="cpu")
            e = rng.randn((idx.numel(), a.shape[1]), generator=generator, device="cpu")
            out[idx] = self.means[c] + z @ a + math.sqrt(self.ridge) * e
        return out.view(-1, *self.shape).clamp(0, 1).to(device)


def _as_float_nchw(x) -> Tensor:
    x = torch.as_tensor(x)
    if x.dtype == torch.uint8:
        if x.dim() == 4 and x.shape[-1] in (1, 3):
            x = x.permute(0, 3, 1, 2)
        return x.float().div(255)
    return x.float().cpu()


# ----------------------------------------------------------------------------- replay buffer
class ReplayBuffer:
    """Persistent SGLD chains (JEM; Algorithm 1's buffer ``B``).

    ``sample`` draws ``n`` entries; each is replaced, with probability ``reinit_prob`` (ρ), by a
    fresh draw from ``init_fn`` (U(0, 1) by default). After running SGLD the caller writes the
    results back with ``push(x, idx, steps=K)``. ``age[i]`` counts the SGLD steps chain ``i`` has
    run since its last (re-)init; ``last_age`` holds the ages of the chains the last ``sample``
    returned (0 for the fresh ones). The buffer is an explicit object the caller owns and
    checkpoints (``state_dict``/``load_state_dict``); it never changes behind the caller's back.
    """

    def __init__(self, size: int, shape=(3, 32, 32), *, reinit_prob: float = 0.05,
                 init_fn: Callable[[int, torch.Generator | None], Tensor] | None = None,
                 device=None, generator: torch.Generator | None = None):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"buffer size must be a positive integer; got {size!r}")
        if not 0 <= reinit_prob <= 1:
            raise ValueError(f"reinit_prob must lie in [0, 1]; got {reinit_prob}")
        self.size, self.shape, self.reinit_prob = size, tuple(shape), float(reinit_prob)
        self.device = device
        self._init = init_fn or (lambda n, g: uniform_init(n, self.shape, generator=g, device=self.device))
        self.data = self._init(size, generator).to(device)
        self.age = torch.zeros(size, dtype=torch.long)
        self.last_age = torch.zeros(0, dtype=torch.long)
        self.n_reinit = 0
        self.n_sampled = 0

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Return ``(x, idx)``: ``n`` chains (a copy) and their slots in the buffer."""
        dev = self.data.device
        at = generator.device if generator is not None else dev  # the count k is read on the host
        idx = rng.randint(0, self.size, (n,), generator=generator, device=at)
        x = self.data[idx.to(dev)]
        fresh = rng.rand((n,), generator=generator, device=at) < self.reinit_prob
        k = int(fresh.sum())
        age = self.age[idx.cpu()].clone()
        if k:
            x[fresh.to(dev)] = self._init(k, generator).to(dev, x.dtype)
            age[fresh.cpu()] = 0
        self.last_age = age
        self.n_reinit += k
        self.n_sampled += n
        return x, idx

    def push(self, x: Tensor, idx: Tensor, *, steps: int | None = None) -> None:
        """Write the chains ``x`` back into slots ``idx``; with ``steps`` (the SGLD steps just run on
        the chains of the last ``sample``), their ages become ``last_age + steps``."""
        self.data[idx.to(self.data.device)] = x.detach().to(self.data.device, self.data.dtype)
        if steps is not None:
            if len(self.last_age) != len(idx):
                raise ValueError(f"push(steps=...) needs the {len(self.last_age)} chains of the last sample; "
                                 f"got {len(idx)}")
            self.age[idx.cpu()] = self.last_age + int(steps)

    def state_dict(self) -> dict:
        return {"data": self.data.clone(), "reinit_prob": self.reinit_prob, "age": self.age.clone(),
                "n_reinit": self.n_reinit, "n_sampled": self.n_sampled}

    def load_state_dict(self, state: dict) -> None:
        data = state["data"]
        if tuple(data.shape) != (self.size, *self.shape):
            raise ValueError(f"buffer state has shape {tuple(data.shape)}; expected {(self.size, *self.shape)}")
        self.data = data.to(self.data.device, self.data.dtype).clone()
        self.reinit_prob = float(state["reinit_prob"])
        self.n_reinit, self.n_sampled = int(state["n_reinit"]), int(state["n_sampled"])
        age = state.get("age")  # absent in states written before ages were counted
        self.age = age.to(torch.long).cpu().clone() if age is not None else torch.zeros(self.size, dtype=torch.long)

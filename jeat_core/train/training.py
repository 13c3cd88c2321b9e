"""The training loop: :func:`fit` runs one method of :data:`~jeat_core.train.methods.METHODS` on a dataset.

One step (:func:`train_step`) draws the method's loss (:mod:`jeat_core.train.methods`) on a batch and applies
the update; :func:`fit` is the loop around it, with three helpers: :class:`Batches` (the data, indexed
by step so a resumed run sees the same batches), :class:`~jeat_core.train.guard.DivergenceGuard` (roll-back
on divergence) and :class:`~jeat_core.train.runs.RunWriter` (manifest, checkpoint, log). At logging steps
:class:`~jeat_core.train.train_state.EnergyDynamics` measures the energy dynamics of Fig. 3 / Eq. 15 for
E(x,y) and E(x): ``Δ_x E = E(x_adv) − E(x_ori)`` before the update and ``Δ_θ E = E_after(x_adv) −
E_before(x_adv)`` after it (for ``noise`` ``x_adv`` is the noisy image; for ``standard``/``jem`` it is
``x``). Several GPUs: the same loop under ``torchrun`` (DDP).

Where things live: configs and validation in :mod:`jeat_core.core.configs` (no torch), the methods
(config + loss + registry) in :mod:`jeat_core.train.methods`, the guard in :mod:`jeat_core.train.guard`, run
folders and resume in :mod:`jeat_core.train.runs`. The names below re-export the public API of those modules
that callers of ``jeat_core.train.training`` used before the split.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from jeat_core.core import rng
from jeat_core.core.checkpoints import STATE, CheckpointError, RunLock, load_model, load_state, prepare_run_folder
from jeat_core.core.configs import (  # noqa: F401
    PRESETS,
    AttackConfig,
    ModelConfig,
    OptimConfig,
    SGLDConfig,
    TrainConfig,
    config_to_dict,
)
from jeat_core.core.data import Split, augment, load_split
from jeat_core.core.models import accuracy, build_model, check_arch
from jeat_core.core.sampling import ClassGaussian, ReplayBuffer
from jeat_core.train.guard import DivergenceGuard, TrainingDiverged, why_bad  # noqa: F401
from jeat_core.train.methods import (  # noqa: F401
    METHODS,
    ATConfig,
    JEATConfig,
    JEMConfig,
    NoiseConfig,
    PreJEATConfig,
    StandardConfig,
    attack_examples,
    config_from_dict,
    get_method,
    make_config,
    sgld_negatives,
)
from jeat_core.train.runs import RESUMABLE, RunWriter, resume_config, saved_config  # noqa: F401
from jeat_core.train.train_state import Batch, EnergyDynamics, LossResult, StepResult, TrainState, evaluating, world  # noqa: F401


def stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def lr_lambda(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    o = cfg.optim

    def f(step: int) -> float:
        warm = min(1.0, (step + 1) / o.warmup_steps) if o.warmup_steps else 1.0
        frac = min(step / max(total_steps, 1), 1.0)
        if o.schedule == "cosine":
            sched = 0.5 * (1 + math.cos(math.pi * frac))
        elif o.schedule == "step":
            sched = o.gamma ** sum(frac >= m for m in o.milestones)
        elif o.schedule == "constant":
            sched = 1.0
        else:
            raise ValueError(f"unknown schedule {o.schedule!r}; choose cosine, step or constant")
        return warm * sched

    return f


def init_distributed(device: str | None = None) -> tuple[int, int]:
    """Initialise torch.distributed when launched by ``torchrun`` (``WORLD_SIZE > 1``)."""
    import torch.distributed as dist  # only under DDP (not in every torch build)

    n_proc = int(os.environ.get("WORLD_SIZE", "1"))
    if n_proc > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and (device or "cuda").startswith("cuda") else "gloo"
        dist.init_process_group(backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return world()


def buffer_init_fn(cfg: TrainConfig, train: Split | None, device: torch.device) -> Callable | None:
    """The replay buffer's ``init_fn`` for ``cfg.sgld.init`` (``None``: the buffer's U(0, 1))."""
    if not cfg.uses_sgld or cfg.sgld.init == "uniform":
        return None
    if train is None:
        raise ValueError("a class-Gaussian buffer init needs the training set")
    cg = ClassGaussian(torch.from_numpy(train.x), torch.from_numpy(train.y))
    n_classes = len(cg.classes)

    def init(n: int, g: torch.Generator | None) -> Tensor:
        at = g.device if g is not None else "cpu"
        labels = torch.tensor(cg.classes)[rng.randint(0, n_classes, (n,), generator=g, device=at).cpu()]
        return cg.sample(labels, generator=g, device=device)

    return init


def build_state(cfg: TrainConfig, device: torch.device, steps_total: int,
                buffer_init: Callable | None = None, *, shape: tuple[int, ...] = (3, 32, 32)) -> TrainState:
    """A fresh :class:`TrainState` of ``cfg`` (model, optimiser, schedule, generator and, for the SGLD
    methods, a replay buffer of ``shape``-sized chains: the shape of one training image)."""
    rank, n_proc = world()
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = build_model(cfg.model.name, **cfg.model.kwargs).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = model.parameters()
    o = cfg.optim
    if o.name == "adam":
        opt = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay) if o.weight_decay \
            else torch.optim.Adam(params, lr=o.lr)
    elif o.name == "sgd":
        opt = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=True)
    else:
        raise ValueError(f"unknown optimiser {o.name!r}; choose 'adam' or 'sgd'")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, steps_total))
    # the generator lives on the training device (draws there, no host round trip); jeat_core.core.rng
    # makes every draw correct for any generator/device pair
    gen = torch.Generator(device=device if device.type == "cuda" else "cpu").manual_seed(cfg.seed * 1000 + rank + 1)
    buffer = None
    if cfg.uses_sgld:
        buffer = ReplayBuffer(cfg.sgld.buffer_size, shape, reinit_prob=cfg.sgld.reinit_prob, init_fn=buffer_init,
                              generator=gen, device=device)
    wrapped: nn.Module = model
    if n_proc > 1:
        ids = [device.index] if device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if cfg.compile:
        wrapped = torch.compile(wrapped)
    return TrainState(model=wrapped, optimizer=opt, scheduler=sched, generator=gen, buffer=buffer, device=device,
                      total_steps=steps_total)


def load_init_from(state: TrainState, cfg: TrainConfig, probe: Tensor) -> dict:
    """Load ``cfg.init_from``'s weights into ``state`` (fine-tuning); returns what the manifest records.

    The divergence guard's known-good logit scale starts at the parent's (its max |logit| on
    ``probe`` training images), not at 0: a trained classifier's logits may exceed the guard's
    floor from the first step (the shipped ``standard`` reaches 68), which is not a divergence."""
    parent, man = load_model(cfg.init_from)
    arch = man.get("arch", {})
    if arch.get("name") != cfg.model.name or dict(arch.get("kwargs", {})) != dict(cfg.model.kwargs):
        raise CheckpointError(f"--init-from {cfg.init_from}: its architecture {arch} differs from this run's "
                              f"{ {'name': cfg.model.name, 'kwargs': dict(cfg.model.kwargs)} }")
    state.core.load_state_dict(parent.state_dict())
    with torch.no_grad():
        state.energy_ref = float(parent(probe.cpu()).abs().max())
    return {"model": str(cfg.init_from), "method": man.get("method"),
            "weights_sha256": man.get("weights", {}).get("sha256"),
            "epochs": man.get("epochs_done"), "train_seconds": man.get("train_seconds"),
            "max_abs_logit": round(state.energy_ref, 3)}  # where the divergence guard's reference starts


def apply_update(state: TrainState, cfg: TrainConfig, loss: Tensor) -> float:
    """Backward, optional gradient clipping, optimiser and scheduler step; returns the new lr."""
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.optim.grad_clip:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.optim.grad_clip)
    state.optimizer.step()
    state.scheduler.step()
    return state.optimizer.param_groups[0]["lr"]


def train_step(state: TrainState, x: Tensor, y: Tensor, cfg: TrainConfig,
               log_dynamics: bool = False) -> StepResult:
    """One update of ``cfg.method`` on ``(x, y)``; with ``log_dynamics`` also the Fig. 3 energies.

    Returns the loss's result, the new ``lr`` and (when measured) ``dxE_*``/``dthetaE_*``;
    ``.metrics`` is the logged record."""
    dynamics = EnergyDynamics(state, cfg, x, y) if log_dynamics else None
    res = get_method(cfg.method).loss(state, Batch(x, y, dynamics), cfg)
    lr = apply_update(state, cfg, res.loss)
    if dynamics is None:
        return StepResult(res, lr)
    return StepResult(res, lr, dynamics.after(), dynamics.samples)


class Batches:
    """The training set as a sequence of batches indexed by step (what makes a resumed run see the
    same data as an uninterrupted one).

    Epoch ``e`` is the permutation seeded by ``cfg.seed·7919 + e``; step ``s`` takes the
    ``s mod steps_per_epoch``-th global batch of it and rank ``r`` of ``world`` every ``world``-th image
    from ``r``. The uint8 set stays on the GPU when training there (batches and augmentation too).
    """

    def __init__(self, train: Split, cfg: TrainConfig, device: torch.device, rank: int, world: int):
        self.xs = torch.from_numpy(train.x).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W) uint8
        self.ys = torch.from_numpy(train.y).long()
        if device.type == "cuda":
            self.xs, self.ys = self.xs.to(device), self.ys.to(device)
        self.device, self.rank, self.world = device, rank, world
        self.batch_size = cfg.optim.batch_size  # global
        if self.batch_size % world:
            raise ValueError(f"batch size {self.batch_size} is not divisible by the number of processes {world}")
        if cfg.uses_sgld and cfg.sgld.batch_size % world:
            raise ValueError(f"SGLD batch size {cfg.sgld.batch_size} is not divisible by the number of "
                             f"processes {world}")
        self.steps_per_epoch = len(self.ys) // self.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"batch size {self.batch_size} exceeds the training set size {len(self.ys)}")

    def total_steps(self, cfg: TrainConfig) -> int:
        return math.ceil(cfg.epochs * self.steps_per_epoch)

    def get(self, step: int, cfg: TrainConfig, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """This rank's ``(x, y)`` of ``step``: ``x`` float in [0, 1], augmented when ``cfg.augment``."""
        epoch, pos = divmod(step, self.steps_per_epoch)
        perm = rng.randperm(len(self.ys), generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch),
                            device="cpu")
        idx = perm[pos * self.batch_size:(pos + 1) * self.batch_size][self.rank::self.world]
        x = self.xs[idx].float().div_(255)
        if cfg.augment:
            x = augment(x, generator=generator)
        x, y = x.to(self.device, non_blocking=True), self.ys[idx].to(self.device, non_blocking=True)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y


@dataclass
class FitResult:
    state: TrainState
    config: TrainConfig
    manifest: dict
    out: Path | None


def fit(cfg: TrainConfig, *, out: str | os.PathLike | None = None, data_root=None, device: str | None = None,
        resume: bool = False, overwrite: bool = False, progress: bool = True, train_data: Split | None = None,
        test_data: Split | None = None, callbacks: tuple[Callable[[int, dict], None], ...] = (),
        report: Callable[[str], None] | None = stderr) -> FitResult:
    """Train ``cfg`` and write ``out/{model.safetensors, manifest.json, state.pt, energy_log.jsonl}``.

    Args:
        cfg: a method config (:func:`make_config`).
        out: output folder (``None``: keep in memory only). It is locked while training (a second
            writer gets an error); a fresh run needs it empty.
        data_root: data folder (see :mod:`jeat_core.core.data`); ``train_data``/``test_data`` override.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``; default CUDA when available.
        resume: continue from ``out/state.pt`` (the config stored there wins for everything but
            ``max_steps`` / ``epochs``, see :func:`resume_config`).
        overwrite: delete a previous run's files in ``out`` first.
        callbacks: ``f(step, metrics)`` called after every step.
        report: receives one line for each action of the divergence guard (default: stderr);
            the same actions are recorded in the manifest's ``divergence_events``.
    Returns:
        :class:`FitResult` with the final state, the (possibly guard-modified) config and manifest.
    """
    rank, _ = init_distributed(device)
    if out is None or rank:
        if resume and out is None:
            raise FileNotFoundError("--resume: no output folder given")
        return _fit(cfg, out, data_root, device, resume, progress, train_data, test_data, callbacks, report)
    with RunLock(out):
        prepare_run_folder(out, resume=resume, overwrite=overwrite)
        return _fit(cfg, out, data_root, device, resume, progress, train_data, test_data, callbacks, report)


def training_device(device: str | None) -> torch.device:
    if device is None:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    if dev.type == "cuda" and dev.index is None:  # "cuda" -> this process's GPU (DDP needs the index)
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def restore(state: TrainState, saved: dict, path: Path) -> None:
    """Load a resumed run's ``state.pt`` into ``state``, with a clear error when it does not fit."""
    try:
        state.load_state_dict(saved)
    except (RuntimeError, KeyError, ValueError, TypeError) as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        why = next((ln for ln in lines if "size mismatch" in ln or "key" in ln.lower()), lines[0] if lines else "")
        raise CheckpointError(f"{path} does not fit the stored config's model/optimiser "
                              f"({type(e).__name__}: {why[:200]})") from None


def _fit(cfg, out, data_root, device, resume, progress, train_data, test_data, callbacks, report) -> FitResult:
    rank, n_proc = init_distributed(device)
    dev = training_device(device)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    out_dir = Path(out) if out is not None else None
    saved = None
    if resume:  # the one place a run is continued: the stored config and state win
        if out_dir is None or not (out_dir / STATE).is_file():
            raise FileNotFoundError(f"--resume: no training state at {out_dir}/{STATE}; start without --resume")
        saved = load_state(out_dir / STATE)
        cfg = resume_config(out_dir, epochs=cfg.epochs, max_steps=cfg.max_steps)
    check_arch(cfg.model.name, cfg.model.kwargs)

    train = train_data or load_split("train", dataset=cfg.dataset, data_root=data_root, with_hash=True)
    test = test_data or load_split("test", dataset=cfg.dataset, data_root=data_root)
    batches = Batches(train, cfg, dev, rank, n_proc)
    total = batches.total_steps(cfg)
    stop_at = total if cfg.max_steps is None else min(total, cfg.max_steps)

    state = build_state(cfg, dev, total, buffer_init_fn(cfg, train, dev), shape=tuple(batches.xs.shape[1:]))
    parent = load_init_from(state, cfg, batches.xs[:256].float().div(255).to(dev)) if cfg.init_from else None
    if saved is not None:
        restore(state, saved, out_dir / STATE)
    writer = RunWriter(out_dir, rank, resume=resume, state=state, batches=batches, train=train, test=test,
                       total=total, device=dev, parent=parent, report=report)
    guard = DivergenceGuard(state, cfg, writer, rank, n_proc, report)
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm  # progress bars: loaded only when asked for

        bar = tqdm(total=stop_at, initial=state.step, desc=f"train {cfg.method}", unit="step")
    last: dict = {}
    state.model.train()
    try:
        while state.step < stop_at:
            t0 = time.perf_counter()
            x, y = batches.get(state.step, cfg, state.generator)
            log_now = cfg.log_every > 0 and state.step % cfg.log_every == 0
            result = train_step(state, x, y, cfg, log_now)
            metrics = result.metrics
            nxt = state.step + 1  # the step count once this update is accepted
            saves = (nxt % cfg.guard_every == 0 or nxt == stop_at
                     or (cfg.checkpoint_every and nxt % cfg.checkpoint_every == 0))
            bad, post = guard.check(state, cfg, result, x[:16] if saves else None)
            if bad:
                cfg = guard.roll_back(state, cfg, bad)
                if bar is not None:
                    bar.n = state.step
                    bar.set_postfix_str(f"diverged ({bad}); rolled back")
                continue
            state.step += 1
            state.train_seconds += time.perf_counter() - t0
            last = metrics
            if log_now:
                writer.log({"step": state.step - 1, "epoch": round((state.step - 1) / batches.steps_per_epoch, 4),
                            **metrics})
            for cb in callbacks:
                cb(state.step, metrics)
            guard.accept(state, cfg, result, post)
            if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 and state.step < stop_at:
                writer.checkpoint(state, cfg, {"train_" + k: v for k, v in last.items()})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{metrics['acc']:.2f}")
    finally:
        if bar is not None:
            bar.close()
        writer.close()

    final = {"train_" + k: v for k, v in last.items()}
    if cfg.eval_n:

        xt, yt = test.tensors(cfg.eval_n)
        with evaluating(state.core) as m:
            final["clean_acc"] = accuracy(m, xt.to(dev), yt.to(dev))
        final["eval_n"] = len(yt)
    return FitResult(state, cfg, writer.checkpoint(state, cfg, final), out_dir)

"""An independent evaluator for generated images: a CIFAR-10 classifier trained only to score.

Generation metrics (FID / KID on penultimate features, evaluator accuracy) need a feature space
that none of the generators shaped. Inception-v3 is the usual one, but its weights cannot be
downloaded here, so we train our own, by a recipe *unlike every generator's*:

* architecture: a ResNet-9-style net (Page, DAWNBench) with **batch norm and ReLU** and max pooling
  (the generators are small SiLU CNNs without normalisation and with average pooling);
* training: SGD with Nesterov momentum, a one-cycle (linear up, linear down) learning rate, label
  smoothing 0.2, random crops and flips, batch 256, clean images only (no adversarial or noisy
  examples, no SGLD); never used to generate or to train a zoo model.

This is a *CIFAR-trained* feature space, not Inception: numbers computed in it are comparable
between our models, not with the paper's IS/FID (``jeat audit --inception-weights`` keeps that
path for users who have the Inception weights).

Train it with ``jeat train-evaluator --out runs/evaluator`` (then copy ``model.safetensors`` and
``manifest.json`` to ``checkpoints/cifar10-cpu/evaluator``); it resumes
from ``state.pt`` after an interruption.

A second evaluator (B) of another family and seed checks that a generation verdict does not depend
on one feature space (``docs/evaluation.md``): ``jeat train-evaluator --arch eval_vgg --widths
48,96,192,384 --seed 1 --epochs 8 --out runs/evaluator-b`` (a plain VGG-style net with GELU and
average pooling, :class:`~jeat_core.core.models.EvalVGG`), shipped as ``cifar10-cpu/evaluator-b``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from jeat_core import __version__
from jeat_core.core import rng
from jeat_core.core.checkpoints import MANIFEST, STATE, WEIGHTS, load_state, save_state, save_weights, write_json
from jeat_core.core.data import augment, load_split, to_float
from jeat_core.core.models import build_model
from jeat_core.train.runs import git_commit

EVALUATOR = "cifar10-cpu/evaluator"
EVALUATOR_B = "cifar10-cpu/evaluator-b"  # the second, independent evaluator (another family and seed)
EVALUATOR_ARCHS = ("eval_resnet", "eval_vgg")


@dataclass(frozen=True)
class EvaluatorConfig:
    """Training recipe of the evaluator (see the module docstring)."""

    epochs: int = 6
    batch_size: int = 256
    lr: float = 0.3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.2
    warmup_frac: float = 0.2
    widths: tuple = (32, 64, 128, 256)
    seed: int = 0
    arch: str = "eval_resnet"  # eval_resnet (evaluator A) | eval_vgg (evaluator B)
    threads: int = 0  # 0: torch's default

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or not (0 < self.lr < 10) or not (0 <= self.warmup_frac < 1):
            raise ValueError(f"invalid evaluator config: {self}")
        if self.arch not in EVALUATOR_ARCHS:
            raise ValueError(f"unknown evaluator arch {self.arch!r}; choose one of {', '.join(EVALUATOR_ARCHS)}")


def _lr_at(cfg: EvaluatorConfig, step: int, total: int) -> float:
    up = max(1, int(cfg.warmup_frac * total))
    return cfg.lr * (step / up if step < up else max(0.0, (total - step) / max(1, total - up)))


@torch.no_grad()
def _accuracy(model: nn.Module, x: Tensor, y: Tensor, bs: int = 1000) -> float:
    return sum(int((model(x[i:i + bs]).argmax(1) == y[i:i + bs]).sum()) for i in range(0, len(x), bs)) / len(x)


def train_evaluator(cfg: EvaluatorConfig, out: str | Path, *, data_root=None, progress: bool = True) -> dict:
    """Train the evaluator on all 50,000 CIFAR-10 training images; write a loadable checkpoint to
    ``out`` (``model.safetensors`` + ``manifest.json``; ``state.pt`` after each epoch to resume)."""
    out = Path(out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    train, test = load_split("train", data_root=data_root, with_hash=True), load_split("test", data_root=data_root)
    xt, yt = test.tensors()
    model = build_model(cfg.arch, widths=tuple(cfg.widths)).to(memory_format=torch.channels_last)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    other = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": other, "weight_decay": 0.0}], lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    g = torch.Generator().manual_seed(cfg.seed)
    per_epoch = len(train) // cfg.batch_size
    total = per_epoch * cfg.epochs
    epoch, seconds, history = 0, 0.0, []
    if (out / STATE).is_file():
        s = load_state(out / STATE)
        model.load_state_dict(s["model"])
        opt.load_state_dict(s["opt"])
        g.set_state(s["rng"])
        epoch, seconds, history = int(s["epoch"]), float(s["seconds"]), json.loads(s["history"])
    y_all = torch.from_numpy(train.y).long()
    while epoch < cfg.epochs:
        t0 = time.time()
        model.train()
        perm = rng.randperm(len(train), generator=g, device="cpu")
        it = range(per_epoch)
        if progress:
            from tqdm.auto import tqdm  # progress bars: loaded only when asked for

            it = tqdm(it, desc=f"evaluator epoch {epoch + 1}/{cfg.epochs}", file=sys.stderr)
        for i in it:
            idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            xb = augment(to_float(train.x[idx.numpy()]), generator=g).contiguous(memory_format=torch.channels_last)
            for group in opt.param_groups:
                group["lr"] = _lr_at(cfg, epoch * per_epoch + i, total)
            loss = loss_fn(model(xb), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        epoch += 1
        seconds += time.time() - t0
        acc = _accuracy(model, xt[:2000], yt[:2000])
        history.append({"epoch": epoch, "loss": float(loss.detach()), "test_acc_2k": acc, "seconds": seconds})
        if progress:
            print(f"evaluator: epoch {epoch}: loss {float(loss.detach()):.3f}, test acc (2k) {acc:.3f}",
                  file=sys.stderr)
        save_state(out / STATE, {"model": model.state_dict(), "opt": opt.state_dict(), "rng": g.get_state(),
                                 "epoch": epoch, "seconds": seconds, "history": json.dumps(history)})
    model.eval()
    acc = _accuracy(model, xt, yt)
    weights = save_weights(out / WEIGHTS, model)
    manifest = {
        "weights": {"file": WEIGHTS, "step": total, **weights},
        "method": "evaluator", "config": asdict(cfg),
        "arch": {"name": cfg.arch, "kwargs": {"widths": list(cfg.widths)}},
        "data": {"dataset": "cifar10", "source": train.source, "sha256": train.sha256,
                 "n_train": len(train), "n_test": len(test)},
        "metrics": {"clean_acc": acc, "history": history},
        "train_seconds": seconds, "steps": total, "git_commit": git_commit(), "jeat_version": __version__,
        "note": "Independent evaluator for generation metrics (FID/KID features, evaluator accuracy); "
                "never used to generate or to train a zoo model. A CIFAR-trained feature space, not Inception.",
    }
    write_json(out / MANIFEST, manifest)
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="jeat train-evaluator", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--data-root")
    p.add_argument("--epochs", type=int, default=EvaluatorConfig.epochs)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--arch", choices=EVALUATOR_ARCHS, default=EvaluatorConfig.arch,
                   help="eval_resnet (evaluator A) or eval_vgg (evaluator B: another family)")
    p.add_argument("--widths", default=None, help="stage widths, e.g. 48,96,192,384 (default 32,64,128,256)")
    p.add_argument("--seed", type=int, default=EvaluatorConfig.seed)
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    try:
        widths = tuple(int(w) for w in a.widths.split(",")) if a.widths else EvaluatorConfig.widths
    except ValueError:
        p.error(f"--widths: {a.widths!r} is not a comma list of integers")
    m = train_evaluator(EvaluatorConfig(epochs=a.epochs, threads=a.threads, arch=a.arch, widths=widths, seed=a.seed),
                        a.out, data_root=a.data_root, progress=not a.no_progress)
    print(f"evaluator: test accuracy {m['metrics']['clean_acc']:.4f} on {m['data']['n_test']} images, "
          f"{m['train_seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())

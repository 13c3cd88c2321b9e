"""The ``jeat`` command: ``train``, ``eval`` and ``generate`` (thin wrappers around the library)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

CLASSES_HELP = "0-9 or names (airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck)"


# ----------------------------------------------------------------------------- argument types
def size(text: str) -> float:
    """A non-negative number, also written as a fraction like ``8/255``."""
    try:
        v = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or fraction (e.g. 0.03 or 8/255)") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return v


def _int_at_least(lo: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"{text!r} must be >= {lo}")
        return v

    return parse


positive_int, nonneg_int = _int_at_least(1), _int_at_least(0)


def parse_labels(text: str, n_classes: int = 10) -> list[int]:
    from .data import CIFAR10_CLASSES

    if text == "all":
        return list(range(n_classes))
    out = []
    for tok in text.split(","):
        tok = tok.strip()
        if tok.isdigit() and int(tok) < n_classes:
            out.append(int(tok))
        elif tok in CIFAR10_CLASSES:
            out.append(CIFAR10_CLASSES.index(tok))
        else:
            raise ValueError(f"bad label {tok!r} in --labels; use 'all' or a comma list of {CLASSES_HELP}")
    return out


# ----------------------------------------------------------------------------- train
def _train(a: argparse.Namespace) -> int:
    from .training import fit, make_config

    over: dict = {}
    for k in ("epochs", "max_steps", "seed", "log_every", "checkpoint_every", "eval_n"):
        if getattr(a, k) is not None:
            over[k] = getattr(a, k)
    if a.deterministic:
        over["deterministic"] = True
    if a.no_amp:
        over["amp"] = False
    if a.compile:
        over["compile"] = True
    if a.dataset:
        over["dataset"] = a.dataset
    if a.sigma is not None:
        if a.method != "noise":
            raise ValueError("--sigma only applies to --method noise")
        over["sigma"] = a.sigma
    cfg = make_config(a.method, a.preset, **over)
    if a.lr is not None or a.batch_size is not None:
        cfg = replace(cfg, optim=replace(cfg.optim, **{k: v for k, v in
                                                      (("lr", a.lr), ("batch_size", a.batch_size)) if v is not None}))
    if hasattr(cfg, "attack"):
        att = {k: v for k, v in (("kind", a.attack), ("eps", a.eps), ("n_steps", a.attack_steps),
                                 ("step_size", a.attack_step_size)) if v is not None}
        if a.attack == "pgd" and a.attack_steps is None:
            att["n_steps"] = 10
        cfg = replace(cfg, attack=replace(cfg.attack, **att))
    elif any(v is not None for v in (a.attack, a.eps, a.attack_steps, a.attack_step_size)):
        raise ValueError(f"--attack/--eps/--attack-steps/--attack-step-size do not apply to --method {a.method}")
    if hasattr(cfg, "sgld"):
        sg = {k: v for k, v in (("n_steps", a.sgld_steps), ("step_size", a.sgld_step_size),
                                ("noise_std", a.sgld_noise), ("buffer_size", a.buffer_size),
                                ("reinit_prob", a.reinit_prob)) if v is not None}
        cfg = replace(cfg, sgld=replace(cfg.sgld, **sg))
        if a.energy_l2 is not None:
            cfg = replace(cfg, energy_l2=a.energy_l2)
        if a.gen_weight is not None:
            cfg = replace(cfg, gen_weight=a.gen_weight)
        if a.gen_start is not None:
            if not 0 <= a.gen_start < 1:
                raise ValueError(f"--gen-start must be a fraction in [0, 1), got {a.gen_start}")
            cfg = replace(cfg, gen_start=a.gen_start)
    elif any(v is not None for v in (a.sgld_steps, a.sgld_step_size, a.sgld_noise, a.buffer_size, a.energy_l2,
                                     a.gen_weight, a.gen_start)):
        raise ValueError(f"--sgld-*/--buffer-size/--energy-l2/--gen-weight/--gen-start apply only to jeat and jem, "
                         f"not --method {a.method}")
    if a.reinit_prob is not None and not 0 <= a.reinit_prob <= 1:
        raise ValueError("--reinit-prob must lie in [0, 1]")
    out = Path(a.out or f"runs/{a.method}")
    if a.resume:  # continue with the stored config; only --epochs / --max-steps may change
        from .training import saved_config

        stored = saved_config(out)
        if stored.method != a.method:
            raise ValueError(f"--resume: {out} holds a {stored.method!r} run, not {a.method!r}")
        cfg = replace(stored, epochs=a.epochs if a.epochs is not None else stored.epochs,
                      max_steps=a.max_steps if a.max_steps is not None else stored.max_steps)
    res = fit(cfg, out=out, data_root=a.data_root, device=a.device, resume=a.resume, progress=not a.no_progress)
    m = res.manifest
    print(json.dumps({"out": str(out), "method": m["method"], "steps": m["steps"],
                      "train_seconds": m["train_seconds"], **{k: v for k, v in m["metrics"].items()
                                                              if k in ("clean_acc", "eval_n", "train_loss")}}))
    return 0


# ----------------------------------------------------------------------------- eval
from .metrics import ATTACKS  # noqa: E402  (kept for callers of cli.evaluate)
from .metrics import robust_accuracy as evaluate  # noqa: E402


def _eval(a: argparse.Namespace) -> int:
    from .checkpoints import load_model
    from .data import load_split

    model, manifest = load_model(a.model, device=a.device or "cpu")
    test = load_split("test", dataset=manifest["data"].get("dataset", "cifar10"), data_root=a.data_root)
    x, y = test.tensors(a.n)
    dev = a.device or "cpu"
    res = evaluate(model, x.to(dev), y.to(dev), attack=a.attack, eps=a.eps, seed=a.seed,
                   batch_size=a.batch_size, progress=not a.json)
    res["model"] = a.model
    if a.record:  # keep the measurement with the checkpoint
        from .checkpoints import MANIFEST, record_eval, resolve, write_json

        folder = resolve(a.model)
        record_eval(manifest, {k: v for k, v in res.items() if k != "model"})
        write_json(folder / MANIFEST, manifest)
    print(json.dumps(res) if a.json else "\n".join(f"{k:>12}: {v}" for k, v in res.items()))
    return 0


# ----------------------------------------------------------------------------- generate
def _generate(a: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from .checkpoints import load_model
    from .data import load_split, to_uint8
    from .sampling import ClassGaussian, generation_energy, langevin, uniform_init

    model, manifest = load_model(a.model, device=a.device or "cpu")
    labels = parse_labels(a.labels)
    y = torch.tensor([c for c in labels for _ in range(a.per_class)])
    g = torch.Generator().manual_seed(a.seed)
    if a.init == "class_gaussian":
        train = load_split("train", dataset=manifest["data"].get("dataset", "cifar10"), data_root=a.data_root)
        keep = np.isin(train.y, labels)  # fit only the requested classes
        x0 = ClassGaussian(train.x[keep], train.y[keep]).sample(y, generator=g)
    else:
        x0 = uniform_init(len(y), generator=g)
    dev = a.device or "cpu"
    xs = []
    for i in range(0, len(y), a.batch_size):
        yb = y[i:i + a.batch_size].to(dev)
        xs.append(langevin(generation_energy(model, yb, a.energy), x0[i:i + a.batch_size].to(dev),
                           step_size=a.step_size, n_steps=a.steps, noise_std=a.noise, clamp=(0.0, 1.0),
                           generator=g, progress=True).cpu())
    x = torch.cat(xs)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, x=to_uint8(x), y=y.numpy(), energy=a.energy, init=a.init, steps=a.steps,
                        step_size=a.step_size, noise=a.noise, model=str(a.model), seed=a.seed)
    print(json.dumps({"out": str(out), "n": len(y), "labels": labels, "energy": a.energy, "init": a.init}))
    return 0


# ----------------------------------------------------------------------------- parser
def _figures(a: argparse.Namespace) -> int:
    from .figures import make_all

    report = make_all(a.out, smoke=a.smoke, data_root=a.data_root)
    print(json.dumps(report, indent=2))
    skipped = [k for k, v in report.items() if isinstance(v, str)]
    if skipped:
        print(f"jeat figures: {len(skipped)} of {len(report)} skipped (models not shipped yet): "
              f"{', '.join(skipped)}", file=sys.stderr)
    return 1 if skipped else 0


def _audit(a: argparse.Namespace) -> int:
    from .audit import run_audit, to_markdown

    if a.inception_weights and not Path(a.inception_weights).is_file():
        raise FileNotFoundError(f"--inception-weights: no file at {a.inception_weights}")
    report = run_audit(smoke=a.smoke, data_root=a.data_root, inception_weights=a.inception_weights,
                       progress=lambda msg: print(f"[audit] {msg}", file=sys.stderr, flush=True))
    md = to_markdown(report)
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(md)
        out.with_suffix(".json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        print(f"jeat audit: wrote {out} and {out.with_suffix('.json')}", file=sys.stderr)
    print(json.dumps(report, indent=2, ensure_ascii=False) if a.json else md)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .training import METHODS, PRESETS

    p = argparse.ArgumentParser(prog="jeat", description="Energy view of robust classifiers (JEAT, ICCV 2021).")
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train a classifier with one of the paper's methods")
    t.add_argument("--method", required=True, choices=METHODS)
    t.add_argument("--preset", default="cpu", choices=PRESETS)
    t.add_argument("--sigma", type=size, help="noise std for --method noise (e.g. 16/255)")
    t.add_argument("--data-root", help="folder with train.npz/test.npz (default: $JEAT_DATA)")
    t.add_argument("--dataset", choices=("cifar10", "cifar100", "procedural"))
    t.add_argument("--epochs", type=size)
    t.add_argument("--max-steps", type=positive_int, help="stop after N steps (smoke runs)")
    t.add_argument("--out", help="output folder (default runs/<method>)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/state.pt")
    t.add_argument("--seed", type=nonneg_int)
    t.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    t.add_argument("--lr", type=size)
    t.add_argument("--batch-size", type=positive_int)
    t.add_argument("--attack", choices=("fgsm_rs", "pgd"), help="training attack (at/prejeat/jeat)")
    t.add_argument("--eps", type=size, help="attack radius, e.g. 8/255")
    t.add_argument("--attack-steps", type=positive_int)
    t.add_argument("--attack-step-size", type=size)
    t.add_argument("--sgld-steps", type=positive_int, help="K in Algorithm 1 (jeat/jem)")
    t.add_argument("--sgld-step-size", type=size, help="η: drift is -(η/2)∇E")
    t.add_argument("--sgld-noise", type=size, help="noise std s (sqrt(η) is exact Langevin)")
    t.add_argument("--buffer-size", type=positive_int)
    t.add_argument("--reinit-prob", type=size, help="ρ in Algorithm 1")
    t.add_argument("--energy-l2", type=size, help="L2 penalty on energies (JEM stabiliser)")
    t.add_argument("--gen-weight", type=size, help="weight of the p(x) term (jeat/jem; 1 = paper)")
    t.add_argument("--gen-start", type=size, help="fraction of training before the p(x) term is on (jeat/jem)")
    t.add_argument("--log-every", type=nonneg_int)
    t.add_argument("--checkpoint-every", type=nonneg_int)
    t.add_argument("--eval-n", type=nonneg_int, help="test images for the final clean accuracy")
    t.add_argument("--deterministic", action="store_true")
    t.add_argument("--no-amp", action="store_true")
    t.add_argument("--compile", action="store_true")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=_train)

    e = sub.add_parser("eval", help="clean and robust accuracy of a checkpoint")
    e.add_argument("--model", required=True, help="checkpoint folder or shipped name (cifar10-cpu/jeat)")
    e.add_argument("--attack", default="pgd20", choices=ATTACKS)
    e.add_argument("--eps", type=size, default=8 / 255)
    e.add_argument("--n", type=positive_int, default=None, help="number of test images (default all)")
    e.add_argument("--batch-size", type=positive_int, default=250)
    e.add_argument("--data-root")
    e.add_argument("--device")
    e.add_argument("--seed", type=nonneg_int, default=0)
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--record", action="store_true", help="also store the result in the checkpoint's manifest")
    e.set_defaults(func=_eval)

    g = sub.add_parser("generate", help="class-conditional Langevin generation (Eq. 16/17)")
    g.add_argument("--model", required=True)
    g.add_argument("--labels", default="all", help=f"'all' or a comma list of {CLASSES_HELP}")
    g.add_argument("--per-class", type=positive_int, default=10)
    g.add_argument("--energy", default="joint", choices=("joint", "ce"), help="joint = Eq. 17, ce = Eq. 16")
    g.add_argument("--init", default="class_gaussian", choices=("class_gaussian", "uniform"))
    # defaults: chosen by eye on cifar10-cpu/at (η 0.1-5, K 20-120, s 0-0.01 compared): larger η or K
    # over-saturates Eq. 17 samples, smaller η leaves them close to the Gaussian seed
    g.add_argument("--steps", type=nonneg_int, default=60)
    g.add_argument("--step-size", type=size, default=0.25, help="η (drift -(η/2)∇E)")
    g.add_argument("--noise", type=size, default=0.001, help="noise std s")
    g.add_argument("--batch-size", type=positive_int, default=100)
    g.add_argument("--seed", type=nonneg_int, default=0)
    g.add_argument("--data-root")
    g.add_argument("--device")
    g.add_argument("--out", required=True, help="output .npz")
    g.set_defaults(func=_generate)

    f = sub.add_parser("figures", help="write the paper's figures and tables from the shipped models")
    f.add_argument("--out", default="figures")
    f.add_argument("--smoke", action="store_true", help="tiny sizes, to check the pipeline")
    f.add_argument("--data-root")
    f.set_defaults(func=_figures)

    u = sub.add_parser("audit", help="measure each claim of the paper on the shipped models")
    u.add_argument("--smoke", action="store_true", help="tiny sizes (minutes): checks the pipeline, not the claims")
    u.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    u.add_argument("--out", help="also write the Markdown here (and the JSON beside it), e.g. figures/audit.md")
    u.add_argument("--inception-weights", help="offline torch-fidelity Inception weights for real IS/FID")
    u.add_argument("--data-root")
    u.set_defaults(func=_audit)
    return p


def main(argv: list[str] | None = None) -> int:
    from .checkpoints import CheckpointError
    from .data import DataNotFoundError
    from .training import TrainingDiverged

    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return a.func(a)
    except (ValueError, FileNotFoundError, DataNotFoundError, CheckpointError) as e:
        print(f"jeat {a.cmd}: error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"jeat {a.cmd}: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"jeat {a.cmd}: interrupted; resume with --resume (the last checkpoint is kept)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

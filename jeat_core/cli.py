"""The ``jeat`` command: ``train``, ``eval`` and ``generate`` (thin wrappers around the library)."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import replace
from pathlib import Path

CLASSES_HELP = "0-9 or names (airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck)"


# ----------------------------------------------------------------------------- argument types
# Numbers are parsed strictly: a plain decimal or a fraction of two (``8/255``); no nan/inf, no
# value that overflows or underflows a float, and each option's range is checked at parse time,
# so a bad value is one line naming the option (argparse adds the name) and exit status 2.
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _decimal(part: str, text: str) -> float:
    part = part.strip()
    if not _DECIMAL.fullmatch(part):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or fraction (e.g. 0.03 or 8/255)")
    v = float(part)  # never hangs, unlike Fraction("1e-99999999")
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} is too large")
    if v == 0 and re.search(r"[1-9]", re.split("[eE]", part)[0]):
        raise argparse.ArgumentTypeError(f"{text!r} is too small (it underflows to 0)")
    return v


def number(lo: float | None = 0.0, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False):
    """An argparse type for a finite number (or fraction like ``8/255``) in a range."""

    def parse(text: str) -> float:
        parts = str(text).split("/")
        if len(parts) > 2:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number or fraction (e.g. 0.03 or 8/255)")
        vals = [_decimal(p, text) for p in parts]
        v = vals[0]
        if len(vals) == 2:
            if vals[1] == 0:
                raise argparse.ArgumentTypeError(f"{text!r} divides by zero")
            v = vals[0] / vals[1]
            if not math.isfinite(v):
                raise argparse.ArgumentTypeError(f"{text!r} is too large")
            if v == 0 and vals[0] != 0:
                raise argparse.ArgumentTypeError(f"{text!r} is too small (it underflows to 0)")
        if lo is not None and (v < lo or (lo_open and v == lo)):
            raise argparse.ArgumentTypeError(f"{text!r} must be {'>' if lo_open else '>='} {lo:g}")
        if hi is not None and (v > hi or (hi_open and v == hi)):
            raise argparse.ArgumentTypeError(f"{text!r} must be {'<' if hi_open else '<='} {hi:g}")
        return v

    return parse


size = number(0.0)  # a non-negative number, also written as a fraction like ``8/255``
positive = number(0.0, lo_open=True)
pixel = number(0.0, 1.0)  # a radius or step in [0, 1] pixel space
fraction01 = number(0.0, 1.0)


def integer(lo: int, hi: int):
    """An argparse type for an integer in ``[lo, hi]``."""

    def parse(text: str) -> int:
        t = str(text).strip()
        if not re.fullmatch(r"[+-]?\d+", t):
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
        if len(t.lstrip("+-")) > 30 or not lo <= int(t) <= hi:
            raise argparse.ArgumentTypeError(f"{text!r} must be an integer in [{lo}, {hi}]")
        return int(t)

    return parse


BIG = 10 ** 9
positive_int, nonneg_int = integer(1, BIG), integer(0, BIG)
seed_int = integer(0, 2 ** 31 - 1)
batch_int = integer(1, 65536)


def device_arg(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``, checked against this machine."""
    import torch

    try:
        d = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; use cpu, cuda or cuda:N") from None
    if d.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{text!r}: only cpu and cuda devices are supported")
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available on this machine; use --device cpu")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return text


def labels_arg(text: str) -> list[int]:
    try:
        return parse_labels(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_labels(text: str, n_classes: int = 10) -> list[int]:
    from .data import CIFAR10_CLASSES

    if text == "all":
        return list(range(n_classes))
    out = []
    for tok in text.split(","):
        tok = tok.strip()
        if re.fullmatch(r"[0-9]{1,4}", tok) and int(tok) < n_classes:
            out.append(int(tok))
        elif tok in CIFAR10_CLASSES:
            out.append(CIFAR10_CLASSES.index(tok))
        else:
            raise ValueError(f"bad label {tok!r} in --labels; use 'all' or a comma list of {CLASSES_HELP}")
    return out


# ----------------------------------------------------------------------------- train
# command-line option -> the config field it sets (what --resume compares with the stored run)
RESUME_FIELDS = {
    "preset": "preset", "dataset": "dataset", "sigma": "sigma", "seed": "seed", "lr": "optim.lr",
    "batch_size": "optim.batch_size", "grad_clip": "optim.grad_clip", "warmup_steps": "optim.warmup_steps",
    "init_from": "init_from", "buffer_init": "sgld.init", "sgld_batch": "sgld.batch_size",
    "attack": "attack.kind", "eps": "attack.eps",
    "attack_steps": "attack.resolved_n_steps", "attack_step_size": "attack.resolved_step_size",
    "sgld_steps": "sgld.n_steps",
    "sgld_step_size": "sgld.step_size", "sgld_noise": "sgld.noise_std", "buffer_size": "sgld.buffer_size",
    "reinit_prob": "sgld.reinit_prob", "energy_l2": "energy_l2", "gen_weight": "gen_weight",
    "gen_start": "gen_start", "log_every": "log_every", "checkpoint_every": "checkpoint_every",
    "eval_n": "eval_n", "deterministic": "deterministic", "no_amp": "amp", "compile": "compile",
}


def _field(cfg, path: str):
    for part in path.split("."):
        cfg = getattr(cfg, part, None)
    return cfg


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _show(v, flag: bool = True) -> str:
    if v is True and flag:  # a flag given on the command line
        return ""
    return f" {v:.6g}" if isinstance(v, float) else f" {v}"


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
    cfg = make_config(a.method, a.preset or "cpu", **over)
    opt = {k: v for k, v in (("lr", a.lr), ("batch_size", a.batch_size), ("grad_clip", a.grad_clip),
                             ("warmup_steps", a.warmup_steps)) if v is not None}
    if opt:
        cfg = replace(cfg, optim=replace(cfg.optim, **opt))
    if a.init_from is not None:
        from .checkpoints import resolve

        resolve(a.init_from)  # a clear error now if it does not exist
        cfg = replace(cfg, init_from=a.init_from)
    if cfg.uses_attack:  # PGD's defaults (10 steps of 2/255) are the config's, as in the Python API
        att = {k: v for k, v in (("kind", a.attack), ("eps", a.eps), ("n_steps", a.attack_steps),
                                 ("step_size", a.attack_step_size)) if v is not None}
        cfg = replace(cfg, attack=replace(cfg.attack, **att))
    elif any(v is not None for v in (a.attack, a.eps, a.attack_steps, a.attack_step_size)):
        raise ValueError(f"--attack/--eps/--attack-steps/--attack-step-size do not apply to --method {a.method}")
    if cfg.uses_sgld:
        sg = {k: v for k, v in (("n_steps", a.sgld_steps), ("step_size", a.sgld_step_size),
                                ("noise_std", a.sgld_noise), ("buffer_size", a.buffer_size),
                                ("reinit_prob", a.reinit_prob), ("init", a.buffer_init),
                                ("batch_size", a.sgld_batch)) if v is not None}
        cfg = replace(cfg, sgld=replace(cfg.sgld, **sg))
        if a.energy_l2 is not None:
            cfg = replace(cfg, energy_l2=a.energy_l2)
        if a.gen_weight is not None:
            cfg = replace(cfg, gen_weight=a.gen_weight)
        if a.gen_start is not None:
            cfg = replace(cfg, gen_start=a.gen_start)
    elif any(v is not None for v in (a.sgld_steps, a.sgld_step_size, a.sgld_noise, a.buffer_size, a.energy_l2,
                                     a.gen_weight, a.gen_start, a.reinit_prob, a.buffer_init, a.sgld_batch)):
        raise ValueError(f"--sgld-*/--buffer-*/--reinit-prob/--energy-l2/--gen-weight/--gen-start apply only "
                         f"to jeat and jem, not --method {a.method}")
    out = Path(a.out or f"runs/{a.method}")
    from .checkpoints import RunLock

    RunLock(out).acquire().release()  # another writer? say so before reading anything (fit locks for real)
    if a.resume:  # continue with the stored config; only --epochs / --max-steps may change
        from .training import RESUMABLE, resume_config, saved_config

        stored = saved_config(out)
        if stored.method != a.method:
            raise ValueError(f"--resume: {out} holds a {stored.method!r} run, not {a.method!r}")
        given = [k for k in RESUME_FIELDS if getattr(a, k) not in (None, False)]
        differ = [f"--{k.replace('_', '-')}{_show(getattr(a, k))} (stored {RESUME_FIELDS[k].replace('resolved_', '')} ="
                  f"{_show(_field(stored, RESUME_FIELDS[k]), flag=False)})"
                  for k in given if not _same(_field(cfg, RESUME_FIELDS[k]), _field(stored, RESUME_FIELDS[k]))]
        if differ:
            raise ValueError(f"--resume continues {out} with its stored settings and would ignore "
                             f"{', '.join(differ)}; drop these options (only --epochs and --max-steps may change) "
                             f"or start a new run with another --out")
        cfg = resume_config(out, **{k: getattr(a, k) for k in RESUMABLE if getattr(a, k) is not None})
    res = fit(cfg, out=out, data_root=a.data_root, device=a.device, resume=a.resume, overwrite=a.overwrite,
              progress=not a.no_progress)
    m = res.manifest
    print(json.dumps({"out": str(out), "method": m["method"], "steps": m["steps"],
                      "train_seconds": m["train_seconds"], **{k: v for k, v in m["metrics"].items()
                                                              if k in ("clean_acc", "eval_n", "train_loss")},
                      "divergence_events": len(m["divergence_events"])}))
    return 0


# ----------------------------------------------------------------------------- eval
from .metrics import ATTACKS  # noqa: E402  (kept for callers of cli.evaluate)
from .metrics import robust_accuracy as evaluate  # noqa: E402


def _eval(a: argparse.Namespace) -> int:
    import copy

    from .checkpoints import MANIFEST, RunLock, load_model, read_manifest, record_eval, resolve, write_json
    from .data import load_split

    dev = a.device or "cpu"
    model, manifest = load_model(a.model, device=dev)
    test = load_split("test", dataset=manifest["data"].get("dataset", "cifar10"), data_root=a.data_root)
    x, y = test.tensors(a.n)
    if a.record:  # refuse before spending the time: would this replace a record of larger n?
        record_eval(copy.deepcopy(manifest), {"attack": a.attack, "eps": a.eps, "n": len(y)}, force=a.force)
    res = evaluate(model, x.to(dev), y.to(dev), attack=a.attack, eps=a.eps, seed=a.seed,
                   batch_size=a.batch_size, progress=not a.json)
    res["model"] = a.model
    if a.record:  # keep the measurement with the checkpoint (re-read under the folder's lock)
        folder = resolve(a.model)
        with RunLock(folder):
            current = read_manifest(folder)
            record_eval(current, {k: v for k, v in res.items() if k != "model"}, force=a.force)
            write_json(folder / MANIFEST, current)
    print(json.dumps(res) if a.json else "\n".join(f"{k:>12}: {v}" for k, v in res.items()))
    return 0


# ----------------------------------------------------------------------------- generate
def _npz_out(text: str) -> Path:
    """The path ``--out`` will really have (numpy appends ``.npz``), checked writable up front."""
    import tempfile

    out = Path(text).expanduser()
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name ending in .npz")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out.parent):
            pass
    except OSError as e:
        raise ValueError(f"--out {out}: cannot write in {out.parent} ({e.strerror or e})") from None
    return out


def _generate(a: argparse.Namespace) -> int:
    import io
    from dataclasses import replace

    import numpy as np
    import torch

    from .checkpoints import atomic_write_bytes, load_model
    from .data import load_split, to_uint8
    from .sampling import ClassGaussian, generate, sampler_for, uniform_init

    out = _npz_out(a.out)  # before any sampling
    dev = a.device or "cpu"
    model, manifest = load_model(a.model, device=dev)
    labels = a.labels
    y = torch.tensor([c for c in labels for _ in range(a.per_class)])
    g = torch.Generator().manual_seed(a.seed)
    if a.init == "class_gaussian":
        train = load_split("train", dataset=manifest["data"].get("dataset", "cifar10"), data_root=a.data_root)
        keep = np.isin(train.y, labels)  # fit only the requested classes
        x0 = ClassGaussian(train.x[keep], train.y[keep]).sample(y, generator=g)
    else:
        x0 = uniform_init(len(y), generator=g)
    # the model's own tuned sampler (manifest["sampler"], chosen by `jeat tune-samplers`), then the flags
    cfg = sampler_for(manifest, a.energy)
    given = {"step": a.step, "n_steps": a.steps, "step_size": a.step_size, "noise_std": a.noise}
    cfg = replace(cfg, **{k: v for k, v in given.items() if v is not None})
    xs = []
    batches = range(0, len(y), a.batch_size)
    if len(batches) > 1:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="generate", unit="batch", file=sys.stderr)
    for b, i in enumerate(batches):
        xs.append(generate(model, y[i:i + a.batch_size].to(dev), x0[i:i + a.batch_size].to(dev), cfg,
                           seed=a.seed * 100_003 + b).cpu())
    x = torch.cat(xs)
    buf = io.BytesIO()
    np.savez_compressed(buf, x=to_uint8(x), y=y.numpy(), energy=a.energy, init=a.init, step=cfg.step,
                        steps=cfg.n_steps, step_size=cfg.step_size, noise=cfg.noise_std, model=str(a.model),
                        seed=a.seed)
    atomic_write_bytes(out, buf.getvalue())
    print(json.dumps({"out": str(out), "n": len(y), "labels": labels, "energy": a.energy, "init": a.init,
                      "sampler": {"step": cfg.step, "step_size": cfg.step_size, "n_steps": cfg.n_steps,
                                  "noise_std": cfg.noise_std}}))
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


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``jeat train: error: argument --eps: '8' must be <= 1``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .training import METHODS, PRESETS

    p = _Parser(prog="jeat", description="Energy view of robust classifiers (JEAT, ICCV 2021).")
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train a classifier with one of the paper's methods")
    t.add_argument("--method", required=True, choices=METHODS)
    t.add_argument("--preset", choices=PRESETS, help="cpu (default) or paper")
    t.add_argument("--sigma", type=number(0.0, 1.0, lo_open=True), help="noise std for --method noise (e.g. 16/255)")
    t.add_argument("--data-root", help="folder with train.npz/test.npz (default: $JEAT_DATA)")
    t.add_argument("--dataset", choices=("cifar10", "cifar100", "procedural"))
    t.add_argument("--epochs", type=number(0.0, 10000.0, lo_open=True))
    t.add_argument("--max-steps", type=positive_int, help="stop after N steps (smoke runs)")
    t.add_argument("--out", help="output folder (default runs/<method>); must be empty unless --resume/--overwrite")
    t.add_argument("--resume", action="store_true", help="continue from OUT/state.pt")
    t.add_argument("--overwrite", action="store_true", help="replace a previous run in OUT")
    t.add_argument("--seed", type=seed_int)
    t.add_argument("--device", type=device_arg, help="cpu, cuda, cuda:1 (default: cuda when available)")
    t.add_argument("--lr", type=positive)
    t.add_argument("--batch-size", type=batch_int)
    t.add_argument("--grad-clip", type=number(0.0, 1e6), help="clip the gradient norm to this (0 = off)")
    t.add_argument("--warmup-steps", type=nonneg_int, help="linear learning-rate warm-up steps")
    t.add_argument("--init-from", help="start from this trained model's weights (fine-tune; same architecture)")
    t.add_argument("--attack", choices=("fgsm_rs", "pgd"), help="training attack (at/prejeat/jeat)")
    t.add_argument("--eps", type=pixel, help="attack radius in [0, 1], e.g. 8/255")
    t.add_argument("--attack-steps", type=integer(1, 10000))
    t.add_argument("--attack-step-size", type=number(0.0, 1.0, lo_open=True))
    t.add_argument("--sgld-steps", type=integer(1, 10000), help="K in Algorithm 1 (jeat/jem)")
    t.add_argument("--sgld-step-size", type=number(0.0, 1e6, lo_open=True), help="η: drift is -(η/2)∇E")
    t.add_argument("--sgld-noise", type=number(0.0, 10.0), help="noise std s (sqrt(η) is exact Langevin)")
    t.add_argument("--buffer-size", type=integer(1, 200_000))
    t.add_argument("--reinit-prob", type=fraction01, help="ρ in Algorithm 1")
    t.add_argument("--buffer-init", choices=("uniform", "class_gaussian"),
                   help="replay-buffer init and re-init (jeat/jem; default uniform)")
    t.add_argument("--sgld-batch", type=batch_int, help="SGLD negatives per step (jeat/jem)")
    t.add_argument("--energy-l2", type=number(0.0, 1e6), help="L2 penalty on energies (JEM stabiliser)")
    t.add_argument("--gen-weight", type=number(0.0, 1e6), help="weight of the p(x) term (jeat/jem; 1 = paper)")
    t.add_argument("--gen-start", type=number(0.0, 1.0, hi_open=True),
                   help="fraction of training before the p(x) term is on (jeat/jem)")
    t.add_argument("--log-every", type=nonneg_int)
    t.add_argument("--checkpoint-every", type=nonneg_int)
    t.add_argument("--eval-n", type=integer(0, 10 ** 7), help="test images for the final clean accuracy")
    t.add_argument("--deterministic", action="store_true")
    t.add_argument("--no-amp", action="store_true")
    t.add_argument("--compile", action="store_true")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=_train)

    e = sub.add_parser("eval", help="clean and robust accuracy of a checkpoint")
    e.add_argument("--model", required=True, help="checkpoint folder or shipped name (cifar10-cpu/jeat)")
    e.add_argument("--attack", default="pgd20", choices=ATTACKS)
    e.add_argument("--eps", type=pixel, default=8 / 255, help="attack radius in [0, 1], e.g. 8/255")
    e.add_argument("--n", type=integer(1, 10 ** 7), default=None, help="number of test images (default all)")
    e.add_argument("--batch-size", type=batch_int, default=250)
    e.add_argument("--data-root")
    e.add_argument("--device", type=device_arg)
    e.add_argument("--seed", type=seed_int, default=0)
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--record", action="store_true", help="also store the result in the checkpoint's manifest")
    e.add_argument("--force", action="store_true", help="with --record: replace a record measured on more images")
    e.set_defaults(func=_eval)

    g = sub.add_parser("generate", help="class-conditional Langevin generation (Eq. 16/17)")
    g.add_argument("--model", required=True)
    g.add_argument("--labels", type=labels_arg, default=list(range(10)),
                   help=f"'all' or a comma list of {CLASSES_HELP}")
    g.add_argument("--per-class", type=integer(1, 5000), default=10)
    g.add_argument("--energy", default="joint", choices=("joint", "ce"), help="joint = Eq. 17, ce = Eq. 16")
    g.add_argument("--init", default="class_gaussian", choices=("class_gaussian", "uniform"))
    # defaults: the model's own sampler from its manifest (chosen on validation seeds by the evaluator's
    # KID, `jeat tune-samplers`), else GenerationConfig's defaults (sampling.sampler_for); each flag overrides
    g.add_argument("--step", choices=("langevin", "l2"), default=None,
                   help="langevin: x -= (η/2)∇E; l2: x -= η ∇E/‖∇E‖ (Santurkar et al.)")
    g.add_argument("--steps", type=integer(0, 100_000), default=None, help="K (default: the model's sampler)")
    g.add_argument("--step-size", type=number(0.0, 100.0), default=None, help="η (default: the model's sampler)")
    g.add_argument("--noise", type=number(0.0, 10.0), default=None, help="noise std s (default: the model's)")
    g.add_argument("--batch-size", type=batch_int, default=100)
    g.add_argument("--seed", type=seed_int, default=0)
    g.add_argument("--data-root")
    g.add_argument("--device", type=device_arg)
    g.add_argument("--out", required=True, help="output .npz (the suffix is added when missing)")
    g.set_defaults(func=_generate)

    ts = sub.add_parser("tune-samplers", add_help=False,
                        help="choose each shipped model's best sampler on validation seeds (evaluator KID)")
    ts.set_defaults(func=None)
    te = sub.add_parser("train-evaluator", add_help=False,
                        help="train the independent evaluator of the generation metrics")
    te.set_defaults(func=None)

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


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        text = f"{e.strerror}: {e.filename}"
    else:
        text = str(e) or type(e).__name__
    return " ".join(text.split())


PASSTHROUGH = {"tune-samplers": (".experiments", "tune_main"), "train-evaluator": (".evaluator", "main")}


def main(argv: list[str] | None = None) -> int:
    from .checkpoints import CheckpointError
    from .data import DataNotFoundError
    from .training import TrainingDiverged

    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in PASSTHROUGH:  # sub-commands with their own parser (`jeat tune-samplers --help`)
        import importlib

        module, func = PASSTHROUGH[args[0]]
        try:
            return getattr(importlib.import_module(module, __package__), func)(args[1:])
        except (ValueError, OSError, DataNotFoundError, CheckpointError) as e:
            print(f"jeat {args[0]}: error: {_one_line(e)}", file=sys.stderr)
            return 2
    parser = build_parser()
    a = parser.parse_args(args)
    try:
        return a.func(a)
    except (ValueError, OSError, DataNotFoundError, CheckpointError) as e:
        print(f"jeat {a.cmd}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"jeat {a.cmd}: {_one_line(e)}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"jeat {a.cmd}: interrupted; resume with --resume (the last checkpoint is kept)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

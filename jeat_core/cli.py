"""The ``jeat`` command: ``train``, ``eval``, ``generate``, ``lens`` ... (thin wrappers around the library)."""

from __future__ import annotations

import argparse
import copy
import importlib
import io
import json
import math
import os
import re
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from jeat_core.core.checkpoints import (
    MANIFEST,
    CheckpointError,
    RunLock,
    atomic_write_bytes,
    load_model,
    read_manifest,
    record_eval,
    resolve,
    write_json,
)
from jeat_core.core.configs import (
    BATCH,
    NONNEG,
    NONNEG_INT,
    POSITIVE,
    POSITIVE_INT,
    SEED,
    UNIT,
    Range,
    get_path,
    merge_flags,
    set_path,
)
from jeat_core.core.data import CIFAR10_CLASSES, DataNotFoundError, load_split, to_uint8
from jeat_core.core.sampling import ClassGaussian, generate, sampler_for, uniform_init
from jeat_core.core.user_model import load as load_user_model
from jeat_core.measure.metrics import parse_attack
from jeat_core.measure.robustness import PeerLibraryMissing, require_torchattacks
from jeat_core.train import methods as registry  # registry.METHODS read at call time: a test may swap it
from jeat_core.train.methods import get_method, make_config
from jeat_core.train.runs import RESUMABLE, resume_config, saved_config
from jeat_core.train.training import TrainingDiverged, fit

CLASSES_HELP = "0-9 or names (airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck)"


# ----------------------------------------------------------------------------- argument types
# Numbers are parsed strictly: a plain decimal or a fraction of two (``8/255``); no nan/inf, no
# value that overflows or underflows a float, and each option's range is checked at parse time,
# so a bad value is one line naming the option (argparse adds the name) and exit status 2. The
# ranges are jeat_core.core.configs' (the configs check the same ones), parsed by Range.parse.
def range_arg(r: Range):
    """An argparse type for a number in the :class:`~jeat_core.core.configs.Range` ``r``."""

    def parse(text: str):
        try:
            return r.parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = "integer" if r.integer else "number"
    return parse


def number(lo: float | None = 0.0, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False):
    """An argparse type for a finite number (or fraction like ``8/255``) in a range."""
    return range_arg(Range(lo, hi, lo_open, hi_open))


def integer(lo: int, hi: int):
    """An argparse type for an integer in ``[lo, hi]``."""
    return range_arg(Range(lo, hi, integer=True))


size = range_arg(NONNEG)  # a non-negative number, also written as a fraction like ``8/255``
positive = range_arg(POSITIVE)
pixel = range_arg(UNIT)  # a radius or step in [0, 1] pixel space
positive_int, nonneg_int = range_arg(POSITIVE_INT), range_arg(NONNEG_INT)
seed_int = range_arg(SEED)
batch_int = range_arg(BATCH)


def device_arg(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``, checked against this machine."""
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
# Every `jeat train` option that sets a config field is declared once, on the field it sets
# (jeat_core.core.configs.option; each method's config in jeat_core.train.methods): the flags, the
# "does not apply to this method" errors and the --resume comparison below all read those.
def train_options() -> dict[str, tuple]:
    """``dest -> (Option, the methods that accept it)`` over every method of the registry. A flag
    several methods declare with the same meaning is one flag (:func:`~jeat_core.core.configs.
    merge_flags`); the Option's ``help`` is the flag's help text: its text and the methods that take
    it (when not all do), or each method's own text when their texts differ."""
    out: dict[str, tuple] = {}
    for dest, decls in merge_flags((n, m.config.all_options()) for n, m in registry.METHODS.items()).items():
        methods = tuple(n for n, _ in decls)
        texts: dict[str, list[str]] = {}
        for n, o in decls:
            texts.setdefault(o.help, []).append(n)
        if len(texts) > 1:
            shown = "; ".join(f"{t} ({', '.join(ms)})".strip() for t, ms in texts.items())
        else:
            shown = decls[0][1].help + ("" if len(methods) == len(registry.METHODS) else f" ({', '.join(methods)})")
        out[dest] = (replace(decls[0][1], help=shown.strip()), methods)
    return out


def _add_option(parser: argparse.ArgumentParser, o) -> None:
    if o.kind == "switch":
        parser.add_argument(o.flag, action="store_true", help=o.help or None)
    elif o.kind == "text":
        parser.add_argument(o.flag, help=o.help or None)
    elif isinstance(o.kind, tuple):
        parser.add_argument(o.flag, choices=o.kind, help=o.help or None)
    else:
        parser.add_argument(o.flag, type=range_arg(o.kind), help=o.help or None)


def _given(a: argparse.Namespace, o) -> bool:
    return getattr(a, o.dest) not in (None, False)


def _value(a: argparse.Namespace, o):
    return (not o.invert) if o.kind == "switch" else getattr(a, o.dest)


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _show(v, flag: bool = True) -> str:
    if v is True and flag:  # a flag given on the command line
        return ""
    return f" {v:.6g}" if isinstance(v, float) else f" {v}"


def train_config(a: argparse.Namespace):
    """The config ``jeat train`` runs: the method's preset with every given option applied."""
    m = get_method(a.method)
    options = train_options()
    wrong = [(o, ms) for o, ms in options.values() if _given(a, o) and a.method not in ms]
    if wrong:
        flags = ", ".join(o.flag for o, _ in wrong)
        where = "; ".join(f"{o.flag} applies to {', '.join(ms)}" for o, ms in wrong)
        raise ValueError(f"{flags} {'does' if len(wrong) == 1 else 'do'} not apply to --method {a.method} ({where})")
    cfg = make_config(a.method, a.preset or "cpu")
    for o in m.config.all_options():
        if _given(a, o) and o.dest != "preset":
            if o.dest == "init_from":

                resolve(a.init_from)  # a clear error now if it does not exist
            cfg = set_path(cfg, o.path, _value(a, o))
    return cfg


def _check_resume(a: argparse.Namespace, cfg, stored, out: Path) -> None:
    """Refuse options a resumed run would ignore (it keeps its stored config)."""
    if stored.method != a.method:
        raise ValueError(f"--resume: {out} holds a {stored.method!r} run, not {a.method!r}")
    differ = []
    for o in type(stored).all_options():
        if o.dest in RESUMABLE or not _given(a, o):
            continue
        path = o.compare or o.path
        if not _same(get_path(cfg, path), get_path(stored, path)):
            differ.append(f"{o.flag}{_show(getattr(a, o.dest))} (stored {path.replace('resolved_', '')} ="
                          f"{_show(get_path(stored, path), flag=False)})")
    if differ:
        raise ValueError(f"--resume continues {out} with its stored settings and would ignore "
                         f"{', '.join(differ)}; drop these options (only --epochs and --max-steps may change) "
                         f"or start a new run with another --out")


def _train(a: argparse.Namespace) -> int:
    cfg = train_config(a)
    out = Path(a.out or f"runs/{a.method}")

    RunLock(out).acquire().release()  # another writer? say so before reading anything (fit locks for real)
    if a.resume:  # continue with the stored config; only --epochs / --max-steps may change

        _check_resume(a, cfg, saved_config(out), out)
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
from jeat_core.measure.metrics import ATTACKS  # noqa: E402  (kept for callers of cli.evaluate)
from jeat_core.measure.metrics import robust_accuracy as evaluate  # noqa: E402


def _eval(a: argparse.Namespace) -> int:
    att = parse_attack(a.attack)
    if att.objective == "autoattack":  # before loading anything: is the peer library here?

        require_torchattacks()
    dev = a.device or "cpu"
    model, manifest = load_model(a.model, device=dev)
    test = load_split("test", dataset=manifest["data"].get("dataset", "cifar10"), data_root=a.data_root)
    x, y = test.tensors(a.n)
    if a.record:  # refuse before spending the time: would this replace a record of larger n?
        record_eval(copy.deepcopy(manifest), {"attack": a.attack, "eps": a.eps, "n": len(y)}, force=a.force)
    partial = None
    if att.objective == "autoattack" or att.restarts > 1:  # long: resumable, saved after every batch
        tag = manifest.get("weights", {}).get("sha256", "")[:16] or Path(a.model).name
        partial = eval_cache() / f"{tag}-{a.attack}-n{len(y)}-eps{a.eps:.6f}-seed{a.seed}-b{a.batch_size}.json"
        print(f"[eval] progress is saved after every batch of {a.batch_size} to {partial}; the same command resumes",
              file=sys.stderr)
    res = evaluate(model, x.to(dev), y.to(dev), attack=a.attack, eps=a.eps, seed=a.seed,
                   batch_size=a.batch_size, progress=not a.json, partial=partial)
    res["model"] = a.model
    if a.record:  # keep the measurement with the checkpoint (re-read under the folder's lock)
        folder = resolve(a.model)
        with RunLock(folder):
            current = read_manifest(folder)
            record_eval(current, {k: v for k, v in res.items() if k != "model"}, force=a.force)
            write_json(folder / MANIFEST, current)
    if partial is not None:
        partial.unlink(missing_ok=True)
    print(json.dumps(res) if a.json else _show_eval(res))
    return 0


def eval_cache() -> Path:
    """Where long evaluations keep their partial results: ``$JEAT_CACHE/evals`` (default ``~/.cache/jeat``)."""
    return Path(os.environ.get("JEAT_CACHE", "~/.cache/jeat")).expanduser() / "evals"


def _show_eval(res: dict) -> str:
    """The human-readable result: one line per field, per stage for AutoAttack and PGD restarts
    (the per-example strings only in ``--json`` and the record)."""
    def pct(acc, ci):
        return f"{100 * acc:.2f}% [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]"

    lines = []
    for k, v in res.items():
        if k == "per_example":
            continue
        if k == "stages":
            lines += [f"{'after ' + s['stage']:>18}: {pct(s['robust_acc'], s['robust_ci'])} ({s['attacked']} attacked)"
                      for s in v]
        elif k in ("clean_acc", "robust_acc") and f"{k[:-4]}_ci" in res:
            lines.append(f"{k:>18}: {pct(v, res[k[:-4] + '_ci'])}")
        elif k not in ("clean_ci", "robust_ci"):
            lines.append(f"{k:>18}: {v}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- generate
def _npz_out(text: str) -> Path:
    """The path ``--out`` will really have (numpy appends ``.npz``), checked writable up front."""
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
        from tqdm.auto import tqdm  # progress bars: loaded only when asked for

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
    # the paper and explore layers (matplotlib, the zoo) load only for this command
    from jeat_core.explore.figures import make_all

    only = [n.strip() for n in a.only.split(",") if n.strip()] if a.only else None
    report = make_all(a.out, smoke=a.smoke, data_root=a.data_root, only=only)
    print(json.dumps(report, indent=2))
    skipped = [k for k, v in report.items() if isinstance(v, str)]
    if skipped:
        print(f"jeat figures: {len(skipped)} of {len(report)} skipped (models not shipped yet): "
              f"{', '.join(skipped)}", file=sys.stderr)
    return 1 if skipped else 0


def _audit(a: argparse.Namespace) -> int:
    # the paper and explore layers (matplotlib, the zoo) load only for this command
    from jeat_core.paper.audit import run_audit, to_markdown

    if a.inception_weights and not Path(a.inception_weights).is_file():
        raise FileNotFoundError(f"--inception-weights: no file at {a.inception_weights}")
    only = previous = None
    if a.only is not None:
        try:
            only = {int(v) for v in a.only.split(",") if v.strip()}
        except ValueError:
            raise ValueError(f"--only: give claim numbers like 8,10; got {a.only!r}") from None
    if a.out and Path(a.out).with_suffix(".json").is_file():  # the earlier report: the cache, and --only's base
        try:
            previous = json.loads(Path(a.out).with_suffix(".json").read_text())
        except json.JSONDecodeError as e:
            if not a.fresh:
                raise ValueError(f"--out: {Path(a.out).with_suffix('.json')} is not valid JSON ({e}); move it "
                                 "away or give --fresh") from None
    report = run_audit(smoke=a.smoke, data_root=a.data_root, inception_weights=a.inception_weights,
                       progress=lambda msg: print(f"[audit] {msg}", file=sys.stderr, flush=True),
                       only=only, previous=previous, fresh=a.fresh)
    md = to_markdown(report)
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(md)
        out.with_suffix(".json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        print(f"jeat audit: wrote {out} and {out.with_suffix('.json')}", file=sys.stderr)
    print(json.dumps(report, indent=2, ensure_ascii=False) if a.json else md)
    return 0


def _lens(a: argparse.Namespace) -> int:
    # the paper and explore layers (matplotlib, the zoo) load only for this command
    from jeat_core.explore.lens import report

    # the paper and explore layers (matplotlib, the zoo) load only for this command
    from jeat_core.explore.lens_stages import check_name, chosen_stages, sizes_for

    stages = [s.strip() for s in a.stages.split(",") if s.strip()] if a.stages else None
    sizes = sizes_for(a.size, autoattack=a.autoattack)
    chosen_stages(stages, sizes)  # the settings first, before loading anything
    check_name(a.name)
    dev = a.device or "cpu"
    user = load_user_model(model_def=a.model_def, model=a.model, weights=a.weights, normalize=a.normalize, name=a.name,
                device=dev, data_root=a.data_root)
    print(f"[lens] {user.name}: {sum(p.numel() for p in user.model.parameters()):,} parameters, sizes {sizes.name}:",
          file=sys.stderr)
    for stage, what in sizes.table():
        print(f"[lens]   {stage:>10}: {what}", file=sys.stderr)
    rep = report(user, a.out, sizes=sizes, stages=stages, device=dev, data_root=a.data_root,
                 progress=not a.no_progress, say=lambda msg: print(f"[lens] {msg}", file=sys.stderr, flush=True))
    out = Path(a.out)
    times = {s: {"seconds": r["seconds"], "cached": r["cached"]} for s, r in rep["stages"].items()}
    print(json.dumps({"out": str(out), "html": str(out / "report.html"), "wall_seconds": rep["wall_seconds"],
                      "stages": times}))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``jeat train: error: argument --eps: '8' must be <= 1``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="jeat", description="Energy view of robust classifiers (JEAT, ICCV 2021).")
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train a classifier with one of the paper's methods (or TRADES)")
    t.add_argument("--method", required=True, choices=registry.METHODS)
    t.add_argument("--data-root", help="folder with train.npz/test.npz (default: $JEAT_DATA)")
    t.add_argument("--out", help="output folder (default runs/<method>); must be empty unless --resume/--overwrite")
    t.add_argument("--resume", action="store_true", help="continue from OUT/state.pt")
    t.add_argument("--overwrite", action="store_true", help="replace a previous run in OUT")
    t.add_argument("--device", type=device_arg, help="cpu, cuda, cuda:1 (default: cuda when available)")
    t.add_argument("--no-progress", action="store_true")
    for o, _ in train_options().values():  # the config fields, from the method registry
        _add_option(t, o)
    t.set_defaults(func=_train)

    e = sub.add_parser("eval", help="clean and robust accuracy of a checkpoint")
    e.add_argument("--model", required=True, help="checkpoint folder or shipped name (cifar10-cpu/jeat)")
    e.add_argument("--attack", default="pgd20", choices=ATTACKS,
                   help="pgd20: the paper's; pgd100-5: PGD-100 with 5 random restarts; autoattack: standard L∞ "
                        "AutoAttack (APGD-CE, APGD-T, FAB-T, Square 5,000 queries; needs torchattacks)")
    e.add_argument("--eps", type=pixel, default=8 / 255, help="attack radius in [0, 1], e.g. 8/255")
    e.add_argument("--n", type=integer(1, 10 ** 7), default=None, help="number of test images (default all)")
    e.add_argument("--batch-size", type=batch_int, default=250,
                   help="images per batch (autoattack and pgd<k>-<r> save their progress after each, and resume)")
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
    f.add_argument("--only", help="comma-separated items, e.g. claims,fig6_generation_by_model (default: all)")
    f.add_argument("--data-root")
    f.set_defaults(func=_figures)

    u = sub.add_parser("audit", help="measure each claim of the paper on the shipped models")
    u.add_argument("--smoke", action="store_true", help="tiny sizes (minutes): checks the pipeline, not the claims")
    u.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    u.add_argument("--out", help="also write the Markdown here (and the JSON beside it), e.g. figures/audit.md")
    u.add_argument("--inception-weights", help="offline torch-fidelity Inception weights for real IS/FID")
    u.add_argument("--only", help="re-measure these claims (e.g. 8,10) whatever the cache says; the others are "
                                  "kept from the report at --out where their inputs are unchanged")
    u.add_argument("--fresh", action="store_true",
                   help="measure every claim; by default a claim whose inputs (code, settings, data, the "
                        "checkpoints it read) are unchanged is kept from the report at --out")
    u.add_argument("--data-root")
    u.set_defaults(func=_audit)

    _lens_parser(sub)
    return p


def _lens_parser(sub) -> None:
    """``jeat lens``'s options (docs/lens.md)."""
    lz = sub.add_parser("lens", help="your own CIFAR-10 classifier under the energy lens, beside the shipped models")
    src = lz.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-def", help="FILE.py:FUNCTION that builds the network (called with no arguments)")
    src.add_argument("--model", help="a shipped name (cifar10-cpu/at) or a `jeat train` run folder")
    lz.add_argument("--weights", help="with --model-def: safetensors or a weights-only PyTorch file (a state dict, "
                                      "or one under 'state_dict'/'model'; 'module.' prefixes are removed)")
    lz.add_argument("--normalize", help="when the model expects normalised inputs: 'cifar10' or m,m,m:s,s,s "
                                        "(default: it takes [0, 1] images)")
    lz.add_argument("--name", default=None, help="what the report calls the model (default: yours)")
    size = lz.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="size", action="store_const", const="quick",
                      help="CPU sizes (default; a WideResNet-28-10 in under 15 minutes on 2 cores)")
    size.add_argument("--full", dest="size", action="store_const", const="full", help="the audit's sizes (a GPU)")
    size.add_argument("--smoke", dest="size", action="store_const", const="smoke", help="tiny sizes (tests)")
    lz.set_defaults(size="quick")
    lz.add_argument("--stages", help="comma list of energy, attacks, landscape, fisher, generation, autoattack "
                                     "(default: all but autoattack, which --full and --autoattack add)")
    lz.add_argument("--autoattack", action=argparse.BooleanOptionalAction, default=None,
                    help="also run standard AutoAttack on the model (needs torchattacks; slow on a CPU)")
    lz.add_argument("--out", default="lens-report", help="report folder (resumes the stages cached there)")
    lz.add_argument("--device", type=device_arg)
    lz.add_argument("--data-root")
    lz.add_argument("--no-progress", action="store_true")
    lz.set_defaults(func=_lens)


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        text = f"{e.strerror}: {e.filename}"
    else:
        text = str(e) or type(e).__name__
    return " ".join(text.split())


PASSTHROUGH = {"tune-samplers": (".experiments", "tune_main"), "train-evaluator": (".evaluator", "main")}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in PASSTHROUGH:  # sub-commands with their own parser (`jeat tune-samplers --help`)

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
    except (ValueError, OSError, DataNotFoundError, CheckpointError, PeerLibraryMissing) as e:
        print(f"jeat {a.cmd}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"jeat {a.cmd}: {_one_line(e)}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        how = ("run the same command again to resume (finished stages are cached in --out)" if a.cmd == "lens" else
               "resume with --resume (the last checkpoint is kept)")
        print(f"jeat {a.cmd}: interrupted; {how}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

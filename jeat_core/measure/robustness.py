"""Strong robustness evaluation: AutoAttack, PGD with restarts, and a check for gradient masking.

PGD-20 (Tab. 3) only follows the input gradient. A model whose gradient is uninformative (zero,
shattered, saturated softmax) *looks* robust to it without being robust: gradient masking
(Athalye et al. 2018). Two stronger measurements guard against that:

* **AutoAttack** (Croce & Hein, ICML 2020), the standard L∞ version RobustBench reports: APGD-CE,
  then APGD-T (9 target classes), FAB-T (9 target classes), then Square (5,000 queries, no gradient
  at all). Each attack runs only on the points every previous one failed on, so the robust
  accuracy after the last stage is the per-example worst case over the four. The attacks are
  torchattacks' own classes (a maintained implementation, not ours), built one by one with the
  paper's 100 iterations for the white-box attacks (torchattacks' ``AutoAttack`` wrapper leaves
  them at its classes' 10-iteration default).
* **PGD-100 with 5 random restarts** (``"pgd100-5"``): our PGD (:func:`jeat_core.core.attacks.pgd`);
  an example is robust only if every restart fails. The cheap strong-gradient reference.

:func:`masking_check` compares, on the same images, a model's paired gap PGD-20 − AutoAttack with
that of adversarial training (AT), and asks whether the gradient-free Square finds what the three
gradient attacks could not.

A result of :func:`autoattack` / :func:`pgd_restarts` is the record ``jeat eval --record`` keeps:
the usual ``{"attack", "eps", "n", "clean_acc", "clean_ci", "robust_acc", "robust_ci"}`` plus
``"stages"`` (in order, a list of ``{"stage", "robust_acc", "robust_ci", "attacked"}``: the robust
accuracy after that stage, its Wilson CI and the number of points it attacked), ``"per_example"``
(``"clean"`` and each stage -> a string of ``0``/``1``, one character per image: still robust after
that stage; the last stage's string is the worst case per example),
``"seconds"`` (wall time) and ``"settings"``.

Both are resumable: given ``partial=PATH``, the cascade stores its per-example results after every
batch (atomically) and, run again with the same model weights, images, labels and settings, skips
the batches already done. Each batch's attacks are seeded from the batch itself (torchattacks seeds
every call; our PGD restarts reseed per batch), so a resumed result equals an uninterrupted one.
``jeat eval`` keeps that file under ``$JEAT_CACHE`` (default ``~/.cache/jeat``) ``/evals`` and
removes it when the measurement is complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor

from jeat_core.core import rng
from jeat_core.core.attacks import check_images, frozen, pgd
from jeat_core.core.checkpoints import atomic_write_bytes
from jeat_core.core.energy import check_label_range, check_labels
from jeat_core.measure import stats
from jeat_core.measure.stats import percentile_ci, wilson_interval

AA_STAGES = ("apgd-ce", "apgd-t", "fab-t", "square")  # the standard version, in RobustBench's order
PEER = "torchattacks==3.5.1"
# --no-deps: torchattacks 3.5.1 pins requests~=2.25.1, older than jupyterlab-server's
INSTALL_PEER = f"pip install --no-deps {PEER}"


class PeerLibraryMissing(ImportError):
    """A measurement needs the peer library torchattacks, which is not installed."""


def require_torchattacks():
    """The ``torchattacks`` module, or :class:`PeerLibraryMissing` naming the command that installs it."""
    try:
        import torchattacks  # optional peer library (the attacks extra)
    except ImportError as e:
        raise PeerLibraryMissing(f"this needs torchattacks, which is not installed; run {INSTALL_PEER}") from e
    return torchattacks


def have_torchattacks() -> bool:
    try:
        require_torchattacks()
    except PeerLibraryMissing:
        return False
    return True


# ----------------------------------------------------------------------------- the cascade
@contextlib.contextmanager
def _own_rng(device: torch.device) -> Iterator:
    """torchattacks seeds torch's global generators; restore them afterwards (no hidden state change)."""
    cuda = device.type == "cuda"
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if cuda else []
    with torch.random.fork_rng(devices=devices):
        yield


def _checked(name: str, xa: Tensor, x: Tensor, eps: float) -> Tensor:
    """``xa`` after checking it is a valid attack on ``x``: in [0, 1] and in the ε-ball. Non-finite
    rows (an attack dividing by a zero gradient) are replaced by ``x``: that attack failed there."""
    bad = ~torch.isfinite(xa.flatten(1)).all(1)
    if bad.any():
        xa = torch.where(bad.view(-1, *[1] * (x.dim() - 1)), x, xa)
    dist = float((xa - x).abs().amax()) if len(x) else 0.0
    if dist > eps + 1e-5 or float(xa.min()) < 0 or float(xa.max()) > 1:
        raise RuntimeError(f"{name} returned a point outside the threat model (L∞ distance {dist:.6f}, eps {eps:.6f})")
    return xa


def fingerprint(model, x: Tensor, y: Tensor, settings: dict) -> str:
    """sha256 of the model's parameters and buffers, the images, the labels and ``settings``: what a
    partial result must match to be resumed."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    for t in (x, y):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _read_partial(path: Path | None, key: str, names: list[str]) -> tuple[int, dict[str, str], float]:
    """``(images done, per-stage bit strings, seconds spent)`` of a matching partial result, else nothing."""
    if path is None or not path.exists():
        return 0, {}, 0.0
    try:
        d = json.loads(path.read_text())
        done, bits = int(d["done"]), {k: str(d["per_example"][k]) for k in names}
        ok = d["fingerprint"] == key and all(len(b) == done for b in bits.values())
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        print(f"[eval] ignoring {path}: it belongs to another model, image set or setting", file=sys.stderr)
        return 0, {}, 0.0
    return done, bits, float(d.get("seconds", 0.0))


def cascade(model, x: Tensor, y: Tensor, stages: dict[str, Callable[[Tensor, Tensor], Tensor]], *, eps: float,
            batch_size: int = 250, progress: bool = False, desc: str = "attack",
            begin_batch: Callable[[int], None] | None = None, partial: Path | None = None,
            settings: dict | None = None, info: dict | None = None) -> dict[str, Tensor]:
    """Run ``stages`` (name -> ``attack(x, y) -> x_adv``) in order, each only on the points still robust.

    A point is robust after a stage when it was classified correctly clean and after every attack
    so far. Returns ``{"clean": (N,) bool, <stage>: (N,) bool, ...}`` (CPU): the cumulative
    robustness after each stage; the last is the worst case over all stages. The stage ``k`` ran on
    exactly the points robust after stage ``k − 1`` (:func:`single_attack`). The parameters of
    ``model`` are frozen meanwhile (FAB calls ``.backward()``) and torch's global RNG is restored.

    ``begin_batch(i)`` is called before the batch starting at image ``i`` (to seed it). With
    ``partial`` (a JSON path) the results so far are saved after every batch and a matching earlier
    file (same :func:`fingerprint` of model, images, labels, ``settings``) is resumed; ``info``
    receives ``{"seconds": wall time of the cascade, earlier runs of a resumed one included}``.
    """
    check_images(x)
    y = check_labels(y, x, name="y")
    names = ["clean", *stages]
    masks = {k: torch.zeros(len(x), dtype=torch.bool) for k in names}
    key = fingerprint(model, x, y, {**(settings or {}), "stages": list(stages), "eps": eps,
                                    "batch_size": batch_size}) if partial is not None else ""
    done, bits, seconds = _read_partial(partial, key, names)
    for k, b in bits.items():
        masks[k][:done] = from_bits(b)
    if done:
        print(f"[eval] resuming {desc}: {done} of {len(x)} images already done ({partial})", file=sys.stderr)
    t0 = time.perf_counter()
    batches = range(done, len(x), batch_size)
    bar = None
    if progress:
        from tqdm.auto import tqdm  # progress bars: loaded only when asked for

        bar = batches = tqdm(batches, desc=desc, unit="batch", file=sys.stderr)
    with frozen(model), _own_rng(x.device):
        for i in batches:
            if begin_batch is not None:
                begin_batch(i)
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            with torch.no_grad():
                logits = model(xb)
            check_label_range(yb, logits.shape[-1])
            robust = logits.argmax(1) == yb  # (B,)
            masks["clean"][i:i + len(xb)] = robust.cpu()
            for name, attack in stages.items():
                idx = robust.nonzero().squeeze(1)
                if bar is not None:
                    bar.set_postfix(stage=name, robust=f"{len(idx)}/{len(xb)}")
                if len(idx):
                    xa = _checked(name, attack(xb[idx], yb[idx]).detach(), xb[idx], eps)
                    with torch.no_grad():
                        robust[idx] = model(xa).argmax(1) == yb[idx]
                masks[name][i:i + len(xb)] = robust.cpu()
            if partial is not None:  # after every batch: an interrupted evaluation loses at most one batch
                end = i + len(xb)
                atomic_write_bytes(partial, json.dumps({
                    "fingerprint": key, "done": end, "seconds": seconds + time.perf_counter() - t0,
                    "per_example": {k: to_bits(v[:end]) for k, v in masks.items()}}).encode())
    if info is not None:
        info["seconds"] = seconds + time.perf_counter() - t0
    return masks


def single_attack(masks: dict[str, Tensor]) -> dict[str, tuple[Tensor, Tensor]]:
    """Per stage ``(ran, robust)``: the points it attacked (robust after the previous stage) and,
    among those, the ones it failed on."""
    names = list(masks)
    return {b: (masks[a], masks[b] & masks[a]) for a, b in zip(names, names[1:])}


def to_bits(mask: Tensor) -> str:
    return "".join("1" if v else "0" for v in mask.tolist())


def from_bits(bits: str) -> Tensor:
    if set(bits) - {"0", "1"}:
        raise ValueError("a per-example string holds only 0 and 1")
    return torch.tensor([c == "1" for c in bits], dtype=torch.bool)


def summarize(attack: str, masks: dict[str, Tensor], *, eps: float, seconds: float, settings: dict) -> dict:
    """The record of a cascade (module docstring): per-stage robust accuracy with Wilson CIs, the
    per-example strings, the wall time."""
    n = len(masks["clean"])
    names = [k for k in masks if k != "clean"]
    k_clean, k_final = int(masks["clean"].sum()), int(masks[names[-1]].sum())
    stages = []
    for name, (ran, _) in single_attack(masks).items():
        k = int(masks[name].sum())
        stages.append({"stage": name, "robust_acc": k / max(n, 1), "robust_ci": list(wilson_interval(k, n)),
                       "attacked": int(ran.sum())})
    return {"attack": attack, "eps": eps, "n": n, "clean_acc": k_clean / max(n, 1),
            "clean_ci": list(wilson_interval(k_clean, n)), "robust_acc": k_final / max(n, 1),
            "robust_ci": list(wilson_interval(k_final, n)), "stages": stages,
            "per_example": {k: to_bits(v) for k, v in masks.items()}, "seconds": round(seconds, 2),
            "settings": settings}


def masks_of(record: dict) -> dict[str, Tensor]:
    """The per-example masks (``"clean"`` then each stage) of a recorded cascade."""
    if "per_example" not in record:
        raise ValueError(f"the {record.get('attack')} record holds no per-example results")
    order = ["clean", *(s["stage"] for s in record["stages"])]  # a manifest sorts its keys; the list keeps the order
    return {k: from_bits(record["per_example"][k]) for k in order}


# ----------------------------------------------------------------------------- the two attacks
STANDARD_BUDGET = {"steps": 100, "n_queries": 5000}  # standard AutoAttack: white-box iterations, Square queries


def is_standard(record: dict) -> bool:
    """Did a recorded AutoAttack run with the standard budget (:data:`STANDARD_BUDGET`)?"""
    cfg = record.get("settings", {})
    return all(cfg.get(k) == v for k, v in STANDARD_BUDGET.items())


def autoattack_stages(model, *, eps: float, n_classes: int, steps: int = 100, n_queries: int = 5000,
                      seed: int = 0) -> dict[str, Callable[[Tensor, Tensor], Tensor]]:
    """torchattacks' four attacks of standard AutoAttack (L∞), one restart each, fixed seeds."""
    ta = require_torchattacks()
    common = {"norm": "Linf", "eps": eps, "seed": seed}
    return {"apgd-ce": ta.APGD(model, steps=steps, n_restarts=1, loss="ce", **common),
            "apgd-t": ta.APGDT(model, steps=steps, n_restarts=1, n_classes=n_classes, **common),
            "fab-t": ta.FAB(model, steps=steps, n_restarts=1, multi_targeted=True, n_classes=n_classes, **common),
            "square": ta.Square(model, n_queries=n_queries, n_restarts=1, **common)}


def autoattack(model, x: Tensor, y: Tensor, *, eps: float = 8 / 255, steps: int = 100, n_queries: int = 5000,
               seed: int = 0, batch_size: int = 250, progress: bool = False, partial: Path | None = None) -> dict:
    """Standard L∞ AutoAttack (APGD-CE, APGD-T, FAB-T, Square) on ``(x, y)``, as RobustBench runs it.

    ``steps`` (100) are the white-box attacks' iterations, ``n_queries`` (5,000) Square's; other values
    are recorded in ``"settings"`` (tests use small ones). Returns the record of :func:`summarize`
    (``"attack": "autoattack"``); its ``"robust_acc"`` is the worst case over the four attacks.
    ``partial``: resume file (module docstring); ``"seconds"`` then counts the earlier runs too.
    """
    check_images(x)
    with torch.no_grad():
        n_classes = int(model(x[:1]).shape[-1])
    stages = autoattack_stages(model, eps=eps, n_classes=n_classes, steps=steps, n_queries=n_queries, seed=seed)
    import torchattacks  # optional peer library (the attacks extra)

    settings = {"version": "standard", "norm": "Linf", "steps": steps, "n_queries": n_queries, "seed": seed,
                "batch_size": batch_size, "library": f"torchattacks {torchattacks.__version__}"}
    info: dict = {}
    masks = cascade(model, x, y, stages, eps=eps, batch_size=batch_size, progress=progress, desc="autoattack",
                    partial=partial, settings=settings, info=info)
    return summarize("autoattack", masks, eps=eps, seconds=info["seconds"], settings=settings)


def pgd_restarts(model, x: Tensor, y: Tensor, *, n_steps: int = 100, restarts: int = 5, objective: str = "ce",
                 eps: float = 8 / 255, step_size: float = 2 / 255, seed: int = 0, batch_size: int = 250,
                 progress: bool = False, partial: Path | None = None) -> dict:
    """L∞ PGD with ``n_steps`` steps from ``restarts`` random starts (:func:`jeat_core.core.attacks.pgd`);
    an example is robust only if every restart fails (each restart attacks only the points all earlier
    ones failed on). Stages ``"restart-1"`` ... in the record of :func:`summarize`. The random starts
    of the batch beginning at image ``i`` come from a generator seeded with ``seed + i`` (so a batch's
    result does not depend on the batches before it, and ``partial`` can resume)."""
    g = torch.Generator()

    def run(xb: Tensor, yb: Tensor) -> Tensor:
        return pgd(model, xb, yb, eps=eps, step_size=step_size, n_steps=n_steps, objective=objective, generator=g)

    name = f"{'energy-' if objective == 'energy' else ''}pgd{n_steps}-{restarts}"
    settings = {"n_steps": n_steps, "restarts": restarts, "step_size": step_size, "objective": objective, "seed": seed,
                "batch_size": batch_size}
    info: dict = {}
    masks = cascade(model, x, y, {f"restart-{r + 1}": run for r in range(restarts)}, eps=eps, batch_size=batch_size,
                    progress=progress, desc=name, begin_batch=lambda i: g.manual_seed(seed + i), partial=partial,
                    settings=settings, info=info)
    return summarize(name, masks, eps=eps, seconds=info["seconds"], settings=settings)


def peer_attacks(model, x: Tensor, y: Tensor, *, apgd_steps: int = 50, eps: float = 8 / 255,
                 batch_size: int = 250) -> dict:
    """Accuracy under torchattacks' PGD-20 (step 2/255, random start) and APGD-CE (``apgd_steps``, seed 0) on
    the same images: the audit's cross-check of our PGD (:class:`PeerLibraryMissing` without torchattacks)."""
    ta = require_torchattacks()
    out = {}
    for name, atk in [("torchattacks_pgd20", ta.PGD(model, eps=eps, alpha=2 / 255, steps=20, random_start=True)),
                      ("apgd_ce", ta.APGD(model, eps=eps, steps=apgd_steps, loss="ce", n_restarts=1, seed=0))]:
        correct = 0
        for i in range(0, len(x), batch_size):
            xa = atk(x[i:i + batch_size], y[i:i + batch_size])
            with torch.no_grad():
                correct += int((model(xa).argmax(1) == y[i:i + batch_size]).sum())
        out[name] = correct / len(x)
    return out


# ----------------------------------------------------------------------------- masking check
MASKING = ("masking", "no masking sign", "inconclusive")


def _paired_boot(cols: dict[str, Tensor], *, n_boot: int, g: torch.Generator) -> dict[str, Tensor]:
    """``n_boot`` bootstrap replicates of the means of per-image values, all columns resampled with
    the same images (paired)."""
    n = len(next(iter(cols.values())))
    boots: dict[str, list[Tensor]] = {k: [] for k in cols}
    for start in range(0, n_boot, 100):
        idx = rng.randint(0, n, (min(100, n_boot - start), n), generator=g)  # (b, n)
        for k, v in cols.items():
            boots[k].append(v[idx].mean(1))
    return {k: torch.cat(b) for k, b in boots.items()}


def _masking_columns(model: dict[str, Tensor], reference: dict[str, Tensor]) -> dict[str, Tensor]:
    """The per-image quantities of :func:`masking_check` for one model run and its reference run."""
    need = ("pgd20", "clean", *AA_STAGES)
    for who, d in (("model", model), ("reference", reference)):
        missing = [k for k in need if k not in d]
        if missing:
            raise ValueError(f"masking_check: the {who} lacks {', '.join(missing)}")
    n = min(len(v) for d in (model, reference) for v in (d[k] for k in need))
    m = {k: model[k][:n].double() for k in need}
    r = {k: reference[k][:n].double() for k in need}
    gap, ref_gap = m["pgd20"] - m["square"], r["pgd20"] - r["square"]
    only_square = m["fab-t"] * (1 - m["square"])
    by_ce = m["clean"] * (1 - m["apgd-ce"])
    return {"gap": gap, "reference_gap": ref_gap, "excess": gap - ref_gap, "square_minus_apgd_ce": only_square - by_ce,
            "only_square": only_square, "by_apgd_ce": by_ce, "pgd20": m["pgd20"], "autoattack": m["square"],
            "reference_pgd20": r["pgd20"], "reference_autoattack": r["square"]}


def masking_check(model: dict[str, Tensor] | list[dict[str, Tensor]],
                  reference: dict[str, Tensor] | list[dict[str, Tensor]], *, square_bound: float = 0.01,
                  n_boot: int = 2000, seed: int = 0) -> dict:
    """Is a model's robustness gradient masking? Compared with a reference (adversarial training).

    ``model`` and ``reference``: per-example robustness ``(N,)`` bool on the same first ``N`` test
    images (the shorter is cut to the other's length): ``"pgd20"`` and the AutoAttack cascade's
    masks (``"clean"``, ``"apgd-ce"``, ``"apgd-t"``, ``"fab-t"``, ``"square"``; :func:`masks_of`).
    Or two lists of such dicts, one per training run, paired by position (run k of the model with
    run k of the reference, e.g. the same training seed; each pair on its own common images).

    * **gap** = PGD-20 − AutoAttack robust accuracy, from the per-image differences; **excess** =
      the model's gap − the reference's, per image (so the images' difficulty cancels).
    * **only square** = share of images only Square broke, after the three gradient attacks failed.
      A model whose gradients mislead leaves points that a gradient-free attack breaks.

    The rule (``docs/evaluation.md``, *The masking check*):

    * the **tolerance** is the reference's own gap (mean over its runs): what PGD-20 overstates on a
      model trained not to mask. Masking means the model's gap exceeds the reference's by more than
      that, i.e. PGD-20 overstates its robustness more than twice as much;
    * Square is judged by the **upper 95% Wilson bound** on the only-square share (all runs' images
      pooled) against ``square_bound`` (1 point: one robust point in a hundred that only a
      gradient-free search finds);
    * ``"masking"`` when the excess interval's lower end exceeds the tolerance or the only-square
      share's *lower* Wilson bound exceeds ``square_bound``; ``"no masking sign"`` when the excess
      interval's upper end is at most the tolerance and the only-square upper bound at most
      ``square_bound``; ``"inconclusive"`` otherwise.

    Intervals: with one run pair, a paired percentile bootstrap over images (``n_boot`` resamples,
    the same images for every quantity); with two or more, the run level (:func:`stats.paired`: a t
    interval on the run pairs' mean excesses, R − 1 df), each pair's value already averaging its
    images. ``square_minus_apgd_ce`` (only square − the share APGD-CE broke) is kept as a diagnostic.
    """
    runs_m = model if isinstance(model, list) else [model]
    runs_r = reference if isinstance(reference, list) else [reference]
    if not runs_m or len(runs_m) != len(runs_r):
        raise ValueError(f"masking_check pairs runs: got {len(runs_m)} model and {len(runs_r)} reference runs")
    cols = [_masking_columns(m, r) for m, r in zip(runs_m, runs_r)]
    s = len(cols)
    ci_keys = ("gap", "reference_gap", "excess", "square_minus_apgd_ce")
    out = {"n": len(cols[0]["gap"])}
    for k in cols[0]:
        out[k] = sum(float(c[k].mean()) for c in cols) / s
    if s == 1:
        boot = _paired_boot({k: cols[0][k] for k in ci_keys}, n_boot=n_boot, g=torch.Generator().manual_seed(seed))
        for k in ci_keys:
            out[k + "_ci"] = list(percentile_ci(boot[k]))
        out["interval"] = f"paired percentile bootstrap over images, {n_boot} resamples"
    else:
        for k in ci_keys:  # run pair r: its mean over its own images; a one-sample t over the pairs
            out[k + "_ci"] = list(stats.paired([float(c[k].mean()) for c in cols], [0.0] * s).ci())
        out["training_runs"], out["n_per_run"] = s, [len(c["gap"]) for c in cols]
        out["runs_excess"] = [float(c["excess"].mean()) for c in cols]
        out["interval"] = f"{stats.METHODS['paired']} ({s} run pairs, {s - 1} df)"
    hits = sum(int(c["only_square"].sum()) for c in cols)
    total = sum(len(c["only_square"]) for c in cols)
    sq_lo, sq_hi = wilson_interval(hits, total)
    out.update(tolerance=out["reference_gap"], only_square_ci=[sq_lo, sq_hi], square_bound=square_bound)
    excess = out["excess_ci"]
    if excess[0] > out["tolerance"] or sq_lo > square_bound:
        out["verdict"] = "masking"
    elif excess[1] <= out["tolerance"] and sq_hi <= square_bound:
        out["verdict"] = "no masking sign"
    else:
        out["verdict"] = "inconclusive"
    return out

"""Numbers the notebooks' explanations quote, read from the files they come from (a presenter, like
:mod:`jeat_core.paper.verdicts`: it measures nothing new).

A notebook's markdown never types a number that a JSON file or a manifest holds; a code cell prints
it through one of these: :func:`audit_claim` and :func:`audit_settings` (a claim of ``figures/audit.json``, its sizes),
:func:`seed_baseline` (how often the evaluator already classifies class-Gaussian seeds right),
:func:`peer_attack_gap` (how far torchattacks' PGD-20 and APGD-CE land from ours, audit claim 8),
:func:`recorded_accuracy` (a manifest's evaluation record), :func:`sampler_rows` (each model's tuned
sampler beside exact Langevin's noise) and :func:`seed_row` (the seeds as a row of a generation
table). Each returns ``None`` (or leaves a row out) when its source does not have the number, so a
notebook run on the test zoo or after the audit's format changes still runs.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import torch
from torch import Tensor

from jeat_core.core.checkpoints import find_eval
from jeat_core.core.sampling import sampler_for
from jeat_core.measure.stats import wilson_interval
from jeat_core.paper.claims import AUDIT
from jeat_core.paper.experiments import independent_judge


def say(text: str, width: int = 100) -> None:
    """Print a sentence of a notebook's prose wrapped at word boundaries (JupyterLab breaks a long
    output line anywhere, even inside a word)."""
    print(textwrap.fill(text, width))


def _claims(path: str | Path | None = None) -> list[dict]:
    p = Path(path) if path is not None else AUDIT
    return json.loads(p.read_text())["claims"] if p.is_file() else []


def audit_settings(path: str | Path | None = None) -> dict:
    """The sizes ``jeat audit`` ran at (``settings`` of ``figures/audit.json``: ``n_fisher``, ``n_probes``,
    ``n_attack``, ...), ``{}`` when there is no audit file."""
    p = Path(path) if path is not None else AUDIT
    return json.loads(p.read_text()).get("settings", {}) if p.is_file() else {}


def audit_claim(claim_id: int, path: str | Path | None = None) -> dict | None:
    """The record of claim ``claim_id`` in ``figures/audit.json`` (or ``path``), ``None`` if absent."""
    return next((c for c in _claims(path) if c.get("id") == claim_id), None)


def _find(obj, key: str):
    """The first value under ``key`` anywhere in nested dicts/lists (depth first), else ``None``."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        items = obj.values()
    elif isinstance(obj, list):
        items = obj
    else:
        return None
    for v in items:
        found = _find(v, key)
        if found is not None:
            return found
    return None


def seed_baseline(path: str | Path | None = None) -> dict | None:
    """The class-Gaussian seeds' baseline of the generation claims (``baselines.seeds``: the evaluator's
    accuracy on the seeds, ``eval_acc``, and their KID), with ``n`` the claim's number of images; ``None``
    when the audit holds no such record."""
    for c in _claims(path):
        sets = (c.get("ours") or {}).get("sets") if isinstance(c.get("ours"), dict) else None
        if isinstance(sets, dict) and "class-Gaussian seeds" in sets:  # the protocol of docs/evaluation.md
            row = sets["class-Gaussian seeds"]
            primary = row[c["ours"]["spaces"][0]]
            return {"eval_acc": primary["eval_acc"], "eval_acc_ci": primary["eval_acc_ci"], "kid": primary["kid"],
                    "space": c["ours"]["spaces"][0], "n": c.get("n")}
        base = _find(c, "baselines")
        seeds = base.get("seeds") if isinstance(base, dict) else None
        if isinstance(seeds, dict) and "eval_acc" in seeds:
            return {**seeds, "n": c.get("n")}
    return None


def peer_attack_gap(path: str | Path | None = None) -> dict | None:
    """Audit claim 8's cross-check: ``{"gap": largest |peer − ours| robust accuracy, "model": where,
    "n": images}`` over torchattacks' PGD-20 and APGD-CE; ``None`` when the peers were not run."""
    rec = audit_claim(8, path)
    if rec is None:
        return None
    gaps = [(abs(r[k] - r["robust"]), name) for name, r in rec["ours"].items()
            if isinstance(r, dict) and "robust" in r for k in ("torchattacks_pgd20", "apgd_ce") if k in r]
    if not gaps:
        return None
    gap, model = max(gaps)
    return {"gap": gap, "model": model, "n": rec.get("n")}


def recorded_accuracy(manifest: dict, attack: str = "none") -> dict | None:
    """A manifest's evaluation record of ``attack`` (``jeat eval --record``) as ``{"acc", "ci", "n"}``:
    the clean accuracy for ``"none"``, the robust one otherwise; ``ci`` the stored 95% Wilson interval,
    else one computed from ``acc`` and ``n``. ``None`` without a record."""
    rec = find_eval(manifest, attack)
    if not rec:
        return None
    field = "clean_acc" if attack == "none" else "robust_acc"
    ci = rec.get(field.replace("acc", "ci")) or wilson_interval(round(rec[field] * rec["n"]), rec["n"])
    return {"acc": rec[field], "ci": tuple(ci), "n": rec["n"]}


def sampler_rows(manifests: dict, energies=("joint", "ce")) -> list[dict]:
    """One row per (model, energy) with a tuned sampler (``manifest["sampler"]``): the step rule, η, K, the
    noise s, and for Langevin steps the noise exact Langevin would add, √η (Eq. 9/17)."""
    rows = []
    for name, man in manifests.items():
        for energy in energies:
            if not ((man or {}).get("sampler") or {}).get(energy):
                continue
            c = sampler_for(man, energy)
            rows.append({"model": name, "energy": "Eq. 17, E(x,y)" if energy == "joint" else "Eq. 16, E(x,y) − E(x)",
                         "step": c.step, "η": c.step_size, "K": c.n_steps, "noise s": c.noise_std,
                         "exact Langevin √η": math.sqrt(c.step_size) if c.step == "langevin" else "— (no noise term)"})
    return rows


def seed_row(seeds: Tensor, labels: Tensor, *, loaded: dict | None = None, panel: str = "seeds (start)") -> dict:
    """The seeds as a row of :func:`jeat_core.explore.figures.generation_table`: nothing moved, their clipped pixels,
    and p(y | x) of the intended class by the same independent classifier that scores the generated rows."""
    name, judge = independent_judge("", loaded)
    p: float | str = "—"
    if judge is not None:
        with torch.no_grad():
            p = float(judge(seeds).softmax(1).gather(1, labels[:, None]).mean())
    sat = float(((seeds <= 1e-4) | (seeds >= 1 - 1e-4)).float().mean())
    return {"panel": panel, "moved L2": 0.0, "U before": "—", "U after": "—", "clipped pixels": sat,
            "p(y | x)": p, "scored by": name or "—", "chain": "— (the start)"}

"""The ablation table: each way our runs deviate from the paper, and what it changes, measured.

A :class:`Deviation` names the paper's way and ours as two (model, sampler family) sides and is measured
on shipped models only, one training run per side (every row says "one run"):

* **generation** — primary-ruler KID of the paper's side minus ours, the same ``10·per_class`` fresh
  class-Gaussian seeds and Langevin noise on both sides, each side with its own sampler of its family
  (``tuned``: the frozen protocol's; ``as-written``: Eq. 9's Langevin, noise √η), a paired bootstrap
  95% interval over seeds and reference images (:func:`jeat_core.measure.rulers.compare`);
* **robustness** — PGD-20 robust accuracy on the first ``n_pgd`` test images (L∞ 8/255, computed) and the
  recorded standard AutoAttack on the first ``n_aa``, the paper's side minus ours, a paired bootstrap over
  images (the same images on both sides); rows whose sides are one model (a sampler) skip it.

A deviation whose paper side is a training recipe that does not train here (Algorithm 1's stabilisers)
is read from the Algorithm-1 study instead (``figures/alg1_study.json``: without the stabiliser, does
the probe train?). A side that is not shipped, or a sampler family not yet tuned for it, leaves the row
"pending" with the reason: nothing is estimated from a stand-in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from jeat_core.core import rng
from jeat_core.core.checkpoints import CheckpointError
from jeat_core.measure import rulers
from jeat_core.measure.stats import percentile_ci
from jeat_core.paper.experiments import Context, generation_set, sampler_key
from jeat_core.paper.run_claims import autoattack_per_image, pgd20_per_image

ONE_RUN = "one run"  # every row: one training run per side
STUDY = Path(__file__).resolve().parents[2] / "figures" / "alg1_study.json"


@dataclass(frozen=True)
class Deviation:
    """One deviation: ``paper`` and ``ours`` in words, each side a ``(zoo name, sampler family)``;
    ``robustness``: whether the sides are two models (False when they differ only in the sampler);
    ``study_run``: for a stabiliser of Algorithm 1, the study's probe run without it."""

    name: str
    paper: str
    ours: str
    paper_side: tuple[str, str] | None = None
    our_side: tuple[str, str] | None = None
    robustness: bool = True
    study_run: str | None = None


DEVIATIONS: tuple[Deviation, ...] = (
    Deviation("AT's attack", "PGD-3 adversarial training (Madry et al. [18], k as the budget allows)",
              "FGSM with a random start (one step)", ("at-pgd3", "tuned"), ("at", "tuned")),
    Deviation("JEAT's training", "Algorithm 1 from scratch, weight 1 (its nearest stable variant)",
              "a fine-tune of PreJEAT at weight 0.1", ("jeat-alg1", "tuned"), ("jeat", "tuned")),
    Deviation("JEM's weight", "JEM at weight 1", "a fine-tune of the standard model at weight 0.1",
              ("jem", "tuned"), ("jem-lite", "tuned")),
    Deviation("sampler noise (JEAT)", "Langevin of Eq. 9, noise √η", "the tuned sampler (its noise tuned)",
              ("jeat", "as-written"), ("jeat", "tuned"), robustness=False),
    Deviation("sampler noise (AT)", "Langevin of Eq. 9, noise √η", "the tuned sampler (its noise tuned)",
              ("at", "as-written"), ("at", "tuned"), robustness=False),
    # Algorithm 1's stabilisers: the nearest stable variant without each (its leave-one-out probes)
    Deviation("energy L2", "no energy penalty", "λ (E(x⁺)² + E(x̃)²) with λ = 0.01", study_run="alg1-loo-energy-l2"),
    Deviation("replay buffer", "re-initialised from U(0, 1)", "re-initialised from class-Gaussian seeds",
              study_run="alg1-loo-uniform-buffer"),
)


def _paired_difference(a: torch.Tensor, b: torch.Tensor, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean of ``a − b`` over paired images with a percentile bootstrap 95% interval."""
    d = (a.double() - b.double())
    g = torch.Generator().manual_seed(seed)
    boot = torch.stack([d[rng.randint(0, len(d), (len(d),), generator=g)].mean() for _ in range(n_boot)])
    return {"diff": float(d.mean()), "ci": list(percentile_ci(boot)), "n": len(d),
            "paper_side": float(a.double().mean()), "ours": float(b.double().mean())}


def _missing(ctx: Context, side: tuple[str, str]) -> str | None:
    """Why a side cannot be measured yet (``None`` when it can)."""
    name, family = side
    try:
        manifest = ctx.model(name)[1]
    except CheckpointError:
        return f"{name} is not shipped yet"
    if sampler_key("joint", family) not in manifest.get("sampler", {}):
        return f"{name}'s {family} sampler is not tuned yet (`jeat tune-samplers --only {name} --family {family}`)"
    return None


def _generation(ctx: Context, dev: Deviation, per_class: int, n_boot: int) -> dict:
    (a, fa), (b, fb) = dev.paper_side, dev.our_side
    sets = [generation_set(ctx, name, "joint", per_class=per_class, family=fam) for name, fam in ((a, fa), (b, fb))]
    primary = rulers.primary()
    (kid,) = [c for c in rulers.compare(ctx, [sets[0]["images"]], [sets[1]["images"]], spaces=[primary],
                                        n_boot_kid=n_boot, fid=False) if c.metric == "kid"]
    rec = kid.record()
    return {"ruler": primary.name, "diff": rec["diff"], "ci": rec["ci"], "n": rec["n"],
            "samplers": {f"{a} ({fa})": sets[0]["sampler"], f"{b} ({fb})": sets[1]["sampler"]}}


def _robustness(ctx: Context, dev: Deviation, n_pgd: int, n_aa: int) -> dict:
    (a, _), (b, _) = dev.paper_side, dev.our_side
    out = {"pgd20": _paired_difference(pgd20_per_image(ctx, a, n_pgd), pgd20_per_image(ctx, b, n_pgd))}
    aa = [autoattack_per_image(ctx, name, n_aa) for name in (a, b)]
    out["autoattack"] = (_paired_difference(*aa) if all(m is not None for m in aa) else
                         {"pending": "no standard AutoAttack record on the first "
                                     f"{n_aa} images for {' and '.join(n for n, m in zip((a, b), aa) if m is None)}"})
    return out


def _from_study(dev: Deviation, study: dict | None) -> dict:
    row = next((r for r in (study or {}).get("runs", []) if r["run"] == dev.study_run), None)
    if row is None:
        return {"pending": f"the Algorithm-1 study's probe {dev.study_run} has not run yet"}
    return {"study_run": dev.study_run, "trains": row["trains"], "steps": row["steps"], "rollbacks": row["rollbacks"],
            "ce_last10": row["ce_last10"], "contrast_last10": row["contrast_last10"]}


def measure(ctx: Context, dev: Deviation, *, per_class: int = 100, n_pgd: int = 1000, n_aa: int = 500,
            n_boot: int = 2000, study: dict | None = None) -> dict:
    """One row of the table (see the module doc); ``study``: the Algorithm-1 study's JSON."""
    row = {"deviation": dev.name, "paper": dev.paper, "ours": dev.ours, "runs": ONE_RUN}
    if dev.study_run is not None:
        return {**row, "study": _from_study(dev, study)}
    row["sides"] = {"paper": list(dev.paper_side), "ours": list(dev.our_side)}
    why = [w for w in (_missing(ctx, dev.paper_side), _missing(ctx, dev.our_side)) if w]
    if why:
        return {**row, "pending": "; ".join(why)}
    row["kid"] = _generation(ctx, dev, per_class, n_boot)
    if dev.robustness:
        row.update(_robustness(ctx, dev, n_pgd, n_aa))
    return row


def ablation_rows(ctx: Context | None = None, *, deviations=DEVIATIONS, study_path: Path = STUDY,
                  progress=lambda msg: None, **sizes) -> list[dict]:
    """Every row of :data:`DEVIATIONS` (or ``deviations``) measured on ``ctx``'s models."""
    ctx = ctx or Context()
    study = json.loads(study_path.read_text()) if study_path.is_file() else None
    rows = []
    for dev in deviations:
        progress(f"{dev.name}: {dev.paper} vs {dev.ours}")
        rows.append(measure(ctx, dev, study=study, **sizes))
    return rows


def _interval(rec: dict | None, scale: float = 1.0, unit: str = "") -> str:
    if rec is None:
        return "—"
    if "pending" in rec:
        return f"pending: {rec['pending']}"
    lo, hi = (v * scale for v in rec["ci"])
    return f"{rec['diff'] * scale:+.3g}{unit} [{lo:+.3g}, {hi:+.3g}] (n = {rec['n']:,})"


def to_markdown(rows: list[dict]) -> str:
    """The table as Markdown: effects are the paper's way minus ours (KID lower is better; accuracy in points)."""
    lines = ["# Ablation: each deviation from the paper and its measured effect", "",
             "The paper's way minus ours, one training run per side (every row is **one run**): primary-ruler "
             "KID (lower is better; a negative difference means the paper's way generates better here), PGD-20 and "
             "AutoAttack robust accuracy in points; 95% paired bootstrap intervals. Rows about Algorithm 1's "
             "stabilisers read the study's probe without the stabiliser (figures/alg1_study.md). "
             "Made by `python tools/ablation_table.py`.", "",
             "| deviation | the paper | ours | Δ KID | Δ PGD-20 | Δ AutoAttack | runs |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "study" in r:
            s = r["study"]
            effect = s.get("pending") or (f"without it the probe {s['study_run']} "
                                          f"{'trains' if s['trains'] else 'does not train'} ({s['steps']} steps, "
                                          f"{s['rollbacks']} roll-backs, CE {s['ce_last10']:.3g})")
            cells = [f"pending: {effect}" if "pending" in s else effect, "—", "—"]
        elif "pending" in r:
            cells = [f"pending: {r['pending']}", "—", "—"]
        else:
            cells = [_interval(r["kid"]), _interval(r.get("pgd20"), 100, " pt"),
                     _interval(r.get("autoattack"), 100, " pt")]
        lines.append(f"| {r['deviation']} | {r['paper']} | {r['ours']} | " + " | ".join(cells) + f" | {r['runs']} |")
    return "\n".join(lines) + "\n"

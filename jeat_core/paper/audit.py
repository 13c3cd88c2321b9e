"""Reproduction audit: each claim of the paper as a measurement with uncertainty (``jeat audit``).

A claim is a small :class:`Claim`: the paper's statement and value, a ``measure`` function that
returns our numbers with their n and 95% intervals, and a verdict computed by one of the rules
below from those intervals — never from point estimates:

* **reproduced** — the interval of the tested quantity excludes the null in the paper's direction;
* **not reproduced** — it excludes the null in the other direction;
* **inconclusive** — the interval contains the null (we report n and the interval);
* **not measurable here** — a model is not shipped (the reason is given).

Generation claims (4-6) use the independent evaluator (:mod:`jeat_core.measure.evaluator`): unbiased KID
and FID on its features with bootstrap intervals, each model with its own best sampler (chosen on
validation seeds, see :mod:`jeat_core.paper.experiments`), beside the real-vs-real floor and the
class-Gaussian-seed baseline. IS/FID with Inception-v3 run through ``torch-fidelity`` when
``--inception-weights`` names an offline copy of its weights.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from jeat_core.core.checkpoints import ENERGY_LOG, CheckpointError, find_eval, resolve
from jeat_core.core.sampling import GenerationConfig
from jeat_core.measure import gen_eval, rulers
from jeat_core.measure.metrics import (
    bootstrap_ci,
    frechet_distance,
    inception_score,
    nearest_by_ssim,
    penultimate,
    proportion_difference_ci,
    robust_accuracy,
    wilson_interval,
)
from jeat_core.measure.robustness import (
    INSTALL_PEER,
    have_torchattacks,
    is_standard,
    masking_check,
    masks_of,
    peer_attacks,
)
from jeat_core.measure.verdict_rules import (
    VERDICTS,
    combine,
    equivalence_verdict,
    generation_claim_verdict,
    runs_claim_verdict,
    verdict_from_ci,
)
from jeat_core.paper import run_claims
from jeat_core.paper.experiments import (
    TEST_SEED,
    Context,
    describe,
    fisher_table,
    generation_set,
    landscape_numbers,
    public,
    read_energy_log,
    sampler_key,
)
from jeat_core.paper.paper_items import (
    FIG2_MODELS,
    FIG3_MODEL,
    FIG5_MODELS,
    FIG7_MODEL,
    MODEL_LABELS,
    TABLE1_MODEL,
    TABLE2_MODELS,
    recorded_autoattack,
)

__all__ = ["VERDICTS", "Claim", "CLAIMS", "run_audit", "to_markdown", "verdict_from_ci", "combine",
           "frechet_distance", "inception_score", "penultimate"]

# ----------------------------------------------------------------------------- verdict rules
def _ci(ci) -> list[float]:
    return [float(f"{v:.4g}") for v in ci]


# ----------------------------------------------------------------------------- claims
@dataclass(frozen=True)
class Settings:
    """Sample sizes of one audit run (``smoke`` shrinks every one of them)."""

    n_attack: int = 1000
    per_class: int = 100  # generated images per class and set (1,000 per set)
    n_fisher: int = 500
    n_probes: int = 2
    n_land: int = 50
    n_ssim: int = 50
    apgd_steps: int = 50
    kid_boot: int = gen_eval.KID_BOOT  # bootstrap resamples of a KID difference (generation claims)
    fid_boot: int = gen_eval.FID_BOOT
    max_gen_steps: int | None = None  # caps each sampler's K (smoke runs only)
    smoke: bool = False
    inception_weights: str | None = None

    @classmethod
    def smoke_run(cls) -> Settings:
        return cls(n_attack=64, per_class=3, n_fisher=8, n_probes=1, n_land=3, n_ssim=5, apgd_steps=5, kid_boot=200,
                   fid_boot=20, max_gen_steps=3, smoke=True)


@dataclass(frozen=True)
class Claim:
    """One claim of the paper: ``measure(ctx, settings, models)`` returns ``{"ours", "n", "verdict", "note"}``.

    ``models`` are the zoo names the claim compares, in the claim's order; this field is the one
    list of them (the measure reads it; where a claim is about a paper item, it is that item's list
    in :mod:`jeat_core.paper.paper_items`, which the notebooks read too)."""

    id: int
    claim: str
    paper: str
    metric: str
    models: tuple[str, ...]
    measure: Callable[[Context, Settings, tuple[str, ...]], dict]
    source: str = "paper"  # "paper": a claim the paper makes (in the tally); "added": a check of ours

    def run(self, ctx: Context, settings: Settings) -> dict:
        # a metric text may name the settings' sample sizes ({n} images, {pc} per class)
        metric = self.metric.format(n=10 * settings.per_class if self.id in GEN_PARTS else settings.n_attack,
                                    pc=settings.per_class, nl=settings.n_land)
        rec = {"id": self.id, "claim": self.claim, "paper": self.paper, "metric": metric, "source": self.source}
        try:
            for m in self.models:
                ctx.model(m)
            res = self.measure(ctx, settings, self.models)
        except CheckpointError as e:
            return {**rec, "ours": None, "n": 0, "reproduced": "not measurable here",
                    "note": f"model not shipped: {str(e).split(':')[0]}"}
        assert res["verdict"] in VERDICTS, res
        out = {**rec, "ours": res["ours"], "n": res["n"], "reproduced": res["verdict"], "note": res.get("note", "")}
        for key in ("parts", "training_seeds"):
            if key in res:
                out[key] = res[key]
        return out


def _accuracy_record(r: dict) -> dict:
    return {"clean": r["clean_acc"], "clean_ci": _ci(r["clean_ci"]), "robust": r["robust_acc"],
            "robust_ci": _ci(r["robust_ci"])}


TAB1_MARGIN = 0.02  # share of the clean accuracy: "as effective" if the attacks differ by at most 1 in 50 of it


def _tab1(ctx: Context, st: Settings, models: tuple[str, ...]) -> dict:
    """Claim 1 as an equivalence on the scale of the accuracies: the margin is 2% of the clean accuracy
    (:data:`TAB1_MARGIN`; one in fifty of the images the classifier gets right), not a fixed ±5 points,
    which on accuracies below 1% would decide nothing. Within the margin but with an interval excluding 0
    it is reproduced, qualified "weaker (or stronger), by a negligible amount"."""
    (name,) = models
    m, _ = ctx.model(name)
    x, y = ctx.test()
    x, y = x[:st.n_attack], y[:st.n_attack]
    ce = robust_accuracy(m, x, y, attack="pgd20")
    en = robust_accuracy(m, x, y, attack="energy-pgd20")
    n = len(x)
    diff = proportion_difference_ci(round(en["robust_acc"] * n), n, round(ce["robust_acc"] * n), n)
    margin = TAB1_MARGIN * ce["clean_acc"]
    v = combine([equivalence_verdict(diff, margin), verdict_from_ci(en["robust_ci"], -1, null=0.10)])
    qualifier = ("" if diff[0] <= 0 <= diff[1] or v != "reproduced" else
                 f"the energy attack is {'weaker' if diff[0] > 0 else 'stronger'}, by a negligible amount "
                 f"(its interval excludes 0 but lies within ±{margin:.2%})")
    return {"ours": {"ce_attack": _accuracy_record(ce), "energy_attack": _accuracy_record(en),
                     "energy_minus_ce": en["robust_acc"] - ce["robust_acc"], "difference_ci": _ci(diff),
                     "margin": round(margin, 4), "qualifier": qualifier},
            "n": n, "verdict": v, "note": qualifier}


FIG3_KEYS = (("share_dxE_joint_pos", "ci", "dxE_joint_mean", True), ("share_dthetaE_joint_neg", "ci_",
             "dthetaE_joint_mean", False), ("share_dthetaE_marginal_pos", "ci__", "dthetaE_marginal_mean", True))


def fig3_run_verdict(rec: dict) -> str:
    """One run's Fig. 3 verdict from its shares' Wilson intervals: both E(x, y) shares above 90% and
    the E(x) share's interval inside 20-80%."""
    ci_m = rec["ci__"]
    inside = "reproduced" if 0.2 <= ci_m[0] and ci_m[1] <= 0.8 else (
        "not reproduced" if ci_m[1] < 0.2 or ci_m[0] > 0.8 else "inconclusive")
    return combine([verdict_from_ci(rec["ci"], 1, 0.9), verdict_from_ci(rec["ci_"], 1, 0.9), inside])


def _fig3(ctx: Context, st: Settings, models: tuple[str, ...]) -> dict:
    """Fig. 3 over the shipped AT training runs (seeds): the share of logged steps with each sign
    (Wilson CIs), per run and pooled over every run's logged steps (the pooled interval treats the
    steps as independent draws; they are 10-50 updates apart). The claim is decided on the pooled
    shares (:func:`fig3_run_verdict`), but is not reproduced when any single run contradicts it."""
    (method,) = models

    def shares(log: list[dict]) -> dict:
        n = len(log)
        rec: dict = {"n_logged": n}
        for key, ci, col, positive in FIG3_KEYS:
            k = sum(1 for r in log if (r[col] > 0) == positive)
            rec[key], rec[ci] = k / n, _ci(wilson_interval(k, n))
        return rec

    runs, pooled = {}, []
    for run in ctx.training_runs(method):
        log = [r for r in read_energy_log(resolve(f"{ctx.preset}/{run}") / ENERGY_LOG) if r["step"] > 0]
        runs[run] = {**shares(log), "log_every": log[1]["step"] - log[0]["step"] if len(log) > 1 else None}
        runs[run]["verdict"] = fig3_run_verdict(runs[run])
        pooled += log
    ours = {"pooled": shares(pooled), **runs}
    v = fig3_run_verdict(ours["pooled"])
    if any(r["verdict"] == "not reproduced" for r in runs.values()):
        v = "not reproduced"
    return {"ours": ours, "n": len(pooled), "training_seeds": len(runs), "verdict": v}


def _fig2(ctx: Context, st: Settings, models: tuple[str, ...]) -> dict:
    """Claim 3 in parts (:func:`run_claims.flatness_parts`): 3a AT, PreJEAT and JEAT flatter than Normal;
    3b PreJEAT and 3c JEAT flatter than AT (the paper's further remarks), each over the methods' training
    runs. ``ours`` keeps the shipped runs' flatness and the rank of x in its slice."""
    resolution = 9 if st.smoke else 15
    nums = landscape_numbers(ctx, list(models), n=st.n_land, resolution=resolution)
    parts = run_claims.flatness_parts(ctx, n=st.n_land, resolution=resolution)
    ours = {n: {"flatness_dlogp": round(r["flatness_logp"], 4), "ci": _ci(r["flatness_ci"]),
                "rank_of_x": round(r["rank_of_x"], 3), "rank_ci": _ci(r["rank_ci"]), "x_is_slice_min": r["x_is_min"]}
            for n, r in nums.items()}
    return {"ours": ours, "n": st.n_land, "verdict": runs_claim_verdict(parts), "parts": parts,
            "note": "the paper's further remark that x is the minimum of its slice for PreJEAT/JEAT is reported "
                    "as x_is_slice_min and rank_of_x (share of the slice with lower energy)"}


def _robustness(ctx: Context, st: Settings, models: tuple[str, ...]) -> dict:
    """Claim 11 (:func:`run_claims.robustness_parts`): JEAT − AT robust accuracy over their runs under
    PGD-20 (first ``n_attack`` images) and the recorded AutoAttack (first 500, what every run records)."""
    n_aa = 500 if not st.smoke else st.n_attack
    parts, info = run_claims.robustness_parts(ctx, n_pgd=st.n_attack, n_aa=n_aa, standard=not st.smoke)
    note = f"runs: {', '.join(info['runs']['jeat'])} against {', '.join(info['runs']['at'])}"
    if info["runs_without_autoattack"]:
        note += (f"; without a standard AutoAttack record on {info['n_autoattack']} images: "
                 f"{', '.join(info['runs_without_autoattack'])}")
    ours = {p["name"]: {"jeat_minus_at": round(c["diff"], 4), "ci": _ci(c["ci"]), "ci_level": round(c["ci_level"], 4),
                        "jeat_runs": [round(v, 4) for v in c["runs_a"]], "at_runs": [round(v, 4) for v in c["runs_b"]],
                        "n": c["n"], "attack": c["feature_space"]}
            for p in parts for c in p["comparisons"]}
    return {"ours": {**ours, "runs": info["runs"], "runs_without_autoattack": info["runs_without_autoattack"]},
            "n": st.n_attack, "verdict": runs_claim_verdict(parts), "parts": parts, "note": note}


def describe_sampler(rec: dict) -> str:
    return describe(GenerationConfig(**rec))


@dataclass(frozen=True)
class Part:
    """One part of a generation claim (``docs/evaluation.md``, *Claims split into parts*): method ``a``
    against ``b``; ``paper_direction`` ``"a<b"`` when the paper says a scores lower (better). With
    ``seeds`` each side is every shipped training run of its method (:meth:`Context.training_runs`); when
    both sides are one method (two samplers of the same runs) the runs are paired (:func:`stats.paired`)."""

    name: str
    a: str
    b: str
    paper_direction: str = "a<b"
    a_energy: str = "joint"
    b_energy: str = "joint"
    seeds: bool = True

    @property
    def run_pairing(self) -> str:
        return "paired" if self.a == self.b else "welch"

    def label(self, side: str) -> str:
        name, energy = (self.a, self.a_energy) if side == "a" else (self.b, self.b_energy)
        return name if (self.a_energy, self.b_energy) == ("joint", "joint") else f"{name} ({ENERGY_LABEL[energy]})"


ENERGY_LABEL = {"joint": "Eq. 17", "ce": "Eq. 16"}
GEN_PARTS: dict[int, tuple[Part, ...]] = {
    4: (Part("4a", "at", "at", a_energy="joint", b_energy="ce"),),
    5: (Part("5a", "noise-16", "noise-8"), Part("5b", "noise-24", "noise-16")),
    6: (Part("6a", "jeat", "at"), Part("6b", "prejeat", "at"), Part("6c", "jeat", "prejeat")),
}


def _set_row(ctx: Context, images: Tensor, labels: Tensor, spaces) -> dict:
    return {s.name: {k: (float(f"{v:.4g}") if isinstance(v, float) else v)
                     for k, v in rulers.set_metrics(ctx, s, images, labels).items() if k not in ("space", "n")}
            for s in spaces}


def near_noiseless(sampler: dict) -> bool:
    """A sampler whose noise is under a tenth of exact Langevin's √η (or the noiseless L2 step): its
    chains are gradient descent from their seeds, not samples of p(x, y) (Eq. 9)."""
    if sampler.get("step") == "l2":
        return sampler.get("noise_std", 0) == 0
    return sampler.get("noise_std", 0) < 0.1 * sampler.get("step_size", 0) ** 0.5


GRADIENT_DESCENT = "gradient descent from class-Gaussian seeds"


def _generation_parts(ctx: Context, st: Settings, parts: tuple[Part, ...], family: str = "tuned") -> dict:
    """Claim parts scored by the protocol of ``docs/evaluation.md``: paired KID and FID differences in
    every verdict space (primary first), Holm across the parts, the rule of :func:`verdict_rules.part_verdict`;
    per-set metrics in every space (raw features as a diagnostic) beside the seed and real baselines.
    ``family``: the samplers generating (each run's tuned one, or its tuned one of Eq. 9 as written).
    A part whose every sampler is near-noiseless says so (``sampler_kind``)."""
    spaces = rulers.available(ctx)
    diagnostic = rulers.available(ctx, ("diagnostic",))
    seeds, labels = ctx.seeds(st.per_class, TEST_SEED)
    gen = {}

    def images(run: str, energy: str) -> Tensor:
        if (run, energy) not in gen:
            gen[run, energy] = _gen(ctx, st, run, energy, family)
        return gen[run, energy]["images"]

    built, raw = [], {}
    for p in parts:
        runs_a = ctx.training_runs(p.a) if p.seeds else [p.a]
        runs_b = ctx.training_runs(p.b) if p.seeds else [p.b]
        xa, xb = [images(r, p.a_energy) for r in runs_a], [images(r, p.b_energy) for r in runs_b]
        built.append({"name": p.name, "a": p.label("a"), "b": p.label("b"), "paper_direction": p.paper_direction,
                      "comparisons": rulers.compare(ctx, xa, xb, spaces=spaces, n_boot_kid=st.kid_boot,
                                                    n_boot_fid=st.fid_boot, run_pairing=p.run_pairing),
                      "runs": {"a": runs_a, "b": runs_b}})
        raw[p.name] = [c.record() for c in rulers.compare(ctx, xa, xb, spaces=diagnostic, n_boot_kid=st.kid_boot,
                                                           fid=False)]
    records = gen_eval.claim_parts(built)
    for rec, b, p in zip(records, built, parts):
        rec["runs"] = b["runs"]
        rec["comparisons"] = [public(c) for c in rec["comparisons"]]
        used = [gen[r, e]["sampler"] for side, e in (("a", p.a_energy), ("b", p.b_energy)) for r in b["runs"][side]]
        rec["sampler_kind"] = GRADIENT_DESCENT if all(near_noiseless(u) for u in used) else "Langevin"
    x, y = ctx.test()
    n = 10 * st.per_class
    sets = {"real test images [0, n)": _set_row(ctx, x[:n], y[:n], spaces + diagnostic),
            "class-Gaussian seeds": _set_row(ctx, seeds, labels, spaces + diagnostic)}
    for (run, energy), g in gen.items():
        sets[f"{run} ({ENERGY_LABEL[energy]})"] = {"sampler": describe_sampler(g["sampler"]),
                                                   "l2_moved": float(f"{g['l2_moved']:.4g}"),
                                                   **_set_row(ctx, g["images"], labels, spaces + diagnostic)}
    ours = {"sets": sets, "diagnostic_raw_kid": raw, "spaces": [s.name for s in spaces],
            "diagnostic_spaces": [s.name for s in diagnostic], "missing_spaces": rulers.missing(ctx)}
    note = "; ".join(f"{r['name']} {r['a']} vs {r['b']}: {r['verdict']}" for r in records)
    if ours["missing_spaces"]:
        note += f"; feature spaces not available (evaluator not shipped): {', '.join(ours['missing_spaces'])}"
    return {"ours": ours, "n": n, "verdict": generation_claim_verdict([r["verdict"] for r in records]),
            "parts": records, "note": note,
            "images": {f"{r} ({ENERGY_LABEL[e]})": g["images"] for (r, e), g in gen.items()}}


def _gen(ctx: Context, st: Settings, name: str, energy: str = "joint", family: str = "tuned") -> dict:
    return generation_set(ctx, name, energy, per_class=st.per_class, max_steps=st.max_gen_steps, family=family)


def _as_written(ctx: Context, st: Settings, claim: int) -> dict:
    """Claim ``claim``'s parts again with every run's sampler of Eq. 9 as written (Langevin, noise √η,
    tuned as its own family: ``jeat tune-samplers --family as-written``), reported beside the verdicts,
    not in the tally; the runs without that sampler are named and the parts not scored."""
    need = {(r, e) for p in GEN_PARTS[claim] for name, e in ((p.a, p.a_energy), (p.b, p.b_energy))
            for r in ctx.training_runs(name)}
    missing = sorted(f"{r} ({ENERGY_LABEL[e]})" for r, e in need
                     if sampler_key(e, "as-written") not in ctx.model(r)[1].get("sampler", {}))
    if missing:
        return {"not measured": "no sampler as written tuned for " + ", ".join(missing)
                + " (`jeat tune-samplers --family as-written`)"}
    res = _generation_parts(ctx, st, GEN_PARTS[claim], family="as-written")
    return {p["name"]: {"verdict": p["verdict"], "image_level_verdict": p["image_level_verdict"],
                        "primary": {k: p["comparisons"][0][k] for k in ("feature_space", "diff", "ci", "ci_level",
                                                                         "interval")},
                        "sampler_kind": p["sampler_kind"]} for p in res["parts"]}


def _generation(ctx: Context, st: Settings, models: tuple[str, ...], *, claim: int) -> dict:
    """Claim ``claim`` (4, 5 or 6) scored in its parts (:data:`GEN_PARTS`); claim 6 also gets Inception
    IS/FID of its sets when ``--inception-weights`` names the weights."""
    res = _generation_parts(ctx, st, GEN_PARTS[claim])
    res["ours"]["sampler_as_written"] = _as_written(ctx, st, claim)
    images = res.pop("images")
    if claim != 6:
        return res
    if st.inception_weights:
        x, _ = ctx.test()
        res["ours"]["inception"] = {n: _fidelity(im, x[:1000], st.inception_weights) for n, im in images.items()}
    else:
        res["note"] += ("; Inception IS/FID not measured: pass --inception-weights PATH (an offline copy of "
                        "torch-fidelity's pt_inception-2015-12-05 weights); nothing can be downloaded here")
    return res


def _fisher_verdicts(rows: list[dict], key: str) -> list[str]:
    out = []
    for a, b in zip(rows, rows[1:]):  # paper: a > b
        d = a[key] - b[key]
        se = math.sqrt(a[key + "_se"] ** 2 + b[key + "_se"] ** 2)
        out.append(verdict_from_ci((d - 1.96 * se, d + 1.96 * se), 1))
    return out


def _fisher_record(r: dict) -> dict:
    """Means, standard errors and 95% intervals (mean ± 1.96 SE) of one model's Fisher scores."""
    out = {}
    for k in ("JFS", "MFS", "JFS_pl", "MFS_pl"):
        m, se = r[k], r[k + "_se"]
        out.update({k: float(f"{m:.4g}"), k + "_se": float(f"{se:.4g}"),
                    k + "_ci": _ci((m - 1.96 * se, m + 1.96 * se))})
    return out


def _tab2(ctx: Context, st: Settings, models: tuple[str, ...]) -> dict:
    rows = fisher_table(ctx, list(models), n=st.n_fisher, n_probes=st.n_probes, batch=min(100, st.n_fisher))
    ours = {r["model"]: _fisher_record(r) for r in rows}
    v_pl = combine(_fisher_verdicts(rows, "JFS_pl") + _fisher_verdicts(rows, "MFS_pl"))
    v_eq = combine(_fisher_verdicts(rows, "JFS") + _fisher_verdicts(rows, "MFS"))
    positive = all(r["JFS_pl"] > 0 and r["MFS_pl"] > r["JFS_pl"] for r in rows)
    note = (f"verdict in the piecewise-linear convention (∇²ₓf ≡ 0: JFS = ½‖∇f_y‖², MFS = Σ p_k‖∇f_k‖² − ½‖Jᵀp‖²), "
            f"which is the one the paper's numbers follow: they are all positive with MFS > JFS, as that convention "
            f"gives{' (ours too)' if positive else ''}, while Eq. 23/24 as written (½‖∇E‖² − tr ∇²E with the true "
            f"Hessian of our smooth SiLU nets) gives negative scores; as written the order is {v_eq}")
    return {"ours": ours, "n": st.n_fisher, "verdict": v_pl, "note": note}


def _tab3(ctx: Context, st: Settings, models: tuple[str, ...]) -> dict:
    at, jem, jeat = models  # the claim is JEAT vs JEM; AT is reported beside them
    x, y = ctx.test()
    x, y = x[:st.n_attack], y[:st.n_attack]
    ours, masked = {}, []
    peers = have_torchattacks()  # without the peer library the cross-check is not measurable, never "agrees"
    for name in models:
        m, _ = ctx.model(name)
        r = robust_accuracy(m, x, y, attack="pgd20")
        ours[name] = _accuracy_record(r)
        if peers:
            peer = peer_attacks(m, x, y, apgd_steps=st.apgd_steps)
            ours[name].update(peer)
            if min(peer.values()) < r["robust_acc"] - 0.03:
                masked.append(name)
    n = len(x)
    k = {name: round(ours[name]["robust"] * n) for name in ours}
    diff = proportion_difference_ci(k[jeat], n, k[jem], n)
    ours["jeat_minus_jem"] = {"diff": (k[jeat] - k[jem]) / n, "ci": _ci(diff)}
    v = verdict_from_ci(diff, 1, null=0.10)
    if not peers:
        v = "not measurable here"
        note = (f"peer attacks not measurable here: torchattacks is not installed ({INSTALL_PEER}), so gradient "
                f"masking is not ruled out; our PGD-20 alone would say {verdict_from_ci(diff, 1, null=0.10)}")
    elif not masked:
        note = "peer attacks (torchattacks PGD-20 and APGD-CE) agree within 3 points"
    else:
        note = f"peer attacks find ≥ 3 points lower accuracy for {', '.join(masked)}"
    d_at = proportion_difference_ci(k[jeat], n, k[at], n)
    note += f"; JEAT − AT = {100 * (k[jeat] - k[at]) / n:+.1f} points, CI {_ci(d_at)} (AT is not in Tab. 3)"
    recorded = []  # the standard AutoAttack beside PGD-20 where recorded (claim 10 checks it for masking)
    for name in models:
        rec = recorded_autoattack(ctx.model(name)[1])
        if rec is not None:
            ours[name]["autoattack"] = {"robust": rec["robust_acc"], "robust_ci": _ci(rec["robust_ci"]), "n": rec["n"]}
            recorded.append(f"{MODEL_LABELS.get(name, name)} {100 * rec['robust_acc']:.1f}% "
                            f"[{100 * rec['robust_ci'][0]:.1f}, {100 * rec['robust_ci'][1]:.1f}] (n = {rec['n']:,})")
    if recorded:
        note += "; recorded AutoAttack (standard): " + ", ".join(recorded)
    return {"ours": ours, "n": n, "verdict": v, "note": note}


def _fig7(ctx: Context, st: Settings, models: tuple[str, ...]) -> dict:
    (name,) = models
    rec = _gen(ctx, st, name)
    k = st.n_ssim
    train_x = ctx.train_split().x[:2000] if st.smoke else ctx.train_split().x
    _, s_gen = nearest_by_ssim(rec["images"][:k], train_x, k=1)
    x, _ = ctx.test()
    _, s_real = nearest_by_ssim(x[1000:1000 + k], train_x, k=1)
    sg, sr = s_gen.flatten().double(), s_real.flatten().double()
    ours = {"generated_best_ssim_mean": round(float(sg.mean()), 4), "ci": _ci(bootstrap_ci(sg)),
            "generated_best_ssim_max": round(float(sg.max()), 4),
            "test_images_best_ssim_mean": round(float(sr.mean()), 4), "ci_test": _ci(bootstrap_ci(sr))}
    return {"ours": ours, "n": k, "verdict": "reproduced" if float(sg.max()) < 0.9 else "not reproduced",
            "note": "reproduced when no sample reaches SSIM 0.9 with its nearest training image"}


def _aa_record(ctx: Context, st: Settings, name: str) -> tuple[dict | None, str]:
    """The recorded AutoAttack eval of ``name`` usable here, or ``None`` and why not (with the command)."""
    _, man = ctx.model(name)
    rec = find_eval(man, "autoattack")
    cmd = f"`jeat eval --model {ctx.preset}/{name} --attack autoattack --n {st.n_attack} --record`"
    if rec is None or "per_example" not in rec:
        return None, f"not measurable here: no recorded AutoAttack eval; record it with {cmd}"
    cfg = rec.get("settings", {})
    if not st.smoke and not is_standard(rec):
        return None, (f"not measurable here: the recorded AutoAttack ran {cfg.get('steps')} steps and "
                      f"{cfg.get('n_queries')} Square queries, not the standard 100 and 5,000; re-record it with {cmd}")
    return rec, ""


def _seed_pairs(ctx: Context, name: str, ref: str) -> list[tuple[str, str]]:
    """``(run of name, run of ref)`` for each extra training run both ship, paired by seed suffix
    (``jeat-s1`` with ``at-s1``); the shipped pair ``(name, ref)`` is not included."""
    refs = {r.removeprefix(ref): r for r in ctx.training_runs(ref)[1:]}
    return [(r, refs[r.removeprefix(name)]) for r in ctx.training_runs(name)[1:] if r.removeprefix(name) in refs]


def _masking(ctx: Context, st: Settings, models: tuple[str, ...]) -> dict:
    """Per model, :func:`~jeat_core.measure.robustness.masking_check` of its recorded AutoAttack against AT's,
    with PGD-20 (ours) run here on the same first n images (AutoAttack is too slow to rerun in the audit).
    Where a model and AT both ship extra training runs with records (``jeat-s1`` and ``at-s1``, ...),
    each run is paired with AT's run of the same seed and the check pools the runs (two-level
    bootstrap: runs, then images); ``runs`` keeps each run's own check. In a pooled record ``n`` is
    the shipped pair's images (``n_per_run``: every pair's); ``pgd20``, ``autoattack``, ``gap`` and
    the excess are means over the runs; ``autoattack_recorded`` and ``stages`` are the shipped run's."""
    ref = models[0]
    recs, ours, parts = {}, {}, []
    for name in models:
        recs[name], why = _aa_record(ctx, st, name)
        if recs[name] is None:
            ours[name] = {"verdict": why}
            parts.append("not measurable here")
    if recs[ref] is None:
        return {"ours": ours, "n": 0, "verdict": "not measurable here",
                "note": f"the reference {ref} has no usable AutoAttack record, so no gap can be compared"}

    def masks(run: str) -> dict:  # on the run's own recorded images; masking_check pairs the common first ones
        n = recs[run]["n"]

        # our PGD-20 per image, computed once per (run, n) for this claim and claim 11 (run_claims)
        return {"pgd20": run_claims.pgd20_per_image(ctx, run, n).bool(), **masks_of(recs[run])}

    def one(c: dict) -> dict:
        return {"n": c["n"], "pgd20": round(c["pgd20"], 4), "autoattack": round(c["autoattack"], 4),
                "gap": round(c["gap"], 4), "gap_ci": _ci(c["gap_ci"]), f"gap_minus_{ref}_gap": round(c["excess"], 4),
                "excess_ci": _ci(c["excess_ci"]), "tolerance": round(c["tolerance"], 4), "verdict": c["verdict"]}

    for name in models:
        if recs[name] is None:
            continue
        pairs, unrecorded = [(name, ref)], []
        for run, ref_run in _seed_pairs(ctx, name, ref):
            for r in (run, ref_run):
                if r not in recs:
                    recs[r], _ = _aa_record(ctx, st, r)
            if recs[run] is None or recs[ref_run] is None:
                unrecorded.append(run)
            else:
                pairs.append((run, ref_run))
        r = recs[name]
        c = masking_check([masks(a) for a, _ in pairs], [masks(b) for _, b in pairs])
        ours[name] = {"n": c["n"], "pgd20": round(c["pgd20"], 4), "autoattack": round(c["autoattack"], 4),
                      "autoattack_recorded": {"robust_acc": r["robust_acc"], "robust_ci": _ci(r["robust_ci"]),
                                              "n": r["n"], "seconds": r.get("seconds")},
                      "stages": {v["stage"]: round(v["robust_acc"], 4) for v in r["stages"]},
                      "gap": round(c["gap"], 4), "gap_ci": _ci(c["gap_ci"]),
                      f"gap_minus_{ref}_gap": round(c["excess"], 4), "excess_ci": _ci(c["excess_ci"]),
                      "only_square": round(c["only_square"], 4), "by_apgd_ce": round(c["by_apgd_ce"], 4),
                      "square_minus_apgd_ce": round(c["square_minus_apgd_ce"], 4),
                      "square_minus_apgd_ce_ci": _ci(c["square_minus_apgd_ce_ci"]),
                      "only_square_ci": _ci(c["only_square_ci"]), "tolerance": round(c["tolerance"], 4),
                      "interval": c["interval"], "verdict": c["verdict"],
                      "training_runs": len(pairs), "n_per_run": c.get("n_per_run", [c["n"]])}
        if len(pairs) > 1:
            ours[name]["runs"] = {a: {**one(masking_check(masks(a), masks(b))), "reference": b} for a, b in pairs}
        if unrecorded:
            ours[name]["runs_without_autoattack"] = unrecorded
        parts.append({"masking": "not reproduced", "no masking sign": "reproduced"}.get(c["verdict"], "inconclusive"))
    masked = [m for m in models if isinstance(ours[m], dict) and ours[m]["verdict"] == "masking"]
    sizes = sorted({v["n"] for v in ours.values() if "n" in v})
    n = sizes[0]
    pooled = [m for m in models if ours[m].get("training_runs", 1) > 1]
    note = (f"each model paired with {ref} on their common first test images "
            f"({' or '.join(f'{k:,}' for k in sizes)}); one run pair: paired percentile bootstrap over images"
            + (f"; {', '.join(MODEL_LABELS.get(m, m) for m in pooled)}: over training runs, each run paired "
               f"with {MODEL_LABELS.get(ref, ref)}'s run of the same seed, a paired t over the run pairs"
               if pooled else "")
            + f"; {'masking: ' + ', '.join(masked) if masked else 'no model shows masking'}")
    return {"ours": ours, "n": n, "verdict": combine(parts), "note": note}


GEN_METRIC = ("the protocol of docs/evaluation.md: {n} generated images per set ({pc} per class) from the same "
              "fresh class-Gaussian seeds and Langevin noise for every set, each model with its own sampler "
              "tuned under the primary ruler; unbiased KID (cubic kernel) and FID against 5,000 real test images "
              "in several feature spaces of two independent CIFAR-trained evaluators (not Inception): eval-A/std "
              "(primary), eval-B/std, eval-A/mid/std (raw features as a diagnostic only); paired bootstrap "
              "differences over seed indices (and training runs, two-level, where a method ships several), "
              "Holm across a claim's parts; precision/recall/density/coverage and evaluator accuracy per set")

CLAIMS: tuple[Claim, ...] = (
    Claim(1, "Tab. 1: the energy attack (Eq. 18) is as effective as the CE attack (Eq. 14) on a normal classifier",
          "CE 0.12%, energy 0.11% accuracy (WRN-28-10)",
          "accuracy under L∞ PGD-20, ε 8/255, step 2/255, random start (Wilson CIs); reproduced if the CI of "
          "energy − CE lies within ±2% of the clean accuracy and the energy attack's CI lies below 10%",
          (TABLE1_MODEL,), _tab1),
    Claim(2, "Fig. 3: during AT, Δ_x E(x,y) > 0 and Δ_θ E(x,y) < 0, while Δ_θ E(x) fluctuates around 0",
          "Δ_x E(x,y) > 0, Δ_θ E(x,y) < 0 throughout; Δ_θ E(x) around 0",
          "share of logged steps with each sign over the shipped AT training runs (seeds), pooled and per run "
          "(Wilson CIs); reproduced if both pooled E(x,y) shares are above 90% and the pooled E(x) share lies "
          "within 20-80%; not reproduced if any run's intervals contradict that", (FIG3_MODEL,), _fig3),
    Claim(3, "Fig. 2: E(x,y) around real data is flatter for AT, PreJEAT and JEAT than for a normal classifier "
          "(3a), and PreJEAT (3b) and JEAT (3c) flatter than AT",
          "qualitative contour plots: sharp for Normal, flat for AT/PreJEAT/JEAT, JEAT's the flattest",
          "flatness = mean |Δ log p(y|x')| over a 2-D slice of L2 radius 2 through each of the first {nl} test "
          "images (log-probability units remove the logit-scale confound); a run's value is its mean over those "
          "images; a − b over the methods' training runs (Welch t on run means; one run on a side: paired "
          "bootstrap over images, not decided over runs), Holm across the comparisons; reproduced if every "
          "comparison of a part lies below 0", FIG2_MODELS, _fig2),
    Claim(4, "Fig. 4: on an AT classifier, sampling p(x,y) (Eq. 17) generates better images than Eq. 16",
          "qualitative: Eq. 17 images are more realistic", GEN_METRIC, ("at",), partial(_generation, claim=4)),
    Claim(5, "Fig. 5: more training noise (σ 8 → 16 → 24 /255) gives better generation",
          "qualitative: σ = 24/255 best", GEN_METRIC, FIG5_MODELS, partial(_generation, claim=5)),
    Claim(6, "Fig. 6 / Tab. 2: generation quality AT < PreJEAT < JEAT",
          "IS 7.50 / 8.66 / 8.80 and FID 60.90 / 38.40 / 38.24 for AT / JEM / JEAT (Tab. 2); PreJEAT between "
          "AT and JEAT by eye (Fig. 6)", GEN_METRIC, ("at", "prejeat", "jeat"), partial(_generation, claim=6)),
    Claim(7, "Tab. 2: Fisher scores order Normal > AT > JEM > JEAT (JFS and MFS)",
          "JFS 6.97 / 2.83 / 0.330 / 0.023, MFS 23.08 / 3.12 / 1.44 / 0.15",
          "Eq. 23/24 in two conventions, mean ± SE over test images; each adjacent pair's difference with a "
          "95% CI (±1.96 SE); reproduced if every pair is in the paper's order", TABLE2_MODELS, _tab2),
    Claim(8, "Tab. 3: JEAT is far more robust than JEM (PGD-20, ε 8/255)",
          "clean / PGD-20: JEM 92.90% / 6.11%, JEAT 85.16% / 30.55%",
          "accuracy under L∞ PGD-20 (ours), torchattacks PGD-20 and APGD-CE (AutoAttack's first component), "
          "ε 8/255; an example is robust only if correct clean and attacked; reproduced if the CI of JEAT − JEM "
          "lies above 10 points", ("at", "jem", "jeat"), _tab3),
    Claim(9, "Fig. 7: generated images are not copies of training images",
          "nearest training images by SSIM differ visibly",
          "SSIM of JEAT samples to their most similar training image (L2 prefilter of 256, then SSIM among all "
          "50,000), beside real test images", (FIG7_MODEL,), _fig7),
    Claim(10, "Tab. 3: the robustness PGD-20 measures is not gradient masking (AutoAttack, as RobustBench reports it)",
          "robustness measured with PGD-20 only (Tab. 3); a check we added, not a claim of the paper",
          "per model, its recorded standard L∞ AutoAttack (torchattacks' APGD-CE, APGD-T, FAB-T, Square 5,000 "
          "queries, each on the points still robust; ε 8/255) against our PGD-20 on the same images: the paired "
          "gap PGD-20 − AutoAttack minus AT's gap (the excess), and the share of points only Square breaks; "
          "masking (not reproduced) if the excess interval's lower end exceeds the tolerance, AT's own gap "
          "(PGD-20 then overstates the model's robustness more than twice as much as AT's), or the only-Square "
          "share's lower Wilson bound exceeds 1 point; no masking sign (reproduced) if the excess interval's upper "
          "end is within the tolerance and the only-Square share's upper 95% Wilson bound within 1 point; one run "
          "pair: paired bootstrap over images; where a model and AT ship extra training runs with records, each "
          "run is paired with AT's run of the same seed and the pairs decide (paired t over runs)",
          ("at", "prejeat", "jeat", "jem", "noise-8", "noise-16", "noise-24"), _masking, source="added"),
    Claim(11, "Tab. 3 / abstract / §3.4: JEAT improves adversarial robustness over adversarial training",
          "\"improves both quality of generated images and adversarial robustness systematically\" (§3.4); "
          "no AT number in the paper (Tab. 3 compares JEAT with JEM only)",
          "robust accuracy JEAT − AT over each method's training runs, on the same first {n} test images under "
          "our PGD-20 (11a) and on the first 500 under the recorded standard AutoAttack (11b); Welch t on run "
          "means, Holm across the two; reproduced if the interval lies above 0", ("jeat", "at"), _robustness),
)


class AuditError(ValueError):
    """A re-run the audit cannot do (bad ``only``, or a previous report of other settings)."""


def run_audit(*, smoke: bool = False, data_root=None, inception_weights: str | None = None,
              progress: Callable[[str], None] | None = None, only: set[int] | None = None,
              previous: dict | None = None) -> dict:
    """Measure every claim of :data:`CLAIMS` on the shipped models. Returns ``{"claims": [...], ...}``.

    ``only`` (claim ids) re-measures those claims and takes every other from ``previous``, an earlier
    report of the same settings (e.g. after recording a new evaluation, claims 8 and 10, in minutes
    instead of the whole audit). Its ``seconds`` then add the new claims' times to the others' old
    ones, and ``reran`` lists what was re-measured and when."""
    say = progress or (lambda _msg: None)
    t0 = time.time()
    st = Settings.smoke_run() if smoke else Settings()
    if inception_weights:
        st = Settings(**{**st.__dict__, "inception_weights": inception_weights})
    settings = {k: v for k, v in st.__dict__.items() if k != "inception_weights"}
    if only is not None:
        _check_rerun(only, previous, smoke, settings)
    ctx = Context(data_root=data_root)
    claims = []
    for c in CLAIMS:
        if only is not None and c.id not in only:  # kept from the earlier report (its source as defined now)
            claims.append({**next(old for old in previous["claims"] if old["id"] == c.id), "source": c.source})
            continue
        say(f"claim {c.id}: {c.claim}")
        t = time.time()
        claims.append(c.run(ctx, st))
        claims[-1]["seconds"] = round(time.time() - t, 1)
    seconds = round(time.time() - t0, 1)
    extra = {}
    if only is not None:
        seconds = round(sum(c["seconds"] for c in claims), 1)
        entry = {"claims": sorted(only), "date": time.strftime("%Y-%m-%d")}
        extra["reran"] = [*(r for r in previous.get("reran", []) if r != entry), entry]  # once per day and claims
    return {"claims": claims, "smoke": smoke, "seconds": seconds, **extra, "settings": settings,
            "feature_spaces": {n: {"role": sp.role, "evaluator": sp.evaluator, "description": sp.description}
                               for n, sp in rulers.FEATURE_SPACES.items()},
            "tally": tally({"claims": claims}), "tally_added": tally({"claims": claims}, "added"),
            "generation_claims": sorted(GEN_PARTS)}


def _check_rerun(only: set[int], previous: dict | None, smoke: bool, settings: dict) -> None:
    ids = {c.id for c in CLAIMS}
    if not only or not only <= ids:
        raise AuditError(f"--only: claims are {min(ids)}-{max(ids)}; got {', '.join(map(str, sorted(only))) or 'none'}")
    if previous is None:
        raise AuditError("--only re-measures some claims of an earlier report: give --out with its audit.md "
                         "(the JSON beside it is read)")
    if previous.get("smoke") != smoke or previous.get("settings") != json_round_trip(settings):
        raise AuditError("--only: the earlier report was made with other settings (or smoke flag); run the whole "
                         "audit instead")
    missing = ids - {c.get("id") for c in previous.get("claims", [])} - only
    if missing:
        raise AuditError(f"--only: the earlier report lacks claims {', '.join(map(str, sorted(missing)))}; "
                         "re-measure them too (--only) or run the whole audit")


def json_round_trip(v):
    """``v`` as it reads back from JSON (tuples become lists), to compare with a saved report."""
    return json.loads(json.dumps(v))


def _fidelity(fake: Tensor, real: Tensor, weights: str) -> dict:
    """Inception IS/FID via torch-fidelity with an offline weights file."""
    if not Path(weights).is_file():
        raise FileNotFoundError(f"--inception-weights: no file at {weights}")
    try:
        import torch_fidelity  # optional (the fidelity extra)
    except ImportError as e:
        raise ImportError("--inception-weights needs torch-fidelity: pip install 'jeat[fidelity]'") from e

    class _DS(torch.utils.data.Dataset):
        def __init__(self, t):
            self.t = (t.clamp(0, 1) * 255).round().to(torch.uint8)

        def __len__(self):
            return len(self.t)

        def __getitem__(self, i):
            return self.t[i]

    m = torch_fidelity.calculate_metrics(input1=_DS(fake), input2=_DS(real), isc=True, fid=True, cuda=False,
                                         feature_extractor_weights_path=weights, verbose=False)
    return {"IS": m["inception_score_mean"], "FID": m["frechet_inception_distance"]}


# ----------------------------------------------------------------------------- report
def tally(report: dict, source: str = "paper") -> dict[str, int]:
    """Verdict counts over the audit's *parts* of the claims of ``source``: ``"paper"`` (the paper's
    claims: the README's tally) or ``"added"`` (the checks we added, counted apart). A generation claim
    counts once per part, every other claim once."""
    out = dict.fromkeys(VERDICTS, 0)
    for c in report["claims"]:
        if c.get("source", "paper") != source:
            continue
        for v in ([p["verdict"] for p in c["parts"]] if c.get("parts") else [c["reproduced"]]):
            out[v] += 1
    return out


def _part_lines(c: dict) -> list[str]:
    """A generation claim's parts: each comparison's paired difference and interval (at its Holm level)."""
    lines = ["| part | a vs b (paper: a better) | feature space | metric | a − b | interval | level | "
             "training runs a / b | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for p in c["parts"]:
        r = p.get("runs") or {}
        for i, x in enumerate(p["comparisons"]):
            runs = (f"{len(x['runs_a'])} / {len(x['runs_b'])}" if x.get("runs_a") else
                    f"{len(r['a'])} / {len(r['b'])}" if r else "1 / 1")
            head = (f"**{p['name']}**", f"{p['a']} vs {p['b']}") if i == 0 else ("", "")
            lines.append(f"| {head[0]} | {head[1]} | {x['feature_space']} | {x['metric'].upper()} | {x['diff']:.4g} | "
                         f"[{x['ci'][0]:.4g}, {x['ci'][1]:.4g}] | {x.get('ci_level', 0.95):.1%} | "
                         f"{runs} | {'**' + p['verdict'] + '**' if i == 0 else ''} |")
    return lines + [""]


def to_markdown(report: dict) -> str:
    counts, added = tally(report), tally(report, "added")
    lines = ["# Reproduction audit (`jeat audit`)", "",
             f"{'Smoke run (tiny sizes) — not a result.' if report['smoke'] else 'Full run'} on the shipped "
             f"cpu-preset models (SmallCNN, 0.81 M parameters, 2-core CPU); {report['seconds']:.0f} s"
             + "".join(f"; claims {', '.join(map(str, r['claims']))} re-measured on {r['date']}"
                       for r in report.get("reran", [])) + ". "
             "The paper's numbers are for WideResNet-28-10 on GPUs. Verdicts come from 95% intervals: "
             "*reproduced* when the interval excludes the null in the paper's direction, *not reproduced* when "
             "it excludes it in the other, *inconclusive* otherwise. Generation claims (4-6) are split into "
             "parts, each decided by the rule of `docs/evaluation.md` over several feature spaces (*depends on "
             "the ruler* when spaces disagree).", "",
             "Summary over the parts of the paper's claims: "
             + ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v]) + ". Checks we added (not the "
             "paper's claims, not in that count): "
             + ", ".join(f"{added[v]} {v}" for v in VERDICTS if added[v]) + ". Nothing controls the error rate "
             "across claims; Holm's correction acts within a claim's parts.", ""]
    for source, title in (("paper", "The paper's claims"), ("added", "Checks we added")):
        lines += [f"**{title}**", "", "| # | claim | verdict | paper | n |", "|---|---|---|---|---|"]
        for c in report["claims"]:
            if c.get("source", "paper") != source:
                continue
            verdict = c["reproduced"]
            if c.get("parts"):
                verdict += " (" + ", ".join(f"{p['name']}: {p['verdict']}" for p in c["parts"]) + ")"
            lines.append(f"| {c['id']} | {c['claim']} | **{verdict}** | {c['paper']} | {c['n']} |")
        lines.append("")
    lines += ["", "## Measurements", ""]
    for c in report["claims"]:
        lines += [f"### {c['id']}. {c['claim']} — **{c['reproduced']}**", "", f"*Metric:* {c['metric']}.", ""]
        if c["note"]:
            lines += [f"*Note:* {c['note']}.", ""]
        if c.get("parts"):
            lines += _part_lines(c)
        lines += ["```json", _json(c["ours"]), "```", ""]
    return "\n".join(lines) + "\n"


def _json(v) -> str:
    return json.dumps(v, ensure_ascii=False, indent=1)

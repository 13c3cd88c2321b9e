"""The audit of the paper's claims: each claim of the paper as a measurement with uncertainty (``jeat audit``).

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

from jeat_core.core.checkpoints import ENERGY_LOG, CheckpointError, resolve
from jeat_core.measure import rulers
from jeat_core.measure.metrics import frechet_distance, inception_score, nearest_by_ssim, penultimate, robust_accuracy
from jeat_core.measure.stats import bootstrap_ci, proportion_difference_ci, wilson_interval
from jeat_core.measure.verdict_rules import VERDICTS, combine, equivalence_verdict, runs_claim_verdict, verdict_from_ci
from jeat_core.paper import audit_cache, run_claims
from jeat_core.paper.audit_generation import GEN_PARTS, _gen, _generation
from jeat_core.paper.audit_robustness import _accuracy_record, _masking, _robustness, _tab3
from jeat_core.paper.audit_sizes import Settings
from jeat_core.paper.audit_sizes import round_ci as _ci
from jeat_core.paper.experiments import Context, fisher_table, landscape_numbers, read_energy_log
from jeat_core.paper.paper_items import FIG2_MODELS, FIG3_MODEL, FIG5_MODELS, FIG7_MODEL, TABLE1_MODEL, TABLE2_MODELS

__all__ = ["VERDICTS", "Claim", "CLAIMS", "run_audit", "to_markdown", "verdict_from_ci", "combine",
           "frechet_distance", "inception_score", "penultimate"]


# ----------------------------------------------------------------------------- claims
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

    def prose(self, settings: Settings) -> dict:
        """The claim's text fields as defined now (a metric text may name the settings' sample sizes:
        ``{n}`` images, ``{pc}`` per class, ``{nl}`` landscape images; and ``{rulers}``, the registry's rulers)."""
        metric = self.metric.format(n=10 * settings.per_class if self.id in GEN_PARTS else settings.n_attack,
                                    pc=settings.per_class, nl=settings.n_land, rulers=ruler_names())
        return {"id": self.id, "claim": self.claim, "paper": self.paper, "metric": metric, "source": self.source}

    def run(self, ctx: Context, settings: Settings) -> dict:
        rec = self.prose(settings)
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


FIG3_KEYS = (("share_dxE_joint_pos", "ci", "dxE_joint_mean", True), ("share_dthetaE_joint_neg", "ci_",
             "dthetaE_joint_mean", False), ("share_dthetaE_marginal_pos", "ci__", "dthetaE_marginal_mean", True))


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


def ruler_names() -> str:
    """The registered rulers as the generation claims' metric text names them (:data:`rulers.RULERS`)."""
    verdict = ", ".join(s.name + (" (primary)" if s.role == "primary" else "")
                        for s in rulers.of_role("primary", "check"))
    diagnostic = ", ".join(s.name for s in rulers.of_role("diagnostic"))
    return f"{verdict} (diagnostics only: {diagnostic})" if diagnostic else verdict


GEN_METRIC = ("the protocol of docs/evaluation.md: {n} generated images per set ({pc} per class) from the same "
              "fresh class-Gaussian seeds and Langevin noise for every set, each model with its own sampler "
              "tuned under the primary ruler; unbiased KID (cubic kernel) and FID against 5,000 real test images "
              "in several feature spaces of two independent CIFAR-trained evaluators (not Inception): {rulers}; "
              "paired bootstrap differences over seed indices (and training runs, two-level, where a method ships "
              "several), Holm across a claim's parts; precision/recall/density/coverage and evaluator accuracy per set")

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
              previous: dict | None = None, fresh: bool = False) -> dict:
    """Measure every claim of :data:`CLAIMS` on the shipped models. Returns ``{"claims": [...], ...}``.

    ``previous``, an earlier report, is a cache (:mod:`jeat_core.paper.audit_cache`): a claim whose
    inputs (the measuring code, the settings, the data, every checkpoint it read) are unchanged is
    taken from it, its prose refreshed, instead of measured again. ``fresh`` measures everything;
    ``only`` (claim ids) measures those claims whatever the cache says (the others follow the cache).
    The report's ``seconds`` add every claim's measuring time (the cost of a fresh audit); ``reran``
    lists which claims a run measured, and when, while others came from the cache."""
    say = progress or (lambda _msg: None)
    st = Settings.smoke_run() if smoke else Settings()
    if inception_weights:
        st = Settings(**{**st.__dict__, "inception_weights": inception_weights})
    settings = {k: v for k, v in st.__dict__.items() if k != "inception_weights"}
    if only is not None:
        _check_rerun(only, previous, smoke, settings)
    old = {c.get("id"): c for c in (previous or {}).get("claims", [])} if previous and not fresh else {}
    ctx = Context(data_root=data_root)
    claims, measured = [], []
    for c in CLAIMS:
        key = audit_cache.claim_key(c.id, c.models, {**settings, "smoke": smoke}, data_root, inception_weights)
        if (only is None or c.id not in only) and audit_cache.reusable(old.get(c.id), key):
            say(f"claim {c.id}: unchanged inputs, kept from the earlier report")
            claims.append({**old[c.id], **c.prose(st)})
            continue
        say(f"claim {c.id}: {c.claim}")
        t = time.time()
        with audit_cache.ReadLog() as log:
            claims.append(c.run(ctx, st))
        claims[-1]["seconds"] = round(time.time() - t, 1)
        claims[-1]["inputs"] = {"key": key, "reads": dict(sorted(log.reads.items()))}
        measured.append(c.id)
    extra = {}
    if len(measured) < len(CLAIMS):
        entry = {"claims": measured, "date": time.strftime("%Y-%m-%d")}
        extra["reran"] = [*(r for r in (previous or {}).get("reran", []) if r != entry), entry]
    return {"claims": claims, "smoke": smoke, "seconds": round(sum(c["seconds"] for c in claims), 1), **extra,
            "settings": settings,
            "feature_spaces": {n: {"role": sp.role, "evaluator": sp.evaluator, "description": sp.description}
                               for n, sp in rulers.RULERS.items()},
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


def json_round_trip(v):
    """``v`` as it reads back from JSON (tuples become lists), to compare with a saved report."""
    return json.loads(json.dumps(v))


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
    lines = ["# The paper's claims, audited (`jeat audit`)", "",
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

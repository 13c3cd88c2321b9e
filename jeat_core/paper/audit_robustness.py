"""The audit's claims about robustness: the run-level robustness of JEAT vs AT (claim 11: PGD-20 and
AutoAttack), Tab. 3 and the gradient-masking check (AutoAttack, the peer library's attacks, PGD-20 −
AutoAttack against AT's gap).
:mod:`jeat_core.paper.audit` lists the claims."""

from __future__ import annotations

from jeat_core.core.checkpoints import find_eval
from jeat_core.measure.metrics import robust_accuracy
from jeat_core.measure.robustness import (
    INSTALL_PEER,
    have_torchattacks,
    is_standard,
    masking_check,
    masks_of,
    peer_attacks,
)
from jeat_core.measure.stats import proportion_difference_ci
from jeat_core.measure.verdict_rules import combine, runs_claim_verdict, verdict_from_ci
from jeat_core.paper import run_claims
from jeat_core.paper.audit_sizes import Settings
from jeat_core.paper.audit_sizes import round_ci as _ci
from jeat_core.paper.experiments import Context
from jeat_core.paper.paper_items import MODEL_LABELS, recorded_autoattack


def _accuracy_record(r: dict) -> dict:
    return {"clean": r["clean_acc"], "clean_ci": _ci(r["clean_ci"]), "robust": r["robust_acc"],
            "robust_ci": _ci(r["robust_ci"])}


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

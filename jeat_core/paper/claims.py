"""The audit's claims as rows of effects (``figures/claims.png``, the README's hero figure): one row
per claim part, its tested quantity, 95% interval, null, the paper's direction and verdict, read from
an audit report (``figures/audit.json``). Plain data, no drawing and no torch: the presenters
(:mod:`jeat_core.explore.figures`) draw it."""

from __future__ import annotations

from pathlib import Path

from jeat_core.measure.verdict_rules import verdict_from_ci

# what `jeat audit --out figures/audit.md` writes
AUDIT = Path(__file__).resolve().parents[2] / "figures" / "audit.json"


def _row(label: str, value, ci, null: float, direction: int, verdict: str, unit: str, band=None) -> dict:
    """``direction`` +1/−1: the paper predicts the value above/below ``null``; 0: inside ``band``."""
    return {"label": label, "value": value, "ci": list(ci) if ci is not None else None, "null": null,
            "direction": direction, "verdict": verdict, "unit": unit, "band": list(band) if band else None}


def claim_effects(report: dict) -> list[dict]:
    """One row per claim part of an audit report (``figures/audit.json``): the tested quantity, its 95%
    interval, the null it is tested against, the paper's direction (+1: above the null, −1: below) and
    the verdict, for the hero figure (``figures/claims.png``). A generation claim gives one row per part
    (its primary KID comparison); the others their headline quantity, read from the record. Rows of a
    claim not measured here carry ``value None``."""
    rows: list[dict] = []
    for c in report["claims"]:
        start = len(rows)
        _claim_rows(c, rows)
        for r in rows[start:]:
            r["source"] = c.get("source", "paper")
    return rows


def _claim_rows(c: dict, rows: list[dict]) -> None:
    """Append one claim's rows to ``rows`` (:func:`claim_effects`)."""
    cid, o, verdict = c["id"], c.get("ours"), c["reproduced"]
    if c.get("parts"):
        for p in c["parts"]:
            d = -1 if p["paper_direction"] == "a<b" else 1
            if p["comparisons"][0]["metric"] in ("kid", "fid"):  # a generation part: its primary comparison
                k = p["comparisons"][0]
                rows.append(_row(f"{p['name']}: {p['a']} vs {p['b']}", k["diff"], k["ci"], 0.0, d, p["verdict"],
                                 f"Δ KID ({k['feature_space']}, {k['training_seeds']} run(s) per side)"))
                continue
            for k in p["comparisons"]:  # every comparison of a part decided without rulers (claims 3, 11)
                a, b = k.get("a", p["a"]), k.get("b", p["b"])
                rows.append(_row(f"{p['name']}: {a} vs {b}", k["diff"], k["ci"], 0.0, d, p["verdict"],
                                 f"Δ {k['metric']} ({len(k['runs_a'])} / {len(k['runs_b'])} runs)"))
        return
    if not isinstance(o, dict) or verdict == "not measurable here":
        rows.append(_row(f"{cid}: {c['claim'].split(':')[0]}", None, None, 0.0, 1, verdict, "not measured here"))
        return
    if cid == 1:
        m = o.get("margin", 0.05)
        rows.append(_row("1: energy − CE attack", o["energy_minus_ce"], o["difference_ci"], 0.0, 0, verdict,
                         f"Δ accuracy (equivalence ±{m:.3g})", band=(-m, m)))
    elif cid == 2:  # the shares pooled over the AT training runs (per run in audit.json)
        o = o.get("pooled", o)
        for key, ci, what, null, d in (("share_dxE_joint_pos", "ci", "Δ_x E(x,y) > 0", 0.9, 1),
                                       ("share_dthetaE_joint_neg", "ci_", "Δ_θ E(x,y) < 0", 0.9, 1)):
            rows.append(_row(f"2: {what}", o[key], o[ci], null, d, verdict_from_ci(o[ci], d, null),
                             f"share of steps ({c.get('training_seeds', 1)} run(s) pooled)"))
        rows.append(_row("2: Δ_θ E(x) ≈ 0 (share > 0 in 20-80%)", o["share_dthetaE_marginal_pos"], o["ci__"], 0.5, 0,
                         "reproduced" if 0.2 <= o["ci__"][0] and o["ci__"][1] <= 0.8 else "inconclusive",
                         "share of steps (band 0.2-0.8)", band=(0.2, 0.8)))
    elif cid == 7:
        names = list(o)
        for score in ("JFS", "MFS"):  # Eq. 23 and Eq. 24, each pair in the paper's order
            for a, b in zip(names, names[1:]):
                d = o[a][f"{score}_pl"] - o[b][f"{score}_pl"]
                se = (o[a][f"{score}_pl_se"] ** 2 + o[b][f"{score}_pl_se"] ** 2) ** 0.5
                ci = (d - 1.96 * se, d + 1.96 * se)
                rows.append(_row(f"7: {score} {a} > {b}", d, ci, 0.0, 1, verdict_from_ci(ci, 1, 0.0),
                                 f"Δ {score} (piecewise-linear)"))
    elif cid == 8:
        r = o["jeat_minus_jem"]
        rows.append(_row("8: JEAT − JEM robust", r["diff"], r["ci"], 0.10, 1, verdict, "Δ PGD-20 accuracy"))
    elif cid == 9:
        rows.append(_row("9: samples vs nearest training image", o["generated_best_ssim_mean"], o["ci"], 0.9, -1,
                         verdict, "mean best SSIM (copy at 0.9)"))
    elif cid == 10:
        for m, r in o.items():
            key = next((k for k in r if k.startswith("gap_minus_")), None) if isinstance(r, dict) else None
            if key and m == key[10:-4]:  # the reference model against itself: 0 by construction, no evidence
                continue
            if key:
                v = {"masking": "not reproduced", "no masking sign": "reproduced"}.get(r["verdict"], "inconclusive")
                runs = r.get("training_runs", 1)
                tol = r.get("tolerance", 0.03)
                rows.append(_row(f"10: {m} (PGD-20 − AA) − {key[10:-4]}'s", r[key], r["excess_ci"], tol, -1, v,
                                 f"Δ accuracy gap (tolerance {tol:.3g}"
                                 + (f", {runs} run pairs)" if runs > 1 else ")")))
            else:
                rows.append(_row(f"10: {m}", None, None, 0.0, 1, "not measurable here", "no AutoAttack record"))
    else:
        rows.append(_row(f"{cid}: {c['claim'].split(':')[0]}", None, None, 0.0, 1, verdict, "no headline"))

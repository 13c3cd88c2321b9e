"""The verdict cell closing notebooks 01-09 (jeat_core.paper.verdicts): rendered from an audit file, in the
current format and in the one where generation claims carry parts; every notebook 01-09 ends with it."""

import ast
import json
import re
from pathlib import Path

import pytest

from jeat_core.paper.verdicts import SCALE_NOTES, VerdictTable, claim_notebook, decision_rule, verdict_table

REPO = Path(__file__).resolve().parent.parent
CLAIM_1 = {"id": 1, "claim": "Tab. 1: the energy attack is as effective as the CE attack",
           "paper": "CE 0.12%, energy 0.11%", "metric": "...", "n": 1000, "reproduced": "reproduced", "note": "",
           "ours": {"ce_attack": {"robust": 0.0, "robust_ci": [2.2e-19, 0.0038]}, "energy_minus_ce": 0.007,
                    "difference_ci": [0.0017, 0.0144]}}
CLAIM_7 = {"id": 7, "claim": "Tab. 2: Fisher scores order Normal > AT", "paper": "JFS 6.97 / 2.83", "metric": "...",
           "n": 500, "reproduced": "not reproduced", "note": "",
           "ours": {"standard": {"JFS": -135.3, "JFS_se": 39.3, "JFS_ci": [-212.4, -58.2]}}}
OLD_6 = {"id": 6, "claim": "Fig. 6 / Tab. 2: generation quality AT < PreJEAT < JEAT", "paper": "FID 60.9 / 38.2",
         "metric": "...", "n": 1000, "reproduced": "not reproduced", "note": "",
         "ours": {"at": {"kid": 18.92, "kid_ci": [17.44, 20.5], "sampler": "Langevin"},
                  "KID(jeat) − KID(at)": {"diff": 5.5, "ci": [1.2, 9.9]},
                  "baselines": {"seeds": {"kid": 109.8, "kid_ci": [105.3, 115.2]}}}}


def _comparison(space, metric, diff, ci, n=1000):
    return {"feature_space": space, "metric": metric, "diff": diff, "ci": ci, "ci_level": 0.975, "n": n,
            "paired": True, "n_boot": 2000, "training_seeds": 3, "p": 0.01}


NEW_6 = {**OLD_6, "parts": [
    {"name": "6a", "a": "jeat", "b": "at", "paper_direction": "a<b", "verdict": "not reproduced",
     "comparisons": [_comparison("eval-A/std", "kid", 0.0123, [0.004, 0.021]),
                     _comparison("eval-A/std", "fid", 3.1, [1.0, 5.0])]},
    {"name": "6b", "a": "prejeat", "b": "at", "paper_direction": "a<b", "verdict": "inconclusive",
     "comparisons": [_comparison("eval-B/std", "fid", 9.0, [-1.0, 19.0]),
                     _comparison("eval-A/std", "kid", -0.002, [-0.009, 0.005], n=999)]}]}


def _audit(tmp_path, *claims, smoke=False) -> Path:
    path = tmp_path / "audit.json"
    path.write_text(json.dumps({"claims": list(claims), "smoke": smoke}))
    return path


def test_a_claim_without_parts_shows_paper_ours_n_verdict_and_scale(tmp_path):
    t = verdict_table("01", _audit(tmp_path, CLAIM_1, CLAIM_7))
    assert isinstance(t, VerdictTable) and len(t.rows) == 1
    (row,) = t.rows
    assert row["claim"].startswith("1. Tab. 1") and row["paper"] == "CE 0.12%, energy 0.11%"
    assert "energy_minus_ce 0.007 [0.0017, 0.0144]" in row["ours"] and "n = 1000" in row["ours"]
    assert "robust 0 [0, 0.0038]" in row["ours"]  # an interval end at 0 up to float noise reads 0
    assert row["verdict"] == "reproduced" and row["at our scale"] == SCALE_NOTES[1]
    md, page = t._repr_markdown_(), t._repr_html_()
    assert "| claim | paper | ours | verdict | at our scale |" in md and "reproduced" in md
    assert page.count("<tr>") == 2 and "energy_minus_ce" in page and "full run" in page


def test_numbers_pair_with_their_own_intervals(tmp_path):
    (row,) = verdict_table(7, _audit(tmp_path, CLAIM_1, CLAIM_7)).rows
    assert "JFS -135 [-212, -58.2]" in row["ours"] and "JFS_se" not in row["ours"]


def test_current_generation_format_shows_the_difference_not_the_baselines(tmp_path):
    (row,) = verdict_table("06", _audit(tmp_path, OLD_6)).rows
    assert "KID(jeat) − KID(at) = 5.5 [1.2, 9.9]" in row["ours"] and "at: kid 18.9 [17.4, 20.5]" in row["ours"]
    assert "109.8" not in row["ours"] and "110" not in row["ours"] and row["verdict"] == "not reproduced"


def test_parts_give_one_row_each_with_the_first_kid_comparison(tmp_path):
    rows = verdict_table("06", _audit(tmp_path, NEW_6, smoke=True)).rows
    assert [r["verdict"] for r in rows] == ["not reproduced", "inconclusive"]
    assert "part 6a" in rows[0]["claim"] and "jeat < at" in rows[0]["paper"]
    assert rows[0]["ours"].startswith("KID(jeat) − KID(at) = 0.0123 [0.004, 0.021] (eval-A/std, 97.5% interval, "
                                      "3 training runs), n = 1000")
    assert "KID(prejeat) − KID(at) = -0.002 [-0.009, 0.005]" in rows[1]["ours"] and "n = 999" in rows[1]["ours"]
    assert "smoke run" in verdict_table("06", _audit(tmp_path, NEW_6, smoke=True)).title


def test_a_claim_not_measured_says_so(tmp_path):
    missing = {**CLAIM_7, "ours": None, "n": 0, "reproduced": "not measurable here"}
    (row,) = verdict_table("07", _audit(tmp_path, missing)).rows
    assert row["ours"] == "—<br>n = 0" and row["verdict"] == "not measurable here"
    why = {**missing, "ours": {"at": {"verdict": "not measurable here: no record"}}, "note": "AT has no record"}
    (row,) = verdict_table("07", _audit(tmp_path, why)).rows
    assert row["ours"] == "AT has no record<br>n = 0" and row["verdict"] == "not measurable here"  # says why


def test_the_verdict_states_its_rule(tmp_path):
    """Claim 1's interval excludes 0 yet it is "as effective" within a tolerance: the table says so."""
    rule = "reproduced if the CI of energy − CE lies within ±5 points and the energy attack's CI lies below 10%"
    claim = {**CLAIM_1, "metric": "accuracy under L∞ PGD-20 (Wilson CIs); " + rule}
    (row,) = verdict_table("01", _audit(tmp_path, claim)).rows
    assert row["verdict"] == f"reproduced<br>({rule})"
    assert decision_rule("masking check; masking (not reproduced) if a CI lies above 0").startswith("masking")
    assert decision_rule("SSIM of samples to their nearest training image") == ""


def test_html_escapes_the_audit_text(tmp_path):
    bad = {**CLAIM_1, "paper": "<script>x</script> a < b"}
    page = verdict_table("01", _audit(tmp_path, bad))._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_a_notebook_without_claims_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="notebooks with claims: 01, 07"):
        verdict_table("00", _audit(tmp_path, CLAIM_1, CLAIM_7))


def test_every_claim_of_the_audit_belongs_to_a_notebook_and_has_a_scale_line():
    audit = json.loads((REPO / "figures" / "audit.json").read_text())
    owners = {c["id"]: claim_notebook(c["claim"]) for c in audit["claims"]}
    assert all(owners.values()), owners
    assert set(SCALE_NOTES) >= set(owners)
    assert claim_notebook("Fig. 6 / Tab. 2: ...") == "06" and claim_notebook("no figure") is None
    for nb in sorted(set(owners.values())):
        assert verdict_table(nb).rows  # the shipped audit renders for each notebook


NOTEBOOKS = sorted((REPO / "notebooks").glob("0[1-9]_*.py"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_ends_with_its_verdict_cell(path):
    import jupytext

    cells = jupytext.read(path).cells
    assert cells[-2].cell_type == "markdown" and cells[-2].source.startswith("## What holds at our scale")
    assert cells[-1].cell_type == "code"
    # run the cell as the notebook does (however its import is written): its value is this notebook's table
    tree = ast.parse(cells[-1].source)
    assert isinstance(tree.body[-1], ast.Expr), "the verdict cell ends with the table it shows"
    scope: dict = {}
    exec(compile(ast.Module(tree.body[:-1], type_ignores=[]), path.name, "exec"), scope)
    shown = eval(compile(ast.Expression(tree.body[-1].value), path.name, "eval"), scope)
    assert shown.rows == verdict_table(path.name[:2]).rows and shown.rows, path.name


def test_claim_effects_orient_every_part_and_keep_its_verdict(tmp_path):
    """The hero figure's rows (figures/claims.png): one per generation part, in the paper's direction."""
    from jeat_core.explore.figures import save_claims
    from jeat_core.paper.claims import claim_effects

    part = {"name": "6a", "a": "jeat", "b": "at", "paper_direction": "a<b", "verdict": "reproduced",
            "comparisons": [{"feature_space": "eval-A/std", "metric": "kid", "diff": -0.03, "ci": [-0.05, -0.01],
                             "n": 1000, "paired": True, "n_boot": 2000, "training_seeds": 3}]}
    report = {"smoke": False, "claims": [
        {"id": 6, "claim": "Fig. 6 / Tab. 2: x", "reproduced": "reproduced", "ours": {}, "parts": [part]},
        {"id": 8, "claim": "Tab. 3: y", "reproduced": "not reproduced",
         "ours": {"jeat_minus_jem": {"diff": 0.05, "ci": [0.01, 0.09]}}},
        {"id": 9, "claim": "Fig. 7: z", "reproduced": "not measurable here", "ours": None}]}
    rows = claim_effects(report)
    assert [r["label"][:2] for r in rows] == ["6a", "8:", "9:"]
    assert rows[0]["direction"] == -1 and rows[0]["value"] == -0.03 and "3 run(s)" in rows[0]["unit"]
    assert rows[1]["null"] == 0.10 and rows[1]["verdict"] == "not reproduced"
    assert rows[2]["value"] is None and rows[2]["verdict"] == "not measurable here"
    path = tmp_path / "audit.json"
    path.write_text(json.dumps(report))
    pdf, png = save_claims(path, tmp_path)
    assert png.stat().st_size > 10_000 and pdf.exists()


def test_generation_markdown_lists_every_space_and_set():
    from jeat_core.measure import rulers
    from jeat_core.paper.verdicts import generation_markdown

    cmp = [{"feature_space": s, "metric": m, "diff": d, "ci": [d - 0.01, d + 0.01], "ci_level": 0.975, "n": 10,
            "paired": True, "n_boot": 2000, "training_seeds": 3}
           for s, d in (("eval-A/std", -0.05), ("eval-B/std", 0.02)) for m in ("kid", "fid")]
    metrics = {"kid": 0.2, "fid": 3.0, "precision": 0.5, "recall": 0.4, "density": 0.3, "coverage": 0.2,
               "eval_acc": 0.9, "eval_acc_ci": [0.8, 0.95]}
    report = {"claims": [{"id": 6, "n": 10, "parts": [{"name": "6a", "a": "jeat", "b": "at", "paper_direction": "a<b",
                                                         "verdict": "depends on the ruler", "comparisons": cmp}],
                          "ours": {"spaces": ["eval-A/std", "eval-B/std"],
                                   "sets": {"jeat (Eq. 17)": {"sampler": "Langevin η 1, K 20, s 0.001",
                                                              "eval-A/std": metrics, "eval-A/raw": {"kid": 14.0}}}}}]}
    md = generation_markdown(report)
    assert "| **6a** | jeat vs at | **depends on the ruler** | eval-A/std | -0.05 [-0.06, -0.04] |" in md
    assert "| eval-B/std | +0.02 [+0.01, +0.03] | +0.02 [+0.01, +0.03] | 97.50% | 3 |" in md
    diagnostic = [s.name for s in rulers.of_role("diagnostic")]  # one column each, "—" where not measured
    assert "| evaluator acc. [95% CI] | " + " | ".join(f"KID {d} (diagnostic)" for d in diagnostic) + " |" in md
    assert "| jeat (Eq. 17) (10) | Langevin η 1, K 20, s 0.001 | 0.2 | 3 | 0.500 | 0.400 | 0.300 | 0.200 | " \
           "90.0% [80.0%, 95.0%] | " + " | ".join("14" if d == "eval-A/raw" else "—" for d in diagnostic) + " |" in md


def test_every_number_in_a_verdict_table_lies_in_its_own_interval():
    """An interval shown beside a number is that number's: it contains it (a number must never
    borrow the next key's interval, as by_apgd_ce once took square_minus_apgd_ce's)."""
    import json
    from pathlib import Path

    from jeat_core.paper.verdicts import _entries

    report = json.loads((Path(__file__).resolve().parent.parent / "figures" / "audit.json").read_text())
    bad = []
    for c in report["claims"]:
        if isinstance(c.get("ours"), dict) and not c.get("parts"):
            for e in _entries(c["ours"]):
                for name, v, lo, hi in re.findall(r"([\w.-]+) (-?[\d.e+-]+) \[(-?[\d.e+-]+), (-?[\d.e+-]+)\]", e):
                    if not float(lo) - 1e-3 <= float(v) <= float(hi) + 1e-3:
                        bad.append(f"claim {c['id']}: {name} {v} [{lo}, {hi}]")
    assert not bad, bad

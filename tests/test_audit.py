"""`jeat audit`: metric functions on cases with known answers, and the smoke run end to end."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_cnn

from jeat_core.measure import rulers, stats
from jeat_core.measure.verdict_rules import ONE_RUN
from jeat_core.paper.audit import CLAIMS, VERDICTS, frechet_distance, inception_score, penultimate


def test_fid_of_a_set_with_itself_is_zero_and_matches_scipy():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 16, generator=g, dtype=torch.float64)
    b = torch.randn(300, 16, generator=g, dtype=torch.float64) @ torch.randn(16, 16, generator=g,
                                                                              dtype=torch.float64) * 0.5 + 1.0
    assert abs(frechet_distance(a, a)) < 1e-6
    # reference: the textbook formula with scipy's matrix square root
    mu1, mu2 = a.mean(0).numpy(), b.mean(0).numpy()
    s1, s2 = np.cov(a.numpy().T), np.cov(b.numpy().T)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy_linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)
    # a pure shift of the mean by d adds |d|^2
    assert frechet_distance(a, a + 2.0) == pytest.approx(16 * 4.0, rel=1e-6)


def test_inception_score_known_values():
    one_hot_uniform = torch.eye(10).repeat(5, 1)  # confident, every class equally often
    assert inception_score(one_hot_uniform) == pytest.approx(10.0, rel=1e-6)
    assert inception_score(torch.full((20, 10), 0.1)) == pytest.approx(1.0, rel=1e-6)  # uninformative
    assert inception_score(torch.eye(10)[[3] * 20]) == pytest.approx(1.0, rel=1e-6)  # one class only


def test_penultimate_is_the_input_of_the_last_linear_layer():
    m = tiny_cnn(0)
    x = torch.rand(5, 3, 32, 32)
    f, p = penultimate(m, x, batch_size=2)
    with torch.no_grad():
        ref = m.head[:-1](m.features(x))
        assert torch.allclose(f, ref, atol=1e-6)
        assert torch.allclose(p, m(x).softmax(1), atol=1e-6)


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_zoo")  # the tiny zoo is trained once, on one worker
def test_audit_smoke_json(tiny_zoo, data_root, monkeypatch, capsys, tmp_path):
    from jeat_core.cli import main

    monkeypatch.setenv("JEAT_CHECKPOINTS", str(tiny_zoo))
    assert main(["audit", "--smoke", "--json", "--data-root", data_root, "--out", str(tmp_path / "audit.md")]) == 0
    report = json.loads(capsys.readouterr().out)
    claims = report["claims"]
    assert len(claims) >= 9 and [c["id"] for c in claims] == list(range(1, len(claims) + 1))
    gen_ids = set(report["generation_claims"])
    for c in claims:
        keys = {"id", "claim", "paper", "ours", "metric", "n", "reproduced", "note", "seconds", "source", "inputs"}
        assert set(c) == keys | ({"parts"} if c["id"] in gen_ids | {3, 11} else set()) | (
            {"training_seeds"} if c["id"] == 2 else set()), c
        assert c["source"] == ("added" if c["id"] == 10 else "paper")
        # the cache's record of what was read: every model the claim names, by its shipped name, hashed
        assert {f"cifar10-cpu/{m}" for m in next(k.models for k in CLAIMS if k.id == c["id"])} <= set(
            name for name, h in c["inputs"]["reads"].items() if h != "absent"), c["inputs"]
        assert c["reproduced"] in VERDICTS and c["claim"] and c["paper"] and c["metric"]
        assert "{" not in c["metric"], c["metric"]  # sample sizes filled in, no template left
        # every model exists in the tiny zoo, so every claim is measured
        assert c["reproduced"] != "not measurable here" and c["ours"] is not None and c["n"] > 0, c
        # every numeric claim carries 95% intervals
        assert '_ci' in json.dumps(c["ours"]) or '"ci' in json.dumps(c["ours"]), c
    gen = [c for c in claims if c["id"] in report["generation_claims"]]
    assert len(gen) == 3
    for c in gen:  # the contract of docs/evaluation.md (checked on the committed audit.json by test_audit_contract)
        check_generation_contract(c, min_boot=200, min_fid_boot=20)
        sets = c["ours"]["sets"]  # real and seed baselines beside every set, in every ruler (diagnostics too)
        assert {"real test images [0, n)", "class-Gaussian seeds"} <= set(sets)
        assert all(set(rulers.RULERS) <= set(r) for r in sets.values())  # the tiny zoo ships every evaluator
        assert set(c["ours"]["diagnostic_kid"]) == {p["name"] for p in c["parts"]}
        assert all([x["feature_space"] for x in v] == [s.name for s in rulers.of_role("diagnostic")]
                   for v in c["ours"]["diagnostic_kid"].values())
        assert all("eval_acc_ci" in r["eval-A/std"] and "density" in r["eval-A/std"] for r in sets.values())
    six = next(c for c in gen if c["id"] == 6)
    from jeat_core.paper.audit_generation import UNIFORM  # Algorithm 1's U(0, 1) starts, scored beside the seeds
    assert UNIFORM in six["ours"]["sets"] and all(f"{m} (Eq. 17) from {UNIFORM}" in six["ours"]["sets"]
                                                  for m in ("at", "prejeat", "jeat"))
    by = {p["name"]: p for p in six["parts"]}  # the tiny zoo ships at-s1 and jeat-s1, not prejeat-s1
    assert by["6a"]["runs"] == {"a": ["jeat", "jeat-s1"], "b": ["at", "at-s1"]}
    assert by["6a"]["comparisons"][0]["training_seeds"] == 2 and by["6b"]["comparisons"][0]["training_seeds"] == 1
    four = next(c for c in gen if c["id"] == 4)["parts"][0]  # Eq. 17 vs 16 over AT's runs, paired
    assert four["runs"] == {"a": ["at", "at-s1"], "b": ["at", "at-s1"]}
    assert four["comparisons"][0]["interval"] == "paired t on per-run differences"
    flat = {p["name"]: p for p in claims[2]["parts"]}  # claim 3 in parts, decided over runs where both sides have 2
    assert sorted(flat) == ["3a", "3b", "3c"] and len(flat["3a"]["comparisons"]) == 3
    assert flat["3a"]["verdict"] == ONE_RUN  # the tiny zoo ships one standard run
    assert flat["3c"]["comparisons"][0]["interval"] == "Welch t on run means"  # jeat, jeat-s1 vs at, at-s1
    robust = claims[10]
    assert robust["id"] == 11 and [p["name"] for p in robust["parts"]] == ["11a", "11b"]
    assert robust["parts"][0]["comparisons"][0]["runs_a"] and robust["reproduced"] in VERDICTS
    fig3 = claims[1]  # Fig. 3 over the AT runs the tiny zoo ships (at, at-s1): pooled and per run
    assert fig3["training_seeds"] == 2 and list(fig3["ours"]) == ["pooled", "at", "at-s1"]
    assert fig3["n"] == fig3["ours"]["pooled"]["n_logged"] == fig3["ours"]["at"]["n_logged"] + fig3["ours"]["at-s1"][
        "n_logged"]
    md = (tmp_path / "audit.md").read_text()
    assert md.count("\n| ") >= 10 and json.loads((tmp_path / "audit.json").read_text())["claims"] == claims


def check_generation_contract(c: dict, *, min_boot: int = 2000, min_fid_boot: int = 500, min_spaces: int = 3) -> None:
    """Issue 21's contract on one generation claim record of ``audit.json``, verdicts re-derived."""
    from jeat_core.measure.verdict_rules import generation_claim_verdict, part_verdict

    assert c["parts"], c
    for p in c["parts"]:
        assert {"name", "a", "b", "paper_direction", "verdict", "comparisons"} <= set(p)
        assert p["paper_direction"] in ("a<b", "a>b")
        kids = [x for x in p["comparisons"] if x["metric"] == "kid"]
        assert kids[0] is p["comparisons"][0] and kids[0]["feature_space"] == "eval-A/std"  # primary first
        assert len({x["feature_space"] for x in kids}) >= min_spaces
        diagnostic = {s.name for s in rulers.of_role("diagnostic")}  # shown, never a verdict
        assert diagnostic.isdisjoint(x["feature_space"] for x in p["comparisons"])
        for x in p["comparisons"]:
            assert {"feature_space", "metric", "diff", "ci", "n", "paired", "n_boot", "training_seeds"} <= set(x)
            assert x["paired"] is True and x["ci"][0] <= x["ci"][1] and x["n"] > 0 and x["training_seeds"] >= 1
            assert x["n_boot"] >= (min_boot if x["metric"] == "kid" else min_fid_boot)
            check_run_level(x, paired=p["a"].split(" (")[0] == p["b"].split(" (")[0])
        assert p["verdict"] == part_verdict(p["comparisons"], p["paper_direction"]), p
    assert c["reproduced"] == generation_claim_verdict([p["verdict"] for p in c["parts"]])


def check_run_level(x: dict, *, paired: bool = False) -> None:
    """A comparison's interval recomputed from the per-run values it stores: with two or more runs a side,
    the t-interval of jeat_core.measure.stats at the stored level (Welch, or paired when one set of runs is
    measured two ways); with one, the record says it is not decided over runs."""
    a, b = x.get("runs_a", []), x.get("runs_b", [])
    assert len(a) == len(b) if paired else True
    if min(len(a), len(b)) >= 2:
        rl = (stats.paired if paired else stats.welch)(a, b)
        # the records round ci and diff to 4 significant digits; the run values keep full precision
        assert x["ci"] == pytest.approx(list(rl.ci(x["ci_level"])), rel=1e-3, abs=1e-9), x
        assert x["diff"] == pytest.approx(rl.estimate, rel=1e-3, abs=1e-9) and x["interval"] == stats.METHODS[rl.method]
    else:
        assert ONE_RUN in x["interval"], x


def test_audit_reports_missing_models(tmp_path, data_root, monkeypatch):
    from jeat_core.paper.audit import run_audit

    monkeypatch.setenv("JEAT_CHECKPOINTS", str(tmp_path))  # an empty zoo
    monkeypatch.setattr("jeat_core.core.checkpoints.shipped_root", lambda: tmp_path)
    report = run_audit(smoke=True, data_root=data_root)
    assert {c["reproduced"] for c in report["claims"]} == {"not measurable here"}
    assert all("not shipped" in c["note"] for c in report["claims"])


def test_context_computes_once_and_takes_a_tuned_sampler(monkeypatch):
    """`Context.cached` computes a key once; `use_sampler` sets a loaded model's sampler (what
    `generation_set` then uses) without anyone reaching into the context's cache."""
    from jeat_core.paper import experiments as ex

    loads = []
    monkeypatch.setattr(ex, "load_model", lambda path: loads.append(path) or ("model", {"name": path}))
    ctx = ex.Context()
    assert ctx.cached("key", lambda: [1]) is ctx.cached("key", lambda: [2])
    ctx.use_sampler("at", "joint", {"step": "l2"})
    assert ctx.manifests(["at"]) == {"at": {"name": "cifar10-cpu/at", "sampler": {"joint": {"step": "l2"}}}}
    assert ctx.models(["at"]) == {"at": "model"} and loads == ["cifar10-cpu/at"]


def test_committed_audit_meets_the_generation_contract():
    """figures/audit.json as committed: claims 4-6 carry parts by the protocol of docs/evaluation.md (primary
    KID first, >= 3 KID feature spaces, paired, >= 2,000 KID and >= 500 FID resamples, verdicts re-derived
    from the stored intervals), and every verdict counted in its tally."""
    from jeat_core.paper.audit import tally

    report = json.loads((Path(__file__).resolve().parent.parent / "figures" / "audit.json").read_text())
    assert not report["smoke"]
    gen = {c["id"]: c for c in report["claims"] if c["id"] in (4, 5, 6)}
    assert sorted(gen) == [4, 5, 6]
    for c in gen.values():
        check_generation_contract(c)
    assert [p["name"] for c in gen.values() for p in c["parts"]] == ["4a", "5a", "5b", "6a", "6b", "6c"]
    for c in report["claims"]:  # the other claims decided over runs: every interval from its stored run values
        if c["id"] in (3, 11):
            for p in c["parts"]:
                for x in p["comparisons"]:
                    check_run_level(x)
    assert report["tally"] == tally(report) and report["tally_added"] == tally(report, "added")


def test_fig3_pools_the_runs_but_one_contradicting_run_decides(monkeypatch):
    """Claim 2 is scored on the logged steps of all AT runs pooled; a run whose own intervals
    contradict the claim makes it not reproduced even when the pool would reproduce it."""
    from pathlib import Path
    from types import SimpleNamespace

    from jeat_core.paper import audit

    def log(n, lowered):  # Δ_x E > 0 always; the update lowers E(x, y) at the first `lowered` steps; E(x) alternates
        return [{"step": 10 * (i + 1), "dxE_joint_mean": 1.0, "dthetaE_joint_mean": -1.0 if i < lowered else 1.0,
                 "dthetaE_marginal_mean": (-1.0) ** i} for i in range(n)]

    logs = {"at": log(1000, 990), "at-s1": log(1000, 985)}
    monkeypatch.setattr(audit, "resolve", lambda name: Path(name))  # the names _fig3 calls
    monkeypatch.setattr(audit, "read_energy_log", lambda path: logs[path.parent.name])
    ctx = SimpleNamespace(preset="p", training_runs=lambda method: list(logs))
    r = audit._fig3(ctx, None, ("at",))
    assert r["verdict"] == "reproduced" and r["training_seeds"] == 2 and r["n"] == 2000
    assert r["ours"]["pooled"]["share_dthetaE_joint_neg"] == (990 + 985) / 2000
    logs["at-s2"] = log(20, 10)  # a short run where the update lowers E(x, y) only half the time
    r = audit._fig3(ctx, None, ("at",))
    assert audit.fig3_run_verdict(r["ours"]["pooled"]) == "reproduced"  # the pool alone would say so
    assert r["ours"]["at-s2"]["verdict"] == "not reproduced" and r["verdict"] == "not reproduced"
    logs["at-s2"] = log(20, 19)  # short and uncertain, but not contradicting: the pool decides
    assert audit._fig3(ctx, None, ("at",))["verdict"] == "reproduced"


def test_only_reruns_the_named_claims_and_keeps_the_rest(monkeypatch, tmp_path, capsys):
    """`jeat audit --only 2 --out F` re-measures claim 2 and keeps claim 1 from F's JSON, refusing a
    report of other settings or an unknown claim with a one-line error."""
    import json

    from jeat_core.cli import main
    from jeat_core.paper import audit

    runs = []

    def fake(cid, value):
        def measure(ctx, st, models):
            runs.append(cid)
            return {"ours": {"value": value}, "n": 1, "verdict": "reproduced", "note": ""}
        return audit.Claim(cid, f"claim {cid}", "paper", "metric", (), measure)

    monkeypatch.setattr(audit, "CLAIMS", [fake(1, "first"), fake(2, "first")])
    out = tmp_path / "audit.md"
    assert main(["audit", "--smoke", "--out", str(out)]) == 0 and runs == [1, 2]
    monkeypatch.setattr(audit, "CLAIMS", [fake(1, "second"), fake(2, "second")])
    runs.clear()
    assert main(["audit", "--smoke", "--only", "2", "--out", str(out)]) == 0 and runs == [2]
    report = json.loads(out.with_suffix(".json").read_text())
    assert [c["ours"]["value"] for c in report["claims"]] == ["first", "second"]
    assert report["reran"][0]["claims"] == [2] and "claims 2 re-measured on" in out.read_text()
    assert report["seconds"] == round(sum(c["seconds"] for c in report["claims"]), 1)
    capsys.readouterr()
    for args in (["--only", "7"], ["--only", "x"]):  # unknown claim, not a number
        assert main(["audit", "--smoke", *args, "--out", str(out)]) == 2
        assert capsys.readouterr().err.startswith("jeat audit: error: --only")
    assert main(["audit", "--only", "2", "--out", str(out)]) == 2  # the report is a smoke run, this is not
    assert "other settings" in capsys.readouterr().err
    assert main(["audit", "--smoke", "--only", "2", "--out", str(tmp_path / "none.md")]) == 2  # nothing to keep
    assert "give --out with its audit.md" in capsys.readouterr().err

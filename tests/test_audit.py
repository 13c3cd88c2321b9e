"""`jeat audit`: metric functions on cases with known answers, and the smoke run end to end."""

import json

import numpy as np
import pytest
import torch
from conftest import tiny_cnn

from jeat_core.audit import VERDICTS, frechet_distance, inception_score, penultimate


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
def test_audit_smoke_json(tiny_zoo, data_root, monkeypatch, capsys, tmp_path):
    from jeat_core.cli import main

    monkeypatch.setenv("JEAT_CHECKPOINTS", str(tiny_zoo))
    assert main(["audit", "--smoke", "--json", "--data-root", data_root, "--out", str(tmp_path / "audit.md")]) == 0
    report = json.loads(capsys.readouterr().out)
    claims = report["claims"]
    assert len(claims) >= 9 and [c["id"] for c in claims] == list(range(1, len(claims) + 1))
    for c in claims:
        assert set(c) == {"id", "claim", "paper", "ours", "metric", "n", "reproduced", "note", "seconds"}, c
        assert c["reproduced"] in VERDICTS and c["claim"] and c["paper"] and c["metric"]
        assert "{" not in c["metric"], c["metric"]  # sample sizes filled in, no template left
        # every model exists in the tiny zoo, so every claim is measured
        assert c["reproduced"] != "not measurable here" and c["ours"] is not None and c["n"] > 0, c
        # every numeric claim carries 95% intervals
        assert '_ci' in json.dumps(c["ours"]) or '"ci' in json.dumps(c["ours"]), c
    gen = [c for c in claims if c["id"] in report["generation_claims"]]
    assert len(gen) == 3
    for c in gen:  # KID with CI, evaluator accuracy, real-vs-real floor and seed baseline beside every set
        assert "kid_ci" in json.dumps(c["ours"]) and "eval_acc" in json.dumps(c["ours"])
        assert {"real_vs_real", "seeds"} <= set(c["ours"]["baselines"])
    md = (tmp_path / "audit.md").read_text()
    assert md.count("\n| ") >= 10 and json.loads((tmp_path / "audit.json").read_text())["claims"] == claims


def test_audit_reports_missing_models(tmp_path, data_root, monkeypatch):
    from jeat_core.audit import run_audit

    monkeypatch.setenv("JEAT_CHECKPOINTS", str(tmp_path))  # an empty zoo
    monkeypatch.setattr("jeat_core.checkpoints.shipped_root", lambda: tmp_path)
    report = run_audit(smoke=True, data_root=data_root)
    assert {c["reproduced"] for c in report["claims"]} == {"not measurable here"}
    assert all("not shipped" in c["note"] for c in report["claims"])


def test_matched_distance_compares_at_the_better_samplers_distance():
    from jeat_core.experiments import matched_distance

    a = [{"sampler": "a1", "kid": 0.010, "l2_moved": 1.0}, {"sampler": "a2", "kid": 0.002, "l2_moved": 4.0}]
    b = [{"sampler": "b1", "kid": 0.020, "l2_moved": 1.0}, {"sampler": "b2", "kid": 0.005, "l2_moved": 3.5},
         {"sampler": "b3", "kid": 0.030, "l2_moved": 6.0}]
    m = matched_distance(a, b)
    # a's best (a2, 4.0) is the better sampler; b's row closest to 4.0 is b2 (not the a1/b1 pair at 1.0)
    assert (m["a"]["sampler"], m["b"]["sampler"]) == ("a2", "b2")
    m = matched_distance(b, a)  # symmetric in which side is better
    assert (m["a"]["sampler"], m["b"]["sampler"]) == ("b2", "a2")


def test_context_computes_once_and_takes_a_tuned_sampler(monkeypatch):
    """`Context.cached` computes a key once; `use_sampler` sets a loaded model's sampler (what
    `generation_set` then uses) without anyone reaching into the context's cache."""
    from jeat_core import experiments as ex

    loads = []
    monkeypatch.setattr(ex, "load_model", lambda path: loads.append(path) or ("model", {"name": path}))
    ctx = ex.Context()
    assert ctx.cached("key", lambda: [1]) is ctx.cached("key", lambda: [2])
    ctx.use_sampler("at", "joint", {"step": "l2"})
    assert ctx.manifests(["at"]) == {"at": {"name": "cifar10-cpu/at", "sampler": {"joint": {"step": "l2"}}}}
    assert ctx.models(["at"]) == {"at": "model"} and loads == ["cifar10-cpu/at"]

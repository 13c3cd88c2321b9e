"""AutoAttack, PGD with restarts and the masking check (jeat_core.measure.robustness), their CLI and audit paths.

AutoAttack runs here with few iterations and Square queries (``steps``, ``n_queries``) on at most 32
images: the code path and its invariants, not the shipped models' numbers."""

import functools
import json
import sys

import pytest
import torch
from conftest import tiny_cnn

from jeat_core.measure import robustness
from jeat_core.measure.metrics import ATTACKS, parse_attack, robust_accuracy
from jeat_core.measure.robustness import (
    AA_STAGES,
    INSTALL_PEER,
    autoattack,
    masking_check,
    masks_of,
    pgd_restarts,
    single_attack,
)

AA_FAST = {"steps": 5, "n_queries": 200}  # the standard is 100 and 5,000


class _ZeroGrad(torch.autograd.Function):
    """The identity whose backward pass returns a zero gradient: masking by construction."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return torch.zeros_like(g)


class Masked(torch.nn.Module):
    """``base`` with a zero input gradient: exactly as (non-)robust as ``base``, but gradient attacks
    see nothing. Only a gradient-free attack (Square) can find its adversarial examples."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, x):
        return self.base(_ZeroGrad.apply(x))


def check_record(rec: dict) -> None:
    """The invariants of a cascade record: per-stage robust accuracy non-increasing from the clean
    accuracy, the worst case ≤ every single attack where it ran, counts and intervals consistent."""
    n, masks = rec["n"], masks_of(rec)
    names = list(masks)
    stages = {s["stage"]: s for s in rec["stages"]}
    assert names[0] == "clean" and names[1:] == list(stages) and all(len(m) == n for m in masks.values())
    accs = [rec["clean_acc"]] + [s["robust_acc"] for s in rec["stages"]]
    assert accs == sorted(accs, reverse=True), accs  # non-increasing
    assert rec["robust_acc"] == accs[-1] and rec["robust_ci"][0] <= rec["robust_acc"] <= rec["robust_ci"][1]
    for a, b in zip(names, names[1:]):
        assert not (masks[b] & ~masks[a]).any()  # robust after a stage ⇒ robust after the one before
        assert stages[b]["attacked"] == int(masks[a].sum())
        assert int(masks[b].sum()) == round(stages[b]["robust_acc"] * n)
    worst = masks[names[-1]]
    for name, (ran, robust) in single_attack(masks).items():
        assert not (worst & ran & ~robust).any(), name  # the worst case is ≤ the attack wherever it ran
    ran, robust = single_attack(masks)[names[1]]
    assert torch.equal(ran, masks["clean"]) and worst.sum() <= robust.sum()  # the first stage ran on every point


@pytest.fixture(scope="module")
def images(cifar_test):
    x, y = cifar_test.tensors(32)
    return x, y


@pytest.fixture(scope="module")
def masked_runs(standard_model, images):
    """AutoAttack and PGD-20 on the undefended model and on its zero-gradient twin (same 16 images)."""
    x, y = images[0][:16], images[1][:16]
    out = {}
    for name, m in (("plain", standard_model), ("masked", Masked(standard_model).eval())):
        aa = autoattack(m, x, y, **AA_FAST)
        pgd20 = masks_of(pgd_restarts(m, x, y, n_steps=20, restarts=1))["restart-1"]
        out[name] = (aa, {"pgd20": pgd20, **masks_of(aa)})
    return out


def test_attack_names_are_a_registry():
    assert [parse_attack(a) for a in ATTACKS] == [("none", 0, 1), ("ce", 1, 1), ("ce", 20, 1), ("energy", 20, 1),
                                                   ("ce", 100, 5), ("autoattack", 0, 1)]
    assert parse_attack("energy-pgd10-3") == ("energy", 10, 3)
    for bad in ("pgd100-0", "pgd100-", "autoattack-5", "aa", "square", "pgd-5"):
        with pytest.raises(ValueError, match="unknown attack"):
            parse_attack(bad)


def test_autoattack_agrees_with_pgd_on_an_undefended_model(standard_model, images):
    """Both ≈ 0% on an undefended classifier (its PGD-20 is 0% on 1,000 images)."""
    x, y = images
    aa = autoattack(standard_model, x, y, **AA_FAST)
    pgd = robust_accuracy(standard_model, x, y, attack="pgd20")
    assert aa["clean_acc"] == pgd["clean_acc"] > 0.5
    assert aa["robust_acc"] <= 1 / 32 and pgd["robust_acc"] <= 1 / 32
    assert aa["attack"] == "autoattack" and [s["stage"] for s in aa["stages"]] == list(AA_STAGES) and aa["seconds"] > 0
    assert aa["settings"]["steps"] == AA_FAST["steps"] and aa["settings"]["library"].startswith("torchattacks")
    check_record(aa)


@pytest.mark.slow  # over 15 s: `make test` runs it, the inner loop (`make test-fast`) does not
def test_stage_invariants_where_every_stage_matters(masked_runs):
    aa, _ = masked_runs["masked"]
    check_record(aa)
    s = {s["stage"]: s for s in aa["stages"]}
    # gradients see nothing, Square does: it breaks most of what the gradient attacks left
    assert s["square"]["robust_acc"] < s["fab-t"]["robust_acc"] - 0.2


def test_masking_check_catches_a_zero_gradient_model(masked_runs):
    (_, plain), (_, masked) = masked_runs["plain"], masked_runs["masked"]
    bad = masking_check(masked, plain)
    assert bad["verdict"] == "masking", bad
    assert bad["only_square"] > bad["by_apgd_ce"] and bad["excess_ci"][0] > 0 and bad["gap"] > 0.3
    ok = masking_check(plain, plain)
    # 16 images cannot bound the share only Square breaks below 1 point (Wilson upper bound of 0/16 ≈ 19%)
    assert ok["verdict"] == "inconclusive" and ok["excess"] == 0 and ok["excess_ci"][1] <= ok["tolerance"], ok
    assert ok["square_minus_apgd_ce_ci"][1] < 0
    with pytest.raises(ValueError, match="lacks pgd20"):
        masking_check({k: v for k, v in masked.items() if k != "pgd20"}, plain)
    # the tolerance is the reference's own gap (0 for an undefended reference); Square by a Wilson bound
    assert bad["tolerance"] == ok["tolerance"] == ok["reference_gap"] == 0
    assert bad["only_square_ci"][0] > bad["square_bound"] and ok["only_square"] == 0 < ok["only_square_ci"][1]
    # runs: a list of one is the single check; two or more decide over runs (paired t on the pairs' means),
    # and the interval widens when the runs disagree (training-seed variance)
    assert masking_check([masked], [plain]) == {**bad}
    two = masking_check([masked, plain], [plain, plain])
    assert two["training_runs"] == 2 and two["gap"] == pytest.approx((bad["gap"] + ok["gap"]) / 2)
    lo, hi = two["excess_ci"]
    assert lo < bad["excess_ci"][0] and lo < two["excess"] < hi and "paired t" in two["interval"]
    assert two["runs_excess"] == pytest.approx([bad["excess"], ok["excess"]])
    with pytest.raises(ValueError, match="pairs runs"):
        masking_check([masked, plain], [plain])


def test_masking_rule_reads_the_tolerance_and_the_square_bound():
    """Synthetic runs: an excess inside the reference's gap is no masking sign even when its interval
    excludes 0 (the earlier rule called that masking); an excess beyond it is masking; a model that only
    Square breaks at 2% is masking by the Square bound alone."""
    n = 1000
    ones, zeros = torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)

    def run(pgd, aa, only_square=0.0):
        fab = aa.clone()
        k = int(only_square * n)
        fab[-k:] = True if k else fab[-k:]  # robust through FAB-T, broken by Square
        if k:
            aa = aa.clone()
            aa[-k:] = False
        return {"pgd20": pgd, "clean": ones, "apgd-ce": fab, "apgd-t": fab, "fab-t": fab, "square": aa}

    def share(p):
        m = zeros.clone()
        m[:int(p * n)] = True
        return m

    ref = run(share(0.35), share(0.30))           # AT-like: gap 5 points
    small = run(share(0.35), share(0.28))         # gap 7: excess 2 < 5
    large = run(share(0.45), share(0.25))         # gap 20: excess 15 > 5
    sq = run(share(0.35), share(0.30), only_square=0.02)
    assert masking_check(small, ref)["excess_ci"][0] > 0
    assert masking_check(small, ref)["verdict"] == "no masking sign"
    assert masking_check(large, ref)["verdict"] == "masking"
    assert masking_check(sq, ref)["verdict"] == "masking"


def test_pgd_restarts_robust_only_if_every_restart_fails(toy):
    x, y = toy.tensors(64)
    model = tiny_cnn(1)
    r = robust_accuracy(model, x, y, attack="pgd3-4", eps=16 / 255)
    assert r == {**pgd_restarts(model, x, y, n_steps=3, restarts=4, eps=16 / 255), "seconds": r["seconds"]}
    assert r["attack"] == "pgd3-4" and [s["stage"] for s in r["stages"]] == [f"restart-{i}" for i in range(1, 5)]
    check_record(r)
    one = robust_accuracy(model, x, y, attack="pgd3", eps=16 / 255)
    assert r["robust_acc"] <= one["robust_acc"] + 2 / 64  # restarts only add adversarial examples (up to the starts)


def _no_torchattacks(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # `import torchattacks` now raises ImportError
    assert not robustness.have_torchattacks()


def test_missing_peer_library_is_one_line_and_never_agrees(monkeypatch, capsys, toy, tmp_path):
    from jeat_core.cli import main
    from jeat_core.paper.audit import CLAIMS, Settings
    from jeat_core.paper.experiments import Context

    _no_torchattacks(monkeypatch)
    with pytest.raises(robustness.PeerLibraryMissing, match="pip install --no-deps torchattacks==3.5.1"):
        autoattack(tiny_cnn(0), *toy.tensors(4))
    # the CLI says so before it loads anything (the model does not even exist)
    assert main(["eval", "--model", str(tmp_path / "missing"), "--attack", "autoattack"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and INSTALL_PEER in err and err.startswith("jeat eval: error:")
    # the audit's claim 8: not measurable here, never "agree"
    (claim,) = [c for c in CLAIMS if c.id == 8]
    ctx = Context()
    x, y = toy.tensors(64)
    ctx._cache["test"] = (x, y)
    for i, name in enumerate(claim.models):
        ctx._cache[("model", name)] = (tiny_cnn(i), {})
    res = claim.run(ctx, Settings.smoke_run())
    assert res["reproduced"] == "not measurable here" and "agree" not in res["note"], res
    assert "torchattacks is not installed" in res["note"] and INSTALL_PEER in res["note"]


def test_claim_8_quotes_the_recorded_autoattack_beside_pgd(monkeypatch, toy):
    """Claim 8 (Tab. 3) states a model's recorded standard AutoAttack beside its PGD-20, and only a
    standard one (a reduced budget is not what RobustBench quotes)."""
    from jeat_core.measure.robustness import STANDARD_BUDGET
    from jeat_core.paper.audit import CLAIMS, Settings
    from jeat_core.paper.experiments import Context

    _no_torchattacks(monkeypatch)  # the peer cross-check is not what this test is about
    (claim,) = [c for c in CLAIMS if c.id == 8]
    ctx = Context()
    x, y = toy.tensors(64)
    ctx._cache["test"] = (x, y)
    record = {"attack": "autoattack", "eps": 8 / 255, "n": 1000, "robust_acc": 0.257, "robust_ci": [0.231, 0.285],
              "settings": dict(STANDARD_BUDGET)}
    reduced = dict(record, settings={**STANDARD_BUDGET, "n_queries": 50})
    manifests = dict(zip(claim.models, ({"evals": [record]}, {"evals": [reduced]}, {})))
    for i, name in enumerate(claim.models):
        ctx._cache[("model", name)] = (tiny_cnn(i), manifests[name])
    res = claim.run(ctx, Settings.smoke_run())
    first, second, third = claim.models
    assert res["ours"][first]["autoattack"] == {"robust": 0.257, "robust_ci": [0.231, 0.285], "n": 1000}
    assert "autoattack" not in res["ours"][second] and "autoattack" not in res["ours"][third]
    assert "recorded AutoAttack (standard): AT 25.7% [23.1, 28.5] (n = 1,000)" in res["note"], res["note"]


@pytest.mark.slow  # over 15 s: `make test` runs it, the inner loop (`make test-fast`) does not
def test_cli_records_autoattack_and_pgd_restarts(tmp_path, monkeypatch, capsys):
    from dataclasses import replace

    from jeat_core.cli import _show_eval, main
    from jeat_core.core.checkpoints import find_eval
    from jeat_core.train.training import fit, make_config

    out = tmp_path / "run"  # a tiny CNN trained 20 steps on the procedural set, saved as `jeat train` saves
    cfg = make_config("standard", "cpu", max_steps=20, log_every=0, checkpoint_every=0, eval_n=0, dataset="procedural",
                      model=replace(make_config("standard").model, kwargs={"widths": [8, 16], "hidden": 32}))
    fit(replace(cfg, optim=replace(cfg.optim, batch_size=32)), out=out, progress=False, device="cpu")
    monkeypatch.setattr(robustness, "autoattack", functools.partial(robustness.autoattack, steps=5, n_queries=50))
    monkeypatch.setenv("JEAT_CACHE", str(tmp_path / "cache"))
    capsys.readouterr()
    for attack in ("none", "pgd100-5", "autoattack"):
        assert main(["eval", "--model", str(out), "--attack", attack, "--n", "16", "--record", "--json"]) == 0
        res = json.loads(capsys.readouterr().out)
        assert res["attack"] == attack and res["n"] == 16
    shown = _show_eval(res)  # what `jeat eval` prints without --json
    assert "after apgd-ce" in shown and "after square" in shown and "per_example" not in shown
    manifest = json.loads((out / "manifest.json").read_text())
    assert find_eval(manifest, "none")["n"] == 16  # the plain records are kept beside the new ones
    for attack, stages in (("pgd100-5", [f"restart-{i}" for i in range(1, 6)]), ("autoattack", list(AA_STAGES))):
        rec = find_eval(manifest, attack)
        assert [s["stage"] for s in rec["stages"]] == stages and rec["seconds"] >= 0 and rec["n"] == 16
        assert all(set(s) == {"stage", "robust_acc", "robust_ci", "attacked"} for s in rec["stages"])
        check_record(rec)
    assert find_eval(manifest, "autoattack")["settings"]["n_queries"] == 50
    assert list((tmp_path / "cache" / "evals").iterdir()) == []  # the partial results are gone once recorded


@pytest.mark.slow  # over 15 s: `make test` runs it, the inner loop (`make test-fast`) does not
def test_masking_claim_reads_recorded_evals(toy):
    """Claim 10 uses the AutoAttack records in the manifests: without one a model is not measurable
    (and the command to record it is given); with them every model gets a masking verdict."""
    from jeat_core.core.checkpoints import record_eval
    from jeat_core.paper.audit import CLAIMS, VERDICTS, Settings
    from jeat_core.paper.experiments import Context

    (claim,) = [c for c in CLAIMS if c.id == 10]
    x, y = toy.tensors(16)
    models = {name: tiny_cnn(i) for i, name in enumerate(claim.models)}

    def ctx_with(manifests, seeds=()):
        ctx = Context()
        ctx._cache["test"] = (x, y)
        for name, m in models.items():
            ctx._cache[("model", name)] = (m, manifests[name])
        ctx.training_runs = lambda method: [method, *(f"{method}-{s}" for s in seeds if f"{method}-{s}" in manifests)]
        return ctx

    res = claim.run(ctx_with({n: {} for n in models}), Settings.smoke_run())
    assert res["reproduced"] == "not measurable here"
    assert "--attack autoattack" in res["ours"]["at"]["verdict"]
    recorded = {n: record_eval({}, autoattack(m, x, y, steps=3, n_queries=20)) for n, m in models.items()}
    res = claim.run(ctx_with(recorded), Settings.smoke_run())
    assert res["reproduced"] in VERDICTS and res["reproduced"] != "not measurable here" and res["n"] == 16
    assert {r["verdict"] for r in res["ours"].values()} <= set(robustness.MASKING)
    assert "gap_ci" in res["ours"]["jeat"] and "excess_ci" in res["ours"]["jeat"]
    # a model recorded on fewer images pairs with AT on those; the others keep all of theirs
    recorded["noise-8"] = record_eval({}, autoattack(models["noise-8"], x[:8], y[:8], steps=3, n_queries=20))
    res = claim.run(ctx_with(recorded), Settings.smoke_run())
    assert res["ours"]["noise-8"]["n"] == 8 and res["ours"]["jeat"]["n"] == 16 and res["n"] == 8
    assert "(8 or 16)" in res["note"]
    # a full audit accepts only the standard version (100 iterations, 5,000 queries)
    res = claim.run(ctx_with(recorded), Settings())
    assert res["reproduced"] == "not measurable here" and "not the standard" in res["ours"]["at"]["verdict"]
    # training seeds: jeat-s1 pairs with at-s1 and the runs pool; a seed without a record is named, not used
    for i, run in enumerate(("at-s1", "jeat-s1", "prejeat-s1")):
        models[run] = tiny_cnn(10 + i)
    for r in ("at-s1", "jeat-s1"):
        recorded[r] = record_eval({}, autoattack(models[r], x, y, steps=3, n_queries=20))
    recorded["prejeat-s1"] = {}
    res = claim.run(ctx_with(recorded, seeds=("s1",)), Settings.smoke_run())
    jeat, prejeat = res["ours"]["jeat"], res["ours"]["prejeat"]
    assert jeat["training_runs"] == 2 and set(jeat["runs"]) == {"jeat", "jeat-s1"}
    assert jeat["runs"]["jeat-s1"]["reference"] == "at-s1" and "paired t over the run pairs" in res["note"]
    run_means = [jeat["runs"][r]["gap"] for r in ("jeat", "jeat-s1")]
    assert jeat["gap"] == pytest.approx(sum(run_means) / 2, abs=1e-3)
    assert prejeat["training_runs"] == 1 and prejeat["runs_without_autoattack"] == ["prejeat-s1"]
    assert "runs" not in res["ours"]["noise-8"]  # no extra seeds


@pytest.mark.parametrize("kind", ["autoattack", "pgd-restarts"])
def test_an_interrupted_evaluation_resumes_to_the_uninterrupted_result(toy, tmp_path, monkeypatch, kind):
    """With ``partial`` a cascade saves after every batch; killed in its second batch and run again,
    it skips the first and ends with exactly the per-example results of a run never interrupted
    (torchattacks seeds every call; PGD restarts reseed per batch)."""
    model, (x, y), path = tiny_cnn(0), toy.tensors(24), tmp_path / "partial.json"
    if kind == "autoattack":
        def measure(**kw):
            return autoattack(model, x, y, batch_size=8, **AA_FAST, **kw)
        builder = "autoattack_stages"
    else:
        def measure(**kw):
            return pgd_restarts(model, x, y, n_steps=3, restarts=2, eps=16 / 255, batch_size=8, **kw)
        builder = "pgd"
    whole = measure()
    original = getattr(robustness, builder)

    def boom():  # the first attack call after a batch was saved is interrupted
        if path.exists():
            raise KeyboardInterrupt

    if kind == "autoattack":
        def flaky_stages(*a, **kw):
            def wrap(f):
                def g(xb, yb):
                    boom()
                    return f(xb, yb)
                return g
            return {k: wrap(f) for k, f in original(*a, **kw).items()}
        monkeypatch.setattr(robustness, builder, flaky_stages)
    else:
        def flaky_pgd(*a, **kw):
            boom()
            return original(*a, **kw)
        monkeypatch.setattr(robustness, builder, flaky_pgd)
    with pytest.raises(KeyboardInterrupt):
        measure(partial=path)
    saved = json.loads(path.read_text())
    assert saved["done"] in (8, 16) and all(len(b) == saved["done"] for b in saved["per_example"].values())
    monkeypatch.setattr(robustness, builder, original)
    resumed = measure(partial=path)
    assert resumed["per_example"] == whole["per_example"] and resumed["stages"] == whole["stages"]
    # a partial file of another model is not used: the result is that model's own
    other = tiny_cnn(1)
    fresh = pgd_restarts(other, x, y, n_steps=3, restarts=2, eps=16 / 255, batch_size=8)
    assert pgd_restarts(other, x, y, n_steps=3, restarts=2, eps=16 / 255, batch_size=8,
                        partial=path)["per_example"] == fresh["per_example"]


def _record(attack, stages: dict, eps=8 / 255):
    masks = {k: torch.tensor(v, dtype=torch.bool) for k, v in stages.items()}
    settings = {"steps": 100, "n_queries": 5000} if attack == "autoattack" else {}
    return robustness.summarize(attack, masks, eps=eps, seconds=1.0, settings=settings)


def test_seed_table_cuts_to_the_common_images_and_pairs_the_gap():
    """Tab. 3 across training seeds: each run's AutoAttack on the first n images every run has (the
    shipped 8 cut to its seeds' 4), the PGD-100×5 − AutoAttack gap paired per image, a mean row
    with an interval over runs; a method missing a run's record gets no rows."""
    from jeat_core.paper.paper_items import table3_seed_rows

    def man(seed, aa, pgd=None):
        n = len(aa)
        evals = [{"attack": "none", "eps": 8 / 255, "n": 10000, "clean_acc": 0.6, "robust_acc": 0.6},
                 {"attack": "pgd20", "eps": 8 / 255, "n": 1000, "clean_acc": 0.6, "robust_acc": 0.35},
                 _record("autoattack", {"clean": [1] * n, "apgd-ce": aa, "apgd-t": aa, "fab-t": aa, "square": aa})]
        if pgd:
            evals.append(_record("pgd100-5", {"clean": [1] * len(pgd), "restart-1": pgd}))
        return {"config": {"seed": seed}, "evals": evals}

    manifests = {"at": man(0, [1, 1, 0, 0, 1, 1, 1, 1], pgd=[1, 1, 1, 0, 1, 1, 1, 1]),
                 "at-s1": man(1, [1, 0, 0, 0], pgd=[1, 0, 0, 0]), "at-s2": man(2, [1, 1, 1, 0], pgd=[1, 1, 1, 1]),
                 "jeat": man(0, [1, 0, 1, 0]), "jeat-s1": {"config": {"seed": 1}, "evals": []}}
    rows = table3_seed_rows(manifests)
    assert [r["run"] for r in rows] == ["at", "at-s1", "at-s2", "mean of 3 runs"]  # no JEAT: jeat-s1 has no record
    at, s1, s2, mean = rows
    assert all(r["n"] == 4 for r in rows)
    assert at["autoattack_acc"] == 0.5 and at["pgd100_5_acc"] == 0.75 and at["gap"] == 0.25  # first 4 images only
    assert s1["gap"] == 0 and s2["gap"] == 0.25 and s2["seed"] == 2
    assert mean["autoattack_acc"] == pytest.approx((0.5 + 0.25 + 0.75) / 3)
    lo, hi = mean["autoattack_ci"]
    assert lo < mean["autoattack_acc"] < hi and mean["spread"] == pytest.approx(0.5)
    assert mean["pgd20_acc"] == pytest.approx(0.35)
    manifests["at-s1"]["evals"] = manifests["at-s1"]["evals"][:3]  # no PGD-100×5 for one run: no mean gap
    rows = table3_seed_rows(manifests)
    assert rows[1]["gap"] is None and rows[-1]["gap"] is None and rows[-1]["autoattack_acc"] is not None

"""Protects the ablation table (jeat_core.paper.ablation, tools/ablation_table.py): a row is measured only on
shipped models with their own sampler of the named family, paired over the same seeds and test images, and
every row whose inputs are missing says what it waits for instead of estimating from a stand-in."""

import json

import pytest

from jeat_core.paper import ablation
from jeat_core.paper.experiments import Context, sampler_key, store_sampler


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_zoo")  # the tiny zoo is trained once, on one worker
def test_rows_are_measured_paired_or_say_what_they_wait_for(tiny_zoo, data_root, monkeypatch, tmp_path):
    monkeypatch.setenv("JEAT_CHECKPOINTS", str(tiny_zoo))
    entry = {"step": "langevin", "step_size": 1.0, "n_steps": 2, "noise_std": 0.01}
    for name in ("at", "jeat"):  # the tiny zoo's samplers of the tuned family (the only ones it has)
        store_sampler(tiny_zoo / "cifar10-cpu" / name, sampler_key("joint", "tuned"), entry)
    study = tmp_path / "study.json"
    study.write_text(json.dumps({"runs": [{"run": "probe-without", "trains": False, "steps": 40, "rollbacks": 3,
                                           "ce_last10": 2.3, "contrast_last10": 50.0}]}))
    devs = (ablation.Deviation("two models", "a", "b", ("at", "tuned"), ("jeat", "tuned")),
            ablation.Deviation("a sampler", "as written", "tuned", ("at", "as-written"), ("at", "tuned"),
                               robustness=False),
            ablation.Deviation("not shipped", "a", "b", ("at-pgd3", "tuned"), ("at", "tuned")),
            ablation.Deviation("stabiliser", "without", "with", study_run="probe-without"),
            ablation.Deviation("stabiliser not run", "without", "with", study_run="probe-missing"))
    rows = ablation.ablation_rows(Context(data_root=data_root), deviations=devs, study_path=study,
                                  per_class=2, n_pgd=12, n_aa=12, n_boot=100)
    two, sampler, missing, probe, not_run = rows
    assert two["runs"] == ablation.ONE_RUN and two["kid"]["n"] == 20 and two["kid"]["ruler"] == "eval-A/std"
    lo, hi = two["kid"]["ci"]
    assert lo <= two["kid"]["diff"] <= hi
    pgd = two["pgd20"]  # paired over the same 12 images: the difference is the difference of the means
    assert pgd["n"] == 12 and pgd["diff"] == pytest.approx(pgd["paper_side"] - pgd["ours"])
    assert "pending" in two["autoattack"]  # the tiny zoo's AutoAttack records are not the standard version
    assert "as-written sampler is not tuned" in sampler["pending"] and "kid" not in sampler
    assert missing["pending"] == "at-pgd3 is not shipped yet"
    assert probe["study"]["trains"] is False and probe["study"]["rollbacks"] == 3
    assert "has not run yet" in not_run["study"]["pending"]
    md = ablation.to_markdown(rows)
    assert md.count("\n| ") == 1 + len(rows) and "without it the probe probe-without does not train" in md
    assert "pending: at-pgd3 is not shipped yet" in md and md.count("| one run |") == len(rows)

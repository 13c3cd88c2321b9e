"""The divergence guard, run folders (lock, empty-folder rule, group commit, stale temporaries)
and checkpoint integrity (issue 15)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import TINY_MODEL, tiny_config

from jeat_core.cli import main
from jeat_core.core.checkpoints import (
    CheckpointError,
    commit_checkpoint,
    load_model,
    read_manifest,
    record_eval,
    save_weights,
    shipped_root,
    write_json,
)
from jeat_core.core.data import procedural
from jeat_core.core.models import SmallCNN
from jeat_core.train import training
from jeat_core.train.guard import why_bad
from jeat_core.train.methods import METHODS
from jeat_core.train.training import TrainingDiverged, fit, make_config

TOY_TRAIN, TOY_TEST = procedural(512, seed=0), procedural(128, seed=1)
TINY = TINY_MODEL


small = tiny_config  # a few-step run of a tiny CNN (conftest.tiny_config)


def _fit(cfg, out, **kw):
    lines: list[str] = []
    res = fit(cfg, out=out, train_data=TOY_TRAIN, test_data=TOY_TEST, progress=False, device="cpu",
              report=lines.append, **kw)
    return res, lines


def _inject(monkeypatch, method, at_calls, action):
    """Run ``action(state)`` before the loss function's call number ``n`` for each n in ``at_calls``."""
    orig, calls = METHODS[method].loss, {"n": 0}

    def loss(state, batch, cfg):
        calls["n"] += 1
        if calls["n"] in at_calls:
            with torch.no_grad():
                action(state)
        return orig(state, batch, cfg)

    monkeypatch.setitem(METHODS, method, replace(METHODS[method], loss=loss))


def _max_logit(model, x) -> float:
    with torch.no_grad():
        return float(model(x).abs().max())


# ----------------------------------------------------------------------------- guard
@pytest.mark.parametrize("log_every", ["50", "0"])  # 0: no energy-dynamics measurement after the update
def test_nan_from_the_last_update_is_caught_before_saving(tmp_path, capsys, log_every):
    """--lr 1e30 --max-steps 1: the single update breaks the model; nothing broken is saved."""
    out = tmp_path / "run"
    code = main(["train", "--method", "standard", "--dataset", "procedural", "--lr", "1e30", "--max-steps", "1",
                 "--batch-size", "50", "--eval-n", "10", "--no-progress", "--log-every", log_every,
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "diverged at step 0 (" in err and "after the update" in err, err
    guard = [ln for ln in err.splitlines() if ln.startswith("jeat guard: step 0:")]
    assert len(guard) == 4 and "rolled back to step 0" in guard[0] and "stopped" in guard[-1], err  # --no-progress
    m = read_manifest(out)
    assert m["metrics"] == {"diverged": True} and m["steps"] == 0
    assert [e["action"] for e in m["divergence_events"]] == ["rolled back, lr lowered, reseeded"] * 3 + ["stopped"]
    assert all(e["step"] == 0 for e in m["divergence_events"])
    model, _ = load_model(out)  # the saved (initial) weights are finite and consistent with the manifest
    assert torch.isfinite(model(TOY_TEST.tensors(8)[0])).all()


@pytest.mark.slow  # over 15 s: `make test` runs it, the inner loop (`make test-fast`) does not
def test_energy_blow_up_trips_the_relative_rule_and_recovers(tmp_path, monkeypatch):
    """Logits that jump far above anything the run reached (finite, below the absolute ceiling of
    1e4) are rolled back; the event names the true step."""
    def blow_up(state):  # logits (and energies) jump by orders of magnitude and the loss rises
        state.core.head[-1].weight.mul_(1e4)

    _inject(monkeypatch, "jeat", {6}, blow_up)  # the 6th call runs step 5
    cfg = replace(small("jeat", max_steps=10), guard_every=2)
    res, lines = _fit(cfg, tmp_path)
    assert res.state.step == 10
    ev = read_manifest(tmp_path)["divergence_events"]
    assert [e["action"] for e in ev] == ["rolled back, lr lowered, reseeded", "recovered"]
    assert ev[0]["step"] == 5 and ev[0]["rolled_back_to"] == 4 and ev[0]["reason"].startswith("energy blow-up")
    assert any("energy blow-up" in ln and ln.startswith("jeat guard: step 5:") for ln in lines), lines
    assert _max_logit(res.state.core, TOY_TEST.tensors(64)[0]) < cfg.energy_floor


def test_retry_budget_is_reset_after_a_recovery(tmp_path, monkeypatch):
    """Two separate NaN events with max_retries=1: each is one failure in a row, so both recover."""
    def poison(state):
        next(state.core.parameters()).fill_(float("nan"))

    _inject(monkeypatch, "standard", {3, 9}, poison)  # step 2, then (after the replay of 2) step 7
    cfg = replace(small("standard", max_steps=10), guard_every=2, max_retries=1)
    res, lines = _fit(cfg, tmp_path)
    assert res.state.step == 10
    actions = [(e["step"], e["action"]) for e in read_manifest(tmp_path)["divergence_events"]]
    assert actions == [(2, "rolled back, lr lowered, reseeded"), (4, "recovered"),
                       (7, "rolled back, lr lowered, reseeded"), (8, "recovered")]
    assert res.config.optim.lr == pytest.approx(small("standard").optim.lr * 0.25)
    assert len(lines) == 4


def test_giving_up_reports_the_step_that_failed(tmp_path, monkeypatch):
    orig = training.train_step

    def nan_from_step_5(state, x, y, cfg, log):
        out = orig(state, x, y, cfg, log)
        return replace(out, loss=replace(out.loss, loss=torch.tensor(float("nan")))) if state.step >= 5 else out

    monkeypatch.setattr(training, "train_step", nan_from_step_5)
    cfg = replace(small("standard", max_steps=10), guard_every=2, max_retries=2)
    with pytest.raises(TrainingDiverged, match=r"diverged at step 5 \(non-finite loss\)") as e:
        _fit(cfg, tmp_path)
    assert "last good state (step 4)" in str(e.value)
    m = read_manifest(tmp_path)
    assert m["steps"] == 4 and [ev["step"] for ev in m["divergence_events"]] == [5, 5, 5]


def test_relative_rule_would_not_trip_on_the_shipped_recipes():
    """Replay the shipped runs' logged max |logit| (one record per guard window of 50 steps)."""
    cfg = make_config("standard")
    logs = sorted((shipped_root() / "cifar10-cpu").glob("*/energy_log.jsonl"))
    assert logs
    for log in logs:
        ref, ce_ref = 0.0, -1.0
        parent = read_manifest(log.parent).get("init_from")
        if parent:  # a fine-tune's guard starts from its parent's logit scale (training.load_init_from)
            plog = shipped_root() / parent["model"] / "energy_log.jsonl"
            ref = parent.get("max_abs_logit") or max(json.loads(ln)["max_abs_energy"]
                                                     for ln in plog.read_text().splitlines())
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            assert why_bad(cfg, max_abs_energy=rec["max_abs_energy"], ce=rec["ce"], values=rec, energy_ref=ref,
                           ce_ref=ce_ref) is None, (log, rec["step"])
            ref, ce_ref = max(ref, rec["max_abs_energy"]), rec["ce"]
    # ... while a jump of energy_growth times the reference above the floor trips it
    big = cfg.energy_growth * 2 * cfg.energy_floor
    ref = {"energy_ref": 2 * cfg.energy_floor, "ce_ref": 1.0}
    assert "energy blow-up" in why_bad(cfg, max_abs_energy=big + 1, ce=2.0, **ref)
    assert why_bad(cfg, max_abs_energy=big - 1, ce=2.0, **ref) is None
    assert why_bad(cfg, max_abs_energy=big + 1, ce=0.5, **ref) is None  # confident
    assert "energy blow-up" in why_bad(cfg, max_abs_energy=cfg.energy_floor + 1, ce=0.1)  # before a snapshot
    assert "max_abs_energy" in why_bad(cfg, max_abs_energy=2 * cfg.max_abs_energy, ce=None,
                                       energy_ref=cfg.max_abs_energy)


# ----------------------------------------------------------------------------- run folders
def _cmd(out, *extra, steps=150):
    return ["train", "--method", "standard", "--dataset", "procedural", "--max-steps", str(steps),
            "--batch-size", "16", "--eval-n", "10", "--no-progress", "--out", str(out), *extra]


@pytest.mark.slow  # over 15 s: `make test` runs it, the inner loop (`make test-fast`) does not
def test_two_writers_into_one_folder(tmp_path, capsys):
    """Process a trains; this process tries to write into the same folder three ways and is refused."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    a = subprocess.Popen([sys.executable, "-m", "jeat_core", *_cmd(out)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    lock = out / ".jeat.lock"
    deadline = time.time() + 120
    while time.time() < deadline and not (lock.exists() and lock.read_text().strip() == str(a.pid)):
        time.sleep(0.02)
    assert lock.read_text().strip() == str(a.pid)
    for extra in ((), ("--resume",), ("--overwrite",)):
        assert main(_cmd(out, *extra, steps=5)) == 2
        err = capsys.readouterr().err
        assert f"is in use by another jeat process (pid {a.pid})" in err and len(err.splitlines()) == 1, err
    assert a.poll() is None, "process a ended before the second writer tried: the test proved nothing"
    _, a_err = a.communicate(timeout=600)
    assert a.returncode == 0, a_err
    m = read_manifest(out)
    assert m["steps"] == 150 and m["weights"]["step"] == 150
    load_model(out)  # weights agree with the manifest (sha256)
    assert main(_cmd(out, "--resume", steps=151)) == 0  # the lock went with process a
    capsys.readouterr()


def test_overwrite_replaces_a_run_and_stale_temporaries_go(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--method", "standard", "--dataset", "procedural", "--batch-size", "50", "--eval-n", "10",
            "--no-progress", "--out", str(out)]
    assert main([*args, "--max-steps", "2"]) == 0
    (out / ".model.safetensors.x1y2.tmp").write_bytes(b"half a file")
    (out / ".manifest.json.abc.tmp").write_bytes(b"{")
    assert main([*args, "--max-steps", "3", "--resume"]) == 0
    assert not list(out.glob(".*.tmp")) and read_manifest(out)["steps"] == 3
    assert main([*args, "--max-steps", "1", "--overwrite"]) == 0
    assert read_manifest(out)["steps"] == 1 and read_manifest(out)["divergence_events"] == []
    capsys.readouterr()


def test_resume_drops_a_torn_last_log_line(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--method", "standard", "--dataset", "procedural", "--batch-size", "50", "--eval-n", "10",
            "--no-progress", "--log-every", "1", "--out", str(out)]
    assert main([*args, "--max-steps", "2"]) == 0
    with open(out / "energy_log.jsonl", "a") as f:
        f.write('{"step": 2, "ce": 1.')  # killed mid-write
    assert main([*args, "--max-steps", "4", "--resume"]) == 0
    assert "dropped a torn last line" in capsys.readouterr().err
    steps = [json.loads(ln)["step"] for ln in (out / "energy_log.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3]


def test_eval_record_keeps_a_larger_record_unless_forced(tmp_path, capsys):
    folder = tmp_path / "ck"
    folder.mkdir()
    torch.manual_seed(0)
    manifest = {"method": "standard", "config": {}, "arch": {"name": "small_cnn", "kwargs": dict(TINY)},
                "data": {"dataset": "procedural"}, "metrics": {}, "train_seconds": 0.0, "steps": 1,
                "git_commit": None, "jeat_version": "test",
                "evals": [{"attack": "none", "eps": 8 / 255, "n": 400, "clean_acc": 0.5, "robust_acc": 0.5}]}
    commit_checkpoint(folder, model=SmallCNN(**TINY), manifest=manifest)
    base = ["eval", "--model", str(folder), "--attack", "none", "--json", "--record"]
    assert main([*base, "--n", "10"]) == 2
    assert "measured on n = 400 images, more than 10; pass --force" in capsys.readouterr().err
    assert read_manifest(folder)["evals"][0]["n"] == 400
    assert main([*base, "--n", "400"]) == 0  # the same n replaces it
    assert main([*base, "--n", "10", "--force"]) == 0
    capsys.readouterr()
    (rec,) = read_manifest(folder)["evals"]
    assert rec["n"] == 10
    load_model(folder)  # recording does not touch the weights' integrity fields
    with pytest.raises(CheckpointError, match="pass --force"):
        record_eval(read_manifest(folder) | {"evals": [dict(rec, n=99)]}, dict(rec, n=5), force=False)


# ----------------------------------------------------------------------------- integrity
def test_integrity_flipped_bytes_nan_and_dtype(tmp_path):
    torch.manual_seed(0)
    model = SmallCNN(**TINY)
    manifest = {"method": "standard", "config": {}, "arch": {"name": "small_cnn", "kwargs": dict(TINY)},
                "data": {"dataset": "procedural"}, "metrics": {}, "train_seconds": 0.0, "steps": 3,
                "git_commit": None, "jeat_version": "test"}
    folder = tmp_path / "ck"
    written = commit_checkpoint(folder, model=model, manifest=manifest)
    raw = (folder / "model.safetensors").read_bytes()
    assert written["weights"] == {"file": "model.safetensors", "step": 3, "dtype": "float32",
                                  "sha256": hashlib.sha256(raw).hexdigest()}
    loaded, _ = load_model(folder)
    x = TOY_TEST.tensors(4)[0]
    assert torch.equal(loaded(x), model.eval()(x))
    for pos in (len(raw) - 1, len(raw) // 2):  # bytes inside the tensor data
        flipped = bytearray(raw)
        flipped[pos] ^= 0x01
        (folder / "model.safetensors").write_bytes(bytes(flipped))
        with pytest.raises(CheckpointError, match="does not match its manifest"):
            load_model(folder)
    # an older manifest (no "weights" entry) still loads; non-finite values are refused regardless
    (folder / "model.safetensors").write_bytes(raw)
    legacy = {k: v for k, v in written.items() if k != "weights"}
    write_json(folder / "manifest.json", legacy)
    load_model(folder)
    with torch.no_grad():
        model.head[-1].bias[3] = float("inf")
    save_weights(folder / "model.safetensors", model)
    with pytest.raises(CheckpointError, match=r"non-finite weights .* head\.3\.bias"):
        load_model(folder)
    with torch.no_grad():
        model.head[-1].bias[3] = 0.0
    save_weights(folder / "model.safetensors", model.double())
    with pytest.raises(CheckpointError, match="wrong dtype"):
        load_model(folder)
    with pytest.raises(CheckpointError, match="a folder or a shipped name"):
        load_model(None)


def test_architecture_bounds_are_checked_before_allocation():
    from jeat_core.core.models import check_arch

    assert check_arch("eval_resnet", {"widths": [64, 128, 256, 512], "n_classes": 10}) > 0
    assert check_arch("wrn28_10", {"norm": "none", "act": "silu"}) > 36e6
    with pytest.raises(ValueError, match="widths must be a list"):
        check_arch("small_cnn", {"widths": [40000] * 3})
    with pytest.raises(ValueError, match="parameters"):
        check_arch("small_cnn", {"widths": [4096] * 5})
    with pytest.raises(ValueError, match="n_classes"):
        check_arch("eval_resnet", {"n_classes": True})


def test_shipped_manifests_record_their_weights():
    zoo = ("at", "jeat", "jem", "noise-16", "noise-24", "noise-8", "prejeat", "standard")
    for m in sorted((shipped_root() / "cifar10-cpu").glob("*/manifest.json")):
        if m.parent.name not in zoo and "weights" not in read_manifest(m.parent):
            continue
        w = read_manifest(m.parent)["weights"]
        assert w["dtype"] == "float32" and w["step"] == read_manifest(m.parent)["steps"]
        assert w["sha256"] == hashlib.sha256((m.parent / "model.safetensors").read_bytes()).hexdigest()


def test_langevin_and_pgd_inputs():
    import numpy as np

    from jeat_core.core.attacks import pgd
    from jeat_core.core.sampling import langevin

    torch.manual_seed(0)
    model = SmallCNN(**TINY).eval()
    x, y = TOY_TEST.tensors(4)
    xa = pgd(model, x, y, eps=np.float32(8 / 255), step_size=np.float64(2 / 255), n_steps=np.int64(2))
    assert (xa - x).abs().max() <= 8 / 255 + 1e-6
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        pgd(model, bad, y, eps=0.03, step_size=0.01, n_steps=1)
    energy = lambda z: model(z).logsumexp(1).neg()  # noqa: E731
    with pytest.raises(ValueError, match="x0 contains NaN or inf"):
        langevin(energy, bad, step_size=0.1, n_steps=1)
    with pytest.raises(ValueError, match="lo <= hi"):
        langevin(energy, x, step_size=0.1, n_steps=1, clamp=(1.0, 0.0))
    with pytest.raises(ValueError, match="step_size must be a finite number"):
        langevin(energy, x, step_size=float("nan"), n_steps=1)
    out = langevin(energy, x, step_size=np.float32(0.1), n_steps=np.int64(2), noise_std=np.float64(0.01),
                   clamp=(np.float32(0), np.float64(1)))
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_generate_prints_the_path_it_wrote(tmp_path, capsys):
    folder = tmp_path / "ck"
    torch.manual_seed(0)
    commit_checkpoint(folder, model=SmallCNN(**TINY), manifest={
        "method": "standard", "config": {}, "arch": {"name": "small_cnn", "kwargs": dict(TINY)},
        "data": {"dataset": "procedural"}, "metrics": {}, "train_seconds": 0.0, "steps": 1, "git_commit": None,
        "jeat_version": "test"})
    assert main(["generate", "--model", str(folder), "--labels", "1", "--per-class", "2", "--steps", "1",
                 "--init", "uniform", "--out", str(tmp_path / "samples")]) == 0
    printed = json.loads(capsys.readouterr().out)["out"]
    assert printed == str(tmp_path / "samples.npz") and Path(printed).is_file()

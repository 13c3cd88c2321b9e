"""Training: every registered method trains and they differ in what they do, the divergence guard,
resume after a kill equals an uninterrupted run, DDP ranks end identical, fine-tuning, configs that
validate themselves, and TRADES' loss and attack."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from safetensors.torch import load_file

from jeat_core.core.checkpoints import load_model, read_manifest
from jeat_core.core.data import procedural
from jeat_core.train import methods, training
from jeat_core.train.training import METHODS, TrainingDiverged, config_from_dict, config_to_dict, fit, make_config

REPO = Path(__file__).resolve().parent.parent
TOY_TRAIN, TOY_TEST = procedural(512, seed=0), procedural(128, seed=1)


def with_nan_loss(step: training.StepResult) -> training.StepResult:
    """``step`` as if its loss had come out NaN (what the divergence guard must catch)."""
    return replace(step, loss=replace(step.loss, loss=torch.tensor(float("nan"))))


def small(method, **kw):
    """A few-step run of the preset's SmallCNN (conftest.tiny_config), logging every 2 steps."""
    return tiny_config(method, tiny_model=False, **{"log_every": 2, **kw})


@pytest.mark.parametrize("method", METHODS)
def test_each_method_trains(method, tmp_path):
    cfg = small(method, max_steps=4)
    torch.manual_seed(cfg.seed)
    init = {k: v.clone() for k, v in training.build_state(cfg, torch.device("cpu"), 10).core.state_dict().items()}
    res = fit(cfg, out=tmp_path, train_data=TOY_TRAIN, test_data=TOY_TEST, progress=False, device="cpu")
    final = res.state.core.state_dict()
    assert any(not torch.equal(init[k], final[k]) for k in init), "weights did not change"
    m = read_manifest(tmp_path)
    assert m["steps"] == 4 and m["method"] == method
    assert all(isinstance(v, (int, float)) for v in m["metrics"].values())
    lines = [json.loads(line) for line in (tmp_path / "energy_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [0, 2]
    for r in lines:
        for key in ("dxE_joint_mean", "dthetaE_joint_mean", "dxE_marginal_var", "dthetaE_marginal_var", "loss"):
            assert key in r and r[key] == r[key]  # present and not NaN
    if cfg.uses_attack and cfg.attack.objective in ("ce", "energy"):  # the attack raises the energy it ascends
        key = "dxE_joint_mean"
        assert all(r[key] > 0 for r in lines), [r[key] for r in lines]
    model, manifest = load_model(tmp_path)
    assert manifest["config"]["method"] == method
    assert config_from_dict(config_to_dict(res.config)) == res.config


def test_methods_differ_in_what_they_do(monkeypatch):
    """prejeat attacks with the energy objective (Eq. 18), at with CE (Eq. 14); jeat adds SGLD."""
    assert make_config("at").attack.objective == "ce"
    assert make_config("prejeat").attack.objective == "energy"
    assert make_config("jeat").attack.objective == "energy" and make_config("jeat").uses_sgld
    assert not make_config("prejeat").uses_sgld and not hasattr(make_config("prejeat"), "sgld")
    assert make_config("noise", sigma=8 / 255).sigma == pytest.approx(8 / 255)
    assert make_config("jeat", "paper").model.kwargs["norm"] == "none"
    with pytest.raises(ValueError, match="unknown method 'gan'"):
        make_config("gan")
    with pytest.raises(ValueError, match="bad option for method 'standard'"):
        make_config("standard", sigma=0.1)


def test_divergence_guard_rolls_back_and_recovers(tmp_path, monkeypatch):
    orig = training.train_step
    calls = {"n": 0}

    def faulty(state, x, y, cfg, log):
        calls["n"] += 1
        if calls["n"] == 5:  # inject a NaN into the weights once
            with torch.no_grad():
                next(state.core.parameters()).fill_(float("nan"))
        return orig(state, x, y, cfg, log)

    monkeypatch.setattr(training, "train_step", faulty)
    cfg = replace(small("standard", max_steps=8), guard_every=2)
    res = fit(cfg, out=tmp_path, train_data=TOY_TRAIN, test_data=TOY_TEST, progress=False, device="cpu")
    assert res.state.step == 8
    assert all(torch.isfinite(p).all() for p in res.state.core.parameters())
    ev = read_manifest(tmp_path)["divergence_events"]
    assert [e["action"] for e in ev] == ["rolled back, lr lowered, reseeded", "recovered"]
    assert ev[0]["step"] == 4 and ev[0]["rolled_back_to"] == 4 and ev[1]["step"] == 6
    assert res.config.optim.lr == pytest.approx(cfg.optim.lr * cfg.lr_backoff)
    assert res.config.seed == cfg.seed + 1


def test_divergence_guard_gives_up_with_a_message(tmp_path, monkeypatch):
    orig = training.train_step

    def always_nan(state, x, y, cfg, log):
        return with_nan_loss(orig(state, x, y, cfg, log))

    monkeypatch.setattr(training, "train_step", always_nan)
    cfg = replace(small("standard", max_steps=8), max_retries=2)
    with pytest.raises(TrainingDiverged, match=r"diverged at step 0 \(non-finite loss\); 3 failures in a row"):
        fit(cfg, out=tmp_path, train_data=TOY_TRAIN, test_data=TOY_TEST, progress=False, device="cpu")
    m = read_manifest(tmp_path)
    assert m["metrics"] == {"diverged": True} and len(m["divergence_events"]) == 3


def _train_cmd(out, extra=()):
    return [sys.executable, "-m", "jeat_core", "train", "--method", "jeat", "--dataset", "procedural",
            "--max-steps", "15", "--batch-size", "16", "--sgld-steps", "3", "--buffer-size", "200",
            "--checkpoint-every", "3", "--log-every", "3", "--deterministic", "--eval-n", "64",
            "--no-progress", "--out", str(out), *extra]


def _assert_group_agrees(folder: Path) -> None:
    """manifest.json names the step and sha256 of model.safetensors beside it, and state.pt is at
    least that far; if a kill fell between the replaces, loading must refuse rather than mix."""
    import hashlib

    from jeat_core.core.checkpoints import CheckpointError, load_state

    m = read_manifest(folder)
    raw = (folder / "model.safetensors").read_bytes()
    if hashlib.sha256(raw).hexdigest() != m["weights"]["sha256"]:
        with pytest.raises(CheckpointError, match="does not match its manifest"):
            load_model(folder)
        return
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    assert int(header["__metadata__"]["step"]) == m["weights"]["step"] == m["steps"]
    assert load_state(folder / "state.pt")["step"] >= m["steps"]
    load_model(folder)


@pytest.mark.slow  # over 15 s: `make test` runs it, the inner loop (`make test-fast`) does not
def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full, cut = tmp_path / "full", tmp_path / "cut"
    subprocess.run(_train_cmd(full), check=True, env=env, capture_output=True, timeout=600)
    proc = subprocess.Popen(_train_cmd(cut), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        mf = cut / "manifest.json"
        if mf.exists() and json.loads(mf.read_text())["steps"] >= 6:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads((cut / "manifest.json").read_text())["steps"]
    assert 6 <= killed_at < 15, f"run was not interrupted mid-way (step {killed_at})"
    _assert_group_agrees(cut)  # the kill left manifest, weights and state of one step (or says it did not)
    subprocess.run(_train_cmd(cut, ["--resume"]), check=True, env=env, capture_output=True, timeout=600)
    _assert_group_agrees(cut)
    assert not list(cut.glob(".*.tmp")), "stale temporaries were left behind"
    a, b = load_file(str(full / "model.safetensors")), load_file(str(cut / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [json.loads(line)["step"] for line in (cut / "energy_log.jsonl").read_text().splitlines()]
    assert steps == list(range(0, 15, 3))
    assert read_manifest(cut)["steps"] == 15


def test_resume_without_state_is_a_clear_error(tmp_path):
    from jeat_core.core.checkpoints import CheckpointError

    with pytest.raises(CheckpointError, match="no training state"):
        fit(small("standard", max_steps=2), out=tmp_path, resume=True, train_data=TOY_TRAIN,
            test_data=TOY_TEST, progress=False)


@pytest.mark.slow  # over 15 s: `make test` runs it, the inner loop (`make test-fast`) does not
@pytest.mark.parametrize("method", ["jeat"])
def test_ddp_two_ranks_end_identical(tmp_path, method):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           str(REPO / "tests" / "ddp_worker.py"), str(tmp_path), method]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    w0, w1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    s0, s1 = (torch.load(tmp_path / f"buffer{r}.pt", weights_only=True) for r in (0, 1))
    assert not torch.equal(s0["buffer"], s1["buffer"]), "replay buffers should be per rank (different seeds)"
    # the SGLD batch, like the data batch, is global: each of the 2 ranks runs half the chains per step
    sgld_batch = make_config(method, "cpu").sgld.batch_size
    assert int(s0["n_sampled"]) == int(s1["n_sampled"]) == 4 * sgld_batch // 2
    assert read_manifest(tmp_path)["world_size"] == 2


def test_gen_start_delays_and_gen_weight_scales_the_px_term(toy):
    """--gen-start: no SGLD / p(x) term during the first fraction of steps; --gen-weight scales it."""
    from dataclasses import replace as _replace

    from jeat_core.train.training import fit, make_config

    def run(**kw):
        cfg = make_config("jeat", "cpu", max_steps=4, epochs=1.0, log_every=0, checkpoint_every=0, eval_n=0,
                          model=_replace(make_config("jeat").model, kwargs={"widths": [8, 16], "hidden": 32}), **kw)
        cfg = _replace(cfg, optim=_replace(cfg.optim, batch_size=128),
                       sgld=_replace(cfg.sgld, n_steps=1, batch_size=8, buffer_size=20))
        seen = []
        fit(cfg, train_data=toy, test_data=toy, progress=False, device="cpu",
            callbacks=(lambda step, m: seen.append(m),))
        return seen

    seen = run(gen_start=0.5)  # 512 images / batch 128 = 4 steps; the term switches on at step 2
    assert ["gen_loss" in m for m in seen] == [False, False, True, True]
    for m in run(gen_weight=0.0):
        assert m["loss"] == pytest.approx(m["ce"], abs=1e-6)  # weight 0: the p(x) term adds nothing


@pytest.mark.parametrize("channels_last", [False, True])
def test_channels_last_setting_reaches_the_attack_and_sgld(channels_last):
    """TrainConfig.channels_last decides the layout of every model input of a step: the attack's
    and the SGLD chain's included (they default to channels-last on the CPU otherwise)."""
    cfg = replace(small("jeat"), channels_last=channels_last)
    state = training.build_state(cfg, torch.device("cpu"), 10)
    layouts = []
    state.core.register_forward_pre_hook(
        lambda mod, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last)
                                         and not args[0].is_contiguous()))
    x, y = TOY_TRAIN.tensors(32)
    if channels_last:  # as training.Batches hands them over
        x = x.contiguous(memory_format=torch.channels_last)
    training.train_step(state, x, y, cfg, False)
    assert len(layouts) >= 3 and set(layouts) == {channels_last}


def test_cli_rejects_sgld_options_for_other_methods(capsys):
    from jeat_core.cli import main

    assert main(["train", "--method", "at", "--gen-weight", "0.1", "--max-steps", "1"]) == 2
    assert "--gen-weight does not apply to --method at (--gen-weight applies to jeat, jem)" in capsys.readouterr().err


def test_class_gaussian_buffer_and_fine_tune(tmp_path):
    """``sgld.init="class_gaussian"`` seeds the buffer from the class Gaussians (not U(0, 1));
    ``init_from`` starts from a trained model's weights and the manifest records it and the chains' ages."""
    parent = tmp_path / "parent"
    fit(small("prejeat", max_steps=2), out=parent, train_data=TOY_TRAIN, test_data=TOY_TEST, progress=False,
        device="cpu")
    cfg = small("jeat", max_steps=3, init_from=str(parent))
    cfg = replace(cfg, sgld=replace(cfg.sgld, init="class_gaussian"))
    init_fn = training.buffer_init_fn(cfg, TOY_TRAIN, torch.device("cpu"))
    seeds = init_fn(2000, torch.Generator().manual_seed(0))
    real = torch.from_numpy(TOY_TRAIN.x).float().div(255).permute(0, 3, 1, 2)
    # the class-Gaussian seeds share the data's mean colour; U(0, 1) sits at 0.5
    assert abs(float(seeds.mean()) - float(real.mean())) < 0.02
    assert abs(float(real.mean()) - 0.5) > 0.05  # the test can tell the two apart
    child = tmp_path / "child"
    res = fit(cfg, out=child, train_data=TOY_TRAIN, test_data=TOY_TEST, progress=False, device="cpu")
    m = read_manifest(child)
    assert m["init_from"]["model"] == str(parent) and m["init_from"]["method"] == "prejeat"
    assert m["init_from"]["weights_sha256"] == read_manifest(parent)["weights"]["sha256"]
    chains = m["sgld_chains"]
    assert chains["sampled"] == 3 * cfg.sgld.batch_size and chains["max_steps"] <= 3 * cfg.sgld.n_steps
    assert int(res.state.buffer.age.sum()) > 0
    log = [json.loads(line) for line in (child / "energy_log.jsonl").read_text().splitlines()]
    assert all(r["chain_steps"] >= cfg.sgld.n_steps for r in log)
    # starting weights are the parent's: one step of lr 0 would leave them unchanged
    frozen_cfg = replace(cfg, max_steps=1, optim=replace(cfg.optim, lr=1e-12))
    res0 = fit(frozen_cfg, out=None, train_data=TOY_TRAIN, test_data=TOY_TEST, progress=False, device="cpu")
    want = load_model(parent)[0].state_dict()
    for k, v in res0.state.core.state_dict().items():
        torch.testing.assert_close(v, want[k], atol=1e-6, rtol=0)


def test_fine_tune_rejects_another_architecture(tmp_path):
    from jeat_core.core.checkpoints import CheckpointError

    parent = tmp_path / "parent"
    fit(small("standard", max_steps=1), out=parent, train_data=TOY_TRAIN, test_data=TOY_TEST, progress=False,
        device="cpu")
    cfg = small("jeat", max_steps=1, init_from=str(parent))
    cfg = replace(cfg, model=replace(cfg.model, kwargs={**cfg.model.kwargs, "widths": [8, 16, 32]}))
    with pytest.raises(CheckpointError, match="architecture"):
        fit(cfg, out=None, train_data=TOY_TRAIN, test_data=TOY_TEST, progress=False, device="cpu")


def test_sgld_config_validates():
    with pytest.raises(ValueError, match="buffer init"):
        training.SGLDConfig(init="noise")
    with pytest.raises(ValueError, match="n_steps"):
        training.SGLDConfig(n_steps=0)


def test_fine_tune_guard_starts_from_the_parents_logit_scale(tmp_path):
    """A trained parent's logits may exceed the guard's floor from the first step; that is not a
    divergence (the shipped ``standard`` has max |logit| 68 > 50). With a floor below the parent's
    scale, the guard would trip at step 0 if its reference started at 0."""
    parent = tmp_path / "parent"
    fit(small("standard", max_steps=2), out=parent, train_data=TOY_TRAIN, test_data=TOY_TEST, progress=False,
        device="cpu")
    cfg = replace(small("jem", max_steps=2, init_from=str(parent)), energy_floor=1e-3)
    res = fit(cfg, out=None, train_data=TOY_TRAIN, test_data=TOY_TEST, progress=False, device="cpu", report=None)
    assert res.state.events == [] and res.state.step == 2
    assert res.state.energy_ref > 1e-3


# ----------------------------------------------------------------------------- config validation
@pytest.mark.parametrize("build,msg", [
    (lambda: make_config("jeat", gen_start=1.5), "gen_start must lie in [0, 1)"),
    (lambda: make_config("jem", gen_weight=-1.0), "gen_weight"),
    (lambda: make_config("jem", data_noise=-0.1), "data_noise"),
    (lambda: make_config("jeat", energy_l2=float("nan")), "energy_l2 must be a finite number"),
    (lambda: make_config("noise", sigma=0.0), "sigma must lie in (0, 1]"),
    (lambda: make_config("standard", epochs=0.0), "epochs"),
    (lambda: make_config("standard", max_steps=0), "max_steps"),
    (lambda: make_config("standard", max_steps=2.5), "max_steps must be an integer"),
    (lambda: make_config("standard", seed=-1), "seed"),
    (lambda: make_config("standard", dataset="mnist"), "unknown dataset 'mnist'"),
    (lambda: make_config("standard", log_every=-1), "log_every"),
    (lambda: make_config("standard", guard_every=0), "guard_every"),
    (lambda: make_config("standard", lr_backoff=2.0), "lr_backoff"),
    (lambda: make_config("standard", init_from=""), "init_from"),
    (lambda: training.OptimConfig(lr=0.0), "lr must lie in (0, inf)"),
    (lambda: training.OptimConfig(name="rmsprop"), "unknown optimiser 'rmsprop'"),
    (lambda: training.OptimConfig(schedule="linear"), "unknown schedule 'linear'"),
    (lambda: training.OptimConfig(batch_size=0), "batch_size"),
    (lambda: training.OptimConfig(milestones=(0.5, 1.5)), "milestones"),
    (lambda: training.AttackConfig(eps=2.0), "attack eps must lie in [0, 1]"),
    (lambda: training.AttackConfig(kind="cw"), "unknown attack kind 'cw'"),
    (lambda: training.AttackConfig(objective="hinge"), "unknown attack objective 'hinge'"),
    (lambda: training.AttackConfig(objective="kl", grad_at="clean"), "gradient at the clean point is 0"),
    (lambda: training.AttackConfig(n_steps=0), "attack n_steps"),
    (lambda: training.AttackConfig(step_size=0.0), "attack step_size"),
    (lambda: training.SGLDConfig(noise_std=-1.0), "noise_std"),
    (lambda: training.SGLDConfig(reinit_prob=1.5), "reinit_prob"),
    (lambda: training.SGLDConfig(buffer_size=0), "buffer_size"),
])
def test_configs_validate_themselves(build, msg):
    """The Python API refuses what the CLI refuses, with a message naming the field."""
    with pytest.raises(ValueError) as e:
        build()
    assert msg in str(e.value)


def test_replace_is_validated_too():
    cfg = make_config("jeat")
    with pytest.raises(ValueError, match="gen_start"):
        replace(cfg, gen_start=1.0)
    with pytest.raises(ValueError, match="lr"):
        replace(cfg, optim=replace(cfg.optim, lr=-1.0))
    assert replace(cfg, gen_start=0.5).gen_start == 0.5


def test_attack_config_resolves_its_defaults_for_its_kind():
    """PGD gets 10 steps of 2/255 from the config itself (Python API and CLI alike); FGSM-RS one step of eps."""
    fgsm = make_config("at").attack
    assert (fgsm.resolved_n_steps, fgsm.resolved_step_size) == (1, fgsm.eps)
    pgd = replace(fgsm, kind="pgd")  # the FGSM defaults do not leak into PGD
    assert (pgd.resolved_n_steps, pgd.resolved_step_size) == (10, pytest.approx(2 / 255))
    assert replace(pgd, n_steps=3, step_size=0.01).resolved_n_steps == 3
    assert replace(pgd, n_steps=3, step_size=0.01).resolved_step_size == 0.01
    assert config_from_dict(config_to_dict(make_config("at", attack=pgd))).attack.resolved_n_steps == 10


def test_pgd_training_attack_runs_the_resolved_steps(monkeypatch):
    cfg = make_config("at", model=training.ModelConfig("small_cnn", {"widths": [4], "hidden": 4}))
    cfg = replace(cfg, attack=replace(cfg.attack, kind="pgd"))
    seen = {}

    def fake_pgd(model, x, y, **kw):
        seen.update(kw)
        return x

    monkeypatch.setattr(methods, "pgd", fake_pgd)
    state = training.build_state(cfg, torch.device("cpu"), 10)
    x, y = TOY_TRAIN.tensors(4)
    methods.attack_examples(state, cfg, x, y)
    assert seen["n_steps"] == 10 and seen["step_size"] == pytest.approx(2 / 255)


@pytest.mark.parametrize("method", METHODS)
def test_configs_say_what_they_use(method):
    cfg = make_config(method)
    m = methods.METHODS[method]
    assert cfg.uses_sgld == hasattr(cfg, "sgld") == m.uses_sgld
    assert cfg.uses_attack == hasattr(cfg, "attack") == m.uses_attack
    assert make_config(method).epochs == m.config.cpu_epochs and make_config(method, "paper").epochs == \
        m.config.paper_epochs


def test_resume_config_changes_only_epochs_and_max_steps(tmp_path):
    fit(small("standard", max_steps=1), out=tmp_path, train_data=TOY_TRAIN, test_data=TOY_TEST, progress=False,
        device="cpu")
    cfg = training.resume_config(tmp_path, max_steps=3)
    assert cfg.max_steps == 3 and cfg == replace(training.saved_config(tmp_path), max_steps=3)
    with pytest.raises(ValueError, match="only epochs, max_steps may change"):
        training.resume_config(tmp_path, seed=4)


def test_trades_loss_is_ce_plus_beta_kl(monkeypatch):
    """TRADES (Zhang et al. 2019): CE(f(x), y) + β·mean_i KL(p(·|x_i) ‖ p(·|x'_i)), checked against
    torch's kl_div on a fixed attack example x'."""
    import torch.nn.functional as F

    cfg = replace(small("trades"), beta=2.5)
    state = training.build_state(cfg, torch.device("cpu"), 10)
    x, y = TOY_TRAIN.tensors(16)
    x_adv = (x + 0.03 * torch.randn_like(x)).clamp(0, 1)
    monkeypatch.setattr(methods, "attack_examples", lambda *a, **k: x_adv)
    res = methods.trades_loss(state, training.Batch(x, y), cfg)
    with torch.no_grad():
        lx, la = state.model(x), state.model(x_adv)
        kl = F.kl_div(F.log_softmax(la, 1), F.log_softmax(lx, 1), log_target=True, reduction="batchmean")
        want = F.cross_entropy(lx, y) + 2.5 * kl
    assert float(res.loss.detach()) == pytest.approx(float(want), rel=1e-5)
    assert res.metrics()["kl"] == pytest.approx(float(kl), rel=1e-4) and res.ce == pytest.approx(
        float(F.cross_entropy(lx, y)), rel=1e-5)


def test_trades_attack_raises_the_kl_it_ascends():
    """The training attack of TRADES ascends KL(p(·|x) ‖ p(·|x')) from its random start: the KL at
    the attack example exceeds the KL at a random point of the same ball."""
    import torch.nn.functional as F

    cfg = small("trades")
    state = training.build_state(cfg, torch.device("cpu"), 10)
    with torch.no_grad():  # logits of a trained scale (an untrained net's KLs are at float rounding)
        [m for m in state.core.modules() if isinstance(m, torch.nn.Linear)][-1].weight.mul_(50)
    x, y = TOY_TRAIN.tensors(64)
    with torch.no_grad():
        clean = state.core(x)
    x_adv = methods.attack_examples(state, cfg, x, y, reference=clean)
    x_rand = (x + (torch.rand_like(x) * 2 - 1) * cfg.attack.eps).clamp(0, 1)
    assert (x_adv - x).abs().max() <= cfg.attack.eps + 1e-6

    def kl(xp):
        with torch.no_grad():
            return float(F.kl_div(F.log_softmax(state.core(xp), 1), F.log_softmax(clean, 1), log_target=True,
                                  reduction="batchmean"))

    assert kl(x_adv) > 2 * kl(x_rand) > 0

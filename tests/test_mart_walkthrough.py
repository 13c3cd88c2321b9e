"""docs/methods.md walks through adding a method, MART (Wang et al. 2020); this test runs the
document's own code blocks, so the walkthrough cannot go stale. Protected: the doc's config, loss and
``register`` call work as written (MART is registered only inside these tests, never shipped); its
loss is MART's formula; ``jeat train --method mart`` gets its flags from the declarations (``--beta``
shared with TRADES, the attack's flags from the sub-config, ``--resume`` comparing the resolved attack
steps) and trains on the procedural toy set with a finite loss; and the tests that enumerate
``METHODS`` pass for it when they are run on it."""

import json
import math
import re
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from jeat_core.cli import build_parser, main, train_options
from jeat_core.core.checkpoints import read_manifest
from jeat_core.core.data import procedural
from jeat_core.train import methods, training

DOC = Path(__file__).resolve().parent.parent / "docs" / "methods.md"
COMMON = ["--dataset", "procedural", "--batch-size", "16", "--eval-n", "8", "--no-progress"]


def doc_blocks() -> list[tuple[int, str]]:
    """The ``python`` code blocks of docs/methods.md, each with the line it starts on."""
    text = DOC.read_text()
    return [(text[:m.start(1)].count("\n"), m.group(1)) for m in re.finditer(r"```python\n(.*?)```", text, re.S)]


@pytest.fixture
def mart(monkeypatch):
    """The module the doc's code blocks define (run in order), with MART registered until the test ends."""
    monkeypatch.setattr(methods, "METHODS", dict(methods.METHODS))  # the registration is undone after the test
    mod = types.ModuleType("mart_walkthrough")
    monkeypatch.setitem(sys.modules, mod.__name__, mod)  # dataclasses look their module up
    for line, code in doc_blocks():
        exec(compile("\n" * line + code, str(DOC), "exec"), mod.__dict__)  # tracebacks name the doc's lines
    return mod


def test_the_doc_has_the_config_the_loss_and_the_registration():
    code = "\n".join(c for _, c in doc_blocks())
    for part in ("class MARTConfig(TrainConfig)", "def mart_loss(", "register(MARTConfig, mart_loss"):
        assert part in code, part


def test_mart_is_registered_only_inside_the_test(mart):
    assert methods.get_method("mart").config is mart.MARTConfig
    assert methods.make_config("mart").beta == 6.0 and methods.make_config("mart").attack.kind == "pgd"
    with pytest.raises(ValueError, match="beta must lie in"):
        methods.make_config("mart", beta=-1.0)  # the declared range validates the field


def test_mart_is_not_shipped():
    assert "mart" not in methods.METHODS


def test_mart_loss_is_its_formula(mart, monkeypatch):
    """BCE(p(x'), y) + β·mean_i KL(p(x_i) ‖ p(x'_i))·(1 − p_y(x_i)) on a fixed attack example x',
    recomputed here with torch's own pieces."""
    cfg = methods.make_config("mart", "cpu", beta=2.5, model=training.ModelConfig("small_cnn", {"widths": [8, 16],
                                                                                             "hidden": 32}))
    state = training.build_state(cfg, torch.device("cpu"), 10)
    x, y = procedural(16, seed=0).tensors(16)
    x_adv = (x + 0.03 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    monkeypatch.setattr(mart, "attack_examples", lambda *a, **k: x_adv)
    res = mart.mart_loss(state, training.Batch(x, y), cfg)
    with torch.no_grad():
        lx, la = state.model(x), state.model(x_adv)
        pa = la.softmax(1)
        wrong = pa.masked_fill(F.one_hot(y, 10).bool(), -1.0).max(1).values
        bce = F.cross_entropy(la, y) - torch.log(1 - wrong).mean()
        kl = F.kl_div(F.log_softmax(la, 1), F.log_softmax(lx, 1), log_target=True, reduction="none").sum(1)
        want = bce + 2.5 * (kl * (1 - lx.softmax(1)[torch.arange(16), y])).mean()
    assert float(res.loss.detach()) == pytest.approx(float(want), rel=1e-5)
    assert res.ce == pytest.approx(float(F.cross_entropy(la, y)), rel=1e-5)
    assert res.max_abs_energy == pytest.approx(float(torch.cat([la, lx]).abs().max()), rel=1e-6)
    assert set(res.metrics()) >= {"ce", "acc", "margin", "kl", "loss", "max_abs_energy"}


def test_mart_trains_from_the_command_line(mart, tmp_path, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "{standard,noise,at,prejeat,jeat,jem,trades,mart}" in help_text
    assert ("--beta BETA weight β of the KL term (6 in Zhang et al.) (trades); weight β of MART's KL term "
            "(6 in Wang et al.) (mart)") in help_text
    assert train_options()["beta"][1] == ("trades", "mart")
    assert train_options()["eps"][1] == ("at", "prejeat", "jeat", "trades", "mart")
    out = tmp_path / "run"
    assert main(["train", "--method", "mart", "--beta", "3", "--attack-steps", "2", "--max-steps", "3",
                 "--log-every", "1", "--out", str(out), *COMMON]) == 0
    m = read_manifest(out)
    assert m["method"] == "mart" and m["config"]["beta"] == 3.0 and m["config"]["attack"]["n_steps"] == 2
    assert m["steps"] == 3 and math.isfinite(m["metrics"]["train_loss"])
    log = [json.loads(line) for line in (out / "energy_log.jsonl").read_text().splitlines()]
    assert log and all(math.isfinite(r["loss"]) and math.isfinite(r["kl"]) for r in log)
    capsys.readouterr()
    assert main(["train", "--method", "mart", "--sigma", "0.1", "--out", str(tmp_path / "x"), *COMMON]) == 2
    assert "--sigma does not apply to --method mart (--sigma applies to noise)" in capsys.readouterr().err
    assert main(["train", "--method", "mart", "--resume", "--max-steps", "4", "--attack-steps", "5",
                 "--out", str(out), *COMMON]) == 2
    assert "would ignore --attack-steps 5 (stored attack.n_steps = 2)" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the tests that enumerate METHODS
def test_the_tests_over_methods_pass_for_mart(mart, tmp_path, monkeypatch):
    """What the tests parametrized over ``METHODS`` check of a shipped method, run on MART (they are
    collected before the fixture registers it)."""
    import test_rng  # the other test modules, imported here so that pytest does not collect their tests twice
    import test_training

    test_training.test_configs_say_what_they_use("mart")
    test_training.test_each_method_trains("mart", tmp_path)
    test_rng.test_training_steps_draw_on_the_generator_device("mart", monkeypatch)

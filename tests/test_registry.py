"""The method registry is the one list: a method registered here (a config, a loss, one entry) is
trained by `jeat train`, gets its own flags, is refused the flags of others, and its options are
range-checked the same way by the config and by the command line. A flag is declared once, on its
field (``option``): sub-configs bring theirs, two methods share a flag that means the same, and one
flag with two meanings is an error naming both methods. A loss gets the logits of each input it
names from one forward pass."""

import math
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

from jeat_core.cli import build_parser, main, train_options
from jeat_core.core.configs import TRAIN_FLAGS, WEIGHT, AttackConfig, Range, TrainConfig, option, set_path
from jeat_core.train import methods, training


@dataclass(frozen=True)
class ScaledConfig(TrainConfig):
    """A made-up method: CE on 0.9·x (only to prove that adding a method is one entry)."""

    cpu_epochs: ClassVar[float] = 1.0
    method: str = "scaled"
    scale: float = option(0.9, "--scale", Range(0.0, 1.0, lo_open=True), "x scale")


def scaled_loss(state, batch, cfg):
    fwd = methods.forward(state, cfg, batch, batch.x * cfg.scale)
    return methods.classification(fwd["train"], batch.y, max_abs=fwd.max_abs)


@pytest.fixture
def scaled(monkeypatch):
    monkeypatch.setattr(methods, "METHODS", dict(methods.METHODS))  # registered only inside the test
    yield methods.register(ScaledConfig, scaled_loss, "CE on scaled images")


def test_a_registered_method_trains_from_the_command_line(scaled, tmp_path, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    assert "--scale SCALE         x scale (scaled)" in capsys.readouterr().out
    out = tmp_path / "run"
    assert main(["train", "--method", "scaled", "--scale", "0.5", "--dataset", "procedural", "--max-steps", "2",
                 "--batch-size", "32", "--eval-n", "8", "--out", str(out), "--no-progress"]) == 0
    from jeat_core.core.checkpoints import read_manifest

    m = read_manifest(out)
    assert m["method"] == "scaled" and m["config"]["scale"] == 0.5 and m["steps"] == 2
    assert main(["train", "--method", "at", "--scale", "0.5"]) == 2
    assert "--scale does not apply to --method at (--scale applies to scaled)" in capsys.readouterr().err
    with pytest.raises(ValueError, match="registered twice"):
        methods.register(ScaledConfig, scaled_loss, "again")


def test_unknown_method_is_an_error():
    with pytest.raises(ValueError, match="unknown method 'gan'; choose one of standard, noise"):
        methods.make_config("gan")
    with pytest.raises(ValueError, match="unknown method"):
        methods.config_from_dict({"method": "gan"})


@pytest.mark.parametrize("dest", sorted(train_options()))
def test_the_command_line_and_the_config_share_each_limit(dest):
    """For every numeric option: the value just past a finite bound is refused by both the command
    line's parser and the config it sets; the bound itself (when closed) is accepted by both."""
    o, ms = train_options()[dest]
    if not isinstance(o.kind, Range):
        pytest.skip("a choice or a switch")
    r = o.kind
    base = methods.make_config(ms[0])
    for bound, closed, step in ((r.lo, not r.lo_open, -1), (r.hi, not r.hi_open, 1)):
        if bound is None:
            continue
        past = bound + step if r.integer else bound + step * max(1e-6, abs(bound) * 1e-6)
        with pytest.raises(ValueError):
            r.parse(str(past))
        with pytest.raises(ValueError):
            set_path(base, o.path, past)
        if closed and not (o.path == "max_steps" and bound > 1e6):
            assert r.parse(repr(bound) if not r.integer else str(int(bound))) == bound
            assert math.isclose(float(getattr_path(set_path(base, o.path, bound), o.path)), bound)


def getattr_path(cfg, path):
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


def test_resume_refuses_a_method_option_it_would_ignore(tmp_path, capsys):
    """A method's own option (TRADES' β) is compared on --resume like every other: never silently kept."""
    out = str(tmp_path / "run")
    common = ["--dataset", "procedural", "--batch-size", "32", "--eval-n", "8", "--no-progress", "--out", out]
    assert main(["train", "--method", "trades", "--max-steps", "1", *common]) == 0
    capsys.readouterr()
    assert main(["train", "--method", "trades", "--max-steps", "2", "--resume", "--beta", "3", *common]) == 2
    assert "would ignore --beta 3 (stored beta = 6)" in capsys.readouterr().err
    assert main(["train", "--method", "trades", "--max-steps", "2", "--resume", *common]) == 0


# ----------------------------------------------------------------------------- declaring options
def test_options_are_read_from_the_fields_and_their_sub_configs():
    opts = {o.flag: o for o in methods.get_method("jeat").config.all_options()}
    assert opts["--sgld-steps"].path == "sgld.n_steps" and opts["--lr"].path == "optim.lr"
    assert opts["--attack-steps"].path == "attack.n_steps" and opts["--attack-steps"].compare == \
        "attack.resolved_n_steps"
    assert opts["--energy-l2"].path == "energy_l2" and "--sigma" not in opts
    flags = list(opts)  # the flags every method shares first, then the method's own; fields before sub-configs
    assert flags.index("--compile") < flags.index("--lr") < flags.index("--energy-l2") < flags.index("--eps")


def test_a_shared_flag_is_one_declaration():
    """jeat and jem declare the p(x) term's flags with one shared declaration: equal meanings, one flag."""
    jeat, jem = ({o.flag: o for o in methods.get_method(m).config.all_options()} for m in ("jeat", "jem"))
    for flag in ("--energy-l2", "--gen-weight", "--gen-start"):
        assert jeat[flag] == jem[flag]
        assert train_options()[jeat[flag].dest][1] == ("jeat", "jem")


@dataclass(frozen=True)
class OtherBetaConfig(TrainConfig):
    method: str = "otherbeta"
    beta: float = option(0.5, "--beta", Range(0.0, 1.0), "a β of another range")


@dataclass(frozen=True)
class SameBetaConfig(TrainConfig):
    method: str = "samebeta"
    beta: float = option(1.0, "--beta", WEIGHT, "weight of something else")


def test_one_flag_with_two_meanings_is_refused_at_registration(scaled):
    with pytest.raises(ValueError, match=r"flag --beta is declared twice with different meanings: by method "
                                         r"'trades' \(sets beta to \[0, 1e\+06\]\) and by method 'otherbeta' "
                                         r"\(sets beta to \[0, 1\]\)"):
        methods.register(OtherBetaConfig, scaled_loss, "another beta")
    assert "otherbeta" not in methods.METHODS
    before = train_options()["beta"][1]  # the shipped methods declaring --beta (trades, and any shipped later)
    methods.register(SameBetaConfig, scaled_loss, "the same beta, its own help")  # same meaning: shared
    o, ms = train_options()["beta"]
    assert ms == (*before, "samebeta") and "trades" in before
    assert o.help.startswith("weight β of the KL term (6 in Zhang et al.) (trades); ")
    assert o.help.endswith("; weight of something else (samebeta)")


def test_declarations_are_checked_where_they_are_written():
    with pytest.raises(TypeError, match="declared on their fields"):
        @dataclass(frozen=True)
        class OldStyle(TrainConfig):
            options: ClassVar[tuple] = ()
            method: str = "old"
    with pytest.raises(ValueError, match="--out is a flag of `jeat train` itself"):
        option(None, "--out", "text")
    with pytest.raises(ValueError, match="sigma must lie in"):
        option(2.0, "--sigma", Range(0.0, 1.0))  # the default is checked against its own range
    with pytest.raises(ValueError, match="kind must be a Range"):
        option(1, "--k", int)
    with pytest.raises(ValueError, match="lower-case words"):
        option(1, "sigma", Range(0.0, 1.0))
    with pytest.raises(ValueError, match="attack eps must lie in"):  # the declared label names the field
        AttackConfig(eps=2.0)


def test_train_flags_are_the_train_parsers_own():
    t = build_parser()._subparsers._group_actions[0].choices["train"]
    own = {s for a in t._actions for s in a.option_strings if s.startswith("--")}
    assert own - {o.flag for o, _ in train_options().values()} == set(TRAIN_FLAGS)


# ----------------------------------------------------------------------------- named inputs of a forward pass
def test_forward_gives_each_named_input_its_logits():
    cfg = methods.make_config("standard", model=training.ModelConfig("small_cnn", {"widths": [4], "hidden": 4}))
    state = training.build_state(cfg, torch.device("cpu"), 10)
    a, b, c = torch.rand(3, 3, 32, 32), torch.rand(2, 3, 32, 32), torch.rand(4, 3, 32, 32)
    fwd = methods.forward(state, cfg, training.Batch(a, torch.zeros(3, dtype=torch.long)), a, clean=b, skipped=None,
                          negatives=c)
    with torch.no_grad():
        want = state.model(torch.cat([a, b, c]))  # one pass, in the order written
    assert list(fwd.parts) == ["train", "clean", "negatives"] and "skipped" not in fwd
    torch.testing.assert_close(torch.cat([fwd["train"], fwd["clean"], fwd["negatives"]]), want)
    assert fwd.max_abs == float(want.abs().max())
    with pytest.raises(KeyError, match="no input named 'adv'; it has train, clean, negatives"):
        fwd["adv"]
    with pytest.raises(ValueError, match="input 'clean' must be a tensor"):
        methods.forward(state, cfg, training.Batch(a, None), a, clean=[1, 2])

"""The method registry is the one list: a method registered here (a config, a loss, one entry) is
trained by `jeat train`, gets its own flags, is refused the flags of others, and its options are
range-checked the same way by the config and by the command line."""

import math
from dataclasses import dataclass
from typing import ClassVar

import pytest

from jeat_core.cli import build_parser, main, train_options
from jeat_core.core.configs import Option, Range, TrainConfig, set_path
from jeat_core.train import methods


@dataclass(frozen=True)
class ScaledConfig(TrainConfig):
    """A made-up method: CE on 0.9·x (only to prove that adding a method is one entry)."""

    cpu_epochs: ClassVar[float] = 1.0
    options: ClassVar[tuple[Option, ...]] = (Option("--scale", "scale", Range(0.0, 1.0, lo_open=True), "x scale"),)
    method: str = "scaled"
    scale: float = 0.9


def scaled_loss(state, batch, cfg):
    return methods.classification(methods.forward(state, cfg, batch, batch.x * cfg.scale), batch.y)


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

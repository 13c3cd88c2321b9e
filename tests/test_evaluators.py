"""The two evaluators' architectures (A: residual BN-ReLU net with max pooling; B: plain VGG-style
net with GELU and average pooling) and the feature views the generation metrics use."""

import pytest
import torch

from jeat_core.core.models import EvalResNet, EvalVGG, build_model
from jeat_core.measure.evaluator import EvaluatorConfig, main
from jeat_core.measure.metrics import penultimate


def test_feature_views_have_the_documented_shapes():
    x = torch.rand(3, 3, 32, 32)
    a, b = EvalResNet().eval(), build_model("eval_vgg", widths=(8, 16, 24, 32)).eval()
    assert a.features(x).shape == (3, 256) and a.mid_features(x).shape == (3, 128)
    assert b.features(x).shape == (3, 32) and b(x).shape == (3, 10)
    feats, probs = penultimate(b, x)  # the generic hook sees the same features
    assert torch.allclose(feats, b.features(x), atol=1e-6) and torch.allclose(probs.sum(1), torch.ones(3))


def test_the_second_evaluator_is_another_family():
    b = EvalVGG()
    kinds = {type(m).__name__ for m in b.modules()}
    assert "GELU" in kinds and "AvgPool2d" in kinds and "ReLU" not in kinds and "MaxPool2d" not in kinds


def test_bad_evaluator_settings_are_refused(capsys):
    with pytest.raises(ValueError, match="unknown evaluator arch"):
        EvaluatorConfig(arch="vit")
    with pytest.raises(SystemExit):
        main(["--out", "/tmp/x", "--widths", "4,a"])
    assert "--widths" in capsys.readouterr().err

"""The feature-space registry on the shipped evaluator(s) and real CIFAR-10 test images."""

import pytest
import torch

from jeat_core.measure import rulers
from jeat_core.paper.experiments import Context


@pytest.fixture(scope="module")
def ctx(data_root):
    return Context(data_root=data_root)


@pytest.mark.slow
def test_spaces_scaling_and_paired_comparison(ctx):
    spaces = rulers.available(ctx)
    assert spaces[0].role == "primary" and {s.role for s in spaces} <= {"primary", "check"}
    assert set(rulers.missing(ctx)).isdisjoint(s.name for s in spaces)
    x = ctx.test()[0][:200]
    raw = rulers.FEATURE_SPACES["eval-A/raw"]
    assert rulers.set_metrics(ctx, raw, x)["kernel_argument"] > 3  # the raw ruler's kernel argument
    for s in spaces:
        m = rulers.set_metrics(ctx, s, x)
        assert abs(m["kernel_argument"]) < 0.5, (s.name, m)  # standardised: O(1) and centred
        assert 0.3 < m["precision"] <= 1 and m["kid"] < 0.05  # real test images against the real reference
    noisy = (x + 0.15 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    cmp = rulers.compare(ctx, [x], [noisy], n_boot_kid=300, n_boot_fid=20)
    kids = [c for c in cmp if c.metric == "kid"]
    assert [c.feature_space for c in kids] == [s.name for s in spaces]
    for c in kids:  # clean images are closer to the real set than noisy ones, in every ruler
        assert c.diff < 0 and c.ci()[1] < 0, (c.feature_space, c.diff, c.ci())

"""The ruler registry (``jeat_core.measure.rulers``): one ``register_ruler`` call is all a new ruler
needs (scored, compared, recorded and shown in the rendered tables with no change elsewhere), pixel
rulers need no checkpoint, bad input is a clear error; and, on the shipped evaluators and real CIFAR-10
test images (slow), the standardised rulers' scale and the paired comparison."""

import pytest
import torch

from jeat_core.core.checkpoints import CheckpointError
from jeat_core.measure import rulers
from jeat_core.paper.audit_generation import _set_row
from jeat_core.paper.experiments import Context
from jeat_core.paper.verdicts import generation_markdown


class NoEvaluatorContext:
    """A context with synthetic "test images" (8 x 8, so the pixel ruler sees them unpooled; the
    reference slice [5000, 10000) holds the last 600) and no evaluator checkpoint shipped."""

    def __init__(self, n: int = 5600):
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(n, 3, 8, 8, generator=g) * 0.5 + 0.25
        self.y = torch.arange(n) % 10
        self.cache: dict = {}

    def cached(self, key, make):
        if key[0] == "evaluator-model":
            raise CheckpointError(f"{key[1]}: not shipped in this test")
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    def test(self):
        return self.x, self.y


def colour_moments(ctx, images):
    """Each channel's mean and standard deviation over the image (6 numbers per image)."""
    return torch.cat([images.mean((2, 3)), images.std((2, 3))], 1)


@pytest.fixture
def throwaway():
    """A diagnostic ruler registered for one test and removed after it, whatever the test does."""
    r = rulers.register_ruler("test/colour-moments", colour_moments, role="diagnostic", standardise=True,
                              description="each channel's mean and SD, standardised (a test's throwaway)")
    yield r
    rulers.unregister_ruler(r.name)
    assert r.name not in rulers.RULERS


def _report(sets: dict) -> dict:
    """A one-part generation claim around ``sets`` (their primary entries made up), as audit.json holds it."""
    cmp = [{"feature_space": "eval-A/std", "metric": m, "diff": -0.05, "ci": [-0.06, -0.04], "ci_level": 0.95,
            "n": 200, "paired": True, "n_boot": 2000, "training_seeds": 1} for m in ("kid", "fid")]
    primary = {"kid": 0.2, "fid": 3.0, "precision": 0.5, "recall": 0.4, "density": 0.3, "coverage": 0.2,
               "eval_acc": 0.9, "eval_acc_ci": [0.8, 0.95]}
    return {"claims": [{"id": 6, "n": 200, "parts": [{"name": "6a", "a": "jeat", "b": "at", "paper_direction": "a<b",
                                                        "verdict": "reproduced", "comparisons": cmp}],
                        "ours": {"spaces": ["eval-A/std"],
                                 "sets": {n: {"eval-A/std": primary, **row} for n, row in sets.items()}}}]}


def test_the_feature_store_serves_only_what_it_was_given(tmp_path, monkeypatch, throwaway):
    """With ``$JEAT_FEATURE_CACHE`` set, a second process reads the reference features the first kept
    (here: a second context, with the computation made to fail); other images or another feature
    function are another entry; a ruler whose feature function lives outside the library is never kept."""
    pixel = rulers.ruler("pixels/8x8/std")
    ctx = NoEvaluatorContext()
    plain = rulers.real_features(ctx, pixel)  # no store set: computed
    monkeypatch.setenv(rulers.FEATURE_STORE, str(tmp_path))
    first = rulers.real_features(NoEvaluatorContext(), pixel)
    assert torch.equal(first, plain) and len(list(tmp_path.iterdir())) == 1

    def fail(*_):
        raise AssertionError("computed again although the store holds it")

    with monkeypatch.context() as m:
        m.setattr(rulers, "raw_features", fail)
        assert torch.equal(rulers.real_features(NoEvaluatorContext(), pixel), plain)  # read, not computed
    other = NoEvaluatorContext()
    other.x = other.x.flip(0)
    assert not torch.equal(rulers.real_features(other, pixel), plain)  # other images: computed, a new entry
    coarse = rulers.Ruler("test/pixels-4", rulers.PixelFeatures(4), standardise=True, role="diagnostic",
                          description="")
    assert rulers.real_features(NoEvaluatorContext(), coarse).shape[1] == 3 * 4 * 4
    assert len(list(tmp_path.iterdir())) == 3
    rulers.real_features(NoEvaluatorContext(), throwaway)  # the test's own function: never kept
    assert len(list(tmp_path.iterdir())) == 3


def test_one_registration_is_scored_compared_recorded_and_shown(throwaway):
    ctx = NoEvaluatorContext()
    diagnostic = rulers.available(ctx, ("diagnostic",))
    assert throwaway in diagnostic and rulers.ruler("pixels/8x8/std") in diagnostic  # no checkpoint needed
    assert throwaway.name not in rulers.missing(ctx)
    x = ctx.test()[0][:200]
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    cmp = rulers.compare(ctx, [x], [noisy], spaces=diagnostic, n_boot_kid=200, fid=False)  # as the audit does
    mine = next(c for c in cmp if c.feature_space == throwaway.name)
    assert mine.diff < 0 and mine.ci()[1] < 0  # clean images are closer to the reference than noisy ones
    rows = {"clean": _set_row(ctx, x, ctx.test()[1][:200], diagnostic),  # the audit's per-set record
            "noisy": _set_row(ctx, noisy, ctx.test()[1][:200], diagnostic)}
    assert "eval_acc" not in rows["clean"][throwaway.name]  # no evaluator, no evaluator accuracy
    assert rows["clean"][throwaway.name]["kid"] < rows["noisy"][throwaway.name]["kid"]
    md = generation_markdown(_report(rows))
    header = next(s for s in md.splitlines() if s.startswith("| set (n per set) |"))
    assert header.endswith(f"| KID {throwaway.name} (diagnostic) |")  # registered last, shown last
    for name, row in rows.items():
        line = next(s for s in md.splitlines() if s.startswith(f"| {name} (200) |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        shown = dict(zip([f"KID {s.name} (diagnostic)" for s in rulers.of_role("diagnostic")], cells[9:]))
        assert shown[f"KID {throwaway.name} (diagnostic)"] == f"{row[throwaway.name]['kid']:.4g}"
        assert shown["KID eval-A/raw (diagnostic)"] == "—"  # not measured here: shown as such, no error


def test_rendered_tables_drop_an_unregistered_ruler():
    md = generation_markdown(_report({"clean": {"test/colour-moments": {"kid": 1.0}}}))
    assert "colour-moments" not in md and md.count("(diagnostic)") == len(rulers.of_role("diagnostic"))


def test_registry_roles_and_availability():
    assert [r.role for r in rulers.of_role("primary")] == ["primary"] and rulers.primary().name == "eval-A/std"
    assert [r.role for r in rulers.of_role("diagnostic", "primary")][0] == "primary"  # primary first
    ctx = NoEvaluatorContext()
    assert rulers.available(ctx) == []  # every verdict ruler needs an evaluator
    assert set(rulers.missing(ctx)) == {r.name for r in rulers.RULERS.values() if r.evaluator is not None}
    pixels = rulers.ruler("pixels/8x8/std")
    assert pixels.evaluator is None and pixels.role == "diagnostic"
    f = rulers.raw_features(ctx, pixels, torch.rand(4, 3, 32, 32))
    assert f.shape == (4, 192) and f.dtype == torch.float64
    img = torch.rand(1, 3, 32, 32)
    assert torch.allclose(rulers.raw_features(ctx, pixels, img).view(3, 8, 8)[:, 0, 0].float(),
                          img[0, :, :4, :4].mean((1, 2)))  # a pooled value is its 4 x 4 block's mean


def test_bad_rulers_are_clear_errors():
    with pytest.raises(ValueError, match="registered: eval-A/std, eval-B/std"):
        rulers.ruler("eval-C/std")
    with pytest.raises(ValueError, match="role must be one of primary, check, diagnostic"):
        rulers.register_ruler("x", colour_moments, role="verdict", standardise=True, description="")
    with pytest.raises(ValueError, match="taken"):
        rulers.register_ruler("eval-A/raw", colour_moments, role="diagnostic", standardise=True, description="")
    with pytest.raises(ValueError, match="already a primary ruler"):
        rulers.register_ruler("x", colour_moments, role="primary", standardise=True, description="")
    with pytest.raises(ValueError, match="callable"):
        rulers.register_ruler("x", "pixels", role="check", standardise=True, description="")
    with pytest.raises(ValueError, match="unknown role"):
        rulers.of_role("verdict")
    with pytest.raises(ValueError, match="'penultimate' or 'mid'"):
        rulers.EvaluatorFeatures("cifar10-cpu/evaluator", "top")
    with pytest.raises(ValueError, match="no evaluator"):
        rulers.evaluator_predictions(NoEvaluatorContext(), rulers.ruler("pixels/8x8/std"), torch.rand(2, 3, 8, 8))
    assert "x" not in rulers.RULERS


@pytest.fixture(scope="module")
def ctx(data_root):
    return Context(data_root=data_root)


@pytest.mark.slow
def test_spaces_scaling_and_paired_comparison(ctx):
    ref = (5000, 6000)  # a fifth of the audit's reference: what is tested holds at any size, in a fifth of the time
    spaces = rulers.available(ctx)
    assert spaces[0].role == "primary" and {s.role for s in spaces} <= {"primary", "check"}
    assert set(rulers.missing(ctx)).isdisjoint(s.name for s in spaces)
    x = ctx.test()[0][:200]
    raw = rulers.ruler("eval-A/raw")
    assert rulers.set_metrics(ctx, raw, x, ref=ref)["kernel_argument"] > 3  # the raw ruler's kernel argument
    for s in spaces:
        m = rulers.set_metrics(ctx, s, x, ref=ref)
        assert abs(m["kernel_argument"]) < 0.5, (s.name, m)  # standardised: O(1) and centred
        assert 0.3 < m["precision"] <= 1 and m["kid"] < 0.05  # real test images against the real reference
    noisy = (x + 0.15 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    cmp = rulers.compare(ctx, [x], [noisy], n_boot_kid=300, n_boot_fid=20, ref=ref)
    kids = [c for c in cmp if c.metric == "kid"]
    assert [c.feature_space for c in kids] == [s.name for s in spaces]
    for c in kids:  # clean images are closer to the real set than noisy ones, in every ruler
        assert c.diff < 0 and c.ci()[1] < 0, (c.feature_space, c.diff, c.ci())

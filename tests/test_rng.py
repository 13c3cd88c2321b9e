"""Randomness that works for any generator / device pair (issue #16).

On CUDA, ``torch.rand(..., generator=cpu_generator, device="cuda")`` raises "Expected a 'cuda'
device type for generator"; on a CPU-only machine the same call silently works, so the bug
never showed in CPU tests. Two guards here run without a GPU:

* :class:`StrictGenerators` re-imposes CUDA's rule on every device (a generator draws only on its
  own device) and the library is driven with ``meta`` tensors and a CPU generator - the situation
  of a CUDA run seeded by a CPU generator;
* a source scan: no ``torch.rand*``/``randn``/``randint``/``randperm``/... call with a
  ``generator=`` keyword outside :mod:`jeat_core.core.rng`.
"""

import ast
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

from jeat_core.core import rng
from jeat_core.core.attacks import L2Threat, LinfThreat, fgsm_rs, pgd
from jeat_core.core.data import augment
from jeat_core.core.energy import joint_energy
from jeat_core.core.models import SmallCNN
from jeat_core.core.sampling import ClassGaussian, ReplayBuffer, langevin, uniform_init
from jeat_core.train import methods, training

META = torch.device("meta")
RANDOM_FNS = {"rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like", "normal",
              "bernoulli", "multinomial", "poisson", "normal_", "uniform_", "random_", "bernoulli_",
              "exponential_", "cauchy_", "geometric_", "log_normal_"}


class StrictGenerators(TorchFunctionMode):
    """CUDA's rule on every device: a random op with ``generator=g`` must produce its output on
    ``g.device`` (in-place ops: on the tensor they fill). Counts the checked draws."""

    def __init__(self):
        super().__init__()
        self.checked = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        g = kwargs.get("generator")
        name = getattr(func, "__name__", "")
        if g is not None and name in RANDOM_FNS:
            if name.endswith("_") or name.endswith("_like"):
                target = args[0].device
            else:
                target = torch.device(kwargs.get("device") or torch.get_default_device())
            if target.type != g.device.type:
                raise RuntimeError(f"Expected a '{target.type}' device type for generator but found "
                                   f"'{g.device.type}' (in {name})")
            self.checked += 1
        return func(*args, **kwargs)


def _cpu_gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_strict_mode_catches_the_bug_class():
    with StrictGenerators(), pytest.raises(RuntimeError, match="Expected a 'meta' device type"):
        torch.rand(3, generator=_cpu_gen(), device=META)


@pytest.mark.parametrize("fn,args", [(rng.rand, ()), (rng.randn, ()), (rng.randint, (0, 7)),
                                     (rng.rademacher, ())])
def test_helpers_match_torch_on_cpu_and_move_to_any_device(fn, args):
    ref = {rng.rand: torch.rand, rng.randn: torch.randn, rng.randint: torch.randint}.get(fn)
    a = fn(*args, (4, 5), generator=_cpu_gen(1))
    if ref is not None:
        assert torch.equal(a, ref(*args, (4, 5), generator=_cpu_gen(1)))
    else:
        assert set(a.unique().tolist()) <= {-1.0, 1.0} and a.dtype == torch.get_default_dtype()
    with StrictGenerators() as mode:
        m = fn(*args, (4, 5), generator=_cpu_gen(1), device=META)
    assert m.device.type == "meta" and m.shape == (4, 5) and mode.checked == 1


def test_randperm_and_like_helpers():
    assert torch.equal(rng.randperm(9, generator=_cpu_gen(2)), torch.randperm(9, generator=_cpu_gen(2)))
    t = torch.zeros(2, 3, dtype=torch.float64)
    assert rng.randn_like(t, generator=_cpu_gen()).dtype == torch.float64
    with StrictGenerators():
        assert rng.rand_like(t.to(META), generator=_cpu_gen()).device.type == "meta"
        assert rng.randperm(5, generator=_cpu_gen(), device=META).device.type == "meta"


def _meta_model():
    torch.manual_seed(0)
    return SmallCNN(widths=(4, 8), hidden=8).eval().to(META)


def test_attacks_sampling_and_data_draw_on_the_generator_device():
    """pgd, fgsm_rs, both threat models, langevin, seeds, the replay buffer and augmentation with
    meta tensors and a CPU generator, under CUDA's generator rule."""
    model = _meta_model()
    x = torch.empty(6, 3, 32, 32, device=META)
    y = torch.zeros(6, dtype=torch.long, device=META)
    g = _cpu_gen()
    with StrictGenerators() as mode:
        for threat in (LinfThreat(0.1), L2Threat(0.5)):
            assert threat.random(x, g).device.type == "meta"
        for norm in ("linf", "l2"):
            assert pgd(model, x, y, eps=0.1, step_size=0.05, n_steps=2, norm=norm, generator=g).device == META
        assert fgsm_rs(model, x, y, eps=0.1, generator=g).device == META
        xk = langevin(lambda z: joint_energy(model(z), y), x, step_size=0.1, n_steps=2, noise_std=0.01,
                      clamp=(0, 1), generator=g)
        assert xk.device == META
        assert uniform_init(3, device=META, generator=g).device == META
        buf = ReplayBuffer(20, reinit_prob=0.5, device=META, generator=g)
        xb, idx = buf.sample(8, generator=g)
        assert xb.device == META
        buf.push(xb, idx)
        assert augment(x, generator=g).device == META
    assert mode.checked >= 10
    cg = ClassGaussian(torch.rand(8, 3, 4, 4), torch.tensor([0, 1] * 4))
    with StrictGenerators():
        assert cg.sample(torch.tensor([0, 1, 1]), generator=g, device=META).shape == (3, 3, 4, 4)


class _ReachedForward(Exception):
    """Raised by the stand-in training model: the loss has drawn everything it draws."""


class _StopAtForward(torch.nn.Module):
    """Stands in for the (DDP-like) training model ``state.model``: ``module`` is the real one (``state.core``,
    which the attack and the sampler run); calling it, the loss's one forward pass, records its input and stops."""

    def __init__(self, module: torch.nn.Module, seen: dict):
        super().__init__()
        self.module, self.seen = module, seen

    def forward(self, x):
        self.seen["x"] = x
        raise _ReachedForward


@pytest.mark.parametrize("method", training.METHODS)
def test_training_steps_draw_on_the_generator_device(method, monkeypatch):
    """Every method's loss (attack, noise, SGLD, buffer) with the model on ``meta`` and the
    state's generator on the CPU. The loss runs up to its forward pass, which the stand-in model ends
    after recording the concatenated inputs: a step's draws all come before it, and what follows (the
    loss terms) reads values that meta tensors do not have. Nothing of the loss is stubbed, so a method
    with loss pieces of its own (or importing the shared ones by name) needs nothing here. The pass
    holds ``update_inputs`` copies of the batch plus the SGLD negatives (what the benchmarks count)."""
    cfg = training.make_config(method, "cpu", model=training.ModelConfig("small_cnn", {"widths": [4, 8],
                                                                                        "hidden": 8}))
    if cfg.uses_sgld:
        cfg = replace(cfg, sgld=replace(cfg.sgld, n_steps=2, batch_size=4, buffer_size=16, reinit_prob=0.5))
    state = training.build_state(cfg, torch.device("cpu"), 10)
    state.generator = _cpu_gen()
    state.model.to(META)
    state.device = META
    if state.buffer is not None:
        state.buffer = ReplayBuffer(16, reinit_prob=0.5, device=META, generator=state.generator)
    seen = {}
    state.model = _StopAtForward(state.model, seen)
    x = torch.empty(6, 3, 32, 32, device=META)
    y = torch.zeros(6, dtype=torch.long, device=META)
    with StrictGenerators(), pytest.raises(_ReachedForward):
        methods.METHODS[method].loss(state, training.Batch(x, y), cfg)
    assert seen["x"].device == META
    negatives = cfg.sgld.batch_size if cfg.uses_sgld else 0
    assert len(seen["x"]) == type(cfg).update_inputs * len(x) + negatives, "update_inputs is wrong"


def test_build_state_puts_the_generator_on_the_training_device():
    cfg = training.make_config("jeat", "cpu", model=training.ModelConfig("small_cnn", {"widths": [4], "hidden": 4}))
    cfg = replace(cfg, sgld=replace(cfg.sgld, buffer_size=8))
    state = training.build_state(cfg, torch.device("cpu"), 10)
    assert state.generator.device.type == "cpu"
    assert state.buffer.data.device.type == "cpu"


# ----------------------------------------------------------------------------- source scan
SRC = Path(__file__).resolve().parent.parent / "jeat_core"


def _direct_random_calls(path: Path) -> list[str]:
    """``torch.<random fn>(..., generator=...)`` and ``t.<random_>(..., generator=...)`` calls."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        recv = node.func.value
        direct = node.func.attr.endswith("_") or (isinstance(recv, ast.Name) and recv.id == "torch")
        if direct and node.func.attr in RANDOM_FNS and any(k.arg == "generator" for k in node.keywords):
            bad.append(f"{path.name}:{node.lineno} {node.func.attr}")
    return bad


def test_source_scan_finds_the_old_pattern(tmp_path):
    f = tmp_path / "old.py"
    f.write_text("import torch\nu = torch.rand((2,), generator=g, device=d)\nv = x.normal_(generator=g)\n")
    assert _direct_random_calls(f) == ["old.py:2 rand", "old.py:3 normal_"]


def test_no_direct_random_draws_with_a_generator_outside_rng():
    files = sorted(p for p in SRC.rglob("*.py") if p.name != "rng.py")
    assert len(files) > 10
    bad = [b for p in files for b in _direct_random_calls(p)]
    assert not bad, "draw through jeat_core.core.rng (device-correct), not torch directly: " + ", ".join(bad)


def test_resume_accepts_a_generator_state_from_another_device_type():
    """A CPU generator's state cannot be loaded into a CUDA generator (or back); resuming reseeds."""
    cfg = training.make_config("standard", "cpu", model=training.ModelConfig("small_cnn", {"widths": [4], "hidden": 4}))
    state = training.build_state(cfg, torch.device("cpu"), 10)
    s = state.state_dict()
    s["generator"] = torch.zeros(16, dtype=torch.uint8)  # the size of a CUDA generator's state
    state.load_state_dict(s)
    a = rng.rand((3,), generator=state.generator)
    state.load_state_dict(s)
    assert torch.equal(a, rng.rand((3,), generator=state.generator))  # reseeded deterministically

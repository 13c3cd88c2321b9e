"""The library on ``$JEAT_TEST_DEVICE`` (default cpu): attacks, sampling, every training step,
``fit`` and generation, with generators on the CPU and on the device.

On a CPU-only machine these run on the CPU like any other test; ``benchmarks/gpu_check.py`` runs
them with ``JEAT_TEST_DEVICE=cuda`` (``pytest -m device``), where a generator on the wrong device
or a tensor left on the host fails.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL, tiny_cnn, tiny_config

from jeat_core.core import rng
from jeat_core.core.attacks import fgsm_rs, pgd
from jeat_core.core.data import augment, procedural
from jeat_core.core.energy import cross_entropy, joint_energy, marginal_energy
from jeat_core.core.sampling import ClassGaussian, GenerationConfig, ReplayBuffer, generate, langevin, uniform_init
from jeat_core.measure.metrics import fisher_score
from jeat_core.train import training

pytestmark = pytest.mark.device
TOY = procedural(256, seed=0)


def _gens(device):
    """A CPU generator and one on ``device`` (the same object twice on cpu)."""
    return {"cpu": torch.Generator().manual_seed(0), "device": torch.Generator(device=device).manual_seed(0)}


def _batch(device, n=16):
    x, y = TOY.tensors(n)
    return x.to(device), y.to(device)


@pytest.mark.parametrize("where", ["cpu", "device"])
def test_rng_draws_land_on_the_device_and_a_cpu_generator_is_device_independent(device, where):
    g = _gens(device)[where]
    for fn in (rng.rand, rng.randn, rng.rademacher):
        assert fn((3, 4), generator=g, device=device).device.type == device.type
    assert rng.randint(0, 5, (7,), generator=g, device=device).device.type == device.type
    assert rng.randperm(7, generator=g, device=device).device.type == device.type
    # a CPU generator gives the same numbers whatever the target device
    a = rng.randn((5, 6), generator=torch.Generator().manual_seed(3), device=device).cpu()
    assert torch.equal(a, torch.randn((5, 6), generator=torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("where", ["cpu", "device"])
@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("l2", 0.5)])
def test_pgd_on_device(device, where, norm, eps):
    model = tiny_cnn().to(device)
    x, y = _batch(device)
    seed = _gens(device)[where].initial_seed()

    def gen():
        return torch.Generator(device="cpu" if where == "cpu" else device).manual_seed(seed)

    xa = pgd(model, x, y, eps=eps, step_size=eps / 4, n_steps=5, norm=norm, generator=gen())
    assert xa.device.type == device.type and xa.min() >= 0 and xa.max() <= 1
    d = (xa - x).flatten(1)
    size = d.abs().max(1).values if norm == "linf" else d.norm(dim=1)
    assert (size <= eps + 1e-5).all()
    with torch.no_grad():
        assert cross_entropy(model(xa), y).mean() > cross_entropy(model(x), y).mean()
    # same generator seed -> same adversarial examples
    torch.testing.assert_close(pgd(model, x, y, eps=eps, step_size=eps / 4, n_steps=5, norm=norm, generator=gen()), xa)
    xf = fgsm_rs(model, x, y, eps=eps if norm == "linf" else 8 / 255, generator=gen())
    assert xf.device.type == device.type


@pytest.mark.parametrize("where", ["cpu", "device"])
def test_langevin_seeds_and_buffer_on_device(device, where):
    model = tiny_cnn().to(device)
    g = _gens(device)[where]
    x0 = uniform_init(8, device=device, generator=g)
    assert x0.device.type == device.type
    y = torch.arange(8, device=device) % 10
    xk = langevin(lambda z: joint_energy(model(z), y), x0, step_size=0.5, n_steps=5, noise_std=0.0, clamp=(0, 1),
                  generator=g)
    with torch.no_grad():  # noise-free Langevin descends the energy
        assert joint_energy(model(xk), y).mean() < joint_energy(model(x0), y).mean()
    xn = langevin(lambda z: marginal_energy(model(z)), x0, step_size=0.1, n_steps=2, noise_std=0.01, generator=g)
    assert xn.device.type == device.type and not torch.equal(xn, x0)
    buf = ReplayBuffer(32, reinit_prob=0.5, device=device, generator=g)
    assert buf.data.device.type == device.type
    xb, idx = buf.sample(16, generator=g)
    assert xb.device.type == device.type and buf.n_reinit > 0
    buf.push(torch.zeros_like(xb), idx)
    assert (buf.data[idx.to(buf.data.device)] == 0).all()
    xa = augment(x0, generator=g)
    assert xa.device.type == device.type and xa.shape == x0.shape


def test_generation_and_fisher_on_device(device):
    model = tiny_cnn().to(device)
    x, y = TOY.tensors(40)
    cg = ClassGaussian(x, y)
    labels = torch.tensor([0, 1, 2, 3])
    seeds = cg.sample(labels, generator=torch.Generator().manual_seed(0), device=device)
    out = generate(model, labels.to(device), seeds, GenerationConfig(n_steps=3), seed=1)
    assert out.device.type == device.type and out.shape == seeds.shape and 0 <= out.min() and out.max() <= 1
    assert not torch.equal(out, seeds)
    s = fisher_score(lambda z: joint_energy(model(z), labels.to(device)), seeds, n_probes=2, exact=False,
                     generator=torch.Generator(device=device).manual_seed(0))
    assert np.isfinite(s)


def _tiny(method, **kw):
    model = training.ModelConfig("small_cnn", TINY_MODEL)
    return tiny_config(method, batch_size=16, sgld=(2, 8, 32),
                       **{"eval_n": 32, "log_every": 1, "max_steps": 2, "model": model, **kw})


@pytest.mark.parametrize("method", training.METHODS)
def test_every_training_step_on_device(device, method):
    """One step of each method with the state built for ``device`` (generator, buffer, amp, channels-last)."""
    cfg = _tiny(method)
    state = training.build_state(cfg, device, 10)
    assert state.generator.device.type == (device.type if device.type == "cuda" else "cpu")
    before = {k: v.clone() for k, v in state.core.state_dict().items()}
    x, y = _batch(device)
    x = x.contiguous(memory_format=torch.channels_last)
    m = training.train_step(state, x, y, cfg, True).metrics
    assert all(np.isfinite(v) for v in m.values()), m
    assert "dxE_joint_mean" in m
    after = state.core.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    if state.buffer is not None:
        assert state.buffer.data.device.type == device.type


@pytest.mark.parametrize("method", ["at", "jeat"])
def test_fit_and_resume_on_device(device, method, tmp_path):
    cfg = _tiny(method)
    res = training.fit(cfg, out=tmp_path, train_data=TOY, test_data=procedural(64, seed=1), progress=False,
                       device=str(device))
    assert res.manifest["steps"] == 2 and res.manifest["device"].startswith(device.type)
    assert 0 <= res.manifest["metrics"]["clean_acc"] <= 1
    res2 = training.fit(replace(cfg, max_steps=3), out=tmp_path, train_data=TOY, test_data=procedural(64, seed=1),
                        progress=False, device=str(device), resume=True)
    assert res2.manifest["steps"] == 3


def test_cli_generate_on_device(device, tmp_path):
    """``jeat generate --device``: the CLI seeds a CPU generator and samples on the device."""
    from jeat_core.cli import main

    training.fit(_tiny("standard"), out=tmp_path / "m", train_data=TOY, test_data=procedural(64, seed=1),
                 progress=False, device=str(device))
    rc = main(["generate", "--model", str(tmp_path / "m"), "--labels", "0,1", "--per-class", "2", "--init",
               "uniform", "--steps", "2", "--device", str(device), "--out", str(tmp_path / "g.npz")])
    assert rc == 0
    with np.load(tmp_path / "g.npz") as f:
        assert f["x"].shape[0] == 4 and list(f["y"]) == [0, 0, 1, 1]

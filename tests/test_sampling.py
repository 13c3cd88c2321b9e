"""Sampling (Eq. 16/17): Langevin samples a known Gaussian and noise-free chains reach the minimum,
snapshot and plain paths agree, the class-Gaussian seeds' moments, the replay buffer's state, and
the sampler families the generation verdicts name."""

import math

import pytest
import torch
from conftest import tiny_cnn

from jeat_core.core.sampling import (
    ClassGaussian,
    GenerationConfig,
    ReplayBuffer,
    generate,
    generate_snapshots,
    generation_energy,
    langevin,
    langevin_step,
)


def test_langevin_samples_a_gaussian():
    """Exact Langevin (noise = sqrt(step)) on E(x) = ½ Σ_i (x_i − μ_i)² / σ_i² samples N(μ, σ²)."""
    mu, sd = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0])

    def energy(x):
        return 0.5 * (((x - mu) / sd) ** 2).sum(1)

    g = torch.Generator().manual_seed(0)
    x0 = torch.zeros(4000, 2)
    x, chain = langevin(energy, x0, step_size=0.01, n_steps=3000, generator=g, record_every=1000)
    assert chain.shape == (4, 4000, 2)
    torch.testing.assert_close(x.mean(0), mu, atol=0.08, rtol=0)
    # discretisation bias of the unadjusted sampler is O(step): var = σ² / (1 − step/(4σ²))
    expected_var = sd ** 2 / (1 - 0.01 / (4 * sd ** 2))
    torch.testing.assert_close(x.var(0), expected_var, rtol=0.06, atol=0)


def test_noise_free_langevin_reaches_the_minimum():
    target = torch.tensor([[0.3, 0.7, -1.0]])
    x = langevin(lambda x: ((x - target) ** 2).sum(1), torch.zeros(5, 3), step_size=0.1, n_steps=300,
                 noise_std=0.0)
    torch.testing.assert_close(x, target.expand(5, 3), atol=1e-5, rtol=0)


def test_langevin_clamp_and_bad_args():
    x = langevin(lambda x: -x.sum(1) * 100, torch.full((2, 3), 0.5), step_size=1.0, n_steps=3, clamp=(0, 1))
    assert x.max() <= 1 and x.min() >= 0
    with pytest.raises(ValueError, match="step_size must be a finite number >= 0"):
        langevin(lambda x: x.sum(1), torch.zeros(1, 2), step_size=-1, n_steps=1)
    with pytest.raises(ValueError, match="noise_std must be"):
        langevin(lambda x: x.sum(1), torch.zeros(1, 2), step_size=1, n_steps=1, noise_std=-0.1)
    with pytest.raises(ValueError, match="unknown generation energy"):
        generation_energy(torch.nn.Identity(), torch.zeros(1, dtype=torch.long), "marginal")


@pytest.mark.parametrize("step,noise", [("langevin", 0.01), ("l2", 0.0), ("l2", 0.01)])
def test_snapshot_path_and_plain_path_give_the_same_images(step, noise):
    """generate, generate_snapshots and langevin are one chain: the same seed gives bit-identical
    images, whether the chain runs in one piece or is cut at snapshots (the generator is consumed
    identically), and a snapshot at step k is the plain chain of k steps."""
    m = tiny_cnn(0)
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    cfg = GenerationConfig(step=step, step_size=0.5, n_steps=6, noise_std=noise)
    plain = generate(m, y, x, cfg, seed=3)
    snaps = generate_snapshots(m, y, x, cfg, at=(6, 0, 2, 5), seed=3)
    assert list(snaps) == [0, 2, 5, 6] and torch.equal(snaps[0], x) and torch.equal(snaps[6], plain)
    assert torch.equal(snaps[2], generate(m, y, x, GenerationConfig(step=step, step_size=0.5, n_steps=2,
                                                                    noise_std=noise), seed=3))
    ref = langevin(generation_energy(m, y, "joint"), x, step_size=0.5, n_steps=6, noise_std=noise, step=step,
                   clamp=(0, 1), generator=torch.Generator().manual_seed(3))
    assert torch.equal(ref, plain)


def test_langevin_step_is_the_update_rule():
    """One step on U(x) = ½‖x − μ‖²: the drift −(η/2)(x − μ) plus s·ε from the generator; the L2 step
    moves by exactly η along −∇U/‖∇U‖ (Santurkar); ``x`` is updated in place."""
    mu = torch.tensor([[1.0, 2.0, 2.0]])

    def energy(z):
        return 0.5 * ((z - mu) ** 2).sum(1)

    x = torch.zeros(1, 3)
    eps = torch.randn(1, 3, generator=torch.Generator().manual_seed(7))
    out = langevin_step(energy, x.clone(), step_size=0.2, noise_std=0.1, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(out, x + 0.1 * mu + 0.1 * eps)
    l2 = langevin_step(energy, x.clone(), step_size=0.3, noise_std=0.0, step="l2", clamp=(0.0, 0.15))
    torch.testing.assert_close(l2, torch.tensor([[0.1, 0.15, 0.15]]))  # 0.3·μ/‖μ‖ = (0.1, 0.2, 0.2), clamped
    with pytest.raises(ValueError, match="unknown step"):
        langevin(energy, x, step_size=0.1, n_steps=1, step="sgd")


def test_langevin_channels_last_gives_the_same_chain():
    """Iterating on channels-last images changes the layout, not the numbers: the same noise draws
    (the generator is consumed identically), a contiguous result, recorded iterates that are copies."""
    torch.manual_seed(0)
    w = torch.randn(4, 3, 3, 3)

    def energy(z):
        return torch.nn.functional.conv2d(z, w, padding=1).pow(2).mean((1, 2, 3))

    x0 = torch.rand(6, 3, 8, 8)
    kw = dict(step_size=0.5, n_steps=4, noise_std=0.01, clamp=(0, 1), record_every=2)
    a, ca = langevin(energy, x0, generator=torch.Generator().manual_seed(1), **kw)
    b, cb = langevin(energy, x0, generator=torch.Generator().manual_seed(1), channels_last=False, **kw)
    assert a.is_contiguous() and ca.is_contiguous()
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(ca, cb, atol=1e-5, rtol=0)
    assert torch.equal(ca[0], x0) and not torch.equal(ca[1], ca[2])


def test_class_gaussian_moments():
    g = torch.Generator().manual_seed(0)
    n, d = 4000, 6
    a = torch.randn(d, d, generator=g) * 0.05
    x = (0.5 + torch.randn(n, d, generator=g) @ a).clamp(0, 1).view(n, 1, 2, 3)
    y = torch.zeros(n, dtype=torch.long)
    cg = ClassGaussian(x, y, ridge=1e-4)
    flat = x.flatten(1)
    torch.testing.assert_close(cg.covariance(0), torch.cov(flat.T) + 1e-4 * torch.eye(d), atol=1e-6, rtol=1e-4)
    s = cg.sample(torch.zeros(20000, dtype=torch.long), generator=g).flatten(1)
    torch.testing.assert_close(s.mean(0), flat.mean(0), atol=3e-3, rtol=0)
    torch.testing.assert_close(torch.cov(s.T), cg.covariance(0), atol=2e-3, rtol=0)
    with pytest.raises(ValueError, match="no images of class 3"):
        cg.sample(torch.tensor([3]))


def test_replay_buffer_reinit_rate_and_state():
    rho = 0.2
    buf = ReplayBuffer(1000, (2,), reinit_prob=rho, init_fn=lambda n, g: torch.full((n, 2), -1.0))
    buf.data.fill_(5.0)  # mark old chains
    g = torch.Generator().manual_seed(0)
    fresh = 0
    for _ in range(50):
        x, idx = buf.sample(200, generator=g)
        fresh += int((x[:, 0] == -1).sum())
    rate = fresh / (50 * 200)
    assert abs(rate - rho) < 4 * math.sqrt(rho * (1 - rho) / 10000), rate
    assert abs(buf.n_reinit / buf.n_sampled - rate) < 1e-12
    x, idx = buf.sample(10, generator=g)
    buf.push(x + 1, idx)
    other = ReplayBuffer(1000, (2,), reinit_prob=0.5)
    other.load_state_dict(buf.state_dict())
    torch.testing.assert_close(other.data, buf.data)
    assert other.reinit_prob == rho and other.n_sampled == buf.n_sampled
    with pytest.raises(ValueError, match="reinit_prob must lie in"):
        ReplayBuffer(10, (2,), reinit_prob=1.5)


def test_replay_buffer_counts_sgld_steps_per_chain():
    """``age`` is the number of SGLD steps a chain has run since its (re-)init."""
    g = torch.Generator().manual_seed(0)
    buf = ReplayBuffer(4, (2,), reinit_prob=0.0)
    for _ in range(3):
        x, idx = buf.sample(4, generator=g)
        buf.push(x, idx, steps=5)
    assert buf.age.max() <= 15 and int(buf.age.max()) > 0 and all(int(a) % 5 == 0 for a in buf.age)
    # exact bookkeeping on distinct slots: sample every slot once, run 7 steps, push back
    buf = ReplayBuffer(3, (2,), reinit_prob=0.0)
    buf.last_age = buf.age[torch.tensor([0, 1, 2])].clone()
    buf.push(buf.data.clone(), torch.tensor([0, 1, 2]), steps=7)
    assert buf.age.tolist() == [7, 7, 7]
    # a re-initialised chain starts again from 0
    buf.reinit_prob = 1.0
    x, idx = buf.sample(2, generator=g)
    assert buf.last_age.tolist() == [0, 0]
    buf.push(x, idx, steps=2)
    assert all(buf.age[i] == 2 for i in idx.tolist())
    with pytest.raises(ValueError, match="chains of the last sample"):
        buf.push(x[:1], idx[:1], steps=2)
    other = ReplayBuffer(3, (2,))
    other.load_state_dict(buf.state_dict())
    assert torch.equal(other.age, buf.age)
    state = buf.state_dict()
    del state["age"]  # a state written before ages were counted
    other.load_state_dict(state)
    assert other.age.tolist() == [0, 0, 0]


def test_the_sampler_as_written_is_its_own_family():
    """Eq. 9 as written (noise √η) is tuned as its own family and stored beside the tuned sampler
    (manifest["sampler"]["joint/as-written"]); sampler_for reads either by its key."""
    import math

    from jeat_core.core.sampling import sampler_for
    from jeat_core.paper.experiments import AS_WRITTEN_GRID, SAMPLER_FAMILIES, sampler_key

    assert all(c.step == "langevin" and math.isclose(c.noise_std, math.sqrt(c.step_size)) for c in AS_WRITTEN_GRID)
    assert set(SAMPLER_FAMILIES) == {"tuned", "as-written"}
    assert sampler_key("joint") == "joint" and sampler_key("ce", "as-written") == "ce/as-written"
    with pytest.raises(ValueError, match="unknown sampler family"):
        sampler_key("joint", "exact")
    manifest = {"sampler": {"joint": {"step": "l2", "step_size": 0.5, "n_steps": 20, "noise_std": 0.0},
                            "joint/as-written": {"step": "langevin", "step_size": 0.01, "n_steps": 40,
                                                 "noise_std": 0.1}}}
    assert sampler_for(manifest, "joint").step == "l2"
    written = sampler_for(manifest, "joint", key=sampler_key("joint", "as-written"))
    assert (written.step, written.step_size, written.noise_std) == ("langevin", 0.01, 0.1)


def test_near_noiseless_samplers_are_called_gradient_descent():
    from jeat_core.paper.audit_generation import near_noiseless

    assert near_noiseless({"step": "langevin", "step_size": 3.0, "noise_std": 0.001})
    assert near_noiseless({"step": "l2", "step_size": 0.5, "noise_std": 0.0})
    assert not near_noiseless({"step": "langevin", "step_size": 0.01, "noise_std": 0.1})

"""The energy conventions of Eq. 12/13 (E(x, y) = −f(x)[y], E(x) = −logsumexp f(x), CE = E(x, y) − E(x))
against torch's own functions, dispatch by kind, and the messages for bad inputs."""

import pytest
import torch
import torch.nn.functional as F

from jeat_core.core.energy import cross_entropy, energy_from_logits, energy_of, joint_energy, marginal_energy


def test_identities_match_torch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 10, generator=g) * 5
    y = torch.randint(0, 10, (64,), generator=g)
    assert joint_energy(logits, y).shape == (64,)
    torch.testing.assert_close(joint_energy(logits, y), -logits[torch.arange(64), y])
    torch.testing.assert_close(marginal_energy(logits), -torch.logsumexp(logits, 1))
    # Eq. 13: CE = E(x,y) - E(x)
    torch.testing.assert_close(cross_entropy(logits, y), F.cross_entropy(logits, y, reduction="none"))
    # p(y|x) = exp(-(E(x,y) - E(x)))
    torch.testing.assert_close(torch.exp(-cross_entropy(logits, y)), logits.softmax(1)[torch.arange(64), y])
    # E(x) <= E(x,y) for all y (logsumexp >= max)
    assert (marginal_energy(logits) <= joint_energy(logits, y)).all()


def test_energy_of_model_and_dispatch():
    lin = torch.nn.Linear(4, 3)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 1, 0])
    for kind in ("joint", "marginal", "ce"):
        torch.testing.assert_close(energy_of(lin, kind, y)(x), energy_from_logits(lin(x), kind, y))


@pytest.mark.parametrize("call,msg", [
    (lambda: joint_energy(torch.zeros(2, 3), torch.tensor([0, 3])), "labels must lie in [0, 2]"),
    (lambda: joint_energy(torch.zeros(2, 3), torch.tensor([0, 1, 2])), "labels must have shape (2,)"),
    (lambda: marginal_energy(torch.zeros(3)), "logits must have shape (B, K)"),
    (lambda: energy_of(torch.nn.Identity(), "joint"), "needs labels"),
    (lambda: energy_of(torch.nn.Identity(), "free"), "unknown energy 'free'"),
    (lambda: joint_energy(torch.zeros(2, 3), torch.tensor([0.0, 1.0])), "labels must be integers"),
])
def test_bad_input_messages(call, msg):
    with pytest.raises(ValueError) as e:
        call()
    assert msg in str(e.value)

"""Random draws that work for any generator / device pair.

PyTorch draws with a ``torch.Generator`` only on the generator's own device: ``torch.rand(...,
generator=cpu_gen, device="cuda")`` raises "Expected a 'cuda' device type for generator". Every
random draw in :mod:`jeat_core` therefore goes through this module: the numbers are drawn on the
generator's device and then moved to ``device``. With a generator on the target device (what
:func:`jeat_core.train.training.build_state` creates) nothing moves; with a CPU generator and CUDA
tensors the draw is made on the CPU and copied, so a run seeded on the CPU gives the same numbers
on any device. Without a generator the draw is made directly on ``device`` from torch's global RNG.

``device=None`` means torch's default device, as for ``torch.rand``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

Shape = Sequence[int] | torch.Size


def _draw(fn: Callable[..., Tensor], args: tuple, generator: torch.Generator | None, device, dtype) -> Tensor:
    target = torch.device(device) if device is not None else torch.get_default_device()
    if generator is None:
        return fn(*args, device=target, dtype=dtype)
    out = fn(*args, generator=generator, device=generator.device, dtype=dtype)
    return out if out.device == target else out.to(target)


def rand(shape: Shape, *, generator: torch.Generator | None = None, device=None, dtype=None) -> Tensor:
    """``U[0, 1)`` of ``shape`` on ``device`` (see the module docstring)."""
    return _draw(torch.rand, (tuple(shape),), generator, device, dtype)


def randn(shape: Shape, *, generator: torch.Generator | None = None, device=None, dtype=None) -> Tensor:
    """``N(0, 1)`` of ``shape`` on ``device``."""
    return _draw(torch.randn, (tuple(shape),), generator, device, dtype)


def randint(low: int, high: int, shape: Shape, *, generator: torch.Generator | None = None, device=None,
            dtype=torch.long) -> Tensor:
    """Integers uniform in ``[low, high)`` of ``shape`` on ``device``."""
    return _draw(torch.randint, (low, high, tuple(shape)), generator, device, dtype)


def randperm(n: int, *, generator: torch.Generator | None = None, device=None) -> Tensor:
    """A random permutation of ``0 .. n-1`` on ``device``."""
    return _draw(torch.randperm, (n,), generator, device, torch.long)


def rademacher(shape: Shape, *, generator: torch.Generator | None = None, device=None, dtype=None) -> Tensor:
    """Independent ±1 signs of ``shape`` (``dtype`` default: torch's default float dtype)."""
    signs = randint(0, 2, shape, generator=generator, device=device)
    return signs.to(dtype or torch.get_default_dtype()).mul_(2).sub_(1)


def rand_like(t: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """``U[0, 1)`` with the shape, device and dtype of ``t``."""
    return rand(t.shape, generator=generator, device=t.device, dtype=t.dtype)


def randn_like(t: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """``N(0, 1)`` with the shape, device and dtype of ``t``."""
    return randn(t.shape, generator=generator, device=t.device, dtype=t.dtype)

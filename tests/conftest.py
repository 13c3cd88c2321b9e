import os
from pathlib import Path

import pytest
import torch

from jeat_core.data import load_split, procedural

torch.set_num_threads(min(2, os.cpu_count() or 1))
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_root() -> str:
    root = os.environ.get("JEAT_DATA") or str(REPO.parent / "shared" / "data" / "cifar10")
    if not (Path(root) / "test.npz").is_file():
        pytest.fail(f"real CIFAR-10 not found at {root}; set JEAT_DATA to a folder with train.npz/test.npz")
    return root


@pytest.fixture(scope="session")
def cifar_test(data_root):
    return load_split("test", data_root=data_root)


@pytest.fixture(scope="session")
def toy():
    return procedural(512, seed=3)


def tiny_cnn(seed: int = 0) -> torch.nn.Module:
    from jeat_core.models import SmallCNN

    torch.manual_seed(seed)
    return SmallCNN(widths=(8, 16), hidden=32).eval()


@pytest.fixture(scope="session")
def standard_model(data_root, request):
    """A standard CNN trained briefly on real CIFAR-10 (cached between local runs).

    Uses the shipped ``cifar10-cpu/standard`` when present, else trains one epoch (~2 minutes on
    2 CPU cores, about 55% clean accuracy)."""
    from jeat_core.checkpoints import load_model, shipped_root
    from jeat_core.training import OptimConfig, fit, make_config

    shipped = shipped_root() / "cifar10-cpu" / "standard"
    if (shipped / "model.safetensors").is_file():
        return load_model(shipped)[0]
    cache = Path(request.config.cache.mkdir("jeat_standard_v2"))
    if not (cache / "model.safetensors").is_file():
        cfg = make_config("standard", "cpu", epochs=1.0, eval_n=0, log_every=0, checkpoint_every=0, augment=False,
                          optim=OptimConfig("adam", lr=1e-3, batch_size=128, warmup_steps=20))
        fit(cfg, out=cache, data_root=data_root, progress=False)
    return load_model(cache)[0]

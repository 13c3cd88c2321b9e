"""Data, models and checkpoints (the core's files): the npz round trip and a missing-data message that
says how to get it, real CIFAR-10 as the README says, the model registry, checkpoint round trips and
errors, and a training state that never unpickles code."""

import pickle

import numpy as np
import pytest
import torch

from jeat_core.core.checkpoints import CheckpointError, load_model, load_state, save_weights, write_json
from jeat_core.core.data import DataNotFoundError, augment, load_split, procedural, to_uint8
from jeat_core.core.models import SmallCNN, WideResNet, build_model


def test_npz_folder_and_roundtrip(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "train.npz", x=x, y=np.arange(20) % 10)
    s = load_split("train", data_root=tmp_path, with_hash=True)
    assert len(s) == 20 and s.sha256 and len(s.sha256) == 64
    xf, y = s.tensors()
    assert xf.shape == (20, 3, 32, 32) and 0 <= xf.min() and xf.max() <= 1
    assert np.array_equal(to_uint8(xf), x)


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("JEAT_DATA", raising=False)
    with pytest.raises(DataNotFoundError) as e:
        load_split("test", data_root=tmp_path / "nowhere", download=False)
    assert "JEAT_DATA" in str(e.value) and "test.npz" in str(e.value)
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_split("val")


def test_real_cifar10_is_what_the_readme_says(cifar_test):
    assert cifar_test.x.shape == (10000, 32, 32, 3) and cifar_test.x.dtype == np.uint8
    assert np.bincount(cifar_test.y).tolist() == [1000] * 10


def test_procedural_and_augment():
    s = procedural(64, seed=0)
    x, y = s.tensors()
    assert x.shape == (64, 3, 32, 32) and set(y.tolist()) <= set(range(10))
    xa = augment(x, generator=torch.Generator().manual_seed(0))
    assert xa.shape == x.shape and not torch.equal(xa, x)
    assert torch.equal(augment(x, pad=0, flip=False), x)


def test_models_registry_and_normalisation():
    m = build_model("small_cnn")
    assert m(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert sum(p.numel() for p in m.parameters()) * 4 < 5e6  # fits the 5 MB checkpoint budget
    w = WideResNet(10, 1, norm="group")
    assert w(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    n = sum(p.numel() for p in WideResNet(28, 10).parameters())
    assert 36.0e6 < n < 37.0e6  # WRN-28-10 has 36.5 M parameters
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        build_model("vgg")
    with pytest.raises(ValueError, match="unknown norm 'layer'"):
        SmallCNN(norm="layer")


def _write_ckpt(folder):
    torch.manual_seed(0)
    m = SmallCNN(widths=(8, 16), hidden=32)
    save_weights(folder / "model.safetensors", m)
    write_json(folder / "manifest.json", {
        "method": "standard", "config": {}, "arch": {"name": "small_cnn", "kwargs": {"widths": [8, 16], "hidden": 32}},
        "data": {}, "metrics": {}, "train_seconds": 0, "steps": 0, "git_commit": None, "jeat_version": "0"})
    return m


def test_checkpoint_roundtrip_and_errors(tmp_path):
    m = _write_ckpt(tmp_path)
    loaded, manifest = load_model(tmp_path)
    x = torch.rand(3, 3, 32, 32)
    torch.testing.assert_close(loaded(x), m(x))
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        load_model(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint at 'cifar10-cpu/nonexistent'"):
        load_model("cifar10-cpu/nonexistent")


def test_training_state_never_unpickles_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(tmp_path / 'pwned')!r}, 'w').write('pwned')",))

    (tmp_path / "state.pt").write_bytes(pickle.dumps({"step": Evil()}))
    with pytest.raises(CheckpointError, match="not a readable weights-only"):
        load_state(tmp_path / "state.pt")
    assert not (tmp_path / "pwned").exists()

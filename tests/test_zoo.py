"""Shipped checkpoints (checkpoints/cifar10-cpu/*): load by name, valid manifest, honest accuracy."""

import pytest

from jeat_core.checkpoints import load_model, read_manifest, shipped_root
from jeat_core.metrics import accuracy

SHIPPED = sorted(p.parent.name for p in (shipped_root() / "cifar10-cpu").glob("*/model.safetensors"))


def test_some_models_are_shipped():
    assert "standard" in SHIPPED, SHIPPED
    total = sum(f.stat().st_size for f in (shipped_root() / "cifar10-cpu").rglob("*") if f.is_file())
    # budget: ten generators (~3.3 MB each), the extra training seeds of at/prejeat/jeat, and two evaluators
    assert total <= 72 * 2 ** 20, f"shipped checkpoints take {total / 2 ** 20:.1f} MB (budget 72 MB)"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_matches_its_manifest(name, cifar_test):
    folder = shipped_root() / "cifar10-cpu" / name
    # MB; the evaluators (A: 1.65 M parameters, B: 2.6 M) are not generators
    limit = {"evaluator": 8, "evaluator-b": 12}.get(name, 5)
    assert (folder / "model.safetensors").stat().st_size <= limit * 2 ** 20
    manifest = read_manifest(folder)
    assert manifest["data"]["sha256"] == "239ecf5a09203869e4b19678d4b01b39f623a469d91774b99257baa0ddc79ed7"
    # cpu-preset runs stay within the 90-minute limit per run (wall-clock; cores are often shared,
    # so these are upper bounds: see checkpoints/README.md)
    assert manifest["train_seconds"] <= 5400, manifest["train_seconds"]
    if manifest["method"] != "evaluator":  # an evaluator is a plain classifier, not trained by `fit`
        assert (folder / "energy_log.jsonl").is_file()
    model, _ = load_model(f"cifar10-cpu/{name}")
    x, y = cifar_test.tensors(1000)
    acc = accuracy(model, x, y)
    assert abs(acc - manifest["metrics"]["clean_acc"]) <= 0.02, (acc, manifest["metrics"]["clean_acc"])


@pytest.mark.parametrize("name, arch", [("evaluator", "eval_resnet"), ("evaluator-b", "eval_vgg")])
def test_the_evaluators_are_independent_and_accurate(name, arch):
    """The generation metrics' feature networks (docs/evaluation.md): each of its own architecture family,
    unlike the generators' and unlike each other's, >= 88% clean accuracy on all 10,000 test images."""
    root = shipped_root() / "cifar10-cpu"
    manifest = read_manifest(root / name)
    assert manifest["method"] == "evaluator" and manifest["arch"]["name"] == arch
    generators = {read_manifest(root / n)["arch"]["name"] for n in SHIPPED if not n.startswith("evaluator")}
    assert arch not in generators
    assert manifest["metrics"]["clean_acc"] >= 0.88 and manifest["data"]["n_test"] == 10000, manifest["metrics"]

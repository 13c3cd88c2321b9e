"""Shared fixtures: the procedural toy set, real CIFAR-10 when present, tiny models and a tiny trained zoo
(shipped-format checkpoints with recorded evals) that the tests of every layer build on."""

import importlib.util
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from jeat_core.core.data import load_split, procedural

# one thread per worker when pytest-xdist runs the tests in parallel (`make test`: two workers on two cores)
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, os.cpu_count() or 1))
REPO = Path(__file__).resolve().parent.parent
# real reference images' features, computed by the first process that needs them (a test, a notebook's kernel)
# and read by the others (keyed by content: see jeat_core.measure.rulers.stored_raw_features); inside build/,
# so a fresh clone starts without it
os.environ.setdefault("JEAT_FEATURE_CACHE", str(REPO / "build" / "feature-cache"))


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


TINY_MODEL = {"widths": [8, 16], "hidden": 32}  # a SmallCNN of a few thousand weights


def tiny_config(method: str, *, tiny_model: bool = True, batch_size: int = 32, warmup_steps: int | None = 0,
                sgld: tuple[int, int, int] = (3, 16, 100), **overrides):
    """The config of a few-step test run of ``method`` (the one builder the tests share): the cpu preset
    with :data:`TINY_MODEL` (``tiny_model=False``: the preset's SmallCNN), ``batch_size``, ``warmup_steps``
    (``None``: the preset's), SGLD ``(n_steps, batch_size, buffer_size)`` for the SGLD methods, and
    ``overrides`` of the top-level fields (default ``eval_n=64, checkpoint_every=0, log_every=0``)."""
    from jeat_core.train.training import make_config

    if tiny_model:
        overrides.setdefault("model", replace(make_config(method).model, kwargs=dict(TINY_MODEL)))
    cfg = make_config(method, "cpu", **{"eval_n": 64, "checkpoint_every": 0, "log_every": 0, **overrides})
    optim = {"batch_size": batch_size} | ({} if warmup_steps is None else {"warmup_steps": warmup_steps})
    cfg = replace(cfg, optim=replace(cfg.optim, **optim))
    if cfg.uses_sgld:
        n_steps, chains, size = sgld
        cfg = replace(cfg, sgld=replace(cfg.sgld, n_steps=n_steps, batch_size=chains, buffer_size=size))
    return cfg


def tiny_cnn(seed: int = 0) -> torch.nn.Module:
    from jeat_core.core.models import SmallCNN

    torch.manual_seed(seed)
    return SmallCNN(widths=(8, 16), hidden=32).eval()


@pytest.fixture(scope="session")
def standard_model(data_root, request):
    """A standard CNN trained briefly on real CIFAR-10 (cached between local runs).

    Uses the shipped ``cifar10-cpu/standard`` when present, else trains one epoch (~2 minutes on
    2 CPU cores, about 55% clean accuracy)."""
    from jeat_core.core.checkpoints import load_model, shipped_root
    from jeat_core.train.training import OptimConfig, fit, make_config

    shipped = shipped_root() / "cifar10-cpu" / "standard"
    if (shipped / "model.safetensors").is_file():
        return load_model(shipped)[0]
    cache = Path(request.config.cache.mkdir("jeat_standard_v2"))
    if not (cache / "model.safetensors").is_file():
        cfg = make_config("standard", "cpu", epochs=1.0, eval_n=0, log_every=0, checkpoint_every=0, augment=False,
                          optim=OptimConfig("adam", lr=1e-3, batch_size=128, warmup_steps=20))
        fit(cfg, out=cache, data_root=data_root, progress=False)
    return load_model(cache)[0]


ZOO = {
    "standard": ("standard", {}), "noise-8": ("noise", {"sigma": 8 / 255}),
    "noise-16": ("noise", {"sigma": 16 / 255}), "noise-24": ("noise", {"sigma": 24 / 255}),
    "at": ("at", {}), "prejeat": ("prejeat", {}), "jeat": ("jeat", {}), "jem": ("jem", {}),
    "trades": ("trades", {}),
    # extra training seeds (the generation claims' two-level bootstrap); prejeat has only its shipped run here
    "at-s1": ("at", {"seed": 1}), "jeat-s1": ("jeat", {"seed": 1}),
}


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory, request):
    """All the zoo names as tiny models trained for 2 steps on a toy set: exercises every code
    path that loads `cifar10-cpu/<name>` (figures, the audit) in seconds.

    Cached by content in pytest's cache (``jeat_tiny_zoo/<key>``): the key hashes the code of the
    layers that train and evaluate (core, train, measure; prose-blind, as the audit's cache) and this
    file, so any change to them trains the zoo again; each session gets its own copy."""
    import hashlib
    import shutil

    from jeat_core.paper.audit_cache import PACKAGE, source_version

    code = [p for layer in ("core", "train", "measure") for p in (PACKAGE / layer).rglob("*.py")]
    key = hashlib.sha256((source_version(code, PACKAGE) + Path(__file__).read_text()).encode()).hexdigest()[:16]
    root = tmp_path_factory.mktemp("zoo")
    if getattr(request.config, "cache", None) is None:  # pytest's cache is off (-p no:cacheprovider)
        _train_tiny_zoo(root)
        return root
    cached = Path(request.config.cache.mkdir("jeat_tiny_zoo")) / key
    if not (cached / "complete").is_file():  # trained aside, then renamed: a reader never sees half a zoo
        fresh = cached.with_name(f"{key}.{os.getpid()}.tmp")
        shutil.rmtree(fresh, ignore_errors=True)
        _train_tiny_zoo(fresh)
        (fresh / "complete").write_text(key)
        shutil.rmtree(cached, ignore_errors=True)
        try:
            fresh.rename(cached)
        except OSError:  # another worker renamed its copy first: use that one
            shutil.rmtree(fresh, ignore_errors=True)
    shutil.copytree(cached, root, dirs_exist_ok=True)
    return root


def _train_tiny_zoo(root: Path) -> None:
    from jeat_core.core.checkpoints import MANIFEST, load_model, read_manifest, record_eval, write_json
    from jeat_core.measure.metrics import robust_accuracy
    from jeat_core.measure.robustness import autoattack
    from jeat_core.train.training import fit

    data, test = procedural(256, seed=0), procedural(64, seed=1)
    for name, (method, kw) in ZOO.items():
        cfg = tiny_config(method, warmup_steps=None, sgld=(2, 8, 50), max_steps=2, log_every=1, eval_n=0, **kw)
        out = root / "cifar10-cpu" / name
        fit(cfg, out=out, train_data=data, test_data=test, progress=False, device="cpu")
        # evaluation records as `jeat eval --record` writes them (a list; see checkpoints/README.md)
        model, manifest = load_model(out)
        xt, yt = test.tensors(16)
        for attack in ("none", "pgd20"):
            record_eval(manifest, robust_accuracy(model, xt, yt, attack=attack))
        # AutoAttack as `jeat eval --attack autoattack --record` keeps it, with tiny budgets (the audit's masking claim)
        record_eval(manifest, autoattack(model, xt, yt, steps=3, n_queries=20))
        write_json(out / MANIFEST, manifest)
        assert read_manifest(out)["evals"]
    tiny_evaluator(root / "cifar10-cpu" / "evaluator")
    tiny_evaluator(root / "cifar10-cpu" / "evaluator-b", arch="eval_vgg")


def tiny_evaluator(out: Path, arch: str = "eval_resnet") -> None:
    """An untrained, narrow evaluator (:class:`EvalResNet`, or ``eval_vgg``: :class:`EvalVGG`) saved as
    a loadable evaluator checkpoint."""
    from jeat_core.core.checkpoints import MANIFEST, WEIGHTS, save_weights, write_json
    from jeat_core.core.models import EvalResNet, EvalVGG

    torch.manual_seed(0)
    widths = [8, 8, 16, 16]
    save_weights(out / WEIGHTS, {"eval_resnet": EvalResNet, "eval_vgg": EvalVGG}[arch](widths=widths).eval())
    write_json(out / MANIFEST, {"method": "evaluator", "config": {}, "arch": {"name": arch,
                                "kwargs": {"widths": widths}}, "data": {"dataset": "procedural"},
                                "metrics": {}, "train_seconds": 0, "steps": 0, "git_commit": None,
                                "jeat_version": "test"})


@pytest.fixture(scope="session")
def device() -> torch.device:
    """The device of the tests marked ``device``: ``$JEAT_TEST_DEVICE`` (default ``cpu``).

    ``JEAT_TEST_DEVICE=cuda pytest -m device`` runs them on a GPU (benchmarks/gpu_check.py does)."""
    dev = torch.device(os.environ.get("JEAT_TEST_DEVICE", "cpu"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.fail("JEAT_TEST_DEVICE asks for cuda but CUDA is not available")
    return dev


@pytest.fixture(scope="session")
def executed_notebooks(data_root) -> dict:
    """Every notebook executed once per test session, at smoke sizes on the shipped models, by the site
    build's executor (``docs/site/build.py --smoke --execute-only``) into ``build/site-smoke``'s
    jupyter-cache: ``{"notebooks": {stem: executed notebook}, "figures": the folder they export to}``.
    The notebook test, the JupyterLab test and the site test all read this one execution (a notebook
    whose code, library or models are unchanged since an earlier session is not executed again); a lock
    file lets them run on different workers (the first executes, the others wait and read its cache)."""
    import fcntl

    out = REPO / "build" / "site-smoke"
    out.mkdir(parents=True, exist_ok=True)
    with open(out.parent / "site-smoke.lock", "w") as lock:
        # one worker executes; another asking meanwhile waits here, then finds every notebook in the cache
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run([sys.executable, str(REPO / "docs" / "site" / "build.py"), "--smoke", "--execute-only"],
                              env={**os.environ, "JEAT_DATA": data_root}, capture_output=True, text=True,
                              timeout=3000)
    print(proc.stdout[-2000:])
    assert proc.returncode == 0, f"executing the notebooks failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-4000:]}"
    spec = importlib.util.spec_from_file_location("site_build", REPO / "docs" / "site" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return {"notebooks": build.executed_notebooks(out), "figures": out / "figures-local"}

"""``jeat lens``: a user's classifier under the energy lens, beside the zoo (jeat_core.core.user_model,
jeat_core.explore.lens_stages, jeat_core.explore.lens).

* loading: the model-def file and function, the weights layouts (plain, ``state_dict``, ``model``,
  ``module.`` prefixes, safetensors), the normalisation wrapper, modes restored for a caller's module;
* every bad input is one line and exit 2 (:data:`LENS_CASES`; ``tests/test_bad_inputs.py`` writes them
  into ``docs/bad_inputs.md``);
* the cache: a stage computed for another model is recomputed, never mixed in; an interrupted stage
  resumes from its finished units;
* end to end (slow): a WideResNet of RobustBench's layout with random weights, saved as a ``module.``
  state dict, through ``jeat lens --smoke``; a shipped model through the generic path reproduces the
  zoo's own numbers (the lens adds no drift);
* the notebooks' setting (``JEAT_USER_MODEL``) feeds the explorers of notebooks 02 and 04.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from jeat_core.cli import main
from jeat_core.core.user_model import UserModelError, evaluating, from_env, load, model_hash, read_state_dict

REPO = Path(__file__).resolve().parent.parent

# A WideResNet in RobustBench's layout (conv1, block1-3.layer.i.{bn1, conv1, bn2, conv2, convShortcut}, bn1, fc),
# written for this test; build() is a small one (depth 10, width 1), build_28_10() the paper's size.
RB_WRN = '''
import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.relu2 = nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout and stride == 1
        self.convShortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        o = self.relu1(self.bn1(x))
        y = self.conv2(self.relu2(self.bn2(self.conv1(o))))
        return y + (x if self.equal else self.convShortcut(o))


class NetworkBlock(nn.Module):
    def __init__(self, n, cin, cout, stride):
        super().__init__()
        self.layer = nn.Sequential(*[BasicBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                                     for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth=28, widen_factor=10, num_classes=10):
        super().__init__()
        n, k = (depth - 4) // 6, widen_factor
        w = [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
        self.block1 = NetworkBlock(n, w[0], w[1], 1)
        self.block2 = NetworkBlock(n, w[1], w[2], 2)
        self.block3 = NetworkBlock(n, w[2], w[3], 2)
        self.bn1, self.relu = nn.BatchNorm2d(w[3]), nn.ReLU(inplace=True)
        self.fc = nn.Linear(w[3], num_classes)

    def forward(self, x):
        o = self.relu(self.bn1(self.block3(self.block2(self.block1(self.conv1(x))))))
        return self.fc(o.mean((2, 3)))


def build():
    return WideResNet(10, 1)


def build_28_10():
    return WideResNet(28, 10)


def five_logits():
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 5))


def a_tuple():
    class Pair(nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :10], x

    return Pair()


def not_a_model():
    return {"weights": 1}


def small_cnn():
    from jeat_core.core.models import SmallCNN

    return SmallCNN()
'''


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue().strip()


def make_lens_inputs(root: Path) -> Path:
    """The model-def file and weights files the bad-input cases refer to (a second or two)."""
    import importlib.util

    root.mkdir(parents=True, exist_ok=True)
    (root / "models.py").write_text(RB_WRN)
    spec = importlib.util.spec_from_file_location("lens_test_models", root / "models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    net = mod.build()
    state = net.state_dict()
    torch.save({f"module.{k}": v for k, v in state.items()}, root / "wrn.pt")
    torch.save({"epoch": 3, "state_dict": state}, root / "wrn_nested.pt")
    torch.save({k.replace("block1", "layer1"): v for k, v in state.items()}, root / "renamed.pt")
    torch.save({"state_dict": state, "args": argparse.Namespace(lr=0.1)}, root / "pickled.pt")
    (root / "garbage.pt").write_bytes(b"not a torch file")
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(root / "wrn.safetensors"))
    return root


L = ["lens", "--smoke", "--no-progress", "--out", "{root}/report"]
# (id, argv with {root}, text the one stderr line must contain); every case exits with status 2
LENS_CASES = [
    ("lens: model-def file missing", [*L, "--model-def", "{root}/nowhere.py:build"], "--model-def: no file at"),
    ("lens: model-def without a function", [*L, "--model-def", "{root}/models.py"],
     "give FILE.py:FUNCTION"),
    ("lens: function missing", [*L, "--model-def", "{root}/models.py:make"], "has no function 'make'"),
    ("lens: function returns no nn.Module", [*L, "--model-def", "{root}/models.py:not_a_model"],
     "returned a dict, not a torch.nn.Module"),
    ("lens: output of shape (N, 5)", [*L, "--model-def", "{root}/models.py:five_logits"],
     "returns shape (2, 5) for 2 images; jeat needs logits of shape (N, 10)"),
    ("lens: output a tuple", [*L, "--model-def", "{root}/models.py:a_tuple"],
     "returns a tuple; jeat needs a tensor of logits"),
    ("lens: weights keys do not match", [*L, "--model-def", "{root}/models.py:build", "--weights", "{root}/renamed.pt"],
     "the keys do not match the model's: 12 missing (first: 'block1.layer.0.bn1.weight'); 12 unexpected "
     "(first: 'layer1.layer.0.bn1.weight')"),
    ("lens: weights of another model (SmallCNN)", [*L, "--model-def", "{root}/models.py:small_cnn", "--weights",
                                                   "{root}/wrn.pt"], "missing (first: 'features.0.mean')"),
    ("lens: a pickle the weights-only load refuses", [*L, "--model-def", "{root}/models.py:build", "--weights",
                                                      "{root}/pickled.pt"], "a weights-only load refuses this file"),
    ("lens: weights not a torch file", [*L, "--model-def", "{root}/models.py:build", "--weights", "{root}/garbage.pt"],
     "is not a readable PyTorch weights file"),
    ("lens: weights file missing", [*L, "--model-def", "{root}/models.py:build", "--weights", "{root}/none.pt"],
     "--weights: no file at"),
    ("lens: normalisation of the wrong length", [*L, "--model-def", "{root}/models.py:build", "--normalize",
                                                 "0.5,0.5:0.2,0.2,0.2"], "give 3 means and 3 stds"),
    ("lens: normalisation std 0", [*L, "--model-def", "{root}/models.py:build", "--normalize", "0.5,0.5,0.5:0,1,1"],
     "stds finite and > 0"),
    ("lens: --weights with a shipped model", [*L, "--model", "cifar10-cpu/at", "--weights", "{root}/wrn.pt"],
     "--weights goes with --model-def"),
    ("lens: --name of a zoo model", [*L, "--model-def", "{root}/models.py:build", "--name", "at"],
     "--name 'at' is a zoo model's name"),
    ("lens: unknown stage", [*L, "--model-def", "{root}/models.py:build", "--stages", "energy,gan"],
     "--stages: unknown stage 'gan'"),
    ("lens: no model", ["lens", "--smoke"], "one of the arguments --model-def --model is required"),
]


def run_lens_case(argv: list[str], root: Path) -> tuple[int, str]:
    code, _, err = run([a.replace("{root}", str(root)) for a in argv])
    return code, err


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_lens_inputs(tmp_path_factory.mktemp("lens"))


@pytest.mark.parametrize("case,argv,msg", LENS_CASES, ids=[c[0] for c in LENS_CASES])
def test_bad_input_gives_one_clear_line(case, argv, msg, inputs, data_root, monkeypatch):
    monkeypatch.setenv("JEAT_DATA", data_root)
    code, err = run_lens_case(argv, inputs)
    assert code == 2, err
    assert msg in err, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("jeat lens"), err
    assert not (inputs / "report" / "report.json").exists()


# ----------------------------------------------------------------------------- loading
def test_every_weights_layout_loads_the_same_weights(inputs, cifar_test):
    probe = cifar_test.tensors(2)[0]
    spec = f"{inputs}/models.py:build"
    hashes = {f: load(model_def=spec, weights=str(inputs / f), probe=probe).weights_sha256
              for f in ("wrn.pt", "wrn_nested.pt", "wrn.safetensors")}
    assert len(set(hashes.values())) == 1, hashes
    plain = read_state_dict(inputs / "wrn.pt")
    assert not any(k.startswith("module.") for k in plain)  # the DataParallel prefix is gone
    torch.save({"model": plain}, inputs / "under_model.pt")
    assert load(model_def=spec, weights=str(inputs / "under_model.pt"), probe=probe).weights_sha256 == hashes["wrn.pt"]


def test_normalize_wraps_the_model_so_it_takes_unit_images(inputs, cifar_test):
    x = cifar_test.tensors(4)[0]
    spec = f"{inputs}/models.py:build"
    raw = load(model_def=spec, weights=str(inputs / "wrn.pt"), probe=x[:2])
    wrapped = load(model_def=spec, weights=str(inputs / "wrn.pt"), normalize="0.5,0.4,0.3:0.2,0.25,0.3", probe=x[:2])
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1), torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(wrapped.model(x), raw.model((x - mean) / std), atol=1e-5)
    assert wrapped.weights_sha256 != raw.weights_sha256  # the normalisation is part of what a cache is keyed by
    assert wrapped.source["normalize"] == {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}


def test_a_callers_module_is_left_as_it_came():
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10), nn.Dropout(0.1))
    net.train()
    net[1].weight.requires_grad_(False)  # a mix: one frozen, one trainable
    before = ([m.training for m in net.modules()], [p.requires_grad for p in net.parameters()])
    with evaluating(net):
        assert not any(m.training for m in net.modules()) and not any(p.requires_grad for p in net.parameters())
    assert ([m.training for m in net.modules()], [p.requires_grad for p in net.parameters()]) == before


def test_the_python_api_takes_a_plain_module_and_leaves_it_as_it_came(data_root, cifar_test, tmp_path):
    from jeat_core.explore.lens import report

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10), nn.Dropout(0.1)).train()
    rep = report(net, tmp_path / "r", sizes="smoke", stages=["energy"], data_root=data_root)
    assert net.training and all(p.requires_grad for p in net.parameters())
    x, y = cifar_test.tensors(rep["stages"]["energy"]["n"])
    assert rep["stages"]["energy"]["per_model"]["yours"]["joint"] == pytest.approx(_energy_of(net.eval(), x, y),
                                                                                   abs=1e-5)
    assert (tmp_path / "r" / "report.html").is_file() and rep["model"]["source"] == {"module": "Sequential"}


def test_user_model_errors_are_value_errors(inputs):
    with pytest.raises(UserModelError, match="give either --model-def"):
        load()
    assert issubclass(UserModelError, ValueError)  # the CLI prints ValueErrors as one line, exit 2


# ----------------------------------------------------------------------------- the cache
def _energy_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    from jeat_core.core.energy import energy_of

    with torch.no_grad():
        return energy_of(model, "joint", y)(x).tolist()


def test_a_stage_of_another_model_is_recomputed_never_mixed(inputs, cifar_test, data_root, tmp_path):
    from jeat_core.explore.lens import report

    out = tmp_path / "report"
    spec, probe = f"{inputs}/models.py:build", cifar_test.tensors(2)[0]
    a = load(model_def=spec, weights=str(inputs / "wrn.pt"), probe=probe)
    torch.manual_seed(1)
    b = load(model_def=spec, probe=probe)  # the builder's own (other) random weights
    assert a.weights_sha256 != b.weights_sha256
    ra = report(a, out, sizes="smoke", stages=["energy"], data_root=data_root)
    rb = report(b, out, sizes="smoke", stages=["energy"], data_root=data_root)
    assert not rb["stages"]["energy"]["cached"], "model b must not reuse model a's stage"
    x, y = cifar_test.tensors(ra["stages"]["energy"]["n"])
    assert rb["stages"]["energy"]["per_model"]["yours"]["joint"] == pytest.approx(_energy_of(b.model, x, y), abs=1e-5)
    joint = [r["stages"]["energy"]["per_model"]["yours"]["joint"] for r in (ra, rb)]
    assert joint[0] != joint[1]
    saved = json.loads((out / "cache" / "energy.json").read_text())
    assert saved["user_weights_sha256"] == b.weights_sha256
    assert json.loads((out / "report.json").read_text())["model"]["weights_sha256"] == b.weights_sha256
    again = report(b, out, sizes="smoke", stages=["energy"], data_root=data_root)
    assert again["stages"]["energy"]["cached"]  # the same model and settings: from the cache


@pytest.mark.slow
def test_an_interrupted_stage_resumes_from_its_finished_units(inputs, cifar_test, data_root, tmp_path, monkeypatch):
    from jeat_core.explore import lens_stages
    from jeat_core.explore.lens import report

    user = load(model_def=f"{inputs}/models.py:build", weights=str(inputs / "wrn.pt"), probe=cifar_test.tensors(2)[0])
    real, calls = lens_stages.pgd_restarts, []

    def interrupted(*args, **kw):
        calls.append(kw["objective"])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(lens_stages, "pgd_restarts", interrupted)
    with pytest.raises(KeyboardInterrupt):
        report(user, tmp_path / "r", sizes="smoke", stages=["attacks"], data_root=data_root)
    assert calls == ["ce", "energy", "ce"]  # the user's two units finished, the zoo's first was interrupted
    calls.clear()
    def counted(*args, **kw):
        calls.append(kw["objective"])
        return real(*args, **kw)

    monkeypatch.setattr(lens_stages, "pgd_restarts", counted)
    rep = report(user, tmp_path / "r", sizes="smoke", stages=["attacks"], data_root=data_root)
    assert len(calls) == 2 * len(lens_stages.ZOO)  # only the zoo's units ran: the user's came from the cache
    assert set(rep["stages"]["attacks"]["per_model"]) == {"yours", *lens_stages.ZOO}


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_robustbench_wrn_through_jeat_lens_smoke(inputs, data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("JEAT_DATA", data_root)
    out = tmp_path / "report"
    code, stdout, err = run(["lens", "--model-def", f"{inputs}/models.py:build", "--weights", f"{inputs}/wrn.pt",
                             "--normalize", "cifar10", "--smoke", "--autoattack", "--out", str(out), "--no-progress"])
    assert code == 0, err
    for f in ("report.json", "report.md", "report.html", "energy.png", "attacks.png", "landscape.png",
              "generation.png", "autoattack.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["stages"]) == {"energy", "attacks", "landscape", "fisher", "generation", "autoattack"}
    for s in rep["stages"].values():  # every number beside the zoo's, on the same n
        assert "yours" in s.get("per_model", {}) or "yours|joint" in s.get("sets", {})
    assert json.loads(stdout)["html"] == str(out / "report.html")
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5 and "Where it stands" in page
    assert "yours − JEAT" in (out / "report.md").read_text()
    code, stdout, _ = run(["lens", "--model-def", f"{inputs}/models.py:build", "--weights", f"{inputs}/wrn.pt",
                           "--normalize", "cifar10", "--smoke", "--autoattack", "--out", str(out), "--no-progress"])
    assert code == 0 and all(s["cached"] for s in json.loads(stdout)["stages"].values())  # resumed: nothing rerun


@pytest.mark.slow
def test_a_zoo_model_through_the_generic_path_adds_no_drift(inputs, cifar_test, data_root, tmp_path):
    """SmallCNN built by a model-def file with the shipped standard model's safetensors: the same E values
    and PGD-20 results as the zoo's own row of the same report and as the library called directly."""
    from jeat_core.core.checkpoints import load_model
    from jeat_core.explore.lens import report
    from jeat_core.measure.robustness import masks_of, pgd_restarts

    weights = REPO / "checkpoints" / "cifar10-cpu" / "standard" / "model.safetensors"
    user = load(model_def=f"{inputs}/models.py:small_cnn", weights=str(weights), probe=cifar_test.tensors(2)[0])
    zoo, _ = load_model("cifar10-cpu/standard")
    assert user.weights_sha256 == model_hash(zoo)
    rep = report(user, tmp_path / "r", sizes="smoke", stages=["energy", "attacks"], data_root=data_root)
    e, a = rep["stages"]["energy"], rep["stages"]["attacks"]
    for k in ("joint", "marginal", "correct"):
        assert e["per_model"]["yours"][k] == e["per_model"]["standard"][k]
    x, y = cifar_test.tensors(e["n"])
    assert e["per_model"]["yours"]["joint"] == pytest.approx(_energy_of(zoo, x, y), abs=1e-6)
    x, y = cifar_test.tensors(a["n"])
    direct = masks_of(pgd_restarts(zoo, x, y, n_steps=20, restarts=1, seed=0, batch_size=16))["restart-1"]
    for k in ("ce", "energy", "correct"):
        assert a["per_model"]["yours"][k] == a["per_model"]["standard"][k]
    assert a["per_model"]["yours"]["ce"] == "".join("1" if v else "0" for v in direct.tolist())
    assert a["per_model"]["yours"]["ce_robust"] == a["per_model"]["standard"]["ce_robust"]


# ----------------------------------------------------------------------------- notebooks
def test_the_notebook_setting_feeds_the_explorers(inputs, cifar_test):
    from jeat_core.core.data import procedural
    from jeat_core.core.sampling import ClassGaussian
    from jeat_core.explore.widgets import generation_explorer, landscape_explorer

    x, y = cifar_test.tensors(2)
    env = {"JEAT_USER_MODEL": f"{inputs}/models.py:build", "JEAT_USER_WEIGHTS": str(inputs / "wrn.pt"),
           "JEAT_USER_NORMALIZE": "cifar10"}
    assert from_env({}) is None
    user = from_env(env, probe=x)
    assert user.name == "yours" and user.source["weights"] == str(inputs / "wrn.pt")
    ex = landscape_explorer({user.name: user.model}, x, y, resolution=5, surface=False)
    assert ex.last["model"] == "yours" and ex.png
    toy = procedural(60, seed=0)
    gen = generation_explorer({user.name: user.model}, ClassGaussian(toy.x, toy.y),
                              manifests={user.name: user.manifest}, n_images=2, max_steps=2,
                              judge=lambda _name: (None, None))
    assert gen.last["model"] == "yours" and gen.png

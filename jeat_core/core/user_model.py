"""A classifier of your own, brought into the project's interfaces (``jeat lens``, the explorers).

Any PyTorch CIFAR-10 classifier whose logits ``f(x)`` ``(N, 10)`` define the energies of Eq. 12,
``E(x, y) = −f(x)[y]`` and ``E(x) = −logsumexp_k f(x)[k]``, can be measured like the shipped models.
It arrives in one of two ways:

* a Python file and a function in it that builds the network (``my_models.py:build``, called with
  no arguments), plus its weights (:func:`read_state_dict`): safetensors, or a PyTorch file read
  with ``torch.load(weights_only=True)`` (never a pickle that runs code), in the common layouts: a
  plain state dict, one under ``"state_dict"``, ``"model_state_dict"``, ``"model"`` or ``"net"``,
  keys prefixed ``module.`` (``DataParallel``) or ``_orig_mod.`` (``torch.compile``);
* a shipped name (``cifar10-cpu/at``) or a ``jeat train`` run folder (:func:`jeat_core.core.checkpoints.load_model`).

The project's models take images in [0, 1] and normalise inside (``models.Normalize``); a model that
expects normalised inputs is wrapped with ``normalize=(mean, std)`` so that it takes [0, 1] images too.
Every problem is a :class:`UserModelError` (a ``ValueError``: the CLI prints it as one line, exit 2).

Notebooks 02 and 04 read the same settings from the environment (:func:`from_env`):
``JEAT_USER_MODEL=path/to/models.py:build`` (or a zoo name / run folder), ``JEAT_USER_WEIGHTS``,
``JEAT_USER_NORMALIZE``, ``JEAT_USER_NAME`` and ``JEAT_USER_REPORT`` (a ``jeat lens`` report folder of
the same weights: its tuned samplers become the model's, as a shipped model's manifest holds its own).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from jeat_core.core.checkpoints import load_model
from jeat_core.core.data import load_split
from jeat_core.core.models import CIFAR10_MEAN, CIFAR10_STD, Normalize

N_CLASSES = 10
DEFAULT_NAME = "yours"  # how reports and explorers call the user's model
STATE_KEYS = ("state_dict", "model_state_dict", "model", "net")  # where training scripts keep the weights
PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DistributedDataParallel, torch.compile
NORMALIZE_HELP = "'cifar10' or three means and three stds, e.g. 0.4914,0.4822,0.4465:0.2470,0.2435,0.2616"
ENV = {"model": "JEAT_USER_MODEL", "weights": "JEAT_USER_WEIGHTS", "normalize": "JEAT_USER_NORMALIZE",
       "name": "JEAT_USER_NAME", "report": "JEAT_USER_REPORT"}


class UserModelError(ValueError):
    """A user's model cannot be built, loaded or used (one line, naming the file, function or key)."""


@dataclass
class UserModel:
    """A loaded classifier: ``model`` (eval mode, takes [0, 1] images, returns ``(N, 10)`` logits),
    its display ``name``, ``source`` (how it was given) and ``weights_sha256`` (of the parameters and
    buffers, :func:`model_hash`). ``manifest`` is the zoo manifest for a shipped model, else a small
    dict that notebooks and the explorers read like one (``{"method": "user", "sampler": {...}}``)."""

    model: nn.Module
    name: str
    source: dict
    weights_sha256: str
    manifest: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- building
def import_builder(spec: str):
    """The function named by ``"path/to/file.py:function"`` (the file is imported as a module)."""
    path, sep, func = str(spec).rpartition(":")
    if not sep or not path or not func:
        raise UserModelError(f"--model-def {spec!r}: give FILE.py:FUNCTION, e.g. my_models.py:build")
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserModelError(f"--model-def: no file at {file}")
    name = f"jeat_user_model_{hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:12]}"
    loader = importlib.util.spec_from_file_location(name, file)
    if loader is None or loader.loader is None:
        raise UserModelError(f"--model-def: {file} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(loader)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        loader.loader.exec_module(module)
    except Exception as e:  # the user's code: any error it raises is theirs to see, in one line
        sys.modules.pop(name, None)
        raise UserModelError(f"--model-def: importing {file} failed ({type(e).__name__}: {e})") from e
    fn = getattr(module, func, None)
    if fn is None:
        found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))[:8]
        raise UserModelError(f"--model-def: {file} has no function {func!r} (it defines {', '.join(found) or 'none'})")
    if not callable(fn):
        raise UserModelError(f"--model-def: {file}:{func} is not a function but a {type(fn).__name__}")
    return fn


def build(spec: str) -> nn.Module:
    """Call the builder of ``spec`` (:func:`import_builder`) with no arguments; it must return an ``nn.Module``."""
    fn = import_builder(spec)
    try:
        model = fn()
    except Exception as e:
        raise UserModelError(f"--model-def: {spec} raised {type(e).__name__}: {e}") from e
    if not isinstance(model, nn.Module):
        raise UserModelError(f"--model-def: {spec} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


# ----------------------------------------------------------------------------- weights
def _torch_file(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        if "Unsupported global" in str(e):  # a pickle of Python objects, which weights_only=True will not run
            why = next(p.strip() for p in str(e).splitlines() if "Unsupported global" in p).split(". Please")[0]
            raise UserModelError(f"--weights {path}: a weights-only load refuses this file ({why}); it pickles "
                                 f"Python objects, not only tensors: save model.state_dict() with torch.save, or "
                                 f"as safetensors") from e
        raise UserModelError(f"--weights {path} is not a readable PyTorch weights file ({type(e).__name__})") from e


def _safetensors_file(path: Path) -> dict:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserModelError(f"--weights {path} is not a valid safetensors file ({' '.join(str(e).split())})") from e


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """A state dict from a safetensors or weights-only PyTorch file, in any of the layouts of the
    module docstring; the ``module.``/``_orig_mod.`` prefixes are removed from the keys."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserModelError(f"--weights: no file at {path}")
    obj = _safetensors_file(path) if path.suffix == ".safetensors" else _torch_file(path)
    if isinstance(obj, dict) and not any(isinstance(v, Tensor) for v in obj.values()):
        inner = next((obj[k] for k in STATE_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            keys = ", ".join(map(str, obj))[:200]
            raise UserModelError(f"--weights {path} holds no tensors at the top level nor under "
                                 f"{', '.join(repr(k) for k in STATE_KEYS)} (its keys: {keys})")
        obj = inner
    if not isinstance(obj, dict):
        raise UserModelError(f"--weights {path} holds a {type(obj).__name__}, not a state dict")
    state = {}
    for k, v in obj.items():
        if not isinstance(v, Tensor):
            raise UserModelError(f"--weights {path}: entry {k!r} is a {type(v).__name__}, not a tensor")
        for p in PREFIXES:
            k = k.removeprefix(p)
        state[k] = v
    return state


def load_weights(model: nn.Module, state: dict[str, Tensor], where: str = "--weights") -> None:
    """Load ``state`` into ``model`` strictly: a key mismatch names the first missing and unexpected
    keys, a shape mismatch the first differing tensor; non-finite weights are refused."""
    want = model.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {unexpected[0]!r})")
        raise UserModelError(f"{where}: the keys do not match the model's: {'; '.join(parts)}")
    shape = next((k for k in want if tuple(want[k].shape) != tuple(state[k].shape)), None)
    if shape is not None:
        raise UserModelError(f"{where}: {shape!r} has shape {tuple(state[shape].shape)} in the file but "
                             f"{tuple(want[shape].shape)} in the model")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise UserModelError(f"{where}: non-finite weights (NaN or inf) in {bad[0]!r}")
    model.load_state_dict(state)


# ----------------------------------------------------------------------------- normalisation
def parse_normalize(text: str | None) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``None``/``"none"`` (the model normalises itself), ``"cifar10"`` or ``"m,m,m:s,s,s"``."""
    if text is None or text.strip().lower() in ("", "none"):
        return None
    if text.strip().lower() == "cifar10":
        return CIFAR10_MEAN, CIFAR10_STD
    mean_s, sep, std_s = text.partition(":")
    try:
        mean = tuple(float(v) for v in mean_s.split(","))
        std = tuple(float(v) for v in std_s.split(",")) if sep else ()
    except ValueError:
        raise UserModelError(f"--normalize {text!r}: give {NORMALIZE_HELP}") from None
    if len(mean) != 3 or len(std) != 3:
        raise UserModelError(f"--normalize {text!r}: give 3 means and 3 stds (one per RGB channel), got "
                             f"{len(mean)} and {len(std)}; {NORMALIZE_HELP}")
    if not all(abs(v) < float("inf") for v in mean + std) or min(std) <= 0:
        raise UserModelError(f"--normalize {text!r}: means must be finite and stds finite and > 0")
    return mean, std


class Normalized(nn.Sequential):
    """``model((x − mean) / std)``: a classifier that expects normalised inputs, taking [0, 1] images."""

    def __init__(self, model: nn.Module, mean, std):
        super().__init__(Normalize(mean, std), model)


# ----------------------------------------------------------------------------- checks
@torch.no_grad()
def check_logits(model: nn.Module, x: Tensor, where: str = "the model") -> None:
    """Refuse a model whose output for ``x`` ``(B, 3, 32, 32)`` is not ``(B, 10)`` finite logits."""
    try:
        out = model(x)
    except Exception as e:
        raise UserModelError(f"{where} fails on a batch of {len(x)} CIFAR-10 images of shape "
                             f"{tuple(x.shape[1:])} ({type(e).__name__}: {' '.join(str(e).split())[:200]})") from e
    if not isinstance(out, Tensor):
        raise UserModelError(f"{where} returns a {type(out).__name__}; jeat needs a tensor of logits (N, 10)")
    if tuple(out.shape) != (len(x), N_CLASSES):
        raise UserModelError(f"{where} returns shape {tuple(out.shape)} for {len(x)} images; jeat needs logits "
                             f"of shape (N, {N_CLASSES}) (CIFAR-10)")
    if not out.dtype.is_floating_point or not bool(torch.isfinite(out).all()):
        raise UserModelError(f"{where} returns non-finite or non-float logits ({out.dtype})")


def model_hash(model: nn.Module) -> str:
    """sha256 of the model's parameter and buffer names and values (what a cached stage is keyed by)."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(str(v.dtype).encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes() if v.dtype != torch.bfloat16 else
                 v.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


def _probe_images(data_root=None) -> Tensor:
    return load_split("test", data_root=data_root).tensors(2)[0]


def load(*, model_def: str | None = None, model: str | None = None, weights: str | None = None,
         normalize: str | tuple | None = None, name: str | None = None, device: str = "cpu",
         data_root=None, probe: Tensor | None = None) -> UserModel:
    """Build and check a user's classifier (module docstring). Exactly one of ``model_def``
    (``FILE.py:FUNCTION``) and ``model`` (a shipped name or run folder) is given; ``weights`` goes
    with ``model_def`` (without it the builder's own weights are used: it may load them itself).
    ``normalize``: :func:`parse_normalize`'s text or a ``(mean, std)`` pair. The model is checked on
    two real test images (``probe``). Returns a :class:`UserModel` in eval mode without gradients."""
    if (model_def is None) == (model is None):
        raise UserModelError("give either --model-def FILE.py:FUNCTION or --model NAME_OR_FOLDER")
    norm = parse_normalize(normalize) if isinstance(normalize, (str, type(None))) else tuple(normalize)
    manifest: dict = {"method": "user"}
    if model is not None:

        if weights is not None:
            raise UserModelError("--weights goes with --model-def; a shipped model or run folder has its own")
        net, manifest = load_model(model)
        source = {"model": str(model)}
    else:
        net = build(model_def)
        if weights is not None:
            load_weights(net, read_state_dict(weights))
        source = {"model_def": str(model_def), "weights": None if weights is None else str(weights)}
    if norm is not None:
        net = Normalized(net, *norm)
        source["normalize"] = {"mean": list(norm[0]), "std": list(norm[1])}
    net = net.to(device).eval().requires_grad_(False)
    x = (_probe_images(data_root) if probe is None else probe).to(device)
    check_logits(net, x, where=f"the model of {model_def or model}")
    return UserModel(net, name or DEFAULT_NAME, source, model_hash(net), manifest)


def device_of(model: nn.Module) -> torch.device:
    """Where ``model``'s first parameter or buffer lives (the CPU for a model without any)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


@contextlib.contextmanager
def evaluating(model: nn.Module):
    """Inside the block ``model`` is in eval mode with no parameter requiring gradients; afterwards every
    submodule's ``training`` flag and every parameter's ``requires_grad`` are as they were (a
    caller's module passed to :func:`jeat_core.explore.lens.report` is left as it came)."""
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    model.eval().requires_grad_(False)
    try:
        yield model
    finally:
        for m, t in modes:
            m.training = t
        for p, g in grads:
            p.requires_grad_(g)


def from_module(model: nn.Module, *, name: str | None = None, normalize: str | tuple | None = None,
                data_root=None, probe: Tensor | None = None) -> UserModel:
    """A caller's ``nn.Module`` as a :class:`UserModel` (wrapped by ``normalize`` when given), on the
    device it is on. The module itself is not changed: use it inside :func:`evaluating`."""
    if not isinstance(model, nn.Module):
        raise UserModelError(f"the model must be a torch.nn.Module; got a {type(model).__name__}")
    norm = parse_normalize(normalize) if isinstance(normalize, (str, type(None))) else tuple(normalize)
    dev = device_of(model)
    net = model if norm is None else Normalized(model, *norm).to(dev)
    with evaluating(net):
        x = (_probe_images(data_root) if probe is None else probe).to(dev)
        check_logits(net, x, where=f"the model {type(model).__name__}")
    source = {"module": type(model).__name__}
    if norm is not None:
        source["normalize"] = {"mean": list(norm[0]), "std": list(norm[1])}
    return UserModel(net, name or DEFAULT_NAME, source, model_hash(net), {"method": "user"})


def from_env(environ=None, **kw) -> UserModel | None:
    """The user model named by ``JEAT_USER_MODEL`` (``FILE.py:FUNCTION``, or a shipped name / run folder)
    with ``JEAT_USER_WEIGHTS``, ``JEAT_USER_NORMALIZE`` and ``JEAT_USER_NAME``; ``None`` when unset.
    Notebooks 02 and 04 add it to their explorers' models."""
    env = os.environ if environ is None else environ
    spec = env.get(ENV["model"], "").strip()
    if not spec:
        return None
    is_def = spec.rpartition(":")[0].endswith(".py")
    user = load(model_def=spec if is_def else None, model=None if is_def else spec,
                weights=env.get(ENV["weights"]) or None, normalize=env.get(ENV["normalize"]) or None,
                name=env.get(ENV["name"]) or None, **kw)
    if env.get(ENV["report"]):
        user.manifest = {**user.manifest, "sampler": samplers_from_report(env[ENV["report"]], user)}
    return user


def samplers_from_report(folder: str | os.PathLike, user: UserModel) -> dict:
    """The samplers a ``jeat lens`` report tuned for ``user`` (``{energy: {"step", "step_size", "n_steps",
    "noise_std"}}``), refused when the report measured other weights."""
    path = Path(folder).expanduser() / "report.json"
    try:
        rep = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserModelError(f"{ENV['report']}: no readable jeat lens report at {path} ({type(e).__name__})") from e
    if rep.get("model", {}).get("weights_sha256") != user.weights_sha256:
        raise UserModelError(f"{ENV['report']}: {path} measured other weights than {user.source}")
    name = rep["model"]["name"]
    sets = rep.get("stages", {}).get("generation", {}).get("sets", {})
    return {e: sets[f"{name}|{e}"]["sampler"] for e in ("joint", "ce") if f"{name}|{e}" in sets}

"""Checkpoints: ``model.safetensors`` + ``manifest.json`` (+ ``state.pt`` to resume training).

* Weights are stored as safetensors: loading them never executes code.
* ``manifest.json`` holds the method, the full config, the architecture (so the model can be
  rebuilt), the data source and its sha256, metrics, training time, steps, divergence events,
  git commit and library version.
* ``state.pt`` (optimizer, schedule, replay buffer, RNG state, step) contains tensors and plain
  containers only and is read with ``torch.load(weights_only=True)``.
* Every write is atomic: a temporary file in the same folder, then ``os.replace``.

A model is named either by a folder or by a shipped name such as ``cifar10-cpu/jeat``, resolved
under ``$JEAT_CHECKPOINTS`` or the repository's ``checkpoints/`` folder.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .models import build_model

WEIGHTS, MANIFEST, STATE, ENERGY_LOG = "model.safetensors", "manifest.json", "state.pt", "energy_log.jsonl"
MANIFEST_KEYS = ("method", "config", "arch", "data", "metrics", "train_seconds", "steps",
                 "git_commit", "jeat_version")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupted or not a weights file."""


def shipped_root() -> Path:
    env = os.environ.get("JEAT_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "checkpoints"


def resolve(name_or_dir: str | os.PathLike) -> Path:
    """Folder of a checkpoint given by path or by shipped name (``cifar10-cpu/jeat``)."""
    p = Path(name_or_dir).expanduser()
    if (p / WEIGHTS).is_file():
        return p
    q = shipped_root() / str(name_or_dir)
    if (q / WEIGHTS).is_file():
        return q
    known = sorted(str(m.parent.relative_to(shipped_root())) for m in shipped_root().glob(f"*/*/{WEIGHTS}"))
    raise CheckpointError(
        f"no checkpoint at {str(name_or_dir)!r}: neither {p}/{WEIGHTS} nor {q}/{WEIGHTS} exists. "
        f"Shipped models: {', '.join(known) if known else 'none found under ' + str(shipped_root())}"
    )


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    m = getattr(model, "module", model)  # unwrap DDP
    m = getattr(m, "_orig_mod", m)  # unwrap torch.compile
    return {k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()}


def save_weights(path: Path, model: nn.Module, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save

    atomic_write_bytes(path, save(_cpu_state(model), metadata=metadata))


def save_state(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_state(path: Path, map_location="cpu") -> dict:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path} is not a readable weights-only training state: {e}") from e


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise CheckpointError(f"{path} is missing") from e
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from e
    validate_manifest(manifest, where=str(path))
    return manifest


def validate_manifest(manifest: dict, where: str = "manifest") -> None:
    missing = [k for k in MANIFEST_KEYS if k not in manifest]
    if missing:
        raise CheckpointError(f"{where} lacks {', '.join(missing)}")
    arch = manifest["arch"]
    if not isinstance(arch, dict) or "name" not in arch:
        raise CheckpointError(f"{where}: 'arch' must be an object with a 'name'")


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a valid safetensors weights file: {e}") from e


def load_model(name_or_dir: str | os.PathLike, *, device="cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint and load its weights. Returns ``(model.eval(), manifest)``."""
    folder = resolve(name_or_dir)
    manifest = read_manifest(folder)
    arch = manifest["arch"]
    model = build_model(arch["name"], **arch.get("kwargs", {}))
    weights = load_weights(folder / WEIGHTS)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"{folder / WEIGHTS} does not match architecture {arch}: {e}") from e
    model.requires_grad_(False)
    return model.to(device).eval(), manifest


def record_eval(manifest: dict, record: dict) -> dict:
    """Add an evaluation record to ``manifest["evals"]`` (a list of records), replacing the one with
    the same ``attack`` and ``eps``. Record schema: ``{"attack", "eps", "n", "clean_acc", "robust_acc"}``
    plus optional ``"clean_ci"``/``"robust_ci"`` (95% Wilson intervals)."""
    evals = migrate_evals(manifest.get("evals"))
    evals = [e for e in evals if not (e["attack"] == record["attack"] and abs(e["eps"] - record["eps"]) < 1e-9)]
    manifest["evals"] = sorted(evals + [record], key=lambda e: (e["attack"], e["eps"]))
    return manifest


def migrate_evals(evals) -> list[dict]:
    """The evaluation records as a list; older manifests stored a dict keyed ``"attack@eps"``."""
    if not evals:
        return []
    if isinstance(evals, dict):
        return [dict(v, attack=v.get("attack", k.split("@")[0]), eps=v.get("eps", float(k.split("@")[1])))
                for k, v in evals.items()]
    return list(evals)


def find_eval(manifest: dict, attack: str, eps: float = 8 / 255) -> dict | None:
    """The evaluation record of ``attack`` at ``eps`` (matched to 1e-5), or ``None``."""
    for e in migrate_evals(manifest.get("evals")):
        if e["attack"] == attack and (attack == "none" or abs(e["eps"] - eps) < 1e-5):
            return e
    return None


def zoo_table(root: Path | None = None, preset: str = "cifar10-cpu") -> str:
    """Markdown table of the shipped models from their manifests (clean / PGD-20 / time / command)."""
    root = (root or shipped_root()) / preset
    lines = ["| name | method | clean (n) | PGD-20 8/255 (n) | energy PGD-20 (n) | train time | steps |",
             "|---|---|---|---|---|---|---|"]

    def cell(m: dict, attack: str, field: str = "robust_acc") -> str:
        e = find_eval(m, attack)
        return f"{100 * e[field]:.2f}% ({e['n']})" if e else "—"

    for folder in sorted(p.parent for p in root.glob(f"*/{WEIGHTS}")):
        m = read_manifest(folder)
        lines.append(f"| `{folder.name}` | {m['method']} | {cell(m, 'none', 'clean_acc')} | "
                     f"{cell(m, 'pgd20')} | {cell(m, 'energy-pgd20')} | "
                     f"{m['train_seconds'] / 60:.1f} min | {m['steps']} |")
    return "\n".join(lines)

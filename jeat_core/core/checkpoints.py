"""Checkpoints: ``model.safetensors`` + ``manifest.json`` (+ ``state.pt`` to resume training).

* Weights are stored as safetensors: loading them never executes code.
* ``manifest.json`` holds the method, the full config, the architecture (so the model can be
  rebuilt), the data source and its sha256, metrics, training time, steps, divergence events,
  git commit and library version.
* ``state.pt`` (optimizer, schedule, replay buffer, RNG state, step) contains tensors and plain
  containers only and is read with ``torch.load(weights_only=True)``.
* Every write is atomic: a temporary file in the same folder, then ``os.replace``. A training
  checkpoint commits its three files as a group (:func:`commit_checkpoint`): all three are staged
  first, then replaced state, weights, manifest; the manifest comes last and names the weights'
  step, sha256 and dtype, so a loader can tell a torn group from a whole one.
* Loading verifies the weights against the manifest (sha256, dtype) and rejects non-finite
  weights; architecture kwargs are checked with bounds before anything is allocated.
* A run folder is owned by one writer at a time (:class:`RunLock`, an ``flock`` on ``.jeat.lock``
  that the kernel releases when the process dies, so a kill -9 never leaves a stale lock).

A model is named either by a folder or by a shipped name such as ``cifar10-cpu/jeat``, resolved
under ``$JEAT_CHECKPOINTS`` or the repository's ``checkpoints/`` folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save
from torch import nn

from jeat_core.core.models import build_model, check_arch

WEIGHTS, MANIFEST, STATE, ENERGY_LOG = "model.safetensors", "manifest.json", "state.pt", "energy_log.jsonl"
LOCK = ".jeat.lock"
RUN_FILES = (WEIGHTS, MANIFEST, STATE, ENERGY_LOG)
MANIFEST_KEYS = ("method", "config", "arch", "data", "metrics", "train_seconds", "steps",
                 "git_commit", "jeat_version")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupted or not a weights file."""


def shipped_root() -> Path:
    env = os.environ.get("JEAT_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "checkpoints"


# Who is told of every checkpoint lookup (the audit's cache records what each measurement read): each
# observer is called with the name looked up and its folder, or None when there is none
_READ_OBSERVERS: list[Callable[[str, Path | None], None]] = []


@contextmanager
def observing_reads(observer: Callable[[str, Path | None], None]):
    """Within the block, ``observer(name, folder or None)`` hears of every :func:`resolve` (nested
    observers all hear it)."""
    _READ_OBSERVERS.append(observer)
    try:
        yield observer
    finally:
        _READ_OBSERVERS.remove(observer)


def notify_read(name: str, folder: Path | None) -> None:
    """Tell the observers of a checkpoint read (:func:`resolve` does; a cache replaying its reads does)."""
    for observer in list(_READ_OBSERVERS):
        observer(name, folder)


def resolve(name_or_dir: str | os.PathLike) -> Path:
    """Folder of a checkpoint given by path or by shipped name (``cifar10-cpu/jeat``)."""
    if not isinstance(name_or_dir, (str, os.PathLike)) or not str(name_or_dir).strip():
        raise CheckpointError(f"a model must be named by a folder or a shipped name such as 'cifar10-cpu/jeat'; "
                              f"got {name_or_dir!r}")
    p = Path(name_or_dir).expanduser()
    for folder in (p, shipped_root() / str(name_or_dir)):
        if (folder / WEIGHTS).is_file():
            notify_read(str(name_or_dir), folder)
            return folder
    notify_read(str(name_or_dir), None)
    q = shipped_root() / str(name_or_dir)
    known = sorted(str(m.parent.relative_to(shipped_root())) for m in shipped_root().glob(f"*/*/{WEIGHTS}"))
    raise CheckpointError(
        f"no checkpoint at {str(name_or_dir)!r}: neither {p}/{WEIGHTS} nor {q}/{WEIGHTS} exists. "
        f"Shipped models: {', '.join(known) if known else 'none found under ' + str(shipped_root())}"
    )


def _stage(path: Path, data: bytes) -> str:
    """Write ``data`` to a fsynced temporary beside ``path`` (``.<name>.<random>.tmp``); return its name."""
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
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return tmp


def _unlink_quietly(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = _stage(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, _json_bytes(obj))


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    m = getattr(model, "module", model)  # unwrap DDP
    m = getattr(m, "_orig_mod", m)  # unwrap torch.compile
    return {k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()}


def _weights_bytes(model: nn.Module, metadata: dict[str, str] | None) -> tuple[bytes, str]:
    """safetensors bytes of ``model`` and the dtype of its floating tensors (e.g. ``"float32"``)."""
    state = _cpu_state(model)
    floats = sorted({str(v.dtype).removeprefix("torch.") for v in state.values() if v.is_floating_point()})
    return save(state, metadata=metadata), ",".join(floats)


def save_weights(path: Path, model: nn.Module, metadata: dict[str, str] | None = None) -> dict:
    """Write ``model``'s weights atomically; return ``{"sha256", "dtype"}`` for the manifest."""
    data, dtype = _weights_bytes(model, metadata)
    atomic_write_bytes(path, data)
    return {"sha256": hashlib.sha256(data).hexdigest(), "dtype": dtype}


def commit_checkpoint(folder: Path, *, model: nn.Module, manifest: dict, state: dict | None = None,
                      metadata: dict[str, str] | None = None) -> dict:
    """Write ``state.pt`` (if given), ``model.safetensors`` and ``manifest.json`` as one group.

    All three are staged (written and fsynced) before any is put in place; then they replace the
    old files in the order state, weights, manifest. The manifest, written last, records
    ``"weights": {"file", "step", "sha256", "dtype"}``, so a kill between two replaces leaves a
    manifest that names other weights, which :func:`load_model` detects. ``state.pt`` is what
    ``--resume`` reads and is always at least as new as the other two. Returns the manifest.
    """
    folder = Path(folder)
    step = int(manifest.get("steps", 0))
    data, dtype = _weights_bytes(model, {**(metadata or {}), "step": str(step)})
    manifest = {**manifest, "weights": {"file": WEIGHTS, "step": step, "sha256": hashlib.sha256(data).hexdigest(),
                                        "dtype": dtype}}
    staged: list[tuple[str, Path]] = []
    try:
        if state is not None:
            buf = io.BytesIO()
            torch.save(state, buf)
            staged.append((_stage(folder / STATE, buf.getvalue()), folder / STATE))
        staged.append((_stage(folder / WEIGHTS, data), folder / WEIGHTS))
        staged.append((_stage(folder / MANIFEST, _json_bytes(manifest)), folder / MANIFEST))
        while staged:
            tmp, dest = staged[0]
            os.replace(tmp, dest)
            staged.pop(0)
        _fsync_dir(folder)
    finally:
        for tmp, _ in staged:
            _unlink_quietly(tmp)
    return manifest


def save_state(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_state(path: Path, map_location="cpu") -> dict:
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        lines = str(e).splitlines()
        why = next((ln.strip() for ln in lines if "Unsupported global" in ln), None)  # a pickle with code
        raise CheckpointError(f"{path} is not a readable weights-only training state"
                              f" ({why or type(e).__name__ + ': truncated, corrupted or not written by jeat train'})"
                              ) from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a training state (expected a dict, got {type(state).__name__})")
    return state


# ----------------------------------------------------------------------------- run folders
class RunLock:
    """Exclusive ownership of a run folder: an ``flock`` on ``<folder>/.jeat.lock``.

    A second writer gets a :class:`CheckpointError` naming the holder's pid. The kernel drops the
    lock when its process exits (even by kill -9), so a lock is never stale; the file stays.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            import fcntl  # Unix only
        except ImportError:  # no flock (Windows): no locking
            return self
        if self.folder.exists() and not self.folder.is_dir():
            raise CheckpointError(f"--out {self.folder} exists and is not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise CheckpointError(f"{self.folder} is in use by another jeat process (pid {holder}); wait for it "
                                  f"to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def remove_stale_temporaries(folder: str | os.PathLike) -> list[str]:
    """Delete the ``.<file>.*.tmp`` left by writes that were killed (call while holding the lock)."""
    removed = []
    for name in RUN_FILES:
        for tmp in Path(folder).glob(f".{name}.*.tmp"):
            _unlink_quietly(tmp)
            removed.append(tmp.name)
    return removed


def prepare_run_folder(folder: str | os.PathLike, *, resume: bool, overwrite: bool = False) -> None:
    """Check that ``folder`` may receive a run (call while holding its :class:`RunLock`).

    A fresh run needs an empty folder; ``overwrite`` deletes a previous run's files first (and
    refuses if the folder holds anything else); ``resume`` needs ``state.pt``.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"--out {folder} exists and is not a folder")
    if resume and overwrite:
        raise CheckpointError("--resume and --overwrite exclude each other")
    remove_stale_temporaries(folder)
    if resume:
        if not (folder / STATE).is_file():
            raise CheckpointError(f"--resume: no training state at {folder / STATE}; start without --resume")
        return
    present = sorted(p.name for p in folder.iterdir() if p.name != LOCK) if folder.is_dir() else []
    if not present:
        return
    if not overwrite:
        raise CheckpointError(f"--out {folder} is not empty ({', '.join(present[:4])}"
                              f"{', ...' if len(present) > 4 else ''}); pass --resume to continue that run or "
                              f"--overwrite to replace it")
    foreign = [n for n in present if n not in RUN_FILES]
    if foreign:
        raise CheckpointError(f"--overwrite: {folder} holds files that are not a jeat run's "
                              f"({', '.join(foreign[:4])}); refusing to delete them; choose another --out")
    for n in present:
        (folder / n).unlink()


# ----------------------------------------------------------------------------- loading
def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise CheckpointError(f"{path} is missing") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from e
    validate_manifest(manifest, where=str(path))
    return manifest


def validate_manifest(manifest: dict, where: str = "manifest") -> None:
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{where} must hold a JSON object")
    missing = [k for k in MANIFEST_KEYS if k not in manifest]
    if missing:
        raise CheckpointError(f"{where} lacks {', '.join(missing)}")
    arch = manifest["arch"]
    if not isinstance(arch, dict) or "name" not in arch:
        raise CheckpointError(f"{where}: 'arch' must be an object with a 'name'")
    try:
        check_arch(arch["name"], arch.get("kwargs", {}))
    except ValueError as e:
        raise CheckpointError(f"{where}: bad 'arch': {e}") from None
    w = manifest.get("weights")
    if w is not None and not (isinstance(w, dict) and isinstance(w.get("sha256", ""), str)
                              and isinstance(w.get("dtype", ""), str)):
        raise CheckpointError(f"{where}: 'weights' must be an object with string 'sha256' and 'dtype'")


def _safetensors_metadata(raw: bytes) -> dict:
    try:
        (n,) = struct.unpack("<Q", raw[:8])
        return json.loads(raw[8:8 + n]).get("__metadata__") or {}
    except (struct.error, ValueError, AttributeError):
        return {}


def load_weights(path: Path, expected: dict | None = None) -> dict[str, torch.Tensor]:
    """Read a safetensors file; with ``expected`` (a manifest's ``"weights"``) verify its sha256,
    step and dtype. Always rejects non-finite values."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path} cannot be read: {e.strerror or e}") from e
    expected = expected or {}
    if expected.get("sha256") and hashlib.sha256(raw).hexdigest() != expected["sha256"]:
        step = _safetensors_metadata(raw).get("step")
        torn = step is not None and "step" in expected and str(expected["step"]) != step
        raise CheckpointError(
            f"{path} does not match its manifest (sha256 differs"
            + (f"; weights of step {step}, manifest of step {expected['step']}: a torn write, resume with --resume"
               if torn else "; the file is corrupted or was replaced")
            + ")")
    try:
        weights = load(raw)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path} is not a valid safetensors weights file: {e}") from e
    if expected.get("dtype"):
        dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in weights.values() if v.is_floating_point()})
        if ",".join(dtypes) != expected["dtype"]:
            raise CheckpointError(f"{path} holds {','.join(dtypes) or 'no floating'} weights but its manifest "
                                  f"says {expected['dtype']}")
    bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{path} holds non-finite weights (NaN or inf) in {', '.join(bad[:3])}"
                              f"{' and more' if len(bad) > 3 else ''}")
    return weights


def load_model(name_or_dir: str | os.PathLike, *, device="cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint and load its weights. Returns ``(model.eval(), manifest)``.

    Verifies the weights against the manifest (sha256 and dtype when the manifest records them),
    their dtypes against the architecture's (nothing is cast silently) and that all are finite.
    """
    folder = resolve(name_or_dir)
    manifest = read_manifest(folder)
    arch = manifest["arch"]
    model = build_model(arch["name"], **arch.get("kwargs", {}))
    weights = load_weights(folder / WEIGHTS, manifest.get("weights"))
    want = model.state_dict()
    cast = [f"{k} ({str(weights[k].dtype).removeprefix('torch.')}, expected {str(v.dtype).removeprefix('torch.')})"
            for k, v in want.items() if k in weights and weights[k].dtype != v.dtype]
    if cast:
        raise CheckpointError(f"{folder / WEIGHTS} has tensors of the wrong dtype: {', '.join(cast[:3])}"
                              f"{' and more' if len(cast) > 3 else ''}")
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"{folder / WEIGHTS} does not match architecture {arch}: {e}") from e
    model.requires_grad_(False)
    return model.to(device).eval(), manifest


def record_eval(manifest: dict, record: dict, *, force: bool = True) -> dict:
    """Add an evaluation record to ``manifest["evals"]`` (a list of records), replacing the one with
    the same ``attack`` and ``eps``. Record schema: ``{"attack", "eps", "n", "clean_acc", "robust_acc"}``
    plus optional ``"clean_ci"``/``"robust_ci"`` (95% Wilson intervals).

    With ``force=False`` a record measured on more images than ``record["n"]`` is kept and a
    :class:`CheckpointError` raised (``jeat eval --record`` without ``--force``)."""
    evals = migrate_evals(manifest.get("evals"))
    same = [e for e in evals if e["attack"] == record["attack"] and abs(e["eps"] - record["eps"]) < 1e-9]
    if not force and same and same[0].get("n", 0) > record["n"]:
        raise CheckpointError(f"the manifest already holds a {record['attack']} record at eps {record['eps']:.6g} "
                              f"measured on n = {same[0]['n']} images, more than {record['n']}; pass --force to "
                              f"replace it")
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
    """Markdown table of the shipped models from their manifests (clean / PGD-20 / AutoAttack, the
    worst case of its four attacks, where recorded / energy PGD-20 / time / steps)."""
    root = (root or shipped_root()) / preset
    lines = ["| name | method | clean (n) | PGD-20 8/255 (n) | AutoAttack 8/255 (n) | energy PGD-20 (n) | train time "
             "| steps |", "|---|---|---|---|---|---|---|---|"]

    def cell(m: dict, attack: str, field: str = "robust_acc") -> str:
        e = find_eval(m, attack)
        return f"{100 * e[field]:.2f}% ({e['n']})" if e else "—"

    for folder in sorted(p.parent for p in root.glob(f"*/{WEIGHTS}")):
        m = read_manifest(folder)
        lines.append(f"| `{folder.name}` | {m['method']} | {cell(m, 'none', 'clean_acc')} | "
                     f"{cell(m, 'pgd20')} | {cell(m, 'autoattack')} | {cell(m, 'energy-pgd20')} | "
                     f"{m['train_seconds'] / 60:.1f} min | {m['steps']} |")
    return "\n".join(lines)

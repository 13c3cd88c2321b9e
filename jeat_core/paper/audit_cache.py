"""The audit's measurements cached by content: a claim is measured again only when something it read changed.

A claim's record in ``audit.json`` carries its ``inputs``:

* ``key`` — a hash of what every claim shares: the measuring code's version (:func:`code_version`), the
  audit's settings, the data files' content, the versions of torch and of the optional libraries
  (:data:`PEERS`), the Inception weights' content when given, and the claim's id and models;
* ``reads`` — every checkpoint the measurement looked up, by name, with the hash of its folder's files
  (:func:`folder_hash`), or ``"absent"`` for a name looked up and not found (a training run that
  did not exist yet: when it appears, the claims that looked for it are measured again).

``jeat audit --out figures/audit.md`` takes a claim's earlier record when its key and every read are
unchanged (:func:`reusable`), and measures it otherwise; ``--fresh`` measures everything. The text of a
claim (its statement, the paper's value, the metric's description) is prose: it is refreshed from
:data:`~jeat_core.paper.audit.CLAIMS` without measuring, and is left out of the code version.

The code version hashes the syntax trees of the measuring layers (``core``, ``train``, ``measure``,
``paper``) with docstrings and the claims' prose removed, so a comment, a docstring or a reworded claim
re-measures nothing, while any change to code that runs does (conservatively: all claims).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
from functools import lru_cache
from pathlib import Path

import torch

from jeat_core.core.checkpoints import CheckpointError, observing_reads, resolve, shipped_root
from jeat_core.core.data import file_sha256, resolve_root

PACKAGE = Path(__file__).resolve().parents[1]
MEASURING_LAYERS = ("core", "train", "measure", "paper")
# modules of those layers that only render what was measured (their changes re-measure nothing)
RENDER_ONLY = ("paper/verdicts.py", "paper/prose.py", "paper/audit_cache.py")
# the prose of a claim: keyword or positional arguments of `Claim(...)` that describe, never measure
CLAIM_PROSE = {"claim": 1, "paper": 2, "metric": 3}
PROSE_CONSTANTS = ("GEN_METRIC",)  # module-level strings that only describe a metric
ABSENT = "absent"


def _strip_prose(tree: ast.AST) -> ast.AST:
    """``tree`` without docstrings, the prose arguments of ``Claim(...)`` and :data:`PROSE_CONSTANTS`."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            body[0] = ast.Pass()
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Claim":
            for i in CLAIM_PROSE.values():
                if i < len(node.args):
                    node.args[i] = ast.Constant("")
            node.keywords = [k for k in node.keywords if k.arg not in CLAIM_PROSE]
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) in PROSE_CONSTANTS for t in node.targets):
            node.value = ast.Constant("")
    return tree


def source_version(paths: list[Path], root: Path) -> str:
    """Hash of the code in ``paths`` (named relative to ``root``), blind to its prose (see the module doc)."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(ast.dump(_strip_prose(ast.parse(p.read_text()))).encode())
    return h.hexdigest()


@lru_cache(maxsize=1)
def code_version() -> str:
    """The measuring code's version: :func:`source_version` of the measuring layers' modules."""
    paths = [p for layer in MEASURING_LAYERS for p in (PACKAGE / layer).rglob("*.py")
             if p.relative_to(PACKAGE).as_posix() not in RENDER_ONLY]
    return source_version(paths, PACKAGE)


def folder_hash(folder: Path | None) -> str:
    """Hash of the names and bytes of a checkpoint folder's files (``state.pt``, the resumable training
    state, is not read by any measurement and not shipped); :data:`ABSENT` for ``None``."""
    if folder is None or not folder.is_dir():
        return ABSENT
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.name != "state.pt" and not p.name.startswith("."):
            h.update(p.name.encode())
            h.update(file_sha256(p).encode())
    return h.hexdigest()


@lru_cache(maxsize=4)
def data_hash(data_root: str | None) -> str:
    """Hash of the data files the audit reads (``train.npz``, ``test.npz``; a missing one counts as
    :data:`ABSENT`, and the measurement that needs it says so)."""
    files = [Path(resolve_root(data_root)) / f for f in ("train.npz", "test.npz")]
    return hashlib.sha256("".join(file_sha256(f) if f.is_file() else ABSENT for f in files).encode()).hexdigest()


PEERS = ("torchattacks", "torch-fidelity")  # optional libraries some measurements use (absent: not measured)


def peer_versions() -> dict[str, str | None]:
    """The installed version of each optional library of :data:`PEERS` (``None`` when it is missing), so
    that installing or upgrading one measures again what it may change."""
    out = {}
    for name in PEERS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def claim_key(claim_id: int, models: tuple[str, ...], settings: dict, data_root: str | None,
              inception_weights: str | None = None) -> str:
    """The part of a claim's inputs every claim shares, with its id and models (see the module doc):
    also the torch and optional libraries' versions and the Inception weights' content, when given."""
    weights = file_sha256(inception_weights) if inception_weights else None
    parts = {"claim": claim_id, "models": list(models), "settings": settings, "code": code_version(),
             "data": data_hash(data_root), "torch": torch.__version__.split("+")[0], "peers": peer_versions(),
             "inception_weights": weights}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _shipped_name(name: str) -> str:
    """A read's name as ``audit.json`` stores it: relative to the shipped checkpoints where it is one."""
    if not Path(name).is_absolute():
        return name
    try:
        return Path(name).resolve().relative_to(shipped_root().resolve()).as_posix()
    except ValueError:
        return name


class ReadLog:
    """The checkpoints read within a ``with`` block: ``{name: folder hash or "absent"}``."""

    def __init__(self):
        self.reads: dict[str, str] = {}
        self._hashes: dict[Path, str] = {}

    def __call__(self, name: str, folder: Path | None) -> None:
        if folder is not None and folder not in self._hashes:
            self._hashes[folder] = folder_hash(folder)
        self.reads[_shipped_name(name)] = self._hashes[folder] if folder is not None else ABSENT

    def __enter__(self):
        self._ctx = observing_reads(self)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def current_reads(names) -> dict[str, str]:
    """The folder hash (or :data:`ABSENT`) that each of ``names`` resolves to now."""
    out = {}
    for name in names:
        try:
            out[name] = folder_hash(resolve(name))
        except CheckpointError:
            out[name] = ABSENT
    return out


def reusable(previous: dict | None, key: str) -> bool:
    """Whether an earlier claim record may be taken as it is: same key, and every checkpoint it read
    resolves to the same content (or is still absent)."""
    inputs = (previous or {}).get("inputs")
    if not inputs or inputs.get("key") != key or not isinstance(inputs.get("reads"), dict):
        return False
    return current_reads(inputs["reads"]) == inputs["reads"]

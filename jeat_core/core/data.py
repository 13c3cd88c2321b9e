"""Data: CIFAR-10/100 from a local ``train.npz``/``test.npz`` folder or torchvision, plus a tiny
procedural dataset for fast unit tests.

Where the data comes from is one setting: ``data_root`` argument (``--data-root`` on the command
line), else the ``JEAT_DATA`` environment variable, else ``~/.cache/jeat/data`` (torchvision
downloads there when the network allows it). A folder holding ``train.npz`` and ``test.npz``
(``x`` uint8 ``(N, 32, 32, 3)``, ``y`` labels) is used as is. Images are kept as uint8 NHWC
arrays and turned into float ``(B, 3, 32, 32)`` tensors in [0, 1] per batch.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from jeat_core.core import rng
from jeat_core.core.configs import DATASETS  # noqa: F401  (the one list; the configs validate against it)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
DEFAULT_ROOT = Path("~/.cache/jeat/data").expanduser()


class DataNotFoundError(FileNotFoundError):
    """No data where we looked; the message says how to get it."""


@dataclass(frozen=True)
class Split:
    """One split as arrays: ``x`` uint8 ``(N, H, W, C)``, ``y`` int64 ``(N,)``, plus provenance."""

    x: np.ndarray
    y: np.ndarray
    source: str
    sha256: str | None = None

    def __len__(self) -> int:
        return len(self.y)

    def tensors(self, n: int | None = None, start: int = 0) -> tuple[Tensor, Tensor]:
        """Float images ``(n, C, H, W)`` in [0, 1] and labels ``(n,)``."""
        end = len(self) if n is None else min(len(self), start + n)
        return to_float(self.x[start:end]), torch.from_numpy(self.y[start:end]).long()


def resolve_root(data_root: str | os.PathLike | None = None) -> Path:
    """``data_root`` if given, else ``$JEAT_DATA``, else ``~/.cache/jeat/data``."""
    if data_root is not None:
        return Path(data_root).expanduser()
    env = os.environ.get("JEAT_DATA")
    return Path(env).expanduser() if env else DEFAULT_ROOT


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def to_float(x: np.ndarray | Tensor) -> Tensor:
    """uint8 ``(N, H, W, C)`` -> float32 ``(N, C, H, W)`` in [0, 1]."""
    x = torch.as_tensor(x)
    return x.permute(0, 3, 1, 2).float().div(255).contiguous()


def to_uint8(x: Tensor) -> np.ndarray:
    """float ``(N, C, H, W)`` in [0, 1] -> uint8 ``(N, H, W, C)`` (rounded)."""
    return x.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


N_CLASSES = {"cifar10": 10, "cifar100": 100, "procedural": 10}


class DataError(ValueError):
    """A data file exists but does not hold a valid split; the message names the file."""


def _load_npz(path: Path, with_hash: bool) -> Split:
    try:
        with np.load(path, allow_pickle=False) as d:
            if not hasattr(d, "files"):
                raise DataError(f"{path} is a bare .npy array, not an npz with arrays 'x' and 'y'")
            missing = [k for k in ("x", "y") if k not in d.files]
            if missing:
                raise DataError(f"{path} lacks array(s) {', '.join(missing)}; it holds {', '.join(d.files) or 'none'}")
            x, y = d["x"], d["y"]
    except DataError:
        raise
    except ValueError as e:
        if "pickle" not in str(e):
            raise DataError(f"{path} is not a readable npz with arrays 'x' and 'y' ({type(e).__name__}: "
                            f"{' '.join(str(e).split())[:200]})") from None
        raise DataError(f"{path} holds pickled (object) data, which jeat does not load; save plain arrays "
                        f"(x uint8, y integers) with numpy.savez") from None
    except (OSError, KeyError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as e:
        raise DataError(f"{path} is not a readable npz with arrays 'x' and 'y' "
                        f"({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
    return Split(x, y, str(path), file_sha256(path) if with_hash else None)


def validate_split(split: Split, dataset: str | None = None, where: str | None = None) -> Split:
    """Check a split and return it with int64 labels; raise :class:`DataError` naming ``where``.

    ``x``: uint8 ``(N, 32, 32, 3)`` with ``N > 0``; ``y``: 1-D integers in ``[0, K)`` with ``K`` the
    dataset's class count; a file with far fewer classes than ``dataset`` has (CIFAR-10 files
    under ``--dataset cifar100``) is refused too.
    """
    where = where or split.source
    x, y = split.x, split.y
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise DataError(f"{where}: 'x' must be uint8 images of shape (N, 32, 32, 3); got "
                        f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
    if len(x) == 0:
        raise DataError(f"{where}: the split is empty (0 images)")
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{where}: 'y' must be 1-D (one label per image); got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: 'y' must hold integer class labels; got {y.dtype}")
    if len(y) != len(x):
        raise DataError(f"{where}: 'x' has {len(x)} images but 'y' has {len(y)} labels")
    k = N_CLASSES.get(dataset or "", None)
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or (k is not None and hi >= k):
        raise DataError(f"{where}: labels must lie in [0, {(k or hi + 1) - 1}]"
                        f"{f' for {dataset}' if k else ''}; found {lo if lo < 0 else hi}")
    found = len(np.unique(y))
    if k is not None and found < k and len(y) >= 20 * k:
        raise DataError(f"{where}: {len(y)} images hold only {found} classes, but {dataset} has {k}; "
                        f"these files are not {dataset} (check --dataset and --data-root)")
    return Split(x, y.astype(np.int64), split.source, split.sha256)


def load_split(split: str = "train", *, dataset: str = "cifar10", data_root=None,
               download: bool = True, with_hash: bool = False) -> Split:
    """Load ``split`` (``"train"`` or ``"test"``) of ``dataset``.

    Looks for ``<root>/<split>.npz`` (also ``<root>/<dataset>/<split>.npz``), then for
    torchvision's files under ``root`` (downloading them if ``download``).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    if dataset == "procedural":
        n = 2000 if split == "train" else 500
        return procedural(n, seed=0 if split == "train" else 1)
    if dataset not in ("cifar10", "cifar100"):
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    root = resolve_root(data_root)
    for cand in (root / f"{split}.npz", root / dataset / f"{split}.npz"):
        if cand.is_file():
            return validate_split(_load_npz(cand, with_hash), dataset, str(cand))
    try:
        import torchvision  # heavy, only to read a data set through torchvision

        cls = torchvision.datasets.CIFAR10 if dataset == "cifar10" else torchvision.datasets.CIFAR100
        ds = cls(str(root), train=split == "train", download=download)
    except Exception as e:  # no files and no network: say how to get the data
        raise DataNotFoundError(
            f"{dataset} {split} data not found under {root} ({type(e).__name__}: {e}).\n"
            f"Either put {split}.npz (arrays x: uint8 (N,32,32,3), y: labels) in a folder and set "
            f"JEAT_DATA=/that/folder (or pass --data-root), or allow torchvision to download "
            f"{dataset} into {root}."
        ) from e
    return validate_split(Split(np.asarray(ds.data, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64),
                                f"torchvision:{dataset}:{root}"), dataset)


def procedural(n: int = 2000, *, n_classes: int = 10, seed: int = 0, size: int = 32) -> Split:
    """A learnable toy dataset for unit tests (not for results).

    Class ``k`` is a smooth colour gradient whose orientation and colour depend on ``k``,
    plus per-image noise and a random shift, so a small CNN separates classes in a few steps.
    """
    g = np.random.default_rng(seed)
    y = g.integers(0, n_classes, n)
    t = np.linspace(-1, 1, size)
    yy, xx = np.meshgrid(t, t, indexing="ij")
    angles = np.pi * np.arange(n_classes) / n_classes
    colours = np.stack([0.5 + 0.4 * np.cos(2 * np.pi * (np.arange(n_classes) / n_classes + s / 3))
                        for s in range(3)], 1)  # (K, 3)
    a = angles[y][:, None, None]
    shift = g.uniform(-0.5, 0.5, (n, 1, 1))
    ramp = np.sin(3 * (np.cos(a) * xx + np.sin(a) * yy) + shift)  # (n, H, W)
    img = colours[y][:, None, None, :] * (0.6 + 0.3 * ramp[..., None])
    img = img + g.normal(0, 0.05, img.shape)
    x = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    return Split(x, y.astype(np.int64), f"procedural(n={n}, seed={seed})")


def augment(x: Tensor, *, pad: int = 4, flip: bool = True, generator: torch.Generator | None = None) -> Tensor:
    """Random crop with ``pad`` pixels of reflection padding and horizontal flips, per image."""
    b, _, h, w = x.shape
    if pad:
        xp = torch.nn.functional.pad(x, (pad,) * 4, mode="reflect")
        i = rng.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
        j = rng.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
        rows = i[:, None] + torch.arange(h, device=x.device)[None]  # (B, H)
        cols = j[:, None] + torch.arange(w, device=x.device)[None]  # (B, W)
        x = xp[torch.arange(b, device=x.device)[:, None, None, None],
               torch.arange(x.shape[1], device=x.device)[None, :, None, None],
               rows[:, None, :, None], cols[:, None, None, :]]
    if flip:
        f = rng.rand((b,), generator=generator, device=x.device) < 0.5
        x = torch.where(f[:, None, None, None], x.flip(3), x)
    return x

"""Classifiers whose logits define the energies: a small CNN (``cpu`` preset) and WideResNet.

Every model takes images in [0, 1] and normalises them itself (``Normalize``), so attacks,
Langevin sampling and the data pipeline all work in pixel space. Activations are smooth (SiLU)
by default: with ReLU the Hessian of E(x, y) vanishes almost everywhere, which makes Fisher
scores (Eq. 23/24) degenerate and Langevin chains rougher. Batch norm makes the energy of one
image depend on the rest of the batch and breaks SGLD (JEM); choose ``norm="none"`` or
``"group"`` for JEM/JEAT (the presets do).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
NORMS = ("none", "group", "batch")
ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "softplus": nn.Softplus}


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; part of the model so inputs stay in [0, 1]."""

    def __init__(self, mean=CIFAR10_MEAN, std=CIFAR10_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "group":
        return nn.GroupNorm(min(32, channels // 4) or 1, channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


def _act(kind: str) -> nn.Module:
    if kind not in ACTIVATIONS:
        raise ValueError(f"unknown activation {kind!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[kind]()


class SmallCNN(nn.Module):
    """Three stages of two 3×3 convolutions (widths ``widths``), 2×2 average pooling, an MLP head.

    ~0.8 M parameters with the default widths (32, 64, 128): about 3 MB of fp32 weights.
    Average (not max) pooling keeps the energy smooth in x.
    """

    def __init__(self, n_classes: int = 10, widths=(32, 64, 128), hidden: int = 256,
                 act: str = "silu", norm: str = "none", in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [Normalize()]
        c = in_channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1), _norm(norm, w), _act(act),
                       nn.Conv2d(w, w, 3, padding=1), _norm(norm, w), _act(act), nn.AvgPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        side = 32 // 2 ** len(widths)  # (B, c, side, side) after the last pooling
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * side * side, hidden), _act(act),
                                  nn.Linear(hidden, n_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class _WideBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, norm: str, act: str, dropout: float):
        super().__init__()
        self.n1, self.a1 = _norm(norm, c_in), _act(act)
        self.c1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=norm != "batch")
        self.n2, self.a2 = _norm(norm, c_out), _act(act)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.c2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=norm != "batch")
        self.short = None if (c_in == c_out and stride == 1) else nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        o = self.a1(self.n1(x))
        y = self.c1(o)
        y = self.c2(self.drop(self.a2(self.n2(y))))
        return y + (x if self.short is None else self.short(o))


class WideResNet(nn.Module):
    """WideResNet-depth-widen (Zagoruyko & Komodakis), pre-activation blocks.

    ``WideResNet(28, 10)`` is the paper's architecture (36.5 M parameters). ``norm`` chooses
    batch / group / no normalisation (JEM and JEAT train without batch norm).
    """

    def __init__(self, depth: int = 28, widen: int = 10, n_classes: int = 10, norm: str = "batch",
                 act: str = "silu", dropout: float = 0.0):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n+4; got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        layers: list[nn.Module] = [Normalize(), nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)]
        c = widths[0]
        for i, w in enumerate(widths[1:]):
            for j in range(n):
                layers.append(_WideBlock(c, w, (1 if i == 0 else 2) if j == 0 else 1, norm, act, dropout))
                c = w
        layers += [_norm(norm, c), _act(act), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


class EvalResNet(nn.Module):
    """ResNet-9-style classifier: conv-BN-ReLU stem, three stages (conv, max-pool, BN-ReLU, and a
    residual pair of convs in stages 1 and 3), global max pooling, a linear head.

    ``features(x)`` is the penultimate ``(B, widths[-1])`` representation used for FID/KID.
    """

    def __init__(self, n_classes: int = 10, widths=(32, 64, 128, 256)):
        super().__init__()

        def cbr(c_in, c_out, pool=False):
            layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            if pool:
                layers.insert(1, nn.MaxPool2d(2))
            return nn.Sequential(*layers)

        w0, w1, w2, w3 = widths
        self.norm = Normalize()
        self.stem = cbr(3, w0)
        self.l1, self.r1 = cbr(w0, w1, pool=True), nn.Sequential(cbr(w1, w1), cbr(w1, w1))
        self.l2 = cbr(w1, w2, pool=True)
        self.l3, self.r3 = cbr(w2, w3, pool=True), nn.Sequential(cbr(w3, w3), cbr(w3, w3))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(w3, n_classes)
        self.scale = 0.125  # logit scale (keeps the BN-ReLU net's logits in a sensible range)

    def features(self, x: Tensor) -> Tensor:
        h = self.stem(self.norm(x))
        h = self.l1(h)
        h = h + self.r1(h)
        h = self.l2(h)
        h = self.l3(h)
        h = h + self.r3(h)
        return self.pool(h).flatten(1)  # (B, widths[-1])

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x)) * self.scale


    def mid_features(self, x: Tensor) -> Tensor:
        """The second stage's output, average-pooled over space: ``(B, widths[2])`` (a mid-level view
        of the image, one of the generation metrics' feature spaces)."""
        h = self.stem(self.norm(x))
        h = self.l1(h)
        h = h + self.r1(h)
        return self.l2(h).mean((2, 3))


class EvalVGG(nn.Module):
    """A second, independent evaluator of another architecture family: a plain VGG-style net (no
    residual connections), two conv-BN-GELU layers per stage, average pooling between stages and
    global average pooling (evaluator A: residual, ReLU, max pooling).

    ``features(x)`` is the penultimate ``(B, widths[-1])`` representation used for FID/KID.
    """

    def __init__(self, n_classes: int = 10, widths=(32, 64, 128, 256)):
        super().__init__()
        layers: list[nn.Module] = [Normalize()]
        c = 3
        for i, w in enumerate(widths):
            for c_in in (c, w):
                layers += [nn.Conv2d(c_in, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.GELU()]
            if i < len(widths) - 1:
                layers.append(nn.AvgPool2d(2))
            c = w
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(widths[-1], n_classes)
        self.scale = 0.125  # logit scale, as in EvalResNet

    def features(self, x: Tensor) -> Tensor:
        return self.body(x).mean((2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x)) * self.scale


class ToyMLP(nn.Module):
    """An MLP for low-dimensional "images" such as the 2-D points of notebook 00 (``(B, C, 1, 1)``
    in [0, 1]: flatten → ``depth`` × (Linear, activation) → logits).

    Inputs are centred and scaled inside (``(x − 0.5) / 0.25``), like :class:`Normalize` does for
    images; the activation is smooth (SiLU) by default, so energy contours and Langevin paths in the
    plane are smooth too."""

    def __init__(self, in_features: int = 2, n_classes: int = 4, hidden: int = 64, depth: int = 2,
                 act: str = "silu"):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        d = in_features
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), _act(act)]
            d = hidden
        self.net = nn.Sequential(*layers, nn.Linear(d, n_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.net((x - 0.5) / 0.25)  # (B, C, 1, 1) -> (B, n_classes)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": SmallCNN,
    "toy_mlp": ToyMLP,  # notebook 00's 2-D toy task (jeat_core.paper.toy2d)
    "wrn28_10": lambda **kw: WideResNet(28, 10, **kw),
    "wrn16_4": lambda **kw: WideResNet(16, 4, **kw),
    "wrn": WideResNet,  # any depth/widen, e.g. {"depth": 10, "widen": 1} (benchmarks/gpu_check.py --dry-run)
    "eval_resnet": EvalResNet,  # the independent evaluator (jeat_core.measure.evaluator)
    "eval_vgg": EvalVGG,  # the second independent evaluator (cifar10-cpu/evaluator-b)
}


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a registered architecture by name (see :data:`MODELS`)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](**kwargs)


MAX_PARAMS = 200_000_000  # WideResNet-28-10 has 36.5 M
_INT_BOUNDS = {"n_classes": (1, 1000), "hidden": (1, 16384), "in_channels": (1, 4), "in_features": (1, 4096)}
MAX_WIDTH = 4096


def check_arch(name: str, kwargs: dict) -> int:
    """Validate an architecture's kwargs (types and bounds) without allocating it.

    Bounds are checked per argument first (``widths`` entries in [1, 4096], at most 5 stages,
    ``n_classes`` in [1, 1000], ...); then the model is built on the ``meta`` device (no memory)
    to count its parameters, which must not exceed :data:`MAX_PARAMS`. Returns the count.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if not isinstance(kwargs, dict):
        raise ValueError(f"kwargs of {name!r} must be an object; got {type(kwargs).__name__}")

    def is_int(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    for k, v in kwargs.items():
        if k in _INT_BOUNDS:
            lo, hi = _INT_BOUNDS[k]
            if not is_int(v) or not lo <= v <= hi:
                raise ValueError(f"{k} must be an integer in [{lo}, {hi}]; got {v!r}")
        elif k == "widths":
            if not isinstance(v, (list, tuple)) or not 1 <= len(v) <= 5 or \
                    not all(is_int(w) and 1 <= w <= MAX_WIDTH for w in v):
                raise ValueError(f"widths must be a list of 1 to 5 integers in [1, {MAX_WIDTH}]; got {v!r}")
        elif k == "act" and v not in ACTIVATIONS:
            raise ValueError(f"unknown activation {v!r}; choose one of {', '.join(ACTIVATIONS)}")
        elif k == "norm" and v not in NORMS:
            raise ValueError(f"unknown norm {v!r}; choose one of {', '.join(NORMS)}")
        elif k == "dropout" and not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1):
            raise ValueError(f"dropout must be a number in [0, 1); got {v!r}")
    try:
        with torch.device("meta"):
            n = sum(p.numel() for p in MODELS[name](**kwargs).parameters())
    except (TypeError, ValueError) as e:  # unknown keyword, wrong number of widths, ...
        raise ValueError(f"bad kwargs for {name!r}: {e}") from None
    if n > MAX_PARAMS:
        raise ValueError(f"{name} with {kwargs} would have {n:,} parameters (limit {MAX_PARAMS:,})")
    return n


# ----------------------------------------------------------------------------- accuracy
@torch.no_grad()
def accuracy(model: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, *, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``, evaluated in batches."""
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size].to(x.device)).sum())
    return correct / max(len(x), 1)

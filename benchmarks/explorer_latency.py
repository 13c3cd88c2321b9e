"""Latency of every notebook explorer at the notebooks' default sizes (issue #11: ≤ 2 s per change).

Builds each explorer exactly as its notebook does (same models, sizes and arguments), then changes
every control once, in order, and prints the seconds each update took (compute + draw + PNG, as the
``Explorer`` measures it). The first change after building is the one the issue measured at 10–17 s.
Timings depend on load: the script prints the 1-minute load average before and after.

"seconds" is the time to the new figure; an explorer with an extra bundle (notebook 02's Plotly
surface) builds it after the figure ("+ extra", sent a moment later in a kernel; the browser then
needs a second or more to draw a new WebGL surface, which no kernel-side timing sees).

    JEAT_DATA=../shared/data/cifar10 python benchmarks/explorer_latency.py [--only 02,04]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

GOAL = 2.0


def _next_value(c):
    """Another valid value of a widget: the next option, the other state of a check box, or one
    step up (down at the top)."""
    if isinstance(c.value, bool):
        return not c.value
    if hasattr(c, "options") and c.options:
        opts = [o[1] if isinstance(o, tuple) else o for o in c.options]
        return opts[(opts.index(c.value) + 1) % len(opts)]
    step = getattr(c, "step", 1) or 1
    if type(c).__name__ == "FloatLogSlider":
        return c.value * c.base ** step if c.value * c.base ** step <= c.base ** c.max else c.value / c.base ** step
    up = c.value + step
    return up if up <= c.max else c.value - step


def build(which: str):

    from jeat_core.core.checkpoints import load_model
    from jeat_core.core.data import load_split
    from jeat_core.core.sampling import ClassGaussian
    from jeat_core.explore import widgets as W
    from jeat_core.explore.figures import TrainIndex

    def zoo(names):
        out = {n: load_model(f"cifar10-cpu/{n}") for n in names}
        return {n: m for n, (m, _) in out.items()}, {n: man for n, (_, man) in out.items()}

    test = load_split("test")
    if which == "01":
        (models, _), (x, y) = zoo(["standard"]), test.tensors(500)
        return W.attack_explorer(models["standard"], x, y, eps=8 / 255)
    if which == "02":
        models, _ = zoo(["standard", "at", "prejeat", "jeat"])
        x, y = test.tensors(16)
        return W.landscape_explorer(models, x, y, radius=2.0, resolution=13)
    train = load_split("train")
    cg = ClassGaussian(train.x, train.y)
    if which == "04":
        models, mans = zoo(["at", "prejeat", "jeat", "standard"])
        return W.generation_explorer(models, cg, manifests=mans, n_images=6, label=8)
    if which == "05":
        names = {"σ = 8/255": "noise-8", "σ = 16/255": "noise-16", "σ = 24/255": "noise-24",
                 "σ = 0 (standard)": "standard"}
        models, mans = zoo(list(names.values()))
        return W.generation_explorer({k: models[v] for k, v in names.items()}, cg,
                                     manifests={k: mans[v] for k, v in names.items()}, zoo_names=names, n_images=6,
                                     label=8, model_description="σ")
    if which == "06":
        models, mans = zoo(["at", "prejeat", "jem", "jeat"])
        return W.generation_explorer(models, cg, manifests=mans, n_images=6)
    if which == "07":
        models, _ = zoo(["standard", "at", "jem", "jeat"])
        x, y = test.tensors(64)
        return W.fisher_explorer(models, x, y, n_probes=1, n_images=4, max_images=64)
    if which == "08":
        models, _ = zoo(["standard", "at", "prejeat", "jem", "jeat"])
        x, y = test.tensors(12)
        return W.robustness_explorer(models, x, y, steps=5)
    if which == "09":
        models, mans = zoo(["jeat", "at", "prejeat"])
        return W.memorisation_explorer(models, cg, TrainIndex(train.x), manifests=mans)
    raise ValueError(which)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="01,02,04,05,06,07,08,09")
    a = p.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores)")
    print("| notebook | build (s) | control | seconds | ≤ 2 s | + extra (s) |\n|---|---|---|---|---|---|")
    worst = {}
    for which in a.only.split(","):
        t0 = time.perf_counter()
        e = build(which)
        built = time.perf_counter() - t0
        for key, c in e.controls.items():
            e.extra_seconds = None
            c.value = _next_value(c)
            s, extra = e.seconds, getattr(e, "extra_seconds", None)
            worst[which] = max(worst.get(which, 0.0), s)
            extra = "" if extra is None else f"{extra:.2f}"
            print(f"| {which} | {built:.1f} | {key} | {s:.2f} | {'yes' if s <= GOAL else 'NO'} | {extra} |", flush=True)
            built = float("nan")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("worst per notebook: " + ", ".join(f"{k} {v:.2f} s ({v / GOAL:.2f}× the goal)" for k, v in worst.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

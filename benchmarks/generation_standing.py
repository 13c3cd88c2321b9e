"""Where a model stands as a generator against others, in every ruler of ``jeat_core.measure.rulers``.

Each model generates 100 images per class from the same class-Gaussian test seeds with the same
Langevin noise (its own tuned Eq. 17 sampler, ``manifest["sampler"]["joint"]``); the script prints
and writes, per ruler, each set's KID, FID, precision/recall/density/coverage and evaluator accuracy,
and the paired differences ``metric(model) − metric(other)`` with 95% bootstrap intervals
(2,000 resamples for KID, 500 for FID; one training run per model).

    python benchmarks/generation_standing.py --model trades --against at,jeat --out figures/trades_generation.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from jeat_core.measure import rulers
from jeat_core.paper.experiments import Context, generation_set


def markdown(d: dict) -> str:
    """The standing as Markdown: per ruler, each set's KID and FID, and the paired differences
    ``model − other`` with their 95% intervals (what figures/README.md shows, checked by a test)."""
    m = d["model"]
    lines = [f"| ruler | metric | {' | '.join(f'`{n}`' for n in [m, *d['against']])} | "
             + " | ".join(f"`{m}` − `{o}` [95% CI]" for o in d["against"]) + " |",
             "|---" * (2 + 1 + 2 * len(d["against"])) + "|"]
    for space, sets in d["sets"].items():
        for metric in ("kid", "fid"):
            vals = " | ".join(f"{sets[n][metric]:.4g}" for n in [m, *d["against"]])
            diffs = []
            for o in d["against"]:
                c = next((c for c in d["differences"][o]
                          if c["feature_space"] == space and c["metric"] == metric), None)
                diffs.append("—" if c is None else f"{c['diff']:+.3g} [{c['ci'][0]:+.3g}, {c['ci'][1]:+.3g}]")
            role = d["spaces"][space]["role"]
            lines.append(f"| {space} ({role}) | {metric.upper()} | {vals} | {' | '.join(diffs)} |")
    acc = " | ".join(f"{d['eval_acc'][n]['acc']:.1%}" for n in [m, *d["against"]])
    lines.append(f"| evaluator A | accuracy on the intended class | {acc} |" + " |" * len(d["against"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--against", required=True, help="comma-separated model names")
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    t0 = time.time()
    ctx = Context()
    names = [a.model, *a.against.split(",")]
    sets = {}
    for n in names:
        rec = generation_set(ctx, n, "joint", per_class=a.per_class)
        sets[n] = rec
        print(f"[standing] {n}: generated {len(rec['images'])} images ({time.time() - t0:.0f} s)", file=sys.stderr)
    spaces = rulers.available(ctx, ("primary", "check", "diagnostic"))
    out = {"model": a.model, "against": names[1:], "n": len(sets[a.model]["images"]), "training_seeds": 1,
           "spaces": {s.name: {"role": s.role, "description": s.description} for s in spaces},
           "missing_spaces": rulers.missing(ctx),
           "samplers": {n: sets[n]["sampler"] for n in names},
           "eval_acc": {n: {"acc": sets[n]["eval_acc"], "ci": sets[n]["eval_acc_ci"]} for n in names},
           "sets": {}, "differences": {}}
    for s in spaces:
        out["sets"][s.name] = {n: rulers.set_metrics(ctx, s, sets[n]["images"]) for n in names}
        print(f"[standing] {s.name}: set metrics ({time.time() - t0:.0f} s)", file=sys.stderr)
    verdict_spaces = [s for s in spaces if s.role != "diagnostic"]
    for other in names[1:]:
        cmp = rulers.compare(ctx, [sets[a.model]["images"]], [sets[other]["images"]], spaces=verdict_spaces)
        out["differences"][other] = [c.record() for c in cmp]
        for c in cmp:
            lo, hi = c.ci()
            print(f"[standing] {a.model} − {other}, {c.feature_space} {c.metric}: {c.diff:+.4g} [{lo:+.4g}, {hi:+.4g}]",
                  file=sys.stderr)
    out["seconds"] = round(time.time() - t0, 1)
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

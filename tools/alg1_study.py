"""The Algorithm-1 study: what each run of ``tools/queues/alg1.txt`` did, read from its manifest and log.

    python tools/alg1_study.py [RUNS_DIR] [--out figures/alg1_study]   # -> .md and .json

For each run folder (Algorithm 1 as written, the probes that add one stabiliser at a time, the JEM
probes): the settings it adds to the first line of the queue (Algorithm 1 as written), the steps it
reached, the guard's roll-backs, and over the last 10% of its logged steps the mean cross-entropy,
batch accuracy, E(x⁺) (``e_pos``: the data side of the p(x) term), E(x̃) (``e_neg``: the SGLD
negatives) and the largest |logit|. A run **trains** when the guard never gave up, its last-10% CE is
below :data:`CE_TRAINS` (a classifier that learns; chance is ln 10 ≈ 2.30) and its contrast
|E(x̃) − E(x⁺)| stays below :data:`CONTRAST_BOUND` nats (the energies do not run away).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUEUE = ROOT / "tools" / "queues" / "alg1.txt"
CE_TRAINS = 2.0
CONTRAST_BOUND = 10.0
NOT_STABILISERS = ("--max-steps", "--epochs", "--seed")  # the probe's length and seed
# the yardstick beside each run's CE: from-scratch FGSM-RS AT (the shipped seeds logged every 10 steps) over
# the same steps; AT's CE is on x_adv as JEAT's is (its schedule spans 6 epochs where these span 7)
AT_RUNS = ("at-s1", "at-s2", "at-s3", "at-s4")


def at_ce(lo: int, hi: int) -> float | None:
    """The mean over the shipped AT runs of each run's mean logged CE for steps ``lo`` … ``hi``."""
    means = []
    for run in AT_RUNS:
        log = ROOT / "checkpoints" / "cifar10-cpu" / run / "energy_log.jsonl"
        if log.is_file():
            ce = [r["ce"] for r in map(json.loads, filter(str.strip, log.read_text().splitlines()))
                  if lo <= r["step"] <= hi]
            if ce:
                means.append(sum(ce) / len(ce))
    return sum(means) / len(means) if means else None


def queue_lines() -> dict[str, list[str]]:
    """Run name -> its ``jeat train`` arguments, from the queue file (the study's one source of settings)."""
    out = {}
    for line in QUEUE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, *args = line.split()
            out[name] = [x for x in args if x != "@train-only"]
    return out


def flags(args: list[str]) -> dict[str, str]:
    return {k: v for k, v in zip(args, [*args[1:], ""]) if k.startswith("--")}


def added_settings(args: list[str], reference: list[str]) -> list[str]:
    """The flags of ``args`` that differ from (or are absent in) ``reference``, as ``--flag value``."""
    a, r = flags(args), flags(reference)
    return [f"{k} {v}" for k, v in a.items() if r.get(k) != v and k not in NOT_STABILISERS]


def summarise(folder: Path, added: list[str]) -> dict | None:
    man, log = folder / "manifest.json", folder / "energy_log.jsonl"
    if not man.is_file() or not log.is_file():
        return None
    m = json.loads(man.read_text())
    by_step = {}
    for line in log.read_text().splitlines():  # a rolled-back stretch is logged again: the last entry wins
        if line.strip():
            r = json.loads(line)
            by_step[r["step"]] = r
    rows = [by_step[s] for s in sorted(by_step) if s <= m["steps"]]
    tail = rows[-max(1, len(rows) // 10):]

    def mean(k):
        vals = [r[k] for r in tail if isinstance(r.get(k), float) and math.isfinite(r[k])]
        return sum(vals) / len(vals) if vals else None

    e_pos, e_neg, ce = mean("e_pos"), mean("e_neg"), mean("ce")
    contrast = None if e_pos is None or e_neg is None else e_neg - e_pos
    gave_up = bool(m.get("metrics", {}).get("diverged"))
    events = m.get("divergence_events", [])
    trains = (not gave_up and ce is not None and ce < CE_TRAINS
              and (contrast is None or abs(contrast) < CONTRAST_BOUND))
    return {"run": folder.name, "method": m["method"], "added": added, "steps": m["steps"],
            "total_steps": m["total_steps"], "max_steps": m["config"].get("max_steps"), "gave_up": gave_up,
            "rollbacks": len(events), "first_rollback_step": events[0].get("step") if events else None,
            "ce_last10": ce, "at_ce_same_steps": at_ce(tail[0]["step"], tail[-1]["step"]) if tail else None,
            "acc_last10": mean("acc"), "e_pos_last10": e_pos, "e_neg_last10": e_neg,
            "contrast_last10": contrast, "max_abs_logit_last10": mean("max_abs_energy"),
            "train_minutes": round(m.get("train_seconds", 0) / 60, 1), "trains": trains}


def to_markdown(rows: list[dict]) -> str:
    def f(v):
        return "—" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)

    out = ["# The Algorithm-1 study (`python tools/alg1_study.py`)", "",
           "Each run of `tools/queues/alg1.txt`: what it adds to Algorithm 1 as written, how far it got, and "
           f"whether it trains (CE below {CE_TRAINS}, |E(x̃) − E(x⁺)| below {CONTRAST_BOUND:g} nats, the guard never "
           "gave up), over the last 10% of its logged steps. Beside its CE, plain FGSM-RS adversarial training's over "
           "the same steps (the mean of the shipped AT runs logged every 10 steps: "
           f"{', '.join(f'`{r}`' for r in AT_RUNS)} where shipped), the yardstick of a from-scratch adversarial "
           "classifier at that point.", "",
           "| run | settings added to Algorithm 1 as written | steps | roll-backs (first at) | CE | "
           "AT's CE, same steps | batch acc | E(x⁺) | E(x̃) | E(x̃) − E(x⁺) | max abs logit | minutes | trains |",
           "|" + "---|" * 13]
    for r in rows:
        verdict = "yes" if r["trains"] else "no" + (" (the guard gave up)" if r["gave_up"] else "")
        out.append(f"| `{r['run']}` | {', '.join(f'`{a}`' for a in r['added']) or 'none (as written)'} | "
                   f"{r['steps']} | {r['rollbacks']} ({f(r['first_rollback_step'])}) | {f(r['ce_last10'])} | "
                   f"{f(r['at_ce_same_steps'])} | "
                   f"{f(r['acc_last10'])} | {f(r['e_pos_last10'])} | {f(r['e_neg_last10'])} | "
                   f"{f(r['contrast_last10'])} | {f(r['max_abs_logit_last10'])} | {r['train_minutes']} | {verdict} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="?", default=os.environ.get("JEAT_QUEUE_RUNS", str(ROOT / "runs")))
    p.add_argument("--out", help="write OUT.md and OUT.json")
    a = p.parse_args(argv)
    lines = queue_lines()
    written = next(iter(lines.values()))  # the queue's first line: Algorithm 1 as written
    rows = []
    for name, args in lines.items():
        added = added_settings(args, written) if flags(args).get("--method") == "jeat" else args
        if (r := summarise(Path(a.runs) / name, added)) is not None:
            rows.append(r)
    if not rows:
        print(f"alg1_study: no run of {QUEUE.relative_to(ROOT)} under {a.runs}", file=sys.stderr)
        return 2
    md = to_markdown(rows)
    print(md)
    if a.out:
        Path(a.out + ".md").write_text(md)
        Path(a.out + ".json").write_text(json.dumps({"ce_trains": CE_TRAINS, "contrast_bound": CONTRAST_BOUND,
                                                     "runs": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

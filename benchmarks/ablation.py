"""Measure candidate JEAT/JEM runs for the ablation table in ``checkpoints/README.md`` (issue #13).

For each run folder: clean and PGD-20 accuracy (n test images, Wilson 95% CIs), the energy
contrast at the end of training (training log: mean ``e_neg − e_pos`` over the last 10% of logged
steps; measured: mean marginal energy of the final replay buffer minus that of test images, and of
U(0, 1) noise), SGLD steps per chain, divergence events, wall time, and the evaluator's KID (in
its feature units, as everywhere in the project) of the run's best sampler (tuned on the
validation seeds exactly like ``jeat tune-samplers``, then scored on 1,000 fresh seeds) with its
95% CI and the KID differences against the shipped models named by ``--against`` (each with its
own tuned sampler) and against the class-Gaussian seeds. Writes JSON; prints a Markdown row per run.

    python benchmarks/ablation.py --run jeat-ft=/work/runs/jeat-ft --run jem-ft=/work/runs/jem-ft \\
        --against at,prejeat --out ablation.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from jeat_core.core.checkpoints import STATE, load_state
from jeat_core.core.energy import marginal_energy
from jeat_core.core.sampling import uniform_init
from jeat_core.measure.metrics import robust_accuracy
from jeat_core.paper.experiments import (
    Context,
    baselines,
    generation_set,
    kid_difference,
    public,
    sampler_entry,
    sampler_record,
    store_sampler,
    tune_sampler,
)


def log_contrast(folder: Path) -> dict:
    rows = [json.loads(ln) for ln in (folder / "energy_log.jsonl").read_text().splitlines() if ln.strip()]
    rows = [r for r in rows if "e_neg" in r]
    if not rows:
        return {}
    tail = rows[-max(1, len(rows) // 10):]
    mean = lambda k: sum(r[k] for r in tail) / len(tail)  # noqa: E731
    return {"log_e_pos": mean("e_pos"), "log_e_neg": mean("e_neg"), "log_contrast": mean("e_neg") - mean("e_pos"),
            "log_chain_steps": mean("chain_steps") if "chain_steps" in tail[-1] else None}


@torch.no_grad()
def measured_contrast(model, folder: Path, x_test: torch.Tensor) -> dict:
    e = lambda z: float(torch.cat([marginal_energy(model(b)) for b in z.split(250)]).mean())  # noqa: E731
    out = {"E_test": e(x_test), "E_uniform": e(uniform_init(len(x_test), generator=torch.Generator().manual_seed(0)))}
    if (folder / STATE).is_file():
        buf = (load_state(folder / STATE).get("buffer") or {}).get("data")
        if buf is not None:
            out["E_buffer"] = e(buf[:1000].float())
            out["buffer_contrast"] = out["E_buffer"] - out["E_test"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="append", default=[], help="NAME=FOLDER (repeatable); a shipped name also works")
    p.add_argument("--against", default="at,prejeat", help="shipped models to compare KIDs with")
    p.add_argument("--n-acc", type=int, default=1000, help="test images for clean/PGD-20 accuracy")
    p.add_argument("--per-class", type=int, default=100, help="generated images per class for the KID")
    p.add_argument("--tune-per-class", type=int, default=10, help="validation seeds per class for the sampler")
    p.add_argument("--out", default="ablation.json")
    p.add_argument("--store", action="store_true", help="write the tuned sampler into each run's manifest")
    p.add_argument("--data-root")
    a = p.parse_args(argv)
    runs = dict(r.split("=", 1) if "=" in r else (r, None) for r in a.run)
    ctx = Context(data_root=a.data_root, paths={k: v for k, v in runs.items() if v})
    x, y = ctx.test()
    say = lambda m: print(f"[ablation] {m}", file=sys.stderr, flush=True)  # noqa: E731
    results = {}
    against = [n for n in a.against.split(",") if n]
    for name in against:
        generation_set(ctx, name, per_class=a.per_class)
    for name, folder in runs.items():
        t0 = time.time()
        model, manifest = ctx.model(name)
        folder = Path(folder) if folder else None
        acc = robust_accuracy(model, x[:a.n_acc], y[:a.n_acc], attack="pgd20")
        rec = {"name": name, "folder": str(folder) if folder else None, "config": manifest.get("config"),
               "init_from": manifest.get("init_from"), "train_seconds": manifest.get("train_seconds"),
               "steps": manifest.get("steps"), "epochs_done": manifest.get("epochs_done"),
               "divergence_events": len(manifest.get("divergence_events", [])),
               "sgld_chains": manifest.get("sgld_chains"), **acc}
        if folder is not None:
            rec.update(log_contrast(folder))
            rec.update(measured_contrast(model, folder, x[:1000]))
        say(f"{name}: clean {acc['clean_acc']:.3f} pgd20 {acc['robust_acc']:.3f}; tuning the sampler")
        tuned = tune_sampler(ctx, name, "joint", per_class=a.tune_per_class, progress=say)
        # score on fresh seeds with the tuned sampler, stored in the run's manifest as jeat tune-samplers does
        entry = sampler_entry(tuned, a.tune_per_class)
        ctx.use_sampler(name, "joint", entry)
        if folder is not None and a.store:
            store_sampler(folder, "joint", entry)
        gen = generation_set(ctx, name, per_class=a.per_class)
        rec["sampler"] = sampler_record(tuned["best"])
        rec["kid"], rec["kid_ci"] = gen["kid"], gen["kid_ci"]
        rec["fid"], rec["eval_acc"] = gen["fid"], gen["eval_acc"]
        rec["vs"] = {o: kid_difference(ctx, gen, generation_set(ctx, o, per_class=a.per_class)) for o in against}
        rec["vs"]["seeds"] = kid_difference(ctx, gen, baselines(ctx, per_class=a.per_class)["seeds"])
        rec["grid"] = tuned["rows"]
        rec["measure_seconds"] = round(time.time() - t0, 1)
        results[name] = {k: (public(v) if isinstance(v, dict) and k == "vs" else v) for k, v in rec.items()}
        Path(a.out).write_text(json.dumps(results, indent=2, default=float) + "\n")
        vs = "; ".join(f"− {o}: {d['diff']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}]"
                       for o, d in rec["vs"].items())
        nan = float("nan")
        print(f"| {name} | {acc['clean_acc']:.1%} | {acc['robust_acc']:.1%} | {rec.get('log_contrast', nan):+.2f} "
              f"| {rec.get('buffer_contrast', nan):+.2f} | {rec['kid']:.2f} "
              f"[{rec['kid_ci'][0]:.2f}, {rec['kid_ci'][1]:.2f}] | {vs} |", flush=True)
    for name in against:
        g = generation_set(ctx, name, per_class=a.per_class)
        results.setdefault("_against", {})[name] = {"kid": g["kid"], "kid_ci": g["kid_ci"], "sampler": g["sampler"]}
    Path(a.out).write_text(json.dumps(results, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

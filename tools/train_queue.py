"""A training queue that resumes: train each run, ship it, record its evaluations, tune its sampler.

    python tools/train_queue.py tools/queues/robust.txt        # one thread (OMP_NUM_THREADS=1), resumable

Each line of a queue file is ``NAME  jeat-train-arguments`` (``#`` starts a comment). For each run,
every step is skipped when its result already exists, so the same command after an interruption
continues where it stopped and never loses a finished run:

1. ``jeat train ... --out RUNS/NAME`` (``--resume`` when ``RUNS/NAME/state.pt`` exists; ``RUNS`` is
   ``$JEAT_QUEUE_RUNS``, default ``runs/``);
2. the three files of the finished run copied to ``checkpoints/cifar10-cpu/NAME/``;
3. ``jeat eval --record``: clean (10,000 images), PGD-20 and energy PGD-20 (first 1,000),
   PGD-100×5 and standard AutoAttack (first 500; the robust methods and the noise models);
4. ``jeat tune-samplers --only NAME`` (its sampler under the frozen protocol, then the family of Eq. 9
   as written, ``--family as-written``; AT's runs for Eq. 16 too).

A run whose training the divergence guard gives up on (``jeat train`` exit status 3) keeps its last finite
state, its log and a manifest with ``metrics["diverged"]``; it is shipped as it is, without evaluations or
tuning, and the queue goes on. A line whose arguments include ``@train-only`` is a probe: trained (and
resumed) in ``RUNS`` only, never shipped. Every step's wall time goes to ``RUNS/queue-times.jsonl``;
committing finished runs is left to a person.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from jeat_core.paper.experiments import SAMPLER_FAMILIES, sampler_key  # where a tuned sampler is stored

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "checkpoints" / "cifar10-cpu"
# run folders live outside the work tree when JEAT_QUEUE_RUNS says so (they then outlive a fresh checkout)
RUNS = Path(os.environ.get("JEAT_QUEUE_RUNS", ROOT / "runs"))
JEAT = [sys.executable, "-m", "jeat_core"]
EVALS = (("none", None), ("pgd20", 1000), ("energy-pgd20", 1000), ("pgd100-5", 500), ("autoattack", 500))
NO_SLOW_ATTACKS = {"standard", "jem"}  # not robust: PGD-20 already leaves 0%


def log(name: str, step: str, seconds: float) -> None:
    RUNS.mkdir(parents=True, exist_ok=True)
    with open(RUNS / "queue-times.jsonl", "a") as f:
        f.write(json.dumps({"run": name, "step": step, "seconds": round(seconds, 1), "at": time.time()}) + "\n")
    print(f"[queue] {name}: {step} done in {seconds / 60:.1f} min", flush=True)


DIVERGED = 3  # `jeat train`'s exit status when the divergence guard gives up


def sh(name: str, step: str, args: list[str], ok: tuple[int, ...] = (0,)) -> int:
    t0 = time.time()
    print(f"[queue] {name}: {step}: {' '.join(args)}", flush=True)
    rc = subprocess.run(args, cwd=ROOT).returncode
    if rc not in ok:
        raise subprocess.CalledProcessError(rc, args)
    log(name, step + (" (diverged)" if rc == DIVERGED else ""), time.time() - t0)
    return rc


def manifest(folder: Path) -> dict | None:
    p = folder / "manifest.json"
    return json.loads(p.read_text()) if p.exists() else None


def has_eval(m: dict, attack: str, n: int | None) -> bool:
    return any(e["attack"] == attack and (n is None or e["n"] >= n) for e in m.get("evals", []))


def diverged(m: dict | None) -> bool:
    return bool(m and m.get("metrics", {}).get("diverged"))


def run_one(name: str, train_args: list[str]) -> None:
    out, ship = RUNS / name, ZOO / name
    probe = "@train-only" in train_args
    train_args = [a for a in train_args if a != "@train-only"]
    if manifest(ship) is None:
        m = manifest(out)
        stop = m and min(m.get("total_steps") or 0, m.get("config", {}).get("max_steps") or m.get("total_steps") or 0)
        done = m is not None and (diverged(m) or m.get("steps") == stop)
        if not done or not (out / "model.safetensors").exists():
            resume = ["--resume"] if (out / "state.pt").exists() else (["--overwrite"] if out.exists() else [])
            sh(name, "train", [*JEAT, "train", *train_args, "--out", str(out), *resume], ok=(0, DIVERGED))
        if probe:
            return
        ship.mkdir(parents=True, exist_ok=True)
        for f in ("model.safetensors", "energy_log.jsonl", "manifest.json"):  # the manifest last
            if (out / f).exists():
                shutil.copy2(out / f, ship / f)
    if diverged(manifest(ship)):
        return
    method = manifest(ship)["method"]
    for attack, n in EVALS:
        if attack in ("pgd100-5", "autoattack") and method in NO_SLOW_ATTACKS:
            continue
        if not has_eval(manifest(ship), attack, n):
            sh(name, f"eval {attack}", [*JEAT, "eval", "--model", f"cifar10-cpu/{name}", "--attack", attack,
                                        *(["--n", str(n)] if n else []), "--json", "--record"])
    for family in SAMPLER_FAMILIES:  # the frozen protocol's grid, then Eq. 9 as written (noise √η)
        for energy in ("joint", "ce") if method == "at" else ("joint",) if method != "standard" else ():
            key = sampler_key(energy, family)
            if key not in manifest(ship).get("sampler", {}):  # AT's Eq. 16 sampler too (claim 4 over runs)
                sh(name, f"tune-samplers {key}",
                   [*JEAT, "tune-samplers", "--only", name, "--energy", energy, "--family", family])


def main(queue: str) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    jobs = []
    for line in Path(queue).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, *args = line.split()
            jobs.append((name, args))
    for name, args in jobs:
        run_one(name, args)
    print(f"[queue] {queue}: all {len(jobs)} runs done", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tools/train_queue.py QUEUE_FILE")
    sys.exit(main(sys.argv[1]))

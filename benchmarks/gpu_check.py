"""One prepared GPU check (issue #16): about 7 minutes on one H100/H200, JSON out.

    python benchmarks/gpu_check.py [--out FILE] [--compile] [--at-seconds 150]
    python benchmarks/gpu_check.py --dry-run      # the same code paths, tiny, on the CPU (~30 s)

Sections (each is timed and written to the JSON as soon as it ends; a failing section records
its error and the others still run):

1. ``matmul``      the bf16 dense matmul rate this GPU reaches (the MFU denominator).
2. ``unit_tests``  ``JEAT_TEST_DEVICE=cuda pytest -m device`` (tests/test_device.py): attacks,
                   sampling, every training step, fit/resume and ``jeat generate`` on the GPU.
3. ``throughput``  training-step images/s of every method at the ``paper`` preset
                   (WideResNet-28-10, bf16 autocast, channels-last, ``--compile`` optional) and MFU:
                   model FLOPs per step (forward FLOPs F counted by FlopCounterMode on the meta
                   device; a pass with input gradients only = 2F, with parameter gradients = 3F)
                   over the measured matmul rate; plus the attack / SGLD / update split of JEAT.
4. ``at_run``      adversarial training (``at``, paper preset, FGSM-RS) on real CIFAR-10
                   ($JEAT_DATA) for ``--at-seconds``, with the schedule fitted to that many steps;
                   PGD-20 accuracy (eps 8/255, step 2/255, fp32) before and after.
5. ``generation``  class-conditional Langevin generation (Eq. 17, 60 steps) from class-Gaussian
                   seeds with the model of 4, and SGLD on E(x) from U(0, 1), timed; a PNG grid.

The dry run uses a WRN-10-1 at batch 4, two SGLD steps, procedural data and the CPU; it is what
tests/test_gpu_check.py runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from step_parts import jeat_step_parts, passes_per_step  # noqa: E402  (benchmarks/, the script's folder)

from jeat_core.core.attacks import pgd  # noqa: E402
from jeat_core.core.data import load_split, procedural, to_uint8  # noqa: E402
from jeat_core.core.energy import joint_energy, marginal_energy  # noqa: E402
from jeat_core.core.models import build_model  # noqa: E402
from jeat_core.core.sampling import ClassGaussian, GenerationConfig, generate, langevin, uniform_init  # noqa: E402
from jeat_core.train import training  # noqa: E402

# dense bf16 tensor-core peak from the datasheets (SXM parts), for reference next to the measured rate
DATASHEET_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}


# ----------------------------------------------------------------------------- helpers
def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev: torch.device, *, reps: int, warmup: int = 1) -> float:
    """Median seconds of ``fn()`` over ``reps`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    sync(dev)
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync(dev)
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def matmul_tflops(dev: torch.device, dry: bool) -> dict:
    n, dtype = (512, torch.float32) if dry else (8192, torch.bfloat16)
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    t = timed(lambda: a @ b, dev, reps=5 if dry else 20, warmup=2)
    return {"n": n, "dtype": str(dtype), "tflops": 2 * n ** 3 / t / 1e12}


def forward_flops(model_cfg: training.ModelConfig) -> float:
    """Model FLOPs of one forward pass per 32x32 image (counted on the meta device: no compute)."""
    with torch.device("meta"):
        m = build_model(model_cfg.name, **model_cfg.kwargs)
        x = torch.empty(2, 3, 32, 32)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        m(x)
    return fc.get_total_flops() / 2


def config(method: str, a, **overrides) -> training.TrainConfig:
    cfg = training.make_config(method, "paper", **{"compile": a.compile, "checkpoint_every": 0, "log_every": 0,
                                                   **overrides})
    if a.dry_run:  # same code paths, tiny: WRN-10-1 (same norm/act) at batch 4, 2 SGLD steps on 4 chains
        kw = {**cfg.model.kwargs, "depth": 10, "widen": 1}
        cfg = replace(cfg, model=training.ModelConfig("wrn", kw), optim=replace(cfg.optim, batch_size=4))
        if cfg.uses_sgld:
            cfg = replace(cfg, sgld=replace(cfg.sgld, n_steps=2, batch_size=4, buffer_size=64))
    return cfg


def datasheet_peak() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in DATASHEET_BF16_TFLOPS.items() if k in name), None)


# ----------------------------------------------------------------------------- sections
def unit_tests(dev: torch.device, a) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-m", "device", str(REPO / "tests" / "test_device.py"),
               f"--junitxml={xml}", "-p", "no:cacheprovider"]
        if a.dry_run:  # the dry run checks the plumbing with one quick test
            cmd += ["-k", "rng_draws"]
        env = {**os.environ, "JEAT_TEST_DEVICE": str(dev), "PYTHONPATH": str(REPO)}
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=a.tests_timeout)
        suite = ET.parse(xml).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        failed = [f"{c.get('classname')}::{c.get('name')}" for c in suite.iter("testcase")
                  if c.find("failure") is not None or c.find("error") is not None]
    return {"command": " ".join(cmd[2:]), "returncode": p.returncode, **counts,
            "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
            "failed": failed, "output_tail": (p.stdout + p.stderr)[-3000:]}


def method_throughput(method: str, dev: torch.device, a, peak_tflops: float) -> dict:
    reps = 1 if a.dry_run else 10
    cfg = config(method, a)
    f_img = forward_flops(cfg.model)
    state = training.build_state(cfg, dev, 10 ** 6)
    b = cfg.optim.batch_size
    x = torch.rand(b, 3, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (b,), device=dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t = timed(lambda: training.train_step(state, x, y, cfg, False), dev, reps=reps, warmup=3 if a.compile else 1)
    flop = passes_per_step(cfg) * f_img
    r = {"model": cfg.model.name, "norm": cfg.model.kwargs.get("norm"), "batch": b, "step_s": t,
         "images_per_s": b / t, "forward_gflop_per_image": f_img / 1e9,
         "model_tflop_per_step": flop / 1e12, "achieved_tflops": flop / t / 1e12,
         "mfu_vs_measured_matmul": flop / t / 1e12 / peak_tflops}
    if cfg.uses_sgld:
        r["sgld"] = {"n_steps": cfg.sgld.n_steps, "batch_size": cfg.sgld.batch_size}
    if dev.type == "cuda":
        r["peak_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2 ** 30
    if method == "jeat":  # where a JEAT step goes
        split = {k: timed(fn, dev, reps=reps) for k, fn in jeat_step_parts(state, cfg, x, y).items()}
        tot = sum(split.values())
        r["split"] = {k: {"s": v, "share": v / tot} for k, v in split.items()}
    return r


def throughput(dev: torch.device, a, peak_tflops: float) -> dict:
    out: dict = {"preset": "paper", "amp_bf16": dev.type == "cuda", "channels_last": True, "compile": a.compile,
                 "methods": {}}
    for method in training.METHODS:
        r = out["methods"][method] = method_throughput(method, dev, a, peak_tflops)
        print(f"  {method:<9}{r['images_per_s']:>9.1f} img/s  {r['mfu_vs_measured_matmul']:>6.1%} of matmul",
              flush=True)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return out


def pgd_accuracy(model, x, y, dev, batch: int) -> dict:
    """Clean and PGD-20 (L-inf 8/255, step 2/255, random start) accuracy in fp32, eval mode."""
    g = torch.Generator(device=dev if dev.type == "cuda" else "cpu").manual_seed(0)
    clean = robust = 0
    with training.evaluating(model):
        for i in range(0, len(x), batch):
            xb, yb = x[i:i + batch].to(dev), y[i:i + batch].to(dev)
            with torch.no_grad():
                clean += int((model(xb).argmax(1) == yb).sum())
            xa = pgd(model, xb, yb, eps=8 / 255, step_size=2 / 255, n_steps=20, generator=g)
            with torch.no_grad():
                robust += int((model(xa).argmax(1) == yb).sum())
    return {"n": len(x), "clean_acc": clean / len(x), "pgd20_acc": robust / len(x)}


def at_run(dev: torch.device, a, step_s: float | None, ctx: dict) -> dict:
    if a.dry_run:
        train, test = procedural(256, seed=0), procedural(64, seed=1)
    else:
        train, test = load_split("train", with_hash=True), load_split("test")
    probe = config("at", a)
    if step_s is None:  # no throughput measurement: time a few steps here
        st = training.build_state(probe, dev, 10 ** 6)
        xb = torch.rand(probe.optim.batch_size, 3, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
        yb = torch.randint(0, 10, (len(xb),), device=dev)
        step_s = timed(lambda: training.train_step(st, xb, yb, probe, False), dev, reps=3)
        del st
    per_epoch = len(train) // probe.optim.batch_size
    steps = max(4, int(0.85 * a.at_seconds / step_s))  # 15% margin for data, augmentation, logging
    cfg = replace(config("at", a, epochs=steps / per_epoch, eval_n=0, log_every=max(1, steps // 20)))
    xt, yt = test.tensors(a.eval_n)
    before = pgd_accuracy(training.build_state(cfg, dev, steps).core, xt, yt, dev, a.eval_batch)
    print(f"  before: clean {before['clean_acc']:.3f}  PGD-20 {before['pgd20_acc']:.3f}; {steps} steps", flush=True)
    curve: list = []
    t0 = time.perf_counter()

    def log(step, m):
        if step % cfg.log_every == 0 or step == steps:
            curve.append({"step": step, "s": round(time.perf_counter() - t0, 2), "loss": m["loss"],
                          "adv_train_acc": m["acc"], "lr": m["lr"]})

    res = training.fit(cfg, train_data=train, test_data=test, device=str(dev), progress=False, callbacks=(log,))
    train_s = time.perf_counter() - t0
    after = pgd_accuracy(res.state.core, xt, yt, dev, a.eval_batch)
    print(f"  after {train_s:.0f}s: clean {after['clean_acc']:.3f}  PGD-20 {after['pgd20_acc']:.3f}", flush=True)
    ctx["model"], ctx["train"] = res.state.core, train
    return {"data": train.source, "steps": steps, "epochs": round(steps / per_epoch, 3),
            "batch": cfg.optim.batch_size, "model": cfg.model.name, "schedule": cfg.optim.schedule,
            "train_s": train_s, "images_per_s": steps * cfg.optim.batch_size / train_s, "before": before,
            "after": after, "pgd20_rose": after["pgd20_acc"] > before["pgd20_acc"], "curve": curve}


def generation(dev: torch.device, a, ctx: dict, out_dir: Path) -> dict:
    model = ctx.get("model")
    train = ctx.get("train") or (procedural(256, seed=0) if a.dry_run else load_split("train"))
    if model is None:  # the AT run failed: an untrained model still times the sampler
        model = training.build_state(config("at", a), dev, 1).core
    model.eval()
    per_class = 1 if a.dry_run else 10
    labels = torch.arange(10).repeat_interleave(per_class)
    t = time.perf_counter()
    cg = ClassGaussian(train.x, train.y)
    seeds = cg.sample(labels, generator=torch.Generator().manual_seed(0), device=dev)
    fit_s = time.perf_counter() - t
    gcfg = GenerationConfig(n_steps=2 if a.dry_run else 60)
    yd = labels.to(dev)
    samples = {}

    def run():
        samples["x"] = generate(model, yd, seeds, gcfg, seed=0)

    gen_s = timed(run, dev, reps=1 if a.dry_run else 3, warmup=1)
    with torch.no_grad():
        e0, e1 = joint_energy(model(seeds), yd).mean(), joint_energy(model(samples["x"]), yd).mean()
    n_sgld, k = (4, 2) if a.dry_run else (64, 20)
    g = torch.Generator(device=dev if dev.type == "cuda" else "cpu").manual_seed(0)
    x0 = uniform_init(n_sgld, device=dev, generator=g)
    sgld_s = timed(lambda: langevin(lambda z: marginal_energy(model(z)), x0, step_size=2.0, n_steps=k,
                                    noise_std=0.01, clamp=(0, 1), generator=g), dev, reps=1 if a.dry_run else 3)
    png = out_dir / "gpu_check_samples.png"
    try:
        from PIL import Image

        grid = to_uint8(samples["x"]).reshape(10, per_class, 32, 32, 3).transpose(1, 2, 0, 3, 4)
        Image.fromarray(grid.reshape(per_class * 32, 10 * 32, 3)).save(png)
    except ImportError:
        png = None
    return {"n": len(labels), "energy": gcfg.energy, "n_steps": gcfg.n_steps, "step_size": gcfg.step_size,
            "noise_std": gcfg.noise_std, "class_gaussian_fit_s": fit_s, "generate_s": gen_s,
            "images_per_s": len(labels) / gen_s, "langevin_steps_per_s": gcfg.n_steps / gen_s,
            "mean_joint_energy_seed": float(e0), "mean_joint_energy_sample": float(e1),
            "sgld_marginal": {"chains": n_sgld, "steps": k, "s": sgld_s, "chain_steps_per_s": n_sgld * k / sgld_s},
            "grid_png": str(png) if png else None}


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "gpu_check.json"))
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: checks the code paths")
    p.add_argument("--device", default=None, help="default: cuda (cpu for --dry-run)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training model")
    p.add_argument("--at-seconds", type=float, default=None, help="AT training time (default 150; dry run 3)")
    p.add_argument("--eval-n", type=int, default=None, help="test images for PGD-20 (default 1000; dry run 16)")
    p.add_argument("--eval-batch", type=int, default=500)
    p.add_argument("--tests-timeout", type=int, default=240)
    p.add_argument("--skip", default="", help="comma list of sections to skip (unit_tests, throughput, ...)")
    a = p.parse_args(argv)
    a.at_seconds = a.at_seconds if a.at_seconds is not None else (3.0 if a.dry_run else 150.0)
    a.eval_n = a.eval_n if a.eval_n is not None else (16 if a.dry_run else 1000)
    dev = torch.device(a.device or ("cpu" if a.dry_run else "cuda"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        p.error("CUDA is not available; use --dry-run (or --device cpu) on a machine without a GPU")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if a.dry_run:  # its timings mean nothing; one thread is quickest on a busy shared CPU
        torch.set_num_threads(1)
    torch.manual_seed(0)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    res: dict = {"dry_run": a.dry_run, "device": str(dev),
                 "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor(),
                 "torch": torch.__version__, "cuda": torch.version.cuda, "argv": sys.argv[1:],
                 "datasheet_bf16_tflops": datasheet_peak(), "sections": {}}
    skip = {s for s in a.skip.split(",") if s}
    t_all = time.perf_counter()
    ctx: dict = {}

    def section(name, fn):
        if name in skip:
            return None
        print(f"[{name}]", flush=True)
        t = time.perf_counter()
        try:
            r = fn()
            res["sections"][name] = {"ok": True, "seconds": round(time.perf_counter() - t, 2), **r}
        except Exception as e:  # record and go on: one broken section must not hide the others
            res["sections"][name] = {"ok": False, "seconds": round(time.perf_counter() - t, 2),
                                     "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-4000:]}
            print(f"  FAILED: {type(e).__name__}: {e}", flush=True)
        res["total_seconds"] = round(time.perf_counter() - t_all, 2)
        out.write_text(json.dumps(res, indent=2))
        return res["sections"][name]

    mm = section("matmul", lambda: matmul_tflops(dev, a.dry_run))
    peak = mm["tflops"] if mm and mm.get("ok") else float("nan")
    section("unit_tests", lambda: unit_tests(dev, a))
    tp = section("throughput", lambda: throughput(dev, a, peak))
    at_s = tp["methods"]["at"]["step_s"] if tp and tp.get("ok") else None
    section("at_run", lambda: at_run(dev, a, at_s, ctx))
    section("generation", lambda: generation(dev, a, ctx, out.parent))
    s = res["sections"]
    res["ok"] = all(v.get("ok") for v in s.values()) and s.get("unit_tests", {}).get("returncode", 0) == 0
    res["total_seconds"] = round(time.perf_counter() - t_all, 2)
    out.write_text(json.dumps(res, indent=2))
    print(f"wrote {out} ({res['total_seconds']:.0f} s, ok={res['ok']})")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    os.environ.setdefault("JEAT_DATA", str(REPO.parent / "shared" / "data" / "cifar10"))
    raise SystemExit(main())

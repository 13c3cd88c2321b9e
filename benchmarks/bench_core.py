"""Throughput of the core operations on the cpu-preset model, as ratios to this machine's
measured fp32 matmul rate, and our PGD-20 against torchattacks' PGD-20 (speed and accuracy).

    python benchmarks/bench_core.py [--model DIR_OR_NAME] [--n 500] [--batch 128] [--out FILE]

Prints a table and writes JSON (default ``benchmarks/results/bench_core.json``). Training-step
throughput of every method and the JEAT cost split (attack / SGLD / update) come last.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from jeat_core.attacks import pgd
from jeat_core.data import load_split, procedural
from jeat_core.energy import joint_energy
from jeat_core.models import build_model
from jeat_core.sampling import langevin


def timeit(fn, *, reps: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def matmul_gflops(n: int = 2048) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / timeit(lambda: a @ b, reps=10) / 1e9


def flops(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="checkpoint for the accuracy comparison (default: shipped standard)")
    p.add_argument("--n", type=int, default=500, help="test images for the PGD-20 comparison")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_core.json"))
    p.add_argument("--skip-train", action="store_true")
    a = p.parse_args()

    torch.manual_seed(0)
    from jeat_core.checkpoints import CheckpointError, load_model

    model_name = a.model or "cifar10-cpu/standard"
    try:
        model, _ = load_model(model_name)
        trained = True
    except CheckpointError:
        model, trained, model_name = build_model("small_cnn").eval(), False, "untrained small_cnn"
        model.requires_grad_(False)
    model = model.to(memory_format=torch.channels_last)
    b = a.batch
    x = torch.rand(b, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (b,))

    peak = matmul_gflops()
    res: dict = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                 "torch": torch.__version__, "matmul_gflops": peak, "model": model_name, "batch": b, "ops": {}}

    train_model = build_model("small_cnn").to(memory_format=torch.channels_last)

    def fwd():
        with torch.no_grad():
            model(x)

    def fwd_bwd():
        train_model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(train_model(x), y).backward()

    def langevin_step():
        langevin(lambda z: joint_energy(model(z), y), x, step_size=0.1, n_steps=1, noise_std=0.01)

    def pgd20():
        pgd(model, x, y, eps=8 / 255, step_size=2 / 255, n_steps=20)

    # Model FLOPs (the MFU convention): forward F per image counted by FlopCounterMode; a pass
    # with input gradients only (Langevin / attack step) counts 2F, forward+backward with
    # parameter gradients 3F (FlopCounterMode cannot watch autograd.grad on leaf inputs).
    f_img = flops(fwd) / b
    model_flops = {"forward": f_img, "forward+backward": 3 * f_img, "langevin step": 2 * f_img,
                   "pgd-20": 20 * 2 * f_img}
    res["forward_gflop_per_image"] = f_img / 1e9
    for name, fn in [("forward", fwd), ("forward+backward", fwd_bwd), ("langevin step", langevin_step),
                     ("pgd-20", pgd20)]:
        f = model_flops[name] * b
        t = timeit(fn, reps=3 if name == "pgd-20" else 5)
        res["ops"][name] = {"images_per_s": b / t, "gflop_per_image": f / b / 1e9,
                            "achieved_gflops": f / t / 1e9, "fraction_of_matmul": f / t / 1e9 / peak}

    # ---- PGD-20 vs torchattacks on real test images
    try:
        import torchattacks

        test = load_split("test")
        xt, yt = test.tensors(a.n)
        g = torch.Generator().manual_seed(0)
        peer = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=20, random_start=True)
        acc = {}
        times = {}
        for who, attack in [("jeat", lambda xb, yb: pgd(model, xb, yb, eps=8 / 255, step_size=2 / 255, n_steps=20,
                                                           generator=g)),
                            ("torchattacks", lambda xb, yb: peer(xb, yb))]:
            t0, correct = time.perf_counter(), 0
            for i in range(0, len(xt), b):
                xa = attack(xt[i:i + b], yt[i:i + b])
                with torch.no_grad():
                    correct += int((model(xa).argmax(1) == yt[i:i + b]).sum())
            times[who], acc[who] = time.perf_counter() - t0, correct / len(xt)
        with torch.no_grad():
            clean = float((model(xt).argmax(1) == yt).float().mean())
        res["pgd20_vs_torchattacks"] = {
            "n": len(xt), "clean_acc": clean, "jeat_acc": acc["jeat"], "torchattacks_acc": acc["torchattacks"],
            "jeat_s": times["jeat"], "torchattacks_s": times["torchattacks"],
            "speed_ratio_jeat_over_peer": times["torchattacks"] / times["jeat"], "model_trained": trained}
    except Exception as e:  # no data / no peer library: say so in the output
        res["pgd20_vs_torchattacks"] = {"skipped": f"{type(e).__name__}: {e}"}

    # ---- one training step per method (cpu preset), JEAT cost split
    if not a.skip_train:
        from jeat_core import training

        data = procedural(b * 4, seed=0)
        res["train_steps"] = {}
        xb, yb = data.tensors(b)
        xb = xb.contiguous(memory_format=torch.channels_last)
        for method in training.METHODS:
            cfg = replace(training.make_config(method, "cpu"), checkpoint_every=0)
            state = training.build_state(cfg, torch.device("cpu"), 100)
            step = training.STEP_FNS[method]
            t = timeit(lambda step=step, state=state, cfg=cfg: step(state, xb, yb, cfg, False), reps=3)
            r = cfg.sgld.batch_size / b if hasattr(cfg, "sgld") else 0.0
            passes = {"standard": 3, "noise": 3, "at": 5, "prejeat": 5,  # attack 2F + update 3F
                      "jeat": 2 + 2 * cfg.sgld.n_steps * r + 3 * (1 + r) if method == "jeat" else 0,
                      "jem": 2 * cfg.sgld.n_steps * r + 3 * (2 + r) if method == "jem" else 0}[method]
            res["train_steps"][method] = {"images_per_s": b / t, "step_s": t, "model_flop_passes": passes,
                                          "fraction_of_matmul": passes * f_img * b / t / 1e9 / peak}
        cfg = training.make_config("jeat", "cpu")
        state = training.build_state(cfg, torch.device("cpu"), 100)
        split = {"attack": timeit(lambda: training._attack(state, cfg, xb, yb), reps=3),
                 "sgld": timeit(lambda: training._sgld_negatives(state, cfg), reps=3)}
        x_adv, neg = training._attack(state, cfg, xb, yb), training._sgld_negatives(state, cfg)
        split["update"] = timeit(lambda: training._update(state, cfg, x_adv, yb, x_ori=xb, negatives=neg), reps=3)
        total = sum(split.values())
        res["jeat_cost_split"] = {k: {"s": v, "share": v / total} for k, v in split.items()}
        res["jeat_cost_split"]["sgld_config"] = {"n_steps": cfg.sgld.n_steps, "batch_size": cfg.sgld.batch_size}

    # ---- report
    print(f"fp32 matmul: {peak:.1f} GFLOP/s ({res['threads']} threads, torch {torch.__version__})")
    print(f"{'operation':<20}{'img/s':>10}{'GFLOP/img':>12}{'GFLOP/s':>10}{'of matmul':>11}")
    for k, v in res["ops"].items():
        print(f"{k:<20}{v['images_per_s']:>10.0f}{v['gflop_per_image']:>12.4f}{v['achieved_gflops']:>10.1f}"
              f"{v['fraction_of_matmul']:>10.1%}")
    c = res["pgd20_vs_torchattacks"]
    if "skipped" in c:
        print("PGD-20 vs torchattacks: skipped:", c["skipped"])
    else:
        print(f"PGD-20 on {c['n']} test images ({model_name}): clean {c['clean_acc']:.3f}; "
              f"jeat {c['jeat_acc']:.3f} in {c['jeat_s']:.1f}s, torchattacks {c['torchattacks_acc']:.3f} in "
              f"{c['torchattacks_s']:.1f}s; speed ratio jeat/peer {c['speed_ratio_jeat_over_peer']:.2f}x")
    for k, v in res.get("train_steps", {}).items():
        print(f"train step {k:<9}{v['images_per_s']:>8.0f} img/s  {v['fraction_of_matmul']:>6.1%} of matmul")
    for k, v in res.get("jeat_cost_split", {}).items():
        if k != "sgld_config":
            print(f"jeat split {k:<7}{v['s']:>7.3f}s  {v['share']:>6.1%}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print("wrote", a.out)


if __name__ == "__main__":
    os.environ.setdefault("JEAT_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"))
    main()

"""Throughput of the core operations on the cpu-preset model, as ratios to this machine's
measured fp32 matmul rate, and our PGD-20 against torchattacks' PGD-20 (speed and accuracy).

    python benchmarks/bench_core.py [--model DIR_OR_NAME] [--n 500] [--batch 128] [--reps 3] [--out FILE]

Prints a table and writes JSON (default ``benchmarks/results/bench_core.json``). Training-step
throughput of every method and the JEAT cost split (attack / SGLD / update) come last; the split
is measured twice, with our SGLD loop and with the loop as it was before issue #16 (parameters
requiring gradients during the chain, out-of-place updates: :func:`reference_langevin`).

PGD-20 vs torchattacks: both get the model as ``load_model`` returns it (eval mode, frozen
parameters, default memory format), the same images, batches and attack settings; the runs are
interleaved (ours, theirs, ours, ...) and the best of ``--reps`` is kept, so load from other
processes on a shared machine hits both alike. ``reference_pgd`` (the loop before issue #16) runs
alongside for context. Then robust accuracy as each library's user computes it: ours with
:func:`jeat_core.measure.metrics.robust_accuracy` (which attacks only the images classified correctly when
clean, since the others count as not robust anyway), theirs attack-then-count on every image;
same images, batches and robust-accuracy rule (correct clean and after the attack).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch
from step_parts import jeat_step_parts, passes_per_step  # benchmarks/, the script's folder
from torch.utils.flop_counter import FlopCounterMode

from jeat_core.core.attacks import pgd
from jeat_core.core.data import load_split, procedural
from jeat_core.core.energy import cross_entropy, joint_energy, marginal_energy
from jeat_core.core.models import build_model
from jeat_core.core.sampling import langevin
from jeat_core.measure.metrics import robust_accuracy


def reference_langevin(energy_fn, x0, *, step_size, n_steps, noise_std, clamp=None, generator=None):
    """The SGLD loop before issue #16 (out-of-place updates), for the before/after split."""
    x = x0.detach().clone()
    for _ in range(n_steps):
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(energy_fn(x).sum(), x)
        with torch.no_grad():
            x = x - 0.5 * step_size * g
            if noise_std > 0:
                x = x + noise_std * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            if clamp is not None:
                x = x.clamp(*clamp)
        x = x.detach()
    return x


def reference_sgld_negatives(state, cfg):
    """``methods.sgld_negatives`` before issue #16: parameters keep requiring gradients."""
    from jeat_core.train import training

    s = cfg.sgld
    x0, idx = state.buffer.sample(s.batch_size, generator=state.generator)
    with training.evaluating(state.core) as m:
        xk = reference_langevin(lambda z: marginal_energy(m(z)).float(), x0.to(state.device), step_size=s.step_size,
                                n_steps=s.n_steps, noise_std=s.noise_std, clamp=(0.0, 1.0) if s.clamp else None,
                                generator=state.generator)
    state.buffer.push(xk, idx)
    return xk


def reference_pgd(model, x, y, *, eps, step_size, n_steps, generator=None):
    """L-inf CE PGD as :func:`jeat_core.core.attacks.pgd` was before issue #16 (per-step label checks
    inside the energy functions, out-of-place updates)."""
    x0 = x.detach()
    u = torch.rand(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    delta = ((x0 + (2 * u - 1) * eps).clamp(0, 1) - x0).detach()
    for _ in range(n_steps):
        delta.requires_grad_(True)
        loss = cross_entropy(model(x0 + delta), y).sum()
        (g,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = (delta + step_size * g.sign()).clamp(-eps, eps)
            delta = (x0 + delta).clamp(0, 1) - x0
        delta = delta.detach()
    return (x0 + delta).detach()


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
    p.add_argument("--model", default=None, help="checkpoint for the PGD comparison (default: shipped cifar10-cpu/at)")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions of the PGD comparison (best kept)")
    p.add_argument("--n", type=int, default=500, help="test images for the PGD-20 comparison")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_core.json"))
    p.add_argument("--skip-train", action="store_true")
    a = p.parse_args()

    torch.manual_seed(0)
    from jeat_core.core.checkpoints import CheckpointError, load_model

    model_name = a.model or "cifar10-cpu/at"
    try:
        model, _ = load_model(model_name)
        trained = True
    except CheckpointError:
        model, trained, model_name = build_model("small_cnn").eval(), False, "untrained small_cnn"
        model.requires_grad_(False)
    user_model = model  # as load_model returns it, for the PGD comparison
    model = copy.deepcopy(model).to(memory_format=torch.channels_last)
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
                            "achieved_gflops": f / t / 1e9}

    # ---- PGD-20 vs torchattacks on real test images, the model as load_model returns it
    try:
        import torchattacks

        test = load_split("test")
        xt, yt = test.tensors(a.n)
        m = user_model
        peer = torchattacks.PGD(m, eps=8 / 255, alpha=2 / 255, steps=20, random_start=True)
        kw = dict(eps=8 / 255, step_size=2 / 255, n_steps=20)
        runners = {
            "jeat": lambda xb, yb, g: pgd(m, xb, yb, generator=g, **kw),
            "torchattacks": lambda xb, yb, g: peer(xb, yb),
            "jeat_before_16": lambda xb, yb, g: reference_pgd(m, xb, yb, generator=g, **kw),
        }
        times: dict = {k: [] for k in runners}
        acc: dict = {}
        for r in range(a.reps + 1):  # round 0 warms up and is not timed
            for who, attack in runners.items():
                g = torch.Generator().manual_seed(0)
                t0, correct = time.perf_counter(), 0
                for i in range(0, len(xt), b):
                    xa = attack(xt[i:i + b], yt[i:i + b], g)
                    with torch.no_grad():
                        correct += int((m(xa).argmax(1) == yt[i:i + b]).sum())
                if r:
                    times[who].append(time.perf_counter() - t0)
                acc[who] = correct / len(xt)
        with torch.no_grad():
            clean = float((m(xt).argmax(1) == yt).float().mean())
        best = {k: min(v) for k, v in times.items()}

        # robust accuracy as each library's user computes it: ours through metrics.robust_accuracy
        # (which attacks only the clean-correct images), theirs attack-then-count on every image
        def ours_eval():
            return robust_accuracy(m, xt, yt, attack="pgd20", batch_size=b, seed=0)["robust_acc"]

        def peer_eval():
            robust = 0
            for i in range(0, len(xt), b):
                xb, yb = xt[i:i + b], yt[i:i + b]
                xa = peer(xb, yb)
                with torch.no_grad():
                    robust += int(((m(xb).argmax(1) == yb) & (m(xa).argmax(1) == yb)).sum())
            return robust / len(xt)

        ev_times: dict = {"jeat": [], "torchattacks": []}
        ev_acc: dict = {}
        for r in range(a.reps + 1):
            for who, fn in (("jeat", ours_eval), ("torchattacks", peer_eval)):
                t0 = time.perf_counter()
                ev_acc[who] = fn()
                if r:
                    ev_times[who].append(time.perf_counter() - t0)
        ev_best = {k: min(v) for k, v in ev_times.items()}
        res["robust_accuracy_vs_torchattacks"] = {
            "n": len(xt), "reps": a.reps, "clean_acc": clean, "jeat_robust_acc": ev_acc["jeat"],
            "torchattacks_robust_acc": ev_acc["torchattacks"], "jeat_s": ev_best["jeat"],
            "torchattacks_s": ev_best["torchattacks"], "all_s": ev_times,
            "speed_ratio_jeat_over_peer": ev_best["torchattacks"] / ev_best["jeat"]}
        res["pgd20_vs_torchattacks"] = {
            "n": len(xt), "reps": a.reps, "clean_acc": clean, "jeat_acc": acc["jeat"],
            "torchattacks_acc": acc["torchattacks"], "jeat_before_16_acc": acc["jeat_before_16"],
            "jeat_s": best["jeat"], "torchattacks_s": best["torchattacks"], "jeat_before_16_s": best["jeat_before_16"],
            "all_s": times, "speed_ratio_jeat_over_peer": best["torchattacks"] / best["jeat"],
            "speed_ratio_before_16_over_peer": best["torchattacks"] / best["jeat_before_16"],
            "params_frozen": not any(q.requires_grad for q in m.parameters()), "model_trained": trained}
    except Exception as e:  # no data / no peer library: say so in the output
        res["pgd20_vs_torchattacks"] = {"skipped": f"{type(e).__name__}: {e}"}

    # ---- one training step per method (cpu preset), JEAT cost split
    if not a.skip_train:
        from jeat_core.train import training

        data = procedural(b * 4, seed=0)
        res["train_steps"] = {}
        xb, yb = data.tensors(b)
        xb = xb.contiguous(memory_format=torch.channels_last)
        for method in training.METHODS:
            cfg = replace(training.make_config(method, "cpu"), checkpoint_every=0)
            state = training.build_state(cfg, torch.device("cpu"), 100)
            t = timeit(lambda state=state, cfg=cfg: training.train_step(state, xb, yb, cfg, False), reps=3)
            passes = passes_per_step(cfg) / cfg.optim.batch_size
            res["train_steps"][method] = {"images_per_s": b / t, "step_s": t, "model_flop_passes": passes,
                                          "achieved_gflops": passes * f_img * b / t / 1e9}
        cfg = training.make_config("jeat", "cpu")
        state = training.build_state(cfg, torch.device("cpu"), 100)
        parts = {**jeat_step_parts(state, cfg, xb, yb),
                 "sgld_before_16": lambda: reference_sgld_negatives(state, cfg)}
        best = {k: float("inf") for k in parts}
        for _ in range(a.reps):  # interleaved, best kept
            for k, fn in parts.items():
                best[k] = min(best[k], timeit(fn, reps=1, warmup=1))
        after = {k: best[k] for k in ("attack", "sgld", "update")}
        before = {"attack": best["attack"], "sgld": best["sgld_before_16"], "update": best["update"]}
        res["jeat_cost_split"] = {k: {"s": v, "share": v / sum(after.values())} for k, v in after.items()}
        res["jeat_cost_split_before_16"] = {k: {"s": v, "share": v / sum(before.values())} for k, v in before.items()}
        res["jeat_cost_split"]["sgld_config"] = {"n_steps": cfg.sgld.n_steps, "batch_size": cfg.sgld.batch_size}
        res["sgld_speedup_vs_before_16"] = best["sgld_before_16"] / best["sgld"]

        # is the chain's batch (64) less efficient per image than larger ones? (the SGLD share)
        m = state.core
        res["sgld_batch_efficiency"] = {}
        with training.evaluating(m), training.frozen(m), torch.no_grad():
            f_jeat = flops(lambda: m(torch.rand(1, 3, 32, 32)))  # forward FLOPs per image of this model
        with training.evaluating(m), training.frozen(m):
            for nb in (64, 128, 256):
                z = torch.rand(nb, 3, 32, 32).contiguous(memory_format=torch.channels_last)
                t = timeit(lambda z=z: langevin(lambda u: marginal_energy(m(u)), z, step_size=1.0, n_steps=1,
                                                noise_std=0.01), reps=3)
                res["sgld_batch_efficiency"][nb] = {"images_per_s": nb / t,
                                                    "achieved_gflops": 2 * f_jeat * nb / t / 1e9}

    # ---- the matmul rate again: a process that ran beside the first measurement would make every
    # fraction below too high, so the better of the two is the denominator
    res["matmul_gflops_start"], res["matmul_gflops_end"] = peak, matmul_gflops()
    peak = res["matmul_gflops"] = max(peak, res["matmul_gflops_end"])
    for group in (res["ops"], res.get("train_steps", {}), res.get("sgld_batch_efficiency", {})):
        for v in group.values():
            v["fraction_of_matmul"] = v["achieved_gflops"] / peak

    # ---- report
    print(f"fp32 matmul: {peak:.1f} GFLOP/s (better of {res['matmul_gflops_start']:.1f} at the start and "
          f"{res['matmul_gflops_end']:.1f} at the end; {res['threads']} threads, torch {torch.__version__})")
    print(f"{'operation':<20}{'img/s':>10}{'GFLOP/img':>12}{'GFLOP/s':>10}{'of matmul':>11}")
    for k, v in res["ops"].items():
        print(f"{k:<20}{v['images_per_s']:>10.0f}{v['gflop_per_image']:>12.4f}{v['achieved_gflops']:>10.1f}"
              f"{v['fraction_of_matmul']:>10.1%}")
    c = res["pgd20_vs_torchattacks"]
    if "skipped" in c:
        print("PGD-20 vs torchattacks: skipped:", c["skipped"])
    else:
        print(f"PGD-20 attack call on {c['n']} test images ({model_name}, clean accuracy {c['clean_acc']:.3f}); "
              f"accuracy on the attacked images:")
        print(f"  attacks.pgd {c['jeat_acc']:.3f} in {c['jeat_s']:.1f}s, torchattacks.PGD {c['torchattacks_acc']:.3f} "
              f"in {c['torchattacks_s']:.1f}s: ours {c['speed_ratio_jeat_over_peer']:.2f}x as fast "
              f"(the loop before issue #16: {c['speed_ratio_before_16_over_peer']:.2f}x)")
        e = res["robust_accuracy_vs_torchattacks"]
        print("PGD-20 robust accuracy (correct clean and after the attack) as each library's user computes it:")
        print(f"  metrics.robust_accuracy {e['jeat_robust_acc']:.3f} in {e['jeat_s']:.1f}s, torchattacks "
              f"attack-then-count {e['torchattacks_robust_acc']:.3f} in {e['torchattacks_s']:.1f}s: "
              f"ours {e['speed_ratio_jeat_over_peer']:.2f}x as fast (ours attacks only the clean-correct images)")
    for k, v in res.get("sgld_batch_efficiency", {}).items():
        print(f"SGLD pass (input gradient of E(x), jeat cpu model) at batch {k:>3}: {v['images_per_s']:>5.0f} img/s, "
              f"{v['fraction_of_matmul']:.1%} of matmul")
    for k, v in res.get("train_steps", {}).items():
        print(f"train step {k:<9}{v['images_per_s']:>8.0f} img/s  {v['fraction_of_matmul']:>6.1%} of matmul")
    for k, v in res.get("jeat_cost_split", {}).items():
        if k != "sgld_config":
            b16 = res["jeat_cost_split_before_16"][k]
            print(f"jeat split {k:<7}{v['s']:>7.3f}s  {v['share']:>6.1%}   "
                  f"(before #16: {b16['s']:.3f}s {b16['share']:.1%})")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print("wrote", a.out)


if __name__ == "__main__":
    os.environ.setdefault("JEAT_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"))
    main()

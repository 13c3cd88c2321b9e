"""Reproduction audit: each claim of the paper as a measurement on our models (``jeat audit``).

Every claim yields a dict ``{"id", "claim", "paper", "ours", "metric", "n", "reproduced", "note"}``
where ``reproduced`` is ``"reproduced"``, ``"not reproduced"`` or ``"not measurable here"``.
A claim whose models are not shipped is "not measurable here" with the reason; nothing is
skipped silently.

Generation quality (claims 4-6) is measured two ways:

* **proxy IS / FID** (always): the feature network is the shipped ``standard`` classifier, which
  generates none of the images it scores. Features are its penultimate layer (the input of its
  last linear layer); IS uses its softmax. The reference set for FID is real test images. These
  numbers are comparable *between our models* at the same sample size, not with the paper's
  Inception numbers.
* **IS / FID with Inception-v3** through ``torch-fidelity`` when ``--inception-weights`` names
  an offline copy of its weights (nothing can be downloaded here).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .checkpoints import CheckpointError, load_model
from .data import load_split

VERDICTS = ("reproduced", "not reproduced", "not measurable here")


# ----------------------------------------------------------------------------- metrics
def frechet_distance(f1: Tensor, f2: Tensor) -> float:
    """FID between two feature sets ``(N, D)``: ``‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2 (Σ1^½ Σ2 Σ1^½)^½)``.

    The trace of the matrix square root is computed from the eigenvalues of the symmetric PSD
    matrix ``Σ1^½ Σ2 Σ1^½`` (same spectrum as ``Σ1 Σ2``), in float64, so no scipy is needed."""
    a, b = f1.double(), f2.double()
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = torch.cov(a.T), torch.cov(b.T)
    w, v = torch.linalg.eigh(s1)
    root1 = (v * w.clamp_min(0).sqrt()) @ v.T
    cross = torch.linalg.eigvalsh(root1 @ s2 @ root1).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).pow(2).sum() + s1.trace() + s2.trace() - 2 * cross)


def inception_score(probs: Tensor, splits: int = 1) -> float:
    """IS = ``exp(E_x KL(p(y|x) ‖ p(y)))`` from class probabilities ``(N, K)`` (mean over splits)."""
    scores = []
    for p in probs.double().chunk(splits):
        py = p.mean(0, keepdim=True)
        kl = (p * (p.clamp_min(1e-12).log() - py.clamp_min(1e-12).log())).sum(1).mean()
        scores.append(math.exp(float(kl)))
    return float(np.mean(scores))


@torch.no_grad()
def penultimate(model: nn.Module, x: Tensor, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """``(features, probabilities)``: the input of ``model``'s last ``nn.Linear`` and its softmax."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    feats, probs = [], []
    h = last.register_forward_hook(lambda _m, inp, _out: feats.append(inp[0].detach().flatten(1)))
    try:
        for i in range(0, len(x), batch_size):
            probs.append(model(x[i:i + batch_size]).softmax(1))
    finally:
        h.remove()
    return torch.cat(feats), torch.cat(probs)


# ----------------------------------------------------------------------------- helpers
def _claim(cid: int, claim: str, paper: str, ours, metric: str, n, verdict: str, note: str = "") -> dict:
    assert verdict in VERDICTS, verdict
    return {"id": cid, "claim": claim, "paper": paper, "ours": ours, "metric": metric, "n": n,
            "reproduced": verdict, "note": note}


class _Zoo:
    """Loads shipped models lazily; remembers which are missing."""

    def __init__(self):
        self.cache: dict[str, nn.Module] = {}

    def get(self, *names: str) -> dict[str, nn.Module]:
        out = {}
        for n in names:
            if n not in self.cache:
                self.cache[n] = load_model(f"cifar10-cpu/{n}")[0]
            out[n] = self.cache[n]
        return out


def _ordered(values: list[float], descending: bool = True) -> bool:
    return all((a > b) if descending else (a < b) for a, b in zip(values, values[1:]))


# ----------------------------------------------------------------------------- the audit
def run_audit(*, smoke: bool = False, data_root=None, inception_weights: str | None = None,
              progress: Callable[[str], None] | None = None) -> dict:
    """Evaluate the paper's claims on the shipped models. Returns ``{"claims": [...], ...}``."""
    from .cli import evaluate
    from .figures import contour_data, generate, nearest_by_ssim, read_energy_log, table2_fisher_rows
    from .sampling import ClassGaussian

    say = progress or (lambda _msg: None)
    t0 = time.time()
    test = load_split("test", data_root=data_root)
    n_attack = 64 if smoke else 1000
    n_gen = 20 if smoke else 300  # generated images per set (a multiple of 10: balanced classes)
    gen_steps = 5 if smoke else 60
    n_land = 2 if smoke else 20
    n_fisher = 8 if smoke else 100
    zoo = _Zoo()
    claims: list[dict] = []

    def guarded(cid: int, claim: str, paper: str, metric: str, fn):
        say(f"claim {cid}: {claim}")
        try:
            claims.append(fn())
        except CheckpointError as e:
            claims.append(_claim(cid, claim, paper, None, metric, 0, "not measurable here",
                                 f"model not shipped: {str(e).split(':')[0]}"))

    x, y = test.tensors(max(n_attack, 1000 if not smoke else 64))
    cache: dict = {}

    def class_gaussian():
        if "cg" not in cache:
            train = load_split("train", data_root=data_root)
            cache["train_x"] = train.x
            cache["cg"] = ClassGaussian(train.x, train.y)
        return cache["cg"]

    def gen_set(name: str, energy: str = "joint") -> Tensor:
        key = (name, energy)
        if key not in cache:
            labels = torch.arange(10).repeat(n_gen // 10)
            seeds = class_gaussian().sample(labels, generator=torch.Generator().manual_seed(0))
            cache[key] = (generate(zoo.get(name)[name], labels, seeds, energy=energy, n_steps=gen_steps), labels)
        return cache[key]

    def proxy(images: Tensor, labels: Tensor) -> dict:
        feat_net = zoo.get("standard")["standard"]
        if "ref" not in cache:
            cache["ref"] = penultimate(feat_net, x[:1000])[0]
        f, p = penultimate(feat_net, images)
        return {"proxy_fid": round(frechet_distance(f, cache["ref"]), 3), "proxy_is": round(inception_score(p), 3),
                "p_label": round(float(p[torch.arange(len(labels)), labels].mean()), 4)}

    proxy_metric = (f"proxy FID/IS: penultimate features / softmax of the shipped standard classifier (not a "
                    f"generator here); FID against {min(1000, len(x))} real test images; {n_gen} generated images per "
                    f"set ({n_gen // 10} per class), class-Gaussian seeds, Eq. 17 unless stated, {gen_steps} Langevin "
                    f"steps (η 0.25, s 0.001)")

    # 1. Tab. 1 -------------------------------------------------------------------------------------
    def c1():
        m = zoo.get("standard")["standard"]
        ce = evaluate(m, x[:n_attack], y[:n_attack], attack="pgd20")
        en = evaluate(m, x[:n_attack], y[:n_attack], attack="energy-pgd20")
        ok = abs(ce["robust_acc"] - en["robust_acc"]) <= 0.05 and en["robust_acc"] <= 0.10
        return _claim(1, "Tab. 1: the energy attack (Eq. 18) is as effective as the CE attack (Eq. 14) on a "
                         "normal classifier", "CE 0.12%, energy 0.11% accuracy (WRN-28-10)",
                      {"clean": ce["clean_acc"], "ce_attack": ce["robust_acc"], "energy_attack": en["robust_acc"]},
                      "accuracy under L∞ PGD-20, ε 8/255, step 2/255, random start; reproduced if both attacks "
                      "leave ≤ 10% and differ by ≤ 5 points", n_attack, "reproduced" if ok else "not reproduced")

    guarded(1, "Tab. 1: energy attack as effective as the CE attack", "CE 0.12%, energy 0.11%", "accuracy", c1)

    # 2. Fig. 3 -------------------------------------------------------------------------------------
    def c2():
        from .checkpoints import ENERGY_LOG, resolve

        log = read_energy_log(resolve("cifar10-cpu/at") / ENERGY_LOG)
        log = [r for r in log if r["step"] > 0]

        def share(key, positive=True):
            v = np.array([r[key] for r in log])
            return float(np.mean(v > 0 if positive else v < 0))

        s_dx, s_dth = share("dxE_joint_mean"), share("dthetaE_joint_mean", positive=False)
        s_m = share("dthetaE_marginal_mean")
        mean_m = float(np.mean([r["dthetaE_marginal_mean"] for r in log]))
        mean_j = float(np.mean([r["dthetaE_joint_mean"] for r in log]))
        ok = s_dx >= 0.9 and s_dth >= 0.9 and 0.2 <= s_m <= 0.8
        return _claim(2, "Fig. 3: during AT, Δ_x E(x,y) > 0 and Δ_θ E(x,y) < 0, while Δ_θ E(x) fluctuates around 0",
                      "Δ_x E(x,y) > 0, Δ_θ E(x,y) < 0 throughout; Δ_θ E(x) around 0",
                      {"share_dxE_joint_pos": s_dx, "share_dthetaE_joint_neg": s_dth,
                       "share_dthetaE_marginal_pos": s_m, "mean_dthetaE_joint": mean_j,
                       "mean_dthetaE_marginal": mean_m},
                      "share of logged training steps (batch means, Eq. 15) of the shipped AT run; reproduced if "
                      "≥ 90% have the paper's signs for E(x,y) and 20-80% of Δ_θ E(x) are positive",
                      len(log), "reproduced" if ok else "not reproduced",
                      "" if ok else "the sign pattern of E(x) is not balanced: see the shares")

    guarded(2, "Fig. 3 energy dynamics", "signs", "share of steps", c2)

    # 3. Fig. 2 -------------------------------------------------------------------------------------
    def c3():
        names = ["standard", "at", "prejeat", "jeat"]
        models = zoo.get(*names)
        flat = {n: [] for n in names}
        is_min = {n: 0 for n in names}
        for i in range(n_land):
            d = contour_data(models, x[i], int(y[i]), radius=2.0, resolution=9 if smoke else 21, seed=i)
            for n in names:
                flat[n].append(d[n]["stats"]["flatness"])
                is_min[n] += int(d[n]["stats"]["center_energy"] <= d[n]["stats"]["min_energy"] + 1e-6)
        ours = {n: {"flatness": round(float(np.mean(flat[n])), 4), "x_is_slice_min": f"{is_min[n]}/{n_land}"}
                for n in names}
        ok = all(np.mean(flat[n]) < np.mean(flat["standard"]) for n in names[1:])
        return _claim(3, "Fig. 2: the energy E(x,y) around real data is flatter for AT, PreJEAT and JEAT than for a "
                         "normal classifier", "qualitative contour plots: sharp for Normal, flat for AT/PreJEAT/JEAT",
                      ours, "flatness = mean |E(x+a d1+b d2, y) − E(x, y)| over a 2-D slice of L2 radius 2 through a "
                            "test image (random Gaussian directions, unit L2 norm); mean over images. Reproduced if "
                            "every robust model is flatter than Normal", n_land,
                      "reproduced" if ok else "not reproduced")

    guarded(3, "Fig. 2 flatness", "qualitative", "flatness", c3)

    # 4. Fig. 4 -------------------------------------------------------------------------------------
    def c4():
        e16, lab = gen_set("at", "ce")
        e17, _ = gen_set("at", "joint")
        a, b = proxy(e16, lab), proxy(e17, lab)
        ok = b["proxy_fid"] < a["proxy_fid"]
        return _claim(4, "Fig. 4: on an AT classifier, sampling p(x,y) (Eq. 17) generates better images than "
                         "Eq. 16 (E(x,y) − E(x))", "qualitative: Eq. 17 images are more realistic",
                      {"eq16": a, "eq17": b}, proxy_metric + "; reproduced if Eq. 17 has the lower proxy FID",
                      n_gen, "reproduced" if ok else "not reproduced")

    guarded(4, "Fig. 4 Eq. 17 vs Eq. 16", "qualitative", "proxy FID", c4)

    # 5. Fig. 5 -------------------------------------------------------------------------------------
    def c5():
        names = ["noise-8", "noise-16", "noise-24"]
        zoo.get(*names)
        res = {n: proxy(*gen_set(n)) for n in names}
        ok = _ordered([res[n]["proxy_fid"] for n in names])
        return _claim(5, "Fig. 5: more training noise (σ 8 → 16 → 24 /255) gives better generation",
                      "qualitative: σ = 24/255 best", res, proxy_metric + "; reproduced if proxy FID falls "
                      "strictly with σ", n_gen, "reproduced" if ok else "not reproduced")

    guarded(5, "Fig. 5 noise level", "qualitative", "proxy FID", c5)

    # 6. Fig. 6 / Tab. 2 (IS/FID) --------------------------------------------------------------------
    def c6():
        names = ["at", "prejeat", "jeat"]
        zoo.get(*names)
        res = {n: proxy(*gen_set(n)) for n in names}
        try:
            zoo.get("jem")
            res["jem (context)"] = proxy(*gen_set("jem"))
        except CheckpointError:
            pass
        note = ""
        if inception_weights:
            res["inception"] = {n: _fidelity(gen_set(n)[0], x[:1000], inception_weights) for n in names}
        else:
            note = ("Inception IS/FID not measured: pass --inception-weights PATH (an offline copy of "
                    "torch-fidelity's pt_inception-2015-12-05 weights); nothing can be downloaded here. ")
        ok = _ordered([res[n]["proxy_fid"] for n in names])
        return _claim(6, "Fig. 6 / Tab. 2: generation quality AT < PreJEAT < JEAT",
                      "IS 7.50 / 8.66 / 8.80 and FID 60.90 / 38.40 / 38.24 for AT / JEM / JEAT (Tab. 2); "
                      "PreJEAT between AT and JEAT by eye (Fig. 6)", res,
                      proxy_metric + "; reproduced if proxy FID falls strictly AT → PreJEAT → JEAT", n_gen,
                      "reproduced" if ok else "not reproduced", note)

    guarded(6, "Fig. 6 generation by model", "IS/FID", "proxy FID", c6)

    # 7. Tab. 2 Fisher scores ------------------------------------------------------------------------
    def c7():
        names = ["standard", "at", "jem", "jeat"]
        rows = table2_fisher_rows(zoo.get(*names), x[:n_fisher], y[:n_fisher], n_probes=1 if smoke else 2)
        ours = {n: {"JFS": round(r["JFS"], 4), "MFS": round(r["MFS"], 4)} for n, r in zip(names, rows)}
        ok = _ordered([r["JFS"] for r in rows]) and _ordered([r["MFS"] for r in rows])
        return _claim(7, "Tab. 2: Fisher scores order Normal > AT > JEM > JEAT (JFS and MFS)",
                      "Normal > AT > JEM > JEAT for both", ours,
                      "Eq. 23/24: mean ½‖∇E‖² − tr ∇²E over test images (Hutchinson trace, Rademacher probes); "
                      "reproduced if both orders hold strictly", n_fisher, "reproduced" if ok else "not reproduced")

    guarded(7, "Tab. 2 Fisher", "order", "Fisher score", c7)

    # 8. Tab. 3 robustness + peer cross-check --------------------------------------------------------
    def c8():
        names = ["at", "jem", "jeat"]
        models = zoo.get(*names)
        ours, masked = {}, []
        for n, m in models.items():
            r = evaluate(m, x[:n_attack], y[:n_attack], attack="pgd20")
            ours[n] = {"clean": r["clean_acc"], "pgd20": r["robust_acc"]}
            peer = _peer_attacks(m, x[:n_attack], y[:n_attack], smoke=smoke)
            ours[n].update(peer)
            if peer and min(peer.values()) < r["robust_acc"] - 0.03:
                masked.append(n)
        a, j, e = (ours[n]["pgd20"] for n in names)
        ok = e >= j + 0.10
        note = ("peer attacks (torchattacks PGD-20 and APGD-CE) agree within 3 points"
                if not masked else f"peer attacks find ≥ 3 points lower accuracy for {', '.join(masked)}")
        note += f"; JEAT − AT = {100 * (e - a):+.1f} points of PGD-20 accuracy (AT is not in the paper's Tab. 3)"
        return _claim(8, "Tab. 3: JEAT is far more robust than JEM (PGD-20, ε 8/255)",
                      "clean / PGD-20: JEM 92.90% / 6.11%, JEAT 85.16% / 30.55%", ours,
                      "accuracy under L∞ PGD-20 (ours), torchattacks PGD-20 and APGD-CE (AutoAttack's first "
                      "component), ε 8/255; reproduced if JEAT's PGD-20 accuracy is ≥ 10 points above JEM's",
                      n_attack, "reproduced" if ok else "not reproduced", note)

    guarded(8, "Tab. 3 robustness", "PGD-20", "accuracy", c8)

    # 9. Fig. 7 memorisation --------------------------------------------------------------------------
    def c9():
        g, lab = gen_set("jeat")
        k = 10 if smoke else 50
        class_gaussian()
        train_x = cache["train_x"][:2000] if smoke else cache["train_x"]
        _, s_gen = nearest_by_ssim(g[:k], train_x, k=1)
        _, s_real = nearest_by_ssim(x[1000 - k:1000] if len(x) >= 1000 else x[-k:], train_x, k=1)
        ours = {"generated_best_ssim_mean": round(float(s_gen.mean()), 4),
                "generated_best_ssim_max": round(float(s_gen.max()), 4),
                "test_images_best_ssim_mean": round(float(s_real.mean()), 4)}
        ok = float(s_gen.max()) < 0.9
        return _claim(9, "Fig. 7: generated images are not copies of training images",
                      "nearest training images by SSIM differ visibly", ours,
                      f"SSIM of each of {k} JEAT samples to its most similar image among "
                      f"{len(train_x):,} training images (L2 prefilter of 256, then SSIM), beside the same number "
                      "for real test images; reproduced if no sample reaches SSIM 0.9", k,
                      "reproduced" if ok else "not reproduced")

    guarded(9, "Fig. 7 memorisation", "SSIM", "SSIM", c9)
    return {"claims": claims, "smoke": smoke, "seconds": round(time.time() - t0, 1),
            "feature_network": "cifar10-cpu/standard (penultimate layer)"}


def _peer_attacks(model, x: Tensor, y: Tensor, *, smoke: bool) -> dict:
    """torchattacks' PGD-20 and APGD-CE on the same images (empty when torchattacks is missing)."""
    try:
        import torchattacks
    except ImportError:
        return {}
    out = {}
    for name, atk in [("torchattacks_pgd20", torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=20,
                                                              random_start=True)),
                      ("apgd_ce", torchattacks.APGD(model, eps=8 / 255, steps=5 if smoke else 50, loss="ce",
                                                    n_restarts=1, seed=0))]:
        correct = 0
        for i in range(0, len(x), 250):
            xa = atk(x[i:i + 250], y[i:i + 250])
            with torch.no_grad():
                correct += int((model(xa).argmax(1) == y[i:i + 250]).sum())
        out[name] = correct / len(x)
    return out


def _fidelity(fake: Tensor, real: Tensor, weights: str) -> dict:
    """Inception IS/FID via torch-fidelity with an offline weights file."""
    if not Path(weights).is_file():
        raise FileNotFoundError(f"--inception-weights: no file at {weights}")
    try:
        import torch_fidelity
    except ImportError as e:
        raise ImportError("--inception-weights needs torch-fidelity: pip install 'jeat[fidelity]'") from e

    class _DS(torch.utils.data.Dataset):
        def __init__(self, t):
            self.t = (t.clamp(0, 1) * 255).round().to(torch.uint8)

        def __len__(self):
            return len(self.t)

        def __getitem__(self, i):
            return self.t[i]

    m = torch_fidelity.calculate_metrics(input1=_DS(fake), input2=_DS(real), isc=True, fid=True, cuda=False,
                                         feature_extractor_weights_path=weights, verbose=False)
    return {"IS": m["inception_score_mean"], "FID": m["frechet_inception_distance"]}


# ----------------------------------------------------------------------------- report
def to_markdown(report: dict) -> str:
    import json

    lines = ["# Reproduction audit (`jeat audit`)", "",
             f"{'Smoke run (tiny sizes) — not a result.' if report['smoke'] else 'Full run'} on the shipped "
             f"cpu-preset models (SmallCNN, 0.81 M parameters, 2-core CPU); {report['seconds']:.0f} s. "
             "The paper's numbers are for WideResNet-28-10 on GPUs.", "",
             "| # | claim | verdict | paper | ours | n |", "|---|---|---|---|---|---|"]
    for c in report["claims"]:
        ours = json.dumps(c["ours"], ensure_ascii=False).replace("|", "\\|") if c["ours"] is not None else "—"
        lines.append(f"| {c['id']} | {c['claim']} | **{c['reproduced']}** | {c['paper']} | {ours} | {c['n']} |")
    lines += ["", "## Metrics and notes", ""]
    for c in report["claims"]:
        lines.append(f"{c['id']}. **{c['reproduced']}** — {c['metric']}." + (f" *{c['note']}*" if c["note"] else ""))
    return "\n".join(lines) + "\n"

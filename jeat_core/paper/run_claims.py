"""Claims decided over training runs outside generation: Fig. 2's flatness order (claim 3, parts
3a-3c) and "JEAT improves adversarial robustness" (claim 11, parts 11a PGD-20 and 11b AutoAttack).

Each part is a list of comparisons ``a − b`` in the record layout of the generation parts
(``feature_space``, ``metric``, ``diff``, ``ci``, ``ci_level``, ``training_seeds``, ``interval``,
``runs_a`` / ``runs_b``): a run's value is its mean over the same test images; with two or more runs
on each side the interval is Welch's over the run values (:mod:`jeat_core.measure.stats`), with one run on a
side it is the paired bootstrap over images of the shipped runs and the part is not decided over
runs. Holm's correction acts across a claim's comparisons, as in the generation claims.
"""

from __future__ import annotations

import torch

from jeat_core.core import rng
from jeat_core.core.checkpoints import find_eval
from jeat_core.core.energy import energy_of
from jeat_core.core.landscape import energy_grid, random_directions
from jeat_core.measure import gen_eval, stats
from jeat_core.measure.robustness import is_standard, masks_of, pgd_restarts
from jeat_core.measure.stats import percentile_ci
from jeat_core.measure.verdict_rules import all_or_any, interval_verdicts, over_runs_verdict
from jeat_core.paper.experiments import Context
from jeat_core.paper.paper_items import MODEL_LABELS

DIRECTION = {"a<b": -1, "a>b": 1}


def _comparison(space: str, metric: str, per_run_a: list[torch.Tensor], per_run_b: list[torch.Tensor],
                n_boot: int = 2000, seed: int = 0) -> dict:
    """``mean(a) − mean(b)`` of per-image values ``(n,)`` per run (the same images in every run)."""
    pa = [float(v.double().mean()) for v in per_run_a]
    pb = [float(v.double().mean()) for v in per_run_b]
    diff = sum(pa) / len(pa) - sum(pb) / len(pb)
    rec = {"feature_space": space, "metric": metric, "diff": diff, "n": len(per_run_a[0]),
           "training_seeds": min(len(pa), len(pb)), "runs_a": pa, "runs_b": pb}
    if min(len(pa), len(pb)) >= 2:
        rl = stats.welch(pa, pb)
        return {**rec, "_test": rl, "interval": stats.METHODS["welch"], "df": rl.df}
    d = (per_run_a[0] - per_run_b[0]).double()  # the shipped runs, paired per image
    g = torch.Generator().manual_seed(seed)
    boot = torch.stack([d[rng.randint(0, len(d), (len(d),), generator=g)].mean() for _ in range(n_boot)])
    return {**rec, "_boot": boot, "interval": f"paired bootstrap over images ({stats.ONE_RUN})"}


def _p(c: dict) -> float:
    if "_test" in c:
        return c["_test"].p_value()
    s = c["_boot"]
    return min(1.0, 2 * min(float((s <= 0).double().mean()), float((s >= 0).double().mean())))


def _ci(c: dict, level: float) -> list[float]:
    if "_test" in c:
        return list(c["_test"].ci(level))
    return list(percentile_ci(c["_boot"], level))


def decide(parts: list[dict], alpha: float = 0.05) -> list[dict]:
    """Holm across every comparison of a claim's ``parts`` (``{"name", "a", "b", "paper_direction",
    "comparisons"}``), then each part: reproduced when every comparison is, not reproduced when one is,
    :data:`stats.ONE_RUN` when a comparison has one run on a side, else inconclusive."""
    flat = [c for p in parts for c in p["comparisons"]]
    for c, level in zip(flat, gen_eval.holm_levels([_p(c) for c in flat], alpha)):
        c["ci_level"], c["ci"], c["p"] = level, _ci(c, level), _p(c)
        c.pop("_test", None), c.pop("_boot", None)
    out = []
    for p in parts:
        d = DIRECTION[p["paper_direction"]]
        got = [interval_verdicts(c["ci"], d, c["training_seeds"]) for c in p["comparisons"]]
        over_runs, image = [v for v, _ in got], [v for _, v in got]
        out.append({**p, "verdict": over_runs_verdict(over_runs), "image_level_verdict": all_or_any(image)})
    return out


# ----------------------------------------------------------------------------- claim 3 (Fig. 2)
def flatness_per_image(ctx: Context, name: str, *, n: int, radius: float = 2.0, resolution: int = 15) -> torch.Tensor:
    """Claim 3's flatness per test image: mean ``|Δ log p(y | x′)|`` over a 2-D slice of L2 ``radius``
    through test image i (directions seeded by i, as Fig. 2 and ``experiments.landscape_numbers``)."""
    def make():
        x, y = ctx.test()
        model, _ = ctx.model(name)
        out = []
        for i in range(n):
            d1, d2 = random_directions(x[i].shape, seed=i)
            logp = -energy_grid(energy_of(model, "ce", torch.tensor([int(y[i])])), x[i], d1, d2, radius=radius,
                                resolution=resolution)[2]
            c = resolution // 2
            out.append(float((logp - logp[c, c]).abs().mean()))
        return torch.tensor(out, dtype=torch.float64)
    return ctx.cached(("flatness", name, n, radius, resolution), make)


FLAT_PARTS = (("3a", ("at", "prejeat", "jeat"), "standard"), ("3b", ("prejeat",), "at"), ("3c", ("jeat",), "at"))


def flatness_parts(ctx: Context, *, n: int, resolution: int = 15) -> list[dict]:
    """Parts 3a (AT, PreJEAT and JEAT flatter than Normal), 3b (PreJEAT flatter than AT) and 3c (JEAT
    flatter than AT): flatness a − b over each method's training runs, the paper's direction a < b."""
    def runs(method):
        return [flatness_per_image(ctx, r, n=n, resolution=resolution) for r in ctx.training_runs(method)]

    parts = []
    for name, robust, ref in FLAT_PARTS:
        comps = [{**_comparison("Δ log p(y|x′) slice, L2 radius 2", "flatness", runs(m), runs(ref)),
                  "a": MODEL_LABELS[m], "b": MODEL_LABELS[ref],
                  "run_names": {"a": ctx.training_runs(m), "b": ctx.training_runs(ref)}} for m in robust]
        parts.append({"name": name, "a": ", ".join(MODEL_LABELS[m] for m in robust), "b": MODEL_LABELS[ref],
                      "paper_direction": "a<b", "comparisons": comps})
    return decide(parts)


# ----------------------------------------------------------------------------- claim 11 (robustness)
def pgd20_per_image(ctx: Context, name: str, n: int) -> torch.Tensor:
    """PGD-20 (L∞ 8/255, step 2/255, random start, seed 0) robustness per image on the first ``n`` test
    images: correct clean and attacked (``robust_accuracy``'s rule)."""
    def make():
        x, y = ctx.test()
        return masks_of(pgd_restarts(ctx.model(name)[0], x[:n], y[:n], n_steps=20, restarts=1, seed=0))["restart-1"]
    return ctx.cached(("pgd20-per-image", name, n), make).double()


def autoattack_per_image(ctx: Context, name: str, n: int, *, standard: bool = True) -> torch.Tensor | None:
    """The recorded AutoAttack's final per-image robustness on the first ``n`` images, or ``None`` (no
    record, too few images, or not the standard version when ``standard``)."""
    rec = find_eval(ctx.model(name)[1], "autoattack")
    if rec is None or "per_example" not in rec or rec["n"] < n or (standard and not is_standard(rec)):
        return None
    return list(masks_of(rec).values())[-1][:n].double()


def robustness_parts(ctx: Context, *, n_pgd: int, n_aa: int, standard: bool = True) -> tuple[list[dict], dict]:
    """Parts 11a (PGD-20) and 11b (AutoAttack) of "JEAT is more robust than AT": robust accuracy JEAT −
    AT over each method's runs on the same first images, the paper's direction a > b. AutoAttack is read
    on the first ``n_aa`` images, or fewer when every record is shorter (the smallest record then sets
    it). Runs without an AutoAttack record are named, never silently dropped."""
    runs = {m: ctx.training_runs(m) for m in ("jeat", "at")}
    sizes = [rec["n"] for rs in runs.values() for r in rs if (rec := find_eval(ctx.model(r)[1], "autoattack"))]
    n_aa = min([n_aa, *sizes]) if sizes else n_aa
    missing = [r for rs in runs.values() for r in rs if autoattack_per_image(ctx, r, n_aa, standard=standard) is None]
    pgd = _comparison("PGD-20, L∞ 8/255", "robust accuracy", *[[pgd20_per_image(ctx, r, n_pgd) for r in runs[m]]
                                                                for m in ("jeat", "at")])
    parts = [{"name": "11a", "a": "JEAT", "b": "AT", "paper_direction": "a>b", "comparisons": [pgd]}]
    aa = {m: [v for r in runs[m] if (v := autoattack_per_image(ctx, r, n_aa, standard=standard)) is not None]
          for m in runs}
    if aa["jeat"] and aa["at"]:
        parts.append({"name": "11b", "a": "JEAT", "b": "AT", "paper_direction": "a>b",
                      "comparisons": [_comparison("AutoAttack (standard), L∞ 8/255", "robust accuracy",
                                                  aa["jeat"], aa["at"])]})
    return decide(parts), {"runs": runs, "runs_without_autoattack": missing, "n_autoattack": n_aa}


__all__ = ["decide", "flatness_parts", "flatness_per_image", "robustness_parts",
           "pgd20_per_image", "autoattack_per_image"]

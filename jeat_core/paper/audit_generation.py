"""The audit's generation claims (4-6: Eq. 17 vs Eq. 16, noise levels, JEAT vs AT; and 4-6 as written):
each claim's parts (:data:`GEN_PARTS`) scored as paired KID/FID differences in every verdict feature
space (:mod:`jeat_core.measure.rulers`), Holm across the parts, decided by
:func:`jeat_core.measure.verdict_rules.part_verdict` (``docs/evaluation.md``). :mod:`jeat_core.paper.audit`
lists the claims."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from jeat_core.core.sampling import GenerationConfig
from jeat_core.measure import gen_eval, rulers
from jeat_core.measure.verdict_rules import generation_claim_verdict
from jeat_core.paper.audit_sizes import Settings
from jeat_core.paper.experiments import (
    TEST_SEED,
    Context,
    describe,
    generation_set,
    public,
    sampler_key,
    start_images,
)


def describe_sampler(rec: dict) -> str:
    return describe(GenerationConfig(**rec))


@dataclass(frozen=True)
class Part:
    """One part of a generation claim (``docs/evaluation.md``, *Claims split into parts*): method ``a``
    against ``b``; ``paper_direction`` ``"a<b"`` when the paper says a scores lower (better). With
    ``seeds`` each side is every shipped training run of its method (:meth:`Context.training_runs`); when
    both sides are one method (two samplers of the same runs) the runs are paired (:func:`stats.paired`)."""

    name: str
    a: str
    b: str
    paper_direction: str = "a<b"
    a_energy: str = "joint"
    b_energy: str = "joint"
    seeds: bool = True

    @property
    def run_pairing(self) -> str:
        return "paired" if self.a == self.b else "welch"

    def label(self, side: str) -> str:
        name, energy = (self.a, self.a_energy) if side == "a" else (self.b, self.b_energy)
        return name if (self.a_energy, self.b_energy) == ("joint", "joint") else f"{name} ({ENERGY_LABEL[energy]})"


ENERGY_LABEL = {"joint": "Eq. 17", "ce": "Eq. 16"}
GEN_PARTS: dict[int, tuple[Part, ...]] = {
    4: (Part("4a", "at", "at", a_energy="joint", b_energy="ce"),),
    5: (Part("5a", "noise-16", "noise-8"), Part("5b", "noise-24", "noise-16")),
    6: (Part("6a", "jeat", "at"), Part("6b", "prejeat", "at"), Part("6c", "jeat", "prejeat")),
}


def _set_row(ctx: Context, images: Tensor, labels: Tensor, spaces) -> dict:
    return {s.name: {k: (float(f"{v:.4g}") if isinstance(v, float) else v)
                     for k, v in rulers.set_metrics(ctx, s, images, labels).items() if k not in ("space", "n")}
            for s in spaces}


def near_noiseless(sampler: dict) -> bool:
    """A sampler whose noise is under a tenth of exact Langevin's √η (or the noiseless L2 step): its
    chains are gradient descent from their seeds, not samples of p(x, y) (Eq. 9)."""
    if sampler.get("step") == "l2":
        return sampler.get("noise_std", 0) == 0
    return sampler.get("noise_std", 0) < 0.1 * sampler.get("step_size", 0) ** 0.5


GRADIENT_DESCENT = "gradient descent from class-Gaussian seeds"


def _generation_parts(ctx: Context, st: Settings, parts: tuple[Part, ...], family: str = "tuned") -> dict:
    """Claim parts scored by the protocol of ``docs/evaluation.md``: paired KID and FID differences in
    every verdict space (primary first), Holm across the parts, the rule of :func:`verdict_rules.part_verdict`;
    per-set metrics in every space (the diagnostic rulers too) beside the seed and real baselines, and
    each part's KID difference in every diagnostic ruler (``diagnostic_kid``, never in the verdict).
    ``family``: the samplers generating (each run's tuned one, or its tuned one of Eq. 9 as written).
    A part whose every sampler is near-noiseless says so (``sampler_kind``)."""
    spaces = rulers.available(ctx)
    diagnostic = rulers.available(ctx, ("diagnostic",))
    seeds, labels = ctx.seeds(st.per_class, TEST_SEED)
    gen = {}

    def images(run: str, energy: str) -> Tensor:
        if (run, energy) not in gen:
            gen[run, energy] = _gen(ctx, st, run, energy, family)
        return gen[run, energy]["images"]

    built, diagnostic_kid = [], {}
    for p in parts:
        runs_a = ctx.training_runs(p.a) if p.seeds else [p.a]
        runs_b = ctx.training_runs(p.b) if p.seeds else [p.b]
        xa, xb = [images(r, p.a_energy) for r in runs_a], [images(r, p.b_energy) for r in runs_b]
        built.append({"name": p.name, "a": p.label("a"), "b": p.label("b"), "paper_direction": p.paper_direction,
                      "comparisons": rulers.compare(ctx, xa, xb, spaces=spaces, n_boot_kid=st.kid_boot,
                                                    n_boot_fid=st.fid_boot, run_pairing=p.run_pairing),
                      "runs": {"a": runs_a, "b": runs_b}})
        diagnostic_kid[p.name] = [c.record() for c in rulers.compare(ctx, xa, xb, spaces=diagnostic,
                                                                     n_boot_kid=st.kid_boot, fid=False)]
    records = gen_eval.claim_parts(built)
    for rec, b, p in zip(records, built, parts):
        rec["runs"] = b["runs"]
        rec["comparisons"] = [public(c) for c in rec["comparisons"]]
        used = [gen[r, e]["sampler"] for side, e in (("a", p.a_energy), ("b", p.b_energy)) for r in b["runs"][side]]
        rec["sampler_kind"] = GRADIENT_DESCENT if all(near_noiseless(u) for u in used) else "Langevin"
    x, y = ctx.test()
    n = 10 * st.per_class
    sets = {"real test images [0, n)": _set_row(ctx, x[:n], y[:n], spaces + diagnostic),
            "class-Gaussian seeds": _set_row(ctx, seeds, labels, spaces + diagnostic)}
    for (run, energy), g in gen.items():
        sets[f"{run} ({ENERGY_LABEL[energy]})"] = {"sampler": describe_sampler(g["sampler"]),
                                                   "l2_moved": float(f"{g['l2_moved']:.4g}"),
                                                   **_set_row(ctx, g["images"], labels, spaces + diagnostic)}
    ours = {"sets": sets, "diagnostic_kid": diagnostic_kid, "spaces": [s.name for s in spaces],
            "diagnostic_spaces": [s.name for s in diagnostic], "missing_spaces": rulers.missing(ctx)}
    note = "; ".join(f"{r['name']} {r['a']} vs {r['b']}: {r['verdict']}" for r in records)
    if ours["missing_spaces"]:
        note += f"; feature spaces not available (evaluator not shipped): {', '.join(ours['missing_spaces'])}"
    return {"ours": ours, "n": n, "verdict": generation_claim_verdict([r["verdict"] for r in records]),
            "parts": records, "note": note,
            "images": {f"{r} ({ENERGY_LABEL[e]})": g["images"] for (r, e), g in gen.items()}}


def _gen(ctx: Context, st: Settings, name: str, energy: str = "joint", family: str = "tuned") -> dict:
    return generation_set(ctx, name, energy, per_class=st.per_class, max_steps=st.max_gen_steps, family=family)


def _as_written(ctx: Context, st: Settings, claim: int) -> dict:
    """Claim ``claim``'s parts again with every run's sampler of Eq. 9 as written (Langevin, noise √η,
    tuned as its own family: ``jeat tune-samplers --family as-written``), reported beside the verdicts,
    not in the tally; the runs without that sampler are named and the parts not scored."""
    need = {(r, e) for p in GEN_PARTS[claim] for name, e in ((p.a, p.a_energy), (p.b, p.b_energy))
            for r in ctx.training_runs(name)}
    missing = sorted(f"{r} ({ENERGY_LABEL[e]})" for r, e in need
                     if sampler_key(e, "as-written") not in ctx.model(r)[1].get("sampler", {}))
    if missing:
        return {"not measured": "no sampler as written tuned for " + ", ".join(missing)
                + " (`jeat tune-samplers --family as-written`)"}
    res = _generation_parts(ctx, st, GEN_PARTS[claim], family="as-written")
    return {p["name"]: {"verdict": p["verdict"], "image_level_verdict": p["image_level_verdict"],
                        "primary": {k: p["comparisons"][0][k] for k in ("feature_space", "diff", "ci", "ci_level",
                                                                         "interval")},
                        "sampler_kind": p["sampler_kind"]} for p in res["parts"]}


UNIFORM = "U(0, 1) noise"  # the sets row of Algorithm 1's "random sample" starts


def _uniform_rows(ctx: Context, st: Settings, models: tuple[str, ...]) -> dict:
    """Sets rows of generation from U(0, 1) noise (Algorithm 1's "random sample"), beside the class-Gaussian
    seeds: the noise itself, and each of ``models`` (their shipped runs) with its tuned sampler from it."""
    spaces = rulers.available(ctx) + rulers.available(ctx, ("diagnostic",))
    starts, labels = start_images(ctx, st.per_class, "uniform")
    rows = {UNIFORM: _set_row(ctx, starts, labels, spaces)}
    for name in models:
        g = generation_set(ctx, name, per_class=st.per_class, max_steps=st.max_gen_steps, start="uniform")
        rows[f"{name} ({ENERGY_LABEL['joint']}) from {UNIFORM}"] = {
            "sampler": describe_sampler(g["sampler"]), "l2_moved": float(f"{g['l2_moved']:.4g}"),
            **_set_row(ctx, g["images"], labels, spaces)}
    return rows


def _generation(ctx: Context, st: Settings, models: tuple[str, ...], *, claim: int) -> dict:
    """Claim ``claim`` (4, 5 or 6) scored in its parts (:data:`GEN_PARTS`); claim 6's sets also hold its
    models' generation from U(0, 1) noise (:func:`_uniform_rows`, beside the verdicts, not in them) and
    Inception IS/FID when ``--inception-weights`` names the weights."""
    res = _generation_parts(ctx, st, GEN_PARTS[claim])
    res["ours"]["sampler_as_written"] = _as_written(ctx, st, claim)
    images = res.pop("images")
    if claim != 6:
        return res
    res["ours"]["sets"].update(_uniform_rows(ctx, st, models))
    if st.inception_weights:
        x, _ = ctx.test()
        res["ours"]["inception"] = {n: _fidelity(im, x[:1000], st.inception_weights) for n, im in images.items()}
    else:
        res["note"] += ("; Inception IS/FID not measured: pass --inception-weights PATH (an offline copy of "
                        "torch-fidelity's pt_inception-2015-12-05 weights); nothing can be downloaded here")
    return res


def _fidelity(fake: Tensor, real: Tensor, weights: str) -> dict:
    """Inception IS/FID via torch-fidelity with an offline weights file."""
    if not Path(weights).is_file():
        raise FileNotFoundError(f"--inception-weights: no file at {weights}")
    try:
        import torch_fidelity  # optional (the fidelity extra)
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

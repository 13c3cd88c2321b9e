"""``jeat lens``: your own CIFAR-10 classifier under the energy lens, beside the shipped models (presenter).

:func:`report` runs the stages of :mod:`jeat_core.explore.lens_stages` (the energy view, Eq. 12-13; the CE
vs energy attack, Tab. 1 with Eq. 14 and Eq. 18; the energy landscape and claim 3's flatness, Fig. 2;
Fisher scores, Tab. 2 with Eq. 23/24; Eq. 16 vs Eq. 17 generation, Fig. 4; PGD-20 and AutoAttack,
Tab. 3) on a user's model and on the zoo with the same images and seeds, and writes a report folder:

* ``report.json`` — every stage's numbers (per-image values included), the sizes, keys and times;
* ``report.md`` and ``report.html`` (self-contained: the figures are inlined) — where the model stands:
  each number with its n and 95% interval, and the user's model minus each zoo model, paired;
* ``energy.png``, ``attacks.png``, ``landscape.png``, ``generation.png``, ``autoattack.png``;
* ``cache/`` — each stage's record, keyed by the weights and settings (resuming, never mixing models).

The command line (``jeat lens``) and the Python API (``report(model, out=...)``) do the same.
"""

from __future__ import annotations

import base64
import html
import json
import re
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jeat_core.core.checkpoints import RunLock, atomic_write_bytes
from jeat_core.core.user_model import UserModel, device_of, evaluating, from_module
from jeat_core.explore.figures import MODEL_LABELS, plot_contours, plot_image_rows
from jeat_core.explore.lens_stages import (
    ENERGIES,
    FISHER_KEYS,
    STAGES,
    ZOO,
    Lens,
    LensSizes,
    chosen_stages,
    load_images,
    run_stage,
    sizes_for,
)
from jeat_core.explore.plotting import MODEL_COLOURS, figure_png, subplots
from jeat_core.measure.rulers import REFERENCE

REPORT_FILES = ("report.json", "report.md", "report.html")
FIGURE_FILES = {"energy": "energy.png", "attacks": "attacks.png", "landscape": "landscape.png",
                "generation": "generation.png", "autoattack": "autoattack.png"}


def report(model: nn.Module | UserModel, out: str | Path = "lens-report", *, sizes: str | LensSizes = "quick",
           stages: list[str] | None = None, name: str | None = None, normalize: str | tuple | None = None,
           autoattack: bool | None = None, device=None, data_root=None, progress: bool = False,
           say=lambda msg: None) -> dict:
    """Measure ``model`` beside the zoo and write the report folder ``out`` (module docstring).

    Args:
        model: an ``nn.Module`` taking [0, 1] images (or normalised ones, with ``normalize``) and returning
            ``(N, 10)`` logits, left as it came (modes and ``requires_grad`` restored); or a
            :class:`~jeat_core.core.user_model.UserModel` from :func:`jeat_core.core.user_model.load`.
        sizes: ``"smoke"``, ``"quick"`` (a WideResNet-28-10 on 2 CPU cores in under 15 minutes) or
            ``"full"`` (the audit's sizes, for a GPU), or a :class:`~jeat_core.explore.lens_stages.LensSizes`.
        stages: names of :data:`~jeat_core.explore.lens_stages.STAGES` (default: all; ``autoattack`` only when
            the sizes or ``autoattack`` ask for it).
        device: where the models run (default: where ``model`` is); the zoo is moved there, the data and
            seeds stay on the CPU (:class:`~jeat_core.explore.lens_stages.OnDevice`).
        progress: a tqdm bar per stage; ``say(msg)`` receives one line per stage.
    Returns:
        The report (what ``report.json`` holds).
    """
    user = model if isinstance(model, UserModel) else from_module(model, name=name, normalize=normalize,
                                                                  data_root=data_root)
    st = sizes if isinstance(sizes, LensSizes) else sizes_for(sizes, autoattack=autoattack)
    chosen = chosen_stages(stages, st)
    out = Path(out)
    with RunLock(out), evaluating(user.model):
        lens = Lens(user, out, st, data_root=data_root, device=device_of(user.model) if device is None else device)
        t0, results = time.time(), {}
        for s in chosen:
            say(f"{s}: {dict(st.table())[s]}")
            results[s] = run_stage(lens, STAGES[s], progress=progress)
            say(f"{s}: {'cached' if results[s]['cached'] else 'measured'} ({results[s]['seconds']} s)")
        rep = {"model": {"name": user.name, "source": user.source, "weights_sha256": user.weights_sha256,
                         "parameters": sum(p.numel() for p in user.model.parameters())},
               "zoo": {"preset": lens.ctx.preset, "models": list(lens.zoo), "weights_sha256": lens.zoo_sha},
               "sizes": {"name": st.name, "table": st.table()}, "device": lens.device.type,
               "date": time.strftime("%Y-%m-%d %H:%M"), "wall_seconds": round(time.time() - t0, 1),
               "stages": {s: {"title": STAGES[s].title, "paper": STAGES[s].paper, "key": r["key"],
                              "seconds": r["seconds"], "cached": r["cached"], **r["result"]}
                          for s, r in results.items()}}
        write(rep, out, lens)
    return rep


def write(rep: dict, out: Path, lens: Lens) -> None:
    """``report.json``, the figures, ``report.md`` and the self-contained ``report.html`` in ``out``;
    figures of stages this report does not hold are removed (no stale picture of another model)."""
    figures = plots(rep, lens)
    for stage, file in FIGURE_FILES.items():
        if stage in figures:
            atomic_write_bytes(out / file, figures[stage])
        else:
            (out / file).unlink(missing_ok=True)
    blocks = sections(rep)
    atomic_write_bytes(out / "report.json", (json.dumps(rep, indent=1, ensure_ascii=False) + "\n").encode())
    atomic_write_bytes(out / "report.md", to_markdown(blocks).encode())
    page = to_html(blocks, figures, title=f"jeat lens: {rep['model']['name']}")
    atomic_write_bytes(out / "report.html", page.encode())


# ----------------------------------------------------------------------------- formatting
def ordered(per: dict, order: list[str]) -> list[tuple[str, dict]]:
    """``per``'s entries in the report's order (the user's model first, then the zoo's order)."""
    return [(m, per[m]) for m in order if m in per]


def label(name: str) -> str:
    return MODEL_LABELS.get(name, name)


def pct(r: dict) -> str:
    return f"{100 * r['mean']:.1f}% [{100 * r['ci'][0]:.1f}, {100 * r['ci'][1]:.1f}]"


def val(r: dict, scale: float = 1.0) -> str:
    return f"{scale * r['mean']:.3g} [{scale * r['ci'][0]:.3g}, {scale * r['ci'][1]:.3g}]"


def diff(r: dict | None, scale: float = 1.0, unit: str = "") -> str:
    """A paired difference with its interval and a sign: ▲ above 0, ▼ below, ≈ the interval holds 0."""
    if not r:
        return "—"
    lo, hi = r["ci"]
    mark = "▲" if lo > 0 else "▼" if hi < 0 else "≈"
    return f"{mark} {scale * r['diff']:+.3g}{unit} [{scale * lo:+.3g}, {scale * hi:+.3g}]"


# ----------------------------------------------------------------------------- sections
def sections(rep: dict) -> list[tuple]:
    """The report as blocks: ``("h", level, text)``, ``("p", text)``, ``("table", header, rows)``,
    ``("img", stage)`` (the stage's figure)."""
    u, st = rep["model"]["name"], rep["stages"]
    src = ", ".join(f"{k} {v}" for k, v in rep["model"]["source"].items() if v is not None)
    blocks = [("h", 1, f"jeat lens: {u} beside the shipped models"),
              ("p", f"Model: {src} ({rep['model']['parameters']:,} parameters; weights sha256 "
                    f"`{rep['model']['weights_sha256'][:16]}`). Beside it the zoo ({rep['zoo']['preset']}: "
                    f"{', '.join(label(m) for m in rep['zoo']['models'])}; SmallCNNs of 0.81 M parameters trained on "
                    f"a CPU), every number measured here on the same test images, seeds and noise. Sizes: "
                    f"**{rep['sizes']['name']}**, device {rep['device']}, {rep['date']}. Intervals are 95%: Wilson "
                    f"for accuracies, percentile bootstrap over images for means and for paired differences "
                    f"({u} − zoo model on the same images), over seed indices for KID. In a difference ▲/▼ mark an "
                    f"interval above/below 0, ≈ one that holds 0."),
              ("table", ["stage", "what was measured", "seconds", "from the cache"],
               [[s, dict(map(tuple, rep["sizes"]["table"]))[s], r["seconds"], "yes" if r["cached"] else "no"]
                for s, r in st.items()])]
    blocks += standing(rep)
    order = [u, *rep["zoo"]["models"]]
    for name, fn in (("energy", _energy), ("attacks", _attacks), ("landscape", _landscape), ("fisher", _fisher),
                     ("generation", _generation), ("autoattack", _autoattack)):
        if name in st:
            blocks += [("h", 2, f"{st[name]['title']} — {st[name]['paper']}"), *fn(u, st[name], order)]
    return blocks


def standing(rep: dict) -> list[tuple]:
    """Where the model stands: one row per headline number, the user's value and its paired difference
    from each zoo model."""
    u, st, zoo = rep["model"]["name"], rep["stages"], rep["zoo"]["models"]
    rows = []

    def row(what, mine, vs, scale=1.0, unit=""):
        rows.append([what, mine, *(diff(vs.get(m), scale, unit) for m in zoo)])

    if "energy" in st:
        row("clean accuracy", pct(st["energy"]["per_model"][u]["clean"]), st["energy"]["clean_vs_zoo"], 100, " pts")
    if "attacks" in st:
        a = st["attacks"]
        row("PGD-20 robust accuracy (Tab. 3)", pct(a["per_model"][u]["ce_robust"]), a["pgd20_vs_zoo"], 100, " pts")
        row("energy-attack robust accuracy (Tab. 1)", pct(a["per_model"][u]["energy_robust"]), a["energy_vs_zoo"],
            100, " pts")
    if "landscape" in st:
        ls = st["landscape"]
        row("flatness mean |Δ log p| (claim 3; lower is flatter)", val(ls["per_model"][u]["flatness"]),
            ls["flatness_vs_zoo"])
    if "fisher" in st:
        f = st["fisher"]
        row("JFS, piecewise-linear (Tab. 2)", val(f["per_model"][u]["JFS_pl"]),
            {m: f["vs_zoo"][m]["JFS_pl"] for m in zoo})
    if "generation" in st:
        g = st["generation"]
        row(f"KID of Eq. 17 samples ({g['space']}; lower is better)",
            f"{g['sets'][f'{u}|joint']['metrics']['kid']:.3g}", {m: g["vs_zoo"][m]["joint"] for m in zoo})
    if "autoattack" in st:
        aa = st["autoattack"]
        row("AutoAttack robust accuracy", pct(aa["per_model"][u]["robust"]), aa["vs_zoo"], 100, " pts")
    if not rows:
        return []
    return [("h", 2, "Where it stands"),
            ("p", f"Each row: the value of {u}, then {u} − each zoo model on the same images or seeds (paired; n "
                  f"in the sections below)."),
            ("table", ["quantity", u, *(f"{u} − {label(m)}" for m in zoo)], rows)]


def _energy(u: str, s: dict, order: list[str]) -> list[tuple]:
    rows = [[label(m), pct(r["clean"]), val(r["joint_mean"]), val(r["marginal_mean"]),
             diff(s["clean_vs_zoo"].get(m), 100, " pts")] for m, r in ordered(s["per_model"], order)]
    return [("p", f"Joint energy E(x, y) = −f(x)[y] and marginal energy E(x) = −logsumexp f(x) (Eq. 12) on the first "
                  f"{s['n']} test images; the cross-entropy is E(x, y) − E(x) (Eq. 13). Raw energies of different "
                  f"models are not comparable in scale (a model's logit scale sets them); their histograms show the "
                  f"shape."),
            ("table", ["model", f"clean accuracy (n = {s['n']})", "mean E(x, y)", "mean E(x)", f"{u} − model, clean"],
             rows), ("img", "energy")]


def _attacks(u: str, s: dict, order: list[str]) -> list[tuple]:
    rows = []
    for m, r in ordered(s["per_model"], order):
        rec = r.get("recorded", {})
        recorded = "; ".join(f"{a} {100 * e['robust_acc']:.1f}% (n = {e['n']:,})" for a, e in rec.items()) or "—"
        rows.append([label(m), pct(r["clean"]), pct(r["ce_robust"]), pct(r["energy_robust"]),
                     diff(r["energy_minus_ce"], 100, " pts"), diff(s["pgd20_vs_zoo"].get(m), 100, " pts"), recorded])
    return [("p", f"L∞ PGD-20, ε = {255 * s['eps']:g}/255, step {255 * s['step_size']:g}/255, one random start, on "
                  f"the first {s['n']} test images: the "
                  f"CE attack ascends E(x, y) − E(x) (Eq. 14), the energy attack E(x, y) alone (Eq. 18). An image "
                  f"counts as robust only when classified correctly clean and attacked. The paper (Tab. 1) finds both "
                  f"attacks equally effective on a normal classifier. {s['recorded_note']}."),
            ("table", ["model", "clean", "PGD-20 CE (Eq. 14)", "PGD-20 energy (Eq. 18)", "energy − CE (paired)",
                       f"{u} − model, PGD-20 CE", "recorded"], rows), ("img", "attacks")]


def _landscape(u: str, s: dict, order: list[str]) -> list[tuple]:
    rows = [[label(m), val(r["flatness"]), val(r["rank_of_x"]), r["x_is_min"],
             diff(s["flatness_vs_zoo"].get(m))] for m, r in ordered(s["per_model"], order)]
    return [("p", f"Claim 3 (Fig. 2): the energy around real data is flatter for robust classifiers. Flatness is the "
                  f"mean |log p(y | x′) − log p(y | x)| over a {s['resolution']} × {s['resolution']} slice of L2 "
                  f"radius {s['radius']:g} through test image i along two random directions of seed i (the audit's "
                  f"quantity; log-probabilities remove the logit-scale confound of raw energies), n = {s['n']} "
                  f"images; rank of x: the share of its slice with lower energy (0: x is the minimum). The figure "
                  f"shows test image {s['slice']['image']}'s slice for every model, each on its own colour scale."),
            ("table", ["model", "flatness (lower = flatter)", "rank of x", "x is the slice minimum",
                       f"{u} − model, flatness"], rows), ("img", "landscape")]


def _fisher(u: str, s: dict, order: list[str]) -> list[tuple]:
    rows = [[label(m), *(val(r[k]) for k in FISHER_KEYS), diff(s["vs_zoo"].get(m, {}).get("JFS_pl")),
             diff(s["vs_zoo"].get(m, {}).get("MFS_pl"))] for m, r in ordered(s["per_model"], order)]
    return [("p", f"Fisher scores ½‖∇E‖² − tr ∇²E of E(x, y) (JFS, Eq. 23) and E(x) (MFS, Eq. 24), lower is better, "
                  f"on the first {s['n']} test images: in the piecewise-linear convention ∇²f ≡ 0 (_pl, the one the "
                  f"paper's numbers follow) and as written with a Hutchinson trace ({s['n_probes']} probe(s); for ReLU "
                  f"networks the two agree). Intervals: mean ± 1.96 SE; differences: paired bootstrap."),
            ("table", ["model", "JFS_pl", "MFS_pl", "JFS (Eq. 23)", "MFS (Eq. 24)", f"{u} − model, JFS_pl",
                       f"{u} − model, MFS_pl"], rows)]


def _sampler(r: dict) -> str:
    return (f"{'Langevin η' if r['step'] == 'langevin' else 'L2 step'} {r['step_size']:g}, K {r['n_steps']}, "
            f"s {r['noise_std']:g}")


def _fid(g: dict) -> str:
    return "—" if g.get("fid") is None else f"{g['fid']:.3g}"


def _generation(u: str, s: dict, order: list[str]) -> list[tuple]:
    rows = []
    for m, energy in ((m, e) for m in order for e in ("ce", "joint") if f"{m}|{e}" in s["sets"]):
        r = s["sets"][f"{m}|{energy}"]
        g = r["metrics"]
        vs = s["vs_zoo"].get(m, {}).get(energy)
        rows.append([label(m), ENERGIES[energy], _sampler(r["sampler"]), f"{g['kid']:.3g}", _fid(g),
                     pct({"mean": g["eval_acc"], "ci": g["eval_acc_ci"]}), f"{g['l2_moved']:.2f}",
                     diff(s["eq17_minus_eq16"][m]) if energy == "joint" else "", diff(vs)])
    for key, g in s["baselines"].items():
        rows.append([key, "", "", f"{g['kid']:.3g}", _fid(g), pct({"mean": g["eval_acc"], "ci": g["eval_acc_ci"]}),
                     "", "", ""])
    return [("p", f"Langevin generation from class-Gaussian seeds with U = E(x, y) − E(x) (Eq. 16) or U = E(x, y) "
                  f"(Eq. 17). Each (model, energy) gets its own sampler, chosen by the frozen protocol "
                  f"(docs/evaluation.md: lowest primary-ruler KID on validation seeds) over this run's grid, then "
                  f"generates from the same {s['n']} fresh seeds with the same noise as every other set. Scored in "
                  f"{s['space']} against real test images [{REFERENCE[0]}, {REFERENCE[1]}): KID (unbiased), the "
                  f"evaluator's accuracy on the intended class (Wilson), the L2 distance moved; FID only with more "
                  f"images than the evaluator's feature dimensions; paired KID differences over seed indices. The "
                  f"paper (Fig. 4) expects Eq. 17 to generate better images than Eq. 16 (a negative Eq. 17 − Eq. 16)."),
            ("table", ["model", "energy", "sampler (tuned)", "KID", "FID", "evaluator accuracy", "L2 moved",
                       "KID Eq. 17 − Eq. 16", f"KID {u} − model"], rows), ("img", "generation")]


def _autoattack(u: str, s: dict, order: list[str]) -> list[tuple]:
    rows = [[label(m), pct(r["robust"]) if "robust" in r else "—", r["source"], diff(s["vs_zoo"].get(m), 100, " pts")]
            for m, r in ordered(s["per_model"], order)]
    stages = s["per_model"][u]["stages"]
    return [("p", f"Standard L∞ AutoAttack (ε = {255 * s['eps']:g}/255; APGD-CE, APGD-T, FAB-T with "
                  f"{s['settings']['steps']} iterations, Square with {s['settings']['n_queries']:,} queries, each on "
                  f"the images still robust) on the first {s['n']} test images. {u} after each stage: "
                  + ", ".join(f"{k} {100 * v:.1f}%" for k, v in stages.items()) + ". A robust accuracy far below "
                  "PGD-20's is a sign of gradient masking (claim 10)."),
            ("table", ["model", "AutoAttack robust accuracy", "source", f"{u} − model (paired)"], rows),
            ("img", "autoattack")]


# ----------------------------------------------------------------------------- figures
def colour(name: str) -> str:
    return MODEL_COLOURS.get(name, "#000000")


def plots(rep: dict, lens: Lens) -> dict[str, bytes]:
    """PNG bytes of each stage's figure, by stage."""
    st, out, order = rep["stages"], {}, lens.names
    if "energy" in st:
        fig, axes = subplots(1, 2, figsize=(9, 3.2), layout="constrained")
        per = ordered(st["energy"]["per_model"], order)
        for ax, k, t in zip(axes, ("joint", "marginal"), ("E(x, y) = −f(x)[y]", "E(x) = −logsumexp f(x)")):
            bins = np.histogram_bin_edges(np.concatenate([r[k] for _, r in per]), bins=40)  # one set for all
            for m, r in per:
                ax.hist(r[k], bins=bins, histtype="step", color=colour(m), label=label(m),
                        lw=2 if m == lens.user.name else 1.2)
            ax.set_title(f"{t}, n = {st['energy']['n']} test images")
            ax.set_xlabel("energy (lower = more probable)")
        axes[0].legend(fontsize=8)
        out["energy"] = figure_png(fig)
    if "attacks" in st:
        bars = [("clean", "clean"), ("ce_robust", "PGD-20 CE (Eq. 14)"), ("energy_robust", "PGD-20 energy (Eq. 18)")]
        out["attacks"] = _bars(dict(ordered(st["attacks"]["per_model"], order)), bars,
                               f"accuracy, n = {st['attacks']['n']} (95% Wilson intervals)")
    if "landscape" in st:
        views = {m: {k: torch.tensor(v) if k in ("a", "b", "grid", "dlogp") else v for k, v in d.items()}
                 for m, d in ordered(st["landscape"]["slice"]["views"], order)}
        out["landscape"] = figure_png(plot_contours(views, title=f"Δ log p(y | x′) around test image "
                                                                 f"{st['landscape']['slice']['image']} (Fig. 2)"))
    if "generation" in st:
        out["generation"] = _generation_figure(rep, lens)
    if "autoattack" in st:
        per = {m: r for m, r in ordered(st["autoattack"]["per_model"], order) if "robust" in r}
        out["autoattack"] = _bars(per, [("robust", "AutoAttack")], f"n = {st['autoattack']['n']}")
    return out


def _bars(per: dict, fields: list[tuple[str, str]], title: str) -> bytes:
    """Grouped bars (a colour per model, one shade per field) with their 95% intervals."""
    from matplotlib.patches import Patch  # matplotlib: heavy, loaded only to draw

    fig, ax = subplots(1, 1, figsize=(1.6 + 1.3 * len(per), 3.0), layout="constrained")
    width = 0.8 / len(fields)
    for j, (k, _) in enumerate(fields):
        for i, (m, r) in enumerate(per.items()):
            v, (lo, hi) = 100 * r[k]["mean"], r[k]["ci"]
            ax.bar(i + j * width, v, width, color=colour(m), alpha=1.0 - 0.3 * j, edgecolor="black",
                   yerr=[[max(0.0, v - 100 * lo)], [max(0.0, 100 * hi - v)]], capsize=2)
    ax.set_xticks([i + width * (len(fields) - 1) / 2 for i in range(len(per))], [label(m) for m in per])
    ax.set_ylabel("%")
    ax.set_title(title)
    if len(fields) > 1:  # the shades, left to right in each group
        ax.legend(handles=[Patch(facecolor="#777777", alpha=1.0 - 0.3 * j, edgecolor="black", label=name)
                           for j, (_, name) in enumerate(fields)], fontsize=7)
    return figure_png(fig)


def _generation_figure(rep: dict, lens: Lens) -> bytes:
    g, u = rep["stages"]["generation"], lens.user.name
    seeds = load_images(lens.cache / "generation" / "seeds.safetensors")
    k = min(10, len(seeds))  # one image of each class
    rows = {"class-Gaussian seeds (start)": seeds[:k]}
    for m in lens.names:
        for energy in (("ce", "joint") if m == u else ("joint",)):
            rows[f"{label(m)}, {ENERGIES[energy]} ({_sampler(g['sets'][f'{m}|{energy}']['sampler'])})"] = \
                load_images(lens.cache / "generation" / f"{m}-{energy}.safetensors")[:k]
    return figure_png(plot_image_rows(rows, nrow=k, title="the same seeds and noise for every row"))


# ----------------------------------------------------------------------------- Markdown and HTML
def to_markdown(blocks: list[tuple]) -> str:
    lines = []
    for b in blocks:
        if b[0] == "h":
            lines += ["#" * b[1] + " " + b[2], ""]
        elif b[0] == "p":
            lines += [b[1], ""]
        elif b[0] == "table":
            lines += ["| " + " | ".join(map(str, b[1])) + " |", "|" + "---|" * len(b[1])]
            lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in b[2]] + [""]
        elif b[0] == "img":
            lines += [f"![{b[1]}]({FIGURE_FILES[b[1]]})", ""]
    return "\n".join(lines)


def _inline(text: str) -> str:
    t = html.escape(str(text))
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)


STYLE = ("body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;margin:1em 0;font-size:90%}td,th{border:1px solid #ccc;padding:.3em .5em;"
         "text-align:left;vertical-align:top}th{background:#f3f3f3}img{max-width:100%}code{background:#f3f3f3}")


def to_html(blocks: list[tuple], figures: dict[str, bytes], *, title: str) -> str:
    """One page with everything inlined (the figures as data URIs): it opens in a browser from anywhere."""
    body = []
    for b in blocks:
        if b[0] == "h":
            body.append(f"<h{b[1]}>{_inline(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            body.append(f"<p>{_inline(b[1])}</p>")
        elif b[0] == "table":
            head = "".join(f"<th>{_inline(c)}</th>" for c in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in b[2])
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
        elif b[0] == "img" and b[1] in figures:
            data = base64.b64encode(figures[b[1]]).decode("ascii")
            body.append(f'<img alt="{b[1]}" src="data:image/png;base64,{data}">')
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")


__all__ = ["report", "write", "sections", "standing", "to_markdown", "to_html", "ZOO"]

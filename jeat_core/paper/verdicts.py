"""The verdict cell that closes notebooks 01-09: what ``figures/audit.json`` says about the claims a
notebook reproduces, as a table (a presenter, like :mod:`jeat_core.explore.figures`; it computes nothing).

:func:`verdict_table` reads the audit file (``jeat audit`` writes it) and picks the claims whose first
figure or table ("Fig. 6 / Tab. 2" → Fig. 6) is a paper item of that notebook
(:data:`jeat_core.paper.paper_items.PAPER_ITEMS`). A row shows the paper's statement, our number with its
interval and n, the verdict, and one line on why it may differ at our scale (:data:`SCALE_NOTES`, the
one place these lines are written). A generation claim whose record carries ``"parts"``
(``docs/evaluation.md``) gets one row per part, its number the part's first KID comparison (the
primary feature space). Nothing in a notebook's table is typed by hand: when the audit changes, the
table does.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from jeat_core.measure import rulers
from jeat_core.paper.claims import AUDIT
from jeat_core.paper.paper_items import PAPER_ITEMS

_SCALE = ("the paper trains WideResNet-28-10 on GPUs (it states the schedule only for Fig. 3: 50 epochs); our "
          "cpu-preset models are 0.8 M-parameter CNNs trained for about an hour on 2 CPU cores")
_GEN = ("KID and FID in the features of CIFAR-trained evaluators, not Inception, so only the direction of a "
        "difference compares with the paper; ")
# claim id -> why our measurement may differ from the paper's at our scale (settings, never our numbers)
SCALE_NOTES = {
    1: "both attacks are PGD-20 at ε = 8/255 as in the paper, on a smaller and less accurate classifier; "
       + _SCALE + ".",
    2: "the shares pool the logged steps of three 6-epoch AT runs (training seeds) trained with FGSM + random "
       "start, where the paper shows one run of PGD training for 50 epochs on WRN-28-10.",
    3: "the paper shows one contour picture per model; we summarise n test images, one random 2-D slice "
       "each, in log p(y|x) units (which removes the models' different logit scales); " + _SCALE + ".",
    4: _GEN + "each energy with its own tuned sampler on 0.8 M-parameter models; small models may not "
              "separate what WRN-28-10 separates.",
    5: _GEN + "the noise models train for 6 epochs, AT's budget (the paper: WRN-28-10, schedule not stated).",
    6: _GEN + "our JEAT is a one-epoch fine-tune of PreJEAT with the p(x) term at weight 0.1 (weight 1 "
              "diverges at this scale), not Algorithm 1 run from scratch.",
    7: "our SiLU networks have a non-zero input Hessian; the paper's values follow the piecewise-linear "
       "convention (∇²f ≡ 0), which the verdict uses; the trace is a Hutchinson estimate.",
    8: "PGD-20 at ε = 8/255 as in the paper, on models far less accurate on clean images than "
       "WRN-28-10; " + _SCALE + ".",
    9: "SSIM against all training images as in the paper; a small model trained for a few epochs "
       "has had less chance to memorise than WRN-28-10.",
    10: "the paper reports PGD-20 only; AutoAttack (standard, 100 steps, 5,000 Square queries) costs about "
        "3 s per image and core on a robust model, so it is recorded once per model "
        "(`jeat eval --attack autoattack --record`) on the first n test images (1,000 for the shipped robust "
        "runs, 500 for their training seeds), not rerun by the audit.",
    11: "our AT and PreJEAT use FGSM with random start, not the PGD training of Madry et al.; our JEAT is a "
        "fine-tune of PreJEAT at p(x) weight 0.1, not Algorithm 1; " + _SCALE + ".",
}


def claim_notebook(claim: str) -> str | None:
    """The notebook (``"06"``) of the paper item named first in a claim's text ("Fig. 6 / Tab. 2: ..."
    → Fig. 6 → ``fig6_*`` → its notebook), or ``None`` when the text names no item."""
    m = re.match(r"\s*(Fig|Tab)\. (\d+)", claim)
    if not m:
        return None
    prefix = ("fig" if m.group(1) == "Fig" else "table") + m.group(2) + "_"
    found = {item.notebook for item in PAPER_ITEMS.values() if item.id.startswith(prefix)}
    return min(found) if found else None


def _num(v: float) -> str:
    if abs(v) < 1e-9:  # an interval's end at 0 up to float noise (e.g. Wilson's lower bound at 0 of 1000)
        return "0"
    return f"{v:.3g}" if abs(v) >= 1e-3 else f"{v:.2e}"


def _ci(ci) -> str:
    return f"[{_num(ci[0])}, {_num(ci[1])}]"


def _entries(d: dict) -> list[str]:
    """``name value [ci]`` for each number of ``d`` with an interval: ``{"diff", "ci"}`` sub-records,
    a number followed by a ``*ci*`` key (``share``, ``ci``; ``x``, ``x_ci``), numbers of a per-model
    record (``model: ...``)."""
    out, keys = [], list(d)
    for i, k in enumerate(keys):
        v = d[k]
        if isinstance(v, dict) and {"diff", "ci"} <= set(v):
            out.append(f"{k} = {_num(v['diff'])} {_ci(v['ci'])}")
        elif isinstance(v, dict) and k not in ("baselines", "runs"):  # runs: the per-run checks a pooled one sums
            inner = _entries(v)
            if inner:
                out.append(f"{k}: " + " · ".join(inner))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and "ci" not in k:
            nxt = keys[i + 1] if i + 1 < len(keys) else ""
            # its own "<k>_ci", else a following interval that is no other number's ("ci", "ci_", "difference_ci")
            free = "ci" in nxt and (nxt.startswith("ci") or nxt.removesuffix("_ci") not in d)
            ci = d.get(f"{k}_ci") or (d[nxt] if free else None)
            if isinstance(ci, list) and len(ci) == 2:
                out.append(f"{k} {_num(v)} {_ci(ci)}")
    return out


def _rows(rec: dict) -> list[dict]:
    """The table rows of one claim record of ``audit.json`` (one per part when it has parts)."""
    claim, why = f"{rec['id']}. {rec['claim']}", SCALE_NOTES.get(rec["id"], "")
    if rec.get("parts"):
        rows = []
        for p in rec["parts"]:
            if p["comparisons"][0]["metric"] not in ("kid", "fid"):  # a part decided without rulers (claims 3, 11)
                rows.append({"claim": f"{claim}<br>part {p['name']}",
                             "paper": f"{rec['paper']}<br>this part: {p['a']} {p['paper_direction'][1]} {p['b']}",
                             "ours": "<br>".join(_run_comparison(c, p) for c in p["comparisons"]),
                             "verdict": p["verdict"], "at our scale": why})
                continue
            kid = next((c for c in p["comparisons"] if c["metric"] == "kid"), p["comparisons"][0])
            lo, hi = kid["ci"]
            level = f", {kid['ci_level']:.1%} interval" if "ci_level" in kid else ""
            seeds = f", {kid['training_seeds']} training runs" if kid.get("training_seeds", 1) > 1 else ""
            others = [c for c in p["comparisons"] if c["metric"] == "kid" and c is not kid]
            rulers = ("<br>other rulers (KID): " + "; ".join(f"{c['feature_space']} {_num(c['diff'])} {_ci(c['ci'])}"
                                                            for c in others)) if others else ""
            written = ((rec.get("ours") or {}).get("sampler_as_written") or {}).get(p["name"])
            also = (f"<br>with the sampler as written (Eq. 9, noise √η): {_num(written['primary']['diff'])} "
                    f"{_ci(written['primary']['ci'])}, {written['verdict']}") if written else ""
            kind = f"<br>samplers: {p['sampler_kind']}" if p.get("sampler_kind") else ""
            rows.append({"claim": f"{claim}<br>part {p['name']}",
                         "paper": f"{rec['paper']}<br>this part: {p['a']} {p['paper_direction'][1]} {p['b']}",
                         "ours": f"{kid['metric'].upper()}({p['a']}) − {kid['metric'].upper()}({p['b']}) = "
                                 f"{_num(kid['diff'])} {_ci((lo, hi))} ({kid['feature_space']}{level}{seeds}), "
                                 f"n = {kid['n']}{rulers}{kind}{also}",
                         "verdict": p["verdict"], "at our scale": why})
        return rows
    entries = _entries(rec["ours"]) if isinstance(rec.get("ours"), dict) else []
    # nothing measured (a model or record missing): say why instead of a bare "n = 0"
    ours = "<br>".join(entries) if entries else (rec.get("note") or "—")
    verdict = rec["reproduced"]
    rule = decision_rule(rec.get("metric", ""))
    return [{"claim": claim, "paper": rec["paper"], "ours": f"{ours}<br>n = {rec['n']}",
             "verdict": f"{verdict}<br>({rule})" if rule and entries else verdict, "at our scale": why}]


def _run_comparison(c: dict, part: dict) -> str:
    """One comparison of a part decided over runs: ``a − b = d [ci]`` with its metric, interval and runs."""
    a, b = c.get("a", part["a"]), c.get("b", part["b"])
    return (f"{c['metric']}({a}) − {c['metric']}({b}) = {_num(c['diff'])} {_ci(c['ci'])} ({c['feature_space']}, "
            f"{c['ci_level']:.1%} interval, {c['interval']}; runs {len(c['runs_a'])} / {len(c['runs_b'])}), "
            f"n = {c['n']}")


def decision_rule(metric: str) -> str:
    """The rule a claim's verdict follows, as its metric text states it ("reproduced if ..."), so a
    reader sees the tolerance beside the verdict (claim 1: an interval that excludes 0 can still be
    "as effective" within ±5 points); "" when the text states none."""
    m = re.search(r"(?:^|; )((?:masking \(not reproduced\)|reproduced) (?:if|when) .*)$", metric)
    return m.group(1) if m else ""


class VerdictTable:
    """Rows of :func:`verdict_table`, shown as an HTML table in Jupyter and as Markdown elsewhere."""

    COLUMNS = ("claim", "paper", "ours", "verdict", "at our scale")

    def __init__(self, rows: list[dict], *, title: str = ""):
        self.rows, self.title = rows, title

    def _repr_html_(self) -> str:
        def cell(v: str, tag: str = "td") -> str:
            lines = "<br>".join(html.escape(s) for s in v.split("<br>"))  # our line breaks, everything else escaped
            return f"<{tag} style='text-align:left'>{lines}</{tag}>"

        head = "".join(cell(c, "th") for c in self.COLUMNS)
        body = "".join("<tr>" + "".join(cell(r[c]) for c in self.COLUMNS) + "</tr>" for r in self.rows)
        return f"<p><b>{html.escape(self.title)}</b></p><table><tr>{head}</tr>{body}</table>"

    def _repr_markdown_(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.COLUMNS) + " |", "|" + "---|" * len(self.COLUMNS)]
        lines += ["| " + " | ".join(r[c].replace("|", "\\|") for c in self.COLUMNS) + " |" for r in self.rows]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self._repr_markdown_()


def verdict_table(notebook_id: str | int, path: str | Path | None = None) -> VerdictTable:
    """The claims of ``figures/audit.json`` (or ``path``) that notebook ``notebook_id`` (``"04"`` or 4)
    reproduces: paper's statement, our number with interval and n, verdict, why it may differ at our
    scale. A notebook with no claim in the audit is an error naming the notebooks that have one."""
    nb = f"{int(notebook_id):02d}" if str(notebook_id).isdigit() else str(notebook_id)
    path = Path(path) if path is not None else AUDIT
    report = json.loads(path.read_text())
    by_notebook: dict[str, list[dict]] = {}
    for rec in report["claims"]:
        by_notebook.setdefault(claim_notebook(rec["claim"]) or "", []).append(rec)
    if nb not in by_notebook:
        raise ValueError(f"no claim of {path.name} belongs to notebook {nb!r}; notebooks with claims: "
                         f"{', '.join(sorted(k for k in by_notebook if k))}")
    kind = "smoke run, tiny sizes: not a result" if report.get("smoke") else "full run"
    return VerdictTable([row for rec in by_notebook[nb] for row in _rows(rec)],
                        title=f"What holds at our scale ({path.name}, {kind})")


# ----------------------------------------------------------------------------- figures/README.md's generation block
GEN_BLOCK = ("<!-- generation-verdicts: begin (verdicts.generation_markdown(audit.json)) -->",
             "<!-- generation-verdicts: end -->")


def _f(v: float) -> str:
    return f"{v:+.3g}" if abs(v) >= 1e-3 else f"{v:+.1e}"


def _cell(x: dict | None) -> str:
    return f"{_f(x['diff'])} [{_f(x['ci'][0])}, {_f(x['ci'][1])}]" if x else "—"


def generation_markdown(report: dict) -> str:
    """The generation claims of an audit report as Markdown: each part's paired differences in every
    feature space (interval at its Holm level, training runs per side), then each set's metrics in the
    primary space beside its KID in every diagnostic ruler of :data:`rulers.RULERS` ("—" where the
    report has not measured one). ``figures/README.md`` embeds it between :data:`GEN_BLOCK`'s markers
    (a test keeps the two equal)."""
    diagnostic = [s.name for s in rulers.of_role("diagnostic")]
    gen = [c for c in report["claims"] if c["id"] in report.get("generation_claims", (4, 5, 6))]
    lines = ["| part | a vs b | verdict | space | ΔKID [interval] | ΔFID [interval] | level | runs per side |",
             "|---|---|---|---|---|---|---|---|"]
    for c in gen:
        for p in c["parts"]:
            by = {}
            for x in p["comparisons"]:
                by.setdefault(x["feature_space"], {})[x["metric"]] = x
            for i, (space, m) in enumerate(by.items()):
                k, f = m.get("kid"), m.get("fid")
                head = (f"**{p['name']}**", f"{p['a']} vs {p['b']}", f"**{p['verdict']}**") if i == 0 else ("", "", "")
                lines.append(f"| {' | '.join(head)} | {space} | {_cell(k)} | {_cell(f)} | {k['ci_level']:.2%} | "
                             f"{k['training_seeds']} |")
    columns = ["set (n per set)", "sampler", "KID", "FID", "precision", "recall", "density", "coverage",
               "evaluator acc. [95% CI]", *(f"KID {d} (diagnostic)" for d in diagnostic)]
    lines += ["", f"| {' | '.join(columns)} |", "|---" * len(columns) + "|"]
    seen = set()
    for c in gen:
        n = c["n"]
        primary = c["ours"]["spaces"][0]
        for name, r in c["ours"]["sets"].items():
            if name in seen:
                continue
            seen.add(name)
            s = r[primary]
            acc = f"{s['eval_acc']:.1%} [{s['eval_acc_ci'][0]:.1%}, {s['eval_acc_ci'][1]:.1%}]"
            prdc = " | ".join(f"{s[k]:.3f}" for k in ("precision", "recall", "density", "coverage"))
            diag = "".join(f" {r[d]['kid']:.4g} |" if d in r else " — |" for d in diagnostic)
            lines.append(f"| {name} ({n}) | {r.get('sampler', '—')} | {s['kid']:.4g} | {s['fid']:.4g} | {prdc} | "
                         f"{acc} |{diag}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- a claim's decision, as prose blocks
CLAIM_BLOCK = re.compile(r"(<!-- claim-(\d+): begin \(verdicts\.claim_markdown\(audit\.json, \d+\)\) -->\n)(.*?)"
                         r"(<!-- claim-\2: end -->)", flags=re.S)


def _signed(v: float) -> str:
    return _f(v).replace("-", "−")


def _decided(c: dict, part: dict) -> str:
    """One comparison of a part as a reader's sentence: metric, difference, interval, how it was decided."""
    a, b = c.get("a", part["a"]), c.get("b", part["b"])
    runs = (f"runs {len(c['runs_a'])} / {len(c['runs_b'])}" if "runs_a" in c
            else f"{c.get('training_seeds', 1)} training run(s)")
    how = c.get("interval") or ("paired over seeds" if c.get("paired") else "")
    metric = c["metric"].upper() if c["metric"] in ("kid", "fid") else c["metric"]
    return (f"{metric}({a}) − {metric}({b}) = {_signed(c['diff'])} "
            f"[{_signed(c['ci'][0])}, {_signed(c['ci'][1])}] ({c['feature_space']}, {c['ci_level']:.1%} interval"
            f"{', ' + how if how else ''}, {runs}, n = {c['n']:,})")


def claim_markdown(report: dict, claim_id: int) -> str:
    """Claim ``claim_id`` of an audit report as the Markdown ``figures/README.md`` embeds after a figure:
    its verdict and, for a claim in parts, each part's deciding comparison (the primary ruler's KID for the
    generation claims) with its interval, level, runs per side and verdict. Numbers at three significant
    digits, as the audit tables give them."""
    rec = next(c for c in report["claims"] if c["id"] == claim_id)
    whose = "a check we added" if rec.get("source") == "added" else "paper's claim"
    lines = [f"*Audit, claim {claim_id} ({whose}) — **{rec['reproduced']}**.*"]
    for p in rec.get("parts", []):
        kid = [c for c in p["comparisons"] if c["metric"] == "kid"]
        shown = kid[:1] if kid else p["comparisons"]
        said = "; ".join(_decided(c, p) for c in shown)
        lines.append(f"- **{p['name']}** ({p['a']} {p['paper_direction'][1]} {p['b']}): {said} — "
                     f"*{p['verdict']}*")
    if not rec.get("parts"):
        entries = _entries(rec["ours"]) if isinstance(rec.get("ours"), dict) else []
        lines += ["- " + re.sub(r"(?<![\w.])-(?=\d)", "−", e) for e in entries] + [f"- n = {rec['n']:,}"]
    return "\n".join(lines)


def refresh_blocks(text: str, report: dict) -> str:
    """``text`` with every generated block re-rendered from ``report``: the generation tables
    (:data:`GEN_BLOCK`) and each ``<!-- claim-N: begin (verdicts.claim_markdown(audit.json, N)) -->`` block."""
    text = CLAIM_BLOCK.sub(lambda m: m.group(1) + claim_markdown(report, int(m.group(2))) + "\n" + m.group(4), text)
    if GEN_BLOCK[0] in text:
        before, rest = text.split(GEN_BLOCK[0], 1)
        _, after = rest.split(GEN_BLOCK[1], 1)
        text = f"{before}{GEN_BLOCK[0]}\n{generation_markdown(report)}\n{GEN_BLOCK[1]}{after}"
    return text

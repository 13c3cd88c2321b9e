"""The README is the front page and must not drift from what it describes.

Its verdicts are `figures/audit.json`'s, the numbers it quotes are the manifests' (or the models'),
its links resolve, and neither it nor `docs/` carries tracker references. The benchmark numbers in
`docs/benchmarks.md` are `benchmarks/results/bench_core.json`'s. Everything here reads files (and
builds two models, one on the meta device), so it runs in seconds.
"""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
ZOO = REPO / "checkpoints" / "cifar10-cpu"
VERDICTS = ("not reproduced", "reproduced", "inconclusive, leaning against the paper",
            "inconclusive, leaning toward the paper", "inconclusive", "depends on the ruler",
            "one run per side: not decided over runs", "not measurable here")
VERDICT_RE = "|".join(VERDICTS)  # longest first where one contains another


def _readme() -> str:
    return README.read_text()


def _prose(text: str) -> str:
    """The text without fenced code blocks (shell comments and code may say anything)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _audit() -> dict[int, dict]:
    return {c["id"]: c for c in json.loads((REPO / "figures" / "audit.json").read_text())["claims"]}


def _zoo_manifests() -> dict[str, dict]:
    """The shipped models' manifests (the evaluator only scores, it is not one of the paper's models)."""
    out = {}
    for p in sorted(ZOO.glob("*/manifest.json")):
        m = json.loads(p.read_text())
        if m.get("method") != "evaluator":
            out[p.parent.name] = m
    return out


def _section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def _table_rows(section: str) -> list[list[str]]:
    """The body rows of the first Markdown table in ``section``, as stripped cells."""
    lines: list[str] = []
    for ln in section.splitlines():
        if ln.startswith("|"):
            lines.append(ln)
        elif lines:
            break
    return [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines[2:]]


def _numbers(s: str) -> list[str]:
    return re.findall(r"\d+(?:\.\d+)?", s.replace(",", ""))


# ----------------------------------------------------------------------------- size, links, references
def test_readme_is_a_front_page():
    n = len(_readme().splitlines())
    assert n <= 150, f"README.md has {n} lines; the front page keeps to 150 (move detail into docs/)"


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(md: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", _prose(md.read_text()), flags=re.M)}


@pytest.mark.parametrize("md", [README, *DOCS], ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(md):
    text = re.sub(r"`[^`\n]*`", "", _prose(md.read_text()))  # inline code: `[x](y)` there is not a link
    targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'src="([^"]+)"', text)
    assert targets or md != README, "README.md: no links found (the pattern is wrong?)"
    bad = []
    for t in targets:
        if re.match(r"[a-z]+:", t):  # https:, mailto:
            continue
        path, _, anchor = t.partition("#")
        target = (md.parent / path).resolve() if path else md
        if not target.exists() or REPO not in target.parents and target != REPO:
            bad.append(f"{t} (no such file in the repository)")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            bad.append(f"{t} (no heading with that anchor)")
    assert not bad, f"{md.relative_to(REPO)}: broken links: {bad}"


@pytest.mark.parametrize("md", [README, *DOCS], ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_tracker_references(md):
    """The front page and the docs describe the project, not its history: no issue numbers, no
    account of who measured what when."""
    text = _prose(md.read_text())
    refs = re.findall(r"(?<![\w&])#\d+|\b(?:issue|PR|pull request)s? #?\d+", text, flags=re.I)
    assert not refs, f"{md.relative_to(REPO)}: tracker references {refs}"
    history = re.findall(r"\b(?:this session|a reviewer|of mine|before #?\d+)\b", text, flags=re.I)
    assert not history, f"{md.relative_to(REPO)}: history in the docs: {history}"


# ----------------------------------------------------------------------------- verdicts: audit.json
def test_claims_table_matches_the_audit():
    audit = _audit()
    rows = _table_rows(_section(_readme(), "Claims at a glance"))
    shown = {}
    for cells in rows:
        cid = int(cells[0])
        claim, evidence, cell = cells[1], cells[2], cells[-1]
        verdict = re.match(r"\*\*([^*]+)\*\*", cell).group(1)
        assert cid in audit, f"claim {cid} is not in figures/audit.json"
        rec = audit[cid]
        assert verdict == rec["reproduced"], f"claim {cid}: README says {verdict!r}, audit.json {rec['reproduced']!r}"
        # a claim split into parts lists each part's verdict, as audit.json has it
        parts = re.findall(rf"(\d+[a-z]): ({VERDICT_RE})", cell)
        assert parts == [(p["name"], p["verdict"]) for p in rec.get("parts", [])], (cid, parts)
        # the same figure or table of the paper ("Fig. 6 / Tab. 2"), and only the paper's numbers as evidence
        assert claim.split(":")[0] == rec["claim"].split(":")[0], (cid, claim, rec["claim"])
        extra = set(_numbers(evidence)) - set(_numbers(rec["paper"]))
        assert not extra, f"claim {cid}: {sorted(extra)} are not in audit.json's paper field {rec['paper']!r}"
        shown[cid] = [p[1] for p in parts] or [verdict]
    assert sorted(shown) == sorted(audit), "every claim of the audit appears once in the README's table"

    # the summary tallies the parts of the paper's claims (a claim in parts once per part), as audit.json's
    # "tally"; the checks we added are listed in the table but not counted
    m = re.search(r"Summary over (\d+) parts of the paper's claims: ([^.]+)\.",
                  _section(_readme(), "Claims at a glance"))
    pairs = (re.fullmatch(r"(\d+) (.+)", part.strip()).groups() for part in m.group(2).split(";"))
    counts = {v: int(n) for n, v in pairs}
    tallied = Counter(v for cid, vs in shown.items() if audit[cid].get("source", "paper") == "paper" for v in vs)
    assert counts == dict(tallied) and int(m.group(1)) == sum(tallied.values()), (counts, tallied)
    report = json.loads((REPO / "figures" / "audit.json").read_text())
    assert {k: v for k, v in report["tally"].items() if v} == counts, (report["tally"], counts)


def test_notebook_list_is_complete_and_its_verdicts_match():
    from jeat_core.paper.paper_items import PAPER_ITEMS

    audit = _audit()
    rows = _table_rows(_section(_readme(), "The notebooks"))
    listed = [re.search(r"`(\d\d_\w+)`", cells[0]).group(1) for cells in rows]
    assert listed == sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.py")), listed
    for name, cells in zip(listed, rows, strict=True):
        for cid, verdict in re.findall(rf"claim (\d+): ({VERDICT_RE})", cells[-1]):
            rec = audit[int(cid)]
            assert verdict == rec["reproduced"], f"{name}, claim {cid}: {verdict!r} vs audit.json {rec['reproduced']!r}"
            # the claim's first figure/table ("Fig. 6 / Tab. 2" -> fig6_*) is reproduced by this notebook
            kind, num = re.match(r"(Fig|Tab)\. (\d+)", rec["claim"]).groups()
            prefix = ("fig" if kind == "Fig" else "table") + num + "_"
            notebooks = {it.notebook for it in PAPER_ITEMS.values() if it.id.startswith(prefix)}
            assert name[:2] in notebooks, f"claim {cid} ({kind}. {num}) belongs to notebook(s) {notebooks}, not {name}"


# ----------------------------------------------------------------------------- numbers: manifests and models
def test_scale_sentence_matches_the_models():
    import torch

    from jeat_core.core.models import build_model

    zoo = _zoo_manifests()
    text = _readme()
    archs = {json.dumps(m["arch"], sort_keys=True) for m in zoo.values()}
    assert len(archs) == 1, "the README says every model is the same CNN"
    arch = next(iter(zoo.values()))["arch"]
    n = sum(p.numel() for p in build_model(arch["name"], **arch["kwargs"]).parameters())
    quoted = re.search(r"(\d+\.\d+) M-parameter CNN", text).group(1)
    assert quoted == f"{n / 1e6:.2f}", f"README: {quoted} M parameters; the shipped architecture has {n:,}"

    minutes = sorted(round(m["train_seconds"] / 60) for m in zoo.values())
    lo, hi = map(int, re.search(r"in (\d+)–(\d+) minutes per model", text).groups())
    assert (lo, hi) == (minutes[0], minutes[-1]), f"README: {lo}–{hi} min; manifests' train_seconds: {minutes} min"

    with torch.device("meta"):
        wrn = sum(p.numel() for p in build_model("wrn28_10").parameters())
    quoted = re.search(r"WideResNet-28-10 \((\d+\.\d) M parameters\)", text).group(1)
    assert quoted == f"{wrn / 1e6:.1f}", (quoted, wrn)

    shipped = int(re.search(r"The (\d+) trained models ship", text).group(1))
    assert shipped == len(zoo), f"README says {shipped} shipped models; checkpoints/ has {len(zoo)}"


def test_audit_duration_and_methods_match():
    text = _readme()
    seconds = json.loads((REPO / "figures" / "audit.json").read_text())["seconds"]
    quoted = int(re.search(r"^make audit .*\(~(\d+) min\)", text, flags=re.M).group(1))
    assert quoted == round(seconds / 60), f"README: make audit ~{quoted} min; audit.json: {seconds:.0f} s"

    from jeat_core.train.methods import METHODS

    section = _section(text, "Training methods")
    names = re.findall(r"`(\w+)`", section.split("—", 1)[0])
    assert names == list(METHODS), f"README lists {names}; the registry has {list(METHODS)}"
    stated = int(re.search(r"The registry holds (\d+) methods", section).group(1))
    assert stated == len(METHODS), f"README says {stated} methods; the registry has {len(METHODS)}"


# ----------------------------------------------------------------------------- docs/benchmarks.md: bench_core.json
def test_benchmark_numbers_match_their_json():
    bench = json.loads((REPO / "benchmarks" / "results" / "bench_core.json").read_text())
    text = (REPO / "docs" / "benchmarks.md").read_text()
    quoted = float(re.search(r"\*\*([\d.]+) GFLOP/s\*\*", text).group(1))
    assert quoted == round(bench["matmul_gflops"], 1)

    ops = {"forward": "forward", "forward+backward": "forward+backward", "Langevin step": "langevin step",
           "PGD-20": "pgd-20"}
    methods = {"standard": "standard", "noise": "noise", "AT": "at", "PreJEAT": "prejeat", "JEAT": "jeat", "JEM": "jem"}
    rows = _table_rows(text.split("## CPU throughput", 1)[1])
    seen = set()
    for label, ips, share in rows:
        if label.startswith("training step, "):
            rec = bench["train_steps"][methods[label.removeprefix("training step, ")]]
        else:
            rec = bench["ops"][ops[label]]
        assert int(ips) == round(rec["images_per_s"]), (label, ips, rec["images_per_s"])
        assert int(share.rstrip("%")) == round(100 * rec["fraction_of_matmul"]), (label, share)
        seen.add(label)
    assert len(seen) == len(ops) + len(methods)

    ratios = {
        "the attack call": bench["pgd20_vs_torchattacks"]["speed_ratio_jeat_over_peer"],
        "robust accuracy as each": bench["robust_accuracy_vs_torchattacks"]["speed_ratio_jeat_over_peer"],
        "SGLD share": 100 * bench["jeat_cost_split"]["sgld"]["share"],
    }
    rows = _table_rows(text.split("### Against torchattacks", 1)[1])
    assert len(rows) == len(ratios)
    for what, committed, spread in rows:
        value = next(v for k, v in ratios.items() if what.startswith(k))
        num = float(re.search(r"[\d.]+", committed).group(0))
        assert num == round(value, 2 if "×" in committed else 1), (what, committed, value)
        lo, hi = map(float, re.findall(r"[\d.]+", spread))
        assert lo <= num <= hi, f"{what}: the committed run ({num}) lies outside the stated range {spread}"


def test_figures_readme_trades_table_is_its_json():
    """The TRADES generation table in figures/README.md is the rendering of the JSON it cites."""
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    from generation_standing import markdown

    text = (REPO / "figures" / "README.md").read_text()
    block = text.split("<!-- table: figures/trades_generation.json", 1)[1].split("-->", 1)[1]
    block = block.split("<!-- end table -->", 1)[0].strip()
    assert block == markdown(json.loads((REPO / "figures" / "trades_generation.json").read_text()))


def test_front_page_counts_agree_with_the_audit():
    """The counts the front page states (claims, parts, rows of claims.png) are the audit's and the figure's."""
    from jeat_core.paper.claims import claim_effects

    report = json.loads((REPO / "figures" / "audit.json").read_text())
    text = re.sub(r"\s+", " ", _readme())
    paper = [c for c in report["claims"] if c.get("source", "paper") == "paper"]
    added = [c for c in report["claims"] if c.get("source") == "added"]
    parts = sum(len(c.get("parts") or [None]) for c in paper)
    rows = claim_effects(report)
    n_paper = sum(r.get("source", "paper") == "paper" for r in rows)
    m = re.search(r"the paper's (\d+) claims, split into (\d+) parts, appear as (\d+) tested quantities", text)
    assert m and tuple(map(int, m.groups())) == (len(paper), parts, n_paper), m and m.groups()
    m = re.search(r"the check we added \(claim (\d+)\) as (\d+) rows", text)
    assert m and (int(m.group(1)), int(m.group(2))) == (added[0]["id"], len(rows) - n_paper), m and m.groups()
    m = re.search(r"The paper makes (\d+) claims \(rows ([\d–, and]+)\); row (\d+) is a check we added", text)
    assert m and int(m.group(1)) == len(paper) and int(m.group(3)) == added[0]["id"], m and m.groups()
    assert f"Summary over {parts} parts of the paper's claims" in text

"""Numbers quoted in the prose of README.md, figures/README.md and checkpoints/README.md are the ones
in the JSON and manifests they come from.

Each check is a ``(file, pattern, expected)``: ``pattern`` must occur in the file (a reworded sentence
fails loudly instead of silently passing) and its groups must read ``expected``, the value formatted
from its source file. :func:`problems` runs them all over a dict of texts, so the test can also show
that a changed number is caught (``test_a_changed_number_is_caught``). Reads files only: seconds.
"""

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ZOO = REPO / "checkpoints" / "cifar10-cpu"
FILES = {"README": REPO / "README.md", "figures": REPO / "figures" / "README.md",
         "checkpoints": REPO / "checkpoints" / "README.md"}


def _json(path: str) -> dict:
    return json.loads((REPO / path).read_text())


def _eval(name: str, attack: str, n: int | None = None) -> dict:
    """The manifest's evaluation record of ``attack`` (checkpoints/README.md, ``evals`` schema)."""
    m = json.loads((ZOO / name / "manifest.json").read_text())
    recs = [r for r in m["evals"] if r["attack"] == attack and (n is None or r["n"] == n)]
    assert len(recs) == 1, (name, attack, n, m["evals"])
    return recs[0]


def _pct(v: float, digits: int = 1) -> str:
    return f"{100 * v:.{digits}f}"


FIG3_SHARES = (("share_dxE_joint_pos", "ci"), ("share_dthetaE_joint_neg", "ci_"),
               ("share_dthetaE_marginal_pos", "ci__"))


def _audit(cid: int) -> dict:
    return next(c for c in _json("figures/audit.json")["claims"] if c["id"] == cid)


def _table(path: str, key: str = "model") -> dict[str, dict]:
    return {r[key]: r for r in _json(path)["rows"]}


N = r"([\d.]+)"  # a quoted number


def checks() -> list[tuple[str, str, tuple[str, ...]]]:
    """``(file key, regex, expected groups)`` for every number this test guards."""
    t3, t1, t2 = _table("figures/table3_robustness.json"), _table("figures/table1_attacks.json", "attack"), \
        _table("figures/table2_fisher.json")
    out: list[tuple[str, str, tuple[str, ...]]] = []

    # run times: one estimate for `make figures`; the audit's from audit.json (README; test_readme checks it)
    readme_fig = re.search(r"^make figures .*\(~(\d+) min\)", FILES["README"].read_text(), flags=re.M).group(1)
    out.append(("figures", r"Regenerate with `make figures` \(about (\d+) minutes", (readme_fig,)))
    make_fig = re.search(r"about (\d+) minutes on 2 cores", (REPO / "Makefile").read_text()).group(1)
    assert make_fig == readme_fig, f"Makefile says {make_fig} min for make figures, README {readme_fig}"

    # checkpoints/README.md: findings and TRADES, from the manifests and Tab. 3's JSON (first 1,000 images)
    energy = {n: _pct(_eval(n, "energy-pgd20", 1000)["robust_acc"]) for n in ("at", "prejeat", "jeat")}
    ce_1000 = {"at": _pct(t3["AT"]["pgd20_acc"]), "prejeat": _pct(_eval("prejeat", "pgd20", 1000)["robust_acc"]),
               "jeat": _pct(t3["JEAT"]["pgd20_acc"])}
    assert all(t3[k]["n"] == 1000 for k in ("AT", "JEAT"))
    out.append(("checkpoints", rf"\(AT {N}% vs {N}%,\s+PreJEAT {N}% vs {N}%, JEAT {N}% vs {N}%",
                (energy["at"], ce_1000["at"], energy["prejeat"], ce_1000["prejeat"], energy["jeat"], ce_1000["jeat"])))
    at_clean, at_pgd = _eval("at", "none", 10000), _eval("at", "pgd20", 10000)
    out.append(("checkpoints", r"AT reaches ([\d.]+)% clean and ([\d.]+)% PGD-20 accuracy on all 10,000 test images "
                               r"\(([\d.]+)% on the first\s+1,000",
                (_pct(at_clean["clean_acc"], 2), _pct(at_pgd["robust_acc"], 2), ce_1000["at"])))
    gap = 100 * (t3["AT"]["pgd20_acc"] - _eval("prejeat", "pgd20", 1000)["robust_acc"])
    out.append(("checkpoints", r"robustness [\d.]+ points\s+under the 33% target and ([\d.]+) under AT on the same "
                               r"1,000 images", (f"{gap:.1f}",)))
    noise = tuple(_pct(_eval(f"noise-{s}", "none", 10000)["clean_acc"]) for s in (8, 16, 24))
    out.append(("checkpoints", r"\(([\d.]+)% → ([\d.]+)% →\s+([\d.]+)%\)", noise))
    jeat_c, jeat_r = _eval("jeat", "none", 10000)["clean_acc"], _eval("jeat", "pgd20", 10000)["robust_acc"]
    out.append(("checkpoints", rf"JEAT \(fine-tune of PreJEAT\) reaches {N}% clean and {N}% PGD-20 on all 10,000",
                (_pct(jeat_c, 2), _pct(jeat_r, 2))))
    out.append(("checkpoints", r"JEM \(fine-tune of the standard model\) reaches ([\d.]+)% clean",
                (_pct(_eval("jem", "none", 10000)["clean_acc"], 2),)))
    tr_c, tr_r = _eval("trades", "none", 10000), _eval("trades", "pgd20", 10000)
    out.append(("checkpoints", rf"It reaches {N}% clean \[{N}, {N}\] and {N}% PGD-20 \[{N}, {N}\]",
                (_pct(tr_c["clean_acc"], 2), *(_pct(v, 2) for v in tr_c["clean_ci"]), _pct(tr_r["robust_acc"], 2),
                 *(_pct(v, 2) for v in tr_r["robust_ci"]))))
    out.append(("checkpoints", r"against AT's ([\d.]+)% / ([\d.]+)% on the same budget",
                (_pct(at_clean["clean_acc"], 2), _pct(at_pgd["robust_acc"], 2))))
    ev = json.loads((ZOO / "evaluator" / "manifest.json").read_text())["metrics"]["clean_acc"]
    out.append(("checkpoints", r"\*\*([\d.]+)% clean accuracy on all", (_pct(ev, 2),)))

    # figures/README.md
    ev_b = json.loads((ZOO / "evaluator-b" / "manifest.json").read_text())["metrics"]["clean_acc"]
    out.append(("figures", r"evaluator A, a BN-ReLU ResNet, ([\d.]+)% clean", (_pct(ev),)))
    out.append(("figures", r"evaluator B, a VGG-style network of another family and seed, ([\d.]+)% clean",
                (_pct(ev_b),)))
    out.append(("figures", rf"\(`cifar10-cpu/trades`, same 6-epoch budget as AT; {N}% clean, {N}% PGD-20 on all",
                (_pct(tr_c["clean_acc"], 2), _pct(tr_r["robust_acc"], 2))))
    out.append(("figures", r"\*\*Ours — agrees:\*\* ([\d.]+)% vs ([\d.]+)% on 1,000 test images \(PGD-20",
                (_pct(t1["CE attack (Eq. 14)"]["accuracy"]), _pct(t1["Energy attack (Eq. 18)"]["accuracy"]))))
    out.append(("figures", rf"JEM {N}% / {N}%, JEAT {N}% / {N}%,\s+AT {N}% / {N}% \(first 1,000",
                tuple(_pct(t3[m][k]) for m in ("JEM", "JEAT", "AT") for k in ("clean_acc", "pgd20_acc"))))
    c2 = _audit(2)["ours"]  # Fig. 3: the shares pooled over the AT runs, and the shipped run's alone
    pooled = c2["pooled"]
    out.append(("figures", r"three training runs:\*\* [\s\S]*? (\d+) logged steps in\s+all",
                (str(pooled["n_logged"]),)))
    out.append(("figures", rf"Δ_x E\(x, y\) is positive at {N}% of them \(95% CI \[{N}, {N}\]\), Δ_θ E\(x, y\) "
                rf"negative\s+at {N}% \(\[{N}, {N}\], above the audit's 90%\), and Δ_θ E\(x\) positive at "
                rf"{N}% \(\[{N}, {N}\]",
                tuple(f"{100 * v:.1f}" for key, ci in FIG3_SHARES for v in (pooled[key], *pooled[ci]))))
    first = c2["at"]
    k = round(first["share_dthetaE_joint_neg"] * first["n_logged"])
    out.append(("figures", rf"shipped run's (\d+)\s+steps alone were inconclusive \(Δ_θ E\(x, y\) < 0 at (\d+) of "
                rf"(\d+), CI \[{N}, {N}\]\)", (str(first["n_logged"]), str(k), str(first["n_logged"]),
                                               *(f"{100 * v:.1f}" for v in first["ci_"]))))
    c8 = _audit(8)["ours"]
    peer = max(abs(r[k] - r["robust"]) for r in c8.values() if "robust" in r for k in ("torchattacks_pgd20", "apgd_ce"))
    out.append(("figures", r"APGD-CE differ from ours by at most ([\d.]+) points", (f"{100 * peer:.1f}",)))
    # TRADES under AutoAttack, beside AT's shipped run on the same first 500 images
    t_aa, t_p100 = _eval("trades", "autoattack"), _eval("trades", "pgd100-5")
    at_500 = _eval("at", "autoattack")["per_example"]["square"][:t_aa["n"]]
    at_p100 = _eval("at", "pgd100-5")["per_example"]["restart-5"][:t_aa["n"]]
    out.append(("checkpoints", r"it keeps ([\d.]+)% \[([\d.]+), ([\d.]+)\], beside ([\d.]+)% for AT's shipped run "
                               r"on the\s+same (\d+) .*?AutoAttack finds ([\d.]+) points that PGD-100×5\s+"
                               r"\(([\d.]+)%\) misses, against ([\d.]+) for AT",
                (_pct(t_aa["robust_acc"]), *(_pct(v) for v in t_aa["robust_ci"]),
                 _pct(at_500.count("1") / len(at_500)), str(t_aa["n"]),
                 _pct(t_p100["robust_acc"] - t_aa["robust_acc"]), _pct(t_p100["robust_acc"]),
                 _pct((at_p100.count("1") - at_500.count("1")) / len(at_500)))))
    # Tab. 3 beside AutoAttack: PGD-100×5 from the manifests, JEAT's masking excess from claim 10
    p100 = tuple(_pct(_eval(n, "pgd100-5", 1000)["robust_acc"]) for n in ("at", "prejeat", "jeat"))
    out.append(("figures", rf"\(AT {N}%, PreJEAT {N}%, JEAT {N}% on the same 1,000\)", p100))
    j10 = _audit(10)["ours"]["jeat"]
    out.append(("figures", r"gap exceeds AT's by\s+([\d.]+) points \[([−\d.]+), \+([\d.]+)\], inside the tolerance",
                (_pct(j10["gap_minus_at_gap"]), _pct(j10["excess_ci"][0]).replace("-", "−"),
                 _pct(j10["excess_ci"][1]))))
    out.append(("figures", r"AT's own gap \(([\d.]+) points over AT's three runs\)", (_pct(j10["tolerance"]),)))
    # Fig. 2: the slice-minimum counts and ranks of audit claim 3
    c3 = _audit(3)["ours"]
    mins = sorted(int(r["x_is_slice_min"].split("/")[0]) for r in c3.values())
    ranks = sorted(r["rank_of_x"] for r in c3.values())
    out.append(("figures", r"the image is the\s+slice minimum for\s+(\d+)–(\d+) of 50 images for every model, and\s+"
                           r"(\d+)–(\d+)% of the slice",
                (str(mins[0]), str(mins[-1]), _pct(ranks[0], 0), _pct(ranks[-1], 0))))

    # Tab. 2: the two sizes, and the audit's numbers (n = 500) as figures/README.md rounds them
    settings, c7 = _json("figures/audit.json")["settings"], _audit(7)["ours"]
    n2, probes2 = {r["n"] for r in t2.values()}, {r["probes"] for r in t2.values()}
    assert len(n2) == 1 and len(probes2) == 1
    out.append(("figures", r"notebook 7 compute: n = (\d+) test images, (\d+) Hutchinson probes\) and the audit "
                           r"\(claim 7:\s+n = (\d+), (\d+) probes\)",
                (str(n2.pop()), str(probes2.pop()), str(settings["n_fisher"]), str(settings["n_probes"]))))
    order = ("standard", "at", "jem", "jeat")
    jfs = []  # as written: "−135 ± 39 / −6.1 ± 2.1 / ...", no decimal from 100 up (the minus is in the pattern)
    for n in order:
        v, se = c7[n]["JFS"], c7[n]["JFS_se"]
        digits = 0 if abs(v) >= 100 else 1
        jfs += [f"{abs(v):.{digits}f}", f"{se:.{digits}f}"]
    out.append(("figures", rf"JFS −{N} ± {N} /\s+−{N} ± {N} / −{N} ± {N} / −{N} ± {N} "
                           r"\(n = 500\)", tuple(jfs)))
    assert all(c7[n]["JFS"] < 0 for n in order), "figures/README.md says every as-written JFS is negative"
    pl = []
    for key in ("JFS_pl", "MFS_pl"):
        for n in order:
            v, se = c7[n][key], c7[n][key + "_se"]
            digits = 1 if v >= 10 else 3
            pl += [f"{v:.{digits}f}", f"{se:.{digits}f}"]
    num = rf"{N} ± {N}"
    out.append(("figures", rf"JFS {num} / {num} /\s+{num} / {num} and MFS {num} / {num} / {num} / {num}\s+\(n = 500\)",
                tuple(pl)))
    return out


def _same_order(rows: dict, key: str) -> list[str]:
    return sorted(rows, key=lambda m: rows[m][key])


def problems(texts: dict[str, str]) -> list[str]:
    """What in ``texts`` (file key -> text) disagrees with its source, as readable lines."""
    out = []
    for key, pattern, expected in checks():
        m = re.search(pattern, texts[key])
        if m is None:
            out.append(f"{FILES[key].relative_to(REPO)}: no sentence matches {pattern!r} (reworded? update the check)")
        elif m.groups() != expected:
            out.append(f"{FILES[key].relative_to(REPO)}: quotes {m.groups()}, the source says {expected}")
    return out


def _texts() -> dict[str, str]:
    return {k: p.read_text() for k, p in FILES.items()}


def test_quoted_numbers_match_their_sources():
    bad = problems(_texts())
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("key,old,new", [
    ("checkpoints", "(AT 44.7% vs 34.4%,", "(AT 44.7% vs 34.5%,"),
    ("figures", "differ from ours by at most 0.9 points", "differ from ours by at most 1 points"),
    ("figures", "(about 15 minutes", "(about 10 minutes"),
    ("figures", "n = 200 test images", "n = 500 test images"),
])
def test_a_changed_number_is_caught(key, old, new):
    texts = _texts()
    assert old in texts[key], f"the mutation's text is gone from {key}: {old!r}"
    texts[key] = texts[key].replace(old, new, 1)
    assert problems(texts), f"changing {old!r} to {new!r} went unnoticed"


def test_tab2_sizes_give_the_same_order():
    """figures/README.md says the n = 200 table (table2_fisher.json) and the audit's n = 500 rank the
    models the same way in both conventions."""
    t2 = {r["model"]: r for r in _json("figures/table2_fisher.json")["rows"]}
    names = {"Normal": "standard", "AT": "at", "JEM": "jem", "JEAT": "jeat"}
    c7 = {label: _audit(7)["ours"][zoo] for label, zoo in names.items()}
    for key in ("JFS", "MFS", "JFS_pl", "MFS_pl"):
        assert _same_order(t2, key) == _same_order(c7, key), key


def test_checkpoints_zoo_table_is_the_manifests():
    from jeat_core.core.checkpoints import zoo_table

    assert zoo_table() in FILES["checkpoints"].read_text(), "regenerate the table with zoo_table()"


@pytest.mark.parametrize("key", list(FILES))
def test_cited_markdown_files_exist(key):
    """Every ``*.md`` file the prose names exists in the repository (relative to the file or the root)."""
    path = FILES[key]
    names = set(re.findall(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.md)\b", path.read_text()))
    missing = [n for n in names if not (path.parent / n).exists() and not (REPO / n).exists()]
    assert not missing, f"{path.relative_to(REPO)} cites files not in the repository: {missing}"


# ----------------------------------------------------------------------------- notebooks: numbers, not names
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))


def _markdown(path: Path) -> str:
    import jupytext

    return "\n".join(c.source for c in jupytext.read(path).cells if c.cell_type == "markdown")


# a size the prose states, as (PAPER_SIZES value, SMOKE_SIZES value): the pattern's two groups
SIZE_PHRASES = {
    "hist_steps": r"trains a fresh model for (\d+) steps \((\d+) in smoke mode",
    "max_steps": r"capped at (\d+) steps\W+(?:smoke mode caps it at )?(\d+)",
    "n_test": r"first ([\d,]+) test images \((\d+) in smoke mode",
    "per_class": r"(\d+) samples a line \((\d+) in smoke mode",
    "n_fisher": r"(\d+) test images and \d+ Hutchinson probes \((\d+) and \d+ in smoke mode",
    "n_probes": r"\d+ test images and (\d+) Hutchinson probes \(\d+ and (\d+) in smoke mode",
}


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if not p.name.startswith("02")], ids=lambda p: p.stem)
def test_notebook_prose_states_sizes_as_numbers(path):
    """Markdown says "60 steps (5 in smoke mode)", not `SIZES.max_steps`, and the numbers are the sizes'."""
    from jeat_core.paper.paper_items import PAPER_SIZES, SMOKE_SIZES

    md = _markdown(path)
    names = re.findall(r"\bSIZES\.\w+", md)
    assert not names, f"{path.name}: markdown names variables instead of numbers: {names}"
    for field, pattern in SIZE_PHRASES.items():
        want = (getattr(PAPER_SIZES, field), getattr(SMOKE_SIZES, field))
        for m in re.finditer(pattern, md):
            got = tuple(int(g.replace(",", "")) for g in m.groups())
            assert got == want, f"{path.name}: {m.group(0)!r} says {got}; FigureSizes.{field} is {want}"


def test_size_phrases_are_used():
    """Every phrase of SIZE_PHRASES occurs in some notebook (so the check above checks something)."""
    text = "\n".join(_markdown(p) for p in NOTEBOOKS)
    unused = [f for f, pattern in SIZE_PHRASES.items() if not re.search(pattern, text)]
    assert not unused, unused


# ----------------------------------------------------------------------------- jeat_core.paper.prose
def test_prose_helpers_read_their_sources(tmp_path):
    import torch

    from jeat_core.paper import prose

    base = prose.seed_baseline()
    seeds = _audit(4)["ours"]["sets"]["class-Gaussian seeds"]["eval-A/std"]
    assert base["eval_acc"] == seeds["eval_acc"] and base["kid"] == seeds["kid"] and base["n"] == _audit(4)["n"]
    # a record split into parts (docs/evaluation.md) with the baselines nested deeper still has them
    fake = tmp_path / "audit.json"
    fake.write_text(json.dumps({"settings": {"n_fisher": 7}, "claims": [
        {"id": 4, "n": 30, "parts": [{"name": "4a", "extra": {"baselines": {"seeds": {"eval_acc": 0.5}}}}]},
        {"id": 8, "n": 10, "ours": {"a": {"robust": 0.30, "torchattacks_pgd20": 0.32, "apgd_ce": 0.29}}}]}))
    assert prose.seed_baseline(fake) == {"eval_acc": 0.5, "n": 30}
    assert prose.peer_attack_gap(fake) == pytest.approx({"gap": 0.02, "model": "a", "n": 10})
    assert prose.audit_settings(fake) == {"n_fisher": 7} and prose.audit_settings(tmp_path / "none.json") == {}
    assert prose.audit_claim(9, fake) is None and prose.seed_baseline(tmp_path / "none.json") is None

    rec = prose.recorded_accuracy({"evals": [{"attack": "none", "eps": 8 / 255, "n": 100, "clean_acc": 0.5,
                                              "robust_acc": 0.5}]})
    assert rec["acc"] == 0.5 and rec["n"] == 100 and rec["ci"][0] < 0.5 < rec["ci"][1]
    assert prose.recorded_accuracy({"evals": []}) is None

    rows = prose.sampler_rows({"m": {"sampler": {"joint": {"step": "langevin", "step_size": 4.0, "n_steps": 10,
                                                           "noise_std": 0.001}}}, "n": {}})
    assert len(rows) == 1 and rows[0]["exact Langevin √η"] == 2.0 and rows[0]["noise s"] == 0.001

    seeds, labels = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    row = prose.seed_row(seeds, labels, loaded={"evaluator": lambda x: torch.zeros(len(x), 10)})
    assert row["scored by"] == "evaluator" and row["p(y | x)"] == pytest.approx(0.1) and row["moved L2"] == 0.0


AA_QUOTE = re.compile(r"(AT|PreJEAT|JEAT|JEM|σ\s=\s\d+/255)\s([\d.]+)%\s\[([\d.]+),\s([\d.]+)\]\s\(n\s=\s([\d,]+)\)"
                      r"\svs\sPGD-20\s([\d.]+)%\s\(n\s=\s([\d,]+)\)")  # a quote may wrap at any space


def aa_problems(text: str) -> list[str]:
    """figures/README.md quotes each recorded AutoAttack of Tab. 3 beside its PGD-20, as
    ``AT 30.3% [27.5, 33.2] (n = 1,000) vs PGD-20 34.4% (n = 1,000)``: every quote matches table3_robustness.json
    and every row with a record is quoted."""
    rows = _table("figures/table3_robustness.json")
    quoted, out = {}, []
    for m in AA_QUOTE.finditer(text):
        name, acc, lo, hi, n, pgd, n_pgd = m.groups()
        name = re.sub(r"\s", " ", name)
        quoted[name] = True
        r = rows.get(name)
        if r is None or r["autoattack_acc"] is None:
            out.append(f"figures/README.md quotes an AutoAttack for {name}; Tab. 3 has none")
            continue
        want = (_pct(r["autoattack_acc"]), *(_pct(v) for v in r["autoattack_ci"]), f"{r['autoattack_n']:,}",
                _pct(r["pgd20_acc"]), f"{r['n']:,}")
        if (acc, lo, hi, n, pgd, n_pgd) != want:
            out.append(f"figures/README.md: {m.group(0)!r}, Tab. 3 says {want}")
    missing = [k for k, r in rows.items() if r["autoattack_acc"] is not None and k not in quoted]
    if missing:
        out.append(f"figures/README.md does not quote the recorded AutoAttack of {', '.join(missing)}")
    return out


def check_figure_quotes(problems, quote: re.Pattern, what: str) -> None:
    """figures/README.md's quotes of ``what`` (found by ``quote``) pass ``problems``, there is one,
    and a number changed in the first is caught."""
    text = FILES["figures"].read_text()
    assert not problems(text), "\n".join(problems(text))
    m = quote.search(text)
    assert m, f"figures/README.md quotes no {what}"
    assert problems(text.replace(m.group(0), m.group(0).replace("% [", "1% [", 1), 1)), "a changed number passed"


def test_autoattack_quotes_match_tab3():
    check_figure_quotes(aa_problems, AA_QUOTE, "AutoAttack")


SEED_QUOTE = re.compile(r"(AT|PreJEAT|JEAT)\s([\d.]+)%\s\[([\d.]+),\s([\d.]+)\]\sover\s(\d)\sruns")


def seed_problems(text: str) -> list[str]:
    """figures/README.md quotes each robust method's AutoAttack over its training runs as
    ``AT 26.2% [22.5, 29.9] over 3 runs``: every quote matches paper_items.table3_seed_rows on the
    shipped manifests, and every method with a mean row is quoted."""
    from jeat_core.core.checkpoints import read_manifest, resolve
    from jeat_core.paper.experiments import TRAINING_SEEDS, training_runs
    from jeat_core.paper.paper_items import table3_seed_rows

    manifests = {r: read_manifest(resolve(f"cifar10-cpu/{r}")) for m in TRAINING_SEEDS for r in training_runs(m)}
    means = {r["model"]: r for r in table3_seed_rows(manifests) if r["run"].startswith("mean")}
    quoted, out = set(), []
    for m in SEED_QUOTE.finditer(text):
        name, acc, lo, hi, k = m.groups()
        quoted.add(name)
        r = means.get(name)
        want = r and (_pct(r["autoattack_acc"]), *(_pct(v) for v in r["autoattack_ci"]), r["run"].split()[2])
        if (acc, lo, hi, k) != want:
            out.append(f"figures/README.md: {m.group(0)!r}, table3_seed_rows says {want}")
    missing = sorted(set(means) - quoted)
    if missing:
        out.append(f"figures/README.md does not quote the AutoAttack over training runs of {', '.join(missing)}")
    return out


def test_autoattack_over_training_seeds_quotes_match_the_records():
    check_figure_quotes(seed_problems, SEED_QUOTE, "AutoAttack over training runs")

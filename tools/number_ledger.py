"""Where every number a reader sees comes from: the ledger of ``docs/numbers.json`` and its checker.

A number in the prose of ``README.md``, ``figures/README.md``, ``docs/*.md`` or a notebook's markdown
is accounted for when it is

* **generated**: inside a block a program renders (``<!-- name: begin ... -->`` … ``<!-- name: end -->``,
  ``<!-- table: ... -->`` … ``<!-- end table -->``), a fenced code block, an inline code span or a formula
  (``$...$``, which the notebooks' derivations use);
* **checked**: inside a sentence a test reads back from its source (the patterns of
  ``tests/test_prose_numbers.py``; a ledger entry ``checked_by`` names any other test and the quote it guards);
* **read from JSON**: a ledger entry names the file, the key and the format, and the quote must read that
  value formatted so (``"source"``, ``"key"``, ``"fmt"``);
* **the paper's**: a ledger entry marked ``"paper": "Tab. 2"`` quotes the paper; each of its numbers must
  occur in the paper's text (checked where ``JEAT_PAPER`` or ``../shared/paper/jeat-paper.txt`` exists);
* **listed**: a ledger entry gives the quote and why the number is what it is (``"why"``: a constant of the
  paper, a setting, a size of CIFAR-10, a number the paper reports).

References (``Eq. 16``, ``Fig. 3``, ``claim 4``, ``§3.4``) and integers below 100 that are neither percentages nor
fractions
(counts: runs, steps, epochs, K) are outside the ledger; the README's and the notebooks' own tests check
the counts that decide something (runs per method, shipped models, the tally).

``python tools/number_ledger.py [--refresh]`` re-renders the blocks of ``figures/README.md`` from
``figures/audit.json`` and lists what is not accounted for, with the JSON leaves that would explain
each; ``--add`` appends those with one explanation (``"why": "TODO"`` otherwise, which the test rejects).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LEDGER = REPO / "docs" / "numbers.json"
# the paper's text, where the workspace has it (not shipped: the paper is not ours to redistribute); a ledger
# entry marked ``"paper"`` is checked against it when it is there
PAPER = Path(os.environ.get("JEAT_PAPER", REPO.parent / "shared" / "paper" / "jeat-paper.txt"))
# the JSON files a quote may be read from, searched in this order when proposing a source
SOURCES = ("figures/audit.json", "figures/table3_robustness.json", "figures/table1_attacks.json",
           "figures/table2_fisher.json", "figures/trades_generation.json", "figures/alg1_study.json",
           "benchmarks/results/bench_core.json")
NUM = re.compile(r"(?<![\w.\-/−+])[−+-]?\d[\d,]*(?:\.\d+)?(?:/\d+)?(?![\w])%?")
REFERENCE = re.compile(r"(?:Eqs?\.|Figs?\.|Tabs?\.|Table|§|[Cc]laims?|Algorithm|[Nn]otebooks?|[Pp]arts?|Section|"
                       r"Step|Appendix|Proposition|Theorem|Lemma|and|or|,)\s*$")
GENERATED = (r"```.*?```", r"<!-- ([\w-]+): begin.*?<!-- \1: end -->", r"<!-- table:.*?<!-- end table -->",
             r"<!--.*?-->", r"`[^`\n]*`", r"\$\$.*?\$\$", r"\$[^$\n]+\$", r"\]\([^)\s]*\)", r"https?://\S+")


def documents() -> dict[str, str]:
    """Every document whose numbers the ledger accounts for: its path -> its prose (a notebook's markdown)."""
    import jupytext

    out = {p: (REPO / p).read_text() for p in ("README.md", "figures/README.md")}
    out.update({f"docs/{p.name}": p.read_text() for p in sorted((REPO / "docs").glob("*.md"))})
    for p in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py")):
        cells = jupytext.read(p).cells
        out[f"notebooks/{p.name}"] = "\n\n".join(c.source for c in cells if c.cell_type == "markdown")
    return out


def _blank(text: str, spans) -> str:
    chars = list(text)
    for a, b in spans:
        chars[a:b] = " " * (b - a)
    return "".join(chars)


def checked_spans(path: str, text: str) -> list[tuple[int, int]]:
    """Where in ``text`` the quote checks of ``tests/test_prose_numbers.py`` match (their numbers are read
    back from the source files by that test)."""
    sys.path.insert(0, str(REPO / "tests"))
    import test_prose_numbers as tp

    key = {str(p.relative_to(REPO)): k for k, p in tp.FILES.items()}.get(path)
    spans = []
    if key is not None:
        spans += [m.span() for k, pattern, _ in tp.checks() if k == key for m in re.finditer(pattern, text)]
    if path == "figures/README.md":
        spans += [m.span() for pat in (tp.AA_QUOTE, tp.SEED_QUOTE) for m in pat.finditer(text)]
    if path.startswith("notebooks/"):
        spans += [m.span() for pat in tp.SIZE_PHRASES.values() for m in re.finditer(pat, text)]
    return spans


def prose(path: str, text: str) -> str:
    """``text`` with its generated and checked parts blanked out and its whitespace collapsed."""
    text = _blank(text, checked_spans(path, text))
    for pattern in GENERATED:
        text = re.sub(pattern, lambda m: " " * len(m.group(0)), text, flags=re.S)
    return " ".join(text.split())


def in_scope(text: str, m: re.Match) -> bool:
    """Whether the number ``m`` needs an account: not a reference, not a small count."""
    if REFERENCE.search(text[max(0, m.start() - 14):m.start()]) and not m.group(0).endswith("%"):
        return False
    tok = m.group(0)
    if tok.endswith("%") or "." in tok or "/" in tok:
        return True
    return abs(int(tok.replace(",", "").replace("−", "-"))) >= 100


@dataclass
class Entry:
    file: str
    text: str
    why: str | None = None
    source: str | None = None
    key: str | list[str] | None = None
    fmt: str | None = None
    number: str | list[str] | None = None
    checked_by: str | None = None
    paper: str | None = None


def _listed(x) -> list:
    return x if isinstance(x, list) else [x]


def load() -> tuple[list[dict], list[Entry]]:
    data = json.loads(LEDGER.read_text()) if LEDGER.is_file() else {"constants": [], "quotes": []}
    return data["constants"], [Entry(**e) for e in data["quotes"]]


def lookup(obj, key: str):
    """The value at ``key`` (``claims[id=9].ours.x``, ``rows[model=AT].pgd20_acc``, ``a.b[2]``) in ``obj``."""
    for part in re.findall(r"[^.\[\]]+|\[[^\]]+\]", key):
        if part.startswith("["):
            inner = part[1:-1]
            if "=" in inner:
                k, v = inner.split("=", 1)
                obj = next(o for o in obj if isinstance(o, dict) and str(o.get(k)) == v)
            else:
                obj = obj[int(inner)]
        else:
            obj = obj[part]
    return obj


def formatted(value, fmt: str) -> str:
    """``value`` written as the prose writes it: ``pct1`` (100·v, one decimal), ``.3f``, ``,d``, ``min``
    (seconds as whole minutes); a minus sign is U+2212."""
    if fmt.startswith("pct"):
        s = f"{100 * value:.{int(fmt[3:])}f}"
    elif fmt == "min":
        s = f"{round(value / 60)}"
    elif fmt == ",d":
        s = f"{int(value):,}"
    else:
        s = format(value, fmt)
    return s.replace("-", "−")


def _norm(tok: str) -> str:
    return tok.rstrip("%").lstrip("+").replace("-", "−")


def problems(docs: dict[str, str] | None = None) -> list[str]:
    """Everything wrong: a number not accounted for, a ledger quote not found, a JSON quote that disagrees."""
    docs = documents() if docs is None else docs
    constants, entries = load()
    out: list[str] = []
    tests = {p.stem: p.read_text() for p in (REPO / "tests").glob("test_*.py")}
    paper = PAPER.read_text() if PAPER.is_file() else ""
    for e in entries:
        if e.why is not None and (not e.why.strip() or e.why.strip() == "TODO"):
            out.append(f"{e.file}: {e.text!r} has no explanation")
        if e.checked_by:
            mod, _, fn = e.checked_by.partition("::")
            if f"def {fn}(" not in tests.get(Path(mod).stem, ""):
                out.append(f"{e.file}: {e.text!r} is checked by {e.checked_by}, which does not exist")
        if e.source:
            report = json.loads((REPO / e.source).read_text())
            keys, numbers = _listed(e.key), _listed(e.number)
            if len(keys) != len(numbers):
                out.append(f"{e.file}: {e.text!r} lists {len(numbers)} numbers for {len(keys)} keys")
            for key, number in zip(keys, numbers):
                want = formatted(lookup(report, key), e.fmt)
                if _norm(number) != want:
                    out.append(f"{e.file}: quotes {number} ({e.text!r}); {e.source} {key} reads {want}")
                if number not in e.text:
                    out.append(f"{e.file}: {number} is not in its quote {e.text!r}")
        if e.paper and PAPER.is_file():
            missing = [m.group(0).rstrip("%") for m in NUM.finditer(e.text) if m.group(0).rstrip("%") not in paper]
            if missing:
                out.append(f"{e.file}: {e.text!r} says the paper reports {missing}; the paper's text does not")
    for path, raw in docs.items():
        text = prose(path, raw)
        covered: list[tuple[int, int]] = []
        own = [e.text for e in entries if e.file == path]
        for quote in own + [c["text"] for c in constants]:
            start = text.find(quote)
            if start < 0 and quote in own:
                out.append(f"{path}: the ledger's quote {quote!r} is not in the text (changed? see docs/numbers.json)")
            while start >= 0:
                covered.append((start, start + len(quote)))
                start = text.find(quote, start + 1)
        for m in NUM.finditer(text):
            if in_scope(text, m) and not any(a <= m.start() and m.end() <= b for a, b in covered):
                ctx = text[max(0, m.start() - 50):m.end() + 20]
                out.append(f"{path}: {m.group(0)} is not accounted for: …{ctx}…")
    return out


def _leaves(obj, key=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, f"{key}.{k}" if key else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            ident = next((f"{k}={v[k]}" for k in ("id", "model", "attack", "name", "run", "label")
                          if isinstance(v, dict) and isinstance(v.get(k), (str, int)) and "]" not in str(v[k])
                          and "." not in str(v[k])), str(i))
            yield from _leaves(v, f"{key}[{ident}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool) and math.isfinite(obj):
        yield key, obj


def propose(tok: str) -> tuple[str, str, str] | None:
    """A JSON leaf whose value formats to ``tok`` (at least two significant digits), as (file, key, fmt)."""
    t = _norm(tok).replace(",", "")
    if len(re.sub(r"[^1-9]", "", t.lstrip("0.−"))) + t.count("0") < 2:
        return None
    decimals = len(t.split(".")[1]) if "." in t else 0
    fmts = [f"pct{decimals}"] if tok.endswith("%") else [f".{decimals}f", f"pct{decimals}"]
    for src in SOURCES:
        for key, value in _leaves(json.loads((REPO / src).read_text())):
            for fmt in fmts:
                if formatted(value, fmt).replace(",", "") == t:
                    return src, key, fmt
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--add", action="store_true", help="append the unaccounted numbers to docs/numbers.json")
    ap.add_argument("--refresh", action="store_true",
                    help="re-render figures/README.md's generated blocks from figures/audit.json first")
    args = ap.parse_args(argv)
    if args.refresh:
        sys.path.insert(0, str(REPO))
        from jeat_core.paper.verdicts import refresh_blocks

        path = REPO / "figures" / "README.md"
        path.write_text(refresh_blocks(path.read_text(), json.loads((REPO / "figures" / "audit.json").read_text())))
    constants, entries = load()
    found = problems()
    new = []
    for line in found:
        m = re.match(r"(\S+): (\S+) is not accounted for: …(.*)…$", line)
        if not m:
            print(line)
            continue
        path, tok, ctx = m.groups()
        at = ctx.find(tok, 0)
        lo = ctx.rfind(" ", 0, max(0, at - 12))
        hi = ctx.find(" ", at + len(tok) + 4)
        quote = ctx[lo + 1 if lo >= 0 else 0: hi if hi > 0 else len(ctx)]
        src = propose(tok) if "--guess" in sys.argv else None
        e = {"file": path, "text": quote}
        if src:
            e.update(source=src[0], key=src[1], fmt=src[2], number=tok.rstrip("%"))
        else:
            e["why"] = "TODO"
        new.append(e)
        print(f"{path}: {tok}  {quote!r}  <- {src}")
    if args.add and new:
        data = {"constants": constants, "quotes": [{k: v for k, v in vars(e).items() if v is not None}
                                                   for e in entries] + new}
        LEDGER.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())

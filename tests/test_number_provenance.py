"""Every number a reader sees in README.md, figures/README.md, docs/ and the notebooks' markdown is generated,
checked against its source, or listed with its source in ``docs/numbers.json`` (``tools/number_ledger.py``
says how each kind is accounted for). Protects the prose from stale quotes: change one quoted number by hand
and a test here fails. Reads files only: seconds.
"""

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
import number_ledger  # noqa: E402


@pytest.fixture(scope="module")
def docs() -> dict[str, str]:
    return number_ledger.documents()


def test_every_number_is_accounted_for(docs):
    bad = number_ledger.problems(docs)
    assert not bad, "\n".join(bad[:40]) + (f"\n… and {len(bad) - 40} more" if len(bad) > 40 else "")


@pytest.mark.parametrize("path,old,new", [
    ("figures/README.md", "0.076 [0.044, 0.115]", "0.077 [0.044, 0.115]"),   # read from audit.json
    ("figures/README.md", "KID +0.20 [+0.10, +0.30]", "KID +0.21 [+0.10, +0.30]"),  # read from its JSON table
    ("docs/evaluation.md", "0.936", "0.946"),                                 # listed with its source
    ("README.md", "in 23–157 minutes", "in 23–158 minutes"),                  # checked by another test
    ("figures/README.md", "ε = 8/255", "ε = 9/255"),                          # a constant
])
def test_a_number_changed_by_hand_is_caught(docs, path, old, new):
    assert old in docs[path], f"the mutation's text is gone from {path}: {old!r}"
    changed = dict(docs)
    changed[path] = docs[path].replace(old, new, 1)
    assert len(number_ledger.problems(changed)) > len(number_ledger.problems(docs)), f"{old!r} -> {new!r} passed"


def test_a_new_unlisted_number_is_caught(docs):
    changed = dict(docs)
    changed["README.md"] = docs["README.md"] + "\nOur models reach 97.3% on a benchmark.\n"
    assert any("97.3" in p for p in number_ledger.problems(changed))


def test_json_quotes_are_read_from_their_source():
    """A ledger entry that names a JSON key is compared with that key's value, formatted as the prose writes it."""
    assert number_ledger.formatted(0.3388, ".3f") == "0.339"
    assert number_ledger.formatted(-0.0462, "pct1") == "−4.6"
    assert number_ledger.formatted(1000, ",d") == "1,000"
    report = json.loads((REPO / "figures" / "audit.json").read_text())
    assert number_ledger.lookup(report, "claims[id=9].ours.ci[0]") == report["claims"][8]["ours"]["ci"][0]


def test_generated_blocks_are_current():
    """The verdict blocks of figures/README.md are verdicts.refresh_blocks(audit.json) of themselves (rerun
    ``python tools/number_ledger.py --refresh`` after an audit)."""
    from jeat_core.paper.verdicts import refresh_blocks

    text = (REPO / "figures" / "README.md").read_text()
    report = json.loads((REPO / "figures" / "audit.json").read_text())
    assert refresh_blocks(text, report) == text, "stale blocks: run tools/number_ledger.py --refresh"

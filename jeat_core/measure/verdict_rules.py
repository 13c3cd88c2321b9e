"""The verdict words and the small rules that turn intervals into them, in one place.

A claim of the paper is decided from the 95% interval of the quantity it is about, never from a point
estimate. The words (:data:`VERDICTS`):

* **reproduced**: the interval excludes the null in the paper's direction;
* **not reproduced**: it excludes the null in the other direction;
* **depends on the ruler**: the feature spaces a generation claim is scored in disagree;
* **inconclusive** (**leaning against / toward the paper** when the other rulers all point one way):
  the interval contains the null;
* **one run per side: not decided over runs** (:data:`ONE_RUN`): a comparison of methods with fewer
  than two training runs on a side has no run-level interval;
* **not measurable here**: a model is not shipped (the reason is given).

The rules: :func:`verdict_from_ci` (a quantity against a null), :func:`equivalence_verdict` ("as
effective as", inside a margin), :func:`combine` (a claim made of several comparisons),
:func:`part_verdict` / :func:`image_level_verdict` / :func:`generation_claim_verdict` (the generation
claims, across rulers: ``docs/evaluation.md``), :func:`interval_verdicts`, :func:`over_runs_verdict`,
:func:`all_or_any` and :func:`runs_claim_verdict` (claims decided over training runs). Plain data: no
torch, nothing else of ``jeat_core``; :mod:`jeat_core.measure.gen_eval`, :mod:`jeat_core.paper.claims`,
:mod:`jeat_core.paper.run_claims` and :mod:`jeat_core.paper.audit` import them from here.
"""

from __future__ import annotations

ONE_RUN = "one run per side: not decided over runs"
NOT_MEASURABLE = "not measurable here"
LEAN_AGAINST, LEAN_TOWARD = "inconclusive, leaning against the paper", "inconclusive, leaning toward the paper"
# longest first where one starts another ("inconclusive, leaning ..." before "inconclusive"), so that a
# regular expression of the alternatives reads the whole word
VERDICTS = ("reproduced", "not reproduced", "depends on the ruler", LEAN_AGAINST, LEAN_TOWARD, "inconclusive",
            ONE_RUN, NOT_MEASURABLE)
DIRECTIONS = ("a<b", "a>b")


# ----------------------------------------------------------------------------- one quantity, one claim
def verdict_from_ci(ci: tuple[float, float], direction: int, null: float = 0.0) -> str:
    """Verdict on a quantity whose paper-predicted sign relative to ``null`` is ``direction`` (+1: above,
    -1: below), from its 95% interval ``ci`` (the audit's rule)."""
    if direction not in (1, -1):
        raise ValueError("direction must be +1 or -1")
    lo, hi = (direction * (v - null) for v in ci)
    lo, hi = min(lo, hi), max(lo, hi)
    if lo > 0:
        return "reproduced"
    if hi < 0:
        return "not reproduced"
    return "inconclusive"


def equivalence_verdict(ci: tuple[float, float], margin: float) -> str:
    """"As effective as": reproduced when the interval of the difference lies inside ±``margin``,
    not reproduced when it lies wholly outside, otherwise inconclusive."""
    lo, hi = ci
    if -margin <= lo and hi <= margin:
        return "reproduced"
    if hi < -margin or lo > margin:
        return "not reproduced"
    return "inconclusive"


def combine(verdicts: list[str]) -> str:
    """A claim made of several comparisons (an order of three models): reproduced only if every part
    is; not reproduced if any part is; otherwise inconclusive."""
    if not verdicts:
        raise ValueError("no verdicts to combine")
    return NOT_MEASURABLE if NOT_MEASURABLE in verdicts else all_or_any(verdicts)


# ----------------------------------------------------------------------------- generation claims (across rulers)
def _side(ci: tuple[float, float]) -> int:
    """+1 when the interval lies above 0, −1 below, 0 when it contains 0."""
    lo, hi = ci
    return 1 if lo > 0 else -1 if hi < 0 else 0


def part_verdict(comparisons: list[dict], paper_direction: str) -> str:
    """The verdict of one claim part from its comparisons (records with ``metric``, ``ci``), the first
    ``kid`` comparison being the primary space's (``docs/evaluation.md``):

    * ``reproduced``: the primary interval excludes 0 in the paper's direction and no comparison
      excludes 0 the other way;
    * ``not reproduced``: the primary interval excludes 0 the other way and no comparison excludes it
      in the paper's direction;
    * ``depends on the ruler``: comparisons exclude 0 in opposite directions (and neither of the above);
    * ``inconclusive, leaning against the paper`` (``toward``): the primary interval contains 0 while
      other rulers exclude 0, all of them against (toward) the paper;
    * ``inconclusive``: otherwise.

    A part whose primary comparison has fewer than two training runs on a side (``training_seeds`` < 2)
    is :data:`ONE_RUN`: it gets no verdict over runs (:func:`image_level_verdict` says what its
    one run per side shows). ``paper_direction`` is ``"a<b"`` when the paper says a scores lower
    (better) than b."""
    primary = _primary(comparisons, paper_direction)
    if primary.get("training_seeds", 1) < 2:
        return ONE_RUN
    return image_level_verdict(comparisons, paper_direction)


def _primary(comparisons: list[dict], paper_direction: str) -> dict:
    if paper_direction not in DIRECTIONS:
        raise ValueError(f"paper_direction must be one of {DIRECTIONS}; got {paper_direction!r}")
    primary = next((c for c in comparisons if c["metric"] == "kid"), None)
    if primary is None:
        raise ValueError("a claim part needs a KID comparison (the first one is the primary space)")
    return primary


def image_level_verdict(comparisons: list[dict], paper_direction: str) -> str:
    """:func:`part_verdict`'s rule read from the intervals as they are, whatever the number of runs."""
    primary = _primary(comparisons, paper_direction)
    want = -1 if paper_direction == "a<b" else 1
    sides = [_side(c["ci"]) for c in comparisons]
    agree, against = want in sides, -want in sides
    p = _side(primary["ci"])
    if p == want and not against:
        return "reproduced"
    if p == -want and not agree:
        return "not reproduced"
    if agree and against:
        return "depends on the ruler"
    if against:
        return LEAN_AGAINST
    if agree:
        return LEAN_TOWARD
    return "inconclusive"


def generation_claim_verdict(verdicts: list[str]) -> str:
    """A generation claim from its parts' verdicts: reproduced when every part is; not reproduced when
    one is (and none depends on the ruler); depends on the ruler when one does; not decided over runs
    when no part is decided over runs; else inconclusive (leaning against or toward the paper when
    every undecided part that leans leans that way)."""
    if verdicts and all(v == "reproduced" for v in verdicts):
        return "reproduced"
    if "depends on the ruler" in verdicts:
        return "depends on the ruler"
    if "not reproduced" in verdicts:
        return "not reproduced"
    if verdicts and all(v == ONE_RUN for v in verdicts):
        return ONE_RUN
    leans = {v for v in verdicts if v in (LEAN_AGAINST, LEAN_TOWARD)}
    return leans.pop() if len(leans) == 1 else "inconclusive"


# ----------------------------------------------------------------------------- claims decided over training runs
def interval_verdicts(ci, direction: int, runs: int) -> tuple[str, str]:
    """(verdict over runs, what the interval as it is says)."""
    image = verdict_from_ci(ci, direction)
    return (image if runs >= 2 else ONE_RUN), image


def over_runs_verdict(over_runs: list[str]) -> str:
    """A part decided over runs from its comparisons' verdicts: :data:`ONE_RUN` when a comparison has one
    run on a side, reproduced when every comparison is, not reproduced when one is, else inconclusive."""
    return ONE_RUN if ONE_RUN in over_runs else all_or_any(over_runs)


def all_or_any(vs: list[str]) -> str:
    """Reproduced when every verdict is, not reproduced when one is, else inconclusive."""
    return "reproduced" if all(v == "reproduced" for v in vs) else "not reproduced" if "not reproduced" in vs \
        else "inconclusive"


def runs_claim_verdict(parts: list[dict]) -> str:
    """A claim from its parts (as :func:`generation_claim_verdict`, without rulers)."""
    vs = [p["verdict"] for p in parts]
    verdict = all_or_any(vs)
    return ONE_RUN if verdict == "inconclusive" and all(v == ONE_RUN for v in vs) else verdict

"""The training code's refactors change no number: a short deterministic CPU run of every method that
existed before the split of ``training.py`` gives the same weights, energy log, manifest and preset
configs (sha256 fingerprints written by ``tests/golden/make_training_golden.py`` with the code before
the split). A method added later is not in the golden file and is not checked here.

The fingerprints are of float32 CPU arithmetic with one thread; a different CPU, BLAS or torch build
may round differently, in which case regenerate them with the older code (see the script)."""

import json
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))
from make_training_golden import fingerprint  # noqa: E402

EXPECTED = json.loads((GOLDEN / "training_fingerprints.json").read_text())


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_training_is_bit_identical_to_before_the_split(method):
    assert fingerprint(method) == EXPECTED[method]

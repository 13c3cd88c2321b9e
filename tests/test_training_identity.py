"""The training code's refactors change no number: a short deterministic CPU run of every method that
existed before the split of ``training.py`` gives the same weights, energy log, manifest and preset
configs (sha256 fingerprints written by ``tests/golden/make_training_golden.py``). A method added later
is not in the golden file and is not checked here.

The fingerprints are of float32 CPU arithmetic with one thread and PyTorch's generic CPU kernels
(``ATEN_CPU_CAPABILITY=default``), so that the vector width of the machine (AVX2, AVX-512) does not
change the rounding: the run happens in a subprocess started with that setting. The committed file
was written so by the code of commit 4c796db, whose training was checked bit-identical to the code
before the split (on the machine of that time, with its native kernels)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
EXPECTED = json.loads((GOLDEN / "training_fingerprints.json").read_text())


@pytest.fixture(scope="module")
def fingerprints() -> dict:
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(GOLDEN / "make_training_golden.py")], env=env, capture_output=True,
                         text=True, check=True, cwd=GOLDEN.parents[1])
    return json.loads(out.stdout)


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_training_is_bit_identical_to_before_the_split(method, fingerprints):
    assert fingerprints[method] == EXPECTED[method]

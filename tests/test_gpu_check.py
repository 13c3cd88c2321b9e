"""benchmarks/gpu_check.py --dry-run: every section of the GPU check, tiny, on the CPU."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from jeat_core.train.training import METHODS

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # over 15 s: `make test` runs it, the inner loop (`make test-fast`) does not
def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / "gpu_check.json"
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.is_file(), p.stdout + p.stderr
    r = json.loads(out.read_text())
    s = r["sections"]
    failed = {k: v.get("error") for k, v in s.items() if not v["ok"]}
    assert not failed, failed
    assert p.returncode == 0 and r["ok"], p.stdout[-2000:] + p.stderr[-2000:]
    assert r["dry_run"] and r["device"] == "cpu"
    assert s["matmul"]["tflops"] > 0
    t = s["unit_tests"]
    assert t["returncode"] == 0 and t["passed"] >= 1 and not t["failed"], t["output_tail"]
    tp = s["throughput"]["methods"]
    assert list(tp) == list(METHODS)
    for m, v in tp.items():
        assert v["images_per_s"] > 0 and 0 < v["mfu_vs_measured_matmul"] < 10, (m, v)
        assert v["model"] == "wrn"
    # the SGLD methods do more model passes per step than a plain CE step
    flop = {m: v["model_tflop_per_step"] for m, v in tp.items()}
    assert flop["jeat"] > flop["at"] > flop["standard"]
    assert tp["jeat"]["norm"] == "none" and tp["at"]["norm"] == "batch"
    assert math.isclose(sum(v["share"] for v in tp["jeat"]["split"].values()), 1.0)
    at = s["at_run"]
    assert at["steps"] >= 4 and at["curve"]
    for k in ("before", "after"):
        assert 0 <= at[k]["pgd20_acc"] <= 1 and 0 <= at[k]["clean_acc"] <= 1 and at[k]["n"] == 16
    g = s["generation"]
    assert g["n"] == 10 and g["generate_s"] > 0 and g["sgld_marginal"]["chain_steps_per_s"] > 0
    assert Path(g["grid_png"]).is_file()

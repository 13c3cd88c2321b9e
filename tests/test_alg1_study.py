"""The Algorithm-1 study (``tools/alg1_study.py``): the committed table is what the tool makes of the shipped
probe logs, its AT yardstick is the mean over AT runs of each run's mean CE over the same steps, and the
numbers ``checkpoints/README.md`` quotes from it are the table's."""

import importlib.util
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("alg1_study", REPO / "tools" / "alg1_study.py")
study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study)


def test_the_committed_study_is_what_the_tool_makes(tmp_path):
    assert study.main([str(REPO / "checkpoints" / "alg1-study"), "--out", str(tmp_path / "s")]) == 0
    assert (tmp_path / "s.md").read_text() == (REPO / "figures" / "alg1_study.md").read_text()
    committed = json.loads((REPO / "figures" / "alg1_study.json").read_text())
    assert json.loads((tmp_path / "s.json").read_text()) == committed


def test_the_at_yardstick_averages_each_runs_mean_over_the_steps(tmp_path, monkeypatch):
    for run, ces in {"at-s1": [3.0, 2.0, 1.0], "at-s2": [5.0, 5.0, 5.0]}.items():
        folder = tmp_path / "checkpoints" / "cifar10-cpu" / run
        folder.mkdir(parents=True)
        folder.joinpath("energy_log.jsonl").write_text(
            "".join(json.dumps({"step": 10 * i, "ce": c}) + "\n" for i, c in enumerate(ces)) + "\n")
    monkeypatch.setattr(study, "ROOT", tmp_path)
    assert study.at_ce(10, 20) == (1.5 + 5.0) / 2  # steps 10 and 20 of each run; at-s3, at-s4 not shipped
    assert study.at_ce(100, 200) is None  # no logged step in range


def test_the_readme_quotes_the_study():
    rows = {r["run"]: r for r in json.loads((REPO / "figures" / "alg1_study.json").read_text())["runs"]}
    p6 = rows["alg1-p6"]
    text = (REPO / "checkpoints" / "README.md").read_text()
    m = re.search(r"cross-entropy over steps (\d+)–(\d+) \(([\d.]+)\).*?over the same steps \(([\d.]+),", text, re.S)
    assert m, "the alg1-p6 sentence of checkpoints/README.md moved"
    assert (m[3], m[4]) == (f"{p6['ce_last10']:.2f}", f"{p6['at_ce_same_steps']:.2f}")
    log = [json.loads(x) for x in (REPO / "checkpoints" / "alg1-study" / "alg1-p6" / "energy_log.jsonl")
           .read_text().splitlines() if x.strip()]
    steps = sorted({r["step"] for r in log})
    tail = steps[-max(1, len(steps) // 10):]
    assert (int(m[1]), int(m[2])) == (tail[0], tail[-1])

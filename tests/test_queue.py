"""Protects the training queue (tools/train_queue.py): every step is skipped when its result exists, so an
interrupted queue resumes where it stopped and never loses or redoes a finished run; a diverged run is
shipped without evaluations; a probe is never shipped."""

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def queue(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("jeat_queue", REPO / "tools" / "train_queue.py")
    q = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(q)
    monkeypatch.setattr(q, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(q, "ZOO", tmp_path / "zoo")
    calls = []

    def fake_sh(name, step, args, ok=(0,)):
        """Stands in for a jeat command: training writes a run folder, an eval adds its record."""
        calls.append((name, step))
        out = q.RUNS / name
        if step == "train":
            out.mkdir(parents=True, exist_ok=True)
            diverged = "--diverge" in args
            (out / "model.safetensors").write_bytes(b"w")
            (out / "energy_log.jsonl").write_text("{}\n")
            (out / "manifest.json").write_text(json.dumps(
                {"method": args[args.index("--method") + 1], "steps": 5 if diverged else 10, "total_steps": 10,
                 "config": {}, "metrics": {"diverged": diverged}, "evals": []}))
            return 3 if diverged else 0
        if step.startswith("eval"):
            m = json.loads((q.ZOO / name / "manifest.json").read_text())
            m["evals"].append({"attack": step.split()[1], "n": 10000})
            (q.ZOO / name / "manifest.json").write_text(json.dumps(m))
        if step.startswith("tune"):
            m = json.loads((q.ZOO / name / "manifest.json").read_text())
            m.setdefault("sampler", {})[step.split()[1]] = {}  # "joint", "ce", "joint/as-written" ...
            (q.ZOO / name / "manifest.json").write_text(json.dumps(m))
        return 0

    monkeypatch.setattr(q, "sh", fake_sh)
    return q, calls


def test_a_run_goes_through_every_step_once_and_a_rerun_does_nothing(queue):
    q, calls = queue
    q.run_one("at-s9", ["--method", "at", "--seed", "9"])
    steps = [s for _, s in calls]
    assert steps[0] == "train" and steps[-4:] == ["tune-samplers joint", "tune-samplers ce",
                                                   "tune-samplers joint/as-written", "tune-samplers ce/as-written"]
    assert [s for s in steps if s.startswith("eval")] == [f"eval {a}" for a, _ in q.EVALS]
    assert (q.ZOO / "at-s9" / "manifest.json").is_file() and (q.ZOO / "at-s9" / "energy_log.jsonl").is_file()
    calls.clear()
    q.run_one("at-s9", ["--method", "at", "--seed", "9"])  # resumed after it finished: nothing redone
    assert calls == []


def test_an_interrupted_run_resumes_and_a_shipped_one_is_not_retrained(queue, monkeypatch):
    q, calls = queue
    out = q.RUNS / "prejeat-s9"
    out.mkdir(parents=True)
    (out / "state.pt").write_bytes(b"s")  # a run stopped half-way: its resumable state
    seen = []
    real = q.sh
    monkeypatch.setattr(q, "sh", lambda name, step, args, ok=(0,): seen.append(args) or real(name, step, args, ok))
    q.run_one("prejeat-s9", ["--method", "prejeat"])
    assert "--resume" in seen[0]
    (q.ZOO / "prejeat-s9" / "model.safetensors").unlink()  # shipped manifest kept: never trained again
    calls.clear()
    q.run_one("prejeat-s9", ["--method", "prejeat"])
    assert ("prejeat-s9", "train") not in calls


def test_a_diverged_run_is_shipped_without_evaluations_and_a_probe_is_not_shipped(queue):
    q, calls = queue
    q.run_one("jeat-x", ["--method", "jeat", "--diverge"])
    assert [s for _, s in calls] == ["train"] and (q.ZOO / "jeat-x" / "manifest.json").is_file()
    calls.clear()
    q.run_one("probe-x", ["@train-only", "--method", "jeat"])
    assert [s for _, s in calls] == ["train"] and not (q.ZOO / "probe-x").exists()
    calls.clear()
    q.run_one("probe-x", ["@train-only", "--method", "jeat"])  # finished probe: not trained again
    assert calls == []

"""Protects the audit's cache (jeat_core.paper.audit_cache): `jeat audit` keeps a claim from the earlier report
only while everything it read is unchanged, and never serves a stale result. Each kind of input (a
checkpoint's files, a training run appearing, the settings, the data, the measuring code) is changed once
and exactly the claims that depend on it are measured again; prose changes re-measure nothing."""

import json

import pytest
from conftest import tiny_evaluator

from jeat_core.paper import audit, audit_cache
from jeat_core.paper.audit_sizes import Settings


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A zoo of three loadable checkpoints, two data files, and three fake claims that count their runs:
    1 reads `at`, 2 looks up every training run of `jeat` (it has one of up to SEED_RUNS), 3 reads `at`
    again from the context's memory (so its reads are replayed, not looked up)."""
    zoo = tmp_path / "zoo"
    for name in ("at", "jeat", "spare"):
        tiny_evaluator(zoo / "cifar10-cpu" / name)
    data = tmp_path / "data"
    data.mkdir()
    for f in ("train.npz", "test.npz"):
        (data / f).write_bytes(f.encode())
    monkeypatch.setenv("JEAT_CHECKPOINTS", str(zoo))
    runs: list[int] = []

    def claim(cid, text, read):
        def measure(ctx, st, models):
            runs.append(cid)
            return {"ours": read(ctx), "n": 1, "verdict": "reproduced", "note": ""}
        return audit.Claim(cid, text, "paper", "metric", ("at",) if cid != 2 else ("jeat",), measure)

    def claims(text="claim one"):
        return [claim(1, text, lambda ctx: ctx.model("at")[1]["method"]),
                claim(2, "claim two", lambda ctx: ctx.training_runs("jeat")),
                claim(3, "claim three", lambda ctx: ctx.model("at")[1]["arch"]["name"])]

    monkeypatch.setattr(audit, "CLAIMS", claims())
    state = {"report": None}

    def run(**kw):
        runs.clear()
        report = audit.run_audit(smoke=True, data_root=str(data), previous=state["report"], **kw)
        state["report"] = json.loads(json.dumps(report))  # as it reads back from audit.json
        return sorted(runs)

    return {"zoo": zoo / "cifar10-cpu", "data": data, "run": run, "claims": claims, "state": state}


def test_unchanged_inputs_measure_nothing_and_prose_refreshes(lab, monkeypatch):
    assert lab["run"]() == [1, 2, 3]
    reads = {c["id"]: c["inputs"]["reads"] for c in lab["state"]["report"]["claims"]}
    assert set(reads[1]) == {"cifar10-cpu/at"} and reads[3] == reads[1]  # claim 3's read replayed from memory
    assert reads[2]["cifar10-cpu/jeat"] != audit_cache.ABSENT and reads[2]["cifar10-cpu/jeat-s1"] == audit_cache.ABSENT
    assert lab["run"]() == []
    assert lab["state"]["report"]["reran"][-1]["claims"] == []
    monkeypatch.setattr(audit, "CLAIMS", lab["claims"]("claim one, reworded"))  # prose
    assert lab["run"]() == [] and lab["state"]["report"]["claims"][0]["claim"] == "claim one, reworded"
    assert lab["run"](only={2}) == [2]  # --only measures what it names whatever the cache says
    assert lab["run"](fresh=True) == [1, 2, 3] and "reran" not in lab["state"]["report"]


def test_each_kind_of_input_measures_again_exactly_what_read_it(lab, monkeypatch):
    run = lab["run"]
    assert run() == [1, 2, 3]
    manifest = lab["zoo"] / "at" / "manifest.json"  # a checkpoint's files change (e.g. a new eval record)
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "evals": []}))
    assert run() == [1, 3]
    tiny_evaluator(lab["zoo"] / "jeat-s1")  # a new training run appears
    assert run() == [2]
    assert run() == []
    (lab["data"] / "test.npz").write_bytes(b"other")  # the data
    audit_cache.data_hash.cache_clear()
    assert run() == [1, 2, 3]
    smaller = Settings.smoke_run()  # the settings
    monkeypatch.setattr(Settings, "smoke_run", classmethod(lambda cls: Settings(**{**smaller.__dict__,
                                                                                  "n_attack": smaller.n_attack + 1})))
    assert run() == [1, 2, 3]
    monkeypatch.setattr(audit_cache, "code_version", lambda: "another version")  # the measuring code
    assert run() == [1, 2, 3]
    assert run() == []
    monkeypatch.setattr(audit_cache, "peer_versions", lambda: {"torchattacks": None})  # a peer library
    assert run() == [1, 2, 3]
    weights = lab["data"] / "inception.pt"  # Inception weights given
    weights.write_bytes(b"weights")
    assert run(inception_weights=str(weights)) == [1, 2, 3]
    assert run(inception_weights=str(weights)) == []


def test_the_code_version_ignores_prose_and_sees_code(tmp_path):
    src = tmp_path / "m.py"

    def version(text):
        src.write_text(text)
        return audit_cache.source_version([src], tmp_path)

    base = version('"""Doc."""\nGEN_METRIC = "words"\n\n\ndef f(x):\n    """Doc."""\n    return x + 1  # note\n\n\n'
                   'C = Claim(1, "a claim", "its value", "a metric", ("at",), f)\n')
    assert version('"""Other doc."""\nGEN_METRIC = "other words"\n\n\ndef f(x):\n    """New."""\n    return x + 1\n\n\n'
                   'C = Claim(1, "reworded", "value", "metric", ("at",), f)\n') == base
    assert version('"""Doc."""\nGEN_METRIC = "words"\n\n\ndef f(x):\n    """Doc."""\n    return x + 2\n\n\n'
                   'C = Claim(1, "a claim", "its value", "a metric", ("at",), f)\n') != base
    assert version('"""Doc."""\nGEN_METRIC = "words"\n\n\ndef f(x):\n    """Doc."""\n    return x + 1\n\n\n'
                   'C = Claim(1, "a claim", "its value", "a metric", ("jeat",), f)\n') != base
    assert audit_cache.code_version() == audit_cache.code_version() and len(audit_cache.code_version()) == 64

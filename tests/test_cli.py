"""The `jeat` command (`python -m jeat_core`): strict parsing of sizes and labels, bad arguments and
values reported in one line (exit status 2), and train / eval / generate / resume end to end."""

import json
import subprocess
import sys

import numpy as np
import pytest

from jeat_core.cli import main, parse_labels, size


def run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "jeat_core", *args], capture_output=True, text=True, timeout=timeout)


def test_sizes_and_labels():
    assert size("8/255") == pytest.approx(8 / 255) and size("0.5") == 0.5
    assert parse_labels("all") == list(range(10))
    assert parse_labels("0,cat,8") == [0, 3, 8]
    with pytest.raises(ValueError, match="bad label '11'"):
        parse_labels("0,11")


@pytest.mark.parametrize("args,msg", [
    (["train", "--method", "at", "--eps", "eight"], "is not a number or fraction"),
    (["train", "--method", "at", "--eps=-8/255"], "must be >= 0"),
    (["train", "--method", "gan"], "invalid choice: 'gan'"),
    (["train", "--method", "at", "--max-steps", "0"], "must be an integer in [1, "),
    (["eval", "--model", "x", "--attack", "cw"], "invalid choice: 'cw'"),
])
def test_bad_cli_arguments(args, msg, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and msg in capsys.readouterr().err


def test_bad_cli_values_are_reported_not_raised(capsys, tmp_path):
    assert main(["train", "--method", "standard", "--sigma", "8/255", "--dataset", "procedural"]) == 2
    assert "--sigma does not apply to --method standard (--sigma applies to noise)" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path / "missing")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    assert main(["train", "--method", "standard", "--data-root", str(tmp_path), "--max-steps", "1",
                 "--out", str(tmp_path / "o")]) == 2
    assert "data not found" in capsys.readouterr().err


@pytest.mark.slow
def test_train_eval_generate_on_real_cifar(tmp_path, data_root):
    out = tmp_path / "at"
    r = run("train", "--method", "at", "--max-steps", "3", "--data-root", data_root, "--out", str(out),
            "--eval-n", "100", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert {"model.safetensors", "manifest.json", "state.pt", "energy_log.jsonl"} <= {p.name for p in out.iterdir()}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data"]["sha256"] == "239ecf5a09203869e4b19678d4b01b39f623a469d91774b99257baa0ddc79ed7"
    r = run("eval", "--model", str(out), "--attack", "pgd20", "--eps", "8/255", "--n", "20", "--data-root",
            data_root, "--json", "--record")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    (recorded,) = [e for e in json.loads((out / "manifest.json").read_text())["evals"] if e["attack"] == "pgd20"]
    assert recorded["robust_acc"] == res["robust_acc"] and recorded["n"] == 20
    assert res["n"] == 20 and res["attack"] == "pgd20" and res["eps"] == pytest.approx(8 / 255)
    assert 0 <= res["robust_acc"] <= res["clean_acc"] <= 1
    npz = tmp_path / "gen.npz"
    r = run("generate", "--model", str(out), "--labels", "0,3,8", "--per-class", "2", "--steps", "3",
            "--data-root", data_root, "--out", str(npz))
    assert r.returncode == 0, r.stderr
    d = np.load(npz)
    assert d["x"].shape == (6, 32, 32, 3) and d["x"].dtype == np.uint8 and d["y"].tolist() == [0, 0, 3, 3, 8, 8]


def test_resume_keeps_the_stored_config(tmp_path, capsys):
    out = str(tmp_path / "run")
    common = ["--dataset", "procedural", "--batch-size", "50", "--out", out, "--no-progress", "--eval-n", "10"]
    assert main(["train", "--method", "noise", "--sigma", "8/255", "--epochs", "0.5", "--max-steps", "2", *common]) == 0
    assert main(["train", "--method", "noise", "--resume", "--max-steps", "3", *common]) == 0
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["steps"] == 3 and m["total_steps"] == 20  # 0.5 epoch of 2000 images at batch 50, as stored
    assert m["config"]["sigma"] == pytest.approx(8 / 255)
    capsys.readouterr()
    assert main(["train", "--method", "at", "--resume", *common]) == 2
    assert "holds a 'noise' run, not 'at'" in capsys.readouterr().err

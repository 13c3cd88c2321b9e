"""A table of bad inputs to the ``jeat`` command: each gives one clear line on stderr and exit 2.

Every case runs the CLI in-process (``jeat_core.cli.main``) against files made once per session
by :func:`make_inputs` (a tiny trained run, tiny checkpoints, broken data and weights files).
``python tests/test_bad_inputs.py`` runs the same table and writes ``docs/bad_inputs.md``
(case -> the message the CLI printed).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL

from jeat_core.cli import main
from jeat_core.core.checkpoints import commit_checkpoint, load_state, save_state, save_weights, write_json
from jeat_core.core.models import SmallCNN

CUDA = torch.cuda.is_available()
TINY = TINY_MODEL


# ----------------------------------------------------------------------------- inputs
def _manifest(**over) -> dict:
    m = {"method": "standard", "config": {}, "arch": {"name": "small_cnn", "kwargs": dict(TINY)},
         "data": {"dataset": "procedural"}, "metrics": {}, "train_seconds": 0.0, "steps": 1,
         "git_commit": None, "jeat_version": "test"}
    m.update(over)
    return m


def _model(seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN(**TINY)


def _legacy(folder: Path, model: torch.nn.Module, **over) -> None:
    """A checkpoint whose manifest predates the weights' sha256/dtype (as older runs wrote them)."""
    save_weights(folder / "model.safetensors", model)
    write_json(folder / "manifest.json", _manifest(**over))


def _npz(folder: Path, name: str = "test.npz", **arrays) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n = len(arrays["y"]) if "y" in arrays else 20
    arrays.setdefault("x", rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))
    np.savez(folder / name, **arrays)


def make_inputs(root: Path) -> Path:
    """Write every input the table refers to under ``root`` (about 10 s on 2 CPU cores)."""
    root.mkdir(parents=True, exist_ok=True)
    common = ["--dataset", "procedural", "--batch-size", "50", "--no-progress", "--eval-n", "10"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "--method", "noise", "--max-steps", "2", "--log-every", "1", "--out", str(root / "run"),
                     *common]) == 0
    (root / "afile").write_text("not a folder\n")
    (root / "foreign").mkdir()
    (root / "foreign" / "notes.txt").write_text("mine\n")
    (root / "foreign" / "manifest.json").write_text("{}\n")

    # checkpoints --------------------------------------------------------------------------
    ok = root / "ck" / "ok"
    ok.mkdir(parents=True)
    commit_checkpoint(ok, model=_model(), manifest=_manifest(evals=[
        {"attack": "pgd20", "eps": 8 / 255, "n": 10000, "clean_acc": 0.5, "robust_acc": 0.2}]))
    for name in ("flipped", "torn", "dtype_claim", "notjson", "nokeys", "wide", "kwarg", "classes", "truncated"):
        shutil.copytree(ok, root / "ck" / name)
    raw = bytearray((root / "ck" / "flipped" / "model.safetensors").read_bytes())
    raw[-100] ^= 0x55  # one byte inside the tensor data
    (root / "ck" / "flipped" / "model.safetensors").write_bytes(bytes(raw))
    # torn group: new weights (step 2) beside the manifest that names step 1's weights
    m = json.loads((ok / "manifest.json").read_text())
    commit_checkpoint(root / "ck" / "torn", model=_model(1), manifest={**m, "steps": 2})
    (root / "ck" / "torn" / "manifest.json").write_text(json.dumps(m))
    m2 = json.loads((ok / "manifest.json").read_text())
    m2["weights"]["dtype"] = "float16"
    write_json(root / "ck" / "dtype_claim" / "manifest.json", m2)
    (root / "ck" / "notjson" / "manifest.json").write_text('{"method": "standard", ')
    write_json(root / "ck" / "nokeys" / "manifest.json", {"method": "standard"})
    for name, kw in (("wide", {"widths": [40000] * 3}), ("kwarg", {**TINY, "depth": 3}),
                     ("classes", {**TINY, "n_classes": 0})):
        write_json(root / "ck" / name / "manifest.json", {**m, "arch": {"name": "small_cnn", "kwargs": kw}})
    p = root / "ck" / "truncated" / "model.safetensors"
    p.write_bytes(p.read_bytes()[:300])
    m3 = dict(m)
    m3.pop("weights")
    write_json(root / "ck" / "truncated" / "manifest.json", m3)
    nan_model = _model()
    with torch.no_grad():
        for prm in nan_model.parameters():
            prm.fill_(float("nan"))
    for name, model in (("nan", nan_model), ("fp16", _model().half()), ("int32", _model())):
        (root / "ck" / name).mkdir()
        if name == "int32":
            from safetensors.torch import save_file

            save_file({k: v.to(torch.int32) for k, v in model.state_dict().items()},
                      str(root / "ck" / name / "model.safetensors"))
            write_json(root / "ck" / name / "manifest.json", _manifest())
        else:
            _legacy(root / "ck" / name, model)

    # runs for --resume --------------------------------------------------------------------------
    for name in ("noconfig", "badstate", "wrongshape", "tornlog"):
        shutil.copytree(root / "run", root / name)
    s = load_state(root / "run" / "state.pt")
    save_state(root / "noconfig" / "state.pt", {k: v for k, v in s.items() if k != "config"})
    (root / "badstate" / "state.pt").write_bytes(b"not a torch file")
    cfg = json.loads(s["config"])
    cfg["model"]["kwargs"] = {**cfg["model"]["kwargs"], "hidden": 64}
    save_state(root / "wrongshape" / "state.pt", {**s, "config": json.dumps(cfg)})
    log = root / "tornlog" / "energy_log.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0], '{"step": 1, "ce": 2.', *lines[1:]]) + "\n")

    # data folders (eval --attack none on a checkpoint whose manifest says cifar10) -----------
    (root / "ck" / "c10").mkdir()
    commit_checkpoint(root / "ck" / "c10", model=_model(), manifest=_manifest(data={"dataset": "cifar10"}))
    y10 = np.arange(20) % 10
    _npz(root / "d" / "labels_high", y=np.where(y10 < 5, y10, y10 + 5))  # labels 10-14
    _npz(root / "d" / "labels_neg", y=y10 - 1)
    _npz(root / "d" / "labels_float", y=y10.astype(np.float32) + 0.5)
    _npz(root / "d" / "y_2d", y=np.stack([y10, y10], 1))
    _npz(root / "d" / "small_images", y=y10, x=np.zeros((20, 16, 16, 3), np.uint8))
    _npz(root / "d" / "float_images", y=y10, x=np.zeros((20, 32, 32, 3), np.float32))
    _npz(root / "d" / "empty", y=np.zeros(0, np.int64), x=np.zeros((0, 32, 32, 3), np.uint8))
    _npz(root / "d" / "no_y", x=np.zeros((20, 32, 32, 3), np.uint8))
    _npz(root / "d" / "mismatch", y=y10[:19], x=np.zeros((20, 32, 32, 3), np.uint8))
    _npz(root / "d" / "pickled", y=np.array([object()] * 20, dtype=object))
    _npz(root / "d" / "truncated", y=y10)
    p = root / "d" / "truncated" / "test.npz"
    p.write_bytes(p.read_bytes()[:5000])
    _npz(root / "d" / "flipped", y=y10)
    p = root / "d" / "flipped" / "test.npz"
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    p.write_bytes(bytes(raw))
    (root / "d" / "notzip").mkdir()
    (root / "d" / "notzip" / "test.npz").write_bytes(b"hello")
    rng = np.random.default_rng(1)  # a 10-class set of 2,000 images, used as --dataset cifar100
    _npz(root / "d" / "ten", name="train.npz", y=rng.integers(0, 10, 2000))
    _npz(root / "d" / "ten", name="test.npz", y=rng.integers(0, 10, 200))
    return root


# ----------------------------------------------------------------------------- the table
T = ["train", "--method", "at", "--dataset", "procedural", "--max-steps", "1", "--no-progress"]
N = ["train", "--method", "noise", "--dataset", "procedural", "--batch-size", "50", "--no-progress"]
E = ["eval", "--attack", "none", "--n", "5"]


def _resume(folder: str, *extra: str) -> list[str]:
    return [*N, "--resume", "--out", "{root}/" + folder, *extra]


def _eval_on(data: str) -> list[str]:
    """`jeat eval` of the tiny CIFAR-10 checkpoint on the bad data folder ``{root}/d/<data>``."""
    return [*E, "--model", "{root}/ck/c10", "--data-root", "{root}/d/" + data]


# (id, argv with {root}, expected exit code, text the one stderr line must contain)
CASES = [
    # numbers: strict parsing and ranges
    ("eps word", [*T, "--eps", "eight"], 2, "argument --eps: 'eight' is not a number or fraction"),
    ("eps negative", [*T, "--eps=-8/255"], 2, "argument --eps: '-8/255' must be >= 0"),
    ("eps 8 (pixels, not a fraction)", [*T, "--eps", "8"], 2, "argument --eps: '8' must be <= 1"),
    ("eps 255/8 (upside down)", [*T, "--eps", "255/8"], 2, "'255/8' must be <= 1"),
    ("eps 1e9", [*T, "--eps", "1e9"], 2, "'1e9' must be <= 1"),
    ("eps 1e400 (overflows)", [*T, "--eps", "1e400"], 2, "'1e400' is too large"),
    ("eps 1e-99999999 (underflows, used to hang)", [*T, "--eps", "1e-99999999"], 2, "underflows to 0"),
    ("eps nan", [*T, "--eps", "nan"], 2, "'nan' is not a number or fraction"),
    ("eps inf", [*T, "--eps", "inf"], 2, "'inf' is not a number or fraction"),
    ("eps 8/0", [*T, "--eps", "8/0"], 2, "'8/0' divides by zero"),
    ("eps 1/2/3", [*T, "--eps", "1/2/3"], 2, "'1/2/3' is not a number or fraction"),
    ("epochs 0", [*T, "--epochs", "0"], 2, "argument --epochs: '0' must be > 0"),
    ("epochs -1", [*T, "--epochs", "-1"], 2, "argument --epochs: '-1' must be > 0"),
    ("lr 0", [*T, "--lr", "0"], 2, "argument --lr: '0' must be > 0"),
    ("lr nan", [*T, "--lr", "nan"], 2, "argument --lr: 'nan' is not a number"),
    ("max-steps 0", [*T, "--max-steps", "0"], 2, "argument --max-steps: '0' must be an integer in [1, "),
    ("max-steps 1.5", [*T, "--max-steps", "1.5"], 2, "argument --max-steps: '1.5' is not an integer"),
    ("batch-size 0", [*T, "--batch-size", "0"], 2, "argument --batch-size: '0' must be an integer in [1, 65536]"),
    ("batch-size 10^12", [*T, "--batch-size", "1000000000000"], 2, "must be an integer in [1, 65536]"),
    ("seed -1", [*T, "--seed", "-1"], 2, "argument --seed: '-1' must be an integer in [0, 2147483647]"),
    ("seed 2^40", [*T, "--seed", str(2 ** 40)], 2, "must be an integer in [0, 2147483647]"),
    ("sigma 0", [*N, "--sigma", "0"], 2, "argument --sigma: '0' must be > 0"),
    ("sigma 16 (pixels)", [*N, "--sigma", "16"], 2, "argument --sigma: '16' must be <= 1"),
    ("gen-start 1", ["train", "--method", "jeat", "--gen-start", "1"], 2, "argument --gen-start: '1' must be < 1"),
    ("reinit-prob 1.5", ["train", "--method", "jeat", "--reinit-prob", "1.5"], 2, "'1.5' must be <= 1"),
    ("buffer-size 10^7", ["train", "--method", "jem", "--buffer-size", "10000000"], 2,
     "argument --buffer-size: '10000000' must be an integer in [1, 200000]"),
    ("attack-steps 0", [*T, "--attack-steps", "0"], 2, "argument --attack-steps: '0' must be an integer"),
    ("attack-step-size 2", [*T, "--attack-step-size", "2"], 2, "argument --attack-step-size: '2' must be <= 1"),
    ("sgld-step-size 0", ["train", "--method", "jem", "--sgld-step-size", "0"], 2, "'0' must be > 0"),
    # choices and devices
    ("device tpu", [*T, "--device", "tpu"], 2, "argument --device: 'tpu'"),
    ("device cuda without a GPU", [*T, "--device", "cuda"], 2, "argument --device: 'cuda': CUDA is not available"),
    ("eval device cuda:7 without a GPU", [*E, "--model", "{root}/ck/ok", "--device", "cuda:7"], 2,
     "CUDA is not available"),
    ("method gan", ["train", "--method", "gan"], 2, "argument --method: invalid choice: 'gan'"),
    ("preset huge", [*T, "--preset", "huge"], 2, "argument --preset: invalid choice: 'huge'"),
    ("dataset imagenet", ["train", "--method", "at", "--dataset", "imagenet"], 2, "invalid choice: 'imagenet'"),
    ("sigma with method standard", ["train", "--method", "standard", "--sigma", "8/255"], 2,
     "--sigma does not apply to --method standard (--sigma applies to noise)"),
    ("gen-weight with method at", [*T, "--gen-weight", "0.1"], 2,
     "--gen-weight does not apply to --method at (--gen-weight applies to jeat, jem)"),
    ("eps with method standard", ["train", "--method", "standard", "--eps", "8/255"], 2,
     "--eps does not apply to --method standard (--eps applies to at, prejeat, jeat"),
    # run folders
    ("fresh run into a finished run's folder", [*N, "--max-steps", "1", "--out", "{root}/run"], 2,
     "is not empty (energy_log.jsonl, manifest.json, model.safetensors, state.pt); pass --resume"),
    ("--out is a file", [*N, "--max-steps", "1", "--out", "{root}/afile"], 2, "exists and is not a folder"),
    ("--out not creatable (/proc)", [*N, "--max-steps", "1", "--out", "/proc/jeat/run"], 2, "/proc/jeat"),
    ("--overwrite a folder with other files", [*N, "--max-steps", "1", "--overwrite", "--out", "{root}/foreign"], 2,
     "holds files that are not a jeat run's (notes.txt); refusing to delete them"),
    ("--resume with --overwrite", [*_resume("run", "--overwrite")], 2, "--resume and --overwrite exclude each other"),
    ("--resume without a state", [*N, "--resume", "--out", "{root}/foreign"], 2, "--resume: no training state at"),
    ("--resume --lr 100", _resume("run", "--lr", "100"), 2, "would ignore --lr 100 (stored optim.lr = 0.001)"),
    ("--resume with another --method", ["train", "--method", "at", "--resume", "--out", "{root}/run"], 2,
     "holds a 'noise' run, not 'at'"),
    ("--resume --lr 100 --seed 7 --sigma 1/255 --batch-size 8",
     _resume("run", "--lr", "100", "--seed", "7", "--sigma", "1/255", "--batch-size", "8"), 2,
     "would ignore --seed 7 (stored seed = 0), --lr 100 (stored optim.lr = 0.001), --batch-size 8 (stored "
     "optim.batch_size = 50), --sigma 0.00392157 (stored sigma = 0.0627451)"),
    ("--resume --sigma 1/255", _resume("run", "--sigma", "1/255"), 2, "would ignore --sigma 0.00392"),
    ("--resume --no-amp", _resume("run", "--no-amp"), 2, "would ignore --no-amp (stored amp = True)"),
    ("state.pt without a config", _resume("noconfig"), 2, "state.pt holds no config"),
    ("state.pt not a torch file", _resume("badstate"), 2, "state.pt is not a readable weights-only training state"),
    ("state.pt of a wrong-shape model", _resume("wrongshape"), 2,
     "state.pt does not fit the stored config's model/optimiser (RuntimeError: size mismatch"),
    ("torn line in the middle of energy_log.jsonl", _resume("tornlog", "--max-steps", "3"), 2,
     "energy_log.jsonl line 2 is not a JSON log record"),
    # data files
    ("labels 10-14 in test.npz", _eval_on("labels_high"), 2,
     "test.npz: labels must lie in [0, 9] for cifar10; found 14"),
    ("label -1", _eval_on("labels_neg"), 2,
     "labels must lie in [0, 9] for cifar10; found -1"),
    ("float labels", _eval_on("labels_float"), 2,
     "'y' must hold integer class labels; got float32"),
    ("2-D y", _eval_on("y_2d"), 2, "'y' must be 1-D"),
    ("16x16 images", _eval_on("small_images"), 2,
     "'x' must be uint8 images of shape (N, 32, 32, 3); got uint8 (20, 16, 16, 3)"),
    ("float images", _eval_on("float_images"), 2,
     "got float32 (20, 32, 32, 3)"),
    ("empty split", _eval_on("empty"), 2, "the split is empty"),
    ("npz without y", _eval_on("no_y"), 2, "lacks array(s) y"),
    ("x and y lengths differ", _eval_on("mismatch"), 2,
     "'x' has 20 images but 'y' has 19 labels"),
    ("pickled object labels", _eval_on("pickled"), 2,
     "holds pickled (object) data, which jeat does not load"),
    ("truncated npz", _eval_on("truncated"), 2,
     "is not a readable npz"),
    ("byte-flipped npz", _eval_on("flipped"), 2,
     "is not a readable npz"),
    ("npz that is not a zip", _eval_on("notzip"), 2,
     "test.npz holds pickled (object) data"),
    ("--dataset cifar100 on CIFAR-10 files", ["train", "--method", "standard", "--dataset", "cifar100",
                                              "--data-root", "{root}/d/ten", "--max-steps", "1", "--no-progress",
                                              "--out", "{root}/new100"], 2,
     "2000 images hold only 10 classes, but cifar100 has 100"),
    # checkpoints
    ("model that does not exist", [*E, "--model", "{root}/nowhere"], 2, "no checkpoint at"),
    ("manifest not JSON", [*E, "--model", "{root}/ck/notjson"], 2, "manifest.json is not valid JSON"),
    ("manifest lacking keys", [*E, "--model", "{root}/ck/nokeys"], 2, "manifest.json lacks config, arch"),
    ("manifest widths [40000]*3", [*E, "--model", "{root}/ck/wide"], 2,
     "bad 'arch': widths must be a list of 1 to 5 integers in [1, 4096]"),
    ("manifest unknown kwarg", [*E, "--model", "{root}/ck/kwarg"], 2, "unexpected keyword argument 'depth'"),
    ("manifest n_classes 0", [*E, "--model", "{root}/ck/classes"], 2, "n_classes must be an integer in [1, 1000]"),
    ("flipped byte in the weight data", [*E, "--model", "{root}/ck/flipped"], 2,
     "does not match its manifest (sha256 differs; the file is corrupted or was replaced)"),
    ("weights of step 2 beside a manifest of step 1", [*E, "--model", "{root}/ck/torn"], 2,
     "weights of step 2, manifest of step 1: a torn write"),
    ("manifest dtype float16, file float32", [*E, "--model", "{root}/ck/dtype_claim"], 2,
     "holds float32 weights but its manifest says float16"),
    ("all-NaN weights", [*E, "--model", "{root}/ck/nan"], 2, "holds non-finite weights (NaN or inf)"),
    ("fp16 weights", [*E, "--model", "{root}/ck/fp16"], 2, "has tensors of the wrong dtype"),
    ("int32 weights", [*E, "--model", "{root}/ck/int32"], 2, "(int32, expected float32)"),
    ("truncated safetensors", [*E, "--model", "{root}/ck/truncated"], 2, "is not a valid safetensors weights file"),
    ("eval --record over a record of larger n", [*E[:2], "pgd20", "--n", "5", "--record", "--model", "{root}/ck/ok"],
     2, "measured on n = 10000 images, more than 5; pass --force"),
    ("eval attack cw", ["eval", "--model", "x", "--attack", "cw"], 2, "argument --attack: invalid choice: 'cw'"),
    ("eval eps 2", ["eval", "--model", "x", "--eps", "2"], 2, "argument --eps: '2' must be <= 1"),
    ("eval n 0", ["eval", "--model", "x", "--n", "0"], 2, "argument --n: '0' must be an integer in [1, "),
    # generate
    ("generate label 11", ["generate", "--model", "x", "--out", "g.npz", "--labels", "0,11"], 2,
     "argument --labels: bad label '11'"),
    ("generate per-class 0", ["generate", "--model", "x", "--out", "g.npz", "--per-class", "0"], 2,
     "argument --per-class: '0' must be an integer in [1, 5000]"),
    ("generate steps -1", ["generate", "--model", "x", "--out", "g.npz", "--steps", "-1"], 2,
     "argument --steps: '-1' must be an integer"),
    ("generate --out /proc/x.npz (before sampling)", ["generate", "--model", "{root}/ck/ok", "--out", "/proc/x.npz"],
     2, "--out /proc/x.npz: cannot write in /proc"),
    ("generate --out a folder", ["generate", "--model", "{root}/ck/ok", "--out", "{root}/afolder.npz"], 2,
     "is a folder; give a file name ending in .npz"),
]


def run_case(argv: list[str], root: Path) -> tuple[int, str]:
    argv = [a.replace("{root}", str(root)) for a in argv]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code
    return code, err.getvalue().strip()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = make_inputs(tmp_path_factory.mktemp("bad"))
    (root / "afolder.npz").mkdir()
    return root


def test_the_table_is_large_enough():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case,argv,code,msg", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_line(case, argv, code, msg, inputs, monkeypatch):
    if CUDA and "without a GPU" in case:
        pytest.skip("this machine has a GPU")
    monkeypatch.setenv("JEAT_DATA", str(inputs / "no-data-here"))
    def stamps():
        return {p: p.stat().st_mtime_ns for p in (inputs / "run").iterdir() if p.name != ".jeat.lock"}

    before = stamps()
    got, err = run_case(argv, inputs)
    assert got == code, err
    assert msg in err, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("jeat "), err
    assert stamps() == before, "the finished run was touched"


def write_doc(path: Path) -> None:
    """``docs/bad_inputs.md``: this table's cases, then ``jeat lens``'s (``tests/test_lens.py``'s ``LENS_CASES``,
    run with the real CIFAR-10 of ``JEAT_DATA``: the model checks use two test images)."""
    import tempfile

    from test_lens import LENS_CASES, make_lens_inputs, run_lens_case

    real_data = os.environ.get("JEAT_DATA") or str(Path(__file__).resolve().parent.parent.parent / "shared" / "data"
                                                    / "cifar10")
    rows = ["# Bad inputs to the `jeat` command", "",
            "Generated by `python tests/test_bad_inputs.py` from the table in that test and `jeat lens`'s in "
            "`tests/test_lens.py` (each case is a test).",
            "Every case exits with status 2 and prints this one line on stderr.", "",
            "| case | message |", "|---|---|"]
    with tempfile.TemporaryDirectory() as d:
        root = make_inputs(Path(d) / "bad")
        (root / "afolder.npz").mkdir()
        os.environ["JEAT_DATA"] = str(root / "no-data-here")
        for case, argv, _, _ in CASES:
            if CUDA and "without a GPU" in case:
                continue
            code, err = run_case(argv, root)
            err = err.replace(str(root), "<tmp>").replace("|", "\\|")
            rows.append(f"| {case} | `{err}` (exit {code}) |")
        rows += ["", "## jeat lens", "", "Your own classifier ([`lens.md`](lens.md)): the model-def file and function, "
                 "the weights, the normalisation.", "", "| case | message |", "|---|---|"]
        lroot = make_lens_inputs(Path(d) / "lens")
        os.environ["JEAT_DATA"] = real_data
        for case, argv, _ in LENS_CASES:
            code, err = run_lens_case(argv, lroot)
            err = err.replace(str(lroot), "<tmp>").replace("|", "\\|")
            rows.append(f"| {case.removeprefix('lens: ')} | `{err}` (exit {code}) |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")
    print(f"wrote {path} ({len(CASES)} + {len(LENS_CASES)} cases)")


if __name__ == "__main__":
    write_doc(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "docs"
              / "bad_inputs.md")


"""Fingerprints of a short deterministic CPU run of every method: sha256 of the final weights, of the
energy log and of the manifest (without the fields that record when/where it ran).

``ATEN_CPU_CAPABILITY=default python tests/golden/make_training_golden.py > tests/golden/training_fingerprints.json``
writes them (PyTorch's generic CPU kernels, so the machine's vector width does not change the rounding);
``tests/test_training_identity.py`` compares a fresh run with the committed file, so a refactor of the
training code that changes any weight, log line or manifest field of an existing method fails.
The committed file was written by the training code before it was split into modules."""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from jeat_core.data import procedural
from jeat_core.training import config_to_dict, fit, make_config

# fields of the manifest that say when, where and by which commit a run was made
VOLATILE = ("train_seconds", "git_commit", "jeat_version", "torch_version")
METHOD_KWARGS = {"standard": {}, "noise": {"sigma": 16 / 255}, "at": {}, "prejeat": {}, "jeat": {}, "jem": {}}


def small_config(method: str):
    cfg = make_config(method, "cpu", max_steps=5, log_every=2, checkpoint_every=3, eval_n=32, deterministic=True,
                      model=replace(make_config(method).model, kwargs={"widths": [8, 16], "hidden": 32}),
                      **METHOD_KWARGS.get(method, {}))
    cfg = replace(cfg, optim=replace(cfg.optim, batch_size=32, warmup_steps=2))
    if cfg.uses_sgld:
        cfg = replace(cfg, sgld=replace(cfg.sgld, n_steps=3, batch_size=16, buffer_size=64))
    return cfg


def fingerprint(method: str) -> dict:
    torch.set_num_threads(1)
    train, test = procedural(256, seed=0), procedural(64, seed=1)
    with tempfile.TemporaryDirectory() as d:
        fit(small_config(method), out=d, train_data=train, test_data=test, progress=False, device="cpu")
        man = json.loads((Path(d) / "manifest.json").read_text())
        for k in VOLATILE:
            man.pop(k, None)
        man["data"].pop("source", None)
        man["weights"].pop("sha256", None)  # the weights are fingerprinted below, tensor by tensor
        from safetensors.torch import load_file

        w = load_file(str(Path(d) / "model.safetensors"))
        h = hashlib.sha256()
        for k in sorted(w):
            h.update(k.encode())
            h.update(w[k].contiguous().numpy().tobytes())
        presets = {p: hashlib.sha256(json.dumps(config_to_dict(make_config(method, p, **METHOD_KWARGS.get(method, {}))),
                                                sort_keys=True).encode()).hexdigest() for p in ("cpu", "paper")}
        return {"weights": h.hexdigest(), **{f"config_{p}": v for p, v in presets.items()},
                "log": hashlib.sha256((Path(d) / "energy_log.jsonl").read_bytes()).hexdigest(),
                "manifest": hashlib.sha256(json.dumps(man, sort_keys=True).encode()).hexdigest()}


if __name__ == "__main__":
    methods = sys.argv[1:] or list(METHOD_KWARGS)
    print(json.dumps({m: fingerprint(m) for m in methods}, indent=1))

"""Run folders: the manifest, checkpoints and energy log a run writes (:class:`RunWriter`), and how a
stopped run is continued (:func:`saved_config`, :func:`resume_config`, the one place ``--resume`` is
handled).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from jeat_core import __version__
from jeat_core.core.checkpoints import ENERGY_LOG, STATE, CheckpointError, commit_checkpoint, load_state
from jeat_core.core.configs import TrainConfig, config_to_dict
from jeat_core.core.data import Split
from jeat_core.core.sampling import ReplayBuffer
from jeat_core.train.methods import config_from_dict
from jeat_core.train.train_state import TrainState


def saved_config(out: str | os.PathLike) -> TrainConfig:
    """The config stored in ``out/state.pt`` (what ``--resume`` continues with)."""
    path = Path(out) / STATE
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no training state at {path}; start without --resume")
    state = load_state(path)
    if "config" not in state:
        raise CheckpointError(f"{path} holds no config; it was not written by jeat train")
    try:
        return config_from_dict(json.loads(state["config"]))
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: unreadable config ({type(e).__name__}: {e})") from None


RESUMABLE = ("epochs", "max_steps")  # what a resumed run may change; the stored config wins for the rest


def resume_config(out: str | os.PathLike, **changes) -> TrainConfig:
    """The config a resumed run of ``out`` continues with: the stored one (:func:`saved_config`)
    with ``changes`` to the fields in :data:`RESUMABLE` (``fit(resume=True)`` and ``jeat train
    --resume`` both use this)."""
    other = sorted(set(changes) - set(RESUMABLE))
    if other:
        raise ValueError(f"a resumed run keeps its stored {', '.join(other)}; only {', '.join(RESUMABLE)} may change")
    return replace(saved_config(out), **changes)


def chain_stats(buffer: ReplayBuffer) -> dict:
    """SGLD steps per chain of the replay buffer (the mixing budget ``n_steps/ρ`` is meant to buy)."""
    a = buffer.age.float()
    return {"n": buffer.size, "mean_steps": round(float(a.mean()), 1), "median_steps": float(a.median()),
            "max_steps": int(a.max()), "share_ge_100": round(float((a >= 100).float().mean()), 3),
            "reinits": buffer.n_reinit, "sampled": buffer.n_sampled}


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def read_energy_log(path: Path, before_step: int, report) -> list[str]:
    """Lines of ``path`` for steps before ``before_step``; a torn last line (a kill mid-write) is dropped."""
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    kept = []
    for i, ln in enumerate(lines):
        try:
            step = json.loads(ln)["step"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            if i == len(lines) - 1:
                if report:
                    report(f"jeat: dropped a torn last line of {path} (written when the run was killed)")
                continue
            raise CheckpointError(f"{path} line {i + 1} is not a JSON log record ({type(e).__name__}); "
                                  f"fix or delete that line to resume") from None
        if step < before_step:
            kept.append(ln)
    return kept


class RunWriter:
    """The run folder: ``energy_log.jsonl``, and checkpoints (``model.safetensors``, ``state.pt``,
    ``manifest.json``, committed together by :func:`~jeat_core.core.checkpoints.commit_checkpoint`).

    Only rank 0 with an output folder writes; elsewhere :meth:`checkpoint` just returns the manifest.
    On resume the log keeps only the lines of steps before the resumed state's.
    """

    def __init__(self, out_dir: Path | None, rank: int, *, resume: bool, state: TrainState, batches,
                 train: Split, test: Split, total: int, device: torch.device, parent: dict | None,
                 report: Callable[[str], None] | None):
        self.out_dir = out_dir  # None: in memory only
        self.writes = out_dir is not None and rank == 0
        self.run = {"data": {"dataset": None, "source": train.source, "sha256": train.sha256,
                             "n_train": len(train), "n_test": len(test)},
                    "total_steps": total, "steps_per_epoch": batches.steps_per_epoch,
                    "world_size": batches.world, "device": str(device), "parent": parent}
        self.log_f = None
        if self.writes:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.out_dir / ENERGY_LOG
            if not resume and log_path.exists():
                log_path.unlink()
            elif resume and log_path.exists():  # drop lines written after the state we resume from
                kept = read_energy_log(log_path, state.step, report)
                log_path.write_text("".join(ln + "\n" for ln in kept))
            self.log_f = open(log_path, "a")

    def log(self, record: dict) -> None:
        if self.log_f is not None:
            self.log_f.write(json.dumps(record) + "\n")
            self.log_f.flush()

    def manifest(self, state: TrainState, cfg: TrainConfig, metrics: dict) -> dict:
        r = self.run
        return {
            "method": cfg.method, "config": config_to_dict(cfg),
            "arch": {"name": cfg.model.name, "kwargs": dict(cfg.model.kwargs)},
            "data": {**r["data"], "dataset": cfg.dataset},
            "metrics": metrics, "train_seconds": round(state.train_seconds, 2), "steps": state.step,
            "total_steps": r["total_steps"], "epochs_done": round(state.step / r["steps_per_epoch"], 3),
            "divergence_events": state.events, "world_size": r["world_size"], "device": r["device"],
            **({"init_from": r["parent"]} if r["parent"] else {}),
            **({"sgld_chains": chain_stats(state.buffer)} if state.buffer is not None else {}),
            "git_commit": git_commit(), "jeat_version": __version__,
            "torch_version": torch.__version__,
        }

    def checkpoint(self, state: TrainState, cfg: TrainConfig, metrics: dict) -> dict:
        """Save the resumable state with ``metrics`` in its manifest (rank 0 with a folder); returns the manifest."""
        m = self.manifest(state, cfg, metrics)
        if not self.writes:
            return m
        s = state.state_dict()
        s["config"] = json.dumps(config_to_dict(cfg))
        return commit_checkpoint(self.out_dir, model=state.model, state=s, manifest=m,
                                 metadata={"method": cfg.method})

    def close(self) -> None:
        if self.log_f is not None:
            self.log_f.close()
            self.log_f = None

"""The divergence guard: every update is checked, and one that diverges is undone.

:func:`why_bad` says why an update's numbers show divergence (non-finite values, max |logit| above an
absolute ceiling, or an energy blow-up relative to the run's known-good scale);
:class:`DivergenceGuard` rolls back to the last good snapshot with a lower learning rate and a new
seed, and gives up after ``max_retries`` failures in a row (:class:`TrainingDiverged`). It reads the
typed fields of a :class:`~jeat_core.train.train_state.StepResult` (``ce``, ``max_abs_energy``), which
every method's loss provides.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import Tensor

from jeat_core.core.configs import TrainConfig
from jeat_core.train.train_state import StepResult, TrainState, evaluating


class TrainingDiverged(RuntimeError):
    """Training kept diverging after ``max_retries`` roll-backs."""


def why_bad(cfg: TrainConfig, *, max_abs_energy: float, ce: float | None, values: dict | None = None,
            energy_ref: float = 0.0, ce_ref: float = -1.0) -> str | None:
    """Why a step shows divergence, or ``None``.

    ``max_abs_energy`` is the step's max |logit| over every input, ``ce`` its cross-entropy (``None``:
    unknown), ``values`` every number it logged (checked for finiteness).

    * any non-finite loss or logged value;
    * ``max_abs_energy`` (max |logit| over every input of the step) above ``cfg.max_abs_energy``;
    * the relative rule (energy blow-up): max |logit| above ``max(energy_floor, energy_growth ×
      energy_ref)`` while the cross-entropy is above ``ce_ref``. ``energy_ref`` is the largest max
      |logit| the run reached up to its last good snapshot and ``ce_ref`` the mean CE over the
      window before it (``< 0``: no snapshot yet, the CE condition is dropped). Large logits alone
      are what a confident classifier has (a standard CNN on the easy procedural data passes 50
      within 100 steps while its CE falls); in a blow-up the energies run away while the loss
      rises. The shipped cpu recipes stay below 27 over thousands of steps; ``jeat train --method
      jeat --gen-weight 1`` on CIFAR-10 passes 50 around step 85 with CE rising from 2.30 to 3.6,
      and reaches hundreds by step 100 (the energy blow-up of JEM), which this trips.
    """
    values = {**(values or {}), "max_abs_energy": max_abs_energy, **({} if ce is None else {"ce": ce})}
    if not all(math.isfinite(v) for v in values.values() if isinstance(v, float)):
        bad = sorted(k for k, v in values.items() if isinstance(v, float) and not math.isfinite(v))
        if all(k.startswith("dtheta") for k in bad):  # measured with the updated model (log steps)
            return f"non-finite energies after the update ({', '.join(bad[:2])})"
        return f"non-finite {', '.join(bad[:3])}"
    m = max_abs_energy
    if m > cfg.max_abs_energy:
        return f"max |logit| {m:.3g} > max_abs_energy {cfg.max_abs_energy:g}"
    limit = max(cfg.energy_floor, cfg.energy_growth * energy_ref)
    if m > limit and (ce_ref < 0 or ce is None or ce > ce_ref):
        rising = f" with CE {ce:.3g} above its mean {ce_ref:.3g} there" if ce_ref >= 0 and ce is not None else ""
        return (f"energy blow-up: max |logit| {m:.3g} > {limit:.3g} (max of {cfg.energy_floor:g} and "
                f"{cfg.energy_growth:g}× the {energy_ref:.3g} reached up to the last good state){rising}")
    return None


def check_update(state: TrainState, probe: Tensor | None) -> dict[str, float]:
    """After an update: are all parameters finite, and (at save points) the logits of ``probe``?"""
    with torch.no_grad():
        finite = torch.stack([torch.isfinite(p).all() for p in state.core.parameters()]).all()
        out = {"params_finite": 1.0 if bool(finite) else float("nan")}
        if probe is not None and out["params_finite"] == 1.0:
            with evaluating(state.core) as m:
                logits = m(probe).float()
            out["probe_max_abs_logit"] = float(logits.abs().max())  # NaN / inf when the update broke it
    return out


class DivergenceGuard:
    """Checks every update and undoes the ones that diverge.

    :meth:`check` says why an update is bad (:func:`why_bad` on its result; non-finite
    parameters; at save points the updated model's logits on a probe), agreed across DDP ranks.
    :meth:`roll_back` restores the last good snapshot, multiplies the lr by ``lr_backoff``, reseeds
    (``seed + retry``) and returns the new config; after ``max_retries`` failures in a row it saves
    the last good state and raises :class:`TrainingDiverged`. :meth:`accept` keeps the energy / CE
    references, and every ``guard_every`` steps a new snapshot (resetting the retry budget once the
    run is past the step that failed). Each action is an event in the manifest and a ``report`` line.
    """

    def __init__(self, state: TrainState, cfg: TrainConfig, writer, rank: int, world: int,
                 report: Callable[[str], None] | None):
        self.writer, self.rank, self.world, self.report = writer, rank, world, report
        self.good = copy.deepcopy(state.state_dict())
        self.retries, self.failed_at, self.base_seed = 0, -1, cfg.seed

    def _say(self, state: TrainState, event: dict, line: str) -> None:
        state.events.append(event)
        if self.report is not None and self.rank == 0:
            self.report(f"jeat guard: {line}")

    def check(self, state: TrainState, cfg: TrainConfig, step: StepResult, probe: Tensor | None
              ) -> tuple[str | None, dict]:
        """``(why the update is bad or None, the post-update check)``."""
        post = check_update(state, probe)  # the update itself, before any save
        bad = why_bad(cfg, max_abs_energy=step.max_abs_energy, ce=step.ce, values=step.metrics,
                      energy_ref=state.energy_ref, ce_ref=state.ce_ref)
        if bad is None and post["params_finite"] != 1.0:
            bad = "non-finite parameters after the update"
        elif bad is None and "probe_max_abs_logit" in post:
            bad = why_bad(cfg, max_abs_energy=post["probe_max_abs_logit"], ce=step.ce,
                          energy_ref=state.energy_ref, ce_ref=state.ce_ref)
            bad = bad and f"after the update: {bad}"
        if self.world > 1:
            flag = torch.tensor([1.0 if bad else 0.0], device=state.device)
            torch.distributed.all_reduce(flag)
            bad = bad or ("diverged on another rank" if flag.item() else None)
        return bad, post

    def roll_back(self, state: TrainState, cfg: TrainConfig, bad: str) -> TrainConfig:
        self.retries += 1
        retries, good = self.retries, self.good
        self.failed_at = max(self.failed_at, state.step)
        old_lr, new_lr = cfg.optim.lr, cfg.optim.lr * cfg.lr_backoff
        event = {"step": state.step, "reason": bad, "retry": retries,
                 "rolled_back_to": int(good["step"]), "new_lr": new_lr, "new_seed": self.base_seed + retries}
        events = state.events
        state.load_state_dict(copy.deepcopy(good))
        state.events = events
        if retries > cfg.max_retries:
            self._say(state, {**event, "action": "stopped"},
                      f"step {event['step']}: {bad}; {retries - 1} roll-backs did not help: stopped, the last "
                      f"good state (step {good['step']}) is saved")
            self.writer.checkpoint(state, cfg, {"diverged": True})  # the last good state, with the events
            out_dir = self.writer.out_dir
            raise TrainingDiverged(
                f"{cfg.method} training diverged at step {event['step']} ({bad}); {retries} failures in a "
                f"row, stopped. The last good state (step {good['step']}) is saved"
                f"{' in ' + str(out_dir) if out_dir is not None else ''}. "
                f"Try a lower --lr, --energy-l2 0.1, a smaller --gen-weight, or more SGLD steps.")
        cfg = replace(cfg, optim=replace(cfg.optim, lr=new_lr), seed=self.base_seed + retries)
        for g in state.optimizer.param_groups:
            g["initial_lr"] = new_lr
        state.scheduler.base_lrs = [new_lr for _ in state.scheduler.base_lrs]
        state.generator.manual_seed(cfg.seed * 1000 + self.rank + 1)
        self._say(state, {**event, "action": "rolled back, lr lowered, reseeded"},
                  f"step {event['step']}: {bad}; rolled back to step {good['step']}, lr {old_lr:.3g} -> "
                  f"{new_lr:.3g}, seed {cfg.seed} (retry {retries} of {cfg.max_retries})")
        return cfg

    def accept(self, state: TrainState, cfg: TrainConfig, step: StepResult, post: dict) -> None:
        """Book an accepted update (``state.step`` already counts it)."""
        state.energy_window = max(state.energy_window, step.max_abs_energy, post.get("probe_max_abs_logit", 0.0))
        state.ce_sum, state.ce_n = state.ce_sum + step.ce, state.ce_n + 1
        if state.step % cfg.guard_every == 0:
            state.energy_ref, state.energy_window = max(state.energy_ref, state.energy_window), 0.0
            if state.ce_n:
                state.ce_ref, state.ce_sum, state.ce_n = state.ce_sum / state.ce_n, 0.0, 0
            if self.retries and state.step > self.failed_at:
                self._say(state, {"step": state.step, "action": "recovered", "retries_used": self.retries},
                          f"step {state.step}: recovered past step {self.failed_at}; retry budget reset")
                self.retries = 0
            self.good = copy.deepcopy(state.state_dict())

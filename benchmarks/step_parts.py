"""What the benchmarks measure of a training step (shared by ``bench_core.py`` and ``gpu_check.py``):
the parts of one JEAT step as callables to time (the training attack, the SGLD negatives, the
parameter update), built from :mod:`jeat_core.train.methods`' public pieces, and the model passes of any
method's step, from its config's features (so a new method is counted without editing this)."""

from __future__ import annotations

from collections.abc import Callable

from jeat_core.train import methods
from jeat_core.train.training import Batch, TrainConfig, apply_update


def jeat_step_parts(state, cfg, x, y) -> dict[str, Callable[[], object]]:
    """``{"attack", "sgld", "update"}`` -> a callable running that part of a JEAT step on ``(x, y)``."""
    x_adv, neg = methods.attack_examples(state, cfg, x, y), methods.sgld_negatives(state, cfg)
    batch = Batch(x, y)

    def update():
        fwd = methods.forward(state, cfg, batch, x_adv, negatives=neg)
        res = methods.classification(fwd["train"], y, max_abs=fwd.max_abs)
        return apply_update(state, cfg, methods.with_px_term(res, fwd["train"], fwd["negatives"], cfg).loss)

    return {"attack": lambda: methods.attack_examples(state, cfg, x, y),
            "sgld": lambda: methods.sgld_negatives(state, cfg), "update": update}


def passes_per_step(cfg: TrainConfig) -> float:
    """Forward-equivalent image passes of one training step, from the config's features: attack
    steps and SGLD steps 2F per image (input gradients only; a ``kl`` attack adds 1F for its clean
    reference), the parameter update 3F per image of its forward pass (the batch ``update_inputs``
    times — 2 when CE and the other term see different inputs, as in JEM and TRADES — plus the
    SGLD negatives)."""
    b = cfg.optim.batch_size
    passes = 3 * b * type(cfg).update_inputs
    if cfg.uses_attack:
        passes += 2 * cfg.attack.resolved_n_steps * b + (b if cfg.attack.objective == "kl" else 0)
    if cfg.uses_sgld:
        passes += 2 * cfg.sgld.n_steps * cfg.sgld.batch_size + 3 * cfg.sgld.batch_size
    return passes

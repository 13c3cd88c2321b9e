"""The sample sizes of one audit run (:class:`Settings`; ``jeat audit --smoke`` shrinks every one) and
how the audit's records round an interval: what every claim's measurement (:mod:`jeat_core.paper.audit`,
:mod:`jeat_core.paper.audit_generation`, :mod:`jeat_core.paper.audit_robustness`) reads."""

from __future__ import annotations

from dataclasses import dataclass

from jeat_core.measure import gen_eval


def round_ci(ci) -> list[float]:
    """An interval as the report writes it (4 significant digits)."""
    return [float(f"{v:.4g}") for v in ci]


@dataclass(frozen=True)
class Settings:
    """Sample sizes of one audit run (``smoke`` shrinks every one of them)."""

    n_attack: int = 1000
    per_class: int = 100  # generated images per class and set (1,000 per set)
    n_fisher: int = 500
    n_probes: int = 2
    n_land: int = 50
    n_ssim: int = 50
    apgd_steps: int = 50
    kid_boot: int = gen_eval.KID_BOOT  # bootstrap resamples of a KID difference (generation claims)
    fid_boot: int = gen_eval.FID_BOOT
    max_gen_steps: int | None = None  # caps each sampler's K (smoke runs only)
    smoke: bool = False
    inception_weights: str | None = None

    @classmethod
    def smoke_run(cls) -> Settings:
        return cls(n_attack=64, per_class=3, n_fisher=8, n_probes=1, n_land=3, n_ssim=5, apgd_steps=5, kid_boot=200,
                   fid_boot=20, max_gen_steps=3, smoke=True)

"""Layer 3, measurement: statistics (intervals, run-level tests, coverage), classification and
generation metrics, robustness (PGD, AutoAttack, masking), the independent evaluator, the rulers
generated images are scored in, and the verdict words and rules. Imports only the layers below
(:mod:`jeat_core.core`, :mod:`jeat_core.train`)."""

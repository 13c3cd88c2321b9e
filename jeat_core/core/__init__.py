"""Layer 1, the paper's maths and its files: energies (Eq. 12/13), models, attacks, Langevin sampling,
energy landscapes, data, random draws, checkpoints, the torch-free configs, and a user's own model.
Imports nothing else of ``jeat_core``."""

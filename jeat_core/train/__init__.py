"""Layer 2, training: the method registry, the one loop, the training state, the divergence guard and
run folders. Imports only :mod:`jeat_core.core`."""

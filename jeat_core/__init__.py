"""jeat: the energy view of adversarially robust classifiers (Zhu et al., ICCV 2021)."""

__version__ = "0.1.0"

"""jeat: the energy view of adversarially robust classifiers (Zhu et al., ICCV 2021).

The package is five layers, each a folder importing only the folders before it (``docs/library.md``):
:mod:`jeat_core.core` (the maths and its files), :mod:`jeat_core.train`, :mod:`jeat_core.measure`,
:mod:`jeat_core.paper`, :mod:`jeat_core.explore`; :mod:`jeat_core.cli` on top.

Old flat paths keep working for one release (0.1.x): ``import jeat_core.energy`` or
``from jeat_core.figures import save_figure`` import the module at its new path
(``jeat_core.core.energy``, ``jeat_core.explore.figures``: :data:`MOVED`) and give the very same module
object, with a ``DeprecationWarning``. The alias is lazy: importing ``jeat_core`` imports no layer.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.1.0"

# old flat module name -> the layer (folder) it moved to: ``jeat_core.<name>`` is ``jeat_core.<layer>.<name>``
MOVED = {
    **dict.fromkeys(("attacks", "checkpoints", "configs", "data", "energy", "landscape", "models", "rng", "sampling",
                     "user_model"), "core"),
    **dict.fromkeys(("guard", "methods", "runs", "train_state", "training"), "train"),
    **dict.fromkeys(("evaluator", "gen_eval", "metrics", "robustness", "rulers", "stats"), "measure"),
    **dict.fromkeys(("audit", "claims", "experiments", "paper_items", "prose", "run_claims", "toy2d", "verdicts"),
                    "paper"),
    **dict.fromkeys(("figures", "gallery", "lens", "lens_stages", "live_training", "widgets"), "explore"),
}


def new_path(old: str) -> str:
    """``"jeat_core.energy"`` -> ``"jeat_core.core.energy"`` (a name not in :data:`MOVED` is returned as is)."""
    head, _, name = old.partition(".")
    return f"{head}.{MOVED[name]}.{name}" if head == __name__ and name in MOVED else old


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``jeat_core.<old flat name>`` and answers with the module at its new path (the same object)."""

    def find_spec(self, fullname, path=None, target=None):
        if new_path(fullname) == fullname:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {new_path(spec.name)}; the old path works until jeat 0.2",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new_path(spec.name))
        spec.loader_state = module.__spec__  # the import system sets the alias spec on the module; put it back
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state


if not any(isinstance(f, _OldPaths) for f in sys.meta_path):
    # first, so that no other finder (an editable install of an older checkout) answers an old name
    sys.meta_path.insert(0, _OldPaths())


def __getattr__(name: str):
    """``jeat_core.energy`` as an attribute (``import jeat_core`` alone), through the same alias."""
    if name in MOVED:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

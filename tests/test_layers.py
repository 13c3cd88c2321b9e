"""The layering of DESIGN.md (section Layers), checked on the sources: the presenters
(``figures``, ``audit``, ``widgets``, ``live_training``, ``verdicts``, ``gallery``, ``lens``) and the entry point
(``cli``)
import none
of one another, counting imports inside functions; ``experiments``, ``paper_items`` and the core
are theirs to import."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "jeat_core"
PRESENTERS = ("figures", "audit", "widgets", "live_training", "verdicts", "gallery", "lens", "cli")
# figures' plotting helpers, which DESIGN.md lets the other presenters share (drawing, not computing)
PLOTTING_HELPERS = {"subplots", "figure_png", "save_figure", "save_table", "image_grid", "plot_contours",
                    "plot_delta_energy", "plot_image_rows", "plot_toy2d", "surface_3d", "MODEL_COLOURS", "MODEL_LABELS",
                    "Table"}
# the commands the entry point dispatches to
ENTRY_POINTS = {"figures": {"make_all"}, "audit": {"run_audit", "to_markdown"}, "lens": {"report"}}


def imports(module: str) -> list[tuple[str, set[str]]]:
    """``(imported jeat_core module, names taken from it)`` for every import in ``module``, nested ones too."""
    out = []
    for node in ast.walk(ast.parse((SRC / f"{module}.py").read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("jeat_core."):
                    out.append((a.name.split(".")[1], set()))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or "").startswith("jeat_core"):
                parts = node.module.split(".")
            elif node.level == 1:
                parts = ["jeat_core"] + (node.module.split(".") if node.module else [])
            else:
                continue
            if len(parts) > 1:
                out.append((parts[1], {a.name for a in node.names}))
            else:  # from jeat_core import figures / from . import figures
                out.extend((a.name, set()) for a in node.names)
    return out


def test_the_parser_sees_nested_and_relative_imports(tmp_path):
    assert ("figures", {"make_all"}) in imports("cli")  # inside a function, relative


@pytest.mark.parametrize("module", PRESENTERS)
def test_presenters_and_cli_import_none_of_one_another(module):
    bad = []
    for target, names in imports(module):
        if target == module or target not in PRESENTERS:
            continue
        if target == "cli":
            bad.append(f"{module} imports cli (nothing may)")
        elif module == "cli" and names and names <= ENTRY_POINTS.get(target, set()):
            continue  # `jeat figures` / `jeat audit` call the presenter's one entry function
        elif module != "cli" and target == "figures" and names and names <= PLOTTING_HELPERS:
            continue
        else:
            bad.append(f"{module} imports {sorted(names) or target} from {target}")
    assert not bad, bad


@pytest.mark.parametrize("module", sorted(p.stem for p in SRC.glob("*.py") if p.stem not in (*PRESENTERS, "__main__")))
def test_lower_layers_import_no_presenter(module):
    assert not [t for t, _ in imports(module) if t in PRESENTERS], module

"""The architecture of DESIGN.md (section Layers), checked on the sources with ``ast``: ``jeat_core`` is
five layer folders, core < train < measure < paper < explore, with ``cli`` (and ``__main__``) on top;
every import (at the top of a module, inside functions, under ``TYPE_CHECKING``) goes to the importer's
own layer or one below it; the module import graph has no circle; no module is over 600 lines and no
function over 90; an import inside a function is only for an optional or heavy third-party library and
says why in a comment; and the old flat paths (``jeat_core.energy``) still import, as the same objects."""

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "jeat_core"
LAYERS = ("core", "train", "measure", "paper", "explore")
TOP = ("cli", "__main__")  # the entry point, above every layer; nothing but __main__ imports cli
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 600, 90
# third-party libraries a function may import where it needs them: optional (an extra, or the notebook
# stack) or heavy at import time for a command that does not use them; the import says which in a comment
LATE_OK = {"ipywidgets", "IPython", "plotly", "matplotlib", "torchattacks", "torch_fidelity", "torchvision", "tqdm",
           "fcntl", "torch.distributed"}
# the entry point imports the two upper layers (matplotlib, the zoo) only in the commands that use them
CLI_LATE_OK = ("jeat_core.paper", "jeat_core.explore")


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def layer(module: str) -> int:
    """The rank of ``module``'s layer: 0 core ... 4 explore, 5 the entry point, −1 the package root."""
    parts = module.split(".")
    if len(parts) == 1:
        return -1
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else len(LAYERS)


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """``(imported module, line, inside a function)`` for every import of ``path``, nested ones too; a
    ``from package import name`` counts as an import of ``package.name`` when that is a module."""
    module = module_name(path)
    tree = ast.parse(path.read_text())
    inside = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom)))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) in inside) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node, path.name == "__init__.py")
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.append((sub if sub in MODULES else target, node.lineno, id(node) in inside))
    return out


def graph() -> dict[str, set[str]]:
    """Module -> the ``jeat_core`` modules it imports (a package import counts as its ``__init__``)."""
    return {m: {t for t, _, _ in imports(p) if t in MODULES and t != m} for m, p in MODULES.items()}


def test_the_parser_sees_nested_relative_and_type_checking_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "jeat_core" / "measure"
    pkg.mkdir(parents=True)
    f = pkg / "probe.py"
    f.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from jeat_core.paper.experiments import X\n"
                 "def g():\n    from . import stats\n    from ..core.energy import joint_energy\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path / "jeat_core")
    got = {(t, nested) for t, _, nested in imports(f)}
    assert {("jeat_core.paper.experiments", False), ("jeat_core.measure.stats", True),
            ("jeat_core.core.energy", True)} <= got, got


def test_every_module_sits_in_a_layer():
    assert {m.split(".")[1] for m in MODULES if m.count(".") >= 1} == {*LAYERS, *TOP}
    assert len([m for m in MODULES if m.count(".") == 2]) >= 35


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_only_to_the_same_layer_or_below(module):
    bad = [f"line {line}: {t}" for t, line, _ in imports(MODULES[module])
           if t in MODULES and layer(t) > layer(module)]
    if module != "jeat_core.__main__":
        bad += [f"line {line}: {t} (nothing imports the entry point)" for t, line, _ in imports(MODULES[module])
                if t == "jeat_core.cli"]
    assert not bad, f"{module} imports a layer above its own: {bad}"


def test_no_circle_in_the_module_import_graph():
    g, state, stack, circles = graph(), {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(g[m]):
            if state.get(t) == "open":
                circles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(g):
        if m not in state:
            visit(m)
    assert not circles, " ; ".join(" -> ".join(c) for c in circles)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_sizes(module):
    text = MODULES[module].read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{module}: {len(text.splitlines())} lines"
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(ast.parse(text))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{module}: {long}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_inside_functions_are_for_optional_or_heavy_libraries_and_say_so(module):
    path = MODULES[module]
    lines = path.read_text().splitlines()
    bad = []
    for target, line, nested in imports(path):
        if not nested:
            continue
        late_ok = target.split(".")[0] in LATE_OK or target in LATE_OK
        if module == "jeat_core.cli" and target.startswith(CLI_LATE_OK):
            late_ok = True
        if not late_ok:
            bad.append(f"line {line}: {target} (import it at the top)")
        elif "#" not in lines[line - 1] and not lines[line - 2].strip().startswith("#"):
            bad.append(f"line {line}: {target} (say why in a comment)")
    assert not bad, f"{module}: {bad}"


def test_every_old_flat_name_has_its_module():
    from jeat_core import MOVED

    assert len(MOVED) == 35  # the 35 flat modules of jeat 0.1 below cli (docs/library.md's table)
    assert not [f"{old} -> {layer}" for old, layer in MOVED.items() if f"jeat_core.{layer}.{old}" not in MODULES]


@pytest.mark.parametrize("old", ["energy", "figures", "metrics", "audit"])
def test_an_old_flat_path_imports_the_same_module(old):
    from jeat_core import MOVED

    new = importlib.import_module(f"jeat_core.{MOVED[old]}.{old}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        aliased = importlib.import_module(f"jeat_core.{old}")
    assert aliased is new and aliased.__name__ == new.__name__ == f"jeat_core.{MOVED[old]}.{old}"
    assert new.__spec__.name == new.__name__  # the alias leaves the module's own spec in place


def test_old_from_imports_give_the_same_objects_and_import_no_layer_eagerly():
    code = ("import sys, warnings\nwarnings.simplefilter('ignore')\nimport jeat_core\n"
            "assert not any(m.startswith('jeat_core.') for m in sys.modules), sorted(sys.modules)\n"
            "assert 'torch' not in sys.modules\n"
            "from jeat_core.figures import save_figure\nfrom jeat_core.explore.figures import save_figure as new\n"
            "from jeat_core import energy\nimport jeat_core.core.energy as e\n"
            "assert save_figure is new and energy is e and jeat_core.energy is e\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr

"""Every notebook executes headless (jupytext -> nbclient) in smoke mode with no error output,
and every cell that makes a figure shows it as a picture.

The notebooks run once per session, at smoke sizes on the shipped models and real CIFAR-10, by the
site build's executor (the ``executed_notebooks`` fixture of conftest.py); this test, the JupyterLab
test and the site test read that one execution. Each notebook's last cell exports its figure into the
build's ``figures-local``.

A cell that makes a figure carries the tag ``figure`` (``# %% tags=["figure"]``); such a cell must
output at least one image (PNG or SVG), and no output may be matplotlib's bare text repr
(``<Figure size 649x448.8 with 4 Axes>``: a figure that did not render).
"""

import os
import re
from pathlib import Path

import pytest

from jeat_core.paper.paper_items import PAPER_ITEMS

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.py"))
EXPORTS: dict[str, list[str]] = {}  # notebook number -> the files of the paper items it reproduces
for _item in PAPER_ITEMS.values():
    EXPORTS.setdefault(_item.notebook, []).extend(_item.exports)
# notebooks that reproduce no paper item (an illustration, not a result) -> the figure files they write:
# 00 draws the paper's Fig. 1, a cartoon there, live on a 2-D toy task
ILLUSTRATIONS: dict[str, list[str]] = {"00": ["toy2d_jeat.pdf", "toy2d_jeat.png"]}


IMAGE_TYPES = ("image/png", "image/svg+xml")
# code that makes a figure: such a cell must be tagged "figure" (so the image check covers it)
MAKES_FIGURE = re.compile(r"\bplot_\w+\(|_explorer\(|LiveTraining\(|^fig\s*$", re.M)


def test_every_paper_item_has_a_notebook():
    assert not set(ILLUSTRATIONS) & set(EXPORTS)
    assert sorted(p.name[:2] for p in NOTEBOOKS) == sorted([*EXPORTS, *ILLUSTRATIONS])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_figure_cells_are_tagged_and_exports_stay_local(path):
    import jupytext

    nb = jupytext.read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    untagged = [c.source.splitlines()[0] for c in code
                if MAKES_FIGURE.search(c.source) and "figure" not in c.metadata.get("tags", [])]
    assert not untagged, f"cells that make a figure without the 'figure' tag: {untagged}"
    assert any("figure" in c.metadata.get("tags", []) for c in code)
    # an explorer cell run before its inputs exist says which cell to run first (not a bare NameError)
    assert all("require(globals()" in c.source for c in code if "_explorer(" in c.source)
    # only `jeat figures` / `make figures` writes the committed figures/; notebooks default to figures-local/
    assert '"../figures"' not in path.read_text() and "../figures-local" in path.read_text()


def _images(cell) -> int:
    return sum(any(t in out.get("data", {}) for t in IMAGE_TYPES) for out in cell.get("outputs", []))


@pytest.mark.slow
@pytest.mark.xdist_group("notebooks-site")  # beside the site tests (the execution itself: conftest, under a lock)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, executed_notebooks):
    """The notebook as the site build executed it (its cells, plus the site's hidden set-up and gallery
    cells), once per session and shared with the JupyterLab and site tests (conftest.executed_notebooks)."""
    nb = executed_notebooks["notebooks"].get(path.stem)
    assert nb is not None, f"{path.stem} was not executed (see the executor's output above)"
    problems = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                problems.append(f"cell {i}: {out['ename']}: {out['evalue']}")
            elif out["output_type"] == "stream" and out["name"] == "stderr" and (
                    "Error" in out["text"] or "Traceback" in out["text"] or "Warning" in out["text"]):
                problems.append(f"cell {i} stderr: {out['text'][:300]}")
            text = out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
            if "<Figure size" in text:
                problems.append(f"cell {i}: a figure shown as text: {text[:100]!r}")
        if "figure" in cell.metadata.get("tags", []) and not _images(cell):
            problems.append(f"cell {i} makes a figure but shows no image: {cell.source.splitlines()[0]!r}")
    assert not problems, "\n".join(problems)
    files = EXPORTS.get(path.name[:2]) or ILLUSTRATIONS[path.name[:2]]
    figures = executed_notebooks["figures"]
    assert all((figures / f).is_file() for f in files), sorted(os.listdir(figures))


@pytest.mark.xdist_group("notebooks-site")
def test_the_worker_groups_hold(request):
    """Under `make test` (pytest-xdist, ``--dist loadgroup``) a test marked ``xdist_group`` carries its group
    in its id: that is how xdist keeps the group on one worker (one JupyterLab, one site build, one tiny zoo).
    pytest 9.2's structured node ids silently undo it (pytest-xdist issue 1386; pyproject pins pytest < 9.2)."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not run under --dist loadgroup")
    assert request.node.nodeid.endswith("@notebooks-site"), request.node.nodeid

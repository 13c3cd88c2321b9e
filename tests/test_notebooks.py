"""Every notebook executes headless (jupytext -> nbclient) in smoke mode with no error output.

The notebooks load `cifar10-cpu/<name>`; here those names resolve to the tiny throw-away zoo
(``JEAT_CHECKPOINTS``) so the test covers every notebook whether or not a model is shipped yet,
on real CIFAR-10 data. Each notebook's last cell exports its figure into a temporary folder.
"""

import os
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.py"))
EXPORTS = {"01": "table1_attacks.md", "02": "fig2_energy_contours.pdf", "03": "fig3_delta_energy.pdf",
           "04": "fig4_eq16_vs_eq17.pdf", "05": "fig5_noise_generation.pdf", "06": "fig6_generation_by_model.pdf",
           "07": "table2_fisher.md", "08": "table3_robustness.md", "09": "fig7_nearest_neighbours.pdf"}


def test_every_paper_item_has_a_notebook():
    assert sorted(p.name[:2] for p in NOTEBOOKS) == sorted(EXPORTS)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, tiny_zoo, data_root, tmp_path, monkeypatch):
    import jupytext
    from nbclient import NotebookClient

    monkeypatch.setenv("JEAT_SMOKE", "1")
    monkeypatch.setenv("JEAT_DATA", data_root)
    monkeypatch.setenv("JEAT_CHECKPOINTS", str(tiny_zoo))
    monkeypatch.setenv("JEAT_FIGURES", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))
    nb = jupytext.read(path)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    problems = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                problems.append(f"cell {i}: {out['ename']}: {out['evalue']}")
            elif out["output_type"] == "stream" and out["name"] == "stderr" and (
                    "Error" in out["text"] or "Traceback" in out["text"] or "Warning" in out["text"]):
                problems.append(f"cell {i} stderr: {out['text'][:300]}")
    assert not problems, "\n".join(problems)
    assert (tmp_path / EXPORTS[path.name[:2]]).is_file(), sorted(os.listdir(tmp_path))

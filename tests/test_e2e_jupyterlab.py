"""JupyterLab in a real (headless) Chromium: the notebooks render and their widgets work.

Starts ``jupyter lab`` on a free localhost port with a token. Every notebook, as the session's one
execution left it (conftest's ``executed_notebooks``, shared with tests/test_notebooks.py and the
site), is opened as a saved notebook: no error output, and every cell tagged ``figure`` that is not a
live widget shows a rendered image. The notebooks of :data:`LIVE` are opened as a user opens them
(the jupytext ``.py`` as a notebook), run (Run All, smoke sizes) and their explorers' controls
moved: each change must show a new image within 5 s (the first change after Run All included); they
are the only notebooks executed a second time, since a widget needs its kernel. Finally the run must
leave the tracked files unchanged (`git status --porcelain`). Uses Debian's ``chromium`` (no browser
download) driven by Playwright. Screenshots (one per figure cell) and the latencies
(``latency.json``) go to ``$JEAT_E2E_OUT`` or the test's temporary folder; their paths are printed.

In CI (``CI`` set) a missing browser is a failure; elsewhere the test is skipped.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("notebooks-lab")]  # JupyterLab on one worker
REPO = Path(__file__).resolve().parent.parent
NEEDED = ["at", "prejeat", "jeat", "standard"]


def _chromium() -> str:
    path = os.environ.get("JEAT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright  # noqa: F401
    except ImportError:
        path = None
    if not path:
        msg = "headless Chromium + Playwright not available (apt-get install chromium; pip install playwright)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, data_root, request):
    """A running JupyterLab server: yields (base_url, token, figures_dir)."""
    from jeat_core.core.checkpoints import shipped_root

    port, token = _free_port(), "jeat-e2e-token"
    existing = set((REPO / "notebooks").glob("*.ipynb"))
    figs = tmp_path_factory.mktemp("figures")
    # one OpenMP thread per kernel unless set: on a shared 2-core machine two threads contend with the
    # other work and small-batch steps get up to 10x slower (see widgets.torch_threads)
    env = {**os.environ, "JEAT_SMOKE": "1", "JEAT_DATA": data_root, "JEAT_FIGURES": str(figs),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if not all((shipped_root() / "cifar10-cpu" / n / "model.safetensors").is_file() for n in NEEDED):
        env["JEAT_CHECKPOINTS"] = str(request.getfixturevalue("tiny_zoo"))  # no shipped zoo: tiny models
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={REPO}",
           f"--LabApp.app_settings_dir={REPO / 'jupyter'}"]  # the same settings as `make lab`
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp_path_factory.mktemp("lab") / "jupyter.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(480):  # up to 4 minutes: a loaded 2-core machine starts JupyterLab slowly
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}; see {log.name}")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"jupyter lab did not start within 240 s; see {log.name}")
    yield base, token, figs
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    for paired in set((REPO / "notebooks").glob("*.ipynb")) - existing:  # jupytext's pairs made by the test
        paired.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def browser():
    exe = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        except Exception as e:  # the browser could not start: a failure, not a skip
            pytest.fail(f"Chromium at {exe} did not start: {e}")
        yield b
        b.close()


def _open_and_run_all(page, base, token, notebook: str, done_text: str, timeout_s: int = 300):
    page.goto(f"{base}/lab/tree/notebooks/{notebook}?token={token}&reset", timeout=180_000,
              wait_until="domcontentloaded")  # JupyterLab's bundle loads slowly on a busy 2-core machine
    try:
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=240_000)
    except Exception:
        page.screenshot(path=str(Path(os.environ.get("TMPDIR", "/tmp")) / f"e2e-failed-{notebook}.png"))
        raise
    # wait until the kernel has started and is idle (status bar: "Python 3 (ipykernel) | Idle")
    page.wait_for_function("() => /\\|\\s*Idle/.test(document.getElementById('jp-main-statusbar')?.innerText || '')",
                           timeout=90_000)
    page.click(".jp-NotebookPanel .jp-Cell >> nth=0")
    page.click("div.lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-content .lm-Menu-itemLabel:text-is('Run All Cells')")
    try:
        page.wait_for_function(
            "t => [...document.querySelectorAll('.jp-OutputArea-output')].some(e => e.innerText.includes(t))",
            arg=done_text, timeout=timeout_s * 1000)
    except Exception:
        shot = Path(os.environ.get("TMPDIR", "/tmp")) / f"e2e-failed-{notebook}.png"
        page.screenshot(path=str(shot), full_page=True)
        raise AssertionError(f"{notebook}: run-all did not finish in {timeout_s} s; errors: {_errors(page)}; "
                             f"screenshot {shot}") from None


def _errors(page) -> list[str]:
    return page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], .jp-RenderedText[data-mime-type="
        "'application/vnd.jupyter.error']", "els => els.map(e => e.innerText).filter(t => /Error|Traceback/.test(t))")


def _settle(page, timeout_ms: int = 120_000):
    """Wait until the kernel is idle and no explorer says "computing…" (all slider events handled)."""
    page.wait_for_function(
        "() => /\\|\\s*Idle/.test(document.getElementById('jp-main-statusbar')?.innerText || '') && "
        "![...document.querySelectorAll('.widget-html')].some(e => e.innerText.includes('computing'))",
        timeout=timeout_ms)
    page.wait_for_timeout(500)


# ----------------------------------------------------------------------------- all ten notebooks
NOTEBOOKS = sorted(p.name for p in (REPO / "notebooks").glob("[0-9][0-9]_*.py"))
EXPORT = {"00": "toy2d_jeat.png", "01": "table1_attacks.md", "02": "fig2_energy_contours.png",
          "03": "fig3_delta_energy.png", "04": "fig4_eq16_vs_eq17.png", "05": "fig5_noise_generation.png",
          "06": "fig6_generation_by_model.png", "07": "table2_fisher.md", "08": "table3_robustness.md",
          "09": "fig7_nearest_neighbours.png"}
LIMIT_S = 5.0  # the limit for a control change to show a new image in the browser
CHANGES = 4  # control changes per explorer after the first (for a p95 read-out)


def _dismiss_file_changed(page) -> None:
    """Close JupyterLab's "File Changed" dialog (autosave of a jupytext pair racing the .py write
    on a slow machine) with *Cancel*: it would block the controls; nothing is saved or reverted."""
    dialog = page.locator(".jp-Dialog:has-text('File Changed')")
    if dialog.count():
        print("dismissed JupyterLab's 'File Changed' dialog")
        dialog.locator("button:has-text('Cancel')").click()


def _shutdown_kernels(base: str, token: str) -> None:
    """Stop the notebook's kernel (each page starts one; nine at once would hold several GB). The server can
    answer 500 to the listing while a kernel is still starting or already dying (seen on a loaded machine):
    the listing is asked again, and a kernel that went away meanwhile (404) is already stopped."""
    for attempt in range(5):
        try:
            with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=10) as r:
                kernels = json.loads(r.read())
            break
        except urllib.error.HTTPError as e:
            if e.code < 500 or attempt == 4:
                raise
            time.sleep(2)
    for k in kernels:
        req = urllib.request.Request(f"{base}/api/kernels/{k['id']}?token={token}", method="DELETE")
        try:
            urllib.request.urlopen(req, timeout=30).close()
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise


def _git_status() -> set[str]:
    out = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True)
    return set(out.stdout.splitlines()) if out.returncode == 0 else set()


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> Path:
    d = Path(os.environ.get("JEAT_E2E_OUT") or tmp_path_factory.mktemp("e2e"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _figure_cells(notebook: str) -> list[int]:
    import jupytext

    nb = jupytext.read(REPO / "notebooks" / notebook)
    return [i for i, c in enumerate(nb.cells) if "figure" in c.metadata.get("tags", [])]


def _cell(page, i: int):
    return page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(i)


def _images_in(cell) -> int:
    return cell.evaluate("c => [...c.querySelectorAll('.jp-OutputArea-output img, .jp-OutputArea-output svg.main-svg, "
                         ".js-plotly-plot')].filter(e => !e.closest('.js-plotly-plot') || e.matches('.js-plotly-plot'))"
                         ".length")


def _img_src(cell) -> str:
    return cell.locator(".widget-output img").first.get_attribute("src") or ""


def _time_change(page, cell, action) -> float:
    """Seconds from ``action`` to a new explorer image (the <img> element is replaced on redraw)."""
    before = _img_src(cell)
    root = cell.element_handle()
    t0 = time.perf_counter()
    action()
    page.wait_for_function("([c, b]) => { const i = c.querySelector('.widget-output img'); return i && i.src !== b }",
                           arg=[root, before], timeout=120_000, polling=50)
    return time.perf_counter() - t0


@pytest.fixture(scope="module")
def status_before():
    return _git_status()


def _check_figures(page, cells: list[int], name: str, out_dir: Path) -> dict:
    """Each cell of ``cells`` shows a rendered image; a screenshot of each. Returns images per cell."""
    counts, shots = {}, []
    for i in cells:
        cell = _cell(page, i)
        cell.scroll_into_view_if_needed()
        try:
            page.wait_for_function("c => c.querySelector('.jp-OutputArea-output img, .js-plotly-plot')",
                                   arg=cell.element_handle(), timeout=30_000)
        except Exception:
            pass
        counts[i] = _images_in(cell)
        shot = out_dir / f"{name}-cell{i:02d}.png"
        page.screenshot(path=str(shot))
        shots.append(str(shot))
    print(f"{name}: images per figure cell {counts}; screenshots: {', '.join(shots)}")
    assert counts and all(counts.values()), f"{name}: figure cells without a rendered image: {counts}"
    return counts


LIVE_CODE = ("_explorer(", "LiveTraining(")  # cells whose picture is a live widget (it needs the kernel's state)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_executed_notebook_renders_in_jupyterlab(lab, browser, out_dir, executed_notebooks, notebook):
    """The session's one execution of the notebook (conftest's ``executed_notebooks``, shared with the
    notebook and site tests), opened in JupyterLab as a reader opens a saved notebook: no error output,
    and every figure cell that is not a live widget shows its image (the widgets are tested live below)."""
    import nbformat

    base, token, _ = lab
    nb = executed_notebooks["notebooks"][notebook[:-3]]
    folder = REPO / "build" / "e2e-notebooks"
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{notebook[:-3]}.ipynb")
    static = [i for i, c in enumerate(nb.cells) if "figure" in c.metadata.get("tags", [])
              and not any(k in c.source for k in LIVE_CODE)]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{base}/lab/tree/build/e2e-notebooks/{notebook[:-3]}.ipynb?token={token}&reset",
                  timeout=180_000, wait_until="domcontentloaded")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=240_000)
        page.wait_for_function("n => document.querySelectorAll('.jp-NotebookPanel .jp-Cell').length >= n",
                               arg=len(nb.cells), timeout=60_000)
        assert not _errors(page), _errors(page)
        if static:
            _check_figures(page, static, notebook[:-3], out_dir)
    finally:
        page.close()
        _shutdown_kernels(base, token)


# the notebooks run live in JupyterLab (Run All, then the controls): their explorers' latency in a real browser
LIVE = ("01_energy_view.py", "02_energy_landscapes.py")


@pytest.mark.parametrize("notebook", LIVE)
def test_live_notebook_runs_renders_and_answers(lab, browser, out_dir, status_before, notebook):
    base, token, figs = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _open_and_run_all(page, base, token, notebook, EXPORT[notebook[:2]], timeout_s=600)
    _settle(page)
    _dismiss_file_changed(page)
    assert not _errors(page), _errors(page)
    _check_figures(page, _figure_cells(notebook), notebook[:-3], out_dir)
    if notebook.startswith("02"):  # the explorer's 3-D surface (Plotly) rendered
        kinds = page.eval_on_selector(".js-plotly-plot", "e => (e.data || []).map(t => t.type)")
        assert "surface" in kinds, kinds

    # every explorer: move its first slider (the first change after Run All, then a few more), time the new image
    latencies = {}
    for i in _figure_cells(notebook):
        cell = _cell(page, i)
        if not cell.locator(".widget-output img").count() or not cell.locator(".noUi-handle").count():
            continue  # a static figure
        handle = cell.locator(".noUi-handle").first
        name = cell.locator(".widget-slider .widget-label, .widget-hslider .widget-label").first.inner_text()
        times = []
        # first away from the end the slider sits at (a tuned value can be the ladder's largest), then back
        at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
        first, back = ("ArrowLeft", "ArrowRight") if at_max else ("ArrowRight", "ArrowLeft")
        for k in range(1 + CHANGES):
            key = first if k % 2 == 0 else back
            handle.focus()
            times.append(_time_change(page, cell, lambda h=handle, k=key: h.press(k)))
            _settle(page)
        latencies[f"{notebook[:2]} cell {i} ({name})"] = times
        cell.scroll_into_view_if_needed()
        page.screenshot(path=str(out_dir / f"{notebook[:-3]}-cell{i:02d}-changed.png"))
    report = out_dir / "latency.json"
    data = json.loads(report.read_text()) if report.is_file() else {}
    data.update(latencies)
    report.write_text(json.dumps(data, indent=1))
    print(f"{notebook}: seconds to a new image per change (first = first change after Run All): {latencies}")
    slow = {k: [round(t, 1) for t in v] for k, v in latencies.items() if max(v) > LIMIT_S}
    page.close()
    _shutdown_kernels(base, token)
    assert not slow, f"controls slower than {LIMIT_S} s: {slow}"


def test_running_the_notebooks_changed_no_tracked_file(lab, status_before):
    """After the notebooks above ran (and JupyterLab autosaved them), `git status` is as before."""
    assert _git_status() == status_before, sorted(_git_status() ^ status_before)

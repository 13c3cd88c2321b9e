"""JupyterLab in a real (headless) Chromium: the notebooks render and their widgets work.

Starts ``jupyter lab`` on a free localhost port with a token, opens the jupytext ``.py``
notebooks as notebooks, runs all cells, moves sliders and checks that the figure changes.
Uses Debian's ``chromium`` (no browser download) driven by Playwright. Screenshots are saved
under the test's temporary folder and their paths printed.

In CI (``CI`` set) a missing browser is a failure; elsewhere the test is skipped.
"""

import base64
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
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
def lab(tmp_path_factory, data_root, tiny_zoo):
    """A running JupyterLab server: yields (base_url, token, figures_dir)."""
    from jeat_core.checkpoints import shipped_root

    port, token = _free_port(), "jeat-e2e-token"
    existing = set((REPO / "notebooks").glob("*.ipynb"))
    figs = tmp_path_factory.mktemp("figures")
    env = {**os.environ, "JEAT_SMOKE": "1", "JEAT_DATA": data_root, "JEAT_FIGURES": str(figs)}
    if not all((shipped_root() / "cifar10-cpu" / n / "model.safetensors").is_file() for n in NEEDED):
        env["JEAT_CHECKPOINTS"] = str(tiny_zoo)  # until the zoo is shipped: same notebooks, tiny models
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={REPO}",
           f"--LabApp.app_settings_dir={REPO / 'jupyter'}"]  # the same settings as `make lab`
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp_path_factory.mktemp("lab") / "jupyter.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}; see {log.name}")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"jupyter lab did not start within 60 s; see {log.name}")
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
    page.goto(f"{base}/lab/tree/notebooks/{notebook}?token={token}&reset")
    try:
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
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


def _explorer_png(page) -> bytes:
    src = page.eval_on_selector(".widget-output img, .jupyter-widgets-output-area img", "e => e.src")
    return base64.b64decode(src.split(",", 1)[1])


def _settle(page, timeout_ms: int = 120_000):
    """Wait until the kernel is idle and no explorer says "computing…" (all slider events handled)."""
    page.wait_for_function(
        "() => /\\|\\s*Idle/.test(document.getElementById('jp-main-statusbar')?.innerText || '') && "
        "![...document.querySelectorAll('.widget-html')].some(e => e.innerText.includes('computing'))",
        timeout=timeout_ms)
    page.wait_for_timeout(500)


def _slider(page, label: str):
    return page.locator(".widget-slider, .jupyter-widgets.widget-hslider").filter(
        has=page.locator(f".widget-label:text-is('{label}')")).first


def test_generation_notebook_widgets_work(lab, browser, tmp_path):
    base, token, figs = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _open_and_run_all(page, base, token, "04_generation.py", "fig4_eq16_vs_eq17.png")
    # the controls rendered: sliders for step size, steps and noise; a label dropdown of class names
    for label in ("log₁₀ η", "steps", "noise s"):
        assert _slider(page, label).count() == 1, f"no slider {label!r}"
    options = page.eval_on_selector_all(".widget-dropdown select option", "os => os.map(o => o.textContent)")
    assert {"airplane", "ship", "cat"} <= set(options), options
    page.wait_for_selector(".widget-output img", timeout=60_000)
    _settle(page)
    before = _explorer_png(page)

    # move the step-size slider with the keyboard (what a user does), then change the label
    handle = _slider(page, "log₁₀ η").locator(".noUi-handle")
    handle.click()
    for _ in range(3):
        handle.press("ArrowRight")
    page.wait_for_function("b => { const i = document.querySelector('.widget-output img'); "
                           "return i && i.src.split(',')[1] !== b }", arg=base64.b64encode(before).decode(),
                           timeout=120_000)
    _settle(page)
    after_step = _explorer_png(page)
    assert after_step != before
    readout = _slider(page, "log₁₀ η").locator(".widget-readout").inner_text()
    assert readout.strip() != "-0.6", readout  # 0.25 -> log10 -0.6 by default

    page.select_option(".widget-dropdown select >> nth=1", label="cat")  # nth=0 is the model dropdown
    page.wait_for_function("b => { const i = document.querySelector('.widget-output img'); "
                           "return i && i.src.split(',')[1] !== b }", arg=base64.b64encode(after_step).decode(),
                           timeout=120_000)
    _settle(page)
    assert _explorer_png(page) != after_step
    assert "cat" in page.eval_on_selector(".widget-dropdown select >> nth=1", "e => e.selectedOptions[0].textContent")
    assert not _errors(page), _errors(page)
    assert (figs / "fig4_eq16_vs_eq17.png").is_file()
    shot = tmp_path / "04_generation.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    page.close()


def test_landscape_notebook_plotly_surface_renders(lab, browser, tmp_path):
    base, token, _ = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    _open_and_run_all(page, base, token, "02_energy_landscapes.py", "fig2_energy_contours.png")
    page.wait_for_selector(".js-plotly-plot", timeout=60_000)
    n_traces = page.eval_on_selector(".js-plotly-plot", "e => (e.data || []).length")
    kinds = page.eval_on_selector(".js-plotly-plot", "e => (e.data || []).map(t => t.type)")
    assert n_traces >= 1 and "surface" in kinds, kinds
    assert page.locator(".js-plotly-plot canvas, .js-plotly-plot .gl-container").count() >= 1
    assert not _errors(page), _errors(page)
    _settle(page)
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    shot = tmp_path / "02_energy_landscapes.png"
    page.screenshot(path=str(shot), full_page=False)
    print(f"screenshot: {shot}")
    page.close()

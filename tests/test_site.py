"""The static site (`make site-smoke`) in a real browser: headless Chromium driven by Playwright.

Builds the site at smoke sizes (``docs/site/build.py --smoke`` -> ``build/site-smoke``) from the
session's one execution of the notebooks (conftest's ``executed_notebooks``, the same jupyter-cache), so
the build only stages and renders, serves it on localhost and
opens every page: no console error, no failed request and nothing fetched from another host;
every ``<img>`` decoded with a non-zero natural size; every internal link and anchor resolves;
every maths element typeset by MathJax; each notebook page shows its figures, and each explorer a
gallery; the Fig. 2 Plotly surface turns when dragged (its camera eye moves).

``JEAT_SITE_HTML=<folder>`` checks an already built site instead (e.g. the default-size
``build/site/html`` of ``make site``). Uses Debian's ``chromium`` (no browser download), as
``tests/test_e2e_jupyterlab.py`` does; in CI (``CI`` set) a missing browser is a failure.
Screenshots of the front page, a gallery and the Fig. 2 page go to ``$JEAT_SITE_SHOTS`` if set.
"""

import ast
import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_e2e_jupyterlab import _chromium

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("notebooks-site")]  # the site on one worker
REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.py"))
# the browser reaches nothing but the site (the machine's closed network would fail such requests anyway)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]  # WebGL: Plotly 3-D


@pytest.fixture(scope="module")
def html_dir(data_root, request) -> Path:
    given = os.environ.get("JEAT_SITE_HTML")
    if given:
        return Path(given)
    request.getfixturevalue("executed_notebooks")  # the session's one execution: the build below only renders
    if not (REPO / "node_modules" / "mathjax").is_dir() and not shutil.which("npm"):
        msg = "the site's MathJax comes from npm (package.json), and npm was not found"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    env = {**os.environ, "JEAT_DATA": data_root}
    proc = subprocess.run([sys.executable, str(REPO / "docs" / "site" / "build.py"), "--smoke"], env=env,
                          capture_output=True, text=True, timeout=3000)
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, f"site build failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-4000:]}"
    return REPO / "build" / "site-smoke" / "html"


@pytest.fixture(scope="module")
def server(html_dir):
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    exe = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        except Exception as e:
            pytest.fail(f"Chromium at {exe} did not start: {e}")
        yield b
        b.close()


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("id", "name") and v:
                self.ids.add(v)


@functools.cache
def _ids(path: Path) -> frozenset:
    p = _Ids()
    p.feed(path.read_text(errors="replace"))
    return frozenset(p.ids)


def _pages(html_dir: Path) -> list[str]:
    return sorted(p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html")
                  if not p.relative_to(html_dir).as_posix().startswith(("_static/", "_sources/", "_downloads/")))


def _open(browser, url: str):
    """A page loaded with its console errors, failed requests and off-site requests recorded."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    host = urllib.parse.urlparse(url).netloc
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.on("request", lambda r: problems.append(f"off-site request: {r.url}")
            if urllib.parse.urlparse(r.url).netloc not in (host, "") and not r.url.startswith("data:") else None)
    page.goto(url, wait_until="load", timeout=120_000)
    return page, problems


def _typeset(page) -> dict:
    """Wait for MathJax; count the maths elements and those it typeset."""
    n = page.eval_on_selector_all(".math", "els => els.length")
    if n:
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60_000)
        page.evaluate("() => MathJax.startup.promise")
    done = page.eval_on_selector_all(".math", "els => els.filter(e => e.querySelector('mjx-container')).length")
    return {"math": n, "typeset": done}


def _images(page) -> list[str]:
    """Every <img> loaded (lazy ones too) with a non-zero natural size; returns the bad ones."""
    return page.evaluate("""async () => {
        const imgs = [...document.images];
        imgs.forEach(i => { i.loading = 'eager'; });
        await Promise.all(imgs.map(i => i.decode().catch(() => null)));
        return imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => (i.currentSrc || i.src).slice(0, 120));
    }""")


def _links(page) -> list[str]:
    return page.eval_on_selector_all("a[href]", "els => els.map(a => a.getAttribute('href'))")


def _broken(html_dir: Path, page_rel: str, hrefs: list[str]) -> list[str]:
    bad = []
    for href in hrefs:
        parts = urllib.parse.urlsplit(href)
        if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
            continue
        path = urllib.parse.unquote(parts.path)
        target = (html_dir / page_rel).parent / path if path else html_dir / page_rel
        if target.is_dir():
            target = target / "index.html"
        target = target.resolve()
        if not target.is_file() or html_dir.resolve() not in target.parents:
            bad.append(f"{href} (no such file)")
        elif parts.fragment and target.suffix == ".html" and urllib.parse.unquote(parts.fragment) not in _ids(target):
            bad.append(f"{href} (no such anchor)")
    return bad


def test_every_page_loads_clean_with_images_links_and_maths(html_dir, server, browser):
    pages = _pages(html_dir)
    expected = {"index.html", "figures/README.html", "figures/audit.html",
                *(f"notebooks/{n}.html" for n in NOTEBOOKS)}
    assert expected <= set(pages), f"missing pages: {expected - set(pages)}"
    problems, maths = {}, {}
    for rel in pages:
        page, errors = _open(browser, f"{server}/{rel}")
        try:
            m = _typeset(page)
            maths[rel] = m
            if m["typeset"] < m["math"]:
                errors.append(f"maths not typeset: {m['typeset']} of {m['math']}")
            errors += [f"image not loaded: {s}" for s in _images(page)]
            errors += [f"broken link: {b}" for b in _broken(html_dir, rel, _links(page))]
            if rel.startswith("notebooks/") or rel == "index.html" or rel.startswith("items/"):
                if "Run this yourself" not in page.inner_text("article"):
                    errors.append("no 'Run this yourself' line")
            page.wait_for_timeout(200)  # late console errors (scripts after load)
        finally:
            page.close()
        if errors:
            problems[rel] = errors
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())
    assert sum(m["typeset"] for m in maths.values()) > 20, maths  # the notebooks' maths is there and typeset
    print(f"{len(pages)} pages checked")


def test_front_page_has_the_claims_table_and_the_hero_figure(server, browser):
    page, errors = _open(browser, f"{server}/index.html")
    try:
        header = page.eval_on_selector_all("table thead th", "els => els.map(e => e.innerText.trim())")
        assert "verdict here" in header, header
        assert page.eval_on_selector_all("article img", "els => els.filter(i => i.naturalWidth > 300).length") >= 1
        _shot(page, "site-front.png")
    finally:
        page.close()
    assert not errors, errors


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_page_shows_figures_and_galleries(name, html_dir, server, browser):
    tree = ast.parse((REPO / "notebooks" / f"{name}.py").read_text())  # the explorers the notebook calls
    explorers = sum(isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", "")).endswith("_explorer")
                    for n in ast.walk(tree))
    page, errors = _open(browser, f"{server}/notebooks/{name}.html")
    try:
        assert f"notebooks/{name}.py" in page.inner_text(".jeat-run")  # the exact file to open
        galleries = page.eval_on_selector_all(".jeat-gallery", "els => els.map(g => g.querySelectorAll("
                                                               "'figure.jeat-gallery-state').length)")
        assert len(galleries) == explorers, f"{explorers} explorers, {len(galleries)} galleries"
        assert all(n >= 2 for n in galleries), galleries
        assert page.eval_on_selector_all("article img", "els => els.filter(i => i.naturalWidth > 0).length") >= 1
        assert not page.query_selector("text=Traceback"), "an error output on the page"
        if galleries:  # the checked state (the notebook's setting) shows; choosing another tab shows that one
            gallery = page.locator(".jeat-gallery").first
            gallery.scroll_into_view_if_needed()
            shown = "g => [...g.querySelectorAll('figure.jeat-gallery-state')].map(f => getComputedStyle(f).visibility)"
            checked = gallery.evaluate("g => [...g.querySelectorAll('input[type=radio]')].findIndex(i => i.checked)")
            states = gallery.evaluate(shown)
            assert states == ["visible" if i == checked else "hidden" for i in range(len(states))], (checked, states)
            other = (checked + 1) % len(states)
            gallery.locator("label").nth(other).click()
            assert gallery.evaluate(shown) == ["visible" if i == other else "hidden" for i in range(len(states))]
            gallery.locator("label").nth(checked).click()
            _shot(page, f"site-gallery-{name}.png", full=False)
    finally:
        page.close()
    assert not errors, errors


def test_fig2_surface_turns_when_dragged(server, browser):
    page, errors = _open(browser, f"{server}/notebooks/02_energy_landscapes.html")
    try:
        shown = ("g => g._fullLayout && g._fullLayout.scene && g.querySelector('canvas') "
                 "&& getComputedStyle(g).visibility === 'visible'")
        page.wait_for_function(f"() => [...document.querySelectorAll('.js-plotly-plot')].some({shown})",
                               timeout=60_000)
        plot = page.locator(".js-plotly-plot >> visible=true").first
        plot.scroll_into_view_if_needed()
        eye = "g => JSON.stringify(g._fullLayout.scene._scene.getCamera().eye)"
        before = plot.evaluate(eye)
        box = plot.locator(".gl-container canvas, canvas").first.bounding_box()
        assert box and box["width"] > 100, box
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        for i in range(1, 11):
            page.mouse.move(x + 12 * i, y + 4 * i)
        page.mouse.up()
        page.wait_for_timeout(500)
        after = plot.evaluate(eye)
        assert after != before, f"the camera did not move: {before} -> {after}"
        _shot(page, "site-fig2-surface.png", full=False)
    finally:
        page.close()
    assert not errors, errors


def _shot(page, name: str, full: bool = True) -> None:
    out = os.environ.get("JEAT_SITE_SHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(out) / name), full_page=full)
        print(f"screenshot: {Path(out) / name}")

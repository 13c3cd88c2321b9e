"""Build the static site of the explainer: ``make site`` (default sizes) or ``make site-smoke``.

    python docs/site/build.py [--smoke] [--out DIR] [--jobs N] [--strict]

1. **Stage** the pages into ``<out>/src`` (nothing generated is committed): the README as the
   front page, one page per notebook (``notebooks/NN_*.py`` -> ``.ipynb``, with a "run this
   yourself" line, a hidden cell that makes Plotly draw with the site's plotly.js, and after
   each explorer a hidden cell that shows it as a gallery, :mod:`jeat_core.explore.gallery`), one page
   per paper figure/table (the paper's statement, our figure, the audit's verdict), the results
   (``figures/README.md``, ``figures/audit.md``) and the reference (``docs/``); files that pages
   link to come along (downloads). A file is rewritten only when its content changes, so Sphinx
   re-reads only what changed.
2. **Execute** the notebooks whose code changed into the jupyter-cache ``<out>/jupyter_cache``,
   ``--jobs`` at a time (one OpenMP thread each), printing progress. The cache key is the code
   cells plus a fingerprint of the library (``jeat_core/**/*.py``), the shipped models' manifests and
   the mode: a prose change executes nothing, a library or model change executes everything.
3. **Sphinx** (MyST-NB, sphinx-book-theme; ``docs/site/conf.py``) -> ``<out>/html``,
   incrementally; notebook outputs come from the cache.

Default ``<out>``: ``build/site`` (``build/site-smoke`` with ``--smoke``).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NOTEBOOKS = "notebooks"
# the command that reproduces a page ("run this yourself"); notebooks get their own
RUN = {
    "README.md": "`make lab` opens the notebooks in JupyterLab (the first run sets up `.venv/`); "
                 "`make site` builds this site.",
    "figures/README.md": "`make figures` writes every figure and table below into `figures/` from the shipped "
                         "models (about 15 minutes on 2 cores).",
    "figures/audit.md": "`make audit` measures each claim on the shipped models and writes `figures/audit.md` "
                        "and `figures/audit.json`.",
}
RUN_DEFAULT = "`make lab` opens the notebooks in JupyterLab (the first run sets up `.venv/`)."
# a cell that exports a figure prints where it wrote it (the build machine's paths): its code shows, not that
EXPORT = re.compile(r"\bsave_figure\(")
EXPLORER = re.compile(r"^(?!\s*(?:from|import)\s).*?\b(\w+_explorer)\(", re.M)
LINK = re.compile(r"(!?\[(?:[^\[\]]|\[[^\]]*\])*\])\(([^)\s]+)((?:\s+\"[^\"]*\")?)\)")
SRC_ATTR = re.compile(r'(<img\b[^>]*\bsrc=")([^"]+)(")')
FENCE = re.compile(r"^(```|~~~).*?^\1[^\S\n]*$", re.S | re.M)


def log(msg: str) -> None:
    print(msg, flush=True)


def write_if_changed(path: Path, data: str | bytes) -> bool:
    """Write ``data`` unless ``path`` already holds it (keeps the mtime: Sphinx re-reads changed files only)."""
    raw = data.encode() if isinstance(data, str) else data
    if path.is_file() and path.read_bytes() == raw:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return True


def run_admonition(text: str) -> str:
    return f"\n```{{admonition}} Run this yourself\n:class: tip jeat-run\n\n{text}\n```\n"


def after_title(markdown: str, block: str) -> str:
    """``block`` inserted after the first level-1 heading (or at the top)."""
    m = re.search(r"^# .+$", markdown, flags=re.M)
    if not m:
        return block + "\n" + markdown
    return markdown[:m.end()] + "\n" + block + markdown[m.end():]


# ----------------------------------------------------------------------------- links
class Stage:
    """The staged source tree: pages (repo path -> staged path) and the files they link to."""

    def __init__(self, src: Path):
        self.src = src
        self.pages: dict[str, str] = {}  # repo-relative .md or notebook .py -> staged relative path
        self.queue: list[str] = []  # linked .md files still to stage
        self.assets: set[str] = set()  # linked files copied as they are (images, downloads)

    def staged_name(self, rel: str) -> str:
        if rel == "README.md":
            return "index.md"
        if rel.startswith(f"{NOTEBOOKS}/") and rel.endswith(".py") and re.match(r"\d\d_", Path(rel).name):
            return rel[:-3] + ".ipynb"
        return rel

    def rewrite(self, text: str, rel: str) -> str:
        """Relative links of the page at repo path ``rel`` rewritten for the staged tree."""
        base = posixpath.dirname(rel)
        staged_base = posixpath.dirname(self.staged_name(rel))

        def target(t: str) -> str | None:
            if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", t) or t.startswith(("#", "/")):
                return t
            path, hash_, anchor = t.partition("#")
            repo_rel = posixpath.normpath(posixpath.join(base, path))
            full = REPO / repo_rel
            if repo_rel.startswith("..") or not full.exists():
                return t  # Sphinx warns; the site's browser test finds the broken link
            if full.is_dir():
                if (full / "README.md").is_file():
                    repo_rel = posixpath.join(repo_rel, "README.md")
                else:
                    return None  # a folder: no page for it
            if repo_rel.endswith(".md") or self.staged_name(repo_rel) != repo_rel:
                if repo_rel not in self.pages and repo_rel not in self.queue:
                    self.queue.append(repo_rel)
            else:
                self.assets.add(repo_rel)
            new = posixpath.relpath(self.staged_name(repo_rel), staged_base or ".")
            return new + (hash_ + anchor if hash_ else "")

        def link(m: re.Match) -> str:
            new = target(m.group(2))
            if new is None:
                return m.group(1)[1:-1] if not m.group(1).startswith("!") else m.group(0)
            return f"{m.group(1)}({new}{m.group(3)})"

        def src(m: re.Match) -> str:
            new = target(m.group(2))
            return m.group(0) if new is None else f"{m.group(1)}{new}{m.group(3)}"

        # leave fenced code alone
        out, last = [], 0
        for f in FENCE.finditer(text):
            out.append(SRC_ATTR.sub(src, LINK.sub(link, text[last:f.start()])))
            out.append(f.group(0))
            last = f.end()
        out.append(SRC_ATTR.sub(src, LINK.sub(link, text[last:])))
        return "".join(out)

    def markdown_page(self, rel: str, suffix: str = "") -> None:
        text = self.rewrite((REPO / rel).read_text(), rel)
        text = after_title(text, run_admonition(RUN.get(rel, RUN_DEFAULT))) + suffix
        self.pages[rel] = self.staged_name(rel)
        write_if_changed(self.src / self.staged_name(rel), text)


# ----------------------------------------------------------------------------- notebooks
def fingerprint(smoke: bool) -> str:
    """What a notebook's outputs depend on besides its code: the library, the shipped models, the mode."""
    h = hashlib.sha256(b"smoke" if smoke else b"default")
    for p in sorted((REPO / "jeat_core").rglob("*.py")):
        h.update(p.relative_to(REPO / "jeat_core").as_posix().encode() + p.read_bytes())
    for p in sorted((REPO / "checkpoints").rglob("manifest.json")):
        h.update(str(p.relative_to(REPO)).encode() + p.read_bytes())
    for p in sorted((REPO / "checkpoints").rglob("*.safetensors")):
        h.update(f"{p.relative_to(REPO)}:{p.stat().st_size}".encode())
    return h.hexdigest()[:16]


SETUP_CELL = ("# site build only (`make site`): Plotly figures as HTML drawn by the site's own plotly.js\n"
              "from jeat_core.explore.gallery import use_site_renderer\n\nuse_site_renderer()")


def gallery_cell(kind: str, choice) -> str:
    arg = f", choice={json.dumps(choice)}" if isinstance(choice, dict) else ""
    return ("# site build only (`make site`): the explorer above as a gallery of a few states\n"
            "from jeat_core.explore.gallery import gallery, last_explorer\n\n"
            f"gallery(last_explorer(globals()), kind={kind!r}{arg})")


def stage_notebook(stage: Stage, py: Path, fp: str) -> str:
    """``notebooks/NN_x.py`` -> ``<src>/notebooks/NN_x.ipynb`` with the site's cells added."""
    import jupytext
    import nbformat

    rel = py.relative_to(REPO).as_posix()
    nb = jupytext.read(py)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    nb.metadata["kernelspec"]["jeat_site"] = fp  # hashed by jupyter-cache with the code cells
    nb.metadata.pop("jupytext", None)
    run = (f"`make lab`, then open `{rel}` (JupyterLab opens it as a notebook) and choose *Run → Run All "
           "Cells*. There every explorer is live; here each is shown as a gallery of a few states.")
    cells = [nbformat.v4.new_code_cell(SETUP_CELL, metadata={"tags": ["remove-cell"]})]
    titled = False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = stage.rewrite(cell.source, rel)
            if not titled and re.search(r"^# ", cell.source, flags=re.M):
                cell.source = after_title(cell.source, run_admonition(run))
                titled = True
        cells.append(cell)
        if cell.cell_type == "code" and EXPORT.search(cell.source) and not EXPLORER.search(cell.source):
            tags = cell.metadata.setdefault("tags", [])
            if "remove-output" not in tags:
                tags.append("remove-output")
        m = EXPLORER.search(cell.source) if cell.cell_type == "code" else None
        choice = cell.metadata.get("gallery", True)
        if m and choice is not False:
            tags = cell.metadata.setdefault("tags", [])
            if "remove-output" not in tags:
                tags.append("remove-output")  # its PNG is the gallery's "notebook's setting" state
            cells.append(nbformat.v4.new_code_cell(gallery_cell(m.group(1), choice),
                                                   metadata={"tags": ["remove-input"]}))
    if not titled:
        cells.insert(1, nbformat.v4.new_markdown_cell(run_admonition(run)))
    for i, cell in enumerate(cells):  # stable ids: an unchanged notebook stages byte for byte the same
        cell["id"] = f"cell-{i}"
    nb.cells = cells
    staged = stage.staged_name(rel)
    stage.pages[rel] = staged
    write_if_changed(stage.src / staged, nbformat.writes(nb))
    return staged


def _execute(path: str, timeout: int) -> tuple[str, float, str | None]:
    """Run one staged notebook (in a worker process); returns (executed notebook JSON, seconds, error)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    error = None
    try:
        NotebookClient(nb, timeout=timeout, kernel_name=nb.metadata.kernelspec.get("name", "python3"),
                       resources={"metadata": {"path": str(Path(path).parent)}}, store_widget_state=False,
                       record_timing=False,  # jupyter-cache hashes cell metadata: timings would break the match
                       extra_arguments=["--IPKernelApp.log_level=ERROR"]).execute()
    except (CellExecutionError, CellTimeoutError) as e:
        error = str(e)[-4000:]
    return nbformat.writes(nb), time.perf_counter() - t0, error


def execute(notebooks: list[Path], cache_dir: Path, jobs: int, timeout: int) -> dict:
    """Execute the notebooks that the cache does not hold; returns ``{name: seconds}`` of those run."""
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(str(cache_dir))
    todo, current = [], set()
    for p in notebooks:
        nb = nbformat.read(p, as_version=4)
        current.add(cache.create_hashed_notebook(nb)[1])
        try:
            cache.match_cache_notebook(nb)
        except KeyError:
            todo.append(p)
    for record in cache.list_cache_records():  # outputs of code that no longer exists
        if record.hashkey not in current:
            cache.remove_cache(record.pk)
    todo.sort(key=lambda p: -p.stat().st_size)  # the longest first (size as the proxy): the jobs end together
    log(f"[execute] {len(notebooks) - len(todo)} of {len(notebooks)} notebooks cached; executing {len(todo)} "
        f"({jobs} at a time)" + (": " + ", ".join(p.stem for p in todo) if todo else ""))
    done, failed = {}, []
    if not todo:
        return done
    t0 = time.perf_counter()
    with cf.ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_execute, str(p), timeout): p for p in todo}
        pending = set(futures)
        while pending:
            finished, pending = cf.wait(pending, timeout=30, return_when=cf.FIRST_COMPLETED)
            for f in finished:
                p = futures[f]
                text, seconds, error = f.result()
                if error:
                    failed.append(p.stem)
                    log(f"[execute] {p.stem}: FAILED after {seconds:.0f} s\n{error}")
                else:
                    nb = nbformat.reads(text, as_version=4)
                    cache.cache_notebook_bundle(CacheBundleIn(nb, str(p), data={"execution_seconds": seconds}),
                                                check_validity=False, overwrite=True)
                    done[p.stem] = seconds
                    log(f"[execute] {len(done) + len(failed)}/{len(todo)} {p.stem}: {seconds:.0f} s")
            if pending:
                log(f"[execute] … {time.perf_counter() - t0:.0f} s; {len(pending)} to go: "
                    + ", ".join(sorted(futures[f].stem for f in pending)))
    if failed:
        raise SystemExit(f"site: notebooks failed to execute: {', '.join(failed)}")
    return done


def executed_notebooks(out: Path) -> dict:
    """``{notebook stem: executed notebook}`` from the jupyter-cache of a build in ``out`` (one execution
    of each staged notebook, shared by the site, ``tests/test_notebooks.py`` and the JupyterLab test);
    a notebook the cache does not hold for its current code is missing from the result."""
    import nbformat
    from jupyter_cache import get_cache

    cache = get_cache(str(out / "jupyter_cache"))
    found = {}
    for p in sorted((out / "src" / NOTEBOOKS).glob("[0-9][0-9]_*.ipynb")):
        try:
            record = cache.match_cache_notebook(nbformat.read(p, as_version=4))
        except KeyError:
            continue
        found[p.stem] = cache.get_cache_bundle(record.pk).nb
    return found


# ----------------------------------------------------------------------------- paper items
def item_pages(stage: Stage) -> list[str]:
    """One page per paper figure/table: the paper's claim and evidence (audit), our figure or table, the verdict."""
    from jeat_core.paper.paper_items import PAPER_ITEMS

    audit = json.loads((REPO / "figures" / "audit.json").read_text()) if (REPO / "figures/audit.json").is_file() \
        else {"claims": []}
    notebooks = {p.name[:2]: p for p in sorted((REPO / NOTEBOOKS).glob("[0-9][0-9]_*.py"))}
    names = []
    for item in PAPER_ITEMS.values():
        title = re.sub(r"\s*\(n=\{n\}\)", "", item.title).replace("{n}", "N")
        label = title.split(":")[0].strip()
        claims = [c for c in audit["claims"] if label in [s.strip() for s in c["claim"].split(":")[0].split("/")]]
        lines = [f"# {title}", ""]
        nb = notebooks.get(item.notebook)
        run = f"`make figures` writes `figures/{item.exports[-1]}` (with every other figure and table)"
        if nb:
            run += f"; interactively: `make lab`, then open `{nb.relative_to(REPO).as_posix()}`"
        lines += [run_admonition(run + "."), "## What the paper says", ""]
        if claims:
            for c in claims:
                lines += [f"- **Claim {c['id']}.** {c['claim']}.\\", f"  *The paper's evidence:* {c['paper']}."]
        else:
            lines += ["No claim of the audit names this item."]
        lines += ["", "## What we get", ""]
        if item.is_table:
            table = (REPO / "figures" / f"{item.id}.md")
            body = table.read_text() if table.is_file() else "*(not made yet: `make figures`)*"
            lines += [re.sub(r"^(#+) ", lambda m: "##" + m.group(1) + " ", body, flags=re.M)]  # H1 -> H3
        else:
            png = f"figures/{item.id}.png"
            if (REPO / png).is_file():
                stage.assets.add(png)
                lines += [f"![{title}](../{png})"]
            else:
                lines += ["*(not made yet: `make figures`)*"]
        lines += ["", "From the shipped cpu-preset models by `make figures`, at the figure's full size.", ""]
        lines += ["## Verdict", ""]
        for c in claims:
            note = f" {c['note']}" if c.get("note") else ""
            lines += [f"- Claim {c['id']}: **{c['reproduced']}** (n = {c.get('n', '?')}).\\",
                      f"  *How it is measured:* {c['metric']}.{note}"]
        lines += ["", "The measurements and their intervals: [the reproduction audit](../figures/audit.md)."]
        if "figures/audit.md" not in stage.pages and "figures/audit.md" not in stage.queue:
            stage.queue.append("figures/audit.md")
        if nb:
            staged = stage.staged_name(nb.relative_to(REPO).as_posix())
            lines += [f"The notebook that explains and reproduces it: [{nb.stem}](../{staged})."]
        name = f"items/{item.id}.md"
        write_if_changed(stage.src / name, "\n".join(lines) + "\n")
        names.append(name)
    return names


def toctree(caption: str, docs: list[str]) -> str:
    entries = "\n".join(posixpath.splitext(d)[0] for d in docs)
    return f"\n```{{toctree}}\n:hidden:\n:caption: {caption}\n\n{entries}\n```\n"


def stage_all(src: Path, smoke: bool) -> tuple[Stage, list[Path]]:
    stage = Stage(src)
    fp = fingerprint(smoke)
    notebooks = [stage_notebook(stage, p, fp) for p in sorted((REPO / NOTEBOOKS).glob("[0-9][0-9]_*.py"))]
    items = item_pages(stage)
    for rel in ["figures/README.md", "figures/audit.md", *sorted(p.relative_to(REPO).as_posix()
                                                                  for p in (REPO / "docs").glob("*.md"))]:
        if (REPO / rel).is_file() and rel not in stage.queue:
            stage.queue.append(rel)
    stage.rewrite((REPO / "README.md").read_text(), "README.md")  # its links (written below, with the navigation)
    stage.pages["README.md"] = "index.md"
    while stage.queue:
        rel = stage.queue.pop(0)
        if rel in stage.pages:
            continue
        if rel.endswith(".py"):  # a notebook linked from a page but not among notebooks/NN_*.py
            continue
        stage.markdown_page(rel)
    for rel in sorted(stage.assets):
        dest = src / rel
        if not dest.is_file() or dest.read_bytes() != (REPO / rel).read_bytes():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest)
    # the front page's navigation (hidden toctrees: the sidebar)
    md = [s for r, s in stage.pages.items() if s.endswith(".md") and s != "index.md"]
    results = [s for s in ["figures/README.md", "figures/audit.md"] if s in md]
    results += sorted(s for s in md if s.startswith("figures/") and s not in results)
    reference = sorted(s for s in md if s not in results)
    nav = (toctree("Notebooks", notebooks) + toctree("The paper's figures and tables", items)
           + toctree("Results", results) + toctree("Reference", reference))
    stage.markdown_page("README.md", suffix=nav)  # again, now with the navigation
    # what is no longer a page (a renamed notebook, a removed doc) leaves the staged tree
    keep = {src / s for s in [*stage.pages.values(), *items]} | {src / a for a in stage.assets}
    for p in list(src.rglob("*")):
        if p.is_file() and p not in keep:
            p.unlink()
    return stage, [src / n for n in notebooks]


# ----------------------------------------------------------------------------- static assets
def static_assets(static: Path) -> None:
    """MathJax 3 (npm, ``package.json``) and plotly.js (the installed ``plotly``) into ``<out>/static``."""
    import plotly

    mathjax = REPO / "node_modules" / "mathjax" / "es5"
    if not (mathjax / "tex-chtml.js").is_file():
        npm = shutil.which("npm")
        if not npm:
            raise SystemExit("site: MathJax is installed with npm (package.json); npm was not found")
        log("[assets] npm ci (MathJax)")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=REPO, check=True)
    for part in ["tex-chtml.js", "input", "output/chtml", "output/chtml.js", "ui", "a11y", "adaptors", "sre"]:
        s, d = mathjax / part, static / "mathjax" / part
        if s.is_dir():
            if not d.is_dir():
                shutil.copytree(s, d)
        elif s.is_file() and (not d.is_file() or d.stat().st_size != s.stat().st_size):
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    write_if_changed(static / "plotly.min.js", plotly_js.read_bytes())


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="notebooks at smoke sizes (JEAT_SMOKE=1): minutes, for CI")
    ap.add_argument("--out", type=Path, help="build folder (default build/site or build/site-smoke)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="notebooks executed at once")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds one cell may run")
    ap.add_argument("--strict", action="store_true", help="Sphinx warnings are errors")
    ap.add_argument("--stage-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--execute-only", action="store_true",
                    help="stage and execute the notebooks into the cache, no Sphinx (the tests read them there)")
    args = ap.parse_args(argv)
    out = (args.out or REPO / "build" / ("site-smoke" if args.smoke else "site")).resolve()
    t0 = time.perf_counter()
    times = {}

    # the notebooks' environment (inherited by the kernels)
    os.environ["JEAT_FIGURES"] = str(out / "figures-local")  # notebooks export here, never into figures/
    if args.smoke:
        os.environ["JEAT_SMOKE"] = "1"
    else:
        os.environ.pop("JEAT_SMOKE", None)
    if args.jobs > 1 or "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = "1" if args.jobs > 1 else str(os.cpu_count() or 1)
    os.environ.pop("JEAT_CHECKPOINTS", None)  # the shipped models
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    log(f"[site] {'smoke' if args.smoke else 'default'} sizes -> {out}")

    stage, notebooks = stage_all(out / "src", args.smoke)
    times["stage"] = time.perf_counter() - t0
    log(f"[stage] {len(stage.pages)} pages ({len(notebooks)} notebooks), {len(stage.assets)} linked files "
        f"in {times['stage']:.1f} s")
    static_assets(out / "static")
    if args.stage_only:
        return 0

    t1 = time.perf_counter()
    executed = execute(notebooks, out / "jupyter_cache", args.jobs, args.timeout)
    times["execute"] = time.perf_counter() - t1
    if args.execute_only:
        log(f"[site] executed {len(executed)} of {len(notebooks)} notebooks in {times['execute']:.0f} s "
            f"(the others were cached) -> {out / 'jupyter_cache'}")
        return 0

    t2 = time.perf_counter()
    env = {**os.environ, "JEAT_SITE_OUT": str(out), "JEAT_SITE_SMOKE": "1" if args.smoke else "0"}
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(HERE), "-d", str(out / "doctrees"),
           str(out / "src"), str(out / "html"), "--keep-going", "-w", str(out / "sphinx-warnings.log")]
    if args.strict:
        cmd.append("-W")
    log("[sphinx] " + " ".join(cmd[2:]))
    rc = subprocess.run(cmd, env=env).returncode
    times["sphinx"] = time.perf_counter() - t2
    warnings = (out / "sphinx-warnings.log").read_text().count("WARNING") if (out / "sphinx-warnings.log").is_file() \
        else 0
    total = time.perf_counter() - t0
    summary = {"mode": "smoke" if args.smoke else "default", "seconds": round(total, 1),
               **{k: round(v, 1) for k, v in times.items()}, "executed": {k: round(v, 1) for k, v in executed.items()},
               "sphinx_warnings": warnings, "html": str(out / "html" / "index.html")}
    write_if_changed(out / "build-times.json", json.dumps(summary, indent=1) + "\n")
    minutes, seconds = divmod(round(total), 60)
    log(f"[site] {'done' if rc == 0 else 'FAILED'} in {minutes} min {seconds} s (stage "
        f"{times['stage']:.0f} s, execute {times['execute']:.0f} s for {len(executed)} notebooks, sphinx "
        f"{times['sphinx']:.0f} s, {warnings} warnings: {out / 'sphinx-warnings.log'}) -> "
        f"{out / 'html' / 'index.html'}")
    return rc


if __name__ == "__main__":
    sys.exit(main())

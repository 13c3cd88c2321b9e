"""Sphinx configuration of the static site (`make site`; see docs/site.md).

``docs/site/build.py`` stages the pages into ``<out>/src`` (README as the front page, one page per
notebook, one per paper figure/table, the results and the reference), executes the notebooks into
the jupyter-cache at ``<out>/jupyter_cache`` and then runs Sphinx with this file (``-c docs/site``).
It passes the build folder and the mode in ``JEAT_SITE_OUT`` and ``JEAT_SITE_SMOKE``.
"""

import hashlib
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = Path(os.environ.get("JEAT_SITE_OUT", HERE.parents[1] / "build" / "site"))
SMOKE = os.environ.get("JEAT_SITE_SMOKE") == "1"
sys.path.insert(0, str(HERE / "_ext"))

project = "jeat"
author = "jeat contributors"
copyright = "the jeat contributors (MIT licence)"
html_title = "jeat · the energy view of adversarially robust classifiers"

extensions = ["myst_nb", "sphinx.ext.githubpages", "jeat_site"]  # githubpages: .nojekyll for branch-based Pages
root_doc = "index"
exclude_patterns = ["**.ipynb_checkpoints"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.xref_ambiguous"]

# ----------------------------------------------------------------------------- MyST (pages) and MyST-NB (notebooks)
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 4  # GitHub-style anchors: the README's and docs' `file.md#heading` links resolve
nb_execution_mode = "cache"  # jupyter-cache: a notebook re-executes only when its code (or the library) changes
nb_execution_cache_path = str(OUT / "jupyter_cache")
nb_execution_timeout = 3600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_render_markdown_format = "myst"  # tables (`Table`'s markdown) render as tables
nb_merge_streams = True
# live widgets need a kernel: show each explorer's PNG (and the injected gallery), never a dead widget,
# and load no ipywidgets JavaScript (from a CDN)
nb_mime_priority_overrides = [("*", "application/vnd.jupyter.widget-view+json", None)]
nb_ipywidgets_js = {}

# ----------------------------------------------------------------------------- HTML
html_theme = "sphinx_book_theme"
html_static_path = [str(HERE / "_static"), str(OUT / "static")]
html_css_files = ["jeat-site.css"]
html_favicon = "_static/favicon.svg"  # without one, browsers ask the server for /favicon.ico (a 404)
html_show_sourcelink = False
html_copy_source = False
html_last_updated_fmt = None
mathjax_path = "mathjax/tex-chtml.js"  # MathJax 3 from npm (package.json), served by the site itself
html_context = {
    "default_mode": "light",  # the theme's colour mode (unset, its script logs an error); the figures are on white
    # the site's own extension and styles: a change to them rebuilds every page (Sphinx sees a new config)
    "jeat_site_assets": hashlib.sha256(b"".join(p.read_bytes() for p in sorted((HERE / "_ext").glob("*.py"))
                                                + sorted((HERE / "_static").glob("*")))).hexdigest()[:12],
}
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "navigation_with_keys": False,
}
if SMOKE:
    html_theme_options["announcement"] = (
        "Smoke build (<code>make site-smoke</code>): the notebooks ran at smoke sizes, so their numbers "
        "and pictures are not the paper-size ones; <code>make site</code> builds the real site.")

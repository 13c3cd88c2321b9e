"""Sphinx extension of the static site: MathJax on every page, plotly.js only where needed.

MathJax goes on every page (``html_assets_policy = "always"``): a notebook's title with maths
appears in every page's navigation, not only on pages whose body has maths.

plotly.js (about 4.7 MB, copied from the installed ``plotly`` package by ``docs/site/build.py``, so
the figures' JSON and the library agree and nothing loads from a CDN) is added to a page's head
when its body holds a Plotly div (a gallery's 3-D surface, or a figure shown by a notebook cell).
"""


def _plotly_where_needed(app, pagename, templatename, context, doctree):
    if "plotly-graph-div" in context.get("body", ""):
        app.add_js_file("plotly.min.js")  # called in html-page-context: this page only


def setup(app):
    app.set_html_assets_policy("always")
    app.connect("html-page-context", _plotly_where_needed)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

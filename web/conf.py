"""Sphinx configuration of the course website (`make web`; web/build.py prepares the sources)."""

project = "Curso de modelos multimodales"
author = "El equipo del curso"
language = "es"
extensions = ["myst_nb"]
html_theme = "sphinx_book_theme"
html_title = "Modelos multimodales: Whisper, transformers, ViT y Llama 3.2 Vision"
html_static_path = ["_static"]
html_theme_options = {
    "use_download_button": True,
    "use_fullscreen_button": False,
    "show_toc_level": 2,
}
html_show_sphinx = False
html_last_updated_fmt = None
# The notebooks come executed by web/build.py (against the test stand-ins): Sphinx only renders them.
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # no widget manager from a public CDN (the live widgets are in JupyterLab)
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
# Maths with the MathJax 3 from npm, served with the site: nothing from a CDN when a page is read.
mathjax_path = "mathjax/tex-chtml.js"
suppress_warnings = ["myst.header", "myst.xref_missing", "misc.highlighting_failure"]
exclude_patterns = ["_build", "README.md"]  # read through index.md's include

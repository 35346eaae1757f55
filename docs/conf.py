"""
Sphinx configuration for the twisted_journey documentation.
"""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("_ext"))

from twisted_journey import __version__

project = "twisted_journey"
author = "the twisted_journey authors"
copyright = "2026, the twisted_journey authors"
release = version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "journey_refs",
    "journey_reference",
    "journey_bench",
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
# Private helpers (``_Input``) appear in public signatures but are not documented by design.
nitpick_ignore_regex = [
    ("py:class", r"(.*\.)?_[A-Za-z]\w*"),
    # Classes of the private-API shims (twisted_journey._twisted...), not documented.
    ("py:class", r"twisted_journey\.(\w+\.)*_\w+\.\w+"),
]
# The twin's per-client record: public in its module, but not part of its API (__all__).
nitpick_ignore = [("py:class", "twisted_journey.fallback.mux.Connection")]
# array is not among the vendored inventory's modules (twisted_journey.sockets' ioctl buffer).
nitpick_ignore.append(("py:class", "array.array"))
# Every cross-reference must resolve (CI builds with -W -n).
nitpicky = True
exclude_patterns = ["_build", "_inventories", "howto/examples", "tutorial/*/README*"]
html_theme = "alabaster"
# Source pages only for objects documented where they are defined (re-exports made
# viewcode link to anchors that do not exist).
viewcode_follow_imported_members = False
# Links into Twisted's and Python's documentation.  CI has no network, so the inventories
# are vendored: _inventories/make.py writes them from the installed modules, with those
# sites' URLs (see its docstring).
intersphinx_mapping = {
    "twisted": ("https://docs.twisted.org/en/stable/", "_inventories/twisted.inv"),
    "python": ("https://docs.python.org/3/", "_inventories/python.inv"),
}
# Where the exit statuses of journey fetch live (the reference page renders them).
journey_exit_codes = "twisted_journey.fetch.errors.EXIT_CODES"
# Side-by-side listings in the tutorial (``.. container:: side-by-side``).
html_static_path = ["_static"]
html_css_files = ["journey.css"]
html_theme_options = {"page_width": "1240px"}
# Manual pages (sphinx-build -b man docs docs/_build/man): journey(1) and one per plugin,
# from the reference pages under reference/man, whose option tables come from the parsers.
man_pages = [
    (
        "reference/man/journey",
        "journey",
        "clients for the twisted_journey servers, and an HTTP fetcher",
        [author],
        1,
    ),
    (
        "reference/man/journey-greet",
        "journey-greet",
        "twistd plugin: the greeting server",
        [author],
        1,
    ),
    (
        "reference/man/journey-mux",
        "journey-mux",
        "twistd plugin: the multiplexing logging server",
        [author],
        1,
    ),
    (
        "reference/man/journey-fetch",
        "journey-fetch",
        "twistd plugin: keep local copies of URLs fresh",
        [author],
        1,
    ),
]
man_make_section_directory = False

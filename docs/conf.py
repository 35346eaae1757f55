"""
Sphinx configuration for the twisted_journey documentation.
"""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

from twisted_journey import __version__

project = "twisted_journey"
author = "the twisted_journey developers"
copyright = "2026, the twisted_journey developers"
release = version = __version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.intersphinx", "sphinx.ext.viewcode"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
nitpicky = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
# No network in CI: intersphinx is configured but reads no remote inventories.
intersphinx_mapping: dict = {}

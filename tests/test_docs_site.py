"""
The documentation site covers the code: every public module is in the API reference, the
generated option tables say what ``--help`` says, and the link checker catches a broken
link.
"""

from __future__ import annotations

import pkgutil
import re
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import twisted_journey
from tests.support import REPO

sys.path.insert(0, str(REPO / "docs" / "_ext"))

import checklinks
import journey_tables


def publicModules() -> list[str]:
    """
    Every module of the package whose dotted name has no part starting with ``_``.
    """
    names = ["twisted_journey"]
    for info in pkgutil.walk_packages(twisted_journey.__path__, "twisted_journey."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


class ApiReferenceTests(SynchronousTestCase):
    """
    ``docs/api/`` documents every public module.
    """

    def test_everyModule(self) -> None:
        """
        Each public module (``__init__`` packages aside) has an ``automodule`` directive.
        """
        text = "\n".join(p.read_text() for p in (REPO / "docs" / "api").glob("*.rst"))
        documented = set(re.findall(r"^\.\. automodule:: (\S+)", text, re.MULTILINE))
        missing = [
            name
            for name in publicModules()
            if name not in documented
            and name not in ("twisted_journey", "twisted_journey.tap")
            and name != "twisted_journey.fallback"
        ]
        self.assertEqual(missing, [])


def undocumented(moduleName: str) -> list[str]:
    """
    The public names of a module (its ``__all__``, and their public methods) that have no
    docstring.  A method that overrides a base class's or implements an interface's is
    documented there, and is not counted.
    """
    import importlib
    import inspect

    from zope.interface import implementedBy

    module = importlib.import_module(moduleName)
    missing = [] if module.__doc__ else [moduleName]
    for name in getattr(module, "__all__", []):
        value = getattr(module, name, None)
        if getattr(value, "__module__", None) != moduleName:
            continue
        if (inspect.isclass(value) or inspect.isfunction(value)) and not value.__doc__:
            missing.append(f"{moduleName}.{name}")
        if not inspect.isclass(value):
            continue
        inherited = {a for base in value.__mro__[1:] for a in vars(base)}
        inherited |= {a for i in implementedBy(value).flattened() for a in i.names()}
        for attribute, member in vars(value).items():
            if attribute.startswith("_") or attribute in inherited:
                continue
            if inspect.isfunction(member) and not member.__doc__:
                missing.append(f"{moduleName}.{name}.{attribute}")
    return missing


class DocstringTests(SynchronousTestCase):
    """
    Every public name has a docstring for the API reference to show.
    """

    def test_everyPublicName(self) -> None:
        """
        No public module, class, function or method lacks a docstring.
        """
        missing = [name for module in publicModules() for name in undocumented(module)]
        self.assertEqual(missing, [])


class OptionTableTests(SynchronousTestCase):
    """
    The generated option tables list exactly the options ``--help`` lists.
    """

    def test_tapTablesMatchHelp(self) -> None:
        """
        Every ``--name`` in a plugin's usage text is a row of its table, and no other.
        """
        import twisted_journey.tap.fetch
        import twisted_journey.tap.greet
        import twisted_journey.tap.mux

        for module in [
            twisted_journey.tap.greet,
            twisted_journey.tap.mux,
            twisted_journey.tap.fetch,
        ]:
            options = module.Options  # type: ignore[attr-defined]
            usage = str(options())
            inHelp = set(re.findall(r"--([a-z][a-z0-9-]*)", usage)) - {"help", "version"}
            rows = {
                row[0].split("=")[0].removeprefix("--")
                for row in journey_tables.tapOptionRows(options)
            }
            self.assertEqual(rows, inHelp, module.__name__)

    def test_exitCodes(self) -> None:
        """
        The exit-status table is read from the mapping ``conf.py`` names, and that
        mapping exists.
        """
        conf = (REPO / "docs" / "conf.py").read_text()
        (path,) = re.findall(r'^journey_exit_codes = "([\w.:]+)"', conf, re.MULTILINE)
        codes = journey_tables._load(path)
        self.assertEqual(codes[0].split()[0], "every")
        self.assertTrue(all(isinstance(code, int) for code in codes))


class LinkCheckerTests(SynchronousTestCase):
    """
    ``docs/_ext/checklinks.py`` finds broken internal links and anchors, and ignores
    external ones.
    """

    def test_broken(self) -> None:
        """
        A link to a missing page or a missing anchor is reported; good ones are not.
        """
        root = Path(self.mktemp())
        root.mkdir()
        (root / "index.html").write_text(
            '<a href="page.html#there">ok</a><a href="page.html#nowhere">bad anchor</a>'
            '<a href="missing.html">bad page</a><a href="https://example.org/x">external</a>'
            '<a href="#top" id="top">self</a>'
        )
        (root / "page.html").write_text('<h1 id="there">x</h1>')
        self.assertEqual(
            checklinks.broken(root),
            ["index.html: page.html#nowhere (no such anchor)", "index.html: missing.html"],
        )


class ReadmeLinkTests(SynchronousTestCase):
    """
    The README's links into ``docs/`` lead to pages that exist.
    """

    def test_links(self) -> None:
        """
        Every relative link target of the README is a file in the checkout, and the
        tutorial and the how-tos are among them.
        """
        text = (REPO / "README.rst").read_text()
        targets = re.findall(r"<([^>\s]+\.rst)>`_", text)
        self.assertIn("docs/tutorial/index.rst", targets)
        self.assertIn("docs/howto/run.rst", targets)
        self.assertEqual([t for t in targets if not (REPO / t).is_file()], [])

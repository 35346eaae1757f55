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
import journey_bench
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


#: "issue 10", "issues 8 and 9", "Issue #12", "#12": a reference to the tracker.
ISSUE_NUMBER = re.compile(r"\bissues?\s+#?\d+|(?<![\w&#])#\d+\b", re.IGNORECASE)

#: 7 to 40 hexadecimal digits, both digits and letters among them, standing alone (not
#: ``0x...`` or ``\x..``, not part of a longer word): what an abbreviated commit id looks
#: like.
COMMIT_ID = re.compile(r"(?<![\w\\])(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}(?!\w)")


def historyReferences(text: str) -> list[str]:
    """
    The issue numbers and commit ids ``text`` mentions, in order.
    """
    found = [(m.start(), m.group()) for m in ISSUE_NUMBER.finditer(text)]
    found += [(m.start(), m.group()) for m in COMMIT_ID.finditer(text)]
    return [word for _, word in sorted(found)]


class InstructionsNotHistoryTests(SynchronousTestCase):
    """
    A page says what to do and what happens: none names an issue or a commit (history is
    the changelog's, told in users' words, and it names neither either).
    """

    def test_patterns(self) -> None:
        """
        The patterns find issue numbers and commit ids, and leave alone hex escapes,
        numbers, words and hexadecimal-looking words without digits.
        """
        self.assertEqual(
            historyReferences(
                "Since issue 10 the fast path... (Issue #12, see #3; git show 94e8106:x,"
                " then 8af5401d2c3e)"
            ),
            ["issue 10", "Issue #12", "#3", "94e8106", "8af5401d2c3e"],
        )
        self.assertEqual(
            historyReferences(
                r"\xc3\xa9, 0x1f2e3d4c, 1048576 bytes, deadbeefcafe, a 1234567 s, &#1234;"
                " the issue is, page 3"
            ),
            [],
        )

    def test_pages(self) -> None:
        """
        No ``.rst`` page of ``docs/`` (the changelog included) nor the README mentions an
        issue number or a commit id.
        """
        pages = [REPO / "README.rst", *sorted((REPO / "docs").rglob("*.rst"))]
        found = {
            str(page.relative_to(REPO)): refs
            for page in pages
            if (refs := historyReferences(page.read_text(encoding="utf-8")))
        }
        self.assertEqual(found, {})


class MetricsPageTests(SynchronousTestCase):
    """
    ``docs/howto/metrics.rst`` names every label value the server exports.
    """

    def test_reasons(self) -> None:
        """
        Each ``reason`` a refused or dropped connection is counted under in
        ``twisted_journey/metrics.py`` appears, as a literal, on the metrics page.
        """
        code = (REPO / "twisted_journey" / "metrics.py").read_text()
        reasons = set(re.findall(r'\("reason",\s*"([\w-]+)"\)', code))
        self.assertIn("limit-total", reasons)
        page = (REPO / "docs" / "howto" / "metrics.rst").read_text()
        self.assertEqual(sorted(r for r in reasons if f"``{r}``" not in page), [])


class InstallPageTests(SynchronousTestCase):
    """
    ``docs/install.rst`` names what ``setup.cfg`` installs.
    """

    def test_dependencies(self) -> None:
        """
        Every distribution in ``install_requires`` and in each extra is named on the
        install page, and each extra has its row.
        """
        import configparser

        config = configparser.ConfigParser()
        config.read(REPO / "setup.cfg")
        page = (REPO / "docs" / "install.rst").read_text().lower()

        def names(value: str) -> list[str]:
            return [
                re.split(r"[\s\[<>=!~;]", line.strip(), maxsplit=1)[0]
                for line in value.strip().splitlines()
            ]

        required = names(config["options"]["install_requires"])
        self.assertIn("prometheus_client", required)
        missing = [name for name in required if name.lower() not in page]
        for extra, value in config["options.extras_require"].items():
            if f"``{extra}``" not in page:
                missing.append(f"[{extra}]")
            missing += [f"{name} ({extra})" for name in names(value) if name.lower() not in page]
        self.assertEqual(missing, [])


class BenchNumberTests(SynchronousTestCase):
    """
    The ``:bench:`` role puts numbers from the benchmark JSON into the pages' prose.
    """

    def setUp(self) -> None:
        self.results = Path(self.mktemp())
        self.results.mkdir()
        (self.results / "mux.json").write_text(
            '{"tables": {"lines": {"rows": ['
            '{"name": "journey-mux-text", "cpu_us": 0.345},'
            '{"name": "selectors", "cpu_us": 0.29}]}},'
            ' "rows": [{"tool": "mux", "workers": 1, "rate": 2000000.0, "us": 0.25},'
            ' {"tool": "mux", "workers": 2, "rate": 3000000.0, "us": 0.3}]}'
        )

    def test_values(self) -> None:
        """
        A path reads a value, a row by its name or by ``key=value`` pairs, formatted by the
        spec after ``|``; factors multiply and divide left to right.
        """
        value = lambda text: journey_bench.benchValue(self.results, text)  # noqa: E731
        self.assertEqual(value("mux/tables/lines/rows/journey-mux-text/cpu_us"), "0.345")
        self.assertEqual(value("mux/tables/lines/rows/selectors/cpu_us|.3f"), "0.290")
        self.assertEqual(value("mux/rows/tool=mux,workers=2/rate|,.0f"), "3,000,000")
        self.assertEqual(
            value("mux/rows/tool=mux,workers=2/us * mux/rows/tool=mux,workers=2/rate * 1e-6|.2f"),
            "0.90",
        )
        self.assertEqual(
            value(
                "mux/tables/lines/rows/journey-mux-text/cpu_us"
                " / mux/tables/lines/rows/selectors/cpu_us|.2f"
            ),
            "1.19",
        )

    def test_nowhere(self) -> None:
        """
        A path that leads nowhere, a row name that matches several rows and a factor that
        is not a number raise :class:`journey_bench.BenchPathError`.
        """
        for text in [
            "greet/x",
            "mux/tables/lines/rows/uvloop/cpu_us",
            "mux/rows/tool=mux/rate",
            "mux/tables * 2",
        ]:
            self.assertRaises(
                journey_bench.BenchPathError, journey_bench.benchValue, self.results, text
            )

    def test_pagesQuoteRuns(self) -> None:
        """
        Every ``:bench:`` role of the benchmark pages names a value in
        ``bench/results``.
        """
        results = REPO / "bench" / "results"
        roles = [
            text
            for page in sorted((REPO / "docs" / "benchmarks").glob("*.rst"))
            for text in re.findall(r":bench:`([^`]+)`", page.read_text())
        ]
        self.assertGreater(len(roles), 10)
        for text in roles:
            journey_bench.benchValue(results, text)

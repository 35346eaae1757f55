"""
The benchmarks' JSON results and the charts drawn from them (``bench/common.py``,
``bench/charts.py``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import REPO

sys.path.insert(0, str(REPO / "bench"))

import common


class ResultsTests(SynchronousTestCase):
    """
    ``writeResults`` records what a chart needs and states where it was measured.
    """

    def test_document(self) -> None:
        """
        The JSON holds the benchmark, a date, the machine, the settings and every row.
        """
        path = Path(self.mktemp()) / "results" / "greet.json"
        rows = [common.Row("journey-greet --quiet", {"server_us/conn": 23.5, "errors": 0})]
        common.writeResults(path, "greet", {"seconds": 3.0},
                            {"connections": {"title": "t", "baseline": "b", "rows": rows}})  # fmt: skip
        document = json.loads(path.read_text())
        self.assertEqual(document["benchmark"], "greet")
        self.assertEqual(document["settings"], {"seconds": 3.0})
        self.assertIn("cpus", document["machine"])
        self.assertRegex(document["date"], r"^\d{4}-\d\d-\d\dT")
        self.assertEqual(
            document["tables"]["connections"]["rows"],
            [{"name": "journey-greet --quiet", "server_us/conn": 23.5, "errors": 0}],
        )


class ChartTests(SynchronousTestCase):
    """
    ``bench/charts.py`` draws only what the results hold.
    """

    def test_greetChart(self) -> None:
        """
        From a greet results file, an SVG naming every server and the run's machine and
        date; a benchmark without results is skipped, not invented.
        """
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise SkipTest("matplotlib (in the test extra) is not installed") from None
        import charts

        results, out = Path(self.mktemp()), Path(self.mktemp())
        rows = [
            common.Row("journey-greet --quiet", {"server_us/conn": 23.5, "conn/s": 15000.0}),
            common.Row("asyncio", {"server_us/conn": 32.0, "conn/s": "n/a"}),
        ]
        common.writeResults(results / "greet.json", "greet", {},
                            {"connections": {"title": "t", "baseline": "b", "rows": rows}})  # fmt: skip
        self.assertEqual(charts.main(["--results", str(results), "--out", str(out)]), 0)
        self.assertEqual(sorted(p.name for p in out.iterdir()), ["greet-cpu.svg"])
        svg = (out / "greet-cpu.svg").read_text()
        self.assertIn("journey-greet --quiet", svg)
        self.assertIn("bench/greet.py", svg)


class ChartLayoutTests(SynchronousTestCase):
    """
    Every chart fills the page's width, shows the runs' ranges where the results have them,
    and says when and on what, and how loaded, the machine was.
    """

    def setUp(self) -> None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise SkipTest("matplotlib (in the test extra) is not installed") from None

    def draw(
        self, name: str, tables: dict[str, dict[str, object]], settings: dict[str, object]
    ) -> dict[str, str]:
        """
        Write a results file for ``name`` and draw its charts: ``{file name: SVG text}``.
        """
        import charts

        results, out = Path(self.mktemp()), Path(self.mktemp())
        common.writeResults(results / f"{name}.json", name, settings, tables)
        self.assertEqual(charts.main(["--results", str(results), "--out", str(out)]), 0)
        return {p.name: p.read_text() for p in out.iterdir()}

    def test_rangesAndWidth(self) -> None:
        """
        The fetch time chart draws a whisker from the fastest to the slowest run of each
        client that has a range; a one-panel chart is as wide as a two-panel one; the
        footer names the load and how many runs each bar is the median of.
        """
        import re

        rows = [
            common.Row("journey fetch", {"wall_s": 1.2, "range_s": "0.8-1.6", "rss_mb": 50.0}),
            common.Row("curl", {"wall_s": 0.9, "range_s": "0.7-1.1", "rss_mb": 10.0}),
        ]
        table = {"title": "one file", "baseline": "curl", "rows": rows}
        svgs = self.draw("fetch", {"large": table}, {"repeat": 5})
        self.assertIn("whiskers: lowest to highest run", svgs["fetch-time.svg"])
        self.assertNotIn("whiskers", svgs["fetch-memory.svg"])
        footer = svgs["fetch-time.svg"]
        self.assertRegex(footer, r"load average [0-9.]+: (quiet|busy)")
        self.assertIn("medians of 5 runs", footer)
        widths = {re.search(r'<svg[^>]* width="([0-9.]+)pt"', s).group(1) for s in svgs.values()}  # type: ignore[union-attr]
        self.assertEqual(len(widths), 1)

    def test_noOffset(self) -> None:
        """
        Large rates are ticked as ``1.5 M``, not with a ``1e6`` offset.
        """
        import charts

        self.assertEqual(charts._tick(1_500_000, None), "1.5 M")
        self.assertEqual(charts._tick(35_000, None), "35 k")
        self.assertEqual(charts._tick(0.25, None), "0.25")

    def test_greetRanges(self) -> None:
        """
        The greet chart draws whiskers from the ``range_server_us/conn`` bench/greet.py
        records, on the CPU panel only.
        """
        rows = [
            common.Row(
                "journey-greet --quiet",
                {"server_us/conn": 23.5, "conn/s": 15000.0, "range_server_us/conn": "21.0-30.5"},
            ),
        ]
        table = {"title": "t", "baseline": "b", "rows": rows}
        svg = self.draw("greet", {"connections": table}, {"repeat": 3})["greet-cpu.svg"]
        self.assertEqual(svg.count("whiskers"), 1)

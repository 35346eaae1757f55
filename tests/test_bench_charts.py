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

"""
Draw the benchmark charts of the documentation from the JSON the benchmarks wrote.

    python bench/charts.py [--results bench/results] [--out docs/benchmarks]

Reads ``greet.json``, ``mux.json``, ``fetch.json`` and, when it exists, ``scale.json``
(each written by the script of the same name, ``--json``), and writes SVG files beside the
benchmark pages.  Every number drawn is one the scripts measured; each chart names the
script, the machine and the date of the run.  A missing results file is skipped with a
message.  Needs matplotlib (the ``bench`` extra); uses the Agg backend, no display.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

#: our own servers and clients, drawn in the accent colour
OURS = ("journey", "fallback", "twisted_journey")


def footer(document: dict[str, Any]) -> str:
    """
    ``bench/NAME.py, DATE, on CPU (N CPUs), KERNEL, Python X, Twisted Y``.
    """
    m = document.get("machine", {})
    parts = [
        f"bench/{document['benchmark']}.py",
        document["date"][:10],
        f"on {m.get('cpu', '?')} ({m.get('cpus', '?')} CPUs, shared)",
        m.get("kernel", ""),
        f"Python {m.get('python', '')}",
        f"Twisted {m.get('twisted', '')}",
    ]
    return ", ".join(part for part in parts if part)


def numeric(rows: list[dict[str, Any]], key: str) -> list[tuple[str, float]]:
    """
    ``(name, value)`` for the rows that have a number under ``key``.
    """
    return [
        (row["name"], float(row[key]))
        for row in rows
        if isinstance(row.get(key), (int, float)) and not isinstance(row.get(key), bool)
    ]


def barChart(
    path: Path, document: dict[str, Any], panels: list[tuple[str, list[tuple[str, float]], str]]
) -> None:
    """
    One horizontal bar chart per panel (title, ``(name, value)`` pairs, axis label), side by
    side, each bar labelled with its value; our tools in blue, the peers in grey.
    """
    panels = [p for p in panels if p[1]]
    if not panels:
        print(f"charts: nothing to draw for {path.name}", file=sys.stderr)
        return
    height = max(len(values) for _, values, _ in panels) * 0.38 + 1.6
    figure, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), height), squeeze=False)
    for axis, (title, values, label) in zip(axes[0], panels, strict=True):
        names = [name for name, _ in values][::-1]
        numbers = [value for _, value in values][::-1]
        colours = ["#1f5fa8" if name.startswith(OURS) else "#9a9a9a" for name in names]
        bars = axis.barh(names, numbers, color=colours)
        labels = [f"{v:,.0f}" if v >= 100 else f"{v:.3g}" for v in numbers]
        axis.bar_label(bars, labels=labels, padding=3, fontsize=8)
        positive = [v for v in numbers if v > 0]
        if positive and max(positive) / min(positive) > 50:
            axis.set_xscale("log")  # a forking server would flatten every other bar
            label += " (log scale)"
        axis.set_title(title, fontsize=10)
        axis.set_xlabel(label, fontsize=9)
        axis.tick_params(labelsize=8)
        axis.margins(x=0.18)
        for side in ("top", "right"):
            axis.spines[side].set_visible(False)
    figure.text(0.01, 0.005, footer(document), fontsize=7, color="#555555")
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    figure.savefig(path, format="svg", metadata={"Date": None})
    plt.close(figure)
    print(f"charts: wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


def load(results: Path, name: str) -> dict[str, Any] | None:
    """
    A results document, or None (with a message) when the benchmark has not been run.
    """
    path = results / f"{name}.json"
    if not path.exists():
        print(f"charts: no {path}; run bench/{name}.py first", file=sys.stderr)
        return None
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    """
    Draw every chart whose results exist.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=str(BENCH / "results"), help="JSON directory")
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks"), help="SVG directory")
    args = parser.parse_args(argv)
    results, out = Path(args.results), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plt.rcParams["svg.hashsalt"] = "twisted_journey"  # stable ids: charts diff cleanly
    plt.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable

    greet = load(results, "greet")
    if greet:
        rows = greet["tables"]["connections"]["rows"]
        barChart(out / "greet-cpu.svg", greet, [
            ("Server CPU per connection (lower is better)", numeric(rows, "server_us/conn"), "µs of server CPU per connection"),
            ("Connections per second", numeric(rows, "conn/s"), "connections/s"),
        ])  # fmt: skip

    mux = load(results, "mux")
    if mux:
        tables = mux["tables"]
        lines = tables["lines"]["rows"]
        barChart(out / "mux-cpu.svg", mux, [
            ("Server CPU per line (lower is better)", numeric(lines, "cpu_us"), "µs of server CPU per line"),
            ("Peak memory under load", numeric(lines, "peak_mb"), "MB (peak RSS)"),
        ])  # fmt: skip
        if "idle" in tables:
            barChart(out / "mux-idle.svg", mux, [
                (tables["idle"]["title"], numeric(tables["idle"]["rows"], "bytes_per_conn"), "bytes of memory per idle connection"),
            ])  # fmt: skip

    fetch = load(results, "fetch")
    if fetch:
        tables = fetch["tables"]
        barChart(out / "fetch-time.svg", fetch, [
            (tables[key]["title"], numeric(tables[key]["rows"], "wall_s"), "seconds (lower is better)")
            for key in ("large", "small") if key in tables
        ])  # fmt: skip
        barChart(out / "fetch-memory.svg", fetch, [
            (tables[key]["title"], numeric(tables[key]["rows"], "rss_mb"), "MB (peak RSS of the client)")
            for key in ("large", "small") if key in tables
        ])  # fmt: skip

    scale = load(results, "scale")
    if scale:
        # bench/scale.py writes one row per (tool, worker count), and the machine inline.
        document = {
            "benchmark": "scale",
            "date": scale["date"],
            "machine": {
                "cpu": scale.get("cpu", "?"),
                "cpus": scale.get("cores", "?"),
                "python": scale.get("python", ""),
                "twisted": scale.get("twisted", ""),
                "kernel": "",
            },
        }
        panels = []
        for tool in dict.fromkeys(row["tool"] for row in scale.get("rows", [])):
            rows = [row for row in scale["rows"] if row["tool"] == tool]
            named = [{"name": f"{tool} x{row['workers']}", "rate": row["rate"]} for row in rows]
            unit = rows[0].get("unit", "per second")
            panels.append((f"{tool}: {unit} by worker count", numeric(named, "rate"), unit))
        barChart(out / "scale.svg", document, panels)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

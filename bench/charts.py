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


#: a figure's width in inches: every chart fills the page's width at the same scale
WIDTH = 12.8

#: the point sizes of the text (at WIDTH inches across the page's ~700 px, about 9 px and up)
TITLE, LABEL, TICK, NOTE = 13, 12, 11, 10


def quietness(load: object, cpus: object) -> str:
    """
    ``load average L: quiet`` (or ``busy``), from the 1-minute load average the results
    recorded and the CPU count; ``load not recorded`` when they did not.  Quiet means
    under half the CPUs busy.
    """
    if isinstance(load, (int, float)) and isinstance(cpus, int) and cpus > 0:
        return f"load average {load:.1f}: {'quiet' if load < cpus / 2 else 'busy'}"
    return "machine load not recorded"


def footer(document: dict[str, Any]) -> str:
    """
    ``bench/NAME.py, DATE, on CPU (N CPUs), KERNEL, Python X, Twisted Y; LOAD; RUNS``.
    """
    m = document.get("machine", {})
    repeat = document.get("settings", {}).get("repeat")
    parts = [
        f"bench/{document['benchmark']}.py",
        document["date"][:16].replace("T", " ") + " UTC",
        f"on {m.get('cpu', '?')} ({m.get('cpus', '?')} CPUs)",
        m.get("kernel", ""),
        f"Python {m.get('python', '')}",
        f"Twisted {m.get('twisted', '')}",
    ]
    text = ", ".join(part for part in parts if part)
    text += "; " + quietness(m.get("loadavg"), m.get("cpus"))
    if repeat:
        text += f"; bars are medians of {repeat} runs"
    return text


def numeric(rows: list[dict[str, Any]], key: str) -> list[tuple[str, float]]:
    """
    ``(name, value)`` for the rows that have a number under ``key``.
    """
    return [
        (row["name"], float(row[key]))
        for row in rows
        if isinstance(row.get(key), (int, float)) and not isinstance(row.get(key), bool)
    ]


def ranges(rows: list[dict[str, Any]], key: str) -> dict[str, tuple[float, float]]:
    """
    ``{name: (low, high)}``: the lowest and highest of the runs behind each row's ``key``,
    from its ``range_KEY`` text (``"0.79-1.60"``; bench/fetch.py names the range of
    ``wall_s`` ``range_s``).  Rows without one are left out.
    """
    found = {}
    for row in rows:
        text = row.get(f"range_{key}", row.get("range_s") if key == "wall_s" else None)
        if isinstance(text, str) and "-" in text:
            low, high = text.split("-", 1)
            try:
                found[row["name"]] = (float(low), float(high))
            except ValueError:
                continue
    return found


def _tick(value: float, _position: object) -> str:
    """
    An axis tick as ``1.5 M``, ``35 k`` or ``0.25``: short, never with a ``1e6`` offset.
    """
    if abs(value) >= 1e6:
        return f"{value / 1e6:g} M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:g} k"
    return f"{value:g}"


def _value(value: float) -> str:
    """
    A bar's label: ``1,500,000`` or ``0.25``.
    """
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


Panel = tuple[str, list[tuple[str, float]], str]


def barChart(
    path: Path,
    document: dict[str, Any],
    panels: list[Panel],
    spreads: list[dict[str, tuple[float, float]]] | None = None,
) -> None:
    """
    One horizontal bar chart per panel (title, ``(name, value)`` pairs, axis label), side by
    side across the page's width, each bar labelled with its value; our tools in blue, the
    peers in grey.  ``spreads`` (one mapping per panel) draws each run's range, fastest to
    slowest, as an error bar on the bars that have one.
    """
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    keep = [i for i, p in enumerate(panels) if p[1]]
    panels = [panels[i] for i in keep]
    spreads = [spreads[i] for i in keep] if spreads else [{} for _ in panels]
    if not panels:
        print(f"charts: nothing to draw for {path.name}", file=sys.stderr)
        return
    height = max(3.4, max(len(values) for _, values, _ in panels) * 0.5 + 2.0)
    figure, axes = plt.subplots(1, len(panels), figsize=(WIDTH, height), squeeze=False)
    for axis, (title, values, label), spread in zip(axes[0], panels, spreads, strict=True):
        names = [name for name, _ in values][::-1]
        numbers = [value for _, value in values][::-1]
        colours = ["#1f5fa8" if name.startswith(OURS) else "#9a9a9a" for name in names]
        errors = None
        if any(name in spread for name in names):
            # The range is printed rounded ("0.01-0.01"): a value below its rounded low
            # end (7 ms) gets no whisker on that side rather than a negative one.
            errors = [
                [
                    max(0.0, v - spread[n][0]) if n in spread else 0
                    for n, v in zip(names, numbers, strict=True)
                ],
                [
                    max(0.0, spread[n][1] - v) if n in spread else 0
                    for n, v in zip(names, numbers, strict=True)
                ],
            ]
            label += "; whiskers: lowest to highest run"
        bars = axis.barh(names, numbers, color=colours, xerr=errors,
                         error_kw={"ecolor": "#222222", "capsize": 4, "elinewidth": 1.2})  # fmt: skip
        labels = [_value(v) for v in numbers]
        axis.bar_label(bars, labels=labels, padding=6 if errors else 3, fontsize=TICK)
        positive = [v for v in numbers if v > 0]
        if positive and max(positive) / min(positive) > 50:
            axis.set_xscale("log")  # a forking server would flatten every other bar
            label += " (log scale)"
        else:
            axis.xaxis.set_major_locator(MaxNLocator(5))
            axis.xaxis.set_major_formatter(FuncFormatter(_tick))
        axis.set_title(title, fontsize=TITLE)
        axis.set_xlabel(label, fontsize=LABEL)
        axis.tick_params(labelsize=TICK)
        axis.margins(x=0.2)
        for side in ("top", "right"):
            axis.spines[side].set_visible(False)
    figure.text(0.01, 0.01, footer(document), fontsize=NOTE, color="#444444", wrap=True)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
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
        ], [ranges(rows, "server_us/conn"), {}])  # fmt: skip

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
        keys = [key for key in ("large", "small", "startup") if key in tables]
        barChart(out / "fetch-time.svg", fetch, [
            (tables[key]["title"], numeric(tables[key]["rows"], "wall_s"), "seconds (lower is better)")
            for key in keys
        ], [ranges(tables[key]["rows"], "wall_s") for key in keys])  # fmt: skip
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
                "loadavg": (scale.get("loadavg_before") or [None])[0],
                "python": scale.get("python", ""),
                "twisted": scale.get("twisted", ""),
                "kernel": "",
            },
        }
        panels, spreads = [], []
        for tool in dict.fromkeys(row["tool"] for row in scale.get("rows", [])):
            rows = [row for row in scale["rows"] if row["tool"] == tool]
            named = [
                {"name": f"{tool} x{row['workers']}", "rate": row["rate"], "range_rate": row.get("range_rate")}
                for row in rows
            ]  # fmt: skip
            unit = rows[0].get("unit", "per second")
            panels.append((f"{tool}: {unit} by worker count", numeric(named, "rate"), unit))
            spreads.append(ranges(named, "rate"))
        barChart(out / "scale.svg", document, panels, spreads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

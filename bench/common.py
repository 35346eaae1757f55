"""
What every benchmark here needs: start a server process, measure its CPU time and peak
memory from ``/proc``, compile a C load generator, and print a table of ratios.

Benchmarks are scripts, not tests: they print numbers and assert nothing about them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BUILD = BENCH / "_build"
TICKS = os.sysconf("SC_CLK_TCK")


def environment() -> dict[str, str]:
    """
    The environment for a child: this checkout first on ``PYTHONPATH``.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def freePort() -> int:
    """
    A loopback TCP port that nothing listened on a moment ago.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpuSeconds(pid: int) -> float:
    """
    User plus system CPU seconds used so far by process ``pid`` and its reaped children.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime are fields 14-17 of stat; [0] here is field 3.
    return sum(int(f) for f in fields[11:15]) / TICKS


def peakRss(pid: int) -> int:
    """
    Peak resident memory of ``pid`` in bytes (``VmHWM``).
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def rss(pid: int) -> int:
    """
    Current resident memory of ``pid`` in bytes (``VmRSS``).
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def treeCpuSeconds(pid: int) -> float:
    """
    CPU seconds of ``pid`` and all its live descendants (for forking servers, whose
    children may not have been reaped yet; reaped ones are in ``cutime``).
    """
    total = cpuSeconds(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        try:
            total += treeCpuSeconds(int(child))
        except (OSError, IndexError):
            pass
    return total


def waitForPort(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """
    Wait until something accepts on loopback ``port``, or raise if ``process`` exits.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{process.args} never listened on {port}")


class Server:
    """
    A server child process under measurement, as a context manager that stops it.
    """

    def __init__(self, argv: Sequence[str], port: int, **popen: object) -> None:
        self.argv = list(argv)
        self.port = port
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=environment(),
            **popen,  # type: ignore[arg-type]
        )

    def __enter__(self) -> Server:
        waitForPort(self.port, self.process)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def cpu(self) -> float:
        """
        CPU seconds used so far, children included.
        """
        return treeCpuSeconds(self.process.pid)


def compileC(source: str, name: str) -> Path:
    """
    Compile ``bench/SOURCE`` with ``cc -O2`` into ``bench/_build/NAME`` (once).
    """
    BUILD.mkdir(exist_ok=True)
    target = BUILD / name
    src = BENCH / source
    if not target.exists() or target.stat().st_mtime < src.stat().st_mtime:
        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            sys.exit("bench: a C compiler (cc) is needed to build the load generator.")
        subprocess.run([compiler, "-O2", "-o", str(target), str(src)], check=True)
    return target


@dataclass
class Row:
    """
    One line of a benchmark table.
    """

    name: str
    values: dict[str, float | int | str]


def printTable(
    rows: Sequence[Row], columns: Sequence[tuple[str, str]], ratioOf: str, baseline: str
) -> None:
    """
    Print ``rows`` as an aligned table plus a ratio column: each row's ``ratioOf`` value
    divided by the row named ``baseline``'s.

    :param columns: ``(key, format)`` pairs, e.g. ``("cpu_us", "{:.1f}")``.
    """
    base = next((r.values[ratioOf] for r in rows if r.name == baseline), None)
    header = ["server", *[key for key, _ in columns], f"{ratioOf} / {baseline}"]
    lines = [header]
    for row in rows:
        cells = [row.name]
        for key, fmt in columns:
            value = row.values.get(key, "")
            cells.append(fmt.format(value) if isinstance(value, (int, float)) else str(value))
        value = row.values.get(ratioOf)
        ratio = (
            f"{value / base:.2f}x"
            if isinstance(value, (int, float)) and isinstance(base, (int, float)) and base
            else ""
        )
        cells.append(ratio)
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for i, line in enumerate(lines):
        print(
            "  ".join(
                cell.ljust(w) if j == 0 else cell.rjust(w)
                for j, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))


def machine() -> dict[str, object]:
    """
    What the numbers were measured on: CPU model and count, kernel, Python, Twisted.
    """
    import platform

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import twisted

        twistedVersion = twisted.__version__
    except ImportError:
        twistedVersion = ""
    return {
        "cpu": model or platform.machine(),
        "cpus": os.cpu_count(),
        # the 1-minute load average as the results are written: was the machine quiet?
        "loadavg": round(os.getloadavg()[0], 2),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "twisted": twistedVersion,
    }


def resultsPath(name: str) -> Path:
    """
    The default place for a benchmark's JSON results: ``bench/results/NAME.json``.
    """
    return BENCH / "results" / f"{name}.json"


def writeResults(path: str | Path, benchmark: str, settings: dict[str, object],
                 tables: dict[str, dict[str, object]]) -> None:  # fmt: skip
    """
    Write a benchmark's results as JSON, for ``bench/charts.py`` and for anyone's scripts:
    the benchmark's name, when and on what it ran, its settings, and each table printed,
    as ``{"title": ..., "baseline": ..., "rows": [{"name": ..., KEY: VALUE...}]}``.
    """
    import datetime
    import json

    document = {
        "benchmark": benchmark,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": settings,
        "tables": {
            key: {**table, "rows": [{"name": r.name, **r.values} for r in table["rows"]]}  # type: ignore[attr-defined]
            for key, table in tables.items()
        },
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"\nresults written to {target}", file=sys.stderr)

"""
Scaling benchmark: connections per second (journey-greet) and lines per second
(journey-mux) for 1..N worker processes (``--workers``), on the machine it runs on; and,
in the same run, journey-greet's CPU per connection against a bare Twisted server and
uvloop (the peers in ``greet_peers.py``).

Usage::

    python bench/scale.py                        # 1..cores workers, 3 s runs
    python bench/scale.py --max-workers 8 --loaders 4 --seconds 5
    python bench/scale.py --skip-peers --output /tmp/scale.json

Load: the C load generators of ``bench/greet.py`` and ``bench/mux.py``.  ``greetload``
keeps ``--concurrency`` connections in flight per loader (connect, read the greeting,
check it, close); ``muxload`` opens ``--clients`` connections per loader that each send
``--lines`` lines of ``--size`` bytes, then waits for the server to close them.
``--loaders`` load generators run at once (one is a single-threaded process: on a
many-core machine one alone cannot keep 8 workers busy; the default is one per four
cores).  Each server runs with ``--quiet`` on ``127.0.0.1``; journey-mux writes to a
temporary directory and every line is counted in its files afterwards (``lost`` must be
0).  Server CPU is the supervisor's and all its workers' (from ``/proc``).

**On a small machine the load generators share the cores with the workers**: with 2
cores, 2 workers plus a load generator need 3, so the ratios there say little about
scaling; they are meant for a machine with a few cores more than workers.

JSON written to ``--output`` (default ``bench/results/scale.json``)::

    {
      "machine": "hostname", "cpu": "model name", "cores": 2,
      "date": "2026-12-01T00:00:00+00:00", "python": "3.11.7", "twisted": "26.10.0",
      "settings": {"seconds": 3.0, "concurrency": 100, "clients": 20, ...},
      "loadavg_before": [0.1, 0.2, 0.2], "loadavg_after": [1.9, 0.6, 0.3],
      "rows": [
        {"tool": "journey-greet", "workers": 1, "rate": 12345.6, "unit": "conn/s",
         "ratio": 1.0, "server_cpu_s": 2.9, "server_us_per_unit": 25.1, "errors": 0},
        {"tool": "journey-mux", "workers": 2, "rate": 987654.3, "unit": "lines/s",
         "ratio": 1.6, "server_cpu_s": 4.1, "server_us_per_unit": 0.24, "lost": 0},
        ...
      ],
      "cpu_per_connection": [
        {"server": "journey-greet --quiet", "server_us_per_conn": 30.1,
         "conn_per_s": 30000.0, "vs_bare_twisted": 1.02, "vs_uvloop": 1.6},
        ...
      ]
    }

``ratio`` is a row's rate over the same tool's rate with one worker; ``range_rate``
(journey-greet rows) is the lowest and highest rate of the ``--repeat`` runs, ``"LOW-HIGH"``;
``server_us_per_unit`` is the server's CPU (all processes) per connection or per line,
which, unlike the rates, hardly depends on what else the machine runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import greet as greet_bench
from common import BENCH, Row, Server, compileC, freePort, printTable

PYTHON = sys.executable
TWISTD = [PYTHON, "-c", "from twisted.scripts.twistd import run; run()", "--nodaemon", "--pidfile="]
GREETING = "Thank you for connecting\r\n"
RESULTS = BENCH / "results" / "scale.json"


def cores() -> int:
    """
    The cores this process may run on.
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cpuModel() -> str:
    """
    The CPU's model name, from ``/proc/cpuinfo``.
    """
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def waitForWorkers(server: Server, logPath: Path, workers: int, timeout: float = 60.0) -> None:
    """
    Wait until every worker has logged that it listens (with one worker, the process).
    """
    deadline = time.monotonic() + timeout
    wanted = [f"[worker-{i} " for i in range(workers)] if workers > 1 else ["starting on"]
    while time.monotonic() < deadline:
        text = logPath.read_text(errors="replace") if logPath.exists() else ""
        if all(
            any(w in line and "starting on" in line for line in text.splitlines()) for w in wanted
        ):
            return
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.argv} exited with {server.process.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"{workers} workers never listened: {server.argv}")


def greetLoad(tool: Path, port: int, args: argparse.Namespace, seconds: float) -> dict[str, float]:
    """
    Run ``args.loaders`` greeting load generators at once; sum their counters.
    """
    argv = [str(tool), "127.0.0.1", str(port), str(args.concurrency), str(seconds), "0", GREETING]
    processes = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(args.loaders)
    ]
    totals: dict[str, float] = {"completed": 0, "errors": 0, "seconds": 0, "cpu": 0}
    for process in processes:
        out, _ = process.communicate(timeout=seconds + 60)
        words = out.split()
        counts = {words[i]: float(words[i + 1]) for i in range(0, len(words), 2)}
        for key in ("completed", "errors", "cpu"):
            totals[key] += counts[key]
        totals["seconds"] = max(totals["seconds"], counts["seconds"])
    return totals


def greetRow(tool: Path, workers: int, args: argparse.Namespace, directory: Path) -> dict:
    """
    journey-greet with ``workers`` workers: connections per second.
    """
    port = freePort()
    log = directory / f"greet-{workers}.log"
    argv = [*TWISTD, f"--logfile={log}", "journey-greet", "--quiet", "--workers", str(workers),
            "--listen", f"tcp:{port}:interface=127.0.0.1:backlog=4096"]  # fmt: skip
    print(f"  journey-greet --workers {workers} ...", file=sys.stderr, flush=True)
    with Server(argv, port) as server:
        waitForWorkers(server, log, workers)
        greetLoad(tool, port, args, 1.0)
        runs = []
        for _ in range(args.repeat):
            before = server.cpu()
            counts = greetLoad(tool, port, args, args.seconds)
            used = server.cpu() - before
            done = max(1, int(counts["completed"]))
            runs.append((done / counts["seconds"], used, int(counts["errors"]), used / done))
    runs.sort()
    rate, used, errors, perConnection = runs[len(runs) // 2]
    return {"tool": "journey-greet", "workers": workers, "rate": round(rate, 1),
            "range_rate": f"{runs[0][0]:.1f}-{runs[-1][0]:.1f}",
            "unit": "conn/s", "server_cpu_s": round(used, 3),
            "server_us_per_unit": round(perConnection * 1e6, 2), "errors": errors}  # fmt: skip


def countLines(paths: list[Path]) -> int:
    """
    Lines in every file of ``paths`` that exists.
    """
    total = 0
    for path in paths:
        if path.exists():
            with open(path, "rb") as f:
                total += sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    return total


def muxRow(tool: Path, workers: int, args: argparse.Namespace, directory: Path) -> dict:
    """
    journey-mux with ``workers`` workers: lines per second, every line checked.
    """
    port = freePort()
    log = directory / f"mux-{workers}.log"
    output = directory / f"mux-{workers}.out"
    argv = [*TWISTD, f"--logfile={log}", "journey-mux", "--quiet", "--workers", str(workers),
            "--listen", f"tcp:{port}:interface=127.0.0.1:backlog=4096",
            "--output", str(output)]  # fmt: skip
    print(f"  journey-mux --workers {workers} ...", file=sys.stderr, flush=True)
    loaderArgv = [str(tool), str(port), str(args.clients), str(args.lines), str(args.size)]
    with Server(argv, port) as server:
        waitForWorkers(server, log, workers)
        before = server.cpu()
        started = time.monotonic()
        processes = [
            subprocess.Popen(loaderArgv, stdout=subprocess.DEVNULL) for _ in range(args.loaders)
        ]
        for process in processes:
            process.wait(timeout=600)
        elapsed = time.monotonic() - started
        used = server.cpu() - before
    sent = args.loaders * args.clients * args.lines
    files = [output] if workers == 1 else [Path(f"{output}.w{i}") for i in range(workers)]
    written = countLines(files)
    for path in files:
        path.unlink(missing_ok=True)
    return {"tool": "journey-mux", "workers": workers, "rate": round(sent / elapsed, 1),
            "unit": "lines/s", "server_cpu_s": round(used, 3),
            "server_us_per_unit": round(used / sent * 1e6, 4), "lost": sent - written}  # fmt: skip


def cpuPerConnection(args: argparse.Namespace, directory: Path) -> list[dict]:
    """
    journey-greet (one process), a bare Twisted server and uvloop, measured as
    ``bench/greet.py`` measures them (alternating rounds).
    """
    tool = compileC("greetload.c", "greetload")
    wanted = ("journey-greet --quiet", greet_bench.BARE, greet_bench.UVLOOP)
    options = argparse.Namespace(seconds=args.seconds, repeat=args.repeat, concurrency=100)
    chosen = [
        (name, argv)
        for name, argv in greet_bench.servers(directory)
        if name in wanted and argv is not None
    ]
    measured = greet_bench.measureAll(chosen, tool, options)
    rows = [greet_bench.summary(name, runs) for name, runs in measured.items()]
    values = {row.name: float(row.values["server_us/conn"]) for row in rows}
    bare, uvloop = values.get(greet_bench.BARE), values.get(greet_bench.UVLOOP)
    result = []
    for row in rows:
        us = float(row.values["server_us/conn"])
        result.append(
            {
                "server": row.name,
                "server_us_per_conn": round(us, 2),
                "conn_per_s": round(float(row.values["conn/s"]), 1),
                "vs_bare_twisted": round(us / bare, 3) if bare else None,
                "vs_uvloop": round(us / uvloop, 3) if uvloop else None,
            }
        )
    return result


def main() -> None:
    """
    Measure, print the tables, write the JSON.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-workers", type=int, default=cores(), help="measure 1..N workers")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each greet run")
    parser.add_argument("--repeat", type=int, default=3, help="greet runs per row (median)")
    parser.add_argument("--concurrency", type=int, default=100, help="greet connections per loader")
    parser.add_argument("--clients", type=int, default=20, help="mux connections per loader")
    parser.add_argument("--lines", type=int, default=100000, help="lines per mux connection")
    parser.add_argument("--size", type=int, default=100, help="bytes per line")
    parser.add_argument("--loaders", type=int, default=max(1, cores() // 4),
                        help="load generators at once [default: one per 4 cores]")  # fmt: skip
    parser.add_argument("--skip-peers", action="store_true", help="skip the CPU/connection table")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    if not 1 <= args.max_workers <= 256 or not 1 <= args.loaders <= 64:
        parser.error("--max-workers must be in [1, 256] and --loaders in [1, 64]")
    loadBefore = os.getloadavg()
    greetTool = compileC("greetload.c", "greetload")
    muxTool = compileC("muxload.c", "muxload")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="journey-scale-") as name:
        directory = Path(name)
        for workers in range(1, args.max_workers + 1):
            rows.append(greetRow(greetTool, workers, args, directory))
        for workers in range(1, args.max_workers + 1):
            rows.append(muxRow(muxTool, workers, args, directory))
        peers = [] if args.skip_peers else cpuPerConnection(args, directory)
    for row in rows:
        base = next(r["rate"] for r in rows if r["tool"] == row["tool"] and r["workers"] == 1)
        row["ratio"] = round(row["rate"] / base, 3) if base else None
    import twisted

    report = {
        "machine": platform.node(),
        "cpu": cpuModel(),
        "cores": cores(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "settings": {k: v for k, v in vars(args).items() if k != "output"},
        # Other processes' load around the run: on a shared machine, read the rates with it.
        "loadavg_before": [round(x, 2) for x in loadBefore],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
        "cpu_per_connection": peers,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['cores']} cores ({report['cpu']}), {args.loaders} load generator(s) "
          f"sharing them; greet: {args.concurrency} in flight per loader, median of "
          f"{args.repeat} x {args.seconds:g} s; mux: {args.clients} clients x {args.lines} "
          f"lines x {args.size} B per loader; load average before {loadBefore[0]:.2f}, "
          f"after {os.getloadavg()[0]:.2f}")  # fmt: skip
    for tool in ("journey-greet", "journey-mux"):
        print()
        printTable(
            [
                Row(f"{r['tool']} --workers {r['workers']}", {**r})
                for r in rows
                if r["tool"] == tool
            ],
            [
                ("rate", "{:,.0f}"),
                ("unit", "{}"),
                ("server_cpu_s", "{:.2f}"),
                ("server_us_per_unit", "{:.3g}"),
                ("errors", "{}"),
                ("lost", "{}"),
            ],
            ratioOf="rate",
            baseline=f"{tool} --workers 1",
        )
    if peers:
        print()
        print("journey-greet CPU per connection against its peers, same run")
        printTable(
            [Row(p["server"], {**p}) for p in peers],
            [
                ("server_us_per_conn", "{:.1f}"),
                ("conn_per_s", "{:,.0f}"),
                ("vs_uvloop", "{}"),
            ],
            ratioOf="server_us_per_conn",
            baseline=greet_bench.BARE,
        )
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()

"""
Greeting-server benchmark: server CPU per connection and connections per second for
journey-greet, the stdlib fallback's modes, and the peers in ``greet_peers.py``.

Usage::

    python bench/greet.py [--seconds 3] [--repeat 3] [--concurrency 100] [--only NAME ...]

Each server runs alone in its own process on ``127.0.0.1`` (backlog 1024).  The C load
generator ``greetload.c`` keeps ``--concurrency`` connections in flight (connect, read to
EOF, check the exact bytes, close with an RST), first for a one-second warm-up, then for
``--repeat`` measured runs of ``--seconds`` each.  The server's CPU time (user + system,
children included) is read from ``/proc`` around each run and divided by the connections
completed; the table shows the median run.  The load generator's own CPU is shown too
(per connection, and as a share of one core), so a run where the client was the
bottleneck shows itself.  Loopback only; every run stops by itself.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH, Row, Server, compileC, freePort, printTable, resultsPath, writeResults

GREETING = "Thank you for connecting\r\n"
PYTHON = sys.executable
TWISTD = [PYTHON, "-c", "from twisted.scripts.twistd import run; run()"]
FALLBACK_MODES = ("select", "threading", "serial", "forking")
BARE = "twisted (bare)"
UVLOOP = "asyncio+uvloop"


def servers(logDirectory: Path) -> Iterator[tuple[str, list[str] | None]]:
    """
    ``(name, argv)`` for every server in the table, ``PORT`` standing for the port;
    ``argv`` is ``None`` for one that is not available here.
    """
    listen = "tcp:PORT:interface=127.0.0.1:backlog=1024"

    def twistd(logName: str, *extra: str) -> list[str]:
        log = str(logDirectory / logName)
        twistdArgs = [*TWISTD, "-n", "--pidfile=", f"--logfile={log}"]
        return [*twistdArgs, "journey-greet", "--listen", listen, *extra]

    yield "journey-greet --quiet", twistd("quiet.log", "--quiet")
    yield "journey-greet (logging)", twistd("events.log")
    peers = str(BENCH / "greet_peers.py")
    yield BARE, [PYTHON, peers, "twisted", "PORT"]
    yield "asyncio", [PYTHON, peers, "asyncio", "PORT"]
    yield UVLOOP, [PYTHON, peers, "uvloop", "PORT"]
    yield "selectors loop", [PYTHON, peers, "selectors", "PORT"]
    yield "ThreadingTCPServer", [PYTHON, peers, "threading", "PORT"]
    yield "ForkingTCPServer", [PYTHON, peers, "forking", "PORT"]
    fallback = (BENCH.parent / "twisted_journey" / "fallback" / "greet.py").exists()
    for mode in FALLBACK_MODES:
        argv = [PYTHON, "-m", "twisted_journey.fallback.greet", "--listen", listen]
        yield f"fallback --mode {mode}", [*argv, "--quiet", "--mode", mode] if fallback else None


def load(tool: Path, port: int, concurrency: int, seconds: float) -> dict[str, float]:
    """
    Run the load generator once and return its counters.
    """
    argv = [str(tool), "127.0.0.1", str(port), str(concurrency), str(seconds), "0", GREETING]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=seconds + 30)
    words = out.stdout.split()
    return {words[i]: float(words[i + 1]) for i in range(0, len(words), 2)}


@contextmanager
def quietly(name: str) -> Iterator[None]:
    """
    Print the server being measured on stderr, so a long run shows progress.
    """
    print(f"  measuring {name} ...", file=sys.stderr, flush=True)
    yield


def measure(name: str, argv: list[str], tool: Path, args: argparse.Namespace) -> Row:
    """
    Start one server, warm it up, measure ``args.repeat`` runs, stop it; the row is the
    run with the median server CPU per connection, with errors summed over all runs and
    the lowest and highest server CPU per connection of the runs (``range_server_us/conn``,
    ``"LOW-HIGH"``, for the chart's whiskers).
    """
    port = freePort()
    argv = [a.replace("PORT", str(port)) for a in argv]
    runs = []
    errors = 0
    with quietly(name), Server(argv, port) as server:
        load(tool, port, args.concurrency, 1.0)
        for _ in range(args.repeat):
            before = server.cpu()
            counts = load(tool, port, args.concurrency, args.seconds)
            used = server.cpu() - before
            done = int(counts["completed"]) or 1
            errors += int(counts["errors"])
            runs.append(
                {
                    "conn/s": done / counts["seconds"],
                    "server_us/conn": used / done * 1e6,
                    "client_us/conn": counts["cpu"] / done * 1e6,
                    "client_core%": counts["cpu"] / counts["seconds"] * 100,
                }
            )
    runs.sort(key=lambda run: run["server_us/conn"])
    spread = f"{runs[0]['server_us/conn']:.2f}-{runs[-1]['server_us/conn']:.2f}"
    return Row(name, {**runs[len(runs) // 2], "errors": errors, "range_server_us/conn": spread})


def main() -> None:
    """
    Measure every server and print the table.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each measured run")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per server")
    parser.add_argument("--concurrency", type=int, default=100, help="connections in flight")
    parser.add_argument("--only", action="append", help="measure only servers whose name has this")
    parser.add_argument("--json", default=str(resultsPath("greet")), help="write results here")
    args = parser.parse_args()
    if not 0 < args.seconds <= 600 or not 1 <= args.repeat <= 20:
        parser.error("--seconds must be in (0, 600] and --repeat in [1, 20]")
    if not 1 <= args.concurrency <= 4096:
        parser.error("--concurrency must be in [1, 4096]")
    tool = compileC("greetload.c", "greetload")
    rows = []
    with tempfile.TemporaryDirectory(prefix="journey-bench-") as logs:
        for name, argv in servers(Path(logs)):
            if args.only and not any(part in name for part in args.only):
                continue
            if argv is None:
                rows.append(Row(name, {"conn/s": "n/a"}))
                continue
            rows.append(measure(name, argv, tool, args))
    uvloop = next((r.values.get("server_us/conn") for r in rows if r.name == UVLOOP), None)
    for row in rows:
        value = row.values.get("server_us/conn")
        if isinstance(value, float) and isinstance(uvloop, float) and uvloop:
            row.values["vs uvloop"] = f"{value / uvloop:.2f}x"
    print(
        f"greeting server, {args.concurrency} connections in flight, "
        f"median of {args.repeat} runs of {args.seconds:g} s per server, loopback, C load generator"
    )
    printTable(
        rows,
        [
            ("server_us/conn", "{:.1f}"),
            ("conn/s", "{:,.0f}"),
            ("errors", "{:d}"),
            ("client_us/conn", "{:.1f}"),
            ("client_core%", "{:.0f}"),
            ("vs uvloop", "{}"),
        ],
        ratioOf="server_us/conn",
        baseline=BARE,
    )
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    title = f"greeting server, {args.concurrency} connections in flight"
    writeResults(args.json, "greet", settings,
                 {"connections": {"title": title, "baseline": BARE, "rows": rows}})  # fmt: skip


if __name__ == "__main__":
    main()

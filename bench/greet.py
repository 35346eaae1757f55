"""
Greeting-server benchmark: server CPU per connection and connections per second for
journey-greet, the stdlib fallback's modes, and the peers in ``greet_peers.py``.

Usage::

    python bench/greet.py [--seconds 2] [--repeat 5] [--concurrency 100] [--only NAME ...]

Every server runs in its own process on ``127.0.0.1`` (backlog 1024), all started at
once and each warmed up for a second.  Then come ``--repeat`` rounds; in each round the
C load generator ``greetload.c`` loads every server in turn for ``--seconds``, keeping
``--concurrency`` connections in flight (connect, read to EOF, check the exact bytes,
close with an RST), so that a burst of load from elsewhere on a shared machine hits all
of them alike; each round starts one server further down the list.  The server's CPU time
(user + system, children included) is read from ``/proc`` around each run and divided by
the connections completed; the table shows each server's median run, with the range of
its runs (lowest to highest server CPU per connection).  The load generator's own CPU is
shown too (per connection, and as a share of one core), so a run where the client was
the bottleneck shows itself.  Loopback only; every run stops by itself; the default run
takes about three minutes.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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
    Print what is being measured on stderr, so a long run shows progress.
    """
    print(f"  measuring {name} ...", file=sys.stderr, flush=True)
    yield


def run(server: Server, tool: Path, args: argparse.Namespace) -> dict[str, float]:
    """
    Load ``server`` once for ``args.seconds``; its CPU per connection and the rest.
    """
    before = server.cpu()
    counts = load(tool, server.port, args.concurrency, args.seconds)
    used = server.cpu() - before
    done = int(counts["completed"]) or 1
    return {
        "conn/s": done / counts["seconds"],
        "server_us/conn": used / done * 1e6,
        "client_us/conn": counts["cpu"] / done * 1e6,
        "client_core%": counts["cpu"] / counts["seconds"] * 100,
        "errors": counts["errors"],
    }


def summary(name: str, runs: list[dict[str, float]]) -> Row:
    """
    The row of a server: its run with the median server CPU per connection, with the
    errors summed over all runs and the lowest and highest server CPU per connection of
    the runs (``range_server_us/conn``, ``"LOW-HIGH"``, for the chart's whiskers).
    """
    runs = sorted(runs, key=lambda run: run["server_us/conn"])
    errors = int(sum(run["errors"] for run in runs))
    spread = f"{runs[0]['server_us/conn']:.2f}-{runs[-1]['server_us/conn']:.2f}"
    median = {k: v for k, v in runs[len(runs) // 2].items() if k != "errors"}
    return Row(name, {**median, "errors": errors, "range_server_us/conn": spread})


def measureAll(
    chosen: list[tuple[str, list[str]]], tool: Path, args: argparse.Namespace
) -> dict[str, list[dict[str, float]]]:
    """
    Start every server in ``chosen`` at once, warm each up, then measure them in
    ``args.repeat`` alternating rounds; stop them all.  Each server's runs, in round
    order, by name.
    """
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in chosen}
    with ExitStack() as stack:
        started = []
        for name, argv in chosen:
            port = freePort()
            argv = [a.replace("PORT", str(port)) for a in argv]
            started.append((name, stack.enter_context(Server(argv, port))))
        for name, server in started:
            with quietly(f"{name} (warm-up)"):
                load(tool, server.port, args.concurrency, 1.0)
        for number in range(args.repeat):
            shift = number % len(started)
            for name, server in started[shift:] + started[:shift]:
                with quietly(f"{name} (round {number + 1} of {args.repeat})"):
                    runs[name].append(run(server, tool, args))
    return runs


def versus(runs: list[dict[str, float]], peer: list[dict[str, float]]) -> str:
    """
    Server CPU per connection against a peer's measured in the same rounds: the median
    of the rounds' ratios, and their range (``"1.02x (0.95-1.10)"``).
    """
    ratios = sorted(
        mine["server_us/conn"] / theirs["server_us/conn"]
        for mine, theirs in zip(runs, peer, strict=True)
        if theirs["server_us/conn"]
    )
    if not ratios:
        return "n/a"
    return f"{statistics.median(ratios):.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})"


def main() -> None:
    """
    Measure every server and print the table.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each measured run")
    parser.add_argument(
        "--repeat", type=int, default=5, help="alternating rounds: measured runs per server"
    )
    parser.add_argument("--concurrency", type=int, default=100, help="connections in flight")
    parser.add_argument("--only", action="append", help="measure only servers whose name has this")
    parser.add_argument("--json", default=str(resultsPath("greet")), help="write results here")
    args = parser.parse_args()
    if not 0 < args.seconds <= 600 or not 1 <= args.repeat <= 20:
        parser.error("--seconds must be in (0, 600] and --repeat in [1, 20]")
    if not 1 <= args.concurrency <= 4096:
        parser.error("--concurrency must be in [1, 4096]")
    tool = compileC("greetload.c", "greetload")
    with tempfile.TemporaryDirectory(prefix="journey-bench-") as logs:
        listed = [
            (name, argv)
            for name, argv in servers(Path(logs))
            if not args.only or any(part in name for part in args.only)
        ]
        measured = measureAll([(n, a) for n, a in listed if a is not None], tool, args)
    rows = []
    for name, _ in listed:
        if name not in measured:
            rows.append(Row(name, {"conn/s": "n/a"}))
            continue
        row = summary(name, measured[name])
        if UVLOOP in measured:
            row.values["vs uvloop"] = versus(measured[name], measured[UVLOOP])
        rows.append(row)
    print(
        f"greeting server, {args.concurrency} connections in flight, median of "
        f"{args.repeat} alternating rounds of {args.seconds:g} s per server (range: lowest-highest "
        "server_us/conn), loopback, C load generator"
    )
    printTable(
        rows,
        [
            ("server_us/conn", "{:.1f}"),
            ("conn/s", "{:,.0f}"),
            ("errors", "{:d}"),
            ("client_us/conn", "{:.1f}"),
            ("client_core%", "{:.0f}"),
            ("range_server_us/conn", "{}"),
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

"""
journey-mux against its peers, measured in the same run on this machine.

    python bench/mux.py                      # 100 clients x 20,000 lines x 100 B, idle 10,000
    python bench/mux.py --clients 20 --lines 5000 --idle 2000 --only journey-mux-text,asyncio
    python bench/mux.py --hold 19000         # also: hold 19,000 connections (fd limit 20,000)
    python bench/mux.py --framing syslog     # octet-counted syslog frames, against rsyslog imtcp

Load: ``bench/muxload.c`` (compiled once with ``cc -O2``) opens CLIENTS connections and
sends LINES lines of SIZE bytes on each as fast as the server takes them, half-closes,
and waits for the server to close.  Every server writes every line to a file in a
temporary directory; lines lost = lines sent - lines in the file after the server stopped.

With ``--framing syslog`` each line is an octet-counted syslog frame of SIZE bytes
(``LEN <13>c1 n7 xxx...``, no newline: ``logger --octet-count``'s framing), sent to the
servers that read syslog (:data:`SYSLOG_SERVERS`: journey-mux ``--framing syslog``, its twin,
rsyslog's ``imtcp``), and the table also shows journey-mux's line mode on the same number of
newline-terminated lines of the same size, the cost syslog mode is held to.

Each server is measured ``--repeat`` times, in alternating rounds (every server once per
round, in turn), so that whatever else the machine does hits all of them alike; a row
shows the medians of its runs, the range of its CPU per line (lowest-highest), and the
lines lost in all its runs together.  Below the table, journey-mux's CPU per line over the
selectors loop's: the median and range of the ratios of each round; with ``--framing
syslog``, each syslog server's CPU per message over journey-mux's line mode per line (the
same format) and over rsyslog's ``imtcp``.  The JSON results hold these ratios too (each
table's ``ratios``: name, peer, median, low, high and the ratio of each round).

Columns: server CPU microseconds per line (user + system, from ``/proc``), lines per
second of wall time, lines lost, the server's peak RSS, and the load generator's own CPU
per line (it must stay well below the servers').  The idle table holds IDLE connections
that send nothing and reports the growth of the server's RSS per connection.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH,
    Row,
    Server,
    compileC,
    freePort,
    peakRss,
    printTable,
    resultsPath,
    rss,
    writeResults,
)

PYTHON = sys.executable
TWISTD = [PYTHON, "-c", "from twisted.scripts.twistd import run; run()", "--nodaemon", "--pidfile="]


def journeyMux(*options: str) -> Callable[[int, Path], list[str]]:
    def argv(port: int, output: Path) -> list[str]:
        return [*TWISTD, "journey-mux", "--listen", f"tcp:{port}:interface=127.0.0.1:backlog=1024",
                "--output", str(output), "--quiet", *options]  # fmt: skip

    return argv


def fallback(backend: str, *options: str) -> Callable[[int, Path], list[str]]:
    def argv(port: int, output: Path) -> list[str]:
        return [PYTHON, "-m", "twisted_journey.fallback.mux", "--backend", backend,
                "--listen", f"tcp:{port}:interface=127.0.0.1:backlog=1024",
                "--output", str(output), "--quiet", *options]  # fmt: skip

    return argv


def peer(kind: str) -> Callable[[int, Path], list[str]]:
    def argv(port: int, output: Path) -> list[str]:
        return [PYTHON, str(BENCH / "mux_peers.py"), kind, str(port), str(output)]

    return argv


def rsyslog(port: int, output: Path) -> list[str]:
    """
    rsyslogd in the foreground with ``imtcp`` on ``port``, writing each raw message.
    """
    work = output.parent / "rsyslog"
    work.mkdir(exist_ok=True)
    conf = work / "rsyslog.conf"
    conf.write_text(
        f'global(workDirectory="{work}")\n'
        'module(load="imtcp" MaxSessions="20000")\n'
        f'input(type="imtcp" port="{port}" address="127.0.0.1")\n'
        'template(name="raw" type="string" string="%rawmsg%\\n")\n'
        f'action(type="omfile" file="{output}" template="raw")\n'
    )
    return [shutil.which("rsyslogd") or "rsyslogd", "-n", "-f", str(conf), "-i", str(work / "pid")]


SERVERS: dict[str, Callable[[int, Path], list[str]]] = {
    "journey-mux-text": journeyMux(),
    "journey-mux-json": journeyMux("--format", "json"),
    "fallback-select": fallback("select"),
    "fallback-poll": fallback("poll"),
    "fallback-epoll": fallback("epoll"),
    "twisted-linereceiver": peer("linereceiver"),
    "asyncio": peer("asyncio"),
    "uvloop": peer("uvloop"),
    "selectors": peer("selectors"),
    "rsyslog-imtcp": rsyslog,
}

SYSLOG_SERVERS: dict[str, Callable[[int, Path], list[str]]] = {
    "journey-mux-syslog-text": journeyMux("--framing", "syslog"),
    "journey-mux-syslog-json": journeyMux("--framing", "syslog", "--format", "json"),
    "fallback-epoll-syslog": fallback("epoll", "--framing", "syslog"),
    "rsyslog-imtcp": rsyslog,
}

#: line-mode rows measured beside the syslog ones (on newline-terminated input)
SYSLOG_REFERENCES = ("journey-mux-text", "journey-mux-json")

IDLE_SERVERS: dict[str, Callable[[int, Path], list[str]]] = {
    "journey-mux --timeout 300": journeyMux("--timeout", "300"),
    "journey-mux": journeyMux(),
    "fallback-epoll": fallback("epoll"),
    "twisted-linereceiver": peer("linereceiver"),
    "asyncio": peer("asyncio"),
    "uvloop": peer("uvloop"),
}


def available(name: str) -> bool:
    """
    Whether a peer can run here (uvloop installed, rsyslogd present).
    """
    if name == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            return False
    if name == "rsyslog-imtcp":
        return shutil.which("rsyslogd") is not None
    return True


def countLines(output: Path) -> int:
    """
    Newlines in ``output`` and its rotated siblings.
    """
    total = 0
    for path in output.parent.glob(output.name + "*"):
        with open(path, "rb") as f:
            while block := f.read(1 << 22):
                total += block.count(b"\n")
    return total


def childCpu() -> float:
    """
    CPU seconds used by this process's reaped children.
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load(
    name: str,
    argv: Callable[[int, Path], list[str]],
    loader: Path,
    args: argparse.Namespace,
    octet: bool = False,
) -> Row:
    """
    Run the load against one server and return its row.
    """
    directory = Path(tempfile.mkdtemp(prefix="bench-mux-"))
    try:
        output = directory / "out.log"
        port = freePort()
        total = args.clients * args.lines
        with Server(argv(port, output), port) as server:
            time.sleep(0.3)
            before, clientBefore = server.cpu(), childCpu()
            started = time.monotonic()
            done = subprocess.run(
                [str(loader), str(port), str(args.clients), str(args.lines), str(args.size)]
                + (["octet"] if octet else []),
                capture_output=True,
                text=True,
            )
            wall = time.monotonic() - started
            cpu = server.cpu() - before
            clientCpu = childCpu() - clientBefore
            peak = peakRss(server.process.pid)
            if done.returncode:
                return Row(name, {"note": f"load failed: {done.stderr.strip()[:60]}"})
            # journey-mux flushes at least every second: give the last records a moment.
            time.sleep(1.2)
        recorded = countLines(output)
        return Row(
            name,
            {
                "cpu_us": cpu / total * 1e6,
                "lines_s": total / wall,
                "lost": total - recorded,
                "peak_mb": peak / 1e6,
                "client_us": clientCpu / total * 1e6,
            },
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def rounds(
    servers: list[tuple[str, Callable[[int, Path], list[str]]]],
    loader: Path,
    args: argparse.Namespace,
    octet: Collection[str] = (),
) -> dict[str, list[Row]]:
    """
    Run the load ``args.repeat`` times against every server, in alternating rounds; the
    servers named in ``octet`` get octet-counted frames, the others lines.
    """
    runs: dict[str, list[Row]] = {name: [] for name, _ in servers}
    for number in range(args.repeat):
        for name, argv in servers:
            print(f"  {name} (round {number + 1} of {args.repeat})...", file=sys.stderr, flush=True)
            runs[name].append(load(name, argv, loader, args, name in octet))
    return runs


def summary(name: str, runs: list[Row]) -> Row:
    """
    One row for a server's runs: the median of each value, the range of ``cpu_us``
    (``"LOW-HIGH"``), the lines lost summed; a failed run's note when any failed.
    """
    failed = [run for run in runs if "note" in run.values]
    if failed:
        return Row(name, dict(failed[0].values))
    values: dict[str, float | int | str] = {
        key: statistics.median(float(run.values[key]) for run in runs)
        for key in ("cpu_us", "lines_s", "peak_mb", "client_us")
    }
    cpu = sorted(float(run.values["cpu_us"]) for run in runs)
    values["range_cpu_us"] = f"{cpu[0]:.3f}-{cpu[-1]:.3f}"
    values["lost"] = sum(int(run.values["lost"]) for run in runs)
    return Row(name, values)


def ratio(runs: dict[str, list[Row]], name: str, peer: str) -> dict[str, object] | None:
    """
    ``name``'s CPU per line (per message) over ``peer``'s, from the ratio in each
    round: ``{"name", "peer", "median", "low", "high", "rounds"}`` (``rounds`` the
    ratios in round order); ``None`` unless both ran in every round.
    """
    pairs = zip(runs.get(name, []), runs.get(peer, []), strict=False)
    ratios = [
        float(a.values["cpu_us"]) / float(b.values["cpu_us"])
        for a, b in pairs
        if isinstance(a.values.get("cpu_us"), float) and isinstance(b.values.get("cpu_us"), float)
        and b.values["cpu_us"]
    ]  # fmt: skip
    if not ratios or len(ratios) < len(runs.get(name, [])):
        return None
    return {"name": name, "peer": peer, "median": statistics.median(ratios), "low": min(ratios),
            "high": max(ratios), "rounds": ratios}  # fmt: skip


def ratioLine(found: dict[str, object]) -> str:
    """
    ``NAME / PEER CPU per line: MEDIANx (rounds: LOW-HIGH)`` for a :func:`ratio`.
    """
    return (
        f"{found['name']} / {found['peer']} CPU per line: {found['median']:.2f}x "
        f"(rounds: {found['low']:.2f}-{found['high']:.2f})"
    )


def ratios(runs: dict[str, list[Row]], pairs: list[tuple[str, str]]) -> list[dict[str, object]]:
    """
    The :func:`ratio` of each ``(name, peer)`` pair that ran in every round, each
    printed as a :func:`ratioLine`.
    """
    found = [r for r in (ratio(runs, name, peer) for name, peer in pairs) if r is not None]
    for r in found:
        print(ratioLine(r))
    return found


def idle(name: str, argv: Callable[[int, Path], list[str]], count: int) -> Row:
    """
    Hold ``count`` idle connections to one server; report RSS growth per connection.
    """
    directory = Path(tempfile.mkdtemp(prefix="bench-mux-idle-"))
    sockets: list[socket.socket] = []
    try:
        port = freePort()
        with Server(argv(port, directory / "out.log"), port) as server:
            warm = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
            time.sleep(0.5)
            for sock in warm:
                sock.close()
            time.sleep(0.5)
            before = rss(server.process.pid)
            for _ in range(count):
                sockets.append(socket.create_connection(("127.0.0.1", port)))
            time.sleep(1.0)
            after = rss(server.process.pid)
            alive = 0
            for sock in sockets:
                try:
                    alive += sock.recv(1, socket.MSG_DONTWAIT) != b""
                except BlockingIOError:
                    alive += 1
                except OSError:
                    pass
        return Row(name, {"held": alive, "bytes_per_conn": (after - before) / count})
    finally:
        for sock in sockets:
            sock.close()
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--lines", type=int, default=20000, help="lines per client")
    parser.add_argument("--size", type=int, default=100, help="bytes per line, newline included")
    parser.add_argument(
        "--idle", type=int, default=10000, help="idle connections to hold (0: skip)"
    )
    parser.add_argument("--hold", type=int, default=0, help="also hold this many on journey-mux")
    parser.add_argument("--only", default="", help="comma-separated server names")
    parser.add_argument(
        "--repeat", type=int, default=3, help="alternating rounds; rows show medians [3]"
    )
    parser.add_argument(
        "--framing",
        choices=("lines", "syslog"),
        default="lines",
        help="syslog: octet-counted frames to the syslog servers (the idle table is skipped)",
    )
    parser.add_argument(
        "--json",
        default=None,
        help="write results here [bench/results/mux.json; mux-syslog.json with --framing syslog]",
    )
    args = parser.parse_args()
    if not 1 <= args.repeat <= 20:
        parser.error("--repeat must be in [1, 20]")
    if args.json is None:
        args.json = str(resultsPath("mux-syslog" if args.framing == "syslog" else "mux"))
    only = set(filter(None, args.only.split(",")))
    loader = compileC("muxload.c", "muxload")

    print(
        f"load: {args.clients} clients x {args.lines} lines x {args.size} B "
        f"= {args.clients * args.lines:,} lines; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n"
    )
    if args.framing == "syslog":
        syslogBench(args, only, loader)
        return
    chosen = [
        (name, argv)
        for name, argv in SERVERS.items()
        if not (only and name not in only) and available(name)
    ]
    runs = rounds(chosen, loader, args)
    rows = [summary(name, runs[name]) for name, _ in chosen]
    best = min(
        (r for r in rows if r.name in ("asyncio", "uvloop", "selectors", "twisted-linereceiver")
         and isinstance(r.values.get("cpu_us"), float)),
        key=lambda r: r.values["cpu_us"],  # type: ignore[arg-type, return-value]
        default=None,
    )  # fmt: skip
    columns = [("cpu_us", "{:.3f}"), ("range_cpu_us", "{}"), ("lines_s", "{:,.0f}"), ("lost", "{:d}"),
               ("peak_mb", "{:.1f}"), ("client_us", "{:.3f}"), ("note", "{}")]  # fmt: skip
    printTable(rows, columns, "cpu_us", best.name if best else "asyncio")
    found = ratios(runs, [("journey-mux-text", "selectors"), ("journey-mux-json", "selectors")])
    tables = {"lines": {"title": f"{args.clients} clients x {args.lines} lines x {args.size} B",
                        "baseline": best.name if best else "asyncio", "rows": rows,
                        "ratios": found}}  # fmt: skip

    if args.idle:
        print(f"\nidle: {args.idle:,} connections held open, sending nothing\n")
        idleRows = []
        for name, argv in IDLE_SERVERS.items():
            if (only and name.split()[0] not in only and name not in only) or not available(name):
                continue
            print(f"  {name}...", file=sys.stderr, flush=True)
            idleRows.append(idle(name, argv, args.idle))
        printTable(
            idleRows,
            [("held", "{:d}"), ("bytes_per_conn", "{:,.0f}")],
            "bytes_per_conn",
            "journey-mux",
        )
        tables["idle"] = {"title": f"{args.idle:,} idle connections", "baseline": "journey-mux",
                          "rows": idleRows}  # fmt: skip

    if args.hold:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        print(
            f"\nhold: {args.hold:,} connections on journey-mux --timeout 300 (descriptor limit {soft:,})\n"
        )
        printTable([idle("journey-mux --timeout 300", IDLE_SERVERS["journey-mux --timeout 300"], args.hold)],
                   [("held", "{:d}"), ("bytes_per_conn", "{:,.0f}")], "bytes_per_conn", "")  # fmt: skip
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    writeResults(args.json, "mux", settings, tables)


def syslogBench(args: argparse.Namespace, only: set[str], loader: Path) -> None:
    """
    The ``--framing syslog`` table: octet-counted frames to every syslog server, and
    journey-mux's line mode on lines of the same size, rsyslog's ``imtcp`` the baseline.
    """
    chosen = [
        (name, argv)
        for name, argv in SYSLOG_SERVERS.items()
        if not (only and name not in only) and available(name)
    ]
    references = [(f"{name} (lines)", SERVERS[name]) for name in SYSLOG_REFERENCES
                  if not (only and name not in only)]  # fmt: skip
    # Syslog servers and line mode in the same alternating rounds, for per-round ratios.
    runs = rounds(chosen + references, loader, args, octet={name for name, _ in chosen})
    rows = [summary(name, runs[name]) for name, _ in chosen + references]
    columns = [("cpu_us", "{:.3f}"), ("range_cpu_us", "{}"), ("lines_s", "{:,.0f}"), ("lost", "{:d}"),
               ("peak_mb", "{:.1f}"), ("client_us", "{:.3f}"), ("note", "{}")]  # fmt: skip
    baseline = "rsyslog-imtcp" if any(r.name == "rsyslog-imtcp" for r in rows) else rows[0].name
    printTable(rows, columns, "cpu_us", baseline)
    # What syslog mode is held to: its CPU per message over line mode's per line (same
    # size, same format), and over rsyslog's imtcp.
    pairs = []
    for name in SYSLOG_SERVERS:
        if name != "rsyslog-imtcp":
            lines = "journey-mux-json" if name.endswith("-json") else "journey-mux-text"
            pairs += [(name, f"{lines} (lines)"), (name, "rsyslog-imtcp")]
    found = ratios(runs, pairs)
    title = f"{args.clients} clients x {args.lines} octet-counted frames x {args.size} B"
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    writeResults(
        args.json,
        "mux",
        settings,
        {"syslog": {"title": title, "baseline": baseline, "rows": rows, "ratios": found}},
    )


if __name__ == "__main__":
    main()

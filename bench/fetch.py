"""
Fetcher benchmark: one large file, many small files, and one small file start to exit,
fetched from a fast local server by ``journey fetch``, its stdlib twin, curl, wget,
``urlretrieve`` and a bare streaming ``Agent``.

Usage::

    python bench/fetch.py [--size-mib 256] [--count 1000] [--small-kib 10]
                          [--concurrency 16] [--repeat 3] [--server auto|nginx|twisted]
                          [--cases large small startup]

The server is nginx from the distribution (``sendfile on``, one worker) when it starts,
else ``twisted.web``'s static ``File``; it listens on 127.0.0.1 only.  Every client runs
as its own process; wall time, CPU (user + system) and peak RSS come from ``wait4``'s
resource usage of that process.  Each case runs ``--repeat`` rounds; in each round every
peer runs once, one after another, so a burst of load from elsewhere on a shared machine
hits all of them alike.  The median of the rounds is shown with the range (fastest to
slowest); ``sync`` runs before each run so no earlier writeback competes with it.  Every
downloaded file is checked for size before a run counts.

Peers that cannot fetch in parallel (the twin, wget, plain ``urlretrieve``) run the
small files one after another; ``urllib (16 threads)`` is ``urlretrieve`` in a thread
pool of ``--concurrency``; ``curl --parallel`` is ``curl -Z --parallel-max N`` over the
same URL list (the small files' baseline).  The start-up case fetches one small file:
what a single ``journey fetch`` costs from start to exit, against the stdlib twin.

Both checkouts are byte-compiled first (``compileall``), as an installed package is:
where ``PYTHONDONTWRITEBYTECODE`` is set, every run would otherwise compile the modules
from source.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, Row, Server, environment, freePort, printTable, resultsPath, writeResults

PYTHON = sys.executable
BARE = "bare Agent"

NGINX_CONF = """
daemon off;
worker_processes 1;
error_log {tmp}/error.log;
pid {tmp}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""

#: A bare streaming Agent: the floor for what journey fetch adds.
AGENT_SCRIPT = r"""
import sys
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.internet.protocol import Protocol
from twisted.internet.task import react
from twisted.web.client import Agent, HTTPConnectionPool

class Save(Protocol):
    def __init__(self, f, done):
        self.f, self.done = f, done
    def dataReceived(self, data):
        self.f.write(data)
    def connectionLost(self, reason):
        self.f.close()
        self.done.callback(None)

def main(reactor, concurrency, directory, *urls):
    pool = HTTPConnectionPool(reactor)
    pool.maxPersistentPerHost = int(concurrency)
    agent = Agent(reactor, pool=pool)
    semaphore = DeferredSemaphore(int(concurrency))
    async def one(url):
        response = await agent.request(b"GET", url.encode())
        done = Deferred()
        response.deliverBody(Save(open(directory + "/" + url.rsplit("/", 1)[1], "wb"), done))
        await done
    async def everything():
        await gatherResults([semaphore.run(lambda u=u: Deferred.fromCoroutine(one(u))) for u in urls])
        await pool.closeCachedConnections()
    return Deferred.fromCoroutine(everything())

react(main, sys.argv[1:])
"""

URLRETRIEVE_SCRIPT = r"""
import sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
threads, directory, urls = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
def one(url):
    urllib.request.urlretrieve(url, directory + "/" + url.rsplit("/", 1)[1])
if threads == 1:
    for url in urls:
        one(url)
else:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, urls))
"""


def journey(directory: str, urls: Sequence[str], concurrency: int) -> list[str]:
    return [
        PYTHON,
        "-m",
        "twisted_journey",
        "fetch",
        "--quiet",
        "--parallel",
        str(concurrency),
        "--output-dir",
        directory,
        *urls,
    ]


#: ``--before CHECKOUT``: the journey fetch of another checkout, run as one more peer.
BEFORE = "journey (before)"
BEFORE_SCRIPT = (
    "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
    "runpy.run_module('twisted_journey', run_name='__main__')"
)


def before(checkout: str) -> Callable[[str, Sequence[str], int], list[str]]:
    """
    The command line of ``journey fetch`` from ``checkout`` (for before/after tables).
    """

    def build(directory: str, urls: Sequence[str], concurrency: int) -> list[str]:
        command = journey(directory, urls, concurrency)
        return [PYTHON, "-c", BEFORE_SCRIPT, checkout, *command[3:]]

    return build


def fallback(directory: str, urls: Sequence[str], concurrency: int) -> list[str]:
    return [PYTHON, "-m", "twisted_journey.fallback.fetch", "--output-dir", directory, *urls]


def curl(directory: str, urls: Sequence[str], concurrency: int) -> list[str]:
    parallel = ["-Z", "--parallel-max", str(concurrency)] if len(urls) > 1 else []
    return [
        "curl",
        "-s",
        "--fail",
        *parallel,
        "--output-dir",
        directory,
        "--remote-name-all",
        *urls,
    ]


def wget(directory: str, urls: Sequence[str], concurrency: int) -> list[str]:
    return ["wget", "-q", "-P", directory, *urls]


def urlretrieve(directory: str, urls: Sequence[str], concurrency: int) -> list[str]:
    return [PYTHON, "-c", URLRETRIEVE_SCRIPT, "1", directory, *urls]


def urllibThreads(directory: str, urls: Sequence[str], concurrency: int) -> list[str]:
    return [PYTHON, "-c", URLRETRIEVE_SCRIPT, str(concurrency), directory, *urls]


def agent(directory: str, urls: Sequence[str], concurrency: int) -> list[str]:
    return [PYTHON, "-c", AGENT_SCRIPT, str(concurrency), directory, *urls]


LARGE = {
    "journey fetch": journey,
    "fallback": fallback,
    "curl": curl,
    "wget": wget,
    "urlretrieve": urlretrieve,
    BARE: agent,
}
SMALL = {
    "journey fetch": journey,
    "fallback (serial)": fallback,
    "curl --parallel": curl,
    "wget (serial)": wget,
    "urlretrieve (serial)": urlretrieve,
    "urllib (threads)": urllibThreads,
    BARE: agent,
}
#: One small file, start to exit: the twin is the baseline.
STARTUP = {
    "journey fetch": journey,
    "fallback": fallback,
    "curl": curl,
    BARE: agent,
}
#: Each case's baseline peer (the ratio column divides by it).
BASELINES = {"large": "curl", "small": "curl --parallel", "startup": "fallback"}


def measure(
    argv: list[str], directory: str, expected: dict[str, int]
) -> dict[str, float | int | str]:
    """
    Run one client process into an empty ``directory``; check every file's size.
    """
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    os.sync()  # no writeback of an earlier run's (or the setup's) data during this one
    env = environment()
    for name in list(env):
        if name.lower().endswith("_proxy"):
            del env[name]
    start = time.perf_counter()
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=str(REPO),
    )
    assert process.stderr is not None
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    error = process.stderr.read().decode(errors="replace").strip()
    process.stderr.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        return {"note": f"exit {process.returncode}: {error[:60]}"}
    for name, size in expected.items():
        path = os.path.join(directory, name)
        if not os.path.exists(path) or os.path.getsize(path) != size:
            return {"note": f"bad output {name}"}
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
    }


def summarize(results: list[dict[str, float | int | str]]) -> dict[str, float | int | str]:
    """
    The median wall time, CPU and peak RSS of the good runs, and the wall-time range.
    """
    good = [r for r in results if "wall_s" in r]
    if not good:
        return results[0]
    summary: dict[str, float | int | str] = {}
    for key in ("wall_s", "cpu_s", "rss_mb"):
        summary[key] = statistics.median(float(r[key]) for r in good)
    walls = sorted(float(r["wall_s"]) for r in good)
    summary["range_s"] = f"{walls[0]:.2f}-{walls[-1]:.2f}"
    if len(good) < len(results):
        summary["note"] = f"{len(results) - len(good)} bad run(s)"
    return summary


def compileAll(checkouts: Sequence[str]) -> None:
    """
    Byte-compile each checkout's ``twisted_journey``, as an installed package is.
    """
    for checkout in checkouts:
        subprocess.run(
            [PYTHON, "-m", "compileall", "-q", os.path.join(checkout, "twisted_journey")],
            check=True,
        )


def startServer(kind: str, root: str, tmp: str) -> tuple[Server, str]:
    """
    nginx when asked (or auto and it starts), else twisted.web.
    """
    port = freePort()
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if kind in ("auto", "nginx") and nginx:
        conf = os.path.join(tmp, "nginx.conf")
        Path(conf).write_text(NGINX_CONF.format(tmp=tmp, port=port, root=root))
        server = Server([nginx, "-c", conf, "-p", tmp], port)
        try:
            return server.__enter__(), "nginx"
        except RuntimeError:
            if kind == "nginx":
                raise
    argv = [
        PYTHON,
        "-m",
        "twisted",
        "web",
        "--listen",
        f"tcp:{port}:interface=127.0.0.1",
        "--path",
        root,
    ]
    return Server(argv, port).__enter__(), "twisted.web"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256, help="the large file's size [256]")
    parser.add_argument("--count", type=int, default=1000, help="how many small files [1000]")
    parser.add_argument("--small-kib", type=int, default=10, help="each small file's size [10]")
    parser.add_argument("--concurrency", type=int, default=16, help="parallel transfers [16]")
    parser.add_argument(
        "--repeat", type=int, default=3, help="alternating rounds per case; the median is shown [3]"
    )
    parser.add_argument("--server", choices=["auto", "nginx", "twisted"], default="auto")
    parser.add_argument("--only", nargs="*", help="run only these peers")
    parser.add_argument(
        "--cases",
        nargs="*",
        choices=list(BASELINES),
        default=list(BASELINES),
        help="run only these cases [all]",
    )
    parser.add_argument("--json", default=str(resultsPath("fetch")), help="write results here")
    parser.add_argument(
        "--before",
        metavar="CHECKOUT",
        help=f"also run journey fetch from this checkout, as {BEFORE!r}",
    )
    args = parser.parse_args()
    tables: dict[str, dict[str, object]] = {}

    tmp = tempfile.mkdtemp(prefix="journey-bench-fetch-")
    os.chmod(tmp, 0o755)
    root = os.path.join(tmp, "www")
    os.makedirs(os.path.join(root, "small"))
    large = args.size_mib << 20
    block = os.urandom(1 << 20)
    with open(os.path.join(root, "large.bin"), "wb") as f:
        for _ in range(args.size_mib):
            f.write(block)
    small = os.urandom(args.small_kib << 10)
    names = [f"f{i:05d}.bin" for i in range(args.count)]
    for name in names:
        Path(root, "small", name).write_bytes(small)
    one = os.urandom(args.small_kib << 10)
    Path(root, "one.bin").write_bytes(one)
    compileAll([str(REPO), *([os.path.abspath(args.before)] if args.before else [])])
    server, serverName = startServer(args.server, root, tmp)
    out = os.path.join(tmp, "out")
    try:
        base = f"http://127.0.0.1:{server.port}"
        for key, title, peers, urls, expected in [
            (
                "large",
                f"one {args.size_mib} MiB file",
                LARGE,
                [f"{base}/large.bin"],
                {"large.bin": large},
            ),
            (
                "small",
                f"{args.count} x {args.small_kib} KiB files, concurrency {args.concurrency}",
                SMALL,
                [f"{base}/small/{n}" for n in names],
                {n: len(small) for n in names},
            ),
            (
                "startup",
                f"one {args.small_kib} KiB file, start to exit,",
                STARTUP,
                [f"{base}/one.bin"],
                {"one.bin": len(one)},
            ),
        ]:
            if key not in args.cases:
                continue
            everyone = dict(peers)
            if args.before:
                everyone[BEFORE] = before(os.path.abspath(args.before))
            chosen = {
                name: build
                for name, build in everyone.items()
                if not args.only or name in args.only or name == BEFORE
            }
            runs: dict[str, list[dict[str, float | int | str]]] = {name: [] for name in chosen}
            for _ in range(args.repeat):
                for name, build in chosen.items():
                    runs[name].append(measure(build(out, urls, args.concurrency), out, expected))
            rows = [Row(name, summarize(results)) for name, results in runs.items()]
            baseline = BASELINES[key] if BASELINES[key] in chosen else BARE
            print(
                f"\n{title} from {serverName} on loopback "
                f"(median of {args.repeat} alternating rounds, range min-max)\n"
            )
            printTable(
                rows,
                [
                    ("wall_s", "{:.2f}"),
                    ("range_s", "{}"),
                    ("cpu_s", "{:.2f}"),
                    ("rss_mb", "{:.0f}"),
                    ("note", "{}"),
                ],
                "wall_s",
                baseline,
            )
            tables[key] = {
                "title": f"{title} from {serverName}",
                "baseline": baseline,
                "rows": rows,
            }
    finally:
        server.__exit__()
        shutil.rmtree(tmp, ignore_errors=True)
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    writeResults(args.json, "fetch", settings, tables)


if __name__ == "__main__":
    main()

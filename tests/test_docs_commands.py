"""
Every command in the README and the documentation runs as written, pasted into bash.

What runs: every literal block (``::``) of ``README.rst`` and every ``.. code-block:: bash``
of ``docs/``, and the ``.. code-block:: python`` blocks of both (with ``python``).  A block is
left out only when a reST comment ``.. not-run: REASON`` stands between it and the block
before it; :data:`NOT_RUN_ALLOWED` caps how many there may be, so the list stays small.

How: the blocks of one page run in order, each with ``bash -e -o pipefail``, in one fresh
temporary directory, inside private user, network and process namespaces
(``unshare -rnpf``): only a loopback interface exists, the pages' fixed ports (1234, 1235,
8080...) cannot collide with anything else on the machine, and every server a page starts
(daemon or ``&``) dies with the namespace when the page is done.  ``journey``, ``twistd``,
``twist`` and ``python`` are small scripts on ``PATH`` that run this checkout with the
interpreter running the tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import REPO

#: seconds one block may take
BLOCK_PATIENCE = 60

#: the most ``.. not-run:`` markers the pages may carry (README's two install commands,
#: the systemd unit pair and logrotate's configuration)
NOT_RUN_ALLOWED = 8

_DIRECTIVE = re.compile(r"^(\s*)\.\. code-block:: *(\w+)\s*$")
_NOT_RUN = re.compile(r"^\s*\.\. not-run:\s*(.*)$")


def pages() -> list[Path]:
    """
    The README and every documentation source page.
    """
    docs = sorted(p for p in (REPO / "docs").rglob("*.rst") if "_build" not in p.parts)
    return [REPO / "README.rst", *docs]


def _indentedBody(lines: list[str], start: int, indent: int) -> tuple[str, int]:
    """
    The block indented deeper than ``indent`` from ``lines[start]`` on (blank lines
    included), dedented; and the index after it.
    """
    end = start
    body: list[str] = []
    while end < len(lines):
        line = lines[end]
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        body.append(line)
        end += 1
    while body and not body[-1].strip():
        body.pop()
    while body and not body[0].strip():
        body.pop(0)
    depth = min((len(x) - len(x.lstrip()) for x in body if x.strip()), default=0)
    return "\n".join(x[depth:] for x in body) + "\n", end


def blocks(path: Path) -> list[tuple[int, str, str, str | None]]:
    """
    The code blocks of a page: ``(line number, language, text, not-run reason or None)``.

    In the README, a ``::`` literal block is ``bash``; in ``docs/``, ``::`` blocks are
    output or other text and only ``code-block`` directives count.
    """
    lines = path.read_text().splitlines()
    literalIsBash = path.name == "README.rst"
    found: list[tuple[int, str, str, str | None]] = []
    reason: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _NOT_RUN.match(line)
        directive = _DIRECTIVE.match(line)
        if marker:
            reason = marker.group(1).strip() or "(no reason given)"
            i += 1
            while i < len(lines) and lines[i].startswith("   ") and lines[i].strip():
                reason += " " + lines[i].strip()
                i += 1
            continue
        if directive:
            indent = len(directive.group(1))
            j = i + 1
            while j < len(lines) and re.match(r"^\s+:\w[\w-]*:", lines[j]):
                j += 1
            text, end = _indentedBody(lines, j, indent)
            found.append((i + 1, directive.group(2), text, reason))
            reason, i = None, end
            continue
        if literalIsBash and line.rstrip().endswith("::") and not line.lstrip().startswith(".."):
            indent = len(line) - len(line.lstrip())
            text, end = _indentedBody(lines, i + 1, indent)
            found.append((i + 1, "bash", text, reason))
            reason, i = None, end
            continue
        i += 1
    return [b for b in found if b[1] in ("bash", "python")]


#: run as PID 1 of the new namespaces: bring up loopback, run the blocks, report
_RUNNER = r"""
import fcntl, json, socket, struct, subprocess, sys

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 1
probe = socket.socket()
flags = struct.unpack("16sH14s", fcntl.ioctl(probe, SIOCGIFFLAGS, struct.pack("16sH14s", b"lo", 0, b"")))[1]
fcntl.ioctl(probe, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))
plan = json.load(open(sys.argv[1]))
results = []
for index, (language, text, patience) in enumerate(plan):
    script = f"block{index}.{'py' if language == 'python' else 'sh'}"
    open(script, "w").write(text)
    argv = ["python", script] if language == "python" else ["bash", "-e", "-o", "pipefail", script]
    with open(f"block{index}.out", "wb") as out:
        try:
            code = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=patience).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    results.append([code, open(f"block{index}.out", "rb").read().decode("utf-8", "replace")])
    if code != 0:
        break
json.dump(results, open(sys.argv[2], "w"))
"""


def _shims(directory: Path) -> None:
    """
    ``journey``, ``twistd``, ``twist``, ``python`` and ``python3`` running this checkout
    with this interpreter.  The first three are Python scripts like the ones pip installs,
    so ``sys.path`` starts with their directory, not the current one, as it would for a user.
    """
    directory.mkdir()
    python = sys.executable
    scripts = {
        "journey": "from twisted_journey.cli import main",
        "twistd": "from twisted.scripts.twistd import run as main",
        "twist": "from twisted.application.twist._twist import Twist\nmain = Twist.main",
    }
    for name, body in scripts.items():
        script = directory / name
        script.write_text(f"#!{python}\nimport sys\n{body}\nsys.exit(main())\n")
        script.chmod(0o755)
    for name in ["python", "python3"]:
        script = directory / name
        script.write_text(f'#!/bin/sh\nexec {python} "$@"\n')
        script.chmod(0o755)


def _isolation() -> list[str]:
    """
    The command prefix that runs in private namespaces; skip the test where none can be made.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        raise SkipTest("unshare(1) is needed to run the pages' commands in a private network")
    prefix = [unshare, "--user", "--map-root-user", "--net", "--pid", "--fork"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        raise SkipTest(f"cannot create namespaces here: {probe.stderr.decode().strip()}")
    return prefix


def runPage(path: Path) -> list[str]:
    """
    Run a page's runnable blocks in order; return a description of each failure.
    """
    plan = [(lang, text) for (_, lang, text, reason) in blocks(path) if reason is None]
    numbers = [n for (n, _, _, reason) in blocks(path) if reason is None]
    if not plan:
        return []
    prefix = _isolation()
    scratch = Path(tempfile.mkdtemp(prefix="journey-docs-"))
    try:
        _shims(scratch / "bin")
        work = scratch / "work"
        work.mkdir()
        (scratch / "plan.json").write_text(
            json.dumps([(lang, text, BLOCK_PATIENCE) for lang, text in plan])
        )
        env = {k: v for k, v in os.environ.items() if k not in ("JOURNEY_ENGINE", "PYTHONPATH")}
        env["PATH"] = f"{scratch / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = str(REPO)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        command = [sys.executable, "-c", _RUNNER, str(scratch / "plan.json")]
        subprocess.run(
            [*prefix, *command, str(scratch / "results.json")],
            cwd=work,
            env=env,
            timeout=BLOCK_PATIENCE * len(plan) + 30,
            capture_output=True,
        )
        results = json.loads((scratch / "results.json").read_text())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    failures = []
    ran = zip(numbers, [t for _, t in plan], results, strict=False)
    for number, text, (code, output) in ran:
        if code != 0:
            failures.append(
                f"{path.relative_to(REPO)}:{number}: exit {code}\n{text}--- output:\n{output}"
            )
    if not failures and len(results) != len(plan):
        failures.append(f"{path.relative_to(REPO)}: only {len(results)} of {len(plan)} ran")
    return failures


class BlockParsingTests(SynchronousTestCase):
    """
    The extractor finds the blocks a reader would paste, and the markers that excuse one.
    """

    def test_markers(self) -> None:
        """
        ``::`` blocks count in the README; ``code-block:: bash`` and ``python`` anywhere;
        a ``.. not-run:`` marker excuses exactly the next block.
        """
        page = Path(self.mktemp())
        page.mkdir()
        readme = page / "README.rst"
        readme.write_text(
            "Intro::\n\n    echo one\n\n.. not-run: needs the network\n   really.\n\n"
            "Then::\n\n    curl example\n\n.. code-block:: python\n\n    print(2)\n\n"
            ".. code-block:: text\n\n    output\n"
        )
        self.assertEqual(
            blocks(readme),
            [
                (1, "bash", "echo one\n", None),
                (8, "bash", "curl example\n", "needs the network really."),
                (12, "python", "print(2)\n", None),
            ],
        )

    def test_fewExceptions(self) -> None:
        """
        Only a handful of blocks are excused from running, each with a reason.
        """
        excused = [
            (path.name, number, reason)
            for path in pages()
            for (number, _, _, reason) in blocks(path)
            if reason is not None
        ]
        self.assertLessEqual(len(excused), NOT_RUN_ALLOWED, excused)
        for name, number, reason in excused:
            self.assertGreater(len(reason.split()), 3, f"{name}:{number}")


class PageCommandTests(SynchronousTestCase):
    """
    Each page's commands run as written; a test per page, added below.
    """


def _pageTest(path: Path):  # type: ignore[no-untyped-def]
    def test(self: SynchronousTestCase) -> None:
        failures = runPage(path)
        self.assertEqual(failures, [], "\n\n".join(failures))

    test.__doc__ = f"""
        Every runnable block of ``{path.relative_to(REPO)}`` exits 0, in order.
        """
    return test


for _path in pages():
    if any(reason is None for (_, _, _, reason) in blocks(_path)):
        _name = "_".join(_path.relative_to(REPO).with_suffix("").parts).replace("-", "_")
        setattr(PageCommandTests, f"test_{_name}", _pageTest(_path))

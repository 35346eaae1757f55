"""
Tests for ``journey completion bash|zsh`` (:mod:`twisted_journey.completion`): the scripts
load in a real bash and zsh, and bash's completion function, called as bash calls it
(``COMP_WORDS``, ``COMP_CWORD``), offers the sub-commands, every option of each, and the
values an option or argument takes.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support import PATIENCE, environment, journeyArgv, run
from twisted_journey.cli import _parser
from twisted_journey.completion import commands


def script(shell: str) -> str:
    """
    What ``journey completion SHELL`` prints.
    """
    result = run(journeyArgv("completion", shell))
    if result.returncode != 0:
        raise AssertionError(result.stderr.decode())
    return result.stdout.decode()


class BashCompletionTests(SynchronousTestCase):
    """
    The bash script, sourced into a real ``bash``.
    """

    def setUp(self) -> None:
        if shutil.which("bash") is None:
            raise SkipTest("bash is not installed")
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.directory, "certs"))
        open(os.path.join(self.directory, "ca.pem"), "w").close()
        self.script = os.path.join(self.directory, "journey.bash")
        with open(self.script, "w") as f:
            f.write(script("bash"))

    def bash(self, command: str) -> str:
        """
        Run ``command`` in a non-interactive bash that has sourced the script.
        """
        result = subprocess.run(
            ["bash", "-c", f"source {shlex.quote(self.script)}\n{command}"],
            capture_output=True,
            text=True,
            timeout=PATIENCE,
            cwd=self.directory,
            env=environment(),
        )
        self.assertEqual(result.stderr, "")
        return result.stdout

    def complete(self, *words: str) -> list[str]:
        """
        What the completion function offers for the command line ``words`` (the last one
        being completed), as bash would call it.
        """
        array = " ".join(shlex.quote(word) for word in words)
        return self.bash(
            f"COMP_WORDS=({array}); COMP_CWORD={len(words) - 1}; _journey; "
            'printf "%s\\n" "${COMPREPLY[@]}"'
        ).split()

    def test_registered(self) -> None:
        """
        Sourcing the script registers the completion function for ``journey``.
        """
        self.assertEqual(
            self.bash("complete -p journey").strip(),
            "complete -o bashdefault -o default -F _journey journey",
        )

    def test_subcommands(self) -> None:
        """
        The first word completes to the sub-commands and the top-level options.
        """
        self.assertEqual(
            self.complete("journey", ""), ["greet", "send", "fetch", "mirror", "completion"]
        )
        self.assertEqual(self.complete("journey", "gr"), ["greet"])
        self.assertEqual(self.complete("journey", "--v"), ["--version"])

    def test_everyOption(self) -> None:
        """
        After a sub-command, ``--`` offers every long option its parser has.
        """
        for command in list(commands(_parser()))[1:]:
            expected = {s for o in command.options for s in o.strings if s.startswith("--")}
            self.assertEqual(
                set(self.complete("journey", command.name, "--")), expected, command.name
            )
        self.assertEqual(self.complete("journey", "greet", "127.0.0.1", "--ti"), ["--timeout"])

    def test_values(self) -> None:
        """
        Choices complete to their words, FILE values to file names, DIR values to
        directories, and other values to nothing.
        """
        self.assertEqual(self.complete("journey", "completion", ""), ["bash", "zsh"])
        self.assertEqual(self.complete("journey", "completion", "z"), ["zsh"])
        self.assertEqual(self.complete("journey", "greet", "--cacert", "c"), ["ca.pem", "certs"])
        self.assertEqual(self.complete("journey", "fetch", "--output-dir", "c"), ["certs"])
        self.assertEqual(self.complete("journey", "send", "h", "--timeout", ""), [])


class ZshCompletionTests(SynchronousTestCase):
    """
    The zsh script, loaded by a real ``zsh`` with its completion system.
    """

    def test_loads(self) -> None:
        """
        The script parses (``zsh -n``), and after ``compinit`` sourcing it registers
        ``_journey`` for ``journey``.
        """
        if shutil.which("zsh") is None:
            raise SkipTest("zsh is not installed (apt-get install zsh)")
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write(script("zsh"))
        syntax = subprocess.run(["zsh", "-n", path], capture_output=True, timeout=PATIENCE)
        self.assertEqual((syntax.returncode, syntax.stderr), (0, b""))
        loaded = subprocess.run(
            [
                "zsh",
                "-f",
                "-c",
                "autoload -Uz compinit && compinit -u -D && "
                f"source {shlex.quote(path)} && print -r -- $_comps[journey] && "
                "whence -w _journey",
            ],
            capture_output=True,
            text=True,
            timeout=PATIENCE,
            cwd=os.path.dirname(path),
        )
        self.assertEqual(
            (loaded.stdout, loaded.stderr), ("_journey\n_journey: function\n", ""), loaded
        )


class UsageTests(SynchronousTestCase):
    """
    ``journey completion`` with a shell it does not know.
    """

    def test_unknownShell(self) -> None:
        """
        An unknown shell is a usage error naming the choices.
        """
        result = run(journeyArgv("completion", "fish"))
        self.assertEqual(result.returncode, 2)
        self.assertIn(b"invalid choice: 'fish' (choose from", result.stderr)

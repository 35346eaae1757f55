# -*- test-case-name: tests.test_fetch_mirror -*-
"""
``twistd -n journey-fetch``: the mirror service as a twistd plugin.

    twistd -n journey-fetch --urls urls.txt --output-dir mirror --interval 600
    twistd -n journey-fetch --urls urls.txt --output-dir mirror --once

The directory is created when missing.  For cron prefer ``journey mirror --once``
(:func:`twisted_journey.fetch.mirror.run`), the same service as a command whose exit
status says whether every URL succeeded (twistd always exits 0).
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from twisted_journey.fetch.errors import FetchError
from twisted_journey.fetch.mirror import MirrorService, fetchSettings
from twisted_journey.fetch.options import MirrorCommand, usageOptions
from twisted_journey.fetch.settings import FetchSettings
from twisted_journey.settings import SettingError
from twisted_journey.tap.common import holdEarlyStops

__all__ = ["Options", "makeService"]

_FLAGS, _PARAMETERS = usageOptions(MirrorCommand)


class Options(usage.Options):
    """
    Options for ``twistd journey-fetch``: those of ``journey mirror``
    (:class:`~twisted_journey.fetch.options.MirrorCommand`), checked alike.

    :ivar command: the checked options, after ``postOptions``.
    """

    synopsis = "--urls FILE [--output-dir DIR] [--interval SECONDS] [--parallel N] [--once]"
    longdesc = (
        "Keep local copies of the URLs listed in FILE (one per line, optionally followed by "
        "a local name; # starts a comment) fresh in DIR with conditional GETs. A file is "
        "replaced atomically only when the server sends a new version; a failing URL is "
        "retried with a growing backoff. FILE is re-read when it changes."
    )

    optFlags = _FLAGS
    optParameters = _PARAMETERS

    #: The fetcher's settings (``--parallel``, ``--user``, ``--digest``/``--anyauth``/
    #: ``--basic``, ``-b``, ``-c``), after ``postOptions``.
    fetchSettings: FetchSettings | None = None

    def postOptions(self) -> None:
        """
        Check the URL file and directory exist, the numbers make sense and the ``-b``
        cookie file can be read.
        """
        try:
            self.command = MirrorCommand.fromValues(self)
        except SettingError as e:
            raise usage.UsageError(str(e)) from None
        self["interval"] = self.command.interval
        self["parallel"] = self.command.parallel
        try:
            self.fetchSettings = fetchSettings(self.command)
        except FetchError as e:
            raise usage.UsageError(f"-b: {e}") from None


def makeService(options: Options, reactor: Any = None) -> IService:
    """
    The :class:`twisted_journey.fetch.mirror.MirrorService` for ``options``.
    """
    command = options.command
    service = MirrorService(
        command.urls,
        command.outputDir,
        interval=command.interval,
        parallel=command.parallel,
        once=command.once,
        reactor=reactor,
        settings=options.fetchSettings,
    )
    return holdEarlyStops(service, reactor)

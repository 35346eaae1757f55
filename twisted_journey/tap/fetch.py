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

import os
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from twisted_journey import settings
from twisted_journey.fetch.client import FetchSettings
from twisted_journey.fetch.errors import FetchError
from twisted_journey.fetch.mirror import MirrorService, settingsFromOptions

__all__ = ["Options", "makeService"]


class Options(usage.Options):
    """
    Options for ``twistd journey-fetch``.
    """

    synopsis = "--urls FILE [--output-dir DIR] [--interval SECONDS] [--parallel N] [--once]"
    longdesc = (
        "Keep local copies of the URLs listed in FILE (one per line, optionally followed by "
        "a local name; # starts a comment) fresh in DIR with conditional GETs. A file is "
        "replaced atomically only when the server sends a new version; a failing URL is "
        "retried with a growing backoff. FILE is re-read when it changes."
    )

    optFlags = [
        ["once", None, "Try every URL once, then exit (for cron)."],
        ["digest", None, "Send --user only as HTTP Digest, answering the server's challenge."],
        ["anyauth", None, "Send --user as what the server asks for: Digest, else Basic."],
    ]
    optParameters: list[list[Any]] = [
        ["urls", "u", None, "File of URLs to mirror (required)."],
        ["output-dir", "d", ".", "Directory for the copies (created when missing)."],
        ["interval", "i", "3600", "Seconds between refreshes of each URL."],
        ["parallel", "p", "4", "Transfers at once."],
        ["user", None, None, "USER:PASSWORD for each URL's own host (Basic at once)."],
        ["cookie", "b", None, "Cookies 'NAME=VALUE; ...' for each URL's host, or a Netscape "
         "cookie file ('': none yet); cookies servers set are kept."],
        ["cookie-jar", "c", None, "Write every cookie to this file after each pass."],
    ]  # fmt: skip

    #: The fetcher's settings from --user, --digest/--anyauth, -b and -c.
    fetchSettings: FetchSettings | None = None

    def postOptions(self) -> None:
        """
        Check the URL file and directory exist and the numbers make sense.
        """
        if self["urls"] is None:
            raise usage.UsageError("--urls FILE is required.")
        if not os.path.isfile(self["urls"]):
            raise usage.UsageError(f"--urls {self['urls']!r} is not a readable file.")
        if os.path.exists(self["output-dir"]) and not os.path.isdir(self["output-dir"]):
            raise usage.UsageError(f"--output-dir {self['output-dir']!r} is not a directory.")
        try:
            self["interval"] = settings.seconds("--interval", self["interval"])
            self["parallel"] = settings.limit("--parallel", self["parallel"])
        except settings.SettingError as e:
            raise usage.UsageError(str(e)) from None
        self._checkFetchOptions()

    def _checkFetchOptions(self) -> None:
        """
        Turn ``--user``, ``--digest``/``--anyauth``, ``-b`` and ``-c`` into
        :attr:`fetchSettings`.
        """
        if self["digest"] and self["anyauth"]:
            raise usage.UsageError("--digest and --anyauth exclude each other.")
        credentials = None
        if self["user"] is not None:
            user, colon, password = self["user"].partition(":")
            if not colon:
                raise usage.UsageError("--user takes USER:PASSWORD (journey does not prompt).")
            credentials = (user, password)
        mode = "digest" if self["digest"] else "any" if self["anyauth"] else "basic"
        given = {
            "credentials": credentials,
            "authMode": mode,
            "cookie": self["cookie"],
            "cookieJar": self["cookie-jar"],
        }
        try:
            self.fetchSettings = settingsFromOptions(given)
        except (FetchError, ValueError) as e:
            raise usage.UsageError(f"-b: {e}") from None


def makeService(options: Options, reactor: Any = None) -> IService:
    """
    The :class:`twisted_journey.fetch.mirror.MirrorService` for ``options``.
    """
    return MirrorService(
        options["urls"],
        options["output-dir"],
        interval=options["interval"],
        parallel=options["parallel"],
        once=bool(options["once"]),
        reactor=reactor,
        settings=options.fetchSettings,
    )

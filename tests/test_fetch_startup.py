"""
What ``journey fetch`` loads: pyOpenSSL (and ``cryptography``, ``service_identity``,
``twisted.internet.ssl``) only once a connection needs TLS, so a plain ``http://`` fetch
starts without them (:mod:`twisted_journey.fetch.lazytls`); https, also after a
redirect from http, still works and is still verified.  A host given as an address
loads no IDNA tables, and what the start-up imports is frozen for the garbage collector.

Each test runs the real command in a child process against a loopback server of the
test's reactor; the child reports the TLS modules it had loaded when it exited.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests import fetchservers as servers
from tests.support import freePort
from tests.test_fetch_cli import ProcessMixin
from twisted_journey.fetch import errors as fetch_errors

#: The modules a fetch without TLS must not load.
TLS_MODULES = ("OpenSSL", "cryptography", "service_identity", "twisted.internet.ssl")

#: Run ``journey ARGV``; print the TLS modules loaded, as JSON, on stdout at exit.
CHILD = """
import json, sys
from twisted_journey.cli import main
try:
    status = main(sys.argv[2:])
finally:
    names = json.loads(sys.argv[1])
    print(json.dumps(sorted(n for n in names if n in sys.modules)))
sys.exit(status)
"""

#: Run ``journey ARGV``; print whether the garbage collector runs, and how many objects it
#: holds frozen, as JSON, on stdout at exit.
GC_CHILD = """
import gc, json, sys
from twisted_journey.cli import main
try:
    status = main(sys.argv[1:])
finally:
    print(json.dumps([gc.isenabled(), gc.get_freeze_count()]))
sys.exit(status)
"""


class StartupTests(ProcessMixin, unittest.TestCase):
    """
    ``journey fetch`` imports TLS support only when a URL needs it.
    """

    def argv(self, *arguments: str, watched: tuple[str, ...] = TLS_MODULES) -> list[str]:
        return [sys.executable, "-c", CHILD, json.dumps(watched), "fetch", *arguments]

    @defer.inlineCallbacks
    def fetchReporting(self, *arguments: str, watched: tuple[str, ...] = TLS_MODULES) -> Any:
        """
        Fire with ``(status, stderr lines, modules of watched the child had loaded)``.
        """
        argv = self.argv(*arguments, watched=watched)
        out, err, status = yield servers.runChild(argv, self.env(), self.out)
        return status, err.decode("utf-8", "replace").splitlines(), json.loads(out)

    @defer.inlineCallbacks
    def test_startUpFrozen(self) -> Any:
        """
        What the start-up imports is moved to the garbage collector's permanent
        generation (collections during the run do not traverse it again), and the
        collector runs during the transfers.
        """
        argv = [sys.executable, "-c", GC_CHILD, "fetch", self.web + "/blob"]
        out, err, status = yield servers.runChild(argv, self.env(), self.out)
        self.assertEqual((status, err), (0, b""))
        enabled, frozen = json.loads(out)
        self.assertTrue(enabled)
        self.assertGreater(frozen, 10000)

    @defer.inlineCallbacks
    def test_otherCommandsNotConfigured(self) -> Any:
        """
        ``journey fetch`` builds only its own options: the modules other commands'
        options need (``journey send``'s syslog framing) are not loaded.
        """
        result = yield self.fetchReporting(
            self.web + "/blob", watched=("twisted_journey.syslogframe",)
        )
        self.assertEqual(result, (0, [], []))

    @defer.inlineCallbacks
    def test_addressNeedsNoNames(self) -> Any:
        """
        A URL whose host is an IP address is connected to as it is: the ``idna``
        package (which Twisted's ``HostnameEndpoint`` loads for any host) is not loaded.
        """
        result = yield self.fetchReporting(self.web + "/blob", watched=("idna",))
        self.assertEqual(result, (0, [], []))
        with open(os.path.join(self.out, "blob"), "rb") as f:
            self.assertEqual(f.read(), servers.BODY)

    @defer.inlineCallbacks
    def test_httpLoadsNoTLS(self) -> Any:
        """
        An ``http://`` fetch succeeds without loading pyOpenSSL, ``cryptography``,
        ``service_identity`` or ``twisted.internet.ssl``; so does one that fails (the
        failure is classified without importing TLS to compare against).
        """
        result = yield self.fetchReporting(self.web + "/blob")
        self.assertEqual(result, (0, [], []))
        with open(os.path.join(self.out, "blob"), "rb") as f:
            self.assertEqual(f.read(), servers.BODY)
        status, lines, loaded = yield self.fetchReporting(f"http://127.0.0.1:{freePort()}/x")
        self.assertEqual(status, fetch_errors.EXIT_NETWORK)
        self.assertEqual(len(lines), 1, lines)
        self.assertEqual(loaded, [])

    @defer.inlineCallbacks
    def test_httpsLoadsTLS(self) -> Any:
        """
        An ``https://`` fetch loads TLS on its first connection and verifies: trusted
        with ``--cacert``, refused without.
        """
        cacert, options = servers.certificate(self.mktemp())
        port = servers.listen(self, servers.webSite(), tls=options)
        url = f"https://localhost:{port}/blob"
        status, lines, loaded = yield self.fetchReporting("--cacert", cacert, url)
        self.assertEqual((status, lines), (0, []))
        self.assertIn("OpenSSL", loaded)
        with open(os.path.join(self.out, "blob"), "rb") as f:
            self.assertEqual(f.read(), servers.BODY)
        status, lines, _ = yield self.fetchReporting("-o", "refused", url)
        self.assertEqual(status, fetch_errors.EXIT_TLS)
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("TLS with localhost port", lines[0])
        self.assertEqual(self.files(), ["blob"])

    @defer.inlineCallbacks
    def test_redirectToHTTPS(self) -> Any:
        """
        A run that starts with ``http://`` (TLS not loaded) and is redirected to
        ``https://`` loads TLS then and fetches the file.
        """
        cacert, options = servers.certificate(self.mktemp())
        tlsPort = servers.listen(self, servers.webSite(), tls=options)
        target = f"https://localhost:{tlsPort}/blob".encode()
        port = servers.listen(self, servers.webSite(servers.RedirectTo(target)))
        result = yield self.fetchReporting(
            "--cacert", cacert, "-o", "got", f"http://127.0.0.1:{port}/start"
        )
        status, lines, loaded = result
        self.assertEqual((status, lines), (0, []))
        self.assertIn("OpenSSL", loaded)
        with open(os.path.join(self.out, "got"), "rb") as f:
            self.assertEqual(f.read(), servers.BODY)

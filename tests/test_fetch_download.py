"""
Unit tests of :mod:`twisted_journey.fetch.errors`, :mod:`~twisted_journey.fetch.semantics` and :mod:`~twisted_journey.fetch.naming`, :mod:`~twisted_journey.fetch.sinks`, :mod:`~twisted_journey.fetch.validators`, the stdlib helpers both fetchers share:
names, the ``.part`` file, length checks, exit codes, proxies, validators, URL lists.
"""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from twisted_journey.fetch import errors as fetch_errors
from twisted_journey.fetch import mirror, naming, semantics, sinks, validators


class SafeBasenameTests(unittest.SynchronousTestCase):
    """
    :func:`naming.safe_basename` on hostile names.
    """

    def test_hostile(self) -> None:
        """
        Traversal, absolute paths, backslashes, dots and control characters are reduced
        to a plain name or refused.
        """
        cases = {
            "../../x": "x",
            "/etc/passwd": "passwd",
            "a\\b": "b",
            "..": None,
            ".": None,
            "": None,
            "   ": None,
            ".bashrc": "bashrc",
            "bad\x00\x01\x1f\x7fname": "badname",
            "name. . ": "name",
            "ok.txt": "ok.txt",
            "na\u00efve file.txt": "na\u00efve file.txt",
            "x\u202egnp.exe": "xgnp.exe",
        }
        for name, expected in cases.items():
            self.assertEqual(naming.safe_basename(name), expected, repr(name))

    def test_lengthCapped(self) -> None:
        """
        A very long name is cut to 200 UTF-8 bytes, keeping a short extension.
        """
        name = naming.safe_basename("A" * 300 + ".txt")
        assert name is not None
        self.assertEqual(name, "A" * 196 + ".txt")
        multibyte = naming.safe_basename("\u00e9" * 300)
        assert multibyte is not None
        self.assertLessEqual(len(multibyte.encode("utf-8")), 200)

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=400))
    def test_alwaysSafe(self, name: str) -> None:
        """
        Whatever the input, the result is ``None`` or a name with no separator, no
        control character, no leading dot, and at most 200 bytes.
        """
        result = naming.safe_basename(name)
        if result is None:
            return
        self.assertNotIn("/", result)
        self.assertNotIn("\\", result)
        self.assertFalse(result.startswith("."))
        self.assertNotIn(result, ("", ".", ".."))
        self.assertFalse(any(ord(c) < 32 or ord(c) == 127 for c in result))
        self.assertLessEqual(len(result.encode("utf-8", "surrogatepass")), 200)


class NamingTests(unittest.SynchronousTestCase):
    """
    Names from URLs and from ``Content-Disposition``, and where the file goes.
    """

    def test_nameFromURL(self) -> None:
        """
        The last path segment, percent-decoded; ``index.html`` for an empty one.
        """
        self.assertEqual(naming.name_from_url("http://h/a/b.tar.gz?x=1#f"), "b.tar.gz")
        self.assertEqual(naming.name_from_url("http://h/a%20b.txt"), "a b.txt")
        self.assertEqual(naming.name_from_url("http://h"), "index.html")
        self.assertEqual(naming.name_from_url("http://h/dir/"), "index.html")
        self.assertEqual(naming.name_from_url("http://h/%2e%2e"), "index.html")
        self.assertEqual(naming.name_from_url("http://h/x%2f..%2fetc%2fpasswd"), "passwd")

    def test_disposition(self) -> None:
        """
        ``filename*`` wins over ``filename``; hostile names are reduced.
        """
        both = "attachment; filename=\"plain.txt\"; filename*=UTF-8''na%C3%AFve.txt"
        self.assertEqual(naming.disposition_name(both), "na\u00efve.txt")
        self.assertEqual(
            naming.disposition_name('attachment; filename="../../etc/passwd"'), "passwd"
        )
        self.assertEqual(naming.disposition_name("attachment; filename=..\\..\\x.bat"), "x.bat")
        self.assertIsNone(naming.disposition_name('attachment; filename=".."'))
        self.assertIsNone(naming.disposition_name("attachment"))
        self.assertIsNone(naming.disposition_name(None))

    def test_targetPath(self) -> None:
        """
        ``-o`` is taken as given (inside ``--output-dir``); otherwise the URL's name or
        the server's, joined to the directory.
        """
        self.assertEqual(naming.target_path("http://h/a.txt"), os.path.join(".", "a.txt"))
        self.assertEqual(naming.target_path("http://h/a.txt", "b", "d"), os.path.join("d", "b"))
        self.assertEqual(
            naming.target_path("http://h/a.txt", None, "d", "s.csv"), os.path.join("d", "s.csv")
        )

    def test_symlinksNotFollowed(self) -> None:
        """
        A symlink planted as ``NAME.part`` is refused (never written through), and a
        symlink at ``NAME`` is replaced by the file, its target left alone.
        """
        base = self.mktemp()
        os.makedirs(base)
        target = os.path.join(base, "target")
        with open(target, "wb") as f:
            f.write(b"precious")
        os.symlink(target, os.path.join(base, "a.part"))
        with self.assertRaises(fetch_errors.FileError):
            sinks.PartFile(os.path.join(base, "a"))
        os.symlink(target, os.path.join(base, "b"))
        part = sinks.PartFile(naming.target_path("http://h/b", None, base))
        part.write(b"new")
        part.commit()
        self.assertFalse(os.path.islink(os.path.join(base, "b")))
        with open(target, "rb") as f:
            self.assertEqual(f.read(), b"precious")


class PartFileTests(unittest.SynchronousTestCase):
    """
    The ``.part`` file: written, committed by rename, or discarded.
    """

    def setUp(self) -> None:
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.path = os.path.join(self.directory, "f")

    def test_commit(self) -> None:
        """
        Bytes go to ``f.part``; :meth:`commit` renames it to ``f``.
        """
        part = sinks.PartFile(self.path)
        part.write(b"abc")
        self.assertEqual(sorted(os.listdir(self.directory)), ["f.part"])
        part.commit()
        self.assertEqual(sorted(os.listdir(self.directory)), ["f"])
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"abc")

    def test_discard(self) -> None:
        """
        :meth:`discard` removes the ``.part`` unless asked to keep it.
        """
        part = sinks.PartFile(self.path)
        part.write(b"abc")
        part.discard(keep=True)
        self.assertEqual(os.listdir(self.directory), ["f.part"])
        part = sinks.PartFile(self.path)
        part.discard()
        self.assertEqual(os.listdir(self.directory), [])

    def test_resumeAndRestart(self) -> None:
        """
        ``resume`` appends to an existing ``.part`` (and hashes it); :meth:`restart`
        empties it.
        """
        with open(self.path + ".part", "wb") as f:
            f.write(b"abc")
        part = sinks.PartFile(self.path, resume=True, sha256=True)
        self.assertEqual(part.offset, 3)
        part.write(b"def")
        import hashlib

        part.verify(hashlib.sha256(b"abcdef").hexdigest())
        part.restart()
        part.write(b"xy")
        part.commit()
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"xy")

    def test_verifyMismatch(self) -> None:
        """
        A wrong digest is :class:`ChecksumMismatch`.
        """
        part = sinks.PartFile(self.path, sha256=True)
        part.write(b"abc")
        with self.assertRaises(fetch_errors.ChecksumMismatch):
            part.verify("0" * 64)
        part.discard()

    def test_noClobberCommit(self) -> None:
        """
        With ``no_clobber``, a file that appeared meanwhile is not replaced, and the
        ``.part`` is removed.
        """
        part = sinks.PartFile(self.path, no_clobber=True)
        part.write(b"new")
        with open(self.path, "wb") as f:
            f.write(b"old")
        with self.assertRaises(fetch_errors.FileError):
            part.commit()
        self.assertEqual(os.listdir(self.directory), ["f"])
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"old")

    def test_unwritable(self) -> None:
        """
        A directory that does not exist is a :class:`FileError` with a sentence.
        """
        with self.assertRaises(fetch_errors.FileError) as e:
            sinks.PartFile(os.path.join(self.directory, "missing", "f"))
        self.assertIn("cannot write", str(e.exception))
        self.assertEqual(e.exception.exitCode, fetch_errors.EXIT_FILE)


class SameContentTests(unittest.SynchronousTestCase):
    """
    :func:`sinks.same_content`.
    """

    def test_sameContent(self) -> None:
        """
        True only for the same size and digest; false for a missing file.
        """
        import hashlib

        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"abc")
        digest = hashlib.sha256(b"abc").hexdigest()
        self.assertTrue(sinks.same_content(path, digest, 3))
        self.assertFalse(sinks.same_content(path, digest, 4))
        self.assertFalse(sinks.same_content(path, "0" * 64, 3))
        self.assertFalse(sinks.same_content(path + "-missing", digest, 3))


class ChecksTests(unittest.SynchronousTestCase):
    """
    Length checks, exit codes, Retry-After, ranges, URLs.
    """

    def test_checkLength(self) -> None:
        """
        Short and long bodies are :class:`TruncatedBody`; exact ones pass, and so do
        close-delimited ones (RFC 9112 section 6.3).
        """
        semantics.check_length("u", 3, 3)
        semantics.check_length("u", None, 3)
        semantics.check_length("u", None, 3, framed=False)
        for expected, received, framed in [(3, 2, True), (3, 4, True), (3, 2, False)]:
            with self.assertRaises(fetch_errors.TruncatedBody):
                semantics.check_length("u", expected, received, framed)

    def test_exitStatus(self) -> None:
        """
        0 when all succeed, else the first failure's code; codes are distinct.
        """
        self.assertEqual(fetch_errors.exit_status([None, None]), 0)
        errors = [None, fetch_errors.Timeout("t"), fetch_errors.HTTPStatusError("h", status=404)]
        self.assertEqual(fetch_errors.exit_status(errors), fetch_errors.EXIT_TIMEOUT)
        self.assertEqual(len(set(fetch_errors.EXIT_CODES)), len(fetch_errors.EXIT_CODES))

    def test_retryable(self) -> None:
        """
        408, 429 and 5xx are retryable statuses; 404 is not.
        """
        self.assertTrue(fetch_errors.HTTPStatusError("x", status=503).retryable)
        self.assertTrue(fetch_errors.HTTPStatusError("x", status=429).retryable)
        self.assertFalse(fetch_errors.HTTPStatusError("x", status=404).retryable)

    def test_retryAfter(self) -> None:
        """
        Seconds or an HTTP date; garbage is ``None``.
        """
        self.assertEqual(semantics.retry_after("7"), 7.0)
        self.assertEqual(semantics.retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=40.0), 60.0)
        self.assertIsNone(semantics.retry_after("soon"))
        self.assertIsNone(semantics.retry_after(None))

    def test_contentRange(self) -> None:
        """
        ``bytes A-B/T`` parses; nonsense does not.
        """
        self.assertEqual(semantics.parse_content_range("bytes 10-19/20"), (10, 19, 20))
        self.assertEqual(semantics.parse_content_range("bytes 10-19/*"), (10, 19, None))
        self.assertIsNone(semantics.parse_content_range("bytes 19-10/20"))
        self.assertIsNone(semantics.parse_content_range("items 1-2/3"))

    def test_checkURL(self) -> None:
        """
        Only absolute http(s) URLs with a host pass.
        """
        semantics.check_url("https://h:8443/x")
        for bad in ["ftp://h/x", "http:///x", "h/x", "http://h:99999/"]:
            with self.assertRaises(fetch_errors.UnsupportedURL):
                semantics.check_url(bad)

    def test_describeURL(self) -> None:
        """
        Passwords are shown as ``***`` in URLs in messages, even in malformed URLs.
        """
        self.assertEqual(fetch_errors.describe_url("http://u:secret@h:81/x"), "http://u:***@h:81/x")
        self.assertEqual(fetch_errors.describe_url("http://u@h/x"), "http://u@h/x")
        self.assertEqual(fetch_errors.describe_url("http://u:s@[::1/x"), "http://u:***@[::1/x")

    def test_sameOrigin(self) -> None:
        """
        Scheme, host and (default) port must all match.
        """
        self.assertTrue(semantics.same_origin("http://h/a", "http://h:80/b"))
        self.assertFalse(semantics.same_origin("http://h/a", "https://h/a"))
        self.assertFalse(semantics.same_origin("http://h:1/a", "http://h:2/a"))


class ProxyTests(unittest.SynchronousTestCase):
    """
    :func:`semantics.proxy_for` with explicit settings.
    """

    def test_proxyChosenByScheme(self) -> None:
        """
        The scheme's proxy applies; a bare host:port gets ``http://``.
        """
        proxies = {"http": "p:3128", "https": "http://q:8080"}
        self.assertEqual(semantics.proxy_for("http://h/x", proxies), "http://p:3128")
        self.assertEqual(semantics.proxy_for("https://h/x", proxies), "http://q:8080")
        self.assertIsNone(semantics.proxy_for("https://h/x", {}))

    def test_noProxy(self) -> None:
        """
        ``no`` lists hosts and domains to reach directly.
        """
        proxies = {"http": "http://p:1", "no": "127.0.0.1,.example.org"}
        self.assertIsNone(semantics.proxy_for("http://127.0.0.1:8080/x", proxies))
        self.assertIsNone(semantics.proxy_for("http://www.example.org/x", proxies))
        self.assertEqual(semantics.proxy_for("http://example.com/x", proxies), "http://p:1")


class ValidatorsTests(unittest.SynchronousTestCase):
    """
    The remembered ETag / Last-Modified beside a file.
    """

    def test_roundTrip(self) -> None:
        """
        Saved validators come back as conditional headers; without a record the file's
        mtime is used; without the file, nothing.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "f")
        self.assertEqual(validators.conditional_headers(path), {})
        with open(path, "wb") as f:
            f.write(b"x")
        self.assertIn("If-Modified-Since", validators.conditional_headers(path))
        validators.save_validators(path, "http://h/f", '"e1"', "Thu, 01 Jan 2026 00:00:00 GMT")
        self.assertEqual(
            validators.conditional_headers(path),
            {"If-None-Match": '"e1"', "If-Modified-Since": "Thu, 01 Jan 2026 00:00:00 GMT"},
        )
        self.assertEqual(sorted(os.listdir(directory)), [".f.http.json", "f"])

    def test_corrupt(self) -> None:
        """
        An unreadable record is ignored.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "f")
        with open(path, "wb") as f:
            f.write(b"x")
        with open(validators.validators_path(path), "w") as f:
            f.write("{not json")
        self.assertEqual(validators.load_validators(path), {})


class URLListTests(unittest.SynchronousTestCase):
    """
    The mirror's URL file format.
    """

    def test_parse(self) -> None:
        """
        Comments and blank lines are skipped; names are optional and must be plain;
        bad lines are reported with their numbers.
        """
        text = (
            "# mirror list\n\nhttp://h/a\nhttp://h/b  b.txt  # note\n"
            "ftp://h/c\nhttp://h/d ../d\nhttp://h/e x y\n"
        )
        entries, problems = mirror.parse_url_list(text)
        self.assertEqual(entries, [("http://h/a", None), ("http://h/b", "b.txt")])
        self.assertEqual([p.split(":")[0] for p in problems], ["line 5", "line 6", "line 7"])


class DocumentationTests(unittest.SynchronousTestCase):
    """
    The how-to's exit-code table is :data:`fetch_errors.EXIT_CODES`.
    """

    def test_exitCodeTable(self) -> None:
        """
        Every row of the table in ``docs/howto/fetch.rst`` matches the code's table.
        """
        from tests.support import REPO

        text = (REPO / "docs" / "howto" / "fetch.rst").read_text()
        table = text.split(".. exit-codes-start")[1].split(".. exit-codes-end")[0]
        rows = {}
        for line in table.splitlines():
            code, _, meaning = line.partition("  ")
            if code.strip().isdigit():
                rows[int(code)] = meaning.strip()
        self.assertEqual(rows, dict(fetch_errors.EXIT_CODES))

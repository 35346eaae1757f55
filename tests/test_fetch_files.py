"""
Tests of the fetcher's writing rules (:mod:`twisted_journey.fetch.safefiles`,
:mod:`~twisted_journey.fetch.sinks`, :mod:`~twisted_journey.fetch.naming`): nothing is written through a
symbolic link, FIFO or device planted at any name the fetchers write (the final name,
its ``.part``, the validators record, temporary files); ``-o`` onto a FIFO or device
streams into it; one run never gives one name to two URLs; directories are created.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial import unittest

from tests.support import mountTmpfs
from twisted_journey.fetch import errors as fetch_errors
from twisted_journey.fetch import mirror, naming, safefiles, sinks, validators

PRECIOUS = b"precious"


class PlantedMixin:
    """
    A directory with a precious file that links may point at.
    """

    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())  # type: ignore[attr-defined]
        os.makedirs(self.base)
        self.target = os.path.join(self.base, "target")
        with open(self.target, "wb") as f:
            f.write(PRECIOUS)

    def at(self, name: str) -> str:
        return os.path.join(self.base, name)

    def link(self, name: str) -> str:
        """
        Plant a symbolic link to the precious file at ``name``.
        """
        os.symlink(self.target, self.at(name))
        return self.at(name)

    def fifo(self, name: str) -> str:
        """
        Plant a FIFO at ``name``.
        """
        os.mkfifo(self.at(name))
        return self.at(name)

    def assertPreciousIntact(self) -> None:
        with open(self.target, "rb") as f:
            self.assertEqual(f.read(), PRECIOUS)  # type: ignore[attr-defined]


class SymlinkTests(PlantedMixin, unittest.SynchronousTestCase):
    """
    No file is written through a planted link, FIFO or device.
    """

    def test_validatorsRecordLink(self) -> None:
        """
        Links planted at ``.NAME.http.json`` and at its old fixed temporary name
        ``.NAME.http.json.part`` are not written through (the temporary one was, by
        ``-N``, ``-C`` and every mirror pass): the record replaces the first link, the
        second is left alone.
        """
        with open(self.at("f"), "wb") as f:
            f.write(b"body")
        record = self.link(".f.http.json")
        self.link(".f.http.json.part")
        validators.save_validators(self.at("f"), "http://h/f", '"e"', None)
        self.assertPreciousIntact()
        self.assertFalse(os.path.islink(record))
        self.assertEqual(validators.load_validators(self.at("f"))["etag"], '"e"')
        self.assertEqual(
            sorted(os.listdir(self.base)), [".f.http.json", ".f.http.json.part", "f", "target"]
        )

    def test_validatorsRecordFIFO(self) -> None:
        """
        A FIFO at the record's name is an error, not a hang or a write into it; reading
        one back is "nothing remembered".
        """
        with open(self.at("f"), "wb") as f:
            f.write(b"body")
        self.fifo(".f.http.json")
        self.assertEqual(validators.load_validators(self.at("f")), {})
        with self.assertRaises(fetch_errors.FileError) as e:
            validators.save_validators(self.at("f"), "http://h/f", '"e"', None)
        self.assertIn("FIFO", str(e.exception))
        self.assertEqual(sorted(os.listdir(self.base)), [".f.http.json", "f", "target"])

    def test_readingThroughLinks(self) -> None:
        """
        A record or a file that is a link is not read (its target could be anything).
        """
        self.link("f")
        with open(self.at(".f.http.json"), "w") as f:
            f.write('{"etag": "\\"x\\""}')
        self.assertEqual(validators.load_validators(self.at("f")), {})
        self.assertEqual(validators.conditional_headers(self.at("f")), {})
        self.assertFalse(sinks.same_content(self.at("f"), "0" * 64, len(PRECIOUS)))

    def test_partLinkFIFO(self) -> None:
        """
        A link or FIFO at ``NAME.part`` is refused, fresh or resumed; a stale regular
        ``.part`` is replaced.
        """
        self.link("a.part")
        self.fifo("b.part")
        for name in ("a", "b"):
            for resume in (False, True):
                with self.assertRaises(fetch_errors.FileError):
                    sinks.PartFile(self.at(name), resume=resume)
        with open(self.at("c.part"), "wb") as f:
            f.write(b"stale")
        part = sinks.PartFile(self.at("c"))
        part.write(b"new")
        part.commit()
        with open(self.at("c"), "rb") as f:
            self.assertEqual(f.read(), b"new")
        self.assertPreciousIntact()

    def test_finalLinkReplaced(self) -> None:
        """
        The rename replaces a link at the final name (the link, not its target), with
        and without ``no_clobber``'s refusal.
        """
        self.link("f")
        part = sinks.PartFile(self.at("f"))
        part.write(b"new")
        part.commit()
        self.assertFalse(os.path.islink(self.at("f")))
        self.assertPreciousIntact()
        self.link("g")
        part = sinks.PartFile(self.at("g"), no_clobber=True)
        part.write(b"new")
        with self.assertRaises(fetch_errors.FileError):
            part.commit()
        self.assertTrue(os.path.islink(self.at("g")))
        self.assertPreciousIntact()

    def test_finalNotRegular(self) -> None:
        """
        A directory or FIFO at the final name is an error before anything is written,
        and is never replaced.
        """
        os.mkdir(self.at("d"))
        self.fifo("p")
        for name in ("d", "p"):
            with self.assertRaises(fetch_errors.FileError) as e:
                sinks.PartFile(self.at(name))
            self.assertIn("not a regular file", str(e.exception))
        self.assertTrue(os.path.isdir(self.at("d")))
        self.assertTrue(stat.S_ISFIFO(os.lstat(self.at("p")).st_mode))
        self.assertEqual(sorted(os.listdir(self.base)), ["d", "p", "target"])

    def test_replaceAtomically(self) -> None:
        """
        :func:`safefiles.replace_atomically` refuses a directory or FIFO at the final name and
        removes the temporary file.
        """
        self.fifo("p")
        temporary, fd = safefiles.temporary_beside(self.at("p"))
        os.close(fd)
        with self.assertRaises(fetch_errors.FileError):
            safefiles.replace_atomically(temporary, self.at("p"))
        self.assertFalse(os.path.exists(temporary))

    def test_openNew(self) -> None:
        """
        :func:`safefiles.open_new` never opens an existing name unless told to replace a
        regular file; a link is refused even then.
        """
        self.link("l")
        with open(self.at("r"), "wb"):
            pass
        for name, replace in [("l", False), ("l", True), ("r", False)]:
            with self.assertRaises(fetch_errors.FileError):
                safefiles.open_new(self.at(name), replace=replace)
        os.close(safefiles.open_new(self.at("r"), replace=True))
        self.assertPreciousIntact()

    def test_replacedFileGetsFreshPermissions(self) -> None:
        """
        A regular file replaced by :func:`safefiles.open_new` is created anew with the mode
        asked for (less the umask), never with the old file's bits (setuid, executable).
        """
        with open(self.at("r"), "wb"):
            pass
        os.chmod(self.at("r"), 0o4755)
        umask = os.umask(0o022)
        self.addCleanup(os.umask, umask)
        os.close(safefiles.open_new(self.at("r"), replace=True, mode=0o640))
        self.assertEqual(stat.S_IMODE(os.stat(self.at("r")).st_mode), 0o640)

    def test_temporaryNames(self) -> None:
        """
        Temporary files beside a name are new, hidden and random.
        """
        first, a = safefiles.temporary_beside(self.at("f"))
        second, b = safefiles.temporary_beside(self.at("f"))
        os.close(a)
        os.close(b)
        self.assertNotEqual(first, second)
        self.assertTrue(os.path.basename(first).startswith(".f."))


class OwnershipTests(PlantedMixin, unittest.SynchronousTestCase):
    """
    A ``.part`` (or a temporary file) is its writer's from creation to rename: another
    writer of the name fails, and a file that is not the one written is never renamed or
    removed.  A file with other hard links is never written into.
    """

    def test_heldPartRefused(self) -> None:
        """
        While one :class:`PartFile` holds ``f.part``, another (fresh or resuming) fails
        with one sentence and leaves it alone; the holder's bytes become ``f``.
        """
        first = sinks.PartFile(self.at("f"))
        first.write(b"first")
        for resume in (False, True):
            with self.assertRaises(fetch_errors.FileError) as e:
                sinks.PartFile(self.at("f"), resume=resume)
            self.assertIn("being written by another download", str(e.exception))
        first.commit()
        with open(self.at("f"), "rb") as f:
            self.assertEqual(f.read(), b"first")
        self.assertEqual(sorted(os.listdir(self.base)), ["f", "target"])

    def test_replacedPartLeftAlone(self) -> None:
        """
        When the ``.part`` name no longer holds the file written (someone renamed it away
        and put another there), :meth:`PartFile.commit` fails and neither renames nor
        removes the other file; :meth:`PartFile.discard` does not remove it either.
        """
        for finish in ("commit", "discard"):
            part = sinks.PartFile(self.at(finish))
            part.write(b"mine")
            os.rename(self.at(finish + ".part"), self.at(finish + ".moved"))
            with open(self.at(finish + ".part"), "wb") as f:
                f.write(b"theirs")
            if finish == "commit":
                with self.assertRaises(fetch_errors.FileError) as e:
                    part.commit()
                self.assertIn("replaced by another process", str(e.exception))
            else:
                part.discard()
            self.assertFalse(os.path.lexists(self.at(finish)))
            with open(self.at(finish + ".part"), "rb") as f:
                self.assertEqual(f.read(), b"theirs")

    def test_hardLinkedPartRefused(self) -> None:
        """
        A ``.part`` that is a hard link of another file is neither appended to (resume)
        nor replaced: the other file is untouched and the link stays.
        """
        os.link(self.target, self.at("h.part"))
        for resume in (True, False):
            with self.assertRaises(fetch_errors.FileError) as e:
                sinks.PartFile(self.at("h"), resume=resume)
            self.assertIn("hard links", str(e.exception))
        self.assertPreciousIntact()
        self.assertTrue(os.path.samefile(self.target, self.at("h.part")))

    def test_replacementOwned(self) -> None:
        """
        A :class:`safefiles.Replacement` (a validators record) whose temporary file was
        swapped for another file is not renamed into place; :meth:`discard` removes only
        its own temporary file.
        """
        pending = safefiles.Replacement(self.at("r"), b"record")
        os.rename(pending.temporary, self.at("moved"))
        with open(pending.temporary, "wb") as f:
            f.write(b"theirs")
        with self.assertRaises(fetch_errors.FileError):
            pending.commit()
        self.assertFalse(os.path.lexists(self.at("r")))
        self.assertTrue(os.path.exists(pending.temporary))
        pending = safefiles.Replacement(self.at("s"), b"record")
        pending.discard()
        pending.commit()  # nothing left to commit
        self.assertFalse(os.path.lexists(self.at("s")))
        self.assertEqual(
            sorted(n for n in os.listdir(self.base) if not n.startswith(".r.")),
            ["moved", "target"],
        )

    def test_rangeValidatorChanged(self) -> None:
        """
        A 206 whose ETag (or, when the condition was a date, Last-Modified) differs from
        the ``If-Range`` sent is another version; a validator it lacks cannot differ.
        """
        date = "Thu, 01 Jan 2026 00:00:00 GMT"
        changed = validators.range_validator_changed
        self.assertTrue(changed('"v1"', '"v2"', None))
        self.assertFalse(changed('"v1"', '"v1"', "Fri, 02 Jan 2026 00:00:00 GMT"))
        self.assertFalse(changed('"v1"', None, None))
        self.assertTrue(changed(date, None, "Fri, 02 Jan 2026 00:00:00 GMT"))
        self.assertFalse(changed(date, '"v9"', date))
        self.assertFalse(changed(None, '"v2"', date))


class StreamSinkTests(PlantedMixin, unittest.SynchronousTestCase):
    """
    ``-o`` onto something that is not a regular file is written into, never replaced.
    """

    def test_devNull(self) -> None:
        """
        ``/dev/null`` is written into: no ``.part``, nothing renamed, still a device.
        """
        sink = sinks.open_sink("/dev/null", stream=True)
        self.assertIsInstance(sink, sinks.StreamSink)
        sink.write(b"x" * 10)
        sink.commit()
        self.assertEqual(sink.written, 10)
        self.assertTrue(stat.S_ISCHR(os.stat("/dev/null").st_mode))
        self.assertFalse(sink.resumable)

    def test_fifo(self) -> None:
        """
        A FIFO is written into (the reader sees the body) and stays a FIFO.
        """
        path = self.fifo("p")
        reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        sink = sinks.open_sink(path, stream=True)
        sink.write_many([b"ab", b"cd"])
        sink.commit()
        self.assertEqual(os.read(reader, 100), b"abcd")
        self.assertTrue(stat.S_ISFIFO(os.lstat(path).st_mode))
        self.assertEqual(sorted(os.listdir(self.base)), ["p", "target"])

    def test_stdout(self) -> None:
        """
        ``-`` is standard output: :func:`naming.target_path` keeps it, the sink writes
        to descriptor 1 (here a pipe) and leaves it open.
        """
        self.assertEqual(naming.target_path("http://h/x", "-", "dir"), naming.STDOUT)
        read, write = os.pipe()
        saved = os.dup(1)
        self.addCleanup(os.close, saved)
        os.dup2(write, 1)
        try:
            sink = sinks.open_sink("-", stream=True)
            sink.write(b"body")
            sink.commit()
        finally:
            os.dup2(saved, 1)
            os.close(write)
        self.assertEqual(os.read(read, 100), b"body")
        os.close(read)

    def test_notStreamedUnlessChosen(self) -> None:
        """
        Without ``stream`` (a name from the URL, the server or a URL list) a FIFO or
        device is an error, never written into or replaced.
        """
        path = self.fifo("p")
        with self.assertRaises(fetch_errors.FileError):
            sinks.open_sink(path)
        self.assertTrue(stat.S_ISFIFO(os.lstat(path).st_mode))

    def test_regularFileStillRenamed(self) -> None:
        """
        A regular file chosen with ``-o`` still gets a ``.part`` renamed into place.
        """
        path = self.at("f")
        sink = sinks.open_sink(path, stream=True)
        self.assertIsInstance(sink, sinks.PartFile)
        sink.write_many([b"ab", b"cd"])
        self.assertFalse(os.path.exists(path))
        self.assertTrue(os.path.exists(path + ".part"))
        sink.commit()
        self.assertFalse(os.path.exists(path + ".part"))
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"abcd")

    def test_validatorsNotBesideDevices(self) -> None:
        """
        Nothing is remembered beside a FIFO or device (``-N -o /dev/null`` created
        ``/dev/.null.http.json``), and no conditional headers come from one.
        """
        path = self.fifo("p")
        validators.save_validators(path, "http://h/x", '"e"', None)
        self.assertEqual(sorted(os.listdir(self.base)), ["p", "target"])
        self.assertEqual(validators.conditional_headers(path), {})
        self.assertEqual(validators.conditional_headers("/dev/null"), {})


class NameRegistryTests(unittest.SynchronousTestCase):
    """
    One name, one download.
    """

    def test_sameName(self) -> None:
        """
        A second owner cannot claim a name, nor a name that is the other's ``.part``
        (either way round); the sentence names the URL that holds it.
        """
        names = naming.NameRegistry(keep=True)
        names.claim("d/a", "one", "http://h/a")
        names.claim("d/a", "one", "http://h/a")  # the same owner again: fine
        for taken in ("d/a", "d/a.part", "d/./a"):
            with self.assertRaises(fetch_errors.FileError) as e:
                names.claim(taken, "two", "http://h/other")
            self.assertIn("http://h/a", str(e.exception))
            self.assertEqual(e.exception.exitCode, fetch_errors.EXIT_FILE)
        names.claim("d/b.part", "three", "http://h/b.part")
        with self.assertRaises(fetch_errors.FileError):
            names.claim("d/b", "four", "http://h/b")

    def test_release(self) -> None:
        """
        Claims are freed when a transfer ends, unless the registry keeps them (a run).
        """
        names = naming.NameRegistry()
        names.claim("a", "one")
        names.release("one")
        names.claim("a", "two")
        kept = naming.NameRegistry(keep=True)
        kept.claim("a", "one")
        kept.release("one")
        with self.assertRaises(fetch_errors.FileError):
            kept.claim("a", "two")

    def test_noPasswordShown(self) -> None:
        """
        The sentence never shows a password of the URL holding the name.
        """
        names = naming.NameRegistry(keep=True)
        names.claim("a", "one", "http://user:secret@h/a")
        with self.assertRaises(fetch_errors.FileError) as e:
            names.claim("a", "two", "http://h/a")
        self.assertNotIn("secret", str(e.exception))


class DirectoryTests(unittest.SynchronousTestCase):
    """
    ``--output-dir`` (and ``--create-dirs``) create directories.
    """

    def test_created(self) -> None:
        """
        Missing parents too, with the umask's mode; an existing one is fine.
        """
        base = os.path.abspath(self.mktemp())
        path = os.path.join(base, "a", "b")
        old = os.umask(0o027)
        try:
            safefiles.make_directories(path)
            safefiles.make_directories(path)
        finally:
            os.umask(old)
        self.assertTrue(os.path.isdir(path))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o750)

    def test_fileInTheWay(self) -> None:
        """
        A file with the directory's name is a :class:`FileError` sentence.
        """
        base = os.path.abspath(self.mktemp())
        with open(base, "wb"):
            pass
        with self.assertRaises(fetch_errors.FileError) as e:
            safefiles.make_directories(base)
        self.assertIn("not a directory", str(e.exception))


class URLListTests(unittest.SynchronousTestCase):
    """
    Any line of a URL file is either an entry or a problem, never an exception.
    """

    def test_malformedLines(self) -> None:
        """
        Malformed URLs (a broken IPv6 literal, a bad port, control characters, a huge
        line) are problems, and the good lines around them still count.
        """
        text = "\n".join(
            [
                "http://h/good",
                "http://[::1/x",
                "http://h:99999/x",
                "http://h/\x00x name",
                "http://]/x",
                "x" * 100_000,
                "http://h/also-good  copy",
                "\udcff",
            ]
        )
        entries, problems = mirror.parse_url_list(text)
        self.assertEqual(entries, [("http://h/good", None), ("http://h/also-good", "copy")])
        self.assertEqual(len(problems), 6)


class APITests(unittest.TestCase):
    """
    The same rules through the API (:meth:`Fetcher.retrieve`), against a loopback server.
    """

    def setUp(self) -> None:
        from tests import fetchservers as servers
        from twisted_journey.fetch import Fetcher, FetchSettings

        self.out = os.path.abspath(self.mktemp())
        os.makedirs(self.out)
        self.root = servers.webRoot()
        self.hold = servers.Hold()
        self.root.putChild(b"held", self.hold)
        self.base = f"http://127.0.0.1:{servers.listen(self, servers.webSite(self.root))}"
        self.fetcher = Fetcher(settings=FetchSettings(proxies={}, parallel=4))
        self.addCleanup(self.fetcher.close)

    async def _outputDirCreated(self) -> None:
        directory = os.path.join(self.out, "new", "deeper")
        result = await self.fetcher.retrieve(self.base + "/blob", outputDir=directory)
        self.assertEqual(result.filename, os.path.join(directory, "blob"))
        self.assertEqual(os.listdir(directory), ["blob"])
        nested = os.path.join(self.out, "x", "y", "f")
        await self.fetcher.retrieve(self.base + "/blob", nested, createDirs=True)
        self.assertTrue(os.path.isfile(nested))

    def test_outputDirCreated(self) -> Any:
        """
        ``outputDir`` is created with its parents; ``createDirs`` creates a filename's.
        """
        return Deferred.fromCoroutine(self._outputDirCreated())

    async def _sameNameAtOnce(self) -> None:
        target = os.path.join(self.out, "one")
        first = self.fetcher.retrieve(self.base + "/held", target)
        second = self.fetcher.retrieve(self.base + "/blob", target)
        try:
            await second
        except fetch_errors.FileError as e:
            self.assertIn("also saved as 'one'", str(e))
        else:
            self.fail("two transfers wrote one name at once")
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        for _ in range(3000):  # until the first request has arrived
            if self.hold.waiting:
                break
            await deferLater(reactor, 0.01)  # type: ignore[arg-type]
        self.hold.release()
        await first
        self.assertEqual(self.hold.most, 1)
        with open(target, "rb") as f:
            self.assertEqual(f.read(), bytes(range(256)) * 40)
        await self.fetcher.retrieve(self.base + "/blob", target)  # the claim was released

    async def waitForPart(self, part: str) -> None:
        """
        Wait until ``part`` has bytes in it (a transfer is mid-body).
        """
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        for _ in range(3000):
            if os.path.exists(part) and os.path.getsize(part) > 0:
                return
            await deferLater(reactor, 0.01)  # type: ignore[arg-type]
        self.fail(f"{part} was never written")

    async def _twoFetchersOneName(self) -> None:
        from tests import fetchservers as servers
        from twisted_journey.fetch import Fetcher, FetchSettings

        slow = servers.Trickle(b"A" * 2000000, 1000000)
        self.root.putChild(b"big", slow)
        from twisted.web.resource import Resource

        other = Resource()
        other.putChild(b"big", servers.Blob(b"B" * 5000))
        self.root.putChild(b"other", other)
        target = os.path.join(self.out, "big")
        first = self.fetcher.retrieve(self.base + "/big", target)
        await self.waitForPart(target + ".part")
        second = Fetcher(settings=FetchSettings(proxies={}))
        self.addCleanup(second.close)
        try:
            await second.retrieve(self.base + "/other/big", target)
        except fetch_errors.FileError as e:
            self.assertIn("being written by another download", str(e))
        else:
            self.fail("a second download wrote into the first one's .part")
        slow.release()
        result = await first
        self.assertEqual(result.size, 2000000)
        with open(target, "rb") as f:
            self.assertEqual(f.read(), b"A" * 2000000)
        self.assertEqual(os.listdir(self.out), ["big"])

    def test_twoFetchersOneName(self) -> Any:
        """
        Two fetchers (two runs, two mirrors) writing one name at once: the later fails
        with one sentence while the first is mid-body, and the file is the first's body,
        whole.
        """
        return Deferred.fromCoroutine(self._twoFetchersOneName())

    async def _validatorsFirst(self, target: str) -> None:
        try:
            await self.fetcher.retrieve(self.base + "/blob", target, newer=True)
        except fetch_errors.FileError as e:
            self.assertIn("No space left", str(e))
        else:
            self.fail("the validators record could not be written, yet the run succeeded")

    async def _newerRecordFailsFirst(self) -> None:
        import errno

        target = os.path.join(self.out, "blob")
        with open(target, "wb") as f:
            f.write(b"old")

        class Full(safefiles.Replacement):
            def __init__(self, path: str, data: bytes) -> None:
                error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                raise fetch_errors.FileError(f"cannot write {path!r}: {error.strerror}.")

        self.patch(validators, "Replacement", Full)
        await self._validatorsFirst(target)
        with open(target, "rb") as f:
            self.assertEqual(f.read(), b"old")
        self.assertEqual(os.listdir(self.out), ["blob"])

    def test_newerRecordFailsFirst(self) -> Any:
        """
        ``newer`` (``-N``) whose validators record cannot be written fails before the
        file is touched: the old file stays, no ``.part`` (the failure is injected).
        """
        return Deferred.fromCoroutine(self._newerRecordFailsFirst())

    async def _newerOnFullDisk(self) -> None:
        from tests import fetchservers as servers

        disk = mountTmpfs(self, "64k")
        info = os.statvfs(disk)
        self.root.putChild(b"fill", servers.Blob(b"x" * (info.f_bavail * info.f_frsize)))
        target = os.path.join(disk, "fill")
        try:
            await self.fetcher.retrieve(self.base + "/fill", target, newer=True)
        except fetch_errors.FileError as e:
            self.assertIn("No space left", str(e))
        else:
            self.fail("the disk was too small for the file and its record, yet it succeeded")
        self.assertEqual(os.listdir(disk), [])

    async def _newerRecordBlocked(self) -> None:
        target = os.path.join(self.out, "blob")
        os.mkdir(os.path.join(self.out, ".blob.http.json"))
        try:
            await self.fetcher.retrieve(self.base + "/blob", target, newer=True)
        except fetch_errors.FileError as e:
            self.assertIn(".blob.http.json", str(e))
        else:
            self.fail("the validators record could not be written, yet the run succeeded")
        self.assertEqual(os.listdir(self.out), [".blob.http.json"])

    def test_newerRecordBlocked(self) -> Any:
        """
        ``newer`` with a directory planted at the validators record's name fails before
        the file is renamed into place: no file, one sentence naming the record.
        """
        return Deferred.fromCoroutine(self._newerRecordBlocked())

    def test_newerOnFullDisk(self) -> Any:
        """
        On a real full disk (a tmpfs with room for the body but not its record), ``-N``
        fails with nothing renamed into place, rather than reporting a failure after
        putting the file there.
        """
        return Deferred.fromCoroutine(self._newerOnFullDisk())

    def test_sameNameAtOnce(self) -> Any:
        """
        Two transfers of one fetcher into one name at once: the later fails with
        :class:`FileError`, the first's body is the file; once it is done the name is free.
        """
        return Deferred.fromCoroutine(self._sameNameAtOnce())

    async def _fifo(self) -> None:
        path = os.path.join(self.out, "pipe")
        os.mkfifo(path)
        try:
            await self.fetcher.retrieve(self.base + "/blob", path, stream=False)
        except fetch_errors.FileError as e:
            self.assertIn("FIFO", str(e))
        else:
            self.fail("a FIFO was written into with stream=False")
        reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        result = await self.fetcher.retrieve(self.base + "/blob", path)
        self.assertEqual(result.size, 10240)
        self.assertEqual(os.read(reader, 20000), bytes(range(256)) * 40)
        self.assertTrue(stat.S_ISFIFO(os.lstat(path).st_mode))

    def test_fifo(self) -> Any:
        """
        A ``filename`` naming a FIFO is streamed into (as ``-o``), unless ``stream`` is
        false, when it is a :class:`FileError`; it stays a FIFO.
        """
        return Deferred.fromCoroutine(self._fifo())

    async def _fifoWithoutReader(self) -> None:
        import threading

        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        path = os.path.join(self.out, "pipe")
        os.mkfifo(path)
        readers: list[tuple[str, int]] = []

        def rescue() -> None:  # unblock a reactor stuck in open(), so the test fails
            if not readers:
                readers.append(("rescue", os.open(path, os.O_RDONLY | os.O_NONBLOCK)))

        timer = threading.Timer(10.0, rescue)
        timer.start()
        self.addCleanup(timer.cancel)
        d = self.fetcher.retrieve(self.base + "/blob", path)
        await deferLater(reactor, 0.2)  # type: ignore[arg-type]
        if not readers:
            readers.append(("reactor", os.open(path, os.O_RDONLY | os.O_NONBLOCK)))
        for _, fd in readers:
            self.addCleanup(os.close, fd)
        await d
        self.assertEqual(readers[0][0], "reactor")

    def test_fifoWithoutReader(self) -> Any:
        """
        Opening a FIFO nobody reads yet blocks: it happens off the reactor thread, which
        keeps running (here: to open the reader) even for a small body.
        """
        return Deferred.fromCoroutine(self._fifoWithoutReader())

"""
Write the intersphinx inventories of Twisted's and Python's documentation, offline.

CI has no network, so Sphinx cannot download ``objects.inv`` from docs.twisted.org or
docs.python.org.  This script builds equivalent inventories by introspecting the installed
modules we link into, with the URLs those sites use:

- Twisted (pydoctor): ``api/twisted.internet.protocol.Factory.html`` for a class,
  ``api/twisted.internet.endpoints.html#serverFromString`` for a module-level name,
  ``api/twisted.internet.protocol.Factory.html#buildProtocol`` for a method;
- Python (Sphinx): ``library/MODULE.html#MODULE.NAME``, built-in types, functions and
  exceptions on their own pages.

Run it when the names we reference change or Twisted moves:
``python docs/_inventories/make.py`` (writes ``twisted.inv`` and ``python.inv`` beside
itself), and commit the result.  ``sphinx-build -n`` then fails on any name the docs use
that these inventories (or our own modules) do not define.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import pkgutil
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Twisted packages whose public names we may reference (recursively)
TWISTED_PACKAGES = [
    "twisted.application",
    "twisted.internet",
    "twisted.logger",
    "twisted.plugin",
    "twisted.protocols",
    "twisted.python",
    "twisted.trial",
    "twisted.web",
]

#: standard-library modules we may reference; each has its own page ``library/MODULE.html``
PYTHON_MODULES = [
    "argparse", "asyncio", "collections", "collections.abc", "contextlib", "dataclasses",
    "enum", "errno", "fcntl", "functools", "gzip", "hashlib", "http", "http.client",
    "http.server", "io", "ipaddress", "itertools", "json", "logging", "os", "os.path",
    "pathlib", "select", "selectors", "signal", "socket", "socketserver", "ssl", "subprocess",
    "sys", "tempfile", "threading", "time", "types", "typing", "unittest", "urllib.error",
    "urllib.parse", "urllib.request", "zlib", "concurrent.futures", "datetime", "email.message",
    "mmap", "multiprocessing", "os", "resource", "shutil", "stat", "struct", "tarfile",
    "zipfile", "platform", "random", "re", "secrets", "string", "textwrap", "weakref",
]  # fmt: skip

_STDTYPES = {"str", "bytes", "bytearray", "memoryview", "list", "tuple", "dict", "set",
             "frozenset", "range"}  # fmt: skip


def _isPublic(name: str) -> bool:
    return not name.startswith("_")


def _isInterface(obj: object) -> bool:
    from zope.interface.interface import InterfaceClass

    return isinstance(obj, InterfaceClass)


def _role(obj: object) -> str:
    if _isInterface(obj):
        return "py:class"
    if inspect.isclass(obj):
        return "py:exception" if issubclass(obj, BaseException) else "py:class"
    if inspect.isroutine(obj):
        return "py:function"
    return "py:data"


def _walk(packageName: str) -> list[object]:
    """
    A package and every public module under it that imports cleanly.
    """
    try:
        package = importlib.import_module(packageName)
    except Exception:
        return []
    modules = [package]
    for info in pkgutil.walk_packages(getattr(package, "__path__", []), packageName + "."):
        if any(part.startswith("_") or part == "test" for part in info.name.split(".")):
            continue
        try:
            modules.append(importlib.import_module(info.name))
        except Exception:
            continue
    return modules


def twistedEntries() -> set[tuple[str, str, str]]:
    """
    ``(name, role, uri)`` for Twisted's public modules, classes, functions and methods.
    """
    entries: set[tuple[str, str, str]] = set()
    for packageName in TWISTED_PACKAGES:
        for module in _walk(packageName):
            modname = module.__name__  # type: ignore[attr-defined]
            entries.add((modname, "py:module", f"api/{modname}.html"))
            exported = set(getattr(module, "__all__", ()))
            for name, obj in vars(module).items():
                if not _isPublic(name) or inspect.ismodule(obj):
                    continue
                home = getattr(obj, "__module__", modname) or modname
                # pydoctor documents a name where it is defined, or, when it is defined in
                # a private module and re-exported through __all__, where it is exported.
                private = any(part.startswith("_") for part in home.split("."))
                if home != modname and not (name in exported and private):
                    continue
                full = f"{modname}.{name}"
                if _isInterface(obj):
                    entries.add((full, "py:class", f"api/{full}.html"))
                    for member in obj.names():  # type: ignore[attr-defined]
                        entries.add((f"{full}.{member}", "py:method", f"api/{full}.html#{member}"))
                elif inspect.isclass(obj):
                    entries.add((full, _role(obj), f"api/{full}.html"))
                    for member, value in vars(obj).items():
                        if not _isPublic(member):
                            continue
                        role = "py:method" if inspect.isroutine(value) else "py:attribute"
                        entries.add((f"{full}.{member}", role, f"api/{full}.html#{member}"))
                else:
                    entries.add((full, _role(obj), f"api/{modname}.html#{name}"))
    return entries


def pythonEntries() -> set[tuple[str, str, str]]:
    """
    ``(name, role, uri)`` for the standard library modules we reference, and the builtins.
    """
    entries: set[tuple[str, str, str]] = set()
    for name, obj in vars(builtins).items():
        if not _isPublic(name):
            continue
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            entries.add((name, "py:exception", f"library/exceptions.html#{name}"))
        elif name in _STDTYPES:
            entries.add((name, "py:class", f"library/stdtypes.html#{name}"))
        elif inspect.isclass(obj):
            entries.add((name, "py:class", f"library/functions.html#{name}"))
        elif inspect.isroutine(obj):
            entries.add((name, "py:function", f"library/functions.html#{name}"))
    entries.add(("None", "py:data", "library/constants.html#None"))
    for modname in PYTHON_MODULES:
        module = importlib.import_module(modname)
        page = f"library/{modname}.html"
        entries.add((modname, "py:module", f"{page}#module-{modname}"))
        for name, obj in vars(module).items():
            if not _isPublic(name) or inspect.ismodule(obj):
                continue
            full = f"{modname}.{name}"
            entries.add((full, _role(obj), f"{page}#{full}"))
            if inspect.isclass(obj):
                for member, value in vars(obj).items():
                    if _isPublic(member):
                        role = "py:method" if inspect.isroutine(value) else "py:attribute"
                        entries.add((f"{full}.{member}", role, f"{page}#{full}.{member}"))
    return entries


def write(path: Path, project: str, version: str, entries: set[tuple[str, str, str]]) -> None:
    """
    Write a version-2 Sphinx inventory (``objects.inv`` format).
    """
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    ).encode()
    body = "".join(f"{name} {role} 1 {uri} -\n" for name, role, uri in sorted(entries))
    path.write_bytes(header + zlib.compress(body.encode()))


def main() -> None:
    """
    Write both inventories beside this script.
    """
    import platform

    import twisted

    write(HERE / "twisted.inv", "Twisted", twisted.__version__, twistedEntries())
    write(HERE / "python.inv", "Python", platform.python_version(), pythonEntries())


if __name__ == "__main__":
    main()

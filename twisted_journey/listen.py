# -*- test-case-name: tests.test_listen -*-
"""
The subset of Twisted's server endpoint strings that the stdlib fallbacks understand.

Stdlib only: the fallback servers import this module with Twisted absent.  The syntax is
Twisted's own (:func:`twisted.internet.endpoints.serverFromString`): fields separated by
``:``, keyword fields written ``name=value``, and ``\\`` escaping the next character, so
``tcp6:1234:interface=\\:\\:1`` means port 1234 on ``::1``.  Supported::

    tcp:PORT[:interface=ADDR][:backlog=N]        (interface defaults to all IPv4)
    tcp6:PORT[:backlog=N][:interface=ADDR]       (interface defaults to ::)
    unix:PATH[:mode=OCTAL][:backlog=N][:lockfile=0|1]
    udp:PORT[:interface=ADDR]                    (journey-mux: see parse_udp())

Anything else (``ssl:``, ``tls:``, ``systemd:``, ``haproxy:``...) raises
:class:`ListenError` naming what is supported; those need the Twisted engine.

The listen backlog defaults to :data:`DEFAULT_BACKLOG`, the system's maximum, rather than
Twisted's 50: a burst of clients past the backlog has its SYNs dropped and waits out TCP's
retry timers (1 s, 3 s, 7 s...).  :func:`with_backlog` gives a Twisted endpoint string the
same default, so both engines listen alike.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_BACKLOG",
    "SUPPORTED",
    "ListenError",
    "ListenSpec",
    "bind",
    "bind_all",
    "format_peer",
    "parse_listen",
    "parse_udp",
    "remove_socket_files",
    "with_backlog",
]

SUPPORTED = ("tcp", "tcp6", "unix")

# The fields of each kind in Twisted's positional order.
_FIELDS = {
    "tcp": ("port", "interface", "backlog"),
    "tcp6": ("port", "backlog", "interface"),
    "unix": ("address", "mode", "backlog", "lockfile"),
}

#: Where ``backlog`` is among the positional fields of the Twisted endpoint types that take
#: one (``tcp:PORT:INTERFACE:BACKLOG``, ``ssl:PORT:KEY:CERT:METHOD:INTERFACE:BACKLOG``...).
_BACKLOG_POSITION = {"tcp": 2, "tcp6": 1, "unix": 2, "ssl": 5, "tls": 2}

#: Endpoint types that wrap another endpoint string, given after their prefix.
_WRAPPERS = ("haproxy",)


def _system_backlog() -> int:
    """
    The system's maximum listen backlog: Linux's ``net.core.somaxconn`` (4096 by default
    since Linux 5.4; an administrator may raise it), else :data:`socket.SOMAXCONN`; never
    below nginx's 511 (the kernel lowers a larger request to its maximum) nor above 65535.
    """
    try:
        with open("/proc/sys/net/core/somaxconn", "rb") as f:
            value = int(f.read())
    except (OSError, ValueError):
        value = socket.SOMAXCONN
    return min(max(value, 511), 65535)


#: The listen backlog of every journey listener whose description gives none: the system
#: maximum (see ``_system_backlog()``; 4096 on a current Linux).
DEFAULT_BACKLOG = _system_backlog()


class ListenError(ValueError):
    """
    A listen description that cannot be used; ``str()`` is one sentence for a person.
    """


@dataclass(frozen=True)
class ListenSpec:
    """
    A parsed listen description.

    :ivar kind: ``"tcp"``, ``"tcp6"`` or ``"unix"``.
    :ivar port: TCP port (0 picks a free one); ``None`` for ``unix``.
    :ivar interface: the address to bind for TCP kinds.
    :ivar path: the socket path for ``unix``.
    :ivar mode: permission bits given to a ``unix`` socket file.
    :ivar backlog: the ``listen()`` queue length (:data:`DEFAULT_BACKLOG` unless given).
    :ivar lockfile: Twisted's ``PATH.lock`` pid-lock flag; accepted for compatibility, while
        :func:`bind` guards the path by refusing a socket that another server answers on.
    """

    kind: str
    port: int | None = None
    interface: str = ""
    path: str | None = None
    mode: int = 0o666
    backlog: int = DEFAULT_BACKLOG
    lockfile: bool = True

    @property
    def family(self) -> socket.AddressFamily:
        """
        The socket address family this description binds.
        """
        return {"tcp": socket.AF_INET, "tcp6": socket.AF_INET6}.get(self.kind, socket.AF_UNIX)

    def __str__(self) -> str:
        if self.kind == "unix":
            return f"unix:{self.path}"
        return f"{self.kind}:{self.port}:interface={self.interface}"


def _split(description: str) -> list[str | tuple[str, str]]:
    """
    Split ``description`` the way Twisted's endpoint tokenizer does.

    :return: positional fields as ``str`` and keyword fields as ``(name, value)``.
    """
    fields: list[str | tuple[str, str]] = []
    current: list[str] = []
    name: str | None = None
    chars = iter(description)
    for char in chars:
        if char == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise ListenError(f"listen description {description!r} ends with a lone backslash.")
            current.append(escaped)
        elif char == "=" and name is None:
            name, current = "".join(current), []
        elif char == ":":
            fields.append((name, "".join(current)) if name is not None else "".join(current))
            name, current = None, []
        else:
            current.append(char)
    fields.append((name, "".join(current)) if name is not None else "".join(current))
    return fields


def _integer(description: str, field: str, value: str, lowest: int, highest: int) -> int:
    """
    Parse one integer field, or raise :class:`ListenError` saying which field is wrong.
    """
    try:
        number = int(value, 8) if field == "mode" else int(value)
    except ValueError:
        number = None
    if number is None or not lowest <= number <= highest:
        raise ListenError(
            f"{field} {value!r} in listen description {description!r} is not "
            f"{'an octal number' if field == 'mode' else 'a whole number'} "
            f"from {lowest} to {highest}."
        )
    return number


def _values(description: str, kind: str, rest: str, names: Sequence[str]) -> dict[str, str]:
    """
    The fields of ``rest`` (a description after its ``kind:``) by name, positional
    fields taking ``names`` in order; :class:`ListenError` for unknown or repeated ones.
    """
    values: dict[str, str] = {}
    positional = 0
    for field in _split(rest) if rest else []:
        if isinstance(field, tuple):
            name, value = field
            if name not in names:
                raise ListenError(
                    f"{kind}: does not take {name!r} in listen description {description!r}; "
                    f"it takes {', '.join(names)}."
                )
        else:
            if positional >= len(names):
                raise ListenError(f"listen description {description!r} has too many fields.")
            name, value = names[positional], field
            positional += 1
        if name in values:
            raise ListenError(f"{name} is given twice in listen description {description!r}.")
        values[name] = value
    return values


def parse_udp(description: str) -> ListenSpec:
    """
    Parse a datagram listen description, ``udp:PORT[:interface=ADDR]`` (all IPv4
    interfaces by default; an IPv6 address such as ``\\:\\:1`` binds IPv6).

    :raises ListenError: for another kind, unknown fields or malformed values.
    """
    kind, _, rest = description.partition(":")
    if kind != "udp":
        raise ListenError(f"listen description {description!r} is not udp:PORT[:interface=ADDR].")
    values = _values(description, kind, rest, ("port", "interface"))
    if "port" not in values:
        raise ListenError(f"listen description {description!r} names no port.")
    return ListenSpec(
        kind,
        port=_integer(description, "port", values["port"], 0, 65535),
        interface=values.get("interface", ""),
    )


def parse_listen(description: str) -> ListenSpec:
    """
    Parse a listen description of the supported subset.

    :param description: e.g. ``"tcp:1234"``, ``"tcp6:0:interface=\\:\\:1"``, ``"unix:/run/j.sock"``.
    :raises ListenError: for unknown kinds, fields or malformed values.
    """
    kind, _, rest = description.partition(":")
    if kind not in _FIELDS:
        raise ListenError(
            f"listen description {description!r} is not supported here: this engine accepts only "
            f"{', '.join(k + ':' for k in SUPPORTED)} (the Twisted engine takes any endpoint string)."
        )
    values = _values(description, kind, rest, _FIELDS[kind])
    backlog = _integer(
        description, "backlog", values.get("backlog", str(DEFAULT_BACKLOG)), 1, 65535
    )
    if kind == "unix":
        path = values.get("address", "")
        if not path:
            raise ListenError(f"listen description {description!r} names no socket path.")
        return ListenSpec(
            kind,
            path=path,
            mode=_integer(description, "mode", values.get("mode", "666"), 0, 0o7777),
            backlog=backlog,
            lockfile=bool(_integer(description, "lockfile", values.get("lockfile", "1"), 0, 1)),
        )
    if "port" not in values:
        raise ListenError(f"listen description {description!r} names no port.")
    default_interface = "::" if kind == "tcp6" else ""
    return ListenSpec(
        kind,
        port=_integer(description, "port", values["port"], 0, 65535),
        interface=values.get("interface", default_interface),
        backlog=backlog,
    )


def with_backlog(description: str, backlog: int = DEFAULT_BACKLOG) -> str:
    """
    A Twisted server endpoint string with ``backlog=`` added when it gives none.

    Only the endpoint types with a listen queue of their own get one (``tcp:``, ``tcp6:``,
    ``unix:``, ``ssl:``, ``tls:``), also inside a wrapper (``haproxy:tcp:1234``); a
    backlog already given, by name or by position, is kept.  Anything else (``systemd:``,
    whose socket is listening already; an unknown plugin type) is returned as it is.

    >>> with_backlog("tcp:1234", 4096)
    'tcp:1234:backlog=4096'
    >>> with_backlog("haproxy:tcp:1234:backlog=7", 4096)
    'haproxy:tcp:1234:backlog=7'
    """
    kind, colon, rest = description.partition(":")
    if kind in _WRAPPERS and colon:
        return f"{kind}:{with_backlog(rest, backlog)}"
    position = _BACKLOG_POSITION.get(kind)
    if position is None or not colon:
        return description
    try:
        fields = _split(rest)
    except ListenError:
        return description  # malformed: Twisted's parser says what is wrong
    positional = [field for field in fields if isinstance(field, str)]
    named = {field[0] for field in fields if isinstance(field, tuple)}
    if "backlog" in named or len(positional) > position:
        return description
    return f"{description}:backlog={backlog}"


def bind(spec: ListenSpec) -> socket.socket:
    """
    Create, bind and listen on a socket for ``spec``, with the options a server wants.

    TCP sockets get ``SO_REUSEADDR`` (as Twisted sets); a ``unix`` path left behind by a
    dead server is removed first, but a live one is refused, as Twisted does.

    :raises ListenError: when the address cannot be bound, with the reason.
    """
    sock = socket.socket(spec.family, socket.SOCK_STREAM)
    try:
        if spec.kind == "unix":
            assert spec.path is not None
            _remove_stale_unix_socket(spec.path)
            sock.bind(spec.path)
            os.chmod(spec.path, spec.mode)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((spec.interface, spec.port))
        sock.listen(spec.backlog)
    except OSError as e:
        sock.close()
        raise ListenError(f"cannot listen on {spec}: {e.strerror or e}.") from None
    except BaseException:
        sock.close()
        raise
    return sock


def _remove_stale_unix_socket(path: str) -> None:
    """
    Remove ``path`` if it is a socket nobody listens on; refuse to touch a live one, or
    anything that is not a socket (a regular file, a symbolic link, whatever it points
    to, a FIFO, a directory): :class:`ListenError` saying what is there.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ListenError(
            f"cannot listen on unix:{path}: {_file_kind(mode)} is there, not a socket; "
            f"remove it or choose another path."
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError as e:
        if e.errno in (errno.ECONNREFUSED, errno.ENOENT):
            os.unlink(path)
            return
        raise
    else:
        raise ListenError(f"cannot listen on unix:{path}: another server is listening there.")
    finally:
        probe.close()


def _file_kind(mode: int) -> str:
    """
    What a file of ``mode`` (from ``lstat``) is, for a sentence.
    """
    kinds = [
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
    ]
    for check, kind in kinds:
        if check(mode):
            return kind
    return "a device file"


def bind_all(specs: Sequence[ListenSpec]) -> list[socket.socket]:
    """
    :func:`bind` every spec, or none: when one fails, the sockets already bound are
    closed (and their unix socket files removed) before the :class:`ListenError` goes on.
    """
    sockets: list[socket.socket] = []
    try:
        for spec in specs:
            sockets.append(bind(spec))
    except BaseException:
        for sock in sockets:
            sock.close()
        remove_socket_files(specs[: len(sockets)])
        raise
    return sockets


def remove_socket_files(specs: Iterable[ListenSpec]) -> None:
    """
    Remove the files of the ``unix`` sockets in ``specs`` that are still there: what a
    server does once it has stopped listening on them, as Twisted's unix ports do.
    """
    for spec in specs:
        if spec.kind == "unix" and spec.path:
            with contextlib.suppress(OSError):
                os.unlink(spec.path)


def format_peer(host: str | None, port: int | None) -> str:
    """
    A peer as ``host:port``, with an IPv6 host in brackets; a peer with no address
    (a ``unix:`` client) is ``unix``.

    >>> format_peer("::1", 80)
    '[::1]:80'
    """
    if not host:
        return "unix"
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"

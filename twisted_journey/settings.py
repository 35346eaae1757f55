# -*- test-case-name: tests.test_settings -*-
"""
Validation of the settings that every engine shares, stdlib only.

Both the twistd ``Options`` classes and the stdlib fallbacks' ``argparse`` parsers call
these functions, so a setting means the same thing, and is refused with the same
sentence, whichever engine reads it.  Each raises :class:`SettingError`, whose ``str()``
is one sentence for a person; the callers turn it into ``usage.UsageError`` or
``parser.error``.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "DEFAULT_BROADCAST_BUFFER",
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_GREETING",
    "DEFAULT_GREET_TIMEOUT",
    "DEFAULT_MAX_LINE_LENGTH",
    "DEFAULT_PEER_PREFIX",
    "DEFAULT_PROXY_TIMEOUT",
    "DEFAULT_ROTATE_KEEP",
    "GREET_DRAIN_LIMIT",
    "READ_SIZE",
    "ProxySettings",
    "ServerSettings",
    "SettingError",
    "argparse_type",
    "available_cores",
    "count",
    "greeting",
    "limit",
    "peer_network",
    "peer_prefix",
    "proxy_network",
    "seconds",
    "trusted_proxy",
    "worker_count",
]

DEFAULT_GREETING = b"Thank you for connecting\r\n"

#: seconds a greeting client has to take the whole greeting before it is dropped
DEFAULT_GREET_TIMEOUT = 30.0


#: ``--per-peer-prefix``: ``--max-per-peer`` counts IPv4 clients per address (/32: behind
#: NAT one address is many people, and a /24 can be many customers) and IPv6 clients per
#: /64, the smallest network one subscriber or LAN is given, inside which a host can
#: take any number of addresses.
DEFAULT_PEER_PREFIX = (32, 64)

#: ``--proxy-timeout``: seconds a connection to a ``haproxy:`` listener has to send its
#: whole PROXY header.  A proxy sends it at once, with the connection's first bytes.
DEFAULT_PROXY_TIMEOUT = 3.0

#: ``--max-line-length``: mux records a longer line cut to this many bytes, marked.
DEFAULT_MAX_LINE_LENGTH = 65536

#: ``--broadcast-buffer``: mux drops a broadcast client with this many bytes unread.
DEFAULT_BROADCAST_BUFFER = 1 << 20

#: ``--flush-interval``: mux writes buffered records at least this often, in seconds.
DEFAULT_FLUSH_INTERVAL = 1.0

#: ``--rotate-keep``: rotated data logs kept; the oldest go.
DEFAULT_ROTATE_KEEP = 10

#: Bytes a greeting client may send before the server stops reading them and resets the
#: connection: the greeting protocol reads nothing, but it drains what a client says so
#: that closing does not reset a connection whose greeting is still on its way.
GREET_DRAIN_LIMIT = 64 * 1024

#: Bytes the stdlib engines ask of one ``recv`` (or ``read``) on a socket.
READ_SIZE = 65536

_T = TypeVar("_T")

_PREFIX = re.compile(r"\s*(\d{1,3})\s*,\s*(\d{1,3})\s*")


class SettingError(ValueError):
    """
    A setting a person gave that cannot be used.
    """


def argparse_type(check: Callable[[str], _T]) -> Callable[[str], _T]:
    """
    An argparse ``type`` running ``check`` on an option's text: the value ``check``
    returns, or, when it raises :class:`SettingError`, argparse's one-line usage error
    with the error's sentence (without its full stop).
    """

    def convert(text: str) -> _T:
        try:
            return check(text)
        except SettingError as e:
            raise argparse.ArgumentTypeError(str(e).strip().rstrip(".")) from None

    return convert


def greeting(message: str | None = None, message_file: str | None = None) -> bytes:
    """
    The greeting bytes chosen by ``--message`` or ``--message-file``.

    :param message: text, encoded UTF-8 with ``\\r\\n`` appended.
    :param message_file: a path whose bytes are sent exactly as they are.
    :return: :data:`DEFAULT_GREETING` when neither is given.
    :raises SettingError: when both are given, or the file cannot be read.
    """
    if message is not None and message_file is not None:
        raise SettingError("give --message or --message-file, not both.")
    if message_file is not None:
        try:
            with open(message_file, "rb") as f:
                return f.read()
        except OSError as e:
            raise SettingError(
                f"cannot read --message-file {message_file!r}: {e.strerror or e}."
            ) from None
    if message is not None:
        return message.encode("utf-8", "surrogateescape") + b"\r\n"
    return DEFAULT_GREETING


def limit(name: str, value: str | int | None) -> int | None:
    """
    A connection limit: a whole number of at least 1, or ``None`` for no limit.

    :param name: the option's name, for the error sentence (e.g. ``"--max-per-peer"``).
    """
    return None if value is None else _whole(name, value, 1)


def seconds(name: str, value: str | float | None) -> float | None:
    """
    A duration in seconds: a finite number above 0, or ``None`` for none.

    :param name: the option's name, for the error sentence (e.g. ``"--timeout"``).
    """
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (number > 0 and math.isfinite(number)):
        raise SettingError(f"{name} must be a number of seconds above 0, not {value!r}.")
    return number


def peer_prefix(name: str, value: str | tuple[int, int] | None) -> tuple[int, int]:
    """
    The prefix lengths a per-peer limit counts clients by: ``"V4,V6"``, an IPv4 prefix
    length from 1 to 32 and an IPv6 one from 1 to 128; :data:`DEFAULT_PEER_PREFIX` for
    ``None``.

    :param name: the option's name, for the error sentence (``"--per-peer-prefix"``).
    """
    if value is None:
        return DEFAULT_PEER_PREFIX
    if isinstance(value, tuple):
        v4, v6 = value
    else:
        match = _PREFIX.fullmatch(value)
        v4, v6 = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if not (1 <= v4 <= 32 and 1 <= v6 <= 128):
        raise SettingError(
            f"{name} must be two prefix lengths, V4,V6 (IPv4 from 1 to 32, IPv6 from 1 to "
            f"128, e.g. 32,64), not {value!r}."
        )
    return v4, v6


def peer_network(host: str, prefixes: tuple[int, int] = DEFAULT_PEER_PREFIX) -> str:
    """
    The network a per-peer limit counts ``host`` under: the host itself for a full-length
    prefix, else ``network/length`` (``2001:db8:1:2::/64``).  An IPv4-mapped IPv6 address
    (``::ffff:1.2.3.4``, from a dual-stack listener) counts as its IPv4 address; an IPv6
    zone (``%eth0``) is ignored; a host that is not an IP address is its own network.
    """
    v4, v6 = prefixes
    if v4 == 32 and ":" not in host:
        return host  # the common case, without a parse: hosts come from the kernel
    address = host.partition("%")[0]
    try:
        if ":" in address:
            packed = socket.inet_pton(socket.AF_INET6, address)
            if packed[:12] == _MAPPED:
                packed, bits, family = packed[12:], v4, socket.AF_INET
            else:
                bits, family = v6, socket.AF_INET6
        else:
            packed, bits, family = socket.inet_pton(socket.AF_INET, address), v4, socket.AF_INET
    except OSError:
        return host
    size = 8 * len(packed)
    if bits >= size:
        return socket.inet_ntop(family, packed)
    number = int.from_bytes(packed, "big") >> (size - bits) << (size - bits)
    return f"{socket.inet_ntop(family, number.to_bytes(len(packed), 'big'))}/{bits}"


_MAPPED = bytes(10) + b"\xff\xff"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ProxySettings:
    """
    How a ``haproxy:`` listener reads PROXY headers.

    :ivar timeout: seconds a connection has to send its whole header (``--proxy-timeout``).
    :ivar trusted: the networks proxies may connect from (``--proxy-from``); empty: any.
    """

    timeout: float = DEFAULT_PROXY_TIMEOUT
    trusted: tuple[Network, ...] = ()


@dataclass(frozen=True)
class ServerSettings:
    """
    What a journey server's options say, parsed once by its plugin
    (:class:`twisted_journey.tap.common.ServerOptions` sets it as ``options.settings``) and
    handed down to the services that build its listeners, its workers and its metrics,
    which never read the options themselves.  A worker of ``--workers N`` serves with its
    own copy (:meth:`twisted_journey.workers.worker.WorkerContext.serverSettings`).

    :ivar listen: the endpoint strings to listen on (``--listen``), in order.
    :ivar maxConnections: connections open at once before clients are refused
        (``--max-connections``), or ``None`` for no limit.
    :ivar maxPerPeer: connections one host may hold (``--max-per-peer``), or ``None``.
    :ivar perPeerPrefix: the IPv4 and IPv6 prefix lengths ``maxPerPeer`` counts one host
        by (``--per-peer-prefix``).
    :ivar timeout: seconds after which a client is dropped (``--timeout``; what it
        measures is the tool's), or ``None`` for never.
    :ivar quiet: log no event per connection (``--quiet``).
    :ivar proxy: how ``haproxy:`` listeners read PROXY headers.
    :ivar workers: processes serving the listening sockets (``--workers``).
    :ivar metrics: the endpoint string to serve Prometheus metrics on (``--metrics``),
        or ``None``.
    :ivar output: the data log the server writes (journey-mux's ``--output``: a path,
        or ``-`` for standard output), or ``None`` for a server that writes none.
    """

    listen: tuple[str, ...] = ()
    maxConnections: int | None = None
    maxPerPeer: int | None = None
    perPeerPrefix: tuple[int, int] = DEFAULT_PEER_PREFIX
    timeout: float | None = None
    quiet: bool = False
    proxy: ProxySettings = ProxySettings()
    workers: int = 1
    metrics: str | None = None
    output: str | None = None

    @property
    def outputPath(self) -> str | None:
        """
        :attr:`output` when it names a file, else ``None`` (no data log, or standard
        output).
        """
        return None if self.output is None or self.output == "-" else self.output


def proxy_network(name: str, value: str) -> Network:
    """
    A network a trusted proxy connects from: ``10.0.0.0/8``, ``2001:db8::/32``, or one
    address (``127.0.0.1``, ``::1``).

    :param name: the option's name, for the error sentence (``"--proxy-from"``).
    """
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise SettingError(
            f"{name} must be an IP address or network (e.g. 10.0.0.0/8, ::1), not {value!r}."
        ) from None


def trusted_proxy(host: str, networks: tuple[Network, ...]) -> bool:
    """
    Whether a peer at ``host`` is in one of ``networks``; an IPv4-mapped IPv6 address
    (from a dual-stack listener) is its IPv4 address, an IPv6 zone is ignored, and a host
    that is not an IP address is in none.
    """
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def count(name: str, value: str | int | None) -> int | None:
    """
    A count that may be zero (retries, redirects): a whole number of at least 0, or
    ``None`` for none given.

    :param name: the option's name, for the error sentence (e.g. ``"--retry"``).
    """
    return None if value is None else _whole(name, value, 0)


def _whole(name: str, value: str | int, least: int) -> int:
    """
    ``value`` as a whole number of at least ``least``.

    :raises SettingError: otherwise, naming the option ``name``.
    """
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = least - 1
    if number < least:
        raise SettingError(f"{name} must be a whole number of at least {least}, not {value!r}.")
    return number


def available_cores() -> int:
    """
    The number of cores this process may run on (its CPU affinity, where the system has
    one, else ``os.cpu_count()``).
    """
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def worker_count(name: str, value: str | int) -> int:
    """
    ``--workers``: a whole number of at least 1, or ``auto`` for one per core
    (:func:`available_cores`).

    :param name: the option's name, for the error sentence (``"--workers"``).
    """
    if value == "auto":
        return available_cores()
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise SettingError(f"{name} must be a whole number of at least 1, or auto, not {value!r}.")
    return number

# -*- test-case-name: tests.test_mux_server -*-
"""
What both engines need of the operating system's sockets and descriptors, stdlib only.
"""

from __future__ import annotations

import resource

__all__ = ["RESERVED_DESCRIPTORS", "descriptor_ceiling"]

#: descriptors kept free under ``ulimit -n`` for the data log's reopening and rotation,
#: the log file, the event loop's own (a reactor's waker, a signal wake-up pair) and the
#: odd file: accepting stops above this many in use
RESERVED_DESCRIPTORS = 8


def descriptor_ceiling() -> int:
    """
    The highest descriptor number a client may get before a server stops accepting: the
    soft ``RLIMIT_NOFILE`` less :data:`RESERVED_DESCRIPTORS`, at least 1, and ``1 << 30``
    when there is no limit.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 30
    return max(soft - RESERVED_DESCRIPTORS, 1)

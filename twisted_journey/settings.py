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

import math

__all__ = [
    "DEFAULT_GREETING",
    "DEFAULT_GREET_TIMEOUT",
    "SettingError",
    "greeting",
    "limit",
    "seconds",
]

DEFAULT_GREETING = b"Thank you for connecting\r\n"

#: seconds a greeting client has to take the whole greeting before it is dropped
DEFAULT_GREET_TIMEOUT = 30.0


class SettingError(ValueError):
    """
    A setting a person gave that cannot be used.
    """


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
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise SettingError(f"{name} must be a whole number of at least 1, not {value!r}.")
    return number


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

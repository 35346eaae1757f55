"""
Chapter 6: the chain of ch6_callbacks.py as a coroutine.  ``await`` a Deferred to get its
result (or have its failure raised as an exception); Deferred.fromCoroutine turns the
coroutine into a Deferred, which is what react() waits for.

Run: python ch6_coroutine.py
"""

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater, react


async def chain(reactor, text):
    print(f"chain for {text!r}:")
    received = await deferLater(reactor, 0.1, lambda: text)  # the reactor runs meanwhile
    try:
        result = int(received) * 2
    except ValueError as e:  # the errback, written as an except clause
        print(f"  failed: {e}")
        result = -1
    print(f"  result: {result}")
    return result


async def main(reactor):
    first = await chain(reactor, "21")
    second = await chain(reactor, "ten")
    print(f"both done: {first}, {second}")


# react() starts the reactor, calls the function with it, and stops the reactor when the
# Deferred it returned fires: exit status 0, or 1 (the failure logged) if it failed.
react(lambda reactor: Deferred.fromCoroutine(main(reactor)))

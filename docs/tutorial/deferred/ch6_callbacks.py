"""
Chapter 6: a Deferred by hand.  A result that arrives later, callbacks that transform
it, and an error that travels down the chain to the first errback.

Run: python ch6_callbacks.py
"""

from twisted.internet.defer import Deferred
from twisted.internet.task import react


def receive(reactor, text):
    """A Deferred that fires a moment later with text, as if it came from the network."""
    d = Deferred()
    reactor.callLater(0.1, d.callback, text)
    return d


def parse(text):
    print(f"  parse({text!r})")
    return int(text)  # "ten" raises ValueError: the chain switches to the errback path


def double(number):
    print(f"  double({number})")
    return number * 2


def report(failure):
    print(f"  errback got {failure.type.__name__}: {failure.getErrorMessage()}")
    return -1  # a value returned by an errback puts the chain back on the callback path


def show(result):
    print(f"  result: {result}")


def chain(reactor, text):
    print(f"chain for {text!r}:")
    d = receive(reactor, text)
    d.addCallback(parse)
    d.addCallback(double)  # skipped when parse raised
    d.addErrback(report)  # skipped when nothing failed
    d.addCallback(show)
    return d


def main(reactor):
    d = chain(reactor, "21")
    # A callback that returns a Deferred pauses this chain until that one fires.
    d.addCallback(lambda _: chain(reactor, "ten"))
    return d


react(main)

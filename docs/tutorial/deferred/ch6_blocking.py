"""
Chapter 6: never block the reactor.  A timer ticks every 0.05 s; while a blocking call
runs in the reactor's thread no tick happens, and nothing else does either: no
connection is accepted, no byte read.  The same call in a thread leaves the reactor free.

Run: python ch6_blocking.py
"""

import time

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall, deferLater, react
from twisted.internet.threads import deferToThread

ticks = 0


def tick():
    global ticks
    ticks += 1


async def main(reactor):
    LoopingCall(tick).start(0.05)
    await deferLater(reactor, 0.2, lambda: None)  # let the timer start

    before = ticks
    time.sleep(0.5)  # blocks the reactor's thread: wrong
    print(f"while time.sleep(0.5) ran in the reactor's thread: {ticks - before} ticks")

    before = ticks
    await deferToThread(time.sleep, 0.5)  # the same call in a thread: right
    print(f"while time.sleep(0.5) ran in another thread: {ticks - before} ticks")


react(lambda reactor: Deferred.fromCoroutine(main(reactor)))

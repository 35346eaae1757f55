"""Chapter 6: stream the body to disk through deliverBody: constant memory."""

import sys

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.internet.task import react
from twisted.web.client import Agent, ResponseDone


class SaveBody(Protocol):
    def __init__(self, f):
        self.f = f
        self.done = Deferred()

    def dataReceived(self, data):
        self.f.write(data)  # one chunk at a time, as it arrives

    def connectionLost(self, reason):
        # ResponseDone: complete.  PotentialDataLoss or ResponseFailed: maybe cut short!
        self.done.callback(reason.check(ResponseDone) is not None)


async def main(reactor, url, filename):
    response = await Agent(reactor).request(b"GET", url.encode("ascii"))
    with open(filename, "wb") as f:
        receiver = SaveBody(f)
        response.deliverBody(receiver)
        complete = await receiver.done
    print("complete" if complete else "INCOMPLETE (and the file is already there)")


if len(sys.argv) != 3:
    sys.exit(f"usage: python {sys.argv[0]} URL FILENAME")
react(lambda reactor: Deferred.fromCoroutine(main(reactor, *sys.argv[1:3])))

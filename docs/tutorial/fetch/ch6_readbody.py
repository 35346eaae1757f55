"""Chapter 6: Twisted's Agent; readBody buffers the whole body, like ch2_urlopen.py."""

import sys
import warnings

from twisted.internet.defer import Deferred
from twisted.internet.task import react
from twisted.web.client import Agent, readBody

# Twisted's readBody warns "Using readBody with a transport that does not have an
# abortConnection method" whenever the whole body arrived with the headers (any small
# response): the transport it then sees is a proxy without that method.  Harmless here.
warnings.filterwarnings("ignore", "Using readBody with a transport", DeprecationWarning)


async def main(reactor, url, filename):
    response = await Agent(reactor).request(b"GET", url.encode("ascii"))
    data = await readBody(response)
    with open(filename, "wb") as f:
        f.write(data)
    print(f"{len(data)} bytes, status {response.code}")


if len(sys.argv) != 3:
    sys.exit(f"usage: python {sys.argv[0]} URL FILENAME")
react(lambda reactor: Deferred.fromCoroutine(main(reactor, *sys.argv[1:3])))

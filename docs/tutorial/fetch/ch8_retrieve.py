"""Chapter 8: twisted_journey.fetch.retrieve: urlretrieve's shape, ch6_stream.py's streaming, safe."""

import sys

from twisted.internet.defer import Deferred
from twisted.internet.task import react

from twisted_journey.fetch import retrieve


async def main(reactor, url, filename):
    filename, headers = await retrieve(url, filename, reactor=reactor)
    print(f"saved {filename} ({headers.getRawHeaders(b'content-type')})")


if len(sys.argv) != 3:
    sys.exit(f"usage: python {sys.argv[0]} URL FILENAME")
react(lambda reactor: Deferred.fromCoroutine(main(reactor, *sys.argv[1:3])))

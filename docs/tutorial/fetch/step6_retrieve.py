"""Step 6: twisted_journey.fetch.retrieve: urlretrieve's shape, step 5's streaming, safe."""

import sys

from twisted.internet.defer import Deferred
from twisted.internet.task import react

from twisted_journey.fetch import retrieve


async def main(reactor, url, filename):
    filename, headers = await retrieve(url, filename, reactor=reactor)
    print(f"saved {filename} ({headers.getRawHeaders(b'content-type')})")


react(lambda reactor: Deferred.fromCoroutine(main(reactor, *sys.argv[1:3])))

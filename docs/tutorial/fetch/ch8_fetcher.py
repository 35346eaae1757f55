"""Chapter 8: many URLs, four at a time, with retries; branch on the kind of failure."""

import os
import sys

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import react

from twisted_journey.fetch import Fetcher, FetchSettings, HTTPStatusError, TruncatedBody


async def main(reactor, directory, *urls):
    fetcher = Fetcher(reactor, settings=FetchSettings(parallel=4, retries=2))

    async def one(url):
        try:
            result = await fetcher.retrieve(url, outputDir=directory)
            print(f"saved {result.filename} ({result.size} bytes)")
        except HTTPStatusError as e:
            print(f"{url}: HTTP {e.status}")
        except TruncatedBody as e:
            print(f"{url}: {e}")

    await gatherResults([Deferred.fromCoroutine(one(url)) for url in urls])
    await fetcher.close()


if len(sys.argv) < 3 or not os.path.isdir(sys.argv[1]):
    sys.exit(f"usage: python {sys.argv[0]} DIRECTORY URL... (DIRECTORY must exist)")
react(lambda reactor: Deferred.fromCoroutine(main(reactor, *sys.argv[1:])))

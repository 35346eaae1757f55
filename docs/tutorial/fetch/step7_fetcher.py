"""Step 7: many URLs, four at a time, with retries; branch on the kind of failure."""

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


react(lambda reactor: Deferred.fromCoroutine(main(reactor, *sys.argv[1:])))

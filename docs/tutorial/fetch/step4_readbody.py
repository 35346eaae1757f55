"""Step 4: Twisted's Agent; readBody buffers the whole body, like step 1."""

import sys

from twisted.internet.defer import Deferred
from twisted.internet.task import react
from twisted.web.client import Agent, readBody


async def main(reactor, url, filename):
    response = await Agent(reactor).request(b"GET", url.encode("ascii"))
    data = await readBody(response)
    with open(filename, "wb") as f:
        f.write(data)
    print(f"{len(data)} bytes, status {response.code}")


react(lambda reactor: Deferred.fromCoroutine(main(reactor, *sys.argv[1:3])))

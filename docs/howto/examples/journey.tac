"""
One twistd application serving the greeting and the logging server, built from the
plugins' own options (so it takes exactly what ``--help`` documents), plus a greeting
factory of our own on another port.

Run: twistd -ny journey.tac  (JOURNEY_BASE_PORT picks the first of three ports, default 1234)
"""

import os

from twisted.application import service, strports

from twisted_journey.greet import GreetFactory
from twisted_journey.tap import greet, mux

base = int(os.environ.get("JOURNEY_BASE_PORT", "1234"))
application = service.Application("journey")

greetOptions = greet.Options()
greetOptions.parseOptions(["--listen", f"tcp:{base}:interface=127.0.0.1", "--message", "Hello"])
greet.makeService(greetOptions).setServiceParent(application)

muxOptions = mux.Options()
muxOptions.parseOptions(["--listen", f"tcp:{base + 1}:interface=127.0.0.1", "--output", "data.log"])
mux.makeService(muxOptions).setServiceParent(application)

# The factory alone, for when you build the service yourself.
ours = GreetFactory(b"Hello from my own service\r\n", quiet=True, maxConnections=100)
strports.service(f"tcp:{base + 2}:interface=127.0.0.1", ours).setServiceParent(application)

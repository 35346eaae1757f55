"""
One twistd application serving the greeting and the logging server, built from the
plugins' own options (so it takes exactly what ``--help`` documents), plus a greeting
factory of our own on another port.

Run: twistd -ny journey.tac
(ports 1234, 1235 and 1236 on 127.0.0.1; GREET_PORT, MUX_PORT and OWN_PORT change them)
"""

import os

from twisted.application import service, strports

from twisted_journey.greet import GreetFactory
from twisted_journey.tap import greet, mux

greetPort = os.environ.get("GREET_PORT", "1234")
muxPort = os.environ.get("MUX_PORT", "1235")
ownPort = os.environ.get("OWN_PORT", "1236")
application = service.Application("journey")

greetOptions = greet.Options()
greetOptions.parseOptions(["--listen", f"tcp:{greetPort}:interface=127.0.0.1", "--message", "Hello"])
greet.makeService(greetOptions).setServiceParent(application)

muxOptions = mux.Options()
muxOptions.parseOptions(["--listen", f"tcp:{muxPort}:interface=127.0.0.1", "--output", "data.log"])
mux.makeService(muxOptions).setServiceParent(application)

# The factory alone, for when you build the service yourself.
ours = GreetFactory(b"Hello from my own service\r\n", quiet=True, maxConnections=100)
strports.service(f"tcp:{ownPort}:interface=127.0.0.1", ours).setServiceParent(application)

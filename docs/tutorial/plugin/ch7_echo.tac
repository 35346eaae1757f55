"""
Chapter 7, step 2: an application file.  twistd runs the module and looks for one name,
``application``: the root of a tree of services, which twistd starts (and stops, on
SIGTERM) with the reactor.

Run, from this directory: PYTHONPATH=. twistd -n -y ch7_echo.tac
(ECHO_LISTEN=tcp:PORT:interface=127.0.0.1 listens elsewhere)
"""

import os

from twisted.application import service, strports

from echoplugin.protocol import EchoFactory

application = service.Application("echo")
listen = os.environ.get("ECHO_LISTEN", "tcp:1237:interface=127.0.0.1")
server = strports.service(listen, EchoFactory(prefix=b"echo: "))
server.setServiceParent(application)

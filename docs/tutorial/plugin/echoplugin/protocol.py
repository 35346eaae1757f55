"""
Chapter 7, step 1: the protocol and its factory, nothing else: no reactor, no port, no
command line.  Configuration (the prefix) lives on the factory.
"""

from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver


class EchoLine(LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line):
        self.sendLine(self.factory.prefix + line)


class EchoFactory(Factory):
    protocol = EchoLine

    def __init__(self, prefix=b""):
        self.prefix = prefix

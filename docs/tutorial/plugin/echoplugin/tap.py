"""
Chapter 7, step 3: the plugin's half that does the work: Options for its command line,
makeService to build the service from them.  twistd calls both; nothing here starts the
reactor or imports it.
"""

from twisted.application import strports
from twisted.python import usage

from echoplugin.protocol import EchoFactory


class Options(usage.Options):
    synopsis = "[--listen ENDPOINT] [--prefix TEXT]"
    longdesc = "Echo every line a client sends, after a prefix."
    optParameters = [
        ["listen", "l", "tcp:1237:interface=127.0.0.1", "Endpoint to listen on."],
        ["prefix", "p", "echo: ", "Text put before every echoed line."],
    ]

    def postOptions(self):
        if "\n" in self["prefix"]:
            raise usage.UsageError("--prefix must be a single line.")


def makeService(options):
    return strports.service(options["listen"], EchoFactory(options["prefix"].encode()))

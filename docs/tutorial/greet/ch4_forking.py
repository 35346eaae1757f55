"""
Chapter 4: many clients at once, a process each: ForkingMixIn forks a child per
connection, which runs the handler and exits; the parent reaps finished children.

Run: python ch4_forking.py [PORT]
"""

import os
import sys
from socketserver import ForkingMixIn, StreamRequestHandler, TCPServer


class Server(ForkingMixIn, TCPServer):
    allow_reuse_address = True


class Handler(StreamRequestHandler):
    def handle(self):
        # This runs in the child: its own copy of the parent's memory, its own pid.
        print("Got connection from", self.client_address, "in process", os.getpid(), flush=True)
        self.wfile.write(b"Thank you for connecting\r\n")


port = int(sys.argv[1]) if len(sys.argv) > 1 else 1234
Server(("127.0.0.1", port), Handler).serve_forever()

"""
Chapter 3: the same server with socketserver.  The framework owns the accept loop; we write
only the handler.

Run: python ch3_socketserver.py [PORT]
"""

import sys
from socketserver import StreamRequestHandler, TCPServer


class Handler(StreamRequestHandler):
    def handle(self):
        print("Got connection from", self.client_address)
        self.wfile.write(b"Thank you for connecting\r\n")


port = int(sys.argv[1]) if len(sys.argv) > 1 else 1234
TCPServer.allow_reuse_address = True
TCPServer(("127.0.0.1", port), Handler).serve_forever()

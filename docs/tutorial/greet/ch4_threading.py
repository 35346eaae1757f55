"""
Chapter 4: many clients at once, a thread each (ch4_forking.py: a process each).

Run: python ch4_threading.py [PORT]
"""

import sys
from socketserver import StreamRequestHandler, TCPServer, ThreadingMixIn


class Server(ThreadingMixIn, TCPServer):
    allow_reuse_address = True
    daemon_threads = True


class Handler(StreamRequestHandler):
    def handle(self):
        print("Got connection from", self.client_address)
        self.wfile.write(b"Thank you for connecting\r\n")


port = int(sys.argv[1]) if len(sys.argv) > 1 else 1234
Server(("127.0.0.1", port), Handler).serve_forever()

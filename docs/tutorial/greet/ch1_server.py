"""
Chapter 1: the book's socket server.  One client at a time, forever.

Run: python ch1_server.py [PORT]
"""

import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 1234
with socket.socket() as server:
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(5)
    while True:
        client, address = server.accept()
        print("Got connection from", address)
        client.sendall(b"Thank you for connecting\r\n")
        client.close()

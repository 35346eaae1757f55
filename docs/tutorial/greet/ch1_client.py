"""
Chapter 1: the book's socket client.

Run: python ch1_client.py [HOST] [PORT]
"""

import socket
import sys

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 1234
with socket.create_connection((host, port)) as s:
    while data := s.recv(1024):
        sys.stdout.buffer.write(data)

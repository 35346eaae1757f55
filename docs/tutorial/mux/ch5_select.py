"""
Chapter 5: the book's select() server -- many clients at once, one thread.

    python ch5_select.py PORT
"""

import select
import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 1235
listener = socket.create_server(("127.0.0.1", port))
listener.setblocking(False)
peers = {}  # socket -> "host:port"

while True:
    readable, _, _ = select.select([listener, *peers], [], [])
    for sock in readable:
        if sock is listener:
            client, (host, client_port) = listener.accept()
            client.setblocking(False)
            peers[client] = f"{host}:{client_port}"
            print(f"Got connection from {peers[client]}", flush=True)
            continue
        data = sock.recv(4096)
        if not data:  # the client closed: forget it
            print(f"{peers.pop(sock)} closed", flush=True)
            sock.close()
            continue
        # repr() shows control bytes escaped: never print what a client sends raw.
        print(f"{peers[sock]} {data!r}", flush=True)

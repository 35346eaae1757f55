"""
Chapter 5: the same server on poll(), which has no 1024-descriptor ceiling, now
recording whole lines: a recv() returns whatever arrived, so a line may come in pieces.

    python ch5_poll.py PORT
"""

import select
import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 1235
listener = socket.create_server(("127.0.0.1", port))
listener.setblocking(False)
poller = select.poll()
poller.register(listener, select.POLLIN)
clients = {}  # fd -> [socket, "host:port", bytes of an unfinished line]

while True:
    for fd, _event in poller.poll():
        if fd == listener.fileno():
            client, (host, client_port) = listener.accept()
            client.setblocking(False)
            clients[client.fileno()] = [client, f"{host}:{client_port}", b""]
            print(f"Got connection from {host}:{client_port}", flush=True)
            poller.register(client, select.POLLIN)
            continue
        sock, peer, pending = clients[fd]
        data = sock.recv(4096)
        if not data:
            if pending:  # nothing is lost: the unterminated end is printed too
                print(f"{peer} {pending!r} (partial)", flush=True)
            poller.unregister(fd)
            del clients[fd]
            sock.close()
            continue
        *lines, clients[fd][2] = (pending + data).split(b"\n")
        for line in lines:
            print(f"{peer} {line!r}", flush=True)

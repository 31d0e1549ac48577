"""A TCP proxy on loopback that can hang or go down. ``freeze`` stops forwarding without
closing anything (the connections it holds stay open and silent for good, and new ones are
taken and left silent), ``thaw`` forwards new connections again: what a hung pooler, load
balancer or NAT does to a client that has no deadline of its own. ``down`` closes every
connection and resets new ones (an endpoint that is gone), ``up`` forwards again."""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class HangingProxy:
    def __init__(self, upstream: tuple[str, int], port: int = 0) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._frozen = False
        self._down = False
        self._stop = threading.Event()
        self._held: list[socket.socket] = []  # clients left silent: open until the end
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._clients: set[socket.socket] = set()
        self._all: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True, name="proxy")
        self._thread.start()

    def freeze(self) -> None:
        with self._lock:
            self._frozen = True
            self._held.extend(s for s in self._pairs if s in self._clients)
            self._pairs.clear()

    def thaw(self) -> None:
        with self._lock:
            self._frozen = False

    def down(self) -> None:
        with self._lock:
            self._down = True

    def up(self) -> None:
        with self._lock:
            self._down = False

    def held_still_open(self) -> int:
        """Connections left silent whose client has not closed its end (what the client
        sent them is read and dropped, to get to the end of the stream)."""
        still = 0
        with self._lock:
            held = list(self._held)
        for sock in held:
            try:
                sock.setblocking(False)
                while sock.recv(65536):
                    pass
            except BlockingIOError:
                still += 1  # no end of stream: the client still holds it open
            except OSError:
                pass  # reset by the client: closed
        return still

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        while not self._stop.is_set():
            with self._lock:
                gone = list(self._pairs) if self._down else []
                if self._down:
                    self._pairs.clear()
            for end in gone:  # down: every connection closed
                selector.unregister(end)
                end.close()
            for key, _ in selector.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    self._accept(selector)
                    continue
                if sock.fileno() == -1:  # closed with its peer earlier in this round
                    continue
                with self._lock:
                    peer = self._pairs.get(sock)
                if peer is None:  # frozen: no longer forwarded (the data stays unread)
                    selector.unregister(sock)
                    continue
                try:
                    data = sock.recv(65536)
                    if data:
                        peer.sendall(data)
                        continue
                except OSError:
                    pass
                with self._lock:  # one end closed: close both (unless frozen meanwhile)
                    ends = [end for end in (sock, peer) if self._pairs.pop(end, None)]
                for end in ends:
                    selector.unregister(end)
                    end.close()
        selector.close()

    def _accept(self, selector: selectors.BaseSelector) -> None:
        client, _ = self._listener.accept()
        self._all.append(client)
        with self._lock:
            if self._down:  # reset at once
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                return
            if self._frozen:
                self._held.append(client)
                return
        try:
            server = socket.create_connection(self._upstream, timeout=2)
        except OSError:
            client.close()
            return
        self._all.append(server)
        with self._lock:
            self._clients.add(client)
            self._pairs[client] = server
            self._pairs[server] = client
        selector.register(client, selectors.EVENT_READ)
        selector.register(server, selectors.EVENT_READ)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            for sock in self._all:
                sock.close()


@contextmanager
def hanging_proxy(upstream: tuple[str, int], port: int = 0) -> Iterator[HangingProxy]:
    proxy = HangingProxy(upstream, port)
    try:
        yield proxy
    finally:
        proxy.close()

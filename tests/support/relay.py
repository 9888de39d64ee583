"""A TCP relay that records what clients send, and can die silently."""

from __future__ import annotations

import socket
import threading


class Relay:
    """Forwards 127.0.0.1:``port`` to ``target_port``; keeps every byte clients sent.

    ``freeze()`` stops forwarding in both directions without closing anything:
    a connection that died silently, as a lost network path looks to its ends.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.sent = bytearray()
        self.openings: list[bytes] = []  # each connection's first bytes from the client
        self.frozen = threading.Event()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> Relay:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                downstream, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                downstream.close()
                continue
            with self._lock:
                self._sockets += [downstream, upstream]
            for source, sink, record in ((downstream, upstream, True),
                                         (upstream, downstream, False)):
                threading.Thread(target=self._pump, args=(source, sink, record),
                                 daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        source.settimeout(0.2)
        first = record
        while not self._stop.is_set():
            if self.frozen.is_set():
                self._stop.wait(0.05)
                continue
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            if self.frozen.is_set():  # arrived as the path died: lost with it
                continue
            if record:
                with self._lock:
                    self.sent += data
                    if first:
                        self.openings.append(data[:8])
                first = False
            try:
                sink.sendall(data)
            except OSError:
                break
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def freeze(self) -> None:
        self.frozen.set()

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()
        self._thread.join(timeout=5)

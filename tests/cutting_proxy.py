"""A TCP proxy that cuts connections mid-response: forced disconnects for SSE readers.

Each connection is cut after a random number of response bytes until ``cuts`` cuts were made;
after that it relays faithfully. The cut lands anywhere, in the middle of a frame too.
"""

from __future__ import annotations

import random
import socket
import threading
from contextlib import suppress

BUFFER = 4096


class CuttingProxy:
    def __init__(
        self, upstream: tuple[str, int], cuts: int, min_bytes: int = 200, max_bytes: int = 2000, seed: int = 8
    ) -> None:
        self.upstream = upstream
        self.remaining_cuts = cuts
        self.cuts = 0
        self.connections = 0
        self.random = random.Random(seed)
        self.min_bytes, self.max_bytes = min_bytes, max_bytes
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                budget = None
                if self.remaining_cuts > 0:
                    self.remaining_cuts -= 1
                    budget = self.random.randint(self.min_bytes, self.max_bytes)
            threading.Thread(target=self._serve, args=(client, budget), daemon=True).start()

    def _serve(self, client: socket.socket, budget: int | None) -> None:
        upstream = socket.create_connection(self.upstream)
        threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
        self._pump(upstream, client, budget)

    def _pump(self, source: socket.socket, sink: socket.socket, budget: int | None) -> None:
        sent = 0
        try:
            while True:
                data = source.recv(BUFFER)
                if not data:
                    break
                if budget is not None and sent + len(data) >= budget:
                    sink.sendall(data[: budget - sent])
                    with self.lock:
                        self.cuts += 1
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self.stopping = True
        self.server.close()

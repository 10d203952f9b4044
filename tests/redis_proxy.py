"""A TCP proxy in front of a real redis-server for fault injection: it can be cut (Redis unreachable
while it keeps its data, as in a network partition) and it can drop a reply (the command ran,
the client never hears: it times out and redis-py sends the command again).

asyncio on a thread of its own, so a test drives it from synchronous code. By hand: the fault
injection needs a proxy that toggles these two faults mid-test, which no library here offers.
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import suppress

BUFFER = 65536


class RedisProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.down = False
        self.replies_to_drop = 0
        self.replies_to_pass = 0
        self.dropped = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        threading.Thread(target=self._run, args=(started,), daemon=True).start()
        started.wait()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        started.set()
        self._loop.run_forever()

    def cut(self) -> None:
        """Unreachable from now on: open connections are closed, new ones closed on accept."""
        self.down = True
        asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result()

    def heal(self) -> None:
        self.down = False

    def drop_reply(self, after: int = 0) -> None:
        """Drop one reply, after passing ``after`` replies on (counted over all connections)."""
        self.replies_to_pass, self.replies_to_drop = after, 1

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pump(reader, up_writer, False), self._pump(up_reader, writer, True))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, replies: bool) -> None:
        with suppress(ConnectionError, OSError):
            while data := await source.read(BUFFER):
                if replies and self.replies_to_drop > 0:
                    # Requests and replies alternate on a redis-py connection (a pipeline's replies
                    # come together): one read is one reply.
                    if self.replies_to_pass > 0:
                        self.replies_to_pass -= 1
                    else:
                        self.replies_to_drop -= 1
                        self.dropped += 1
                        continue
                sink.write(data)
                await sink.drain()
        sink.close()

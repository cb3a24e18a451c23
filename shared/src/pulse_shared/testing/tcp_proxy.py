"""A TCP proxy between a service and the broker or database, for network faults in tests.

It forwards bytes both ways and can, on command:

- ``down()``: stop listening (new connections are refused) and reset every open connection, as a dead
  server looks to its clients; ``up()`` listens again on the same port;
- ``black_hole()``: keep every connection open but deliver nothing either way, as a partitioned network
  looks (clients wait for answers that never come); ``up()`` forwards again (bytes sent into the hole are
  lost, and the connections that saw the loss are reset, as a stream with a gap cannot go on);
- ``strand()``: black-hole the connections open now, and forward new ones, as a database failover looks
  to a client holding connections to the old primary (no reset ever comes; only its own timeouts help).

The target is a host and port, or a Unix socket path (the embedded PostgreSQL listens on one).

The proxy runs its own event loop in a thread, so a test's event loop (or a blocking call in a test) never
stalls the traffic it forwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pulse_shared.localinfra import Broker, free_port

T = TypeVar("T")

CHUNK = 64 * 1024


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target_host``:``target_port`` until told to fail."""

    def __init__(self, target_host: str, target_port: int = 0, *, port: int | None = None) -> None:
        """``target_host`` may be a Unix socket's path (then ``target_port`` is unused)."""
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"tcp-proxy-{self.port}", daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._holed = False

    @property
    def address(self) -> str:
        """host:port clients connect to."""
        return f"127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        """How many client connections are open through the proxy."""
        return len(self._links)

    def start(self) -> TcpProxy:
        """Start forwarding."""
        self._thread.start()
        self._call(self._listen())
        return self

    def down(self) -> None:
        """Refuse new connections and reset the open ones."""
        self._call(self._down())

    def black_hole(self) -> None:
        """Accept connections but deliver no byte either way."""
        self._call(self._black_hole())

    def strand(self) -> None:
        """Deliver nothing more on the connections open now; forward new ones as usual."""
        self._call(self._strand())

    def up(self) -> None:
        """Forward again (listening again if down; resetting connections that lost bytes in a black hole)."""
        self._call(self._up())

    def stop(self) -> None:
        """Close everything and end the proxy's thread."""
        if not self._thread.is_alive():
            return
        self._call(self._down())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def _down(self) -> None:
        self._holed = False
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for link in list(self._links):
            link.reset()

    async def _black_hole(self) -> None:
        await self._listen()
        self._holed = True
        for link in self._links:
            link.holed = True

    async def _strand(self) -> None:
        for link in self._links:
            link.holed = True

    async def _up(self) -> None:
        self._holed = False
        for link in list(self._links):
            if link.holed:
                link.reset()
        await self._listen()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        link = _Link(client_writer)
        link.holed = self._holed
        self._links.add(link)
        try:
            try:
                host, port = self.target
                if host.startswith("/"):
                    server_reader, server_writer = await asyncio.open_unix_connection(host)
                else:
                    server_reader, server_writer = await asyncio.open_connection(host, port)
            except OSError:
                link.reset()
                return
            link.server = server_writer
            await asyncio.gather(self._pump(link, client_reader, server_writer),
                                 self._pump(link, server_reader, client_writer))
        finally:
            self._links.discard(link)
            link.reset()

    @staticmethod
    async def _pump(link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(CHUNK):
                if link.holed:
                    continue  # into the hole
                writer.write(data)
                await writer.drain()
        link.reset()


class _Link:
    """One client connection and its connection to the target."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.server: asyncio.StreamWriter | None = None
        self.holed = False

    def reset(self) -> None:
        """Close both sides at once, without flushing (the peers see the connection drop)."""
        for writer in (self.client, self.server):
            if writer is not None and not writer.transport.is_closing():
                writer.transport.abort()


@contextlib.contextmanager
def broker_behind_proxy(log_file: Path | None = None) -> Iterator[TcpProxy]:
    """A dev broker of its own whose clients all reach it through the yielded proxy: it advertises the
    proxy's address, so the connections a client opens after reading metadata go through it too."""
    proxy_port = free_port()
    broker = Broker(advertised_port=proxy_port, log_file=log_file).start()
    proxy = TcpProxy("127.0.0.1", broker.port, port=proxy_port).start()
    try:
        yield proxy
    finally:
        proxy.stop()
        broker.stop()

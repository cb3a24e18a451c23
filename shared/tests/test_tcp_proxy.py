"""The fault-injection proxy: forwards, goes down (refuse + reset), black-holes, and comes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pulse_shared.testing.tcp_proxy import TcpProxy

LIMIT = 1 << 20  # lines longer than the proxy's chunks


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := await reader.readline():
            writer.write(b"echo " + line)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0, limit=LIMIT)
    port = server.sockets[0].getsockname()[1]
    relay = TcpProxy("127.0.0.1", port).start()
    try:
        yield relay
    finally:
        relay.stop()
        server.close()
        await server.wait_closed()


async def _connect(proxy: TcpProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port, limit=LIMIT)


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, text: bytes) -> bytes:
    writer.write(text + b"\n")
    await writer.drain()
    return await asyncio.wait_for(reader.readline(), timeout=2)


async def test_forwards_both_ways(proxy: TcpProxy) -> None:
    reader, writer = await _connect(proxy)
    assert await _ask(reader, writer, b"hello") == b"echo hello\n"
    assert await _ask(reader, writer, b"x" * 200_000) == b"echo " + b"x" * 200_000 + b"\n"
    writer.close()


async def test_down_resets_open_connections_and_refuses_new_ones_until_up(proxy: TcpProxy) -> None:
    reader, writer = await _connect(proxy)
    assert await _ask(reader, writer, b"before") == b"echo before\n"

    await asyncio.to_thread(proxy.down)
    assert await asyncio.wait_for(reader.read(), timeout=2) == b""  # the open connection dropped
    with pytest.raises(ConnectionRefusedError):
        await _connect(proxy)

    await asyncio.to_thread(proxy.up)
    reader, writer = await _connect(proxy)
    assert await _ask(reader, writer, b"after") == b"echo after\n"
    writer.close()


async def test_black_hole_delivers_nothing_and_up_resets_what_lost_bytes(proxy: TcpProxy) -> None:
    reader, writer = await _connect(proxy)
    await asyncio.to_thread(proxy.black_hole)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(_ask(reader, writer, b"lost"), timeout=0.5)
    late_reader, late_writer = await _connect(proxy)  # connections are still accepted
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(_ask(late_reader, late_writer, b"also lost"), timeout=0.5)

    await asyncio.to_thread(proxy.up)
    assert await asyncio.wait_for(reader.read(), timeout=2) == b""
    assert await asyncio.wait_for(late_reader.read(), timeout=2) == b""
    reader, writer = await _connect(proxy)
    assert await _ask(reader, writer, b"back") == b"echo back\n"
    writer.close()


async def test_strand_black_holes_open_connections_only(proxy: TcpProxy) -> None:
    reader, writer = await _connect(proxy)
    assert await _ask(reader, writer, b"open") == b"echo open\n"  # the proxy holds the connection now
    await asyncio.to_thread(proxy.strand)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(_ask(reader, writer, b"stranded"), timeout=0.5)
    fresh_reader, fresh_writer = await _connect(proxy)
    assert await _ask(fresh_reader, fresh_writer, b"fresh") == b"echo fresh\n"
    fresh_writer.close()


async def test_forwards_to_a_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "echo.sock")
    server = await asyncio.start_unix_server(_echo, path)
    relay = TcpProxy(path).start()
    try:
        reader, writer = await _connect(relay)
        assert await _ask(reader, writer, b"local") == b"echo local\n"
        writer.close()
    finally:
        relay.stop()
        server.close()
        await server.wait_closed()

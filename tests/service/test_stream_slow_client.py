"""One slow websocket client must not slow the others or make the server hold its events without bound:
it is cut off (4008, "reconnect with ?after=") once it falls `ws_client_buffer` events behind, and resumes."""

import asyncio
import base64
import contextlib
import json
import os
import socket

import pytest
import stream_support as kit  # tests/service is on sys.path (conftest)

from app.relay import OVERFLOW, Subscription

LIMIT = 20  # ws_client_buffer for these tests
EVENTS = 500
PAD = 16384  # characters per event: 8 MB in all, well past what loopback socket buffers absorb (~3 MB)


def test_subscription_over_its_limit_drops_its_buffer_and_is_cut_off():
    sub = Subscription("r", limit=3)
    for seq in (1, 2, 3):
        sub.push(seq, f'{{"seq":{seq}}}')
    assert (len(sub.items), sub.end, sub.cut_off.is_set()) == (3, None, False)
    sub.push(4, '{"seq":4}')
    assert (len(sub.items), sub.end, sub.cut_off.is_set()) == (0, OVERFLOW, True)
    assert (sub.high_water, sub.dropped) == (3, 4)
    sub.push(5, '{"seq":5}')  # nothing more is kept once cut off
    assert len(sub.items) == 0


def test_subscription_refuses_a_limit_below_one():
    with pytest.raises(ValueError, match="limit must be >= 1"):
        Subscription("r", limit=0)


class StalledClient:
    """A websocket client that does the handshake and then reads nothing until asked to (raw frames over
    asyncio streams, with a tiny receive buffer, so the server's sends back up quickly)."""

    async def connect(self, port: int, path: str) -> "StalledClient":
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=4096)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return self

    async def frames(self):
        """(opcode, payload) of each frame the server sent, up to and including its close frame."""
        while True:
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(await self.reader.readexactly(2))
            elif n == 127:
                n = int.from_bytes(await self.reader.readexactly(8))
            payload = await self.reader.readexactly(n)
            yield b0 & 0x0F, payload
            if b0 & 0x0F == 8:
                return

    def close(self) -> None:
        self.writer.close()


async def test_slow_client_is_cut_off_while_fast_client_gets_everything(redis_url):
    async with kit.serve_app(redis_url, ws_client_buffer=LIMIT) as server, kit.Runs(redis_url) as runs:
        hub = server.app.state.relay
        subs: list[Subscription] = []
        subscribe = hub.subscribe

        def recording_subscribe(sub, after):
            subs.append(sub)
            subscribe(sub, after)

        hub.subscribe = recording_subscribe
        run_id = await runs.create()
        await runs.start(run_id)
        url = kit.ws_url(server, run_id)
        slow = await StalledClient().connect(server.port, f"/api/runs/{run_id}/stream")
        await kit.wait_for_subscribers(server, run_id, 1)
        fast = asyncio.create_task(kit.collect(url))
        await kit.wait_for_subscribers(server, run_id, 2)
        slow_sub, fast_sub = subs

        most_buffered, most_unsent = 0, 0

        async def watch() -> None:
            nonlocal most_buffered, most_unsent
            while True:
                for run in hub.stats().values():
                    most_buffered = max([most_buffered] + [s["buffered"] for s in run["subscribers"]])
                for conn in server.server_state.connections:
                    if conn.transport is not None:
                        most_unsent = max(most_unsent, conn.transport.get_write_buffer_size())
                await asyncio.sleep(0.002)

        watcher = asyncio.create_task(watch())
        await runs.write_steps(run_id, n=EVENTS, every=0, size=PAD)
        fast_texts, fast_code = await asyncio.wait_for(fast, 60)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        stored = await runs.stored_texts(run_id)
        total = len(stored)

        # the fast client got every event, in order, and the normal end
        assert fast_code == 1000
        assert fast_texts == stored and total == EVENTS + 3
        # the slow one was cut off: its relay buffer never passed the limit and was dropped
        assert slow_sub.end == OVERFLOW and fast_sub.end == "ended"
        assert slow_sub.high_water <= LIMIT and len(slow_sub.items) == 0 and slow_sub.dropped > 0
        assert 0 < most_buffered <= LIMIT
        # what uvicorn holds for it is bounded too (asyncio's 64 KiB high-water mark plus a frame or two)
        assert most_unsent < 256 * 1024 < total * PAD

        # when it reads again it finds a gap-free prefix, then the close telling it how to resume
        seen: list[int] = []
        async with asyncio.timeout(30):
            async for opcode, payload in slow.frames():
                if opcode == 1:
                    seen.append(json.loads(payload)["seq"])
        slow.close()
        assert opcode == 8
        assert int.from_bytes(payload[:2]) == 4008
        assert b"after" in payload[2:]
        assert seen == list(range(1, len(seen) + 1)) and len(seen) < total

        rest, code = await kit.collect(kit.ws_url(server, run_id, after=seen[-1]))
        assert code == 1000
        assert rest == stored[len(seen) :]

"""Helpers for the websocket stream and security tests (tests/service/test_stream*.py, test_security.py).

- `serve_app(redis_url, **settings)`: an async context manager running the real app
  (`app.main.create_app(Settings(...))`) under uvicorn on a free port in the test's own event loop, so a
  test can look inside (`server.app.state.relay`); `block_ms=` shortens the relay's XREAD block.
- `Runs(redis_url)`: writes runs and events straight into Redis with the store's Lua scripts, as the API
  and the worker do, so the relay can be tested alone and at any pace.
- `collect(url)`: every text frame until the server closes, and the close code; `ws_url(server, run_id, ...)`.
- `wait_for_subscribers`, `wait_for_no_readers`: poll the server's RelayHub (bounded).
"""

import asyncio
import contextlib
import socket
import uuid


@contextlib.asynccontextmanager
async def serve_app(redis_url: str, block_ms: int | None = None, **overrides):
    import uvicorn

    from app.main import create_app
    from app.settings import Settings

    settings = Settings(redis_url=redis_url, **overrides)
    app = create_app(settings)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="on", ws_ping_interval=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    server.app, server.port, server.settings = app, sock.getsockname()[1], settings
    if block_ms is not None:
        app.state.relay.block_ms = block_ms
    try:
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


def ws_url(server, run_id: str, after: int | None = None, token: str | None = None) -> str:
    url = f"ws://127.0.0.1:{server.port}/api/runs/{run_id}/stream"
    query = [f"after={after}"] if after is not None else []
    query += [f"token={token}"] if token is not None else []
    return url + ("?" + "&".join(query) if query else "")


async def collect(url: str, timeout: float = 60, **connect) -> tuple[list[str], int | None]:
    """Every text frame until the server closes, and its close code."""
    import websockets
    from websockets.exceptions import ConnectionClosed

    texts: list[str] = []
    async with asyncio.timeout(timeout), websockets.connect(url, **connect) as ws:
        with contextlib.suppress(ConnectionClosed):
            while True:
                texts.append(await ws.recv())
        return texts, ws.close_code


class Runs:
    """Runs written straight into Redis the way the API and the worker write them (worker.store)."""

    def __init__(self, redis_url: str) -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.Redis.from_url(redis_url)

    async def __aenter__(self):
        from worker import store

        self.store = store
        self._create = self.redis.register_script(store.CREATE_RUN_LUA)
        self._append = self.redis.register_script(store.APPEND_LUA)
        self._transition = self.redis.register_script(store.TRANSITION_LUA)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.redis.aclose()

    async def create(self) -> str:
        """A queued run (with its `queued` event, seq 1) written by the API's own script; no RQ job."""
        import json
        import time

        run_id = uuid.uuid4().hex[:12]
        progress = {"epoch": 0, "epochs": 1, "step": 0, "steps": 1}
        keys, argv = self.store.create_run_args(
            run_id, json.dumps({"layers": []}), progress, "stream-tests", time.time(), limit=10**9
        )
        created, _ = await self._create(keys=keys, args=argv)
        assert created == 1
        return run_id

    async def append(self, run_id: str, type_: str, **payload) -> int:
        event = self.store.encode_event(self.store.new_event(run_id, type_, **payload))
        keys = [self.store.run_key(run_id), self.store.events_key(run_id)]
        return int(await self._append(keys=keys, args=self.store.append_args([event])))

    async def transition(self, run_id: str, to: str, from_: tuple[str, ...]) -> int:
        keys, argv = self.store.transition_args(run_id, to, from_)
        seq, _ = await self._transition(keys=keys, args=argv)
        return int(seq)

    async def start(self, run_id: str) -> int:
        return await self.transition(run_id, "running", ("queued",))

    async def finish(self, run_id: str, status: str = "finished") -> int:
        return await self.transition(run_id, status, self.store.ACTIVE)

    async def write_steps(self, run_id: str, n: int, every: float, size: int = 0) -> None:
        """n step events, one every `every` seconds (padded with `size` characters), then `finished`."""
        for i in range(n):
            await self.append(run_id, "step", step=i, pad="x" * size)
            await asyncio.sleep(every)
        await self.finish(run_id)

    async def stored_texts(self, run_id: str) -> list[str]:
        entries = await self.redis.xrange(self.store.events_key(run_id))
        return [self.store.decode_entry(i, f)[1] for i, f in entries]

    async def last_seq(self, run_id: str) -> int:
        return int(await self.redis.hget(self.store.run_key(run_id), "last_seq"))


async def wait_for_subscribers(server, run_id: str, n: int, timeout: float = 10) -> None:
    """Until `n` clients of run_id are subscribed to the server's relay."""
    async with asyncio.timeout(timeout):
        while len(server.app.state.relay.stats().get(run_id, {}).get("subscribers", [])) < n:
            await asyncio.sleep(0.01)


async def wait_for_no_readers(server, timeout: float = 10) -> bool:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while server.app.state.relay.stats():
                await asyncio.sleep(0.02)
    return server.app.state.relay.stats() == {}

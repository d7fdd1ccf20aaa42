"""The FastAPI app: REST API (contract §4), run streams (§5) and the dashboard, one process.

`create_app(settings)` builds it (tests pass their own Settings; `app` is the default for uvicorn).
The lifespan opens Redis (an asyncio client for the API and the relay, a small sync one for RQ),
starts the reaper (runs whose worker died end `failed`), and closes everything at shutdown.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import redis
import redis.asyncio
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from app.errors import install_error_handlers
from app.relay import RelayHub
from app.routers import datasets, health, runs, stream
from app.runs import RunService, reaper_loop
from app.security import install_security
from app.settings import Settings, get_settings

DESCRIPTION = """Train small neural networks with NumPy backprop and watch the error signal δ live.
Create a run from a spec (`POST /api/runs`), follow its events over `WS /api/runs/{id}/stream`."""


def redis_clients(settings: Settings) -> tuple[redis.asyncio.Redis, redis.Redis]:
    """(async, sync) clients that fail fast when Redis is down (few short retries) and reconnect later."""
    backoff = ExponentialBackoff(cap=0.2, base=0.02)
    # Each watched run holds one connection in a blocking XREAD, so the pool is large and waits
    # (instead of failing) when it is exhausted.
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=10,
        socket_connect_timeout=3,
        retry=AsyncRetry(backoff, 2),
    )
    r = redis.asyncio.Redis(connection_pool=pool, decode_responses=False)
    r_sync = redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=3, socket_timeout=10, retry=Retry(backoff, 2)
    )
    return r, r_sync


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    app.state.redis, app.state.redis_sync = redis_clients(settings)
    app.state.relay = RelayHub(app.state.redis)
    app.state.runs = RunService(app.state.redis, app.state.redis_sync, settings)
    reaper = asyncio.create_task(reaper_loop(app.state.redis_sync, settings.reaper_interval))
    try:
        yield
    finally:
        reaper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reaper
        await app.state.relay.close()
        await app.state.redis.aclose()
        app.state.redis_sync.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(title="deltaboard", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    if settings is not None:  # everything, dependencies included, sees these settings
        app.dependency_overrides[get_settings] = lambda: settings
    app.state.settings = settings = settings or get_settings()
    install_security(app, settings)
    install_error_handlers(app)
    for module in (health, runs, datasets, stream):
        app.include_router(module.router)
    if settings.frontend_dir.is_dir():  # after the API routes: "/" serves the dashboard
        app.mount("/", StaticFiles(directory=settings.frontend_dir, html=True), name="dashboard")
    return app


app = create_app()

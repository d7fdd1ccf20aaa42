"""Fixtures for service tests, against the session's real Redis (tests/conftest.py `redis_url`):

- `settings`: Settings for that Redis (short reaper interval).
- `client`: the app in-process (FastAPI TestClient, lifespan running), on a flushed Redis.
- `work`: run every queued job now, in this process (RQ SimpleWorker, burst mode).
- `serve`: a real `deltaboard serve` subprocess on a free port; returns its base URL.
- `start_worker`: start a real `deltaboard worker` subprocess (`start_worker(**env)`); killed at teardown.
- `stream_kit`: the websocket tests' helpers module (stream_support.py).
Plain helpers (`tiny_spec`, `long_spec`, `create_run`, `wait_status`, `wait_for`, `all_events`, `free_port`,
`stop_process`)
live in service_support.py: `from service_support import ...` works whether or not tests are a package.
"""

import itertools
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from worker.jobs import DeltaboardWorker, JSONSerializer, make_queue

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import service_support`, package or not

from service_support import ROOT, free_port, stop_process, wait_for


@pytest.fixture
def settings(redis_url) -> Settings:
    return Settings(redis_url=redis_url, reaper_interval=0.2)


@pytest.fixture
def client(redis_conn, settings):
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def work(redis_url, settings):
    """work(): run every queued job in this process, then return (the worker's SimpleWorker, burst mode)."""
    conn = redis.Redis.from_url(redis_url)

    def run_burst() -> bool:
        saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            queue = make_queue(conn, settings.queue_name)
            return DeltaboardWorker([queue], connection=conn, serializer=JSONSerializer).work(
                burst=True, logging_level="WARNING"
            )
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)

    yield run_burst
    conn.close()


def _env(redis_url: str, **extra) -> dict[str, str]:
    env = dict(os.environ, DELTABOARD_REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
    env.update({f"DELTABOARD_{k.upper()}": str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def _spawn(redis_url, tmp_path):
    """spawn(args, log_name, **settings) -> Popen of `python -m app.cli <args>`, output in tmp_path/log_name;
    every process still running at teardown is stopped."""
    procs: list[subprocess.Popen] = []

    def spawn(args: list[str], log_name: str, **extra) -> subprocess.Popen:
        with open(tmp_path / log_name, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", *args],
                env=_env(redis_url, **extra),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        stop_process(proc)


@pytest.fixture
def start_worker(_spawn):
    """start_worker(**settings) -> Popen of `deltaboard worker`; settings become DELTABOARD_* env vars."""
    numbers = itertools.count()

    def start(**extra) -> subprocess.Popen:
        return _spawn(["worker"], f"worker-{next(numbers)}.log", **extra)

    return start


@pytest.fixture
def serve(redis_conn, _spawn, tmp_path):
    """serve(**settings) -> base URL of a real `deltaboard serve` (uvicorn) on a free port."""

    def start(**extra) -> str:
        port = free_port()
        proc = _spawn(["serve", "--port", str(port)], f"serve-{port}.log", **extra)
        base = f"http://127.0.0.1:{port}"

        def healthy():
            assert proc.poll() is None, (tmp_path / f"serve-{port}.log").read_text()
            try:
                return httpx.get(f"{base}/api/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, what="deltaboard serve to answer")
        return base

    return start


@pytest.fixture
def stream_kit():
    """The websocket tests' helpers (tests/service/stream_support.py, written with the relay)."""
    import stream_support

    return stream_support

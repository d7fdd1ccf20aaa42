"""Fixtures for service tests, against the session's real Redis (tests/conftest.py `redis_url`):

- `settings`: Settings for that Redis (short reaper interval).
- `client`: the app in-process (FastAPI TestClient, lifespan running), on a flushed Redis.
- `work`: run every queued job now, in this process (RQ SimpleWorker, burst mode).
- `serve`: a real `deltaboard serve` subprocess on a free port; returns its base URL.
- `start_worker`: start a real `deltaboard worker` subprocess (`start_worker(**env)`); killed at teardown.
- `stream_kit`: the websocket tests' helpers module (stream_support.py).
Plain helpers (`tiny_spec`, `long_spec`, `create_run`, `wait_status`, `wait_for`, `all_events`, `free_port`)
live in service_support.py: `from service_support import ...` works whether or not tests are a package.
"""

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

from service_support import ROOT, free_port, wait_for


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


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def start_worker(redis_url, tmp_path):
    """start_worker(**settings) -> Popen of `deltaboard worker`; settings become DELTABOARD_* env vars."""
    procs: list[subprocess.Popen] = []

    def start(**extra) -> subprocess.Popen:
        log = open(tmp_path / f"worker-{len(procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"],
            env=_env(redis_url, **extra),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        _stop(proc)


@pytest.fixture
def serve(redis_conn, redis_url, tmp_path):
    """serve(**settings) -> base URL of a real `deltaboard serve` (uvicorn) on a free port."""
    procs: list[subprocess.Popen] = []

    def start(**extra) -> str:
        port = free_port()
        log = open(tmp_path / f"serve-{port}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=_env(redis_url, **extra),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"

        def healthy():
            assert proc.poll() is None, (tmp_path / f"serve-{port}.log").read_text()
            try:
                return httpx.get(f"{base}/api/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, what="deltaboard serve to answer")
        return base

    yield start
    for proc in procs:
        _stop(proc)


@pytest.fixture
def stream_kit():
    """The websocket tests' helpers (tests/service/stream_support.py, written with the relay)."""
    import stream_support

    return stream_support

"""Shared fixtures: a private redis-server for the whole session (never the machine's own on 6379)."""

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from app.launcher import free_port, redis_argv

ROOT = Path(__file__).resolve().parent.parent


def start_redis(port: int, data_dir: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        redis_argv(port, data_dir, persistent=False), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server did not start on port {port}")


@pytest.fixture(scope="session")
def redis_url():
    """URL of a redis-server started for this test session, database 0, flushed by `redis_conn`."""
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        proc = start_redis(port, data_dir)
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture
def redis_conn(redis_url):
    import redis

    conn = redis.Redis.from_url(redis_url)
    conn.flushall()
    yield conn
    conn.close()


@pytest.fixture(autouse=True)
def _one_blas_thread(monkeypatch):
    # Tests start workers as subprocesses; keep them from oversubscribing the two cores.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, os.environ.get(var, "1"))


def pytest_collection_modifyitems(config, items):
    # Playwright's sync API keeps an event loop running in the main thread for as long as its session
    # fixture lives, which breaks every async test collected after it: run the browser tests last.
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)

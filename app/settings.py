"""Service settings: one pydantic-settings object, environment prefix DELTABOARD_ (e.g. DELTABOARD_REDIS_URL).

Spec and upload limits live in `worker.nn.limits.LIMITS` (same prefix) because the spec model needs them.
"""

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.store import LEASE_SECONDS

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DELTABOARD_", extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    queue_name: str = "deltaboard"
    api_token: str | None = None  # when set, every /api call and websocket needs "Bearer <token>"
    allowed_origins: list[str] = []  # websocket Origin allow-list; empty: same host as the request only
    cors_origins: list[str] = []  # CORS off unless set
    max_body_bytes: int = 1_048_576  # request bodies above this are refused with 413 (uploads: LIMITS)
    ws_client_buffer: int = 1000  # events a slow websocket client may fall behind before it is closed
    redis_max_connections: int = 1000  # per API process; one per watched run plus REST calls
    frontend_dir: Path = REPO_ROOT / "frontend"
    job_timeout_min: int = 600  # seconds; a run's RQ job timeout grows with its work from here
    reaper_interval: float = 10.0  # seconds between scans for runs whose worker died
    lease_seconds: float = LEASE_SECONDS  # a running job renews its run's lease; expired = the worker died
    worker_ttl: int = 60  # seconds an idle RQ worker stays registered without a heartbeat


@lru_cache
def get_settings() -> Settings:
    return Settings()

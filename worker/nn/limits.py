"""Server limits on specs and uploads: one object, read once from the environment.

Each limit can be set by an environment variable DELTABOARD_<NAME> (e.g. DELTABOARD_MAX_UNITS=512).
The spec model uses these as its Field bounds; `GET /api/limits` publishes them.
"""

import os

from pydantic import BaseModel, ConfigDict


class Limits(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_layers: int = 10
    max_units: int = 4096
    max_parameters: int = 10_000_000
    max_epochs: int = 10_000
    max_samples: int = 100_000
    max_batch_size: int = 4096
    max_upload_bytes: int = 8 * 1024 * 1024
    max_upload_columns: int = 1025
    max_queued_runs_per_client: int = 20

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Limits":
        env = os.environ if environ is None else environ
        values = {
            name: int(env[f"DELTABOARD_{name.upper()}"])
            for name in cls.model_fields
            if f"DELTABOARD_{name.upper()}" in env
        }
        return cls(**values)


LIMITS = Limits.from_env()

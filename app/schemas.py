"""Request and response bodies of the REST API (contract §4), named by role.

The spec itself (`RunCreate`) is the core's `RunSpec`: one definition, whose field bounds are the
server's limits, so a bad spec is a standard FastAPI 422 with the offending field's path.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from worker.nn.limits import LIMITS, Limits
from worker.nn.spec import RunSpec

RunCreate = RunSpec
Status = Literal["queued", "running", "paused", "finished", "failed", "canceled"]


class Progress(BaseModel):
    epoch: int = Field(description="the epoch in progress (1-based; 0 before training)")
    epochs: int
    step: int = Field(description="minibatches done, over the whole run")
    steps: int


class Metrics(BaseModel):
    train_loss: float | None = None
    test_loss: float | None = None
    train_accuracy: float | None = None
    test_accuracy: float | None = None


class RunError(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str = Field(description="diverged | worker_lost | timeout | dataset | error")
    message: str


class ModelRef(BaseModel):
    version: int = Field(description="grows by one with every stored snapshot")
    step: int | None = Field(None, description="the minibatch the weights are from")
    epoch: int | None = None


class RunPublic(BaseModel):
    id: str
    status: Status
    spec: dict[str, Any] = Field(description="the spec with every default filled in")
    created_at: float = Field(description="unix seconds")
    started_at: float | None = None
    finished_at: float | None = None
    progress: Progress
    metrics: Metrics
    queue_position: int | None = Field(
        None, description="while queued: 1 = next to start, 0 = being picked up by a worker; else null"
    )
    error: RunError | None = None
    last_seq: int = Field(0, description="seq of the run's latest event (resume streams after it)")
    model: ModelRef | None = Field(
        None, description="the latest weights GET /model returns (a snapshot while active); null: none yet"
    )


class RunList(BaseModel):
    runs: list[RunPublic]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next (older) page; null at the end")


class StepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: int = Field(1, ge=1, le=10_000, description="minibatches to run before pausing again")


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: list[list[float]] = Field(
        min_length=1, max_length=LIMITS.max_samples, description="rows of input_dim numbers"
    )


class PredictResponse(BaseModel):
    outputs: list[list[float | None]]


class Health(BaseModel):
    status: Literal["ok"]
    redis: Literal["ok"]
    workers: int = Field(description="live RQ workers on the run queue")


class Parameter(BaseModel):
    default: float
    minimum: float
    maximum: float


class BuiltinDataset(BaseModel):
    name: str
    task: Literal["classification", "regression"]
    input_dim: int
    n_classes: int | None = None
    target_dim: int = 1
    parameters: dict[str, Parameter] = Field(description="samples, noise, test_fraction, seed")


class UploadedDataset(BaseModel):
    id: str
    name: str = Field(description="the name given at upload (else the file's name)")
    spec_name: str = Field(description="what a spec's dataset.name says to use it: 'upload:<id>'")
    task: Literal["classification", "regression"]
    input_dim: int
    n_classes: int | None = None
    target_dim: int = 1
    rows: int
    created_at: float


class DatasetList(BaseModel):
    builtin: list[BuiltinDataset]
    uploaded: list[UploadedDataset] = Field(description="newest first")


LimitsPublic = Limits

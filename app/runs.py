"""The run service behind the REST API: create (validate, store, enqueue), read, list, control, delete.

A run lives in Redis under the keys of `worker/store.py` (record hash, event stream, control list, lease,
model), with no TTL: it outlives RQ's own bookkeeping. Creating a run writes its record and its first
event (`queued`) in one script that also enforces the per-client limit, then enqueues the RQ job
`worker.jobs.train_run(run_id)` by name (JSON serializer, job id = run id, an explicit timeout from the
spec's size, a result that never expires). If the enqueue fails the record is removed again.

Controls are commands on the run's control list, applied by the worker between minibatches; the API
only checks that the run is in a state where the command makes sense (409 otherwise). A queued run is
canceled here directly. RQ calls are synchronous, so they run in a thread with their own client.
"""

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import secrets
import time
from typing import Any

import numpy as np
import redis
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from redis.asyncio import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from app.errors import Conflict, NotFound, TooManyRuns, run_not_found
from app.settings import Settings
from worker import store
from worker.jobs import JOB_FUNC, build_dataset, job_timeout, make_queue
from worker.nn.datasets import BUILTIN, DatasetInfo
from worker.nn.limits import LIMITS
from worker.nn.network import Network
from worker.nn.spec import RunSpec
from worker.reaper import reap_quietly

log = logging.getLogger("deltaboard.runs")

CONTROL_TTL = 3600  # s a control command waits for a worker before it is dropped
SCAN_CHUNK = 100  # runs read per round trip when listing with a status filter
MAX_SCAN = 2000  # runs looked at per page at most; the page may come back short, with a cursor


def body_errors(error: ValidationError) -> list[dict[str, Any]]:
    """A spec ValidationError as FastAPI's 422 `detail` list, locations under "body"."""
    return [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


MODEL_FIELDS = ("status", "model_version", "model_step", "model_epoch", "progress")


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Which weights a run's model is: the run's status, the step and epoch they are from (after
    minibatch `step`), whether they are final (finished or canceled), and an ETag for that version."""

    status: str
    step: int | None
    epoch: int | None
    final: bool
    etag: str | None

    def headers(self) -> dict[str, str]:
        out = {"X-Deltaboard-Status": self.status, "X-Deltaboard-Final": str(self.final).lower()}
        if self.step is not None:
            out["X-Deltaboard-Step"] = str(self.step)
        if self.epoch is not None:
            out["X-Deltaboard-Epoch"] = str(self.epoch)
        if self.etag is not None:
            out["ETag"] = self.etag
        return out


class RunService:
    def __init__(self, r: Redis, r_sync: redis.Redis, settings: Settings):
        self.r, self.sync, self.settings = r, r_sync, settings
        self.queue = make_queue(r_sync, settings.queue_name)
        self._create = r.register_script(store.CREATE_RUN_LUA)
        self._transition = r.register_script(store.TRANSITION_LUA)

    # -- create ------------------------------------------------------------------------------------

    async def create(self, spec: RunSpec, client: str) -> dict[str, Any]:
        info, rows = await self.dataset_for(spec)
        run_id = secrets.token_hex(8)
        train_rows = rows - round(spec.dataset.test_fraction * rows)
        progress = {
            "epoch": 0,
            "epochs": spec.epochs,
            "step": 0,
            "steps": spec.epochs * math.ceil(max(train_rows, 1) / spec.batch_size),
        }
        limit = LIMITS.max_queued_runs_per_client
        keys, argv = store.create_run_args(
            run_id, spec.model_dump_json(), progress, client, time.time(), limit
        )
        created, unfinished = await self._create(keys=keys, args=argv)
        if not created:
            raise TooManyRuns(
                f"Too many unfinished runs for this client: {unfinished} queued, running or paused "
                f"(limit {limit}). Wait for some to finish or cancel them, then try again."
            )
        timeout = job_timeout(spec, info.input_dim, rows, self.settings.job_timeout_min)
        try:
            await asyncio.to_thread(self._enqueue, run_id, timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                await self._remove(run_id)
            raise
        return await self.get(run_id)

    async def dataset_for(self, spec: RunSpec) -> tuple[DatasetInfo, int]:
        """The spec's dataset info and row count; an upload must exist and fit the layers (else 422)."""
        name = spec.dataset.name
        if name in BUILTIN:
            return BUILTIN[name][0], spec.dataset.samples
        raw_info, rows = await self.r.hmget(store.upload_key(name), "info", "rows")
        if raw_info is None:
            raise RequestValidationError(
                [
                    {
                        "type": "unknown_upload",
                        "loc": ("body", "dataset", "name"),
                        "msg": f"no uploaded dataset '{name}': upload a CSV with POST /api/datasets "
                        "and use the spec_name it returns",
                        "input": name,
                    }
                ]
            )
        info = DatasetInfo(**json.loads(raw_info))
        try:
            spec.check_dataset(info)
        except ValidationError as e:
            raise RequestValidationError(body_errors(e)) from None
        return info, int(rows)

    def _enqueue(self, run_id: str, timeout: int) -> None:
        self.queue.enqueue(
            JOB_FUNC,
            run_id,
            job_id=run_id,
            job_timeout=timeout,
            result_ttl=-1,
            description=f"train run {run_id}",
        )

    def _drop_job(self, run_id: str) -> None:
        """Remove a run's RQ job (from the queue too), if it is still there."""
        with contextlib.suppress(NoSuchJobError):
            Job.fetch(run_id, connection=self.sync, serializer=JSONSerializer).delete()

    # -- read --------------------------------------------------------------------------------------

    async def get(self, run_id: str) -> dict[str, Any]:
        raw = await self.r.hgetall(store.run_key(run_id))
        if not raw:
            raise run_not_found()
        run = store.decode_run(run_id, raw)
        await self._set_queue_positions([run])
        return run

    async def _set_queue_positions(self, runs: list[dict[str, Any]]) -> None:
        """Set each run's queue_position (one round trip for all the queued ones): 1 = the next run a
        worker takes; 0 = already taken, about to start; None when not queued."""
        queued = [run for run in runs if run["status"] == "queued"]
        for run in runs:
            run["queue_position"] = None
        if not queued:
            return
        async with self.r.pipeline(transaction=False) as pipe:
            for run in queued:
                pipe.lpos(self.queue.key, run["id"])
            indexes = await pipe.execute()
        for run, index in zip(queued, indexes, strict=True):
            run["queue_position"] = 0 if index is None else index + 1

    async def status(self, run_id: str) -> str:
        status = await self.r.hget(store.run_key(run_id), "status")
        if status is None:
            raise run_not_found()
        return status.decode()

    async def list_runs(self, status: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
        """Newest first. The cursor is "<score>:<id>" of the last run of the previous page."""
        start = await self._cursor_rank(cursor)
        runs: list[dict[str, Any]] = []
        rank, scanned, last = start, 0, None
        exhausted = False
        while len(runs) < limit and scanned < MAX_SCAN:
            chunk = limit - len(runs) if status is None else SCAN_CHUNK
            entries = await self.r.zrevrange(store.RUNS, rank, rank + chunk - 1, withscores=True)
            if not entries:
                exhausted = True
                break
            async with self.r.pipeline(transaction=False) as pipe:
                for member, _ in entries:
                    pipe.hgetall(store.run_key(member.decode()))
                raws = await pipe.execute()
            for (member, score), raw in zip(entries, raws, strict=True):
                rank, scanned, last = rank + 1, scanned + 1, (score, member.decode())
                if raw and (status is None or _text(raw.get(b"status")) == status):
                    runs.append(store.decode_run(last[1], raw))
                    if len(runs) == limit:
                        break
        await self._set_queue_positions(runs)
        more = not exhausted and last is not None and await self.r.zcard(store.RUNS) > rank
        return {"runs": runs, "next_cursor": f"{last[0]!r}:{last[1]}" if more else None}

    async def _cursor_rank(self, cursor: str | None) -> int:
        """The rank (newest = 0) of the first run after `cursor`."""
        if not cursor:
            return 0
        score_text, _, run_id = cursor.partition(":")
        try:
            score = float(score_text)
            if not (run_id and math.isfinite(score)):
                raise ValueError(cursor)
        except ValueError:
            error = {"type": "cursor", "loc": ("query", "cursor"), "msg": "not a cursor from this API"}
            raise RequestValidationError([{**error, "input": cursor}]) from None
        rank = await self.r.zrevrank(store.RUNS, run_id)
        if rank is not None:
            return rank + 1
        # that run was deleted meanwhile: go on with the runs older than it
        return await self.r.zcount(store.RUNS, f"({score!r}", "+inf")

    async def events(self, run_id: str, after: int, limit: int) -> list[str]:
        """The JSON texts of the run's events with seq > after, oldest first."""
        start = f"({store.entry_id(after)}" if after > 0 else "-"
        async with self.r.pipeline(transaction=False) as pipe:
            pipe.exists(store.run_key(run_id))
            pipe.xrange(store.events_key(run_id), min=start, max="+", count=limit)
            exists, entries = await pipe.execute()
        if not exists:
            raise run_not_found()
        return [store.decode_entry(entry_id, fields)[1] for entry_id, fields in entries]

    async def data(self, run_id: str, max_points: int) -> dict[str, Any]:
        """The run's train and test points (at most max_points in all; the split is already shuffled,
        so a prefix of each is a fair sample), for drawing them under the decision boundary."""
        spec_json = await self.r.hget(store.run_key(run_id), "spec")
        if spec_json is None:
            raise run_not_found()
        spec = RunSpec.model_validate(json.loads(spec_json))
        key = store.upload_key(spec.dataset.name)
        stored = await self.r.hmget(key, "info", "arrays") if key else None
        try:
            data = await asyncio.to_thread(build_dataset, spec, stored)
        except LookupError as e:
            raise NotFound(str(e)) from None
        n_train = len(data.X_train)
        keep_train = round(max_points * n_train / max(n_train + len(data.X_test), 1))

        def part(X: np.ndarray, y: np.ndarray, n: int) -> dict[str, list]:
            return {"X": X[:n].tolist(), "y": y[:n].reshape(min(n, len(y)), -1)[:, 0].tolist()}

        return {
            "task": data.info.task,
            "input_dim": data.info.input_dim,
            "n_classes": data.info.n_classes,
            "train": part(data.X_train, data.y_train, keep_train),
            "test": part(data.X_test, data.y_test, max_points - keep_train),
        }

    async def model_info(self, run_id: str) -> ModelInfo | None:
        """Which weights GET /model would return now, without reading them (for If-None-Match);
        None when that takes reading them (none stored, or stored without a version)."""
        raw = await self.r.hmget(store.run_key(run_id), *MODEL_FIELDS)
        if raw[0] is None:
            raise run_not_found()
        return self._model_info(run_id, raw) if raw[1] is not None and _text(raw[0]) != "failed" else None

    async def model(self, run_id: str) -> tuple[bytes, ModelInfo]:
        """The run's latest weights (.npz bytes) and which step they are from: a snapshot while the run
        is active, its final weights once it finished or was canceled. 404 when there are none (yet)."""
        data, info, _ = await self._read_model(run_id)
        return data, info

    async def _read_model(self, run_id: str, *fields: str) -> tuple[bytes, ModelInfo, list]:
        """`model`, plus the values of more hash `fields`, read in the same transaction."""
        async with self.r.pipeline(transaction=True) as pipe:  # the bytes and their step, from one moment
            pipe.hmget(store.run_key(run_id), *MODEL_FIELDS, *fields)
            pipe.get(store.model_key(run_id))
            raw, data = await pipe.execute()
        n = len(MODEL_FIELDS)
        return data, self._model_info(run_id, raw[:n], has_model=data is not None), raw[n:]

    @staticmethod
    def _model_info(run_id: str, raw: list, has_model: bool = True) -> ModelInfo:
        status, version, step, epoch, progress = (_text(v) for v in raw)
        if status is None:
            raise run_not_found()
        if status == "failed":
            raise NotFound("Run ended failed without a model")
        if not has_model:
            if status in store.ACTIVE:
                raise NotFound(
                    f"Run is {status}: no weights stored yet (a snapshot is stored when it starts, "
                    "when it pauses and every few seconds while it runs)"
                )
            raise NotFound(f"Run ended {status} without a model")
        if step is None:  # weights stored without their step (by an older worker): the run's progress
            p = json.loads(progress) if progress else {}
            step, epoch = p.get("step"), p.get("epoch")
        return ModelInfo(
            status=status,
            step=None if step is None else int(step),
            epoch=None if epoch is None else int(epoch),
            final=status in ("finished", "canceled"),
            etag=f'"{run_id}.{version}"' if version is not None else None,
        )

    async def predict(
        self, run_id: str, inputs: list[list[float]]
    ) -> tuple[list[list[float | None]], ModelInfo]:
        """The outputs of the run's latest weights (see `model`) for rows of inputs, and which those are."""
        data, info, (spec_json,) = await self._read_model(run_id, "spec")
        arrays = store.load_npz(data)
        spec = json.loads(spec_json)
        L = len(spec["layers"])
        net = Network(
            [arrays[f"W{k}"] for k in range(1, L + 1)],
            [arrays[f"b{k}"] for k in range(1, L + 1)],
            [layer["activation"] for layer in spec["layers"]],
            spec["loss"],
        )
        input_dim = net.sizes[0]
        bad = [
            {
                "type": "input_size",
                "loc": ("body", "inputs", i),
                "msg": f"row {i} has {len(row)} numbers; the network takes {input_dim}",
                "input": None,
            }
            for i, row in enumerate(inputs)
            if len(row) != input_dim
        ][:20]
        if bad:
            raise RequestValidationError(bad)

        def forward() -> list[list[float | None]]:
            with np.errstate(all="ignore"):
                out = net.forward(np.asarray(inputs, dtype=np.float64)).astype(np.float64)
            return [[v if math.isfinite(v) else None for v in row] for row in out.tolist()]

        return await asyncio.to_thread(forward), info

    # -- controls and delete -----------------------------------------------------------------------

    async def control(self, run_id: str, op: str, steps: int = 1) -> dict[str, Any]:
        """pause | resume | step | cancel: check the run's state, then hand the command to its worker."""
        status = await self.status(run_id)
        if op == "cancel":
            if status in store.TERMINAL:
                raise Conflict(f"Run has already ended ({status}); there is nothing to cancel")
            if status == "queued":
                keys, argv = store.transition_args(run_id, "canceled", ("queued",))
                seq, current = await self._transition(keys=keys, args=argv)
                if seq:
                    await asyncio.to_thread(self._drop_job, run_id)
                    return await self.get(run_id)
                status = _text(current) or ""  # a worker took it meanwhile: tell the worker
                if status in store.TERMINAL or not status:
                    raise Conflict(f"Run has already ended ({status}); there is nothing to cancel")
            await self._push(run_id, {"op": "cancel"})
        elif op == "pause":
            if status != "running":
                raise Conflict(f"Run is {status}: only a running run can be paused")
            await self._push(run_id, {"op": "pause"})
        elif op == "resume":
            if status != "paused":
                raise Conflict(f"Run is {status}: only a paused run can be resumed")
            await self._push(run_id, {"op": "resume"})
        elif op == "step":
            if status != "paused":
                raise Conflict(f"Run is {status}: only a paused run can be stepped (pause it first)")
            await self._push(run_id, {"op": "step", "steps": steps})
        else:
            raise ValueError(f"unknown control {op!r}")
        return await self.get(run_id)

    async def _push(self, run_id: str, command: dict[str, Any]) -> None:
        key = store.control_key(run_id)
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.rpush(key, json.dumps(command))
            pipe.expire(key, CONTROL_TTL)
            await pipe.execute()

    async def delete(self, run_id: str) -> None:
        """Cancel the run if it is active (its stream gets a final `canceled`), then remove every key."""
        status = await self.status(run_id)
        if status in store.ACTIVE:
            keys, argv = store.transition_args(run_id, "canceled", store.ACTIVE)
            await self._transition(keys=keys, args=argv)
        if status not in ("running", "paused"):  # a running job ends by itself once the run is gone
            await asyncio.to_thread(self._drop_job, run_id)
        await self._remove(run_id)

    async def _remove(self, run_id: str) -> None:
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.delete(*store.run_keys(run_id))
            pipe.zrem(store.RUNS, run_id)
            pipe.srem(store.CLAIMED, run_id)
            await pipe.execute()

    # -- health ------------------------------------------------------------------------------------

    async def live_workers(self) -> int:
        """RQ workers registered on the run queue whose heartbeat key has not expired."""
        keys = await self.r.smembers(WORKERS_BY_QUEUE_KEY % self.settings.queue_name)
        if not keys:
            return 0
        async with self.r.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.exists(key)
            return sum(await pipe.execute())


async def reaper_loop(r_sync: redis.Redis, interval: float) -> None:
    """Fail runs whose worker died (worker/reaper.py), every `interval` seconds, forever."""
    while True:
        await asyncio.to_thread(reap_quietly, r_sync)
        await asyncio.sleep(interval)

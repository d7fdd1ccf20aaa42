"""The RQ job `train_run(run_id)`: the one place where Redis meets the NumPy core.

The API enqueues `JOB_FUNC` by name with the run id as its only (JSON) argument, on a queue that uses
RQ's JSON serializer. The job:
1. returns at once unless the run is still `queued` (canceled or deleted meanwhile);
2. takes the run's lease and claims it (worker/reaper.py), builds the dataset (uploads come from Redis)
   and a `Training`, and drives `Training.events(before_step=...)`;
3. moves the status through TRANSITION_LUA (queued -> running <-> paused -> finished | failed | canceled)
   and appends every other event with APPEND_LUA (run_id and time added here, seq by the script), keeping
   the run's `progress` and `metrics` current (on every epoch event, otherwise at most every
   PROGRESS_INTERVAL s). While the run is running, events that come faster than one per FLUSH_INTERVAL
   wait up to about that long and go in one round trip together (a fast run streams hundreds a second);
   while stepping every event goes at once, and every status change first flushes what waits, so the
   order is kept;
4. obeys the run's control list between minibatches (`before_step`): while running it looks at the list,
   the run's status and renews the lease at most every CHECK_INTERVAL s of wall time, so a tiny fast net
   does not pay a Redis round trip per minibatch; `pause` moves to `paused` and blocks in BLPOP (waking
   every PAUSE_POLL s to renew the lease); `step n` runs n minibatches, each forced to emit a `step` event,
   then pauses again; `resume` continues; `cancel` ends the run `canceled` before the next minibatch;
5. stores the weights (.npz, W1..WL, b1..bL, with the step and epoch they are from) through
   SAVE_MODEL_LUA, which refuses once the run has ended or is gone: a snapshot of the initial weights
   before the run turns `running`, one before every move to `paused` (so a paused run, also after each
   `step n`, shows exactly that minibatch's weights), one while running at most every SNAPSHOT_INTERVAL s
   of wall time (looked at only in the control check, and stretched so that serialising and storing
   stays under SNAPSHOT_BUDGET of the run's time on big nets), and the final weights when the run
   finishes or is canceled, just before it ends. A failed run's snapshot is dropped.

A run deleted (or ended by someone else) while it trains is noticed at the next check and the job stops
without writing anything more. While the run is paused the RQ job timeout's alarm is suspended, so pauses
do not count against it. The worker process (`deltaboard worker`, `DeltaboardWorker`) is a non-forking
SimpleWorker: numpy and the core are imported once when it starts, a SIGKILL takes the job down with it
(the reaper then fails the run), and a SIGTERM/SIGINT ends the current run `failed` (worker_lost) within
a check interval before the process exits.
"""

import json
import logging
import math
import os
import signal
import socket
import threading
import time
from typing import Any

import redis
from rq import Queue, SimpleWorker, get_current_job
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException

from . import store
from .nn.datasets import Dataset, DatasetInfo, make_dataset
from .nn.spec import RunSpec
from .nn.training import Training

log = logging.getLogger("deltaboard.jobs")

JOB_FUNC = "worker.jobs.train_run"
CHECK_INTERVAL = 0.1  # s of wall time between looks at the control list (and lease renewals) while running
PROGRESS_INTERVAL = 0.5  # s between progress writes on step events
FLUSH_INTERVAL = 0.02  # s an event may wait to be appended together with the next ones
PAUSE_POLL = 1.0  # s a paused run blocks in BLPOP before renewing its lease
SNAPSHOT_INTERVAL = 2.0  # s of wall time between weight snapshots while running, at least
SNAPSHOT_BUDGET = 0.02  # ... and a snapshot may cost at most this share of the time between two
RQ_HEARTBEAT = 30.0  # s between RQ worker heartbeats while a run is paused

shutdown_requested = threading.Event()  # set by the worker process on SIGTERM/SIGINT
current_worker: "DeltaboardWorker | None" = None


def make_queue(connection: redis.Redis, name: str) -> Queue:
    """The run queue: JSON serializer, never pickle."""
    return Queue(name, connection=connection, serializer=JSONSerializer)


def job_timeout(spec: RunSpec, input_dim: int, rows: int, floor: int) -> int:
    """RQ job timeout in seconds for a spec: its work (epochs × rows × parameters) at a slow
    2·10⁷ per second, plus 2 ms per minibatch and 50 ms per epoch, doubled; at least `floor`."""
    params = spec.parameter_count(input_dim)
    train_rows = max(1, rows - round(spec.dataset.test_fraction * rows))
    steps = spec.epochs * math.ceil(train_rows / spec.batch_size)
    seconds = spec.epochs * rows * params / 2e7 + steps * 2e-3 + spec.epochs * 0.05
    return max(int(floor), math.ceil(2 * seconds))


def build_dataset(spec: RunSpec, stored: list[bytes | None] | None = None) -> Dataset:
    """A run's dataset: a built-in one from its parameters, an upload from its stored [info, arrays]
    fields (LookupError when the upload is gone). The worker trains on it; the API shows its points."""
    if not spec.dataset.name.startswith("upload:"):
        return make_dataset(spec.dataset)
    info, arrays = stored or (None, None)
    if info is None or arrays is None:
        raise LookupError(f"uploaded dataset '{spec.dataset.name}' no longer exists")
    xy = store.load_npz(arrays)
    return make_dataset(spec.dataset, uploaded=(xy["X"], xy["y"], DatasetInfo(**json.loads(info))))


def train_run(run_id: str) -> dict[str, Any]:
    """Train run `run_id` (see the module docstring); returns {"run_id", "status"} for RQ's result."""
    from app.settings import get_settings  # the worker shares the service's settings

    settings = get_settings()
    job = get_current_job()
    r = job.connection if job is not None else redis.Redis.from_url(settings.redis_url)
    return {"run_id": run_id, "status": RunJob(r, run_id, settings.lease_seconds).run()}


class Stop(Exception):
    """End the run now: with `status` (and `error`), or quietly when status is None (deleted or ended)."""

    def __init__(self, status: str | None, error: dict | None = None):
        super().__init__(status)
        self.status, self.error = status, error


SHUTDOWN = {"type": "worker_lost", "message": "the worker was shut down before the run ended"}


def _finite(value):
    """A JSON-able copy with non-finite floats as None (events must pass allow_nan=False)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class RunJob:
    """One run's life in a worker: see the module docstring. `mode` is running | paused | stepping."""

    def __init__(self, r: redis.Redis, run_id: str, lease_seconds: float):
        self.r, self.run_id = r, run_id
        self.keys = [store.run_key(run_id), store.events_key(run_id)]
        self.control = store.control_key(run_id)
        self.lease = store.lease_key(run_id)
        self.lease_ms = max(100, int(lease_seconds * 1000))
        self.pause_poll = min(PAUSE_POLL, max(0.05, lease_seconds / 3))
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._append = r.register_script(store.APPEND_LUA)
        self._transition = r.register_script(store.TRANSITION_LUA)
        self._save_model = r.register_script(store.SAVE_MODEL_LUA)
        self.training: Training | None = None
        self.mode = "running"
        self.steps_left = 0
        self.last_check = time.monotonic()
        self.last_progress = 0.0
        self.pending: list[str] = []  # encoded events not appended yet, oldest first
        self.last_flush = 0.0
        self.last_step = 0.0  # when before_step last ran
        self.progress_due = False  # an epoch event waits: write progress and metrics with it
        self.last_beat = 0.0
        self.next_snapshot = 0.0
        self.alarm_left = 0

    # -- the run -----------------------------------------------------------------------------------

    def run(self) -> str | None:
        """Train the run if it is still queued; return its final status (None if it is gone)."""
        status, raw_spec = self.r.hmget(self.keys[0], "status", "spec")
        if status != b"queued":
            return status.decode() if status else None
        self.beat()  # lease first, then claim: the reaper never sees a claimed run without a lease
        self.r.sadd(store.CLAIMED, self.run_id)
        keeper = threading.Thread(target=self._keep_lease, name=f"lease:{self.run_id}", daemon=True)
        self._done = threading.Event()
        keeper.start()
        try:
            return self.train(RunSpec.model_validate_json(raw_spec))
        except Stop as stop:
            return self.end(stop.status, stop.error) if stop.status else self.current_status()
        except JobTimeoutException as exc:
            return self.end("failed", {"type": "timeout", "message": f"the run took too long: {exc}"})
        except Exception as exc:
            log.exception("run %s failed", self.run_id)
            return self.end("failed", {"type": "error", "message": f"{type(exc).__name__}: {exc}"})
        finally:
            self._done.set()
            self.resume_alarm()
            with self.r.pipeline(transaction=False) as pipe:
                pipe.delete(self.lease, self.control)
                pipe.srem(store.CLAIMED, self.run_id)
                pipe.execute()

    def train(self, spec: RunSpec) -> str | None:
        self.training = training = Training(spec, self.dataset(spec))
        for event in training.events(before_step=self.before_step):
            if event["type"] != "status":
                self.append(event)
            elif event["status"] == "running":
                self.snapshot()  # the initial weights: a running run always has a model to show
                self.transition("running", ("queued",))
            elif event["status"] == "finished":
                return self.end("finished")
            else:
                return self.end(event["status"], event.get("error"))
        return self.end("finished")

    def dataset(self, spec: RunSpec):
        key = store.upload_key(spec.dataset.name)
        stored = self.r.hmget(key, "info", "arrays") if key else None
        try:
            return build_dataset(spec, stored)
        except LookupError as e:
            raise Stop("failed", {"type": "dataset", "message": str(e)}) from None

    def end(self, status: str, error: dict | None = None) -> str | None:
        """Move the run to a terminal status with its final progress and metrics (and model)."""
        if status in ("finished", "canceled") and self.training is not None:
            self.snapshot()  # the final weights, stored while the run is still active
        self.flush(strict=False)  # what the run emitted before it ended, unless it is gone
        keys, argv = store.transition_args(self.run_id, status, store.ACTIVE, error, **self.state_fields())
        seq, current = self._transition(keys=keys, args=argv)
        if seq and status == "failed":
            self.r.delete(store.model_key(self.run_id))  # a failed run has no model (contract §4)
        return status if seq else (current.decode() if current else None)

    def snapshot(self) -> bool:
        """Store the network's current weights with the step and epoch they are from; False when the
        run has ended or is gone (SAVE_MODEL_LUA refuses). Schedules the next periodic snapshot."""
        if self.training is None:
            return False
        started = time.monotonic()
        net, progress = self.training.net, self.training.progress
        keys, argv = store.save_model_args(
            self.run_id, net.weights, net.biases, progress["step"], progress["epoch"]
        )
        saved = bool(self._save_model(keys=keys, args=argv))
        now = time.monotonic()
        self.next_snapshot = now + max(SNAPSHOT_INTERVAL, (now - started) / SNAPSHOT_BUDGET)
        return saved

    def current_status(self) -> str | None:
        status = self.r.hget(self.keys[0], "status")
        return status.decode() if status else None

    def state_fields(self) -> dict[str, Any]:
        if self.training is None:
            return {}
        return {"progress": self.training.progress, "metrics": self.training.metrics}

    def transition(self, to: str, from_: tuple[str, ...]) -> None:
        self.flush()
        keys, argv = store.transition_args(self.run_id, to, from_, **self.state_fields())
        seq, _ = self._transition(keys=keys, args=argv)
        if not seq:  # canceled or deleted meanwhile
            raise Stop(None)

    def append(self, event: dict) -> None:
        payload = {k: v for k, v in event.items() if k != "type"}
        full = store.new_event(self.run_id, event["type"], **payload)
        try:
            text = store.encode_event(full)
        except ValueError:
            text = store.encode_event(_finite(full))
        self.pending.append(text)
        self.progress_due |= event["type"] == "epoch"
        if self.mode != "running" or time.monotonic() - self.last_flush >= FLUSH_INTERVAL:
            self.flush()

    def flush(self, strict: bool = True) -> None:
        """Append the pending events in one round trip, with the run's progress and metrics after an
        epoch or when due. Raises Stop(None) if the run has ended or is gone (nothing written), unless
        not `strict`."""
        if not self.pending:
            return
        now = time.monotonic()
        fields = {}
        if self.progress_due or now - self.last_progress >= PROGRESS_INTERVAL:
            self.last_progress, self.progress_due = now, False
            fields = self.state_fields()
        events, self.pending = self.pending, []
        self.last_flush = now
        if not self._append(keys=self.keys, args=store.append_args(events, **fields)) and strict:
            raise Stop(None)

    # -- controls ----------------------------------------------------------------------------------

    def before_step(self) -> bool:
        """Called before every minibatch: obey controls; True forces this minibatch's step event."""
        if self.mode == "stepping" and self.steps_left == 0:  # the requested steps are done
            self.pause()
        now = time.monotonic()
        # Waiting events go now if they have waited long enough, or if minibatches are slow (then the
        # next one would hold them back for longer than FLUSH_INTERVAL).
        if self.pending and now - min(self.last_flush, self.last_step) >= FLUSH_INTERVAL:
            self.flush()
        self.last_step = now
        if self.mode == "stepping" or now - self.last_check >= CHECK_INTERVAL:
            self.check()
        if self.mode == "paused":
            self.wait_paused()
        if self.mode == "stepping":
            self.steps_left -= 1
            return True
        return False

    def check(self) -> None:
        """One round trip: take pending commands, renew the lease, read the status."""
        with self.r.pipeline(transaction=False) as pipe:
            pipe.lpop(self.control, 100)
            pipe.set(self.lease, self.owner, px=self.lease_ms)
            pipe.hget(self.keys[0], "status")
            commands, _, status = pipe.execute()
        self.last_check = self.last_beat = time.monotonic()
        self.alive(status)
        for raw in commands or []:
            self.apply(raw)
        if self.mode == "running" and self.last_check >= self.next_snapshot and not self.snapshot():
            raise Stop(None)  # ended or deleted since the status was read

    def pause(self) -> None:
        """Snapshot the weights, then move to `paused`: whoever sees `paused` finds that step's weights."""
        self.mode, self.steps_left = "paused", 0
        if not self.snapshot():
            raise Stop(None)
        self.transition("paused", ("running",))

    def alive(self, status: bytes | None) -> None:
        if status is None or status.decode() in store.TERMINAL:
            raise Stop(None)
        if shutdown_requested.is_set():
            raise Stop("failed", SHUTDOWN)

    def apply(self, raw: bytes) -> None:
        try:
            command = json.loads(raw)
            op = command["op"]
        except (ValueError, TypeError, KeyError):
            log.warning("run %s: ignoring a malformed control %r", self.run_id, raw)
            return
        if op == "cancel":
            raise Stop("canceled")
        if op == "pause" and self.mode != "paused":
            self.pause()
        elif op == "resume" and self.mode != "running":
            if self.mode == "paused":
                self.transition("running", ("paused",))
            self.mode, self.steps_left = "running", 0
        elif op == "step" and self.mode != "running":
            if self.mode == "paused":
                self.transition("running", ("paused",))
            self.mode = "stepping"
            self.steps_left += max(1, int(command.get("steps", 1)))

    def wait_paused(self) -> None:
        """Block until a control moves the run on (the job timeout is suspended meanwhile)."""
        self.suspend_alarm()
        last_rq_beat = time.monotonic()
        try:
            while self.mode == "paused":
                item = self.r.blpop([self.control], timeout=self.pause_poll)
                with self.r.pipeline(transaction=False) as pipe:
                    pipe.set(self.lease, self.owner, px=self.lease_ms)
                    pipe.hget(self.keys[0], "status")
                    _, status = pipe.execute()
                self.last_beat = time.monotonic()
                self.alive(status)
                if item is not None:
                    self.apply(item[1])
                if time.monotonic() - last_rq_beat >= RQ_HEARTBEAT and current_worker is not None:
                    current_worker.keep_alive()
                    last_rq_beat = time.monotonic()
        finally:
            self.resume_alarm()
            self.last_check = time.monotonic()

    # -- lease and RQ's job timeout ----------------------------------------------------------------

    def beat(self) -> None:
        self.r.set(self.lease, self.owner, px=self.lease_ms)
        self.last_beat = time.monotonic()

    def _keep_lease(self) -> None:
        """Safety net for long stretches without a minibatch (dataset build, gradcheck, evaluation):
        renew the lease when the training loop has not for a third of its life."""
        period = self.lease_ms / 3000
        while not self._done.wait(period / 2):
            if time.monotonic() - self.last_beat >= period:
                try:
                    self.beat()
                except redis.RedisError:
                    log.warning("run %s: could not renew the lease", self.run_id)

    def suspend_alarm(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.alarm_left += signal.alarm(0)

    def resume_alarm(self) -> None:
        if self.alarm_left:
            signal.alarm(self.alarm_left)
            self.alarm_left = 0


class DeltaboardWorker(SimpleWorker):
    """A non-forking RQ worker (jobs run in the worker process, where numpy is already imported).

    A warm shutdown (SIGTERM/SIGINT) asks the running job to end its run (failed, worker_lost) at its
    next check; the worker then exits. `keep_alive()` lets a long-paused job renew RQ's heartbeats.
    RQ's command pub/sub (remote shutdown, kill-horse) is not used: with redis-py 8 its thread can hold
    up the worker's exit for a minute, and runs are controlled through their control lists instead.
    """

    def work(self, *args, **kwargs) -> bool:
        shutdown_requested.clear()
        return super().work(*args, **kwargs)

    def subscribe(self):
        pass

    def unsubscribe(self):
        pass

    def execute_job(self, job, queue):
        global current_worker
        current_worker = self
        self._current = job
        try:
            super().execute_job(job, queue)
        finally:
            current_worker = None
            self._current = None

    def handle_warm_shutdown_request(self):
        super().handle_warm_shutdown_request()
        shutdown_requested.set()

    def keep_alive(self) -> None:
        job, execution = getattr(self, "_current", None), self.execution
        if job is None or execution is None:
            return
        try:
            self.maintain_heartbeats(job, execution)
        except Exception:
            log.warning("could not renew RQ's heartbeat for job %s", job.id, exc_info=True)

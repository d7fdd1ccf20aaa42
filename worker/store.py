"""Where a run lives in Redis: the one definition of the key layout, the event encoding and the
atomic writes, shared by the API (`app/`, through redis.asyncio) and the worker (`worker/jobs.py`).

Keys (all under `deltaboard:`):
    run:{id}            hash   status, spec (JSON), created_at, started_at, finished_at, progress (JSON),
                               metrics (JSON), error (JSON or ""), client, job_id, last_seq,
                               model_version, model_step, model_epoch (of the latest weights stored)
    run:{id}:events     stream one entry per event; ID "{seq}-0", field "e" = the event's JSON without seq
    run:{id}:control    list   JSON commands for the worker: {"op": pause|resume|step|cancel, "steps"?}
    run:{id}:lease      string the worker's heartbeat; expires LEASE_SECONDS after the last beat
    run:{id}:model      string the latest weights as .npz bytes: a snapshot while the run is active
                               (stored when it starts, pauses and every few seconds), the final weights
                               once it has finished or been canceled
    runs                zset   run ids scored by created_at (ms), for newest-first listing
    dataset:{id}        hash   an uploaded CSV: name, info (JSON), arrays (.npz bytes of X and y), rows,
                               created_at, client
    datasets            zset   dataset ids by created_at
    claimed             set    run ids a worker has picked up and not yet ended (what the reaper checks)
    client:{c}:runs     set    a client's unfinished run ids (for the per-client queue limit)

Sequence numbers come from HINCRBY on the run's `last_seq` inside a Lua script that also XADDs, so
writers in different processes (API and worker) never leave a gap or a duplicate, and nothing is
appended after a terminal status. A new run's hash and its first event (`queued`) are written by one
script (CREATE_RUN_LUA) that also enforces the per-client limit; every later write to the hash goes
through a script that refuses a deleted or ended run, so a worker never resurrects a deleted run.
"""

import io
import json
import re
import time
from typing import Any

import numpy as np

PREFIX = "deltaboard:"
RUNS = PREFIX + "runs"
DATASETS = PREFIX + "datasets"
CLAIMED = PREFIX + "claimed"
LEASE_SECONDS = 30
TERMINAL = ("finished", "failed", "canceled")
ACTIVE = ("queued", "running", "paused")
ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # run and dataset ids: server-made, never a key fragment


def run_key(run_id: str) -> str:
    return f"{PREFIX}run:{run_id}"


def events_key(run_id: str) -> str:
    return f"{PREFIX}run:{run_id}:events"


def control_key(run_id: str) -> str:
    return f"{PREFIX}run:{run_id}:control"


def lease_key(run_id: str) -> str:
    return f"{PREFIX}run:{run_id}:lease"


def model_key(run_id: str) -> str:
    return f"{PREFIX}run:{run_id}:model"


def dataset_key(dataset_id: str) -> str:
    return f"{PREFIX}dataset:{dataset_id}"


def upload_key(dataset_name: str) -> str | None:
    """The dataset hash behind a spec's dataset name 'upload:<id>'; None for a built-in dataset."""
    return dataset_key(dataset_name.split(":", 1)[1]) if dataset_name.startswith("upload:") else None


def client_key(client: str) -> str:
    return f"{PREFIX}client:{client}:runs"


def run_keys(run_id: str) -> list[str]:
    """Every key a run owns (for DELETE)."""
    return [run_key(run_id), events_key(run_id), control_key(run_id), lease_key(run_id), model_key(run_id)]


# --- events -------------------------------------------------------------------------------------


def encode_event(event: dict[str, Any]) -> str:
    """An event (type, run_id, time, payload; no seq) as compact JSON; NaN/inf are refused."""
    return json.dumps(event, separators=(",", ":"), allow_nan=False)


def entry_id(seq: int) -> str:
    return f"{seq}-0"


def decode_entry(entry_id_: bytes | str, fields: dict) -> tuple[int, str]:
    """A stream entry as (seq, the event's full JSON text with seq first)."""
    if isinstance(entry_id_, bytes):
        entry_id_ = entry_id_.decode()
    seq = int(entry_id_.split("-", 1)[0])
    body = fields.get(b"e", fields.get("e"))
    if isinstance(body, bytes):
        body = body.decode()
    return seq, f'{{"seq":{seq},{body[1:]}' if body != "{}" else f'{{"seq":{seq}}}'


def new_event(run_id: str, type_: str, **payload: Any) -> dict[str, Any]:
    return {"type": type_, "run_id": run_id, "time": time.time(), **payload}


# KEYS: run hash, events stream. ARGV: n, then n event JSONs (oldest first), then optional field/value pairs
# to set on the run hash (see append_args). Returns the last new seq, or 0 if the run is gone or ended
# (nothing written).
APPEND_LUA = """
local st = redis.call('HGET', KEYS[1], 'status')
if (not st) or st == 'finished' or st == 'failed' or st == 'canceled' then return 0 end
local n = tonumber(ARGV[1])
for i = n + 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local seq = 0
for i = 2, n + 1 do
  seq = redis.call('HINCRBY', KEYS[1], 'last_seq', 1)
  redis.call('XADD', KEYS[2], seq .. '-0', 'e', ARGV[i])
end
return seq
"""

# KEYS: run hash, model key. ARGV: .npz bytes, then optionally the step and epoch the weights are from.
# Stores the weights only while the run is active (queued, running or paused), so nothing is written
# after it ended or was deleted, and bumps the hash's model_version: returns that version, or 0 when
# refused (nothing written). The worker saves its final weights before it moves the run to its end.
SAVE_MODEL_LUA = """
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= 'queued' and st ~= 'running' and st ~= 'paused' then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
if ARGV[3] then
  redis.call('HSET', KEYS[1], 'model_step', ARGV[2], 'model_epoch', ARGV[3])
else
  redis.call('HDEL', KEYS[1], 'model_step', 'model_epoch')
end
return redis.call('HINCRBY', KEYS[1], 'model_version', 1)
"""

# KEYS: run hash, events stream, runs zset, client set. ARGV: run id, zset score, the client's limit of
# unfinished runs, the `queued` event JSON, the run-key prefix, then the hash's field/value pairs.
# Drops the client's ended or deleted runs from its set, then refuses ({0, n}) when n >= limit remain;
# otherwise writes the hash, the first event (seq 1), the listing and client entries: {1, n + 1}.
CREATE_RUN_LUA = """
local n = redis.call('SCARD', KEYS[4])
if n >= tonumber(ARGV[3]) then
  -- the set also holds runs that have ended since: prune them only when they could matter (O(limit))
  n = 0
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[4])) do
    local st = redis.call('HGET', ARGV[5] .. id, 'status')
    if st == 'queued' or st == 'running' or st == 'paused' then n = n + 1
    else redis.call('SREM', KEYS[4], id) end
  end
  if n >= tonumber(ARGV[3]) then return {0, n} end
end
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'last_seq', 1)
redis.call('XADD', KEYS[2], '1-0', 'e', ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
return {1, n + 1}
"""

# KEYS: run hash, events stream. ARGV: allowed current statuses (comma-separated), new status,
# status event JSON, then field/value pairs to set on the run hash.
# Returns {seq, previous status} on success, {0, current status or ''} when refused.
TRANSITION_LUA = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {0, ''} end
local allowed = false
for s in string.gmatch(ARGV[1], '[^,]+') do if s == st then allowed = true end end
if not allowed then return {0, st} end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local seq = redis.call('HINCRBY', KEYS[1], 'last_seq', 1)
redis.call('XADD', KEYS[2], seq .. '-0', 'e', ARGV[3])
return {seq, st}
"""


# KEYS: run hash, events stream, lease. ARGV: as TRANSITION_LUA. The transition happens only when the
# lease has expired (the worker stopped beating); otherwise {0, 'leased'}.
REAP_LUA = (
    """
if redis.call('EXISTS', KEYS[3]) == 1 then return {0, 'leased'} end
"""
    + TRANSITION_LUA
)


def append_args(events: list[str], **fields: Any) -> list[str]:
    """ARGV for APPEND_LUA: encoded events in order, then run-hash fields."""
    return [str(len(events)), *events, *_field_args(fields)]


def _field_args(fields: dict[str, Any]) -> list[str]:
    """Hash field/value pairs flattened for a script's ARGV; values that are not strings as JSON."""
    return [
        x
        for name, value in fields.items()
        for x in (name, value if isinstance(value, str) else json.dumps(value))
    ]


def transition_args(
    run_id: str, to: str, from_: tuple[str, ...], error: dict | None = None, **fields: Any
) -> tuple[list[str], list[str]]:
    """KEYS and ARGV for TRANSITION_LUA: move run_id to status `to` if it is in `from_`, with its event."""
    now = time.time()
    payload: dict[str, Any] = {"status": to}
    if error is not None:
        payload["error"] = error
    event = encode_event(new_event(run_id, "status", **payload))
    if to == "running":
        fields.setdefault("started_at", now)
    if to in TERMINAL:
        fields.setdefault("finished_at", now)
    fields["error"] = "" if error is None else json.dumps(error)
    argv = [",".join(from_), to, event, *_field_args(fields)]
    return [run_key(run_id), events_key(run_id)], argv


# --- the run record -----------------------------------------------------------------------------

JSON_FIELDS = ("spec", "progress", "metrics", "error")
TIME_FIELDS = ("created_at", "started_at", "finished_at")


def decode_run(run_id: str, raw: dict) -> dict[str, Any]:
    """The run hash (bytes or str keys) as the public run object of contract §4 (without queue_position)."""
    h = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }
    run: dict[str, Any] = {"id": run_id, "status": h.get("status")}
    for name in JSON_FIELDS:
        run[name] = json.loads(h[name]) if h.get(name) else None
    for name in TIME_FIELDS:
        run[name] = float(h[name]) if h.get(name) else None
    run["last_seq"] = int(h.get("last_seq", 0))
    stored = h.get("model_version") and run["status"] != "failed"  # a failed run's weights are dropped
    run["model"] = (
        {
            "version": int(h["model_version"]),
            "step": int(h["model_step"]) if h.get("model_step") else None,
            "epoch": int(h["model_epoch"]) if h.get("model_epoch") else None,
        }
        if stored
        else None
    )
    return run


def new_run_fields(spec_json: str, progress: dict, client: str, created_at: float) -> dict[str, str]:
    """The hash fields of a freshly queued run, before its `queued` event (CREATE_RUN_LUA sets last_seq 1)."""
    return {
        "status": "queued",
        "spec": spec_json,
        "created_at": repr(created_at),
        "progress": json.dumps(progress),
        "metrics": json.dumps(
            {"train_loss": None, "test_loss": None, "train_accuracy": None, "test_accuracy": None}
        ),
        "error": "",
        "client": client,
        "last_seq": "0",
    }


def create_run_args(
    run_id: str, spec_json: str, progress: dict, client: str, created_at: float, limit: int
) -> tuple[list[str], list[str]]:
    """KEYS and ARGV for CREATE_RUN_LUA: a queued run and its `queued` event, if `client` is under `limit`."""
    fields = new_run_fields(spec_json, progress, client, created_at)
    fields["job_id"] = run_id
    event = encode_event({"type": "status", "run_id": run_id, "time": created_at, "status": "queued"})
    argv = [run_id, repr(created_at * 1000), str(limit), event, run_key("")]
    for name, value in fields.items():
        if name != "last_seq":
            argv += [name, value]
    return [run_key(run_id), events_key(run_id), RUNS, client_key(client)], argv


# --- arrays (uploaded datasets, models) ---------------------------------------------------------


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """Arrays as the bytes of an uncompressed .npz file (no pickled objects)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def load_npz(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of .npz bytes; object arrays are refused (allow_pickle=False)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def model_npz(weights: list[np.ndarray], biases: list[np.ndarray]) -> bytes:
    """A network's weights as .npz bytes with W1..WL and b1..bL (1-based, as in the derivation)."""
    arrays = {f"W{k}": W for k, W in enumerate(weights, start=1)}
    arrays.update({f"b{k}": b for k, b in enumerate(biases, start=1)})
    return npz_bytes(**arrays)


def save_model_args(
    run_id: str, weights: list[np.ndarray], biases: list[np.ndarray], step: int, epoch: int
) -> tuple[list[str], list[bytes | int]]:
    """KEYS and ARGV for SAVE_MODEL_LUA: the network's weights as they are after minibatch `step`."""
    return [run_key(run_id), model_key(run_id)], [model_npz(weights, biases), int(step), int(epoch)]


def dataset_fields(name: str, info: dict, X: np.ndarray, y: np.ndarray, client: str, created_at: float):
    """The hash fields of an uploaded dataset (info: the DatasetInfo as a dict)."""
    return {
        "name": name,
        "info": json.dumps(info),
        "arrays": npz_bytes(X=X, y=y),
        "rows": str(len(X)),
        "created_at": repr(created_at),
        "client": client,
    }

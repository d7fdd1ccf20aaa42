"""The reaper: runs whose worker died end `failed` with error type `worker_lost`.

A worker that picks up a run sets the run's lease key (TTL `lease_seconds`), adds the run to the
`claimed` set, and keeps renewing the lease while it trains or waits paused. If the worker process
dies (SIGKILL, OOM, the machine), the lease expires. `reap()` scans the claimed runs and moves each one
whose lease has expired to `failed` through REAP_LUA, which checks the lease and transitions in one
step, so a worker that is merely slow (its lease still alive) is never reaped. Every event written before
the death stays in the run's stream; the `failed` status event is appended after them.

The API runs `reap()` every `Settings.reaper_interval` seconds and so does every worker process (at start
and then periodically), so a dead worker's run is cleaned up as soon as any of them is alive. RQ is left
consistent on its own: the dead job stays in RQ's started registry until RQ's maintenance moves it to the
failed registry, and RQ never re-runs it (jobs are enqueued without retries); even if it did, the job
starts only from `queued` and would return at once.
"""

import logging

import redis

from . import store

log = logging.getLogger("deltaboard.reaper")

WORKER_LOST = {
    "type": "worker_lost",
    "message": "the worker running this run stopped responding (it died or lost Redis) before the run ended",
}


def reap(r: redis.Redis) -> list[str]:
    """Fail every claimed run whose lease has expired; return their ids. Ended or deleted runs are
    dropped from the claimed set."""
    script = r.register_script(store.REAP_LUA)
    reaped = []
    for raw in r.smembers(store.CLAIMED):
        run_id = raw.decode() if isinstance(raw, bytes) else raw
        keys, argv = store.transition_args(run_id, "failed", store.ACTIVE, error=WORKER_LOST)
        seq, current = script(keys=[*keys, store.lease_key(run_id)], args=argv)
        if seq:
            log.warning("run %s: its worker was lost; marked failed", run_id)
            reaped.append(run_id)
        elif current in (b"leased", "leased"):  # its worker is alive: leave it claimed
            continue
        r.srem(store.CLAIMED, run_id)  # reaped now, or already ended ('finished', ...) or deleted ('')
    return reaped


def reap_quietly(r: redis.Redis) -> list[str]:
    """reap() for the periodic loops of the API and the workers: Redis being down is expected and logged
    at debug level, anything else is logged; neither stops the loop."""
    try:
        return reap(r)
    except redis.RedisError as exc:
        log.debug("reaper: Redis unavailable: %r", exc)
    except Exception:
        log.exception("reaper failed")
    return []

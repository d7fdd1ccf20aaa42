"""The worker appends fast step events in batches (worker/jobs.py FLUSH_INTERVAL) without losing,
reordering or holding them back for long; a real RunJob against the session's Redis."""

import time

from service_support import all_events, create_run, tiny_spec

from worker import store
from worker.jobs import FLUSH_INTERVAL, RunJob


def step_event(step: int) -> dict:
    return {"type": "step", "epoch": 1, "step": step, "loss": 0.5, "learning_rate": 0.1, "layers": []}


def counting_appends(job: RunJob) -> list[int]:
    """Wrap the job's APPEND_LUA call; the list collects how many events each call carried."""
    calls: list[int] = []
    append = job._append

    def counted(keys, args):
        calls.append(int(args[0]))
        return append(keys=keys, args=args)

    job._append = counted
    return calls


def test_a_fast_run_streams_every_event_in_order_in_few_round_trips(client, redis_conn):
    # 300 minibatches of a tiny net, a step event on every one: hundreds of events a second
    run = create_run(client, tiny_spec(epochs=100))
    job = RunJob(redis_conn, run["id"], lease_seconds=30)
    calls = counting_appends(job)
    assert job.run() == "finished"

    events = all_events(client, run["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert steps == list(range(1, 301))
    epochs = [e for e in events if e["type"] == "epoch"]
    assert [e["epoch"] for e in epochs] == list(range(1, 101))
    for e in epochs:  # each epoch event follows its own 3 steps and precedes the next epoch's
        i = events.index(e)
        assert events[i - 1]["type"] == "step" and events[i - 1]["step"] == 3 * e["epoch"]
    statuses = [e["status"] for e in events if e["type"] == "status"]
    assert statuses == ["queued", "running", "finished"] and events[-1]["status"] == "finished"

    assert sum(calls) == len(steps) + len(epochs)  # every appended event went through APPEND_LUA
    step_batches = [n for n in calls if n > 1]
    assert step_batches, f"no call carried more than one event: {len(calls)} calls"
    assert len(calls) < sum(calls), calls
    run = client.get(f"/api/runs/{run['id']}").json()
    assert run["last_seq"] == len(events) and run["progress"]["step"] == 300


def test_a_waiting_step_event_goes_out_at_the_next_minibatch_once_its_time_is_up(client, redis_conn):
    run = create_run(client)
    job = RunJob(redis_conn, run["id"], lease_seconds=30)
    job.next_snapshot = float("inf")  # no training here: no weights to snapshot
    # as if it had just flushed and started a minibatch, however slow this machine is
    job.last_flush = job.last_step = time.monotonic() + 3600
    job.append(step_event(1))
    job.append(step_event(2))
    job.before_step()
    assert len(job.pending) == 2 and redis_conn.xlen(store.events_key(run["id"])) == 1
    job.last_flush -= 3600 + FLUSH_INTERVAL  # its time is up
    job.before_step()
    assert job.pending == []
    assert [e["type"] for e in all_events(client, run["id"])] == ["status", "step", "step"]


def test_waiting_events_go_before_a_minibatch_when_the_last_one_was_slow(client, redis_conn):
    run = create_run(client)
    job = RunJob(redis_conn, run["id"], lease_seconds=30)
    job.next_snapshot = float("inf")
    job.last_flush = time.monotonic() + 3600  # just flushed
    job.append(step_event(1))
    assert len(job.pending) == 1
    job.last_step = time.monotonic() - 1  # the minibatch before took a second: the next may too
    job.before_step()
    assert job.pending == [] and redis_conn.xlen(store.events_key(run["id"])) == 2


def test_events_emitted_before_a_cancel_land_before_the_canceled_status(client, redis_conn):
    run = create_run(client)
    job = RunJob(redis_conn, run["id"], lease_seconds=30)
    job.last_flush = time.monotonic() + 3600
    job.append(step_event(1))
    assert len(job.pending) == 1
    assert job.end("canceled") == "canceled"
    events = all_events(client, run["id"])
    assert [(e["type"], e.get("status")) for e in events] == [
        ("status", "queued"),
        ("step", None),
        ("status", "canceled"),
    ]

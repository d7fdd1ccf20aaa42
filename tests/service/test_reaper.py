"""reap() on each kind of claimed run: leased (left alone), lease expired (failed/worker_lost),
already ended or deleted (dropped from the claimed set, nothing written)."""

from service_support import create_run, tiny_spec

from worker import store
from worker.reaper import reap


def claim(redis_conn, run_id: str, status: str, leased: bool) -> None:
    redis_conn.hset(store.run_key(run_id), "status", status)
    redis_conn.sadd(store.CLAIMED, run_id)
    if leased:
        redis_conn.set(store.lease_key(run_id), "worker", px=60_000)


def test_reap_fails_only_unleased_active_runs_and_forgets_ended_ones(client, redis_conn):
    ids = {name: create_run(client, tiny_spec())["id"] for name in ("alive", "lost", "ended")}
    claim(redis_conn, ids["alive"], "running", leased=True)
    claim(redis_conn, ids["lost"], "running", leased=False)
    claim(redis_conn, ids["ended"], "finished", leased=False)
    redis_conn.sadd(store.CLAIMED, "deleted-run")
    ended_seq = redis_conn.hget(store.run_key(ids["ended"]), "last_seq")

    assert reap(redis_conn) == [ids["lost"]]

    assert {m.decode() for m in redis_conn.smembers(store.CLAIMED)} == {ids["alive"]}
    lost = client.get(f"/api/runs/{ids['lost']}").json()
    assert lost["status"] == "failed" and lost["error"]["type"] == "worker_lost"
    assert client.get(f"/api/runs/{ids['alive']}").json()["status"] == "running"
    assert redis_conn.hget(store.run_key(ids["ended"]), "last_seq") == ended_seq  # nothing appended
    assert not redis_conn.exists(store.run_key("deleted-run"))

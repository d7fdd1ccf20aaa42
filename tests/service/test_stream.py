"""`WS /api/runs/{id}/stream` against a real Redis and a real uvicorn server: backlog then live, resume with
`after` (no gap, no duplicate), fan-out to several clients, close codes (1000, 4404, 1008, 1011, shutdown).

Events are written straight into Redis with the store's own Lua scripts, so these tests exercise the relay
alone; the worker's events take the same path.
"""

import asyncio
import json
import socket

import pytest
import stream_support as kit  # tests/service is on sys.path (conftest)
import websockets
from websockets.exceptions import ConnectionClosed

from worker import store


async def test_stream_sends_backlog_then_live_events_then_closes_1000(redis_url):
    async with kit.serve_app(redis_url) as server, kit.Runs(redis_url) as runs:
        run_id = await runs.create()
        await runs.start(run_id)
        for i in range(5):
            await runs.append(run_id, "step", step=i)
        async with websockets.connect(kit.ws_url(server, run_id)) as ws:
            backlog = [json.loads(await ws.recv()) for _ in range(7)]  # queued, running, 5 steps
            for i in range(5, 10):
                await runs.append(run_id, "step", step=i)
            live = [json.loads(await ws.recv()) for _ in range(5)]
            await runs.finish(run_id)
            last = json.loads(await ws.recv())
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1000
        events = [*backlog, *live, last]
        assert [e["seq"] for e in events] == list(range(1, 14))
        assert [e.get("step") for e in events[2:12]] == list(range(10))
        assert (last["type"], last["status"]) == ("status", "finished")
        assert events[0]["status"] == "queued" and events[0]["run_id"] == run_id


async def test_stream_sends_the_stored_json_text_unchanged(redis_url):
    async with kit.serve_app(redis_url) as server, kit.Runs(redis_url) as runs:
        run_id = await runs.create()
        await runs.append(run_id, "step", loss=0.1 + 0.2, name="ü ☃")
        await runs.finish(run_id)
        texts, code = await kit.collect(kit.ws_url(server, run_id))
        stored = await runs.stored_texts(run_id)
        assert code == 1000
        assert texts == stored
        assert json.loads(texts[1])["loss"] == 0.1 + 0.2


async def test_stream_resumes_after_last_seen_seq_without_gap_or_duplicate(redis_url):
    async with kit.serve_app(redis_url) as server, kit.Runs(redis_url) as runs:
        run_id = await runs.create()
        await runs.start(run_id)
        writer = asyncio.create_task(runs.write_steps(run_id, n=150, every=0.002))
        first: list[int] = []
        async with websockets.connect(kit.ws_url(server, run_id)) as ws:
            while len(first) < 40:
                first.append(json.loads(await ws.recv())["seq"])
        # disconnected mid-run; events keep coming; resume from the last one seen
        texts, code = await kit.collect(kit.ws_url(server, run_id, after=first[-1]))
        await writer
        rest = [json.loads(t)["seq"] for t in texts]
        total = await runs.last_seq(run_id)
        assert code == 1000
        assert first + rest == list(range(1, total + 1))
        assert total == 2 + 150 + 1


async def test_two_clients_on_one_run_receive_identical_sequences(redis_url):
    async with kit.serve_app(redis_url) as server, kit.Runs(redis_url) as runs:
        run_id = await runs.create()
        await runs.start(run_id)
        clients = [asyncio.create_task(kit.collect(kit.ws_url(server, run_id))) for _ in range(2)]
        await kit.wait_for_subscribers(server, run_id, 2)
        await runs.write_steps(run_id, n=120, every=0.001)
        (a, code_a), (b, code_b) = await asyncio.gather(*clients)
        assert (code_a, code_b) == (1000, 1000)
        assert a == b == await runs.stored_texts(run_id)
        assert len(a) == 2 + 120 + 1
        # one Redis reader served both clients, and it is gone once they are
        assert await kit.wait_for_no_readers(server)


async def test_stream_of_a_finished_run_replays_it_and_closes_1000(redis_url):
    async with kit.serve_app(redis_url) as server, kit.Runs(redis_url) as runs:
        run_id = await runs.create()
        await runs.start(run_id)
        await runs.write_steps(run_id, n=3, every=0)
        texts, code = await kit.collect(kit.ws_url(server, run_id, after=2))
        assert code == 1000
        assert [json.loads(t)["seq"] for t in texts] == [3, 4, 5, 6]
        texts, code = await kit.collect(kit.ws_url(server, run_id, after=6))  # nothing left: closes at once
        assert (texts, code) == ([], 1000)


async def test_stream_of_unknown_run_closes_4404(redis_url):
    async with kit.serve_app(redis_url) as server:
        texts, code = await kit.collect(kit.ws_url(server, "no-such-run"))
        assert (texts, code) == ([], 4404)


async def test_stream_of_a_run_deleted_while_watched_closes_4404(redis_url):
    async with kit.serve_app(redis_url, block_ms=100) as server, kit.Runs(redis_url) as runs:
        run_id = await runs.create()
        client = asyncio.create_task(kit.collect(kit.ws_url(server, run_id)))
        await kit.wait_for_subscribers(server, run_id, 1)
        await runs.redis.delete(*store.run_keys(run_id))
        texts, code = await asyncio.wait_for(client, 10)
        assert code == 4404
        assert [json.loads(t)["status"] for t in texts] == ["queued"]


@pytest.mark.parametrize("after", ["-1", "abc", "1.5"])
async def test_stream_with_bad_after_closes_1008(redis_url, after):
    async with kit.serve_app(redis_url) as server, kit.Runs(redis_url) as runs:
        run_id = await runs.create()
        texts, code = await kit.collect(kit.ws_url(server, run_id) + f"?after={after}")
        assert (texts, code) == ([], 1008)


async def test_stream_closes_1011_when_redis_is_unreachable(redis_url):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    async with kit.serve_app(dead) as server:
        texts, code = await kit.collect(kit.ws_url(server, "any-run"))
        assert (texts, code) == ([], 1011)


async def test_server_shutdown_closes_open_streams_and_stops_readers(redis_url):
    async with kit.Runs(redis_url) as runs:
        run_id = await runs.create()
        async with kit.serve_app(redis_url) as server:
            client = asyncio.create_task(kit.collect(kit.ws_url(server, run_id)))
            await kit.wait_for_subscribers(server, run_id, 1)
            hub = server.app.state.relay
        texts, code = await asyncio.wait_for(client, 15)
        assert code in (1001, 1012)  # going away / service restart: reconnect later with `after`
        assert [json.loads(t)["seq"] for t in texts] == [1]
        assert hub.stats() == {}


# --- the handoff between backlog (XRANGE) and live fan-out, driven by hand --------------------------


class FakeSocket:
    """Stands in for the websocket: records frames, and calls `on_send(seq)` after each."""

    def __init__(self, on_send=None) -> None:
        self.frames: list[str] = []
        self.on_send = on_send

    @property
    def seqs(self) -> list[int]:
        return [json.loads(t)["seq"] for t in self.frames]

    async def send_text(self, text: str) -> None:
        self.frames.append(text)
        if self.on_send is not None:
            await self.on_send(json.loads(text)["seq"])


def hand_driven_reader(hub, run_id: str, last: int):
    """Register a reader with no task: the test pushes its fan-out by hand."""
    from app.relay import _Reader

    reader = hub._readers[run_id] = _Reader(run_id, last=last)
    return reader


async def until(predicate, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_sender_drops_live_duplicates_and_fills_holes_from_the_stream(redis_url):
    from app.relay import RelayHub, Subscription
    from app.routers.stream import EventSender

    async with kit.Runs(redis_url) as runs:
        run_id = await runs.create()
        await runs.start(run_id)
        for i in range(8):
            await runs.append(run_id, "step", step=i)  # seqs 1..10 in the stream
        hub = RelayHub(runs.redis)
        reader = hand_driven_reader(hub, run_id, last=3)  # a reader behind the backlog
        ws = FakeSocket()
        sub = Subscription(run_id, limit=100)
        sender = asyncio.create_task(EventSender(ws, hub, run_id, after=0).run(sub))
        await until(lambda: sub in reader.subs and len(ws.frames) == 10)
        stored = await runs.stored_texts(run_id)
        for seq in range(4, 11):  # the reader catches up: all duplicates
            sub.push(seq, stored[seq - 1])
        seq11 = await runs.append(run_id, "step", step=8)
        await runs.append(run_id, "step", step=9)
        await runs.append(run_id, "step", step=10)
        seq14 = await runs.append(run_id, "step", step=11)
        stored = await runs.stored_texts(run_id)
        sub.push(seq11, stored[seq11 - 1])
        sub.push(seq14, stored[seq14 - 1])  # 12 and 13 never reach the buffer: a hole
        seq15 = await runs.finish(run_id)
        sub.push(seq15, (await runs.stored_texts(run_id))[-1])
        assert await asyncio.wait_for(sender, 5) == (1000, "Run ended")
        assert ws.seqs == list(range(1, 16))
        assert ws.frames == await runs.stored_texts(run_id)


async def test_sender_catches_up_on_events_fanned_out_before_it_subscribed(redis_url):
    from app.relay import RelayHub, Subscription
    from app.routers.stream import EventSender

    async with kit.Runs(redis_url) as runs:
        run_id = await runs.create()
        await runs.start(run_id)
        hub = RelayHub(runs.redis)
        reader = hand_driven_reader(hub, run_id, last=2)

        async def meanwhile(seq: int) -> None:
            if seq == 2:  # the backlog is sent; before we subscribe, the shared reader moves on
                await runs.append(run_id, "step", step=0)
                await runs.append(run_id, "step", step=1)
                reader.last = 4

        ws = FakeSocket(on_send=meanwhile)
        sub = Subscription(run_id, limit=100)
        sender = asyncio.create_task(EventSender(ws, hub, run_id, after=0).run(sub))
        # with no further event (a paused run), the client still gets 3 and 4 at once
        await until(lambda: len(ws.frames) == 4)
        assert sub in reader.subs
        seq = await runs.finish(run_id)
        sub.push(seq, (await runs.stored_texts(run_id))[-1])
        assert await asyncio.wait_for(sender, 5) == (1000, "Run ended")
        assert ws.seqs == [1, 2, 3, 4, 5]


async def test_clients_joining_at_random_moments_each_get_exactly_the_rest(redis_url):
    import random

    rng = random.Random(7)
    async with kit.serve_app(redis_url) as server, kit.Runs(redis_url) as runs:
        run_id = await runs.create()
        await runs.start(run_id)
        writer = asyncio.create_task(runs.write_steps(run_id, n=300, every=0.001))
        clients = []
        for _ in range(8):
            await asyncio.sleep(rng.uniform(0, 0.05))
            after = rng.randint(0, await runs.last_seq(run_id))
            url = kit.ws_url(server, run_id, after=after)
            clients.append((after, asyncio.create_task(kit.collect(url))))
        await writer
        total = await runs.last_seq(run_id)
        stored = await runs.stored_texts(run_id)
        for after, client in clients:
            texts, code = await client
            assert code == 1000
            assert texts == stored[after:total]


class FlakyRedis:
    """A Redis client whose first `failures` XREADs fail as if the connection dropped."""

    def __init__(self, redis, failures: int) -> None:
        self.redis, self.failures = redis, failures

    def __getattr__(self, name):
        return getattr(self.redis, name)

    async def xread(self, *args, **kwargs):
        from redis.exceptions import ConnectionError

        if self.failures:
            self.failures -= 1
            raise ConnectionError("connection dropped")
        return await self.redis.xread(*args, **kwargs)


async def test_reader_rides_out_a_dropped_connection(redis_url):
    from app.relay import RelayHub, Subscription

    async with kit.Runs(redis_url) as runs:
        run_id = await runs.create()
        hub = RelayHub(FlakyRedis(runs.redis, failures=2), block_ms=100)
        sub = Subscription(run_id, limit=100)
        hub.subscribe(sub, after=1)
        await runs.write_steps(run_id, n=3, every=0)
        await until(lambda: sub.end is not None)
        assert sub.end == "ended"
        assert [seq for seq, _ in sub.items] == [2, 3, 4, 5]
        await hub.close()


async def test_reader_that_cannot_reach_redis_ends_its_clients_with_error(redis_url):
    from app.relay import ERROR, RelayHub, Subscription

    async with kit.Runs(redis_url) as runs:
        run_id = await runs.create()
        hub = RelayHub(FlakyRedis(runs.redis, failures=100), retries=2)
        subs = [Subscription(run_id, limit=10) for _ in range(2)]
        for sub in subs:
            hub.subscribe(sub, after=1)
        await until(lambda: all(s.end for s in subs))
        assert [s.end for s in subs] == [ERROR, ERROR]
        assert hub.stats() == {}


async def test_a_real_run_streams_live_from_a_real_worker(redis_conn, redis_url, start_worker):
    import httpx
    from service_support import tiny_spec

    async with kit.serve_app(redis_url) as server:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=base) as http:
            run = (await http.post("/api/runs", json=tiny_spec(epochs=5))).json()
            watcher = asyncio.create_task(kit.collect(kit.ws_url(server, run["id"])))
            await kit.wait_for_subscribers(server, run["id"], 1)
            start_worker()
            texts, code = await watcher
            stored = (await http.get(f"/api/runs/{run['id']}/events", params={"limit": 10_000})).json()
    events = [json.loads(t) for t in texts]
    assert code == 1000
    assert events == stored
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["status"] for e in events if e["type"] == "status"] == ["queued", "running", "finished"]
    assert sum(e["type"] == "epoch" for e in events) == 5

"""Fan a run's event stream out to its websocket clients: one Redis reader per run per API process.

    worker ──XADD──▶ run:{id}:events ──XREAD BLOCK (one reader task per run)──▶ Subscription ──▶ websocket
                                    ╰──XRANGE (backlog, catch-up, gap fill: the client's own sender)──╯

A reader task XREADs the run's stream from the last ID it has seen and pushes each entry, decoded once
to `(seq, json_text)` by `worker.store.decode_entry`, into the bounded buffer of every `Subscription` of
that run. It stops when the run has no subscribers left, after the run's terminal `status` event, when
the run is deleted, on a Redis error, or at shutdown; it tells the subscribers why through `Subscription.end`.

A subscriber that falls `limit` events behind is cut off (`end == "overflow"`): its buffer is dropped at
once, so memory stays bounded whatever the client does, and it resumes later with `?after=<last seq>`.

Gap-free handoff is the sender's job (see `app.routers.stream`): it reads the backlog with XRANGE,
subscribes, catches up with XRANGE once more (events fanned out before it subscribed), then sends live
events, dropping any seq it has already sent and filling any hole with XRANGE.
"""

import asyncio
import contextlib
import json
import logging
from collections import deque
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from worker import store

log = logging.getLogger("deltaboard.relay")

# Why a subscription stopped receiving: the run ended (terminal status read), the run was deleted,
# Redis failed, the client fell `limit` events behind, or the server is shutting down.
ENDED, GONE, ERROR, OVERFLOW, SHUTDOWN = "ended", "gone", "error", "overflow", "shutdown"
_HEAD = 64  # chars of an event's text that hold `{"seq":<n>,"type":"<type>"`


def is_terminal(text: str) -> bool:
    """Whether an event's JSON text is the run's terminal `status` event.

    Called for every event (by the reader, and by each client's sender), so it looks only at the head:
    the store's compact encoding puts `"type"` right after `"seq"` (`store.decode_entry`, `new_event`).
    """
    head = text[:_HEAD]
    if '"type":"status"' not in (head if '"type":' in head else text):  # cheap pre-filter
        return False
    event = json.loads(text)
    return event.get("type") == "status" and event.get("status") in store.TERMINAL


def run_state(status: bytes | None, last_seq: bytes | None, seen: int) -> str | None:
    """From a run hash's `status` and `last_seq`: GONE when the run does not exist, ENDED when it has
    ended and `seen` is (at least) its last seq, None while there is more to read."""
    if status is None:
        return GONE
    if status.decode() in store.TERMINAL and seen >= int(last_seq or 0):
        return ENDED
    return None


class Subscription:
    """One websocket client's view of a run: a bounded buffer of `(seq, json_text)` in seq order.

    `ready` is set whenever there is something to take (events or an end); `end` says why the relay
    stopped feeding this client (None while live); `high_water` is the most events ever buffered at once.
    """

    def __init__(self, run_id: str, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.run_id = run_id
        self.limit = limit
        self.items: deque[tuple[int, str]] = deque()
        self.ready = asyncio.Event()
        self.end: str | None = None
        self.cut_off = asyncio.Event()  # set on OVERFLOW/SHUTDOWN: stop even a sender blocked in send
        self.high_water = 0
        self.dropped = 0  # events discarded when the client was cut off

    def push(self, seq: int, text: str) -> None:
        if self.end is not None:
            return
        if len(self.items) >= self.limit:
            self.dropped = len(self.items) + 1
            self.items.clear()
            self.finish(OVERFLOW)
            return
        self.items.append((seq, text))
        self.high_water = max(self.high_water, len(self.items))
        self.ready.set()

    def finish(self, why: str) -> None:
        if self.end is None:
            self.end = why
            if why in (OVERFLOW, SHUTDOWN):
                self.cut_off.set()
        self.ready.set()

    def pop(self) -> tuple[int, str] | None:
        """The oldest buffered event, or None (then `ready` is cleared unless the subscription ended).

        Take events one at a time, so an event the sender has not sent yet still counts toward `limit`."""
        if self.items:
            return self.items.popleft()
        if self.end is None:
            self.ready.clear()
        return None


@dataclass
class _Reader:
    run_id: str
    last: int  # seq of the last entry read from the stream
    subs: set[Subscription] = field(default_factory=set)
    task: asyncio.Task | None = None


class RelayHub:
    """The per-process registry of run readers. Use from one event loop.

    redis: a `redis.asyncio.Redis` (decode_responses=False); block_ms: how long one XREAD waits
    before the reader checks that the run still exists; count: most entries per XREAD;
    fetches: how many clients' own XRANGE reads (backlog, catch-up) may use Redis at once, so a crowd
    reconnecting together (after a restart, say) queues here instead of exhausting the connection pool.
    A reader retries a dropped connection `retries` times (short backoff) before giving up on its clients.
    """

    def __init__(
        self, redis: Redis, block_ms: int = 1000, count: int = 500, fetches: int = 16, retries: int = 3
    ) -> None:
        self.redis = redis
        self.block_ms = block_ms
        self.count = count
        self.retries = retries
        self.fetch_slots = asyncio.Semaphore(fetches)
        self._readers: dict[str, _Reader] = {}
        self._closed = False

    def subscribe(self, sub: Subscription, after: int) -> None:
        """Start feeding `sub`, a client that has seen every event of its run up to seq `after`.

        Synchronous, so no event can slip between this call and the reader's next fan-out: every entry
        the reader reads from now on reaches `sub`; earlier ones are in Redis for the sender's XRANGE.
        """
        if self._closed:
            sub.finish(SHUTDOWN)
            return
        reader = self._readers.get(sub.run_id)
        if reader is None:
            reader = self._readers[sub.run_id] = _Reader(sub.run_id, last=after)
            reader.task = asyncio.create_task(self._read(reader), name=f"relay:{sub.run_id}")
        reader.subs.add(sub)

    def unsubscribe(self, sub: Subscription) -> None:
        reader = self._readers.get(sub.run_id)
        if reader is not None:
            reader.subs.discard(sub)
        sub.items.clear()

    def stats(self) -> dict:
        """Readers and their subscribers' buffers, for tests and benchmarks."""
        return {
            run_id: {
                "last": r.last,
                "subscribers": [
                    {"buffered": len(s.items), "high_water": s.high_water, "limit": s.limit} for s in r.subs
                ],
            }
            for run_id, r in self._readers.items()
        }

    async def close(self) -> None:
        """Stop every reader and tell their subscribers the server is going away."""
        self._closed = True
        readers = list(self._readers.values())
        self._readers.clear()
        for r in readers:
            for sub in r.subs:
                sub.finish(SHUTDOWN)
            if r.task is not None:
                r.task.cancel()
        for r in readers:
            if r.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await r.task

    def _stop(self, reader: _Reader, why: str) -> None:
        if self._readers.get(reader.run_id) is reader:
            del self._readers[reader.run_id]
        for sub in reader.subs:
            sub.finish(why)
        reader.subs.clear()

    async def _retrying(self, command, *args, **kwargs):
        for attempt in range(self.retries + 1):
            try:
                return await command(*args, **kwargs)
            except (RedisConnectionError, RedisTimeoutError):
                if attempt == self.retries:
                    raise
                await asyncio.sleep(0.05 * 2**attempt)

    async def _read(self, reader: _Reader) -> None:
        key = store.events_key(reader.run_id)
        try:
            while reader.subs:
                # no more per read than the smallest buffer holds, so one burst cannot cut off a client
                count = min(self.count, *(s.limit for s in reader.subs))
                reply = await self._retrying(
                    self.redis.xread, {key: store.entry_id(reader.last)}, count=count, block=self.block_ms
                )
                if not reader.subs:  # nobody left: stop without an await before unregistering
                    break
                if not reply:
                    run_key = store.run_key(reader.run_id)
                    fields = await self._retrying(self.redis.hmget, run_key, "status", "last_seq")
                    state = run_state(*fields, reader.last)
                    if state is not None:
                        self._stop(reader, state)
                        return
                    continue
                subs = list(reader.subs)  # no await below: the set cannot change during the fan-out
                for _key, entries in reply:
                    for entry_id, fields in entries:
                        seq, text = store.decode_entry(entry_id, fields)
                        reader.last = seq
                        for sub in subs:
                            sub.push(seq, text)  # a no-op once the sub has ended (cut off)
                        if is_terminal(text):
                            self._stop(reader, ENDED)
                            return
                reader.subs.difference_update([sub for sub in subs if sub.end is not None])
            self._stop(reader, ENDED)
        except asyncio.CancelledError:
            self._stop(reader, SHUTDOWN)
            raise
        except Exception:
            log.warning("relay reader for run %s failed", reader.run_id, exc_info=True)
            self._stop(reader, ERROR)

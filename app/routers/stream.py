"""`WS /api/runs/{id}/stream?after=SEQ` (contract §5): a run's events, backlog then live, no gap or duplicate.

Close codes: 1000 after the terminal `status` event (or at once when the run ended at or before `after`);
4404 unknown (or deleted) run; 4401 missing or wrong token; 4403 foreign Origin; 1008 bad `after`;
4008 the client fell `ws_client_buffer` events behind (reconnect with `?after=<last seq>`);
1011 Redis failed (reconnect the same way); 1001 the relay is shutting down (uvicorn itself sends 1012
to open sockets when the server stops).
The socket is always accepted before it is closed, so browsers see the code.
"""

import asyncio
import contextlib
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from redis.exceptions import RedisError

from app import relay
from app.deps import SettingsDep
from app.security import websocket_allowed
from worker import store

router = APIRouter(prefix="/api/runs", tags=["stream"])
log = logging.getLogger("deltaboard.stream")

PAGE = 500  # events per XRANGE
CLOSE_WAIT = 10.0  # seconds to wait for a close frame to reach a client that stopped reading

CLOSE_FOR_END = {
    relay.GONE: (4404, "Run deleted"),
    relay.ERROR: (1011, "Event store unavailable; reconnect with ?after=<last seq>"),
    relay.OVERFLOW: (4008, "Client too slow; reconnect with ?after=<last seq>"),
    relay.SHUTDOWN: (1001, "Server shutting down; reconnect with ?after=<last seq>"),
}


class _Done(Exception):
    """The stream is over: close with this code and reason."""

    def __init__(self, code: int, reason: str = "") -> None:
        self.code, self.reason = code, reason


class EventSender:
    """Sends one client its events in seq order, tracking the last seq sent."""

    def __init__(self, websocket: WebSocket, hub: relay.RelayHub, run_id: str, after: int) -> None:
        self.ws, self.hub, self.run_id, self.last = websocket, hub, run_id, after
        self.key = store.events_key(run_id)

    async def redis(self, command: str, *args, **kwargs):
        """One Redis call of this client's own, in one of the hub's fetch slots."""
        async with self.hub.fetch_slots:
            return await getattr(self.hub.redis, command)(*args, **kwargs)

    async def emit(self, seq: int, text: str) -> None:
        await self.ws.send_text(text)  # the stored JSON as-is
        self.last = seq
        if relay.is_terminal(text):
            raise _Done(1000, "Run ended")

    async def send(self, seq: int, text: str) -> None:
        """A live event from the relay: drop it if already sent, fill a hole before it from the stream."""
        if seq > self.last + 1:
            await self.fill(upto=seq - 1)
        if seq > self.last:
            await self.emit(seq, text)

    async def fill(self, upto: int | None = None) -> None:
        """Send every stored event after self.last (up to seq `upto`, else to the stream's end)."""
        end = "+" if upto is None else store.entry_id(upto)
        while True:
            start = f"({store.entry_id(self.last)}"
            entries = await self.redis("xrange", self.key, min=start, max=end, count=PAGE)
            for entry_id, fields in entries:
                await self.emit(*store.decode_entry(entry_id, fields))
            if len(entries) < PAGE:
                return

    async def run(self, sub: relay.Subscription) -> tuple[int, str] | None:
        """Stream until the run ends or the relay stops feeding `sub`: the close code and reason,
        or None when the client went away."""
        try:
            fields = await self.redis("hmget", store.run_key(self.run_id), "status", "last_seq")
            state = relay.run_state(*fields, self.last)
            if state == relay.GONE:
                return 4404, "Run not found"
            if state == relay.ENDED:
                return 1000, "Run ended"
            await self.fill()  # the backlog, paced by the socket; nothing is buffered for us yet
            self.hub.subscribe(sub, self.last)
            await self.fill()  # whatever was fanned out before we subscribed
            while True:
                await sub.ready.wait()
                while (item := sub.pop()) is not None:
                    await self.send(*item)
                if sub.end == relay.ENDED:
                    await self.fill()  # the terminal event, if the reader stopped before it reached us
                    return 1000, "Run ended"
                if sub.end is not None:
                    return CLOSE_FOR_END[sub.end]
        except _Done as done:
            return done.code, done.reason
        except (WebSocketDisconnect, OSError):
            return None
        except RedisError as exc:
            log.warning("stream of run %s: Redis failed: %r", self.run_id, exc)
            return CLOSE_FOR_END[relay.ERROR]


async def _until_disconnect(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect, OSError):
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # clients have nothing to say; ignore what they send


async def _until_cut_off(sub: relay.Subscription) -> tuple[int, str]:
    """The relay cut this client off (overflow, shutdown), possibly while its sender is stuck in send."""
    await sub.cut_off.wait()
    return CLOSE_FOR_END[sub.end]


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(code, reason[:120]), CLOSE_WAIT)


@router.websocket("/{run_id}/stream")
async def stream_run(websocket: WebSocket, run_id: str, settings: SettingsDep) -> None:
    await websocket.accept()
    refused = websocket_allowed(websocket, settings)
    if refused is not None:
        await _close(websocket, *refused)
        return
    if not store.ID.match(run_id):
        await _close(websocket, 4404, "Run not found")
        return
    raw_after = websocket.query_params.get("after", "0")
    if not (raw_after.isascii() and raw_after.isdigit()):
        await _close(websocket, 1008, "after must be a non-negative integer (a seq)")
        return
    hub: relay.RelayHub = websocket.app.state.relay
    sender = EventSender(websocket, hub, run_id, int(raw_after))
    sub = relay.Subscription(run_id, settings.ws_client_buffer)
    tasks = [
        asyncio.create_task(sender.run(sub)),
        asyncio.create_task(_until_disconnect(websocket)),
        asyncio.create_task(_until_cut_off(sub)),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.unsubscribe(sub)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    first = next(t for t in tasks if t in done)
    if first.exception() is not None:
        log.error("stream of run %s failed", run_id, exc_info=first.exception())
        outcome: tuple[int, str] | None = (1011, "Internal error; reconnect with ?after=<last seq>")
    else:
        outcome = first.result()
    if outcome is not None:
        await _close(websocket, *outcome)

"""The service's guards, installed by `install_security(app, settings)`:

- a bearer token (`Settings.api_token`) on every `/api` HTTP call and websocket, when set: HTTP answers
  401 `{"detail": ...}` with `WWW-Authenticate: Bearer`; a websocket may carry it as `?token=` (browsers
  cannot set headers on a WebSocket) or in the Authorization header, and is closed with 4401 without it.
  The docs (`/docs`, `/openapi.json`) and the dashboard stay open.
- the websocket `Origin` against an allow-list (`Settings.allowed_origins` plus `cors_origins`; when both
  are empty, same origin only: Origin's host:port equals the Host header); no Origin (a non-browser client)
  passes; a foreign one is closed with 4403 (so another site's page cannot read a user's streams).
- CORS only when `Settings.cors_origins` is set, for exactly those origins.
- request bodies capped at `Settings.max_body_bytes` (uploads to `POST /api/datasets`: the upload limit plus
  multipart overhead), counted as they stream in: 413 `{"detail": ...}`, never read whole into memory.

All of it is pure ASGI middleware, so streaming responses and websockets pass through untouched.
"""

import json
import logging
import re
import secrets
from urllib.parse import parse_qsl, urlsplit

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from app.settings import Settings
from worker.nn.limits import LIMITS

UPLOAD_PATH = "/api/datasets"
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around an uploaded CSV
DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def install_security(app: FastAPI, settings: Settings) -> None:
    """Add the token, Origin, body-size and CORS guards to `app` (CORS outermost, so preflights and
    401s carry CORS headers)."""
    app.add_middleware(SecurityMiddleware, settings=settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type"],
        )
    if settings.api_token:
        _redact_tokens_in_logs()


# --- checks shared by the middleware and the stream router ---------------------------------------


def _path(scope: Scope) -> str:
    """The request path inside the app (without a proxy's root_path)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _api_path(scope: Scope) -> bool:
    path = _path(scope)
    return path == "/api" or path.startswith("/api/")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, else None."""
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


def _bearer_ok(scope: Scope, token: str, allow_query: bool) -> bool:
    given = bearer_token(_header(scope, b"authorization"))
    if given is None and allow_query:
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        given = query.get("token")
    return given is not None and secrets.compare_digest(given.encode(), token.encode())


def _origin_key(origin: str, default_scheme: str = "http") -> tuple[str, str, int] | None:
    """An origin or host as (scheme, host, port) with the default port filled in; None if unparsable."""
    parts = urlsplit(origin if "//" in origin else f"{default_scheme}://{origin}")
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port


def origin_allowed(scope: Scope, settings: Settings) -> bool:
    """Whether a websocket's Origin may read this server's streams (see the module docstring)."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    allowed = [*settings.allowed_origins, *settings.cors_origins]
    if "*" in allowed:
        return True
    key = _origin_key(origin)
    if key is None:
        return False
    if allowed:
        return key in {_origin_key(a) for a in allowed}
    host = _header(scope, b"host")
    if host is None:
        return False
    secure = scope.get("scheme") in ("wss", "https")
    own = _origin_key(host, "https" if secure else "http")
    return own is not None and own[1:] == key[1:]  # host and port; the scheme may differ behind a proxy


def websocket_allowed(websocket: WebSocket | Scope, settings: Settings) -> tuple[int, str] | None:
    """None if this websocket may proceed, else the (close code, reason) to close it with."""
    scope = websocket.scope if isinstance(websocket, WebSocket) else websocket
    if not origin_allowed(scope, settings):
        return 4403, "Origin not allowed"
    if settings.api_token and not _bearer_ok(scope, settings.api_token, allow_query=True):
        return 4401, "Missing or invalid token (use ?token= or an Authorization: Bearer header)"
    return None


# --- the middleware ------------------------------------------------------------------------------


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body too large (limit {limit} bytes)")


async def _send_json(
    send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SecurityMiddleware:
    """Token and body-size guards for HTTP; token and Origin guards for websockets (see module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def body_limit(self, scope: Scope) -> int:
        if scope.get("method") == "POST" and _path(scope).rstrip("/") == UPLOAD_PATH:
            return LIMITS.max_upload_bytes + MULTIPART_OVERHEAD
        return self.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and _api_path(scope):
            refused = websocket_allowed(scope, self.settings)
            if refused is not None:
                await self._refuse_websocket(receive, send, *refused)
                return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = self.settings.api_token
        if token and _api_path(scope) and not _bearer_ok(scope, token, allow_query=False):
            challenge = [(b"www-authenticate", b'Bearer realm="deltaboard"')]
            await _send_json(send, 401, "Missing or invalid API token", challenge)
            return
        limit = self.body_limit(scope)
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _send_json(send, 413, BodyTooLarge(limit).detail)
            return
        await self._call_counting(scope, receive, send, limit)

    async def _call_counting(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Pass the request on, counting its body chunks; over the limit, the app's read raises 413."""
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as exc:  # the app did not turn it into a response itself
            if started:
                raise
            await _send_json(send, 413, exc.detail)

    @staticmethod
    async def _refuse_websocket(receive: Receive, send: Send, code: int, reason: str) -> None:
        # Accept, then close: a browser sees the close code only on an accepted socket.
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": code, "reason": reason})


# --- logs ------------------------------------------------------------------------------------------

_TOKEN_IN_URL = re.compile(r"(token=)[^&\s\"']+")


class _RedactTokens(logging.Filter):
    """Hide `?token=...` in access and websocket log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, str) and "token=" in a for a in record.args):
            record.args = tuple(
                _TOKEN_IN_URL.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def _redact_tokens_in_logs() -> None:
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactTokens) for f in logger.filters):
            logger.addFilter(_RedactTokens())

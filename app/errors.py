"""The service's exceptions and their one mapping to HTTP: every error is JSON `{"detail": ...}`.

Redis being unreachable (or refusing writes) is a 503 on every endpoint, never a stack trace; the
clients reconnect by themselves, so the service recovers as soon as Redis is back.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

log = logging.getLogger("deltaboard.api")


class ServiceError(Exception):
    status_code = 500

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    """The run is in the wrong state for this request."""

    status_code = 409


class TooLarge(ServiceError):
    status_code = 413


class TooManyRuns(ServiceError):
    status_code = 429


def run_not_found() -> NotFound:
    return NotFound("Run not found")


async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


async def _redis_error(request: Request, exc: RedisError) -> JSONResponse:
    log.warning("%s %s: Redis error: %r", request.method, request.url.path, exc)
    detail = f"Redis is unavailable ({type(exc).__name__}); try again shortly"
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "2"})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed", request.method, request.url.path)
    return JSONResponse({"detail": "Internal server error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RedisError, _redis_error)
    app.add_exception_handler(Exception, _unexpected)

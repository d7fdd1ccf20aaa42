"""Dependency aliases for the routers: settings, the Redis client, the run service, the client's identity."""

import hashlib
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from app.runs import RunService
from app.security import bearer_token
from app.settings import Settings, get_settings


def get_redis(request: Request) -> Redis:
    return request.app.state.redis


def get_runs(request: Request) -> RunService:
    return request.app.state.runs


def client_id(request: Request) -> str:
    """Who is asking, for per-client limits: a digest of the bearer token if there is one, else the IP.
    (The token itself is never stored.)"""
    token = bearer_token(request.headers.get("authorization"))
    if token:
        return "token:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    return "ip:" + (request.client.host if request.client else "unknown")


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
RunsDep = Annotated[RunService, Depends(get_runs)]
ClientDep = Annotated[str, Depends(client_id)]

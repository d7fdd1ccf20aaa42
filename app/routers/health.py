"""`GET /api/health` and `GET /api/limits`."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from app.deps import RunsDep
from app.schemas import Health, LimitsPublic
from worker.nn.limits import LIMITS

router = APIRouter(prefix="/api", tags=["meta"])


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"description": "Redis is unreachable", "content": {"application/json": {}}}},
)
async def health(runs: RunsDep):
    """Redis reachable, and how many RQ workers are alive on the run queue."""
    try:
        await runs.r.ping()
        workers = await runs.live_workers()
    except RedisError as exc:
        body = {
            "status": "unavailable",
            "redis": "unavailable",
            "workers": None,
            "detail": f"Redis is unavailable ({type(exc).__name__})",
        }
        return JSONResponse(body, status_code=503)
    return {"status": "ok", "redis": "ok", "workers": workers}


@router.get("/limits", response_model=LimitsPublic)
async def limits():
    """The server's limits on specs (layers, units, parameters, epochs, samples, batch size), uploads
    (bytes, columns) and unfinished runs per client."""
    return LIMITS

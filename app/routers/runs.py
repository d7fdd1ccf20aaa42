"""`/api/runs`: create, list, read, control, delete runs; their events, model and predictions."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from app.deps import ClientDep, RunsDep
from app.errors import run_not_found
from app.runs import ModelInfo
from app.schemas import PredictRequest, PredictResponse, RunCreate, RunList, RunPublic, Status, StepRequest
from worker import store

router = APIRouter(prefix="/api/runs", tags=["runs"])

DETAIL = {"application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "string"}}}}}
NOT_FOUND = {404: {"description": "Run not found", "content": DETAIL}}
CONFLICT = {409: {"description": "The run is in the wrong state for this control", "content": DETAIL}}


def run_id_path(run_id: str) -> str:
    """A run id; anything that cannot be one is simply an unknown run (404)."""
    if not store.ID.match(run_id):
        raise run_not_found()
    return run_id


RunId = Annotated[str, Depends(run_id_path)]


@router.post(
    "",
    status_code=201,
    response_model=RunPublic,
    responses={429: {"description": "Too many unfinished runs for this client", "content": DETAIL}},
)
async def create_run(spec: RunCreate, runs: RunsDep, client: ClientDep):
    """Validate a spec (contract §3) and queue a run of it. A bad spec is a 422 whose `detail` lists each
    problem with its field path (`loc`), and nothing is queued."""
    return await runs.create(spec, client)


@router.get("", response_model=RunList)
async def list_runs(
    runs: RunsDep,
    status: Annotated[Status | None, Query(description="only runs with this status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
):
    """Runs, newest first, a page at a time."""
    return await runs.list_runs(status, limit, cursor)


@router.get("/{run_id}", response_model=RunPublic, responses=NOT_FOUND)
async def get_run(run_id: RunId, runs: RunsDep):
    return await runs.get(run_id)


@router.delete("/{run_id}", status_code=204, responses=NOT_FOUND)
async def delete_run(run_id: RunId, runs: RunsDep) -> Response:
    """Cancel the run if it is active, then remove it with its events and model."""
    await runs.delete(run_id)
    return Response(status_code=204)


@router.post("/{run_id}/cancel", response_model=RunPublic, responses={**NOT_FOUND, **CONFLICT})
async def cancel_run(run_id: RunId, runs: RunsDep):
    """Cancel a queued, running or paused run: it ends `canceled` (a running one within a moment)."""
    return await runs.control(run_id, "cancel")


@router.post("/{run_id}/pause", response_model=RunPublic, responses={**NOT_FOUND, **CONFLICT})
async def pause_run(run_id: RunId, runs: RunsDep):
    """Pause a running run before its next minibatch (its status becomes `paused` within a moment)."""
    return await runs.control(run_id, "pause")


@router.post("/{run_id}/resume", response_model=RunPublic, responses={**NOT_FOUND, **CONFLICT})
async def resume_run(run_id: RunId, runs: RunsDep):
    """Resume a paused run."""
    return await runs.control(run_id, "resume")


@router.post("/{run_id}/step", response_model=RunPublic, responses={**NOT_FOUND, **CONFLICT})
async def step_run(run_id: RunId, runs: RunsDep, body: StepRequest | None = None):
    """Run `steps` minibatches of a paused run, each emitting a `step` event, then pause again
    (the stream shows `running`, the step events, then `paused`)."""
    return await runs.control(run_id, "step", (body or StepRequest()).steps)


@router.get(
    "/{run_id}/events",
    responses={200: {"description": "a JSON list of events (contract §5), oldest first"}, **NOT_FOUND},
)
async def run_events(
    run_id: RunId,
    runs: RunsDep,
    after: Annotated[int, Query(ge=0, description="return events with seq > after")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Response:
    texts = await runs.events(run_id, after, limit)
    return Response("[" + ",".join(texts) + "]", media_type="application/json")


@router.get("/{run_id}/data", responses={**NOT_FOUND})
async def run_data(
    run_id: RunId,
    runs: RunsDep,
    max_points: Annotated[int, Query(ge=1, le=20_000, description="train + test points returned")] = 2000,
) -> dict[str, Any]:
    """The points the run trains and tests on: {"task", "input_dim", "n_classes", "train": {"X", "y"},
    "test": {"X", "y"}}; y holds class labels, or the first target column for regression."""
    return await runs.data(run_id, max_points)


MODEL_HEADERS = {
    "X-Deltaboard-Step": {
        "description": "the weights are as they were after this minibatch (0: the initial weights)",
        "schema": {"type": "integer"},
    },
    "X-Deltaboard-Epoch": {
        "description": "the epoch that minibatch belongs to",
        "schema": {"type": "integer"},
    },
    "X-Deltaboard-Status": {
        "description": "the run's status when the weights were read",
        "schema": {"type": "string"},
    },
    "X-Deltaboard-Final": {
        "description": "true: the final weights (finished or canceled); false: an active run's snapshot",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
    "ETag": {
        "description": "this version of the weights (send it as If-None-Match)",
        "schema": {"type": "string"},
    },
}


@router.get(
    "/{run_id}/model",
    responses={
        200: {
            "description": ".npz with W1..WL and b1..bL",
            "content": {"application/octet-stream": {}},
            "headers": MODEL_HEADERS,
        },
        304: {"description": "unchanged since the If-None-Match ETag", "headers": MODEL_HEADERS},
        404: {"description": "Run not found, or no weights stored (yet, or ever: failed)", "content": DETAIL},
    },
)
async def run_model(run_id: RunId, runs: RunsDep, request: Request) -> Response:
    """The run's latest weights: a snapshot while it is running or paused (stored when it starts, when it
    pauses, after every `/step` batch and every few seconds while it runs; a paused run's snapshot is
    exactly its current weights), its final weights once it finished or was canceled. The headers say
    which step they are from. 404 for a queued run (no weights yet) and a failed one."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match:
        info = await runs.model_info(run_id)
        if info is not None and info.etag in (e.strip() for e in if_none_match.split(",")):
            return Response(status_code=304, headers=_model_headers(run_id, info))
    data, info = await runs.model(run_id)
    return Response(data, media_type="application/octet-stream", headers=_model_headers(run_id, info))


def _model_headers(run_id: str, info: ModelInfo) -> dict[str, str]:
    return {
        **info.headers(),
        "Content-Disposition": f'attachment; filename="{run_id}.npz"',
        "Cache-Control": "no-cache",  # a browser may keep it, but asks again (If-None-Match) every time
    }


@router.post(
    "/{run_id}/predict",
    response_model=PredictResponse,
    responses={
        200: {"description": "outputs of the weights GET /model returns now", "headers": MODEL_HEADERS},
        404: {"description": "Run not found, or no weights stored (yet, or ever: failed)", "content": DETAIL},
    },
)
async def predict(run_id: RunId, body: PredictRequest, runs: RunsDep, response: Response):
    """The network's outputs for rows of inputs, from the run's latest weights (see GET /model: a
    snapshot while it is active, the final weights once it ended); the headers say which step."""
    outputs, info = await runs.predict(run_id, body.inputs)
    response.headers.update({k: v for k, v in info.headers().items() if k != "ETag"})
    return {"outputs": outputs}

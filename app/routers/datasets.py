"""`/api/datasets`: the built-in datasets with their parameters, and CSV uploads.

An upload is parsed by `worker.nn.csvdata.parse_csv` (the rules are in its docstring: features first,
the LAST column is the target; optional header; task auto/classification/regression) and stored in
Redis under a server-generated id; a spec uses it as `{"name": "upload:<id>"}`. A file over
`LIMITS.max_upload_bytes` is a 413; a file the rules reject is a 422 naming the line (and column).
"""

import asyncio
import dataclasses
import json
import secrets
import time
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from fastapi import APIRouter, File, Form, Response, UploadFile
from fastapi.exceptions import RequestValidationError

from app.deps import ClientDep, RedisDep
from app.errors import NotFound, TooLarge
from app.schemas import DatasetList, UploadedDataset
from worker import store
from worker.nn.csvdata import CSVError, parse_csv
from worker.nn.datasets import BUILTIN
from worker.nn.limits import LIMITS
from worker.nn.spec import DatasetSpec

router = APIRouter(prefix="/api/datasets", tags=["datasets"])

MAX_LISTED = 500
READ_CHUNK = 1 << 16


def _parameters() -> dict[str, dict[str, float]]:
    """default, minimum and maximum of each numeric DatasetSpec field (the spec's own bounds)."""
    out = {}
    for name, field in DatasetSpec.model_fields.items():
        if name == "name":
            continue
        bounds = {type(m): m for m in field.metadata}
        out[name] = {
            "default": field.default,
            "minimum": bounds[Ge].ge if Ge in bounds else float("-inf"),
            "maximum": bounds[Le].le if Le in bounds else float("inf"),
        }
    return out


def _builtin() -> list[dict[str, Any]]:
    params = _parameters()
    return [
        {**dataclasses.asdict(info), "name": name, "parameters": params}
        for name, (info, _) in BUILTIN.items()
    ]


def _uploaded(dataset_id: str, raw: dict[bytes, bytes]) -> dict[str, Any]:
    info = json.loads(raw[b"info"])
    return {
        **{k: info.get(k) for k in ("task", "input_dim", "n_classes", "target_dim")},
        "id": dataset_id,
        "name": raw[b"name"].decode(),
        "spec_name": f"upload:{dataset_id}",
        "rows": int(raw[b"rows"]),
        "created_at": float(raw[b"created_at"]),
    }


async def _read_limited(file: UploadFile, limit: int) -> bytes:
    if file.size is not None and file.size > limit:
        raise TooLarge(f"The file has {file.size} bytes, more than the upload limit of {limit} bytes")
    data = bytearray()
    while chunk := await file.read(READ_CHUNK):
        data += chunk
        if len(data) > limit:
            raise TooLarge(f"The file is larger than the upload limit of {limit} bytes")
    return bytes(data)


@router.get("", response_model=DatasetList)
async def list_datasets(r: RedisDep):
    """Built-in datasets with their parameters (default, minimum, maximum) and the uploaded ones."""
    ids = [i.decode() for i in await r.zrevrange(store.DATASETS, 0, MAX_LISTED - 1)]
    async with r.pipeline(transaction=False) as pipe:
        for dataset_id in ids:
            pipe.hmget(store.dataset_key(dataset_id), "name", "info", "rows", "created_at")
        rows = await pipe.execute() if ids else []
    fields = (b"name", b"info", b"rows", b"created_at")
    uploaded = [
        _uploaded(dataset_id, dict(zip(fields, values, strict=True)))
        for dataset_id, values in zip(ids, rows, strict=True)
        if values[1] is not None
    ]
    return {"builtin": _builtin(), "uploaded": uploaded}


@router.post(
    "",
    status_code=201,
    response_model=UploadedDataset,
    responses={413: {"description": "The file is over the upload limit (GET /api/limits)"}},
)
async def upload_dataset(
    r: RedisDep,
    client: ClientDep,
    file: Annotated[UploadFile, File(description="CSV: feature columns, then the target column last")],
    name: Annotated[str | None, Form(max_length=200, description="display name (default: file name)")] = None,
    task: Annotated[Literal["auto", "classification", "regression"], Form()] = "auto",
):
    """Upload a CSV dataset. UTF-8, comma-separated, one example per line, an optional header row;
    every cell a finite number; the last column is the target (integer labels 0..K-1 for classification).
    `task` "auto" picks classification when every target is an integer 0..19 (at least two classes).
    Use the returned `spec_name` ("upload:<id>") as a spec's `dataset.name`."""
    data = await _read_limited(file, LIMITS.max_upload_bytes)
    dataset_id = secrets.token_hex(8)
    try:
        X, y, info = await asyncio.to_thread(parse_csv, data, f"upload:{dataset_id}", task)
    except CSVError as e:
        error = {"type": "csv", "loc": ("body", "file"), "msg": str(e), "input": None}
        raise RequestValidationError([{**error, "ctx": {"line": e.line, "column": e.column}}]) from None
    title = (name or "").strip() or (file.filename or "upload")[:200]
    now = time.time()
    fields = store.dataset_fields(title, dataclasses.asdict(info), X, y, client, now)
    async with r.pipeline(transaction=True) as pipe:
        pipe.hset(store.dataset_key(dataset_id), mapping=fields)
        pipe.zadd(store.DATASETS, {dataset_id: now})
        await pipe.execute()
    stored = {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()}
    return _uploaded(dataset_id, stored)


@router.delete("/{dataset_id}", status_code=204, responses={404: {"description": "Dataset not found"}})
async def delete_dataset(dataset_id: str, r: RedisDep) -> Response:
    """Remove an uploaded dataset (runs already queued with it then fail with error type `dataset`)."""
    if not store.ID.match(dataset_id):
        raise NotFound("Dataset not found")
    async with r.pipeline(transaction=True) as pipe:
        pipe.delete(store.dataset_key(dataset_id))
        pipe.zrem(store.DATASETS, dataset_id)
        deleted, _ = await pipe.execute()
    if not deleted:
        raise NotFound("Dataset not found")
    return Response(status_code=204)

"""The service's guards (app/security.py) on a real uvicorn server: bearer token on /api HTTP calls and
websockets, websocket Origin allow-list, CORS only when configured, request-body caps (413)."""

import json
import logging

import httpx
import pytest
import stream_support as kit  # tests/service is on sys.path (conftest)

import app.security as security
from worker.nn.limits import Limits

TOKEN = "s3cret-token"
SPEC = {"dataset": {"name": "xor", "samples": 40}, "layers": [{"units": 1, "activation": "sigmoid"}]}


def csv_rows(n: int) -> bytes:
    """A valid two-class CSV upload: x, y, label."""
    return b"".join(b"%d.5,%d.25,%d\n" % (i % 97, i % 89, i % 2) for i in range(n))


def multipart(body: bytes, boundary: str = "deltaboardbench") -> tuple[bytes, dict[str, str]]:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    return head + body + f"\r\n--{boundary}--\r\n".encode(), {
        "Content-Type": f"multipart/form-data; boundary={boundary}"
    }


@pytest.fixture(autouse=True)
def _fresh_redis(redis_conn):
    """These tests create runs; start each from an empty Redis (per-client queued-run limits)."""


def base(server) -> str:
    return f"http://127.0.0.1:{server.port}"


async def test_api_calls_are_refused_401_without_the_right_token(redis_url):
    async with (
        kit.serve_app(redis_url, api_token=TOKEN) as server,
        httpx.AsyncClient(base_url=base(server)) as http,
    ):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            r = await http.post("/api/echo", json={"a": 1}, headers=headers)
            assert r.status_code == 401
            assert r.json() == {"detail": "Missing or invalid API token"}
            assert r.headers["www-authenticate"].startswith("Bearer")
        r = await http.post(
            "/api/echo", json={"a": 1}, params={"token": TOKEN}
        )  # the query is for websockets
        assert r.status_code == 401


async def test_api_calls_with_the_token_pass(redis_url):
    async with (
        kit.serve_app(redis_url, api_token=TOKEN) as server,
        httpx.AsyncClient(base_url=base(server)) as http,
    ):
        for scheme in ("Bearer", "bearer"):
            headers = {"Authorization": f"{scheme} {TOKEN}"}
            r = await http.post("/api/runs", json=SPEC, headers=headers)
            assert (r.status_code, r.json()["status"]) == (201, "queued")
            assert (await http.get("/api/health", headers=headers)).json()["redis"] == "ok"


async def test_docs_and_dashboard_stay_open_when_a_token_is_set(redis_url):
    async with (
        kit.serve_app(redis_url, api_token=TOKEN) as server,
        httpx.AsyncClient(base_url=base(server)) as http,
    ):
        assert (await http.get("/docs")).status_code == 200
        assert "/api/runs" in (await http.get("/openapi.json")).json()["paths"]
        r = await http.get("/")
        assert r.status_code == 200 and "<html" in r.text.lower()


async def test_without_a_configured_token_the_api_is_open(redis_url):
    async with kit.serve_app(redis_url) as server, httpx.AsyncClient(base_url=base(server)) as http:
        assert (await http.post("/api/runs", json=SPEC)).status_code == 201
        assert (await http.get("/api/health")).status_code == 200


async def test_websocket_is_refused_4401_without_the_token(redis_url):
    async with kit.serve_app(redis_url, api_token=TOKEN) as server:
        assert await kit.collect(kit.ws_url(server, "some-run")) == ([], 4401)
        assert await kit.collect(kit.ws_url(server, "some-run", token="wrong")) == ([], 4401)


async def test_websocket_with_the_token_in_the_query_or_header_gets_through(redis_url):
    async with kit.serve_app(redis_url, api_token=TOKEN) as server, kit.Runs(redis_url) as runs:
        run_id = await runs.create()
        await runs.finish(run_id)
        texts, code = await kit.collect(kit.ws_url(server, run_id, token=TOKEN))
        assert (len(texts), code) == (2, 1000)
        header = {"Authorization": f"Bearer {TOKEN}"}
        texts, code = await kit.collect(kit.ws_url(server, run_id), additional_headers=header)
        assert (len(texts), code) == (2, 1000)
        # past the guard, an unknown run is still 4404
        assert await kit.collect(kit.ws_url(server, "nope", token=TOKEN)) == ([], 4404)


async def test_websocket_from_a_foreign_origin_is_refused_4403(redis_url):
    async with kit.serve_app(redis_url) as server:
        url = kit.ws_url(server, "nope")
        for origin in ("http://evil.example", "http://127.0.0.1:1", f"http://localhost.evil:{server.port}"):
            assert await kit.collect(url, origin=origin) == ([], 4403)
        # same origin (host:port of the Host header), and no Origin at all, get through to the run lookup
        assert await kit.collect(url, origin=f"http://127.0.0.1:{server.port}") == ([], 4404)
        assert await kit.collect(url) == ([], 4404)


async def test_websocket_origin_allow_list(redis_url):
    allowed = ["https://dash.example", "http://localhost:5173"]
    async with kit.serve_app(redis_url, allowed_origins=allowed) as server:
        url = kit.ws_url(server, "nope")
        assert await kit.collect(url, origin="https://dash.example") == ([], 4404)
        assert await kit.collect(url, origin="https://dash.example:443") == ([], 4404)
        assert await kit.collect(url, origin="http://localhost:5173") == ([], 4404)
        assert await kit.collect(url, origin="http://dash.example") == ([], 4403)  # scheme differs
        assert await kit.collect(url, origin=f"http://127.0.0.1:{server.port}") == ([], 4403)  # not listed


async def test_origin_is_checked_before_the_token(redis_url):
    async with kit.serve_app(redis_url, api_token=TOKEN) as server:
        url = kit.ws_url(server, "nope", token=TOKEN)
        assert await kit.collect(url, origin="http://evil.example") == ([], 4403)


async def test_cors_is_off_unless_configured(redis_url):
    preflight = {"Origin": "https://dash.example", "Access-Control-Request-Method": "POST"}
    async with kit.serve_app(redis_url) as server, httpx.AsyncClient(base_url=base(server)) as http:
        r = await http.options("/api/runs", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
        r = await http.get("/api/runs", headers={"Origin": "https://dash.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


async def test_cors_allows_exactly_the_configured_origins(redis_url):
    settings = {"cors_origins": ["https://dash.example"], "api_token": TOKEN}
    async with (
        kit.serve_app(redis_url, **settings) as server,
        httpx.AsyncClient(base_url=base(server)) as http,
    ):
        ok = {"Origin": "https://dash.example", "Access-Control-Request-Method": "POST"}
        r = await http.options("/api/runs", headers={**ok, "Access-Control-Request-Headers": "authorization"})
        assert r.status_code == 200  # a preflight carries no token; CORS answers it first
        assert r.headers["access-control-allow-origin"] == "https://dash.example"
        r = await http.options("/api/runs", headers={**ok, "Origin": "https://other.example"})
        assert "access-control-allow-origin" not in r.headers
        r = await http.post("/api/runs", json=SPEC, headers={"Origin": "https://dash.example"})
        assert r.status_code == 401  # ...and the browser can read why
        assert r.headers["access-control-allow-origin"] == "https://dash.example"


async def test_body_over_the_cap_is_refused_413_by_its_content_length(redis_url):
    async with (
        kit.serve_app(redis_url, max_body_bytes=1000) as server,
        httpx.AsyncClient(base_url=base(server)) as http,
    ):
        big = json.dumps({**SPEC, "name": "x" * 2000}).encode()
        r = await http.post("/api/runs", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert r.json() == {"detail": "Request body too large (limit 1000 bytes)"}
        assert (await http.post("/api/runs", json=SPEC)).status_code == 201


async def chunks(data: bytes, size: int = 100):
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_chunked_body_over_the_cap_is_refused_413_as_it_streams(redis_url):
    async with (
        kit.serve_app(redis_url, max_body_bytes=1000) as server,
        httpx.AsyncClient(base_url=base(server)) as http,
    ):
        big = json.dumps({**SPEC, "name": "x" * 2000}).encode()
        r = await http.post("/api/runs", content=chunks(big), headers={"Content-Type": "application/json"})
        assert "content-length" not in r.request.headers  # sent chunked: the middleware had to count
        assert r.status_code == 413
        assert r.json()["detail"] == "Request body too large (limit 1000 bytes)"
        small = json.dumps(SPEC).encode()
        r = await http.post("/api/runs", content=chunks(small), headers={"Content-Type": "application/json"})
        assert r.status_code == 201


async def test_uploads_have_their_own_cap(redis_url, monkeypatch):
    monkeypatch.setattr(security, "LIMITS", Limits(max_upload_bytes=50_000))
    cap = 50_000 + security.MULTIPART_OVERHEAD
    async with (
        kit.serve_app(redis_url, max_body_bytes=1000) as server,
        httpx.AsyncClient(base_url=base(server)) as http,
    ):
        body, headers = multipart(csv_rows(2000))  # ~25 KB: over max_body_bytes, fine for an upload
        r = await http.post("/api/datasets", content=body, headers=headers)
        assert (r.status_code, r.json()["spec_name"][:7]) == (201, "upload:")
        body, headers = multipart(csv_rows(2000) * 5)  # over the upload cap
        assert len(body) > cap
        r = await http.post("/api/datasets", content=body, headers=headers)
        assert (r.status_code, r.json()["detail"]) == (413, f"Request body too large (limit {cap} bytes)")
        r = await http.post("/api/datasets", content=chunks(body, 4096), headers=headers)
        assert (r.status_code, r.json()["detail"]) == (413, f"Request body too large (limit {cap} bytes)")
        big = json.dumps({**SPEC, "name": "x" * 5000}).encode()  # the upload cap is for the upload route only
        r = await http.post("/api/runs", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413


def test_tokens_in_websocket_urls_are_redacted_from_logs():
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5", f"/api/runs/r/stream?after=3&token={TOKEN}"), None,
    )  # fmt: skip
    assert security._RedactTokens().filter(record)
    assert TOKEN not in record.getMessage()
    assert "after=3&token=***" in record.getMessage()

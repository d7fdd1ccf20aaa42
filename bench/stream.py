"""Benchmarks of the service's live path: prints figures, asserts nothing.

    .venv/bin/python bench/stream.py          # starts its own redis-server, `deltaboard serve`, workers
    .venv/bin/python bench/stream.py --url http://127.0.0.1:8000 --redis-url redis://127.0.0.1:6379/0

1. latency from an event's append to a websocket client's receipt (p50/p95; goal p95 <= 50 ms on loopback):
   a writer process appends events with the store's own Lua script, each stamped with time.time()
2. fan-out: many websocket clients on one run at a steady event rate; received counts, gaps, lag, cut-offs
3. `POST /api/runs` latency (goal p95 <= 20 ms at 50 concurrent clients): one client; 50 clients at a
   steady pace; 50 clients back to back (saturation). The runs are deleted afterwards
4. one run through the service (create -> finished, via a real worker, watched on the websocket) against the
   same spec through `deltaboard train` (goal <= 1.2x)

Parts 1-2 write runs straight into Redis under fresh ids that no worker will pick up (they have no job),
so they need the server's Redis (`--redis-url` with `--url`). Times are wall-clock on this machine: on a
shared or loaded machine they are noisy; compare ratios within one run rather than absolute figures.
"""

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import redis
import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.launcher import free_port, redis_argv  # noqa: E402
from worker import store  # noqa: E402

BENCH_SPEC = {
    "name": "bench: spiral, two relu layers of 32",
    "dataset": {"name": "spiral", "samples": 1000, "noise": 0.0, "seed": 1},
    "layers": [
        {"units": 32, "activation": "relu"},
        {"units": 32, "activation": "relu"},
        {"units": 1, "activation": "sigmoid"},
    ],
    "init": "he",
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "epochs": 250,
    "batch_size": 10,
    "seed": 0,
}
SMALL_SPEC = {"dataset": {"name": "xor", "samples": 40}, "layers": [{"units": 1, "activation": "sigmoid"}]}


# --- the stack -------------------------------------------------------------------------------------


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout} s")


def stop_all(procs: list[subprocess.Popen]) -> None:
    """SIGTERM every live process, then wait for each; SIGKILL one that takes over 15 s."""
    live = [proc for proc in procs if proc.poll() is None]
    for proc in live:
        proc.terminate()
    for proc in live:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Stack:
    """redis-server, `deltaboard serve` and (on demand) `deltaboard worker` processes on free ports."""

    def __init__(self, url: str | None, redis_url: str | None) -> None:
        self.url, self.redis_url = url, redis_url
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        self.tmp = tempfile.TemporaryDirectory(prefix="deltaboard-bench-")
        self.env = {
            **os.environ,
            "DELTABOARD_MAX_QUEUED_RUNS_PER_CLIENT": "100000",
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        }

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen:
        log = open(Path(self.tmp.name) / log_name, "wb")  # noqa: SIM115 (closed with the directory)
        proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        if self.redis_url is None:
            port = free_port()
            args = redis_argv(port, self.tmp.name, persistent=False)
            wait_for_port(port, 10, self._spawn(args, "redis.log"))
            self.redis_url = f"redis://127.0.0.1:{port}/0"
        if self.url is None:
            port = free_port()
            cli = str(ROOT / ".venv" / "bin" / "deltaboard")
            proc = self._spawn(
                [cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--redis-url", self.redis_url],
                "serve.log",
            )
            wait_for_port(port, 30, proc)
            self.url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=self.url, timeout=10) as http:
            for _ in range(100):
                if http.get("/api/health").status_code == 200:
                    return
                time.sleep(0.1)
        raise RuntimeError(f"{self.url}/api/health never answered 200")

    def start_workers(self, n: int) -> None:
        cli = str(ROOT / ".venv" / "bin" / "deltaboard")
        for i in range(n):
            self.workers.append(self._spawn([cli, "worker", "--redis-url", self.redis_url], f"worker{i}.log"))
        with httpx.Client(base_url=self.url, timeout=10) as http:
            for _ in range(300):
                if http.get("/api/health").json().get("workers", 0) >= n:
                    return
                time.sleep(0.1)
        print(f"  (health never reported {n} workers; going on)")

    def stop_workers(self) -> None:
        stop_all(self.workers)
        self.workers.clear()

    def stop(self) -> None:
        self.stop_workers()
        for proc in reversed(self.procs):  # one at a time: serve before the redis-server it writes to
            stop_all([proc])
        self.tmp.cleanup()

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = Path(self.tmp.name) / name
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def ws(self, path: str) -> str:
        return "ws" + self.url.removeprefix("http") + path


# --- a writer process: events appended the way the worker appends them ------------------------------


def new_run(conn: redis.Redis) -> str:
    run_id = "bench-" + uuid.uuid4().hex[:10]
    progress = {"epoch": 0, "epochs": 1, "step": 0, "steps": 1}
    conn.hset(store.run_key(run_id), mapping=store.new_run_fields("{}", progress, "bench", time.time()))
    return run_id


def write_events(redis_url: str, run_id: str, n: int, rate: float, pad: int, start_at: float) -> None:
    """Append `n` step events at `rate` per second from wall-clock time `start_at`, then end the run."""
    conn = redis.Redis.from_url(redis_url)
    append = conn.register_script(store.APPEND_LUA)
    transition = conn.register_script(store.TRANSITION_LUA)
    keys = [store.run_key(run_id), store.events_key(run_id)]
    filler = "x" * pad
    time.sleep(max(0.0, start_at - time.time()))
    for i in range(n):
        delay = start_at + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        event = store.encode_event(store.new_event(run_id, "step", step=i, pad=filler))
        append(keys=keys, args=store.append_args([event]))
    keys, argv = store.transition_args(run_id, "finished", store.ACTIVE)
    transition(keys=keys, args=argv)
    conn.close()


def start_writer(redis_url: str, run_id: str, n: int, rate: float, pad: int, delay: float):
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=write_events, args=(redis_url, run_id, n, rate, pad, time.time() + delay))
    proc.start()
    return proc


# --- websocket clients ------------------------------------------------------------------------------


class Client:
    """One websocket client: the seqs it got, each event's lag (receipt - event time), the close code."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.lags: list[float] = []
        self.code: int | None = None
        self.connected = asyncio.Event()

    async def run(self, url: str, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout), websockets.connect(url, max_size=2**24) as ws:
                self.connected.set()
                with contextlib.suppress(websockets.ConnectionClosed):
                    async for text in ws:
                        now = time.time()
                        event = json.loads(text)
                        self.seqs.append(event["seq"])
                        if event["type"] == "step":
                            self.lags.append(now - event["time"])
                self.code = ws.close_code
        except TimeoutError:
            self.code = -1
        except OSError as e:
            self.code = -2
            print(f"  client error: {e!r}")
        finally:
            self.connected.set()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


# --- the four parts -----------------------------------------------------------------------------------


async def bench_latency(stack: Stack, n: int, rate: float, pad: int) -> None:
    print(
        f"\n1. append -> websocket receipt latency: 1 client, {n} events of ~{pad // 1000} KB at {rate:g}/s"
    )
    conn = redis.Redis.from_url(stack.redis_url)
    run_id = new_run(conn)
    client = Client()
    task = asyncio.create_task(client.run(stack.ws(f"/api/runs/{run_id}/stream"), timeout=n / rate + 60))
    await client.connected.wait()
    writer = start_writer(stack.redis_url, run_id, n, rate, pad, delay=0.5)
    await task
    await asyncio.to_thread(writer.join, 30)
    conn.delete(*store.run_keys(run_id))
    conn.close()
    lags = client.lags
    print(f"   received {len(client.seqs)} events (expected {n + 1}), close code {client.code}")
    print(
        f"   latency p50 {ms(pct(lags, 50))}, p95 {ms(pct(lags, 95))}, max {ms(max(lags, default=0))}"
        "  (goal p95 <= 50 ms)"
    )


async def bench_fanout(stack: Stack, clients: int, seconds: float, rate: float, pad: int) -> None:
    n = int(seconds * rate)
    print(
        f"\n2. fan-out: {clients} websocket clients on one run, {n} events of ~{pad // 1000} KB at {rate:g}/s"
    )
    conn = redis.Redis.from_url(stack.redis_url)
    run_id = new_run(conn)
    url = stack.ws(f"/api/runs/{run_id}/stream")
    group = [Client() for _ in range(clients)]
    tasks = [asyncio.create_task(c.run(url, timeout=seconds + 120)) for c in group]
    await asyncio.gather(*(c.connected.wait() for c in group))
    writer = start_writer(stack.redis_url, run_id, n, rate, pad, delay=1.0)
    t0 = time.monotonic()
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - t0
    await asyncio.to_thread(writer.join, 30)
    conn.delete(*store.run_keys(run_id))
    conn.close()
    expected = list(range(1, n + 2))  # n steps and the final status
    counts = [len(c.seqs) for c in group]
    complete = sum(c.seqs == expected for c in group)
    gaps_or_dups = sum(c.seqs != list(range(c.seqs[0], c.seqs[0] + len(c.seqs))) for c in group if c.seqs)
    codes: dict[int | None, int] = {}
    for c in group:
        codes[c.code] = codes.get(c.code, 0) + 1
    lags = [x for c in group for x in c.lags]
    per_client_p95 = [pct(c.lags, 95) for c in group if c.lags]
    print(f"   all clients done {elapsed:.1f} s after the writer was started ({n / rate:.1f} s of events)")
    print(
        f"   received per client: min {min(counts)}, max {max(counts)} (expected {n + 1});"
        f" complete {complete}/{clients}; with a gap or duplicate {gaps_or_dups}"
    )
    print(f"   close codes {codes}  (1000 = normal end; 4008 = cut off for falling behind)")
    print(
        f"   lag over all events: p50 {ms(pct(lags, 50))}, p95 {ms(pct(lags, 95))},"
        f" max {ms(max(lags, default=0))};"
        f" worst client's p95 {ms(max(per_client_p95, default=0))}"
    )
    print(f"   dropped events (expected - received, summed): {sum(n + 1 - k for k in counts)}")
    if set(codes) - {1000}:
        print("   the server's log ends:\n" + stack.log_tail("serve.log"))


async def bench_create(stack: Stack, concurrency: int, per_client: int, interval: float) -> None:
    """Three loads: one client at a time (the service time); `concurrency` clients each posting every
    `interval` s (a steady load below saturation); `concurrency` clients posting back to back (saturation,
    where latency is simply concurrency / throughput)."""
    print(f"\n3. POST /api/runs latency (goal p95 <= 20 ms at {concurrency} concurrent clients)")
    created: list[str] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=stack.url, timeout=30, limits=limits) as http:

        async def one(latencies: list[float], statuses: dict[int, int], peer: bool = False) -> None:
            t = time.perf_counter()
            r = await (http.get("/api/limits") if peer else http.post("/api/runs", json=SMALL_SPEC))
            latencies.append(time.perf_counter() - t)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code == 201 and not peer:
                created.append(r.json()["id"])

        def report(label: str, latencies: list[float], statuses: dict[int, int], elapsed: float) -> None:
            print(
                f"   {label}: {len(latencies)} requests, {len(latencies) / elapsed:.0f}/s, codes {statuses};"
                f" p50 {ms(pct(latencies, 50))}, p95 {ms(pct(latencies, 95))}, max {ms(max(latencies))}"
            )

        for _ in range(20):  # warm up connections and code paths
            await one([], {})

        lat, codes = [], {}
        t0 = time.perf_counter()
        for _ in range(100):
            await one(lat, codes)
        report("1 client, back to back", lat, codes, time.perf_counter() - t0)

        async def paced(i: int, t0: float, lat: list[float], codes: dict[int, int], peer: bool) -> None:
            start = t0 + interval * i / concurrency  # staggered, then one request every `interval` s
            for k in range(per_client):
                await asyncio.sleep(max(0.0, start + k * interval - time.perf_counter()))
                await one(lat, codes, peer)

        for peer in (False, True):
            lat, codes = [], {}
            t0 = time.perf_counter()
            await asyncio.gather(*(paced(i, t0, lat, codes, peer) for i in range(concurrency)))
            label = "peer: GET /api/limits" if peer else f"{concurrency} clients"
            report(f"{label}, one each per {interval:g} s", lat, codes, time.perf_counter() - t0)

        lat, codes = [], {}

        async def back_to_back() -> None:
            for _ in range(per_client):
                await one(lat, codes)

        t0 = time.perf_counter()
        await asyncio.gather(*(back_to_back() for _ in range(concurrency)))
        report(f"{concurrency} clients, back to back", lat, codes, time.perf_counter() - t0)

        sem = asyncio.Semaphore(20)

        async def delete(run_id: str) -> None:
            async with sem:
                await http.delete(f"/api/runs/{run_id}")

        await asyncio.gather(*(delete(run_id) for run_id in created))
        print(
            f"   (the client runs in the same machine and costs CPU too; {len(created)} runs deleted again)"
        )


async def bench_service_vs_local(stack: Stack, workers: int, repeats: int) -> None:
    print(
        f"\n4. one run through the service ({workers} worker(s), watched on the websocket)"
        " vs `deltaboard train`"
    )
    spec_path = Path(stack.tmp.name) / "bench-spec.json"
    spec_path.write_text(json.dumps(BENCH_SPEC))
    stack.start_workers(workers)
    local, service = [], []
    try:
        async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
            for _ in range(repeats):
                t = time.perf_counter()
                cmd = [str(ROOT / ".venv" / "bin" / "deltaboard"), "train", str(spec_path), "--quiet"]
                proc = await asyncio.create_subprocess_exec(
                    *cmd, env=stack.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                await asyncio.wait_for(proc.wait(), 600)
                local.append(time.perf_counter() - t)

                t = time.perf_counter()
                r = await http.post("/api/runs", json=BENCH_SPEC)
                r.raise_for_status()
                run_id = r.json()["id"]
                client = Client()
                await client.run(stack.ws(f"/api/runs/{run_id}/stream"), timeout=600)
                service.append(time.perf_counter() - t)
                run = (await http.get(f"/api/runs/{run_id}")).json()
                print(
                    f"   local {local[-1]:.2f} s (exit {proc.returncode});"
                    f" service {service[-1]:.2f} s ({run['status']}, {len(client.seqs)} events,"
                    f" close {client.code})"
                )
                await http.delete(f"/api/runs/{run_id}")
    finally:
        stack.stop_workers()
    print(
        f"   best of {repeats}: service/local = {min(service):.2f} s / {min(local):.2f} s"
        f" = {min(service) / min(local):.2f}x  (goal <= 1.2x)"
    )


async def main_async(args: argparse.Namespace) -> None:
    stack = Stack(args.url, args.redis_url)
    try:
        stack.start()
        print(f"server {stack.url}, redis {stack.redis_url}; a shared machine makes every figure noisy")
        parts = set(args.parts.split(","))
        if "1" in parts:
            await bench_latency(stack, n=args.latency_events, rate=args.rate, pad=args.pad)
        if "2" in parts:
            await bench_fanout(
                stack, clients=args.clients, seconds=args.seconds, rate=args.rate, pad=args.pad
            )
        if "4" in parts:  # before 3, so the workers never see the runs part 3 queues
            await bench_service_vs_local(stack, workers=args.workers, repeats=args.repeats)
        if "3" in parts:
            await bench_create(stack, args.concurrency, args.per_client, args.interval)
    finally:
        stack.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="use this running server (http://host:port) instead of starting one")
    p.add_argument("--redis-url", help="its Redis (needed with --url for parts 1-2)")
    p.add_argument("--parts", default="1,2,3,4", help="which parts to run, e.g. 1,2")
    p.add_argument("--rate", type=float, default=60.0, help="events per second for parts 1-2")
    p.add_argument(
        "--pad", type=int, default=4000, help="characters of padding per event (a real step is ~4 KB)"
    )
    p.add_argument("--latency-events", type=int, default=300)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--seconds", type=float, default=10.0, help="how long part 2 writes")
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--per-client", type=int, default=20, help="runs each client creates per load in part 3")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between one client's runs (part 3)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="runs of each kind in part 4")
    args = p.parse_args()
    if args.url and not args.redis_url and set(args.parts.split(",")) & {"1", "2"}:
        p.error("--url with parts 1-2 needs --redis-url (the bench appends events to the server's Redis)")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

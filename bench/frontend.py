"""Does the run view keep drawing under a steady event stream, with flat memory?

    .venv/bin/python bench/frontend.py [--minutes 10] [--rate 50] [--layers 6]

Starts its own redis-server and `deltaboard up --workers 0 --redis-url ...` (no worker: this script is
the run's writer), creates a run of a `--layers`-layer spec through the API, then plays the events of a
real `Training` of that spec into the run's stream at `--rate` events/s with worker/store.py's Lua
scripts (APPEND_LUA, TRANSITION_LUA) — the same writes a worker makes, paced exactly. Debian's Chromium
(Playwright, headless) shows `/#/runs/<id>`; every `--sample` seconds the bench reads

- frames drawn: the page's requestAnimationFrame counter (window.__deltaboard.frames.count),
- the JS heap: CDP Performance.getMetrics JSHeapUsedSize, after a CDP HeapProfiler.collectGarbage,
- events the page received (its stream's count), to confirm the rate.

The peer is the same page idle (the run view open, no events) for the first `--idle` seconds: frame rates
are printed against it. Prints one line per sample and a summary: mean and worst frames/s, heap at the
end of warm-up vs at the end and its slope (MB per minute over the second half). Figures on a shared
machine are noisy.
"""

import argparse
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.launcher import free_port, redis_argv  # noqa: E402
from tests.browser.chromium import CHROMIUM  # noqa: E402
from tests.browser.chromium import CHROMIUM_ARGS as TEST_CHROMIUM_ARGS  # noqa: E402

CHROMIUM_ARGS = [*TEST_CHROMIUM_ARGS, "--enable-precise-memory-info"]  # the heap figures need it


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.3):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def http(base: str, method: str, path: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        base + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as res:
        return json.loads(res.read() or b"null")


def bench_spec(layers: int, epochs: int) -> dict:
    hidden = [{"units": 16, "activation": "tanh"} for _ in range(layers - 1)]
    return {
        "name": f"bench: {layers} layers at a fixed event rate",
        "dataset": {"name": "spiral", "samples": 400, "noise": 0.05, "seed": 1},
        "layers": [*hidden, {"units": 1, "activation": "sigmoid"}],
        "loss": "binary_cross_entropy",
        "optimizer": {"name": "adam", "learning_rate": 0.005},
        "epochs": epochs,
        "batch_size": 10,
        "telemetry": {"every_steps": 1, "histogram_bins": 20},
    }


class Writer(threading.Thread):
    """Plays a real Training's events into the run's stream at `rate` events/s (paced, no bursts)."""

    def __init__(self, redis_url: str, run_id: str, spec: dict, rate: float, seconds: float):
        super().__init__(daemon=True)
        self.redis_url, self.run_id, self.spec, self.rate, self.seconds = (
            redis_url,
            run_id,
            spec,
            rate,
            seconds,
        )
        self.written = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def _run(self) -> None:
        import redis

        from worker import store
        from worker.nn.datasets import make_dataset
        from worker.nn.spec import RunSpec
        from worker.nn.training import Training

        r = redis.Redis.from_url(self.redis_url)
        append = r.register_script(store.APPEND_LUA)
        transition = r.register_script(store.TRANSITION_LUA)
        spec = RunSpec.model_validate(self.spec)
        training = Training(spec, make_dataset(spec.dataset))
        t0 = time.monotonic()
        for n, event in enumerate(training.events()):
            if event["type"] == "status":
                if event["status"] == "running":
                    keys, argv = store.transition_args(self.run_id, "running", ("queued",))
                    transition(keys=keys, args=argv)
                    t0 = time.monotonic()
                continue
            wait = t0 + n / self.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if self.stop.is_set() or time.monotonic() - t0 >= self.seconds:
                break
            payload = {k: v for k, v in event.items() if k != "type"}
            text = store.encode_event(store.new_event(self.run_id, event["type"], **payload))
            argv = store.append_args([text], progress=training.progress, metrics=training.metrics)
            if not append(keys=[store.run_key(self.run_id), store.events_key(self.run_id)], args=argv):
                break
            self.written += 1
        # As a worker does: store the model, then end the run.
        net = training.net
        r.register_script(store.SAVE_MODEL_LUA)(
            keys=[store.run_key(self.run_id), store.model_key(self.run_id)],
            args=[store.model_npz(net.weights, net.biases)],
        )
        keys, argv = store.transition_args(self.run_id, "finished", store.ACTIVE)
        transition(keys=keys, args=argv)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="how long the stream runs (default 10)")
    ap.add_argument("--rate", type=float, default=50.0, help="events per second (default 50)")
    ap.add_argument("--layers", type=int, default=6, help="layers of the streamed network (default 6)")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between samples (default 10)")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of the idle peer measurement")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds before the heap baseline")
    ap.add_argument("--headed", action="store_true", help="show the browser window")
    args = ap.parse_args()

    seconds = args.minutes * 60
    tmp = tempfile.mkdtemp(prefix="deltaboard-bench-")
    procs: list[subprocess.Popen] = []
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env.pop("DELTABOARD_API_TOKEN", None)
    try:
        rport, port = free_port(), free_port()
        procs.append(
            subprocess.Popen(
                redis_argv(rport, tmp, persistent=False),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_port(rport)
        redis_url = f"redis://127.0.0.1:{rport}/0"
        log = open(Path(tmp) / "server.log", "wb")  # noqa: SIM115 (closed with the process)
        procs.append(
            subprocess.Popen(
                [
                    str(ROOT / ".venv" / "bin" / "deltaboard"),
                    "up",
                    "--port",
                    str(port),
                    "--workers",
                    "0",
                    "--redis-url",
                    redis_url,
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        base = f"http://127.0.0.1:{port}"
        wait_port(port, 60)
        time.sleep(0.5)
        # Enough epochs that the Training yields more events than the bench plays.
        epochs = min(10_000, math.ceil(args.rate * seconds / 30) + 10)
        spec = bench_spec(args.layers, epochs)
        run = http(base, "POST", "/api/runs", spec)
        print(f"run {run['id']}: {args.layers} layers, {args.rate:g} events/s for {args.minutes:g} min")

        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=not args.headed
            )
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/#/runs/{run['id']}")
            try:
                page.wait_for_function("() => window.__deltaboard?.streamStats() != null")
            except Exception:
                print(f"the run view did not open; page errors: {errors}")
                raise
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")

            def sample() -> tuple[float, int, float, int]:
                cdp.send("HeapProfiler.collectGarbage")
                metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
                frames = page.evaluate("() => window.__deltaboard.frames.count")
                events = page.evaluate("() => window.__deltaboard.streamStats().events")
                return time.monotonic(), frames, metrics["JSHeapUsedSize"] / 2**20, events

            # The peer: the same view, idle.
            t_a, f_a, _, _ = sample()
            time.sleep(args.idle)
            t_b, f_b, heap_idle, _ = sample()
            idle_fps = (f_b - f_a) / (t_b - t_a)
            print(f"idle peer: {idle_fps:.1f} frames/s, heap {heap_idle:.1f} MB")

            writer = Writer(redis_url, run["id"], spec, args.rate, seconds)
            writer.start()
            rows = []
            prev = sample()
            start = prev[0]
            print(f"{'t (s)':>7} {'frames/s':>9} {'vs idle':>8} {'heap MB':>8} {'events/s':>9} {'events':>8}")
            while writer.is_alive():
                writer.join(timeout=args.sample)
                cur = sample()
                dt = cur[0] - prev[0]
                fps = (cur[1] - prev[1]) / dt
                eps = (cur[3] - prev[3]) / dt
                rows.append((cur[0] - start, fps, cur[2], eps))
                print(
                    f"{cur[0] - start:7.0f} {fps:9.1f} {fps / idle_fps:8.2f} "
                    f"{cur[2]:8.1f} {eps:9.1f} {cur[3]:8d}"
                )
                prev = cur
            if writer.error:
                raise writer.error
            stats = page.evaluate("() => window.__deltaboard.streamStats()")
            browser.close()

        live = [r for r in rows if r[3] > 0.5 * args.rate] or rows
        fps_all = [r[1] for r in live]
        after_warm = [r for r in rows if r[0] >= args.warmup] or rows
        half = [r for r in rows if r[0] >= rows[-1][0] / 2] or rows
        slope = 0.0
        if len(half) >= 2:
            t = [r[0] for r in half]
            h = [r[2] for r in half]
            tm, hm = sum(t) / len(t), sum(h) / len(h)
            slope = (
                sum((a - tm) * (b - hm) for a, b in zip(t, h, strict=True))
                / sum((a - tm) ** 2 for a in t)
                * 60
            )
        print()
        print(
            f"events written {writer.written}, received by the page {stats['events']} "
            f"(last seq {stats['lastSeq']}), "
            f"gaps {stats['gaps']}, reconnects {stats['connects'] - 1}"
        )
        print(
            f"frames/s while streaming: mean {sum(fps_all) / len(fps_all):.1f}, "
            f"worst sample {min(fps_all):.1f} "
            f"(idle peer {idle_fps:.1f}; ratio mean/idle {sum(fps_all) / len(fps_all) / idle_fps:.2f})"
        )
        print(
            f"JS heap after GC: idle {heap_idle:.1f} MB, after warm-up {after_warm[0][2]:.1f} MB, "
            f"end {rows[-1][2]:.1f} MB, "
            f"max {max(r[2] for r in rows):.1f} MB; slope over the second half {slope:+.2f} MB/min"
        )
        print(f"page errors: {errors or 'none'}")
        return 0 if not errors else 1
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT if proc is procs[-1] else signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

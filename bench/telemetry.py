"""What step telemetry costs: training-loop steps/second with layer statistics on every step, off, and at
the default sampled `every_steps`, on a tiny and a medium network. Prints figures; asserts nothing.

    .venv/bin/python bench/telemetry.py [--repeats 3]

The figures are wall-clock on whatever else the machine is doing: compare the ratios within one run
(best of --repeats), not absolute numbers across runs. The goal: default sampled telemetry <= 10% slower
than off. Also prints the measured per-call cost of layer_stats relative to one training step next to the
estimate `telemetry_cost_ratio` that the default every_steps is derived from.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from worker.nn.datasets import Dataset, DatasetInfo, make_builtin
from worker.nn.spec import RunSpec
from worker.nn.telemetry import layer_stats
from worker.nn.training import Training, telemetry_cost_ratio


def tiny() -> tuple[RunSpec, Dataset]:
    spec = RunSpec.model_validate(
        {
            "dataset": {"name": "xor", "samples": 2000, "test_fraction": 0.1},
            "layers": [{"units": 8}, {"units": 8}, {"units": 1, "activation": "sigmoid"}],
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "batch_size": 10,
            "epochs": 5,
        }
    )
    return spec, make_builtin("xor", 2000, 0.0, 0.1, 0)


def medium() -> tuple[RunSpec, Dataset]:
    rng = np.random.default_rng(0)
    n = 128 * 24
    X, y = rng.normal(size=(n, 784)), rng.integers(0, 10, n)
    info = DatasetInfo("random", "classification", 784, 10)
    data = Dataset(info, X[: 128 * 20], y[: 128 * 20], X[128 * 20 :], y[128 * 20 :])
    spec = RunSpec.model_validate(
        {
            "dataset": {"name": "upload:random"},
            "layers": [
                {"units": 256, "activation": "relu"},
                {"units": 256, "activation": "relu"},
                {"units": 10, "activation": "softmax"},
            ],
            "init": "he",
            "optimizer": {"name": "adam", "learning_rate": 0.001},
            "batch_size": 128,
            "epochs": 3,
        }
    )
    return spec, data


def steps_per_second(spec: RunSpec, data: Dataset, every: int | None, encode: bool) -> tuple[float, int, int]:
    """(steps/s over the whole loop incl. epoch evaluation, every_steps used, step events).
    `encode`: json.dumps every event, as the CLI and the RQ job do before writing it."""
    spec = spec.model_copy(update={"telemetry": spec.telemetry.model_copy(update={"every_steps": every})})
    training = Training(spec, data)
    t0 = time.perf_counter()
    n_step_events = 0
    for event in training.events():
        n_step_events += event["type"] == "step"
        if encode:
            json.dumps(event, allow_nan=False, separators=(",", ":"))
    return training.total_steps / (time.perf_counter() - t0), training.every_steps, n_step_events


def per_call(spec: RunSpec, data: Dataset, calls: int) -> tuple[float, float, float]:
    """Seconds per training step (gradients + optimizer), per layer_stats call and per json.dumps of
    the step event, on one batch."""
    training = Training(spec, data)
    net, opt, flat = training.net, training.optimizer, training.params
    X, Y = training.X_train[: spec.batch_size], training.Y_train[: spec.batch_size]
    t0 = time.perf_counter()
    for _ in range(calls):  # as Training.events does it: gradients into, and updates on, flat vectors
        g = net.gradients(X, Y, flat.grads)
        steps = flat.split(opt.step([flat.vector], [flat.grad_vector])[0])
    t_step = (time.perf_counter() - t0) / calls
    t0 = time.perf_counter()
    for _ in range(calls):
        stats = layer_stats(net, g, steps, spec.telemetry.histogram_bins)
    t_stats = (time.perf_counter() - t0) / calls
    event = {"seq": 1, "type": "step", "run_id": "r", "time": 0.0, "epoch": 1, "step": 1, "loss": 0.5}
    event.update(learning_rate=0.01, layers=stats)
    t0 = time.perf_counter()
    for _ in range(calls):
        json.dumps(event, allow_nan=False, separators=(",", ":"))
    return t_step, t_stats, (time.perf_counter() - t0) / calls


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(f"telemetry cost (best of {args.repeats}; noisy shared machine, compare ratios only)")
    for label, make, calls in [
        ("tiny 2-8-8-1, batch 10", tiny, 2000),
        ("medium 784-256-256-10, batch 128", medium, 20),
    ]:
        spec, data = make()
        total = Training(spec, data).total_steps
        modes = {"off": total + 1, "every step": 1, "default": None}
        print(f"\n{label}: {total} steps")
        for encode in (False, True):
            best = {m: (0.0, 0, 0) for m in modes}
            for _ in range(args.repeats):
                for mode, every in modes.items():
                    result = steps_per_second(spec, data, every, encode)
                    if result[0] > best[mode][0]:
                        best[mode] = result
            print("  loop + json.dumps of every event:" if encode else "  loop alone:")
            off = best["off"][0]
            for mode, (rate, every, events) in best.items():
                print(
                    f"    {mode:>10}: {rate:9.0f} steps/s  every_steps={every:<5} step events={events:<5}"
                    f" slowdown vs off {off / rate - 1:+6.1%}"
                )
        t_step, t_stats, t_json = min(per_call(spec, data, calls) for _ in range(args.repeats))
        training = Training(spec, data)
        estimate = telemetry_cost_ratio(training.net.sizes, spec.batch_size)
        print(
            f"  per call: step {t_step * 1e6:.0f} us, layer_stats {t_stats * 1e6:.0f} us, json.dumps of the "
            f"event {t_json * 1e6:.0f} us: ratio {(t_stats + t_json) / t_step:.2f}\n"
            f"  (the default every_steps model says {estimate:.2f}: it adds ~100 us to ship the event)"
        )


if __name__ == "__main__":
    main()

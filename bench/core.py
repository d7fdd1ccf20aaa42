"""Network.gradients (float32) against PyTorch CPU forward + backward, timed in the same process.

Run:  .venv/bin/python bench/core.py [--repeats N] [--only tiny,medium,large] [--threads N] [--hidden relu]

The peer is what a PyTorch user writes: nn.Sequential of nn.Linear and the same activation modules,
the loss (binary cross-entropy on a sigmoid output, else MSE), `loss.backward()`, fresh gradients each call
(`zero_grad(set_to_none=True)`) and `loss.item()`. PyTorch's losses average over every element while
deltaboard's J averages over examples only; the two differ by a constant factor, which costs nothing
and is divided out when the gradients are compared. Both sides get the same number of threads: the
count NumPy's BLAS uses (threadpoolctl), else os.cpu_count(). Times are medians over repeats after a
warm-up; numpy and torch blocks alternate so background load hits both. Prints; asserts nothing.
Where OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set (some machines here set them), they can force a slower
OpenBLAS kernel: compare with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/core.py`;
the first line printed names the kernel that ran ("architecture", from threadpoolctl).

torch is a benchmark-only tool, not a dependency of deltaboard:  .venv/bin/pip install torch==2.13.0
"""

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from worker.nn import Network

SIZES = {
    "tiny": ([2, 8, 8, 1], 10),
    "medium": ([784, 256, 256, 10], 128),
    "large": ([1024, 2048, 2048, 10], 256),
}
GOALS = {"tiny": 0.35, "medium": 0.8, "large": 1.1}
# OpenBLAS workers spin ~0.1 s after a call (libgomp's a little), stealing a core from the other library
# on a 2-core machine; a pause before each timed block keeps one side's spinning off the other's clock.
SETTLE_S = 0.2


def import_torch():
    try:
        import torch
    except ImportError:
        sys.exit("bench/core.py needs PyTorch (benchmark only): .venv/bin/pip install torch==2.13.0")
    return torch


def _blas_limit(threads: int | None):
    """A context that caps NumPy's BLAS threads (threadpoolctl), or does nothing."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(threads, user_api="blas")


def blas_info() -> dict:
    """NumPy's BLAS: library, kernel ('architecture') and thread count, via threadpoolctl when installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"internal_api": "unknown (pip install threadpoolctl)", "num_threads": os.cpu_count()}
    for pool in threadpool_info():
        if pool["user_api"] == "blas":
            keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
            return {k: pool.get(k) for k in keys}
    return {"internal_api": "none found", "num_threads": os.cpu_count()}


def _torch_model(torch, net: Network):
    nn = torch.nn
    modules = {
        "linear": nn.Identity,
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(0.01),
    }
    layers = []
    for W, b, name in zip(net.weights, net.biases, net.activation_names, strict=True):
        linear = nn.Linear(W.shape[1], W.shape[0])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear, modules[name]()]
    return nn.Sequential(*layers)


def _time_block(fn, number: int, settle: float = 0.0) -> float:
    if settle:
        time.sleep(settle)  # let the other library's idle worker threads stop spinning first
        fn()  # and wake this library's own threads again, untimed
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def _calls_per_block(fn, target: float = 0.02) -> int:
    """Enough calls that one timed block lasts about `target` seconds."""
    once = _time_block(fn, 1)
    return max(1, int(target / max(once, 1e-7)))


def bench_gradients(
    sizes: list[int],
    batch: int,
    repeats: int = 15,
    hidden: str = "tanh",
    output: str = "sigmoid",
    seed: int = 0,
    threads: int | None = None,
) -> dict:
    """Seconds per call of Network.gradients (float32) and of the PyTorch peer, and their ratio.

    sizes = [units_0, ..., units_L]; the output layer uses `output` (sigmoid → binary cross-entropy,
    otherwise MSE), hidden layers `hidden`. Both libraries use `threads` threads (default: as many as
    NumPy's BLAS uses). Returns {"numpy_s", "torch_s" (medians), "ratio" (median of the per-repeat
    numpy/torch ratios), "ratio_of_medians", "max_rel_grad_diff", "threads", "blas", ...}.
    """
    with _blas_limit(threads):
        blas = blas_info()
        threads = int(blas["num_threads"] or os.cpu_count())
        return _bench(sizes, batch, repeats, hidden, output, seed, threads, blas)


def _bench(sizes, batch, repeats, hidden, output, seed, threads, blas) -> dict:
    torch = import_torch()
    F = torch.nn.functional
    torch.set_num_threads(threads)

    loss_name = "binary_cross_entropy" if output == "sigmoid" else "mse"
    layers = [{"units": u, "activation": hidden} for u in sizes[1:-1]]
    layers.append({"units": sizes[-1], "activation": output})
    spec = {"layers": layers, "loss": loss_name, "dtype": "float32"}
    net = Network.from_spec(spec, input_dim=sizes[0], seed=seed)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(batch, sizes[0])).astype(np.float32)
    if loss_name == "binary_cross_entropy":
        Y = rng.integers(0, 2, size=(batch, sizes[-1])).astype(np.float32)
    else:
        Y = rng.normal(size=(batch, sizes[-1])).astype(np.float32)

    model = _torch_model(torch, net)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    torch_loss = F.binary_cross_entropy if loss_name == "binary_cross_entropy" else F.mse_loss

    def numpy_step():
        return net.gradients(X, Y)

    def torch_step():
        model.zero_grad(set_to_none=True)
        loss = torch_loss(model(Xt), Yt)
        loss.backward()
        return loss.item()

    # Same J up to a constant: torch averages over n·units_L elements (and MSE has no ½).
    g = numpy_step()
    torch_step()
    scale = sizes[-1] * (1.0 if loss_name == "binary_cross_entropy" else 0.5)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    diff = max(
        float(np.abs(dW - scale * lin.weight.grad.numpy()).max() / (np.abs(dW).max() + 1e-30))
        for dW, lin in zip(g.dW, linears, strict=True)
    )

    for fn in (numpy_step, torch_step):  # warm-up: caches, BLAS buffers, thread pools
        _time_block(fn, 3)
    n_np, n_torch = _calls_per_block(numpy_step), _calls_per_block(torch_step)
    t_np, t_torch = [], []
    for _ in range(repeats):
        t_np.append(_time_block(numpy_step, n_np, SETTLE_S))
        t_torch.append(_time_block(torch_step, n_torch, SETTLE_S))
    return {
        "sizes": sizes,
        "batch": batch,
        "numpy_s": statistics.median(t_np),
        "torch_s": statistics.median(t_torch),
        "ratio": statistics.median(a / b for a, b in zip(t_np, t_torch, strict=True)),
        "ratio_of_medians": statistics.median(t_np) / statistics.median(t_torch),
        "max_rel_grad_diff": diff,
        "threads": {"numpy_blas": threads, "torch": torch.get_num_threads()},
        "blas": blas,
        "torch_version": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--only", default=",".join(SIZES), help="comma-separated: tiny,medium,large")
    parser.add_argument("--threads", type=int, default=None, help="default: NumPy's BLAS thread count")
    parser.add_argument("--hidden", default="tanh", help="hidden activation (output: sigmoid + bce)")
    args = parser.parse_args()

    torch = import_torch()
    with _blas_limit(args.threads):
        blas = blas_info()
    print(f"numpy {np.__version__}, BLAS {blas}")
    print(
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, "
        f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')}"
    )
    print(f"torch {torch.__version__}; threads: numpy BLAS {blas['num_threads']}, torch set to the same")
    print(f"hidden {args.hidden}, output sigmoid + binary cross-entropy, float32, {args.repeats} repeats")
    print("times are medians over repeats on a shared machine: noisy, compare ratios only")
    print(
        f"{'size':<8}{'layers':<22}{'batch':>6}{'numpy ms':>11}{'torch ms':>11}{'ratio':>8}{'goal':>7}"
        f"{'grad diff':>11}"
    )
    for name in args.only.split(","):
        sizes, batch = SIZES[name]
        r = bench_gradients(sizes, batch, args.repeats, hidden=args.hidden, threads=args.threads)
        print(
            f"{name:<8}{'-'.join(map(str, sizes)):<22}{batch:>6}{r['numpy_s'] * 1e3:>11.4f}"
            f"{r['torch_s'] * 1e3:>11.4f}{r['ratio']:>8.3f}{GOALS[name]:>7.2f}{r['max_rel_grad_diff']:>11.1e}"
        )
    print(f"threads used: {r['threads']}; ratio = median over repeats of numpy/torch (paired blocks)")


if __name__ == "__main__":
    main()

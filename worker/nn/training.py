"""The training loop as a generator of contract §5 events (plain dicts), shared by the CLI, RQ job and tests.

`Training(spec, data).events(before_step)` yields, without seq/run_id/time (see `stamp`):
    {"type": "status", "status": "running"}
    {"type": "gradcheck", "layers": [{"layer", "rel_error_W", "rel_error_b"}]}      if spec.gradcheck
    {"type": "step", "epoch", "step", "loss", "learning_rate", "layers": [LayerStats]}   (telemetry.py)
    {"type": "epoch", "epoch", "train_loss", "test_loss", "train_accuracy", "test_accuracy", "boundary"?}
    {"type": "status", "status": "finished"}  or  {"type": "status", "status": "failed", "error": {...}}

Steps: minibatches of `batch_size` rows of the training set, reshuffled every epoch (the last batch of an
epoch may be smaller); `step` counts them from 1 over the whole run. A step event is emitted at steps
1, 1 + every_steps, 1 + 2·every_steps, ... and whenever `before_step()` returns True; its `loss` is the
batch's J (with regularization). Layer statistics are computed only for those steps. every_steps null
(the default) is chosen so a run streams at most ~2000 step events and spends at most ~10% of its time
on them (a deterministic cost model, see `default_every_steps`). The gradcheck event compares backprop
with finite differences on the first `batch_size` training rows, before any update.

Epoch events: `train_loss` / `test_loss` are the mean per-example loss over the whole train / test set
WITHOUT the regularization term (so the two are comparable); accuracies are the share of correct
classes (output >= 0.5 for one output unit, argmax for softmax), None for regression; test values are
None when the test set is empty. `boundary` (2-D inputs only; on the first and last epoch and at most
~200 epochs in between, every `boundary_every`-th) samples the network on a size × size grid over the
data's range padded by 10%: values[i * size + j] is the output at (x_j, y_i), x_j = x_min + j·(x_max -
x_min)/(size - 1) and likewise y_i, so rows run along y from y_min up and columns along x. The value is
the class-1 probability for a 1-unit output (the output itself for non-sigmoid ones), P(class 1) for a
2-class softmax, the predicted class index for a softmax over more classes, and the first output for
regression; rounded to 4 significant digits of the grid's largest |value|.

Divergence: when a batch loss is NaN or infinite, no update is made and the run ends with status
"failed", error {"type": "diverged", "message", "step", "layer"}; `layer` is the first layer (1-based,
forward order) whose z or a is non-finite, else whose delta or dW is, else the output layer.
Everything is seeded by spec.seed (weights and shuffling), so a seeded run yields the same events.
"""

import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from .datasets import Dataset, encode_targets
from .network import Gradients, Network
from .optimizers import make_optimizer
from .params import FlatParams
from .spec import RunSpec
from .telemetry import layer_stats, num

MAX_STEP_EVENTS = 2000  # a run with every_steps null streams at most about this many step events
TELEMETRY_BUDGET = 0.1  # ... and spends about this share of its time, at most, on step events
MAX_BOUNDARY_EVENTS = 200
BOUNDARY_SIZE = 40
EVAL_ELEMENTS = 1 << 22  # rows per forward chunk when evaluating = this / widest layer


def telemetry_cost_ratio(sizes: list[int], batch_size: int, bins: int = 20) -> float:
    """Estimated cost of one step event relative to one training step (gradients + optimizer update).

    A rough model fitted with bench/telemetry.py (one BLAS thread). A training step costs a fixed
    overhead (the optimizer's few calls on the parameter vector) and a per-layer one (NumPy call
    overhead dominates small nets), its matrix products (n·Σ units_k·units_{k-1}) and the optimizer's
    passes over the weights. A step event costs layer_stats (per-layer overhead, a few passes over the
    weights for the norms and over the (n, units_k) delta and f') plus encoding and shipping the event:
    ~100 µs, and ~0.35 µs per number in it (json.dumps).
    """
    layers = len(sizes) - 1
    weights = sum(a * b for a, b in itertools.pairwise(sizes))
    units = sum(sizes[1:])
    step = 16e-6 + 10.5e-6 * layers + 9e-11 * batch_size * weights + 4e-9 * weights
    stats = 30e-6 * layers + 2e-9 * batch_size * units + 2.5e-9 * weights
    event = 100e-6 + 0.35e-6 * (units + layers * (2 * bins + 13))
    return (stats + event) / step


def default_every_steps(total_steps: int, sizes: list[int], batch_size: int, bins: int = 20) -> int:
    """every_steps when the spec leaves it null: at most ~MAX_STEP_EVENTS step events, and about
    TELEMETRY_BUDGET of the run's time spent on step events. Deterministic (no timing), so seeded
    runs stay reproducible."""
    by_count = math.ceil(total_steps / MAX_STEP_EVENTS)
    by_cost = math.ceil(telemetry_cost_ratio(sizes, batch_size, bins) / TELEMETRY_BUDGET)
    return max(1, by_count, by_cost)


class Diverged(Exception):
    def __init__(self, message: str, step: int, layer: int):
        super().__init__(message)
        self.step, self.layer = step, layer


def first_nonfinite_layer(net: Network, g: Gradients) -> tuple[int, str]:
    """(1-based layer, what) of the first non-finite quantity: z or a in forward order, then delta or dW."""
    for k, (W, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        with np.errstate(all="ignore"):
            z = g.a[k] @ W.T + b
        if not np.isfinite(z).all():
            return k + 1, "z"
        if not np.isfinite(g.a[k + 1]).all():
            return k + 1, "a"
    for k in range(len(net.weights)):
        if not np.isfinite(g.delta[k]).all():
            return k + 1, "delta"
        if not np.isfinite(g.dW[k]).all():
            return k + 1, "dW"
    return len(net.weights), "loss"


class Training:
    """One run of a spec on a dataset; `events()` trains and yields its events."""

    def __init__(self, spec: RunSpec, data: Dataset):
        spec.check_dataset(data.info)
        self.spec, self.data = spec, data
        self.net = Network.from_spec(spec, data.info.input_dim, seed=spec.seed)
        self.params = FlatParams(self.net)  # the optimizer updates one vector (see params.py)
        self.optimizer = make_optimizer(spec.optimizer)
        dtype = self.net.dtype
        self.X_train = np.asarray(data.X_train, dtype)
        self.Y_train = encode_targets(data.y_train, data.info, spec.loss, dtype)
        self.X_test = np.asarray(data.X_test, dtype)
        self.Y_test = encode_targets(data.y_test, data.info, spec.loss, dtype)
        self.classification = data.info.task == "classification"
        n = len(self.X_train)
        self.steps_per_epoch = math.ceil(n / spec.batch_size)
        self.total_steps = self.steps_per_epoch * spec.epochs
        self.every_steps = spec.telemetry.every_steps or default_every_steps(
            self.total_steps, self.net.sizes, min(spec.batch_size, n), spec.telemetry.histogram_bins
        )
        self.boundary_every = math.ceil(spec.epochs / MAX_BOUNDARY_EVENTS)
        self.rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(1,)))
        self.grid = self._grid() if data.info.input_dim == 2 else None
        self.progress = {"epoch": 0, "epochs": spec.epochs, "step": 0, "steps": self.total_steps}
        self.metrics = {"train_loss": None, "test_loss": None, "train_accuracy": None, "test_accuracy": None}

    def events(self, before_step: Callable[[], bool] | None = None) -> Iterator[dict]:
        """Train, yielding the events. `before_step()` runs before every minibatch; it may block (pause)
        or raise (cancel; the exception propagates); when it returns True that step emits an event."""
        spec, net = self.spec, self.net
        yield {"type": "status", "status": "running"}
        if spec.gradcheck:
            yield self._gradcheck()
        theta, grad = [self.params.vector], [self.params.grad_vector]
        lr = num(spec.optimizer.learning_rate)
        bins, bs, every = spec.telemetry.histogram_bins, spec.batch_size, self.every_steps
        step = 0
        for epoch in range(1, spec.epochs + 1):
            self.progress["epoch"] = epoch
            order = self.rng.permutation(len(self.X_train))
            X_epoch, Y_epoch = self.X_train[order], self.Y_train[order]
            for start in range(0, len(order), bs):
                forced = before_step() if before_step is not None else False
                step += 1
                with np.errstate(all="ignore"):  # overflow is caught below as divergence, not warned
                    g = net.gradients(
                        X_epoch[start : start + bs], Y_epoch[start : start + bs], self.params.grads
                    )
                    diverged = not math.isfinite(g.loss)
                    steps = None if diverged else self.optimizer.step(theta, grad)[0]
                if diverged:
                    yield self._diverged(g, step, epoch)
                    return
                self.progress["step"] = step
                if forced or (step - 1) % every == 0:
                    yield {
                        "type": "step",
                        "epoch": epoch,
                        "step": step,
                        "loss": g.loss,
                        "learning_rate": lr,
                        "layers": layer_stats(net, g, self.params.split(steps), bins),
                    }
            yield self._epoch_event(epoch)
        yield {"type": "status", "status": "finished"}

    def _gradcheck(self) -> dict:
        from .gradcheck import check_gradients  # written alongside; imported only when asked for

        bs = self.spec.batch_size
        rows = check_gradients(self.net, self.X_train[:bs], self.Y_train[:bs])
        return {
            "type": "gradcheck",
            "layers": [
                {
                    "layer": int(r["layer"]),
                    "rel_error_W": num(r["rel_error_W"]),
                    "rel_error_b": num(r["rel_error_b"]),
                }
                for r in rows
            ],
        }

    def _diverged(self, g: Gradients, step: int, epoch: int) -> dict:
        layer, what = first_nonfinite_layer(self.net, g)
        message = (
            f"the loss became {g.loss} at step {step} (epoch {epoch}), first non-finite in layer {layer} "
            f"({what}); try a smaller learning rate"
        )
        error = {"type": "diverged", "message": message, "step": step, "layer": layer}
        return {"type": "status", "status": "failed", "error": error}

    # -- evaluation ------------------------------------------------------------------------------

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Network outputs in chunks of rows, so evaluating a large set never holds a huge activation."""
        chunk = max(1, EVAL_ELEMENTS // max(self.net.sizes))
        with np.errstate(all="ignore"):
            parts = [self.net.forward(X[i : i + chunk]) for i in range(0, max(len(X), 1), chunk)]
        return np.concatenate(parts)

    def evaluate(self, X: np.ndarray, Y: np.ndarray) -> tuple[float | None, float | None]:
        """(mean per-example loss without regularization, accuracy or None) over a whole set."""
        if len(X) == 0:
            return None, None
        out = self.predict(X)
        with np.errstate(all="ignore"):
            loss = num(self.net.loss.value(out, Y).mean())
        if not self.classification:
            return loss, None
        if out.shape[1] == 1:
            correct = (out[:, 0] >= 0.5) == (Y[:, 0] >= 0.5)
        else:
            correct = out.argmax(axis=1) == Y.argmax(axis=1)
        return loss, float(correct.mean())

    def _epoch_event(self, epoch: int) -> dict:
        train_loss, train_acc = self.evaluate(self.X_train, self.Y_train)
        test_loss, test_acc = self.evaluate(self.X_test, self.Y_test)
        self.metrics.update(
            train_loss=train_loss, test_loss=test_loss, train_accuracy=train_acc, test_accuracy=test_acc
        )
        event = {"type": "epoch", "epoch": epoch, **self.metrics}
        if self.grid is not None and (
            epoch == 1 or epoch == self.spec.epochs or epoch % self.boundary_every == 0
        ):
            event["boundary"] = self.boundary()
        return event

    def _grid(self) -> dict:
        X = np.concatenate([self.data.X_train, self.data.X_test])
        lo, hi = X.min(axis=0), X.max(axis=0)
        pad = np.where(hi > lo, 0.1 * (hi - lo), 1.0)
        (x0, y0), (x1, y1) = (lo - pad).tolist(), (hi + pad).tolist()
        xs, ys = np.linspace(x0, x1, BOUNDARY_SIZE), np.linspace(y0, y1, BOUNDARY_SIZE)
        gx, gy = np.meshgrid(xs, ys)  # gx[i, j] = xs[j], gy[i, j] = ys[i]: rows along y
        points = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(self.net.dtype)
        return {"x": [x0, x1], "y": [y0, y1], "points": points}

    def boundary(self) -> dict:
        """The network's output on the grid (see the module docstring for the layout)."""
        out = self.predict(self.grid["points"])
        if out.shape[1] == 1 or not self.classification:
            values = out[:, 0]
        elif out.shape[1] == 2:
            values = out[:, 1]
        else:
            values = out.argmax(axis=1).astype(np.float64)
        return {
            "x": self.grid["x"],
            "y": self.grid["y"],
            "size": BOUNDARY_SIZE,
            "values": [v if math.isfinite(v) else None for v in _round(values).tolist()],
        }


def _round(values: np.ndarray) -> np.ndarray:
    """To 4 significant digits of the largest |value| (a 40×40 map needs no more; JSON gets 3x smaller)."""
    values = values.astype(np.float64)
    finite = np.abs(values[np.isfinite(values)])
    top = finite.max() if finite.size else 0.0
    if top == 0:
        return values
    decimals = int(np.clip(3 - math.floor(math.log10(top)), 0, 15))
    return np.round(values, decimals)


def stamp(events: Iterable[dict], run_id: str, first_seq: int = 1, clock=time.time) -> Iterator[dict]:
    """Number events from `first_seq`, add run_id and time; key order: seq, type, run_id, time, payload."""
    for seq, event in enumerate(events, start=first_seq):
        stamped = {"seq": seq, "type": event["type"], "run_id": run_id, "time": clock()}
        stamped.update((k, v) for k, v in event.items() if k != "type")
        yield stamped

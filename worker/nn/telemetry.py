"""Per-layer statistics of one backprop step: contract §5 LayerStats, as plain JSON-able values.

For layer k (1-based, as in the derivation) with the batch's delta[k] of shape (n, units_k):
    delta.rms = sqrt(mean delta²)   delta.mean_abs = mean |delta|   delta.max_abs = max |delta|
    delta.unit_mean_abs[i] = mean over the batch of |delta[:, i]|     (units_k numbers)
    delta.hist = histogram of the SIGNED delta values with `bins` equal bins on the symmetric range
                 [-max_abs, max_abs] (edges: bins + 1 numbers, counts: bins integers; [-1, 1] when all are 0)
    grad_W_norm = ||dJ/dW[k]||   grad_b_norm = ||dJ/db[k]||      (Frobenius norms)
    W_norm = ||W[k]|| of the weights that computed this batch (before the step's update)
    update_ratio = ||ΔW[k]|| / W_norm for the step's update ΔW (null when no step is given)
    backprop_norm = ||delta[k+1] W[k+1]|| over the batch, the part of delta flowing down (null at the output)
    fprime.mean, fprime.zero_fraction = share of f'(z) == 0, fprime.saturated_fraction = share of f'(z) < 1e-2
Non-finite numbers become None so events pass `json.dumps(..., allow_nan=False)`.
Training calls this only on steps that emit an event; other steps pay nothing for it.
"""

import math

import numpy as np

from .network import Gradients, Network

SATURATED = 1e-2


def num(x) -> float | None:
    """A plain float, or None when not finite."""
    x = float(x)
    return x if math.isfinite(x) else None


def nums(values: np.ndarray) -> list:
    """A list of plain floats (non-finite ones as None)."""
    out = values.tolist()
    if not np.isfinite(values).all():
        out = [v if math.isfinite(v) else None for v in out]
    return out


def sq_norm(x: np.ndarray) -> float:
    x = x.ravel(order="K")  # a view for C- or F-ordered arrays (backprop may be a transpose)
    return float(np.dot(x, x))


def norm(x: np.ndarray) -> float:
    return math.sqrt(sq_norm(x))


def _histogram(delta: np.ndarray, max_abs: float, bins: int) -> dict:
    """Counts of delta in `bins` equal bins over [-r, r], r = max_abs (np.histogram's, done with bincount:
    several times faster on the bins' uniform grid)."""
    values = delta.ravel(order="K")
    if not math.isfinite(max_abs):
        values = values[np.isfinite(values)]
        max_abs = float(np.abs(values).max()) if values.size else 0.0
    r = max_abs if max_abs > 0 else 1.0
    scaled = (values + values.dtype.type(r)) * values.dtype.type(bins / (2 * r))
    index = np.minimum(scaled.astype(np.intp), bins - 1)  # in [0, bins]: the top edge joins the last bin
    counts = np.bincount(index, minlength=bins)
    edges = r * (2 * np.arange(bins + 1) / bins - 1)  # exactly 0 in the middle for even bins
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def delta_stats(delta: np.ndarray, bins: int) -> dict:
    abs_delta = np.abs(delta)
    max_abs = float(abs_delta.max())
    unit_mean_abs = abs_delta.mean(axis=0)  # every unit has n values, so their mean is the overall mean
    return {
        "rms": num(math.sqrt(sq_norm(delta) / delta.size)),
        "mean_abs": num(unit_mean_abs.mean()),
        "max_abs": num(max_abs),
        "unit_mean_abs": nums(unit_mean_abs),
        "hist": _histogram(delta, max_abs, bins),
    }


def fprime_stats(fprime: np.ndarray) -> dict:
    size = fprime.size
    return {
        "mean": num(fprime.mean()),
        "zero_fraction": float(np.count_nonzero(fprime == 0)) / size,
        "saturated_fraction": float(np.count_nonzero(fprime < fprime.dtype.type(SATURATED))) / size,
    }


def layer_stats(net: Network, g: Gradients, steps: list[np.ndarray] | None, bins: int) -> list[dict]:
    """LayerStats for every layer, output last.

    `g` is the batch's backward pass; `steps` is what the optimizer returned for params
    net.weights + net.biases (the first L entries are the ΔW, already subtracted from net.weights),
    or None when no update was made (then W is read as is and update_ratio is None).
    """
    with np.errstate(all="ignore"):  # huge values before a divergence are reported as None, not warned about
        return [_layer(net, g, steps, bins, k) for k in range(len(net.weights))]


def _layer(net: Network, g: Gradients, steps: list[np.ndarray] | None, bins: int, k: int) -> dict:
    W = net.weights[k]
    if steps is None:
        W_norm, update_ratio = norm(W), None
    else:
        # p -= step, so the weights before the update were W + ΔW: ||W + ΔW||² without building it.
        dW2 = sq_norm(steps[k])
        W_norm = math.sqrt(max(sq_norm(W) + 2 * float(np.vdot(W, steps[k])) + dW2, 0.0))
        update_ratio = math.sqrt(dW2) / W_norm if W_norm > 0 else None
    backprop = g.backprop[k]
    return {
        "layer": k + 1,
        "units": int(W.shape[0]),
        "activation": net.activation_names[k],
        "delta": delta_stats(g.delta[k], bins),
        "grad_W_norm": num(norm(g.dW[k])),
        "grad_b_norm": num(norm(g.db[k])),
        "W_norm": num(W_norm),
        "update_ratio": None if update_ratio is None else num(update_ratio),
        "backprop_norm": None if backprop is None else num(norm(backprop)),
        "fprime": fprime_stats(g.fprime[k]),
    }

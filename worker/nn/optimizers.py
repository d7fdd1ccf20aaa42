"""Optimizers: each turns gradients into in-place parameter updates and returns the steps taken.

`step(params, grads)` updates every array of `params` in place (params[i] -= Δ_i) and returns the Δ_i,
so callers can report ||ΔW|| / ||W||. Learning rates and betas are cast to the parameters' dtype so a
float32 network stays float32 (NumPy 2 promotes float32 arrays times float64 scalars).
"""

import numpy as np

from .spec import AdamSpec, SGDSpec


class SGD:
    """v = μ v + g;  Δ = lr·v (classical) or lr·(g + μ v) (Nesterov); μ = 0 is plain SGD."""

    def __init__(self, learning_rate: float, momentum: float = 0.0, nesterov: bool = False):
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.nesterov = nesterov
        self.velocity: list[np.ndarray] | None = None

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> list[np.ndarray]:
        lr = params[0].dtype.type(self.learning_rate)
        if not self.momentum:
            steps = [lr * g for g in grads]
        else:
            mu = params[0].dtype.type(self.momentum)
            if self.velocity is None:
                self.velocity = [np.zeros_like(p) for p in params]
            steps = []
            for v, g in zip(self.velocity, grads, strict=True):
                v *= mu
                v += g
                steps.append(lr * (g + mu * v) if self.nesterov else lr * v)
        for p, s in zip(params, steps, strict=True):
            p -= s
        return steps


class Adam:
    """m = β1 m + (1-β1) g;  v = β2 v + (1-β2) g²;  Δ = lr·m̂ / (√v̂ + ε) with bias-corrected m̂, v̂."""

    def __init__(self, learning_rate: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.learning_rate = learning_rate
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0
        self.m: list[np.ndarray] | None = None
        self.v: list[np.ndarray] | None = None

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> list[np.ndarray]:
        if self.m is None:
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
        self.t += 1
        t = params[0].dtype.type
        b1, b2 = t(self.beta1), t(self.beta2)
        # Bias corrections folded into the step size: lr·√(1-β2^t)/(1-β1^t).
        lr_t = t(self.learning_rate * np.sqrt(1 - self.beta2**self.t) / (1 - self.beta1**self.t))
        eps_t = t(self.eps * np.sqrt(1 - self.beta2**self.t))
        steps = []
        for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            s = lr_t * m / (np.sqrt(v) + eps_t)
            p -= s
            steps.append(s)
        return steps


def make_optimizer(spec: SGDSpec | AdamSpec) -> SGD | Adam:
    if isinstance(spec, AdamSpec):
        return Adam(spec.learning_rate, spec.beta1, spec.beta2, spec.eps)
    return SGD(spec.learning_rate, spec.momentum, spec.nesterov)

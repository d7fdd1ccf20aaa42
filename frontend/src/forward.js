// The network's forward pass in the browser, on the weights of a snapshot (GET /model), so the decision
// boundary can show the current minibatch's weights while a run is paused or stepped, not only the
// last epoch's. Same notation as the core: z[k] = W[k] a[k-1] + b[k], a[k] = f_k(z[k]); W[k] has shape
// (units_k, units_{k-1}); a batch stacks points as rows.

const F = {
  linear: (z) => z,
  sigmoid: (z) => 1 / (1 + Math.exp(-z)),
  tanh: Math.tanh,
  relu: (z) => (z > 0 ? z : 0),
  leaky_relu: (z) => (z > 0 ? z : 0.01 * z),
};

/** A 2-D parsed npy array as a row-major Float64Array (honours Fortran order through get()). */
function rowMajor(W) {
  const [rows, cols] = W.shape;
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[i * cols + j] = W.get(i, j);
  return out;
}

/** Multiply-adds a forward pass of one point costs (Σ units_k·units_{k-1}). */
export function forwardCost(weights) {
  return weights.reduce((sum, W) => sum + W.shape[0] * W.shape[1], 0);
}

/**
 * Outputs for n points. weights/biases: parsed npy arrays (npz.js); X: Float64Array of n·units_0
 * (row-major). Returns {out: Float64Array of n·units_L, units: units_L}.
 */
export function forward(weights, biases, activations, X, n) {
  let a = X;
  let width = weights[0].shape[1];
  for (let k = 0; k < weights.length; k++) {
    const W = weights[k];
    const bias = Float64Array.from(biases[k].data, Number);
    const [rows, cols] = W.shape;
    if (cols !== width) throw new Error(`W${k + 1} has ${cols} columns, the layer below has ${width} units`);
    const w = rowMajor(W);
    const z = new Float64Array(n * rows);
    for (let p = 0; p < n; p++) {
      const ap = p * cols;
      for (let i = 0; i < rows; i++) {
        let s = bias[i];
        const wi = i * cols;
        for (let j = 0; j < cols; j++) s += w[wi + j] * a[ap + j];
        z[p * rows + i] = s;
      }
    }
    const act = activations[k];
    if (act === "softmax") {
      for (let p = 0; p < n; p++) {
        let m = -Infinity;
        for (let i = 0; i < rows; i++) m = Math.max(m, z[p * rows + i]);
        let sum = 0;
        for (let i = 0; i < rows; i++) sum += z[p * rows + i] = Math.exp(z[p * rows + i] - m);
        for (let i = 0; i < rows; i++) z[p * rows + i] /= sum;
      }
    } else {
      const f = F[act] ?? F.linear;
      for (let i = 0; i < z.length; i++) z[i] = f(z[i]);
    }
    a = z;
    width = rows;
  }
  return { out: a, units: width };
}

/**
 * The boundary of an epoch event (worker/nn/training.py `boundary`), from weights: the network on a
 * size×size grid over range {x: [x0, x1], y: [y0, y1]}; values[i*size + j] at (x_j, y_i). The value is
 * the output for one unit (class-1 probability for sigmoid), P(class 1) for a 2-class softmax, the
 * predicted class for more classes, the first output for regression.
 */
export function boundaryGrid(weights, biases, activations, range, size, classification) {
  const n = size * size;
  const X = new Float64Array(2 * n);
  const [x0, x1] = range.x;
  const [y0, y1] = range.y;
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      X[2 * (i * size + j)] = x0 + ((x1 - x0) * j) / (size - 1);
      X[2 * (i * size + j) + 1] = y0 + ((y1 - y0) * i) / (size - 1);
    }
  }
  const { out, units } = forward(weights, biases, activations, X, n);
  const values = new Array(n);
  for (let p = 0; p < n; p++) {
    if (units === 1 || !classification) values[p] = out[p * units];
    else if (units === 2) values[p] = out[p * 2 + 1];
    else {
      let best = 0;
      for (let i = 1; i < units; i++) if (out[p * units + i] > out[p * units + best]) best = i;
      values[p] = best;
    }
    if (!Number.isFinite(values[p])) values[p] = null;
  }
  return { x: [x0, x1], y: [y0, y1], size, values };
}

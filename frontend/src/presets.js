// Example specs for the editor (contract §3). The first one is what the editor starts with.

/** A dataset spec (the presets all hold out 20% with data seed 1). */
const data = (name, samples, noise) => ({ name, samples, noise, test_fraction: 0.2, seed: 1 });

/** Optimizer specs with the defaults the editor also uses when the optimizer is switched. */
export const adam = (learning_rate) => ({ name: "adam", learning_rate, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
export const sgd = (learning_rate, momentum = 0, nesterov = false) => ({ name: "sgd", learning_rate, momentum, nesterov });

const base = {
  dataset: data("xor", 400, 0.1),
  loss: "binary_cross_entropy",
  init: "xavier",
  regularization: { l1: 0, l2: 0 },
  epochs: 100,
  batch_size: 10,
  seed: 0,
  dtype: "float64",
  telemetry: { every_steps: null, histogram_bins: 20 },
  gradcheck: false,
};

const layers = (n, units, activation, out = { units: 1, activation: "sigmoid" }) => [
  ...Array.from({ length: n }, () => ({ units, activation })),
  out,
];

const ORDER = ["name", "dataset", "layers", "loss", "init", "optimizer", "regularization", "epochs", "batch_size", "seed", "dtype", "telemetry", "gradcheck"];

/** The spec with its keys in the contract's order (how the JSON view shows it). */
export function ordered(spec) {
  const out = {};
  for (const k of ORDER) if (k in spec) out[k] = spec[k];
  for (const k of Object.keys(spec)) if (!(k in out)) out[k] = spec[k];
  return out;
}

const RAW = [
  {
    id: "healthy-tanh",
    label: "healthy tanh net (xor)",
    spec: {
      ...base,
      name: "xor, two tanh layers",
      layers: layers(2, 8, "tanh"),
      optimizer: adam(0.03),
    },
  },
  {
    id: "sigmoid-vanishes",
    label: "sigmoid net that vanishes (6 sigmoid layers)",
    spec: {
      ...base,
      name: "deep sigmoid: vanishing δ",
      dataset: data("circle", 400, 0),
      layers: layers(6, 8, "sigmoid"),
      optimizer: sgd(0.1),
      epochs: 50,
    },
  },
  {
    id: "relu-dies",
    label: "relu net that dies (learning rate 3)",
    spec: {
      ...base,
      name: "relu net that dies: lr 3 knocks most relus to f'(z) = 0",
      dataset: data("circle", 400, 0),
      layers: layers(2, 16, "relu"),
      init: "he",
      optimizer: sgd(3),
      epochs: 30,
    },
  },
  {
    id: "tanh-saturates",
    label: "tanh net that saturates (weights too large)",
    spec: {
      ...base,
      name: "tanh with big steps: saturation",
      dataset: data("moons", 400, 0.1),
      layers: layers(4, 16, "tanh"),
      optimizer: sgd(2, 0.9, true),
      epochs: 40,
    },
  },
  {
    id: "spiral-softmax",
    label: "spiral: relu + softmax + cross-entropy",
    spec: {
      ...base,
      name: "spiral, relu, softmax",
      dataset: data("spiral", 600, 0.05),
      layers: layers(3, 16, "relu", { units: 2, activation: "softmax" }),
      loss: "cross_entropy",
      init: "he",
      optimizer: adam(0.01),
      epochs: 150,
    },
  },
  {
    id: "regression",
    label: "regression: gaussian bumps, tanh + linear, mse",
    spec: {
      ...base,
      name: "gaussian_mix regression",
      dataset: data("gaussian_mix", 500, 0.02),
      layers: layers(2, 16, "tanh", { units: 1, activation: "linear" }),
      loss: "mse",
      optimizer: adam(0.01),
      epochs: 150,
    },
  },
  {
    id: "diverges",
    label: "diverges: learning rate far too large",
    spec: {
      ...base,
      name: "sgd lr 200: diverges",
      dataset: data("plane", 200, 0),
      layers: layers(2, 8, "linear", { units: 1, activation: "linear" }),
      loss: "mse",
      init: "normal",
      optimizer: sgd(100, 0.9),
      epochs: 20,
    },
  },
  {
    id: "gradcheck",
    label: "gradient check, then train (gaussian)",
    spec: {
      ...base,
      name: "gradcheck on gaussian blobs",
      dataset: data("gaussian", 300, 0.1),
      layers: layers(2, 6, "tanh"),
      optimizer: sgd(0.1, 0.9),
      epochs: 30,
      gradcheck: true,
    },
  },
];

export const PRESETS = RAW.map((p) => ({ ...p, spec: ordered(p.spec) }));
export const DEFAULT_SPEC = PRESETS[0].spec;

// Health alerts with plain explanations, computed from the latest step's LayerStats (smoothed over a
// few steps so they do not flicker), the run's status and the gradcheck event.

import { fmt } from "./charts.js";
import { esc } from "./dom.js";


export class Health {
  constructor() {
    this.logRms = null; // EMA of log10 δ rms per layer
    this.zero = null;
    this.sat = null;
    this.ratio = null;
    this.layers = null;
  }

  /** Feed one step event's layers. */
  observe(layers) {
    const a = 0.3;
    const ema = (prev, v) => (prev === null || prev === undefined || !Number.isFinite(prev) ? v : prev + a * (v - prev));
    if (!this.logRms || this.logRms.length !== layers.length) {
      this.logRms = layers.map(() => null);
      this.zero = layers.map(() => null);
      this.sat = layers.map(() => null);
      this.ratio = layers.map(() => null);
    }
    layers.forEach((s, k) => {
      const rms = s.delta?.rms;
      this.logRms[k] = ema(this.logRms[k], rms > 0 ? Math.log10(rms) : -30);
      this.zero[k] = ema(this.zero[k], s.fprime?.zero_fraction ?? 0);
      this.sat[k] = ema(this.sat[k], s.fprime?.saturated_fraction ?? 0);
      if (s.update_ratio > 0) this.ratio[k] = ema(this.ratio[k], Math.log10(s.update_ratio));
    });
    this.layers = layers;
  }

  /** Alerts as [{level: "bad"|"warn"|"ok"|"info", title, text}]. */
  alerts(run, gradcheck) {
    const out = [];
    const err = run?.error;
    if (run?.status === "failed" && err?.type === "diverged") {
      out.push({
        level: "bad",
        title: "Training diverged (loss became NaN or infinite)",
        text: `The run stopped: ${esc(err.message ?? "")}. Usually the learning rate is too large for this network, or the gradients exploded (see below). Lower the learning rate, use a smaller init, or add L2.`,
      });
    } else if (run?.status === "failed") {
      out.push({ level: "bad", title: `Run failed (${esc(err?.type ?? "error")})`, text: esc(err?.message ?? "") });
    }
    const L = this.layers?.length ?? 0;
    const loss = run?.spec?.loss;
    if (L) {
      const rms = this.logRms;
      const zeroLayers = this.layers.map((s, k) => (s.delta?.rms === 0 ? k + 1 : null)).filter((k) => k !== null);
      // From the output layer down: how much δ shrinks or grows per layer (layers with δ = 0 aside).
      const overall = rms[0] - rms[L - 1];
      let worst = null;
      for (let k = 0; k < L - 1; k++) {
        const step = rms[k] - rms[k + 1];
        if (!worst || Math.abs(step) > Math.abs(worst.step)) worst = { k, step };
      }
      if (zeroLayers.length) {
        out.push({
          level: "bad",
          title: "No gradient at all",
          text: `δ is exactly 0 in layer${zeroLayers.length > 1 ? "s" : ""} ${zeroLayers.join(", ")}: nothing flows down to ${
            zeroLayers.length > 1 ? "them" : "it"
          }, so those weights no longer change. Every unit there has f′(z) = 0 (dead ReLUs) or receives Wᵀδ = 0 from above — see the factor split.`,
        });
      } else if (L > 1 && overall < -2) {
        out.push({
          level: overall < -4 ? "bad" : "warn",
          title: "Vanishing gradients",
          text: `δ's rms falls by ×${fmt(10 ** overall)} from the output layer (L${L}) down to layer 1${
            worst && worst.step < -0.5 ? `; the steepest drop is from layer ${worst.k + 2} to layer ${worst.k + 1} (×${fmt(10 ** worst.step)})` : ""
          }. Each layer multiplies δ by Wᵀ and by f′(z): when f′ is small (saturated sigmoid/tanh, dead ReLU) or the weights are small, the early layers get almost no gradient and stop learning. See the factor split to tell which.`,
        });
      } else if (L > 1 && overall > 2) {
        out.push({
          level: overall > 4 ? "bad" : "warn",
          title: "Exploding gradients",
          text: `δ's rms grows by ×${fmt(10 ** overall)} from the output layer down to layer 1. Large weights multiply δ at every layer on the way down; updates in the early layers get huge and training can diverge. Use a smaller init or learning rate.`,
        });
      }
      this.layers.forEach((s, k) => {
        const act = s.activation;
        const units = s.delta?.unit_mean_abs ?? [];
        const dead = units.filter((v) => v === 0).length;
        if ((act === "relu" || act === "leaky_relu") && units.length && (dead / units.length >= 0.25 || this.zero[k] >= 0.8)) {
          out.push({
            level: dead / units.length >= 0.75 || this.zero[k] >= 0.95 ? "bad" : "warn",
            title: `Dead ReLUs in layer ${k + 1}`,
            text: `${dead} of ${units.length} units in layer ${k + 1} pass no δ at all, and ${(100 * this.zero[k]).toFixed(
              0,
            )}% of its f′(z) are 0 (about half is normal for ReLU). A ReLU whose input z is negative for every example outputs 0 and has slope 0, so no gradient reaches its weights and it never recovers. Often caused by a learning rate that is too large; leaky_relu or a smaller rate helps.`,
          });
        }
        // At the output, sigmoid + binary cross-entropy (and softmax + cross-entropy) cancel f′: δ = a − y.
        const cancels = k === L - 1 && ((act === "sigmoid" && loss === "binary_cross_entropy") || act === "softmax");
        if ((act === "sigmoid" || act === "tanh") && !cancels && this.sat[k] >= 0.5) {
          out.push({
            level: this.sat[k] >= 0.9 ? "bad" : "warn",
            title: `Saturated ${act} units in layer ${k + 1}`,
            text: `${(100 * this.sat[k]).toFixed(0)}% of f′(z) in layer ${k + 1} are below 10⁻²: those units sit on the flat tails of the ${act}, so δ = (Wᵀδ) ⊙ f′(z) is crushed there. If the loss has stalled, the inputs to the layer are too large — smaller weights (xavier init) or a smaller learning rate keep z in the steep middle. (A net that already fits its data often saturates harmlessly.)`,
          });
        }
        const r = this.ratio[k];
        if (r !== null && r > -1) {
          out.push({
            level: "warn",
            title: `Large updates in layer ${k + 1}`,
            text: `Each step changes W${k + 1} by ${fmt(10 ** r)} of its size (healthy: about 10⁻³). The learning rate is probably too large for this layer.`,
          });
        } else if (r !== null && r < -5 && run?.status === "running") {
          out.push({
            level: "info",
            title: `Layer ${k + 1} barely moves`,
            text: `Updates are ${fmt(10 ** r)} of the weights' size per step (healthy: about 10⁻³): this layer is learning very slowly.`,
          });
        }
      });
    }
    if (gradcheck?.layers?.length) {
      const tol = run?.spec?.dtype === "float32" ? 1e-2 : 1e-5;
      const worst = Math.max(...gradcheck.layers.map((g) => Math.max(g.rel_error_W ?? 0, g.rel_error_b ?? 0)));
      const rows = gradcheck.layers
        .map((g) => `<tr><td>${g.layer}</td><td>${fmt(g.rel_error_W)}</td><td>${fmt(g.rel_error_b)}</td></tr>`)
        .join("");
      out.push({
        level: worst < tol ? "ok" : "bad",
        title: worst < tol ? "Gradient check passed" : "Gradient check failed",
        text: `Backprop's gradients against central finite differences on one minibatch (relative error; below ${tol} is a pass for ${
          run?.spec?.dtype ?? "float64"
        }):<table class="gc" data-testid="gradcheck-table"><tr><th>layer</th><th>rel. error W</th><th>rel. error b</th></tr>${rows}</table>`,
      });
    }
    if (L && !out.some((a) => a.level === "bad" || a.level === "warn")) {
      out.push({ level: "ok", title: "No problems spotted", text: "δ flows through every layer without vanishing or exploding, and no units are dead or saturated." });
    }
    return out;
  }
}

export function alertsHtml(list) {
  if (!list.length) return '<p class="muted">Alerts appear once the run streams its first steps.</p>';
  const items = list
    .map((a) => `<div class="alert alert-${a.level}" role="status"><strong>${a.title}</strong><div>${a.text}</div></div>`)
    .join("");
  return `<div class="alerts-grid">${items}</div>`;
}

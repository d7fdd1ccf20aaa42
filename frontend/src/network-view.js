// The network diagram (TF-Playground-like, on a canvas): one column per layer, input on the left.
// Nodes are coloured by each unit's mean |δ| (LayerStats.delta.unit_mean_abs, log scale over the
// whole network, so a vanishing δ shows as fading columns); edges are coloured by the sign of W_ij and
// sized by |W_ij| once the run's weights are known (neutral grey before): a snapshot while the run is
// active (the page fetches one when it pauses, after each step and every few seconds while it runs),
// the final weights once it ended. With "gradients" on, edges show ∂J/∂W: the stream carries only the
// per-layer norm ‖∂J/∂W^k‖, so every edge of a layer gets that layer's per-edge RMS, and the hover says so.

import { fmt } from "./charts.js";
import { fitCanvas } from "./dom.js";

const MAX_NODES = 16; // per column; bigger layers show their first units and "+N more"
const POS = "#0877bd";
const SHORT = { sigmoid: "sigm", leaky_relu: "lrelu", linear: "lin", softmax: "smax" };
const NEG = "#f59322";

/** Sequential purple scale for t in [0, 1] (light = small |δ|, dark = large). */
function deltaColor(t) {
  const a = [243, 238, 250];
  const b = [84, 39, 143];
  const c = a.map((ch, i) => Math.round(ch + (b[i] - ch) * t));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

export class NetworkView {
  constructor(canvas, tooltip, legend, { onSelectLayer } = {}) {
    this.canvas = canvas;
    this.tooltip = tooltip;
    this.legend = legend;
    this.onSelectLayer = onSelectLayer;
    this.sizes = [2];
    this.activations = [];
    this.stats = null;
    this.weights = null;
    this.showGrads = false;
    this.selected = null;
    this.dirty = true;
    this.nodes = [];
    this.edges = [];
    canvas.addEventListener("mousemove", (e) => this.hover(e));
    canvas.addEventListener("mouseleave", () => {
      this.tooltip.hidden = true;
    });
    canvas.addEventListener("click", (e) => this.click(e));
  }

  setShape(sizes, activations) {
    this.sizes = sizes;
    this.activations = activations;
    this.dirty = true;
  }

  setStats(layers) {
    this.stats = layers;
    this.dirty = true;
  }

  /**
   * weights: [W1..WL] parsed npy arrays of shape (units_k, units_{k-1}), or null;
   * from: {step, epoch, final} of the snapshot they come from (for the legend).
   */
  setWeights(weights, from = null) {
    this.weights = weights;
    this.weightsFrom = from;
    if (weights?.length) this.sizes = [weights[0].shape[1], ...weights.map((W) => W.shape[0])];
    this.dirty = true;
  }

  setMode(showGrads) {
    this.showGrads = showGrads;
    this.dirty = true;
  }

  setSelected(k) {
    this.selected = k;
    this.dirty = true;
  }

  layout(width, height) {
    const cols = this.sizes.length;
    const left = 44;
    const right = 64;
    const top = 34;
    const bottom = 26;
    const dx = cols > 1 ? (width - left - right) / (cols - 1) : 0;
    this.columns = [];
    this.nodes = [];
    for (let c = 0; c < cols; c++) {
      const shown = Math.min(this.sizes[c], MAX_NODES);
      const avail = height - top - bottom;
      const dy = avail / Math.max(shown, 1);
      const r = Math.max(3, Math.min(11, dy * 0.36));
      const x = left + c * dx;
      const col = { x, shown, hidden: this.sizes[c] - shown, r, nodes: [] };
      for (let i = 0; i < shown; i++) {
        const node = { c, i, x, y: top + dy * (i + 0.5), r };
        col.nodes.push(node);
        this.nodes.push(node);
      }
      this.columns.push(col);
    }
  }

  /** Per-node |δ| colours (global log scale) and per-edge styles for the current data. */
  draw() {
    if (!this.dirty) return;
    this.dirty = false;
    const width = this.canvas.clientWidth || 600;
    const height = this.canvas.clientHeight || 300;
    const ctx = fitCanvas(this.canvas, width, height);
    this.layout(width, height);
    const stats = this.stats;

    // δ scale over every unit shown.
    let hi = 0;
    if (stats) {
      for (const s of stats) for (const v of s.delta?.unit_mean_abs ?? []) if (v > hi) hi = v;
    }
    const decades = 4;
    const lo = hi / 10 ** decades;
    const tOf = (v) => (hi > 0 && v > 0 ? Math.max(0, Math.min(1, Math.log10(v / lo) / decades)) : 0);

    // Edge styles.
    this.edges = [];
    let wMax = 0;
    if (this.weights && !this.showGrads) {
      for (const W of this.weights) for (const v of W.data) wMax = Math.max(wMax, Math.abs(Number(v)));
    }
    const perEdge = [];
    let gMax = 0;
    if (this.showGrads && stats) {
      for (let k = 0; k < stats.length; k++) {
        const n = this.sizes[k] * this.sizes[k + 1];
        perEdge[k] = (stats[k].grad_W_norm ?? 0) / Math.sqrt(n || 1);
        gMax = Math.max(gMax, perEdge[k]);
      }
    }
    for (let c = 1; c < this.columns.length; c++) {
      const k = c - 1; // layer index (0-based) of the weights into column c
      const below = this.columns[c - 1];
      const above = this.columns[c];
      const W = this.weights?.[k];
      for (const a of above.nodes) {
        for (const b of below.nodes) {
          let color = "rgba(150,150,150,0.35)";
          let lw = 0.6;
          let value = null;
          if (this.showGrads) {
            const g = perEdge[k];
            const t = gMax > 0 && g > 0 ? Math.max(0, 1 + Math.log10(g / gMax) / decades) : 0;
            color = `rgba(120,60,170,${0.15 + 0.6 * t})`;
            lw = 0.4 + 3.2 * t;
            value = g;
          } else if (W && a.i < W.shape[0] && b.i < W.shape[1]) {
            value = W.get(a.i, b.i);
            const t = wMax > 0 ? Math.abs(value) / wMax : 0;
            color = value >= 0 ? hexA(POS, 0.2 + 0.7 * t) : hexA(NEG, 0.2 + 0.7 * t);
            lw = 0.3 + 3.6 * t;
          }
          this.edges.push({ k, from: b, to: a, value });
          ctx.strokeStyle = color;
          ctx.lineWidth = lw;
          ctx.beginPath();
          ctx.moveTo(b.x + b.r, b.y);
          ctx.lineTo(a.x - a.r, a.y);
          ctx.stroke();
        }
      }
    }

    // Selected layer highlight.
    if (this.selected !== null && this.columns[this.selected + 1]) {
      const col = this.columns[this.selected + 1];
      ctx.fillStyle = "rgba(255, 215, 0, 0.18)";
      ctx.fillRect(col.x - 26, 18, 52, height - 30);
    }

    // Nodes and column labels.
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "center";
    for (let c = 0; c < this.columns.length; c++) {
      const col = this.columns[c];
      const s = c > 0 ? stats?.[c - 1] : null;
      for (const n of col.nodes) {
        const v = s?.delta?.unit_mean_abs?.[n.i];
        ctx.beginPath();
        ctx.arc(n.x, n.y, n.r, 0, 2 * Math.PI);
        ctx.fillStyle = c === 0 ? "#d9dde3" : v === undefined ? "#ffffff" : deltaColor(tOf(v));
        ctx.fill();
        ctx.lineWidth = 1;
        ctx.strokeStyle = "#555";
        ctx.stroke();
        if (c > 0 && v === 0) {
          // A unit whose δ is exactly zero for the whole batch: dead.
          ctx.strokeStyle = "#c00";
          ctx.beginPath();
          ctx.moveTo(n.x - n.r * 0.6, n.y - n.r * 0.6);
          ctx.lineTo(n.x + n.r * 0.6, n.y + n.r * 0.6);
          ctx.moveTo(n.x + n.r * 0.6, n.y - n.r * 0.6);
          ctx.lineTo(n.x - n.r * 0.6, n.y + n.r * 0.6);
          ctx.stroke();
        }
      }
      ctx.fillStyle = "#222";
      const act = this.activations[c - 1] ?? "";
      const compact = this.columns.length > 1 && this.columns[1].x - this.columns[0].x < 110;
      const title =
        c === 0 ? (compact ? `in (${this.sizes[0]})` : `input (${this.sizes[0]})`) : `L${c} ${compact ? (SHORT[act] ?? act) : act} (${this.sizes[c]})`;
      ctx.fillText(title, col.x, 13);
      if (s) ctx.fillText(compact ? `δ ${fmt(s.delta?.rms)}` : `δ rms ${fmt(s.delta?.rms)}`, col.x, 27);
      if (col.hidden > 0) ctx.fillText(`+${col.hidden} more`, col.x, height - 8);
    }

    const legend = `nodes: mean |δ| per unit, log scale <span class="scale-bar"></span> ${
      hi > 0 ? `${fmt(lo)} … ${fmt(hi)}` : "(no step yet)"
    } · ✕ = δ exactly 0 (dead unit) · edges: ${
      this.showGrads
        ? "∂J/∂W — per-layer RMS per edge from ‖∂J/∂W‖ (per-edge gradients are not streamed)"
        : this.weights
          ? `<span style="color:#0877bd">W&gt;0</span> / <span style="color:#f59322">W&lt;0</span>, width ∝ |W|${weightsSource(this.weightsFrom)}`
          : "weights not loaded yet (the run has not started)"
    }`;
    if (legend !== this.legendHtml) {
      this.legendHtml = legend;
      this.legend.innerHTML = legend;
    }
  }

  pick(e) {
    const rect = this.canvas.getBoundingClientRect();
    const x = e.clientX - rect.left;
    const y = e.clientY - rect.top;
    for (const n of this.nodes) if ((n.x - x) ** 2 + (n.y - y) ** 2 <= (n.r + 2) ** 2) return { node: n, x, y };
    let best = null;
    let bestD = 4;
    for (const ed of this.edges) {
      const d = segDist(x, y, ed.from.x, ed.from.y, ed.to.x, ed.to.y);
      if (d < bestD) {
        bestD = d;
        best = ed;
      }
    }
    if (best) return { edge: best, x, y };
    const col = this.columns.findIndex((c) => Math.abs(c.x - x) < 28);
    return col > 0 ? { column: col, x, y } : { x, y };
  }

  hover(e) {
    const hit = this.pick(e);
    const stats = this.stats;
    let html = "";
    if (hit.node) {
      const { c, i } = hit.node;
      if (c === 0) html = `input x<sub>${i + 1}</sub>`;
      else {
        const s = stats?.[c - 1];
        html = `layer ${c}, unit ${i + 1} (${this.activations[c - 1] ?? ""})<br>mean |δ| = ${fmt(
          s?.delta?.unit_mean_abs?.[i],
        )}<br>layer δ rms = ${fmt(s?.delta?.rms)}, mean f′(z) = ${fmt(s?.fprime?.mean)}`;
      }
    } else if (hit.edge) {
      const { k, from, to, value } = hit.edge;
      const s = stats?.[k];
      const name = `W<sup>${k + 1}</sup><sub>${to.i + 1},${from.i + 1}</sub>`;
      if (this.showGrads) {
        html = `∂J/∂${name}: per-edge gradients are not streamed.<br>Layer ${k + 1}: ‖∂J/∂W‖ = ${fmt(
          s?.grad_W_norm,
        )}, RMS per edge ≈ ${fmt(value)}`;
      } else if (value !== null) {
        html = `${name} = ${fmt(value)}<br>(from unit ${from.i + 1} of ${from.c === 0 ? "the input" : `layer ${from.c}`} to unit ${
          to.i + 1
        } of layer ${to.c})<br>‖W<sup>${k + 1}</sup>‖ = ${fmt(s?.W_norm)}`;
      } else {
        html = `${name}: weights not loaded yet; ‖W<sup>${k + 1}</sup>‖ = ${fmt(s?.W_norm)}`;
      }
    } else if (hit.column) {
      html = `layer ${hit.column}: click to show its equations`;
    }
    if (!html) {
      this.tooltip.hidden = true;
      return;
    }
    this.tooltip.innerHTML = html;
    this.tooltip.hidden = false;
    this.tooltip.style.left = `${Math.min(hit.x + 14, this.canvas.clientWidth - 220)}px`;
    this.tooltip.style.top = `${hit.y + 14}px`;
  }

  click(e) {
    const hit = this.pick(e);
    const c = hit.node?.c ?? hit.column ?? (hit.edge ? hit.edge.k + 1 : 0);
    if (c > 0) this.onSelectLayer?.(c - 1);
  }
}

/** " · after step 120 (epoch 3), live snapshot" for the legend. */
function weightsSource(from) {
  if (!from || from.step == null) return "";
  const where = from.step === 0 ? "initial weights" : `after step ${from.step}${from.epoch ? ` (epoch ${from.epoch})` : ""}`;
  return ` · <span data-testid="weights-step" data-step="${from.step}">${where}</span>, ${from.final ? "final" : "live snapshot"}`;
}

function hexA(hex, alpha) {
  const n = Number.parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha.toFixed(3)})`;
}

function segDist(px, py, ax, ay, bx, by) {
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy || 1;
  const t = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / len2));
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}

// δ histograms over time: one heatmap strip per layer (x = time, y = δ from −max|δ| to +max|δ| of
// that step, colour = share of the batch's δ entries in that bin). Each layer keeps at most `capacity` columns, halved (every other
// column kept) when full, so the strip always spans the whole run with bounded memory.

import { fmt } from "./charts.js";
import { fitCanvas } from "./dom.js";

class HistStore {
  constructor(capacity) {
    this.capacity = capacity;
    this.cols = []; // [{edges, counts}]
    this.stride = 1;
    this.seen = 0;
    this.last = null;
  }

  push(hist) {
    if (!hist?.edges?.length || !hist?.counts?.length) return;
    this.last = hist;
    if (this.seen++ % this.stride !== 0) return;
    this.cols.push(hist);
    if (this.cols.length >= this.capacity) {
      this.cols = this.cols.filter((_, i) => i % 2 === 0);
      this.stride *= 2;
    }
  }

  columns() {
    const c = this.cols;
    return this.last && c[c.length - 1] !== this.last ? c.concat([this.last]) : c;
  }
}

export class HistView {
  constructor(el, nLayers, activations, capacity = 240) {
    this.el = el;
    this.stores = Array.from({ length: nLayers }, () => new HistStore(capacity));
    this.dirty = false;
    el.innerHTML = "";
    this.strips = this.stores.map((_, k) => {
      const row = document.createElement("div");
      row.className = "hist-row";
      const label = document.createElement("div");
      label.className = "hist-label";
      label.innerHTML = `L${k + 1} <small>${activations[k] ?? ""}</small><br><small class="hist-range">–</small>`;
      const canvas = document.createElement("canvas");
      canvas.className = "hist-canvas";
      canvas.setAttribute("aria-label", `histogram of δ in layer ${k + 1} over time`);
      row.append(label, canvas);
      el.append(row);
      return { canvas, range: label.querySelector(".hist-range") };
    });
    this.tmp = document.createElement("canvas");
  }

  push(layers) {
    layers.forEach((s, k) => this.stores[k]?.push(s.delta?.hist));
    this.dirty = true;
  }

  draw() {
    if (!this.dirty) return;
    this.dirty = false;
    this.stores.forEach((store, k) => this.drawStrip(store, this.strips[k]));
  }

  drawStrip(store, strip) {
    const cols = store.columns();
    const { canvas } = strip;
    const w = canvas.clientWidth || 300;
    const h = canvas.clientHeight || 34;
    const ctx = fitCanvas(canvas, w, h);
    ctx.fillStyle = "#f7f7fb";
    ctx.fillRect(0, 0, w, h);
    if (!cols.length) return;
    // Each column on its own symmetric range ±max|δ| of that step (the bins' range), so the shape of the
    // distribution stays visible while its scale changes by decades; the label gives the latest range.
    const lastEdges = cols[cols.length - 1].edges;
    strip.range.textContent = `±${fmt(Math.abs(lastEdges[lastEdges.length - 1]))}`;
    const n = cols.length;
    const rows = cols[cols.length - 1].counts.length; // one pixel row per bin (bins are fixed per run)
    const tmp = this.tmp;
    if (tmp.width !== n || tmp.height !== rows) {
      tmp.width = n;
      tmp.height = rows;
    }
    const tctx = tmp.getContext("2d");
    const img = tctx.createImageData(n, rows);
    const px = img.data;
    for (let x = 0; x < n; x++) {
      const { counts } = cols[x];
      if (counts.length !== rows) continue;
      let peak = 0;
      for (const c of counts) peak = Math.max(peak, c);
      if (!peak) continue;
      for (let b = 0; b < rows; b++) {
        // Bin b counts from the most negative edge; row 0 is the top (+max|δ|). Shade relative to the
        // column's fullest bin, so the distribution's shape shows at every scale.
        const t = counts[b] > 0 ? 0.12 + 0.88 * Math.sqrt(counts[b] / peak) : 0;
        const o = ((rows - 1 - b) * n + x) * 4;
        px[o] = Math.round(247 - 190 * t);
        px[o + 1] = Math.round(247 - 215 * t);
        px[o + 2] = Math.round(251 - 120 * t);
        px[o + 3] = 255;
      }
    }
    tctx.putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tmp, 0, 0, w, h);
    // Zero line.
    ctx.strokeStyle = "rgba(0,0,0,0.25)";
    ctx.beginPath();
    ctx.moveTo(0, h / 2);
    ctx.lineTo(w, h / 2);
    ctx.stroke();
  }
}

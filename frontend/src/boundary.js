// The decision boundary of a 2-D dataset: the network's output on a grid as a heatmap, with the run's
// real points on top (training points filled, test points as rings). Grid (an epoch event's `boundary`,
// or the same computed from a weight snapshot by forward.js): values[i*size + j] is the output at
// y = y0 + i·(y1-y0)/(size-1), x = x0 + j·(x1-x0)/(size-1) (row-major: y rows, x columns).

import { classColor, drawPoints, valueColor } from "./datasets.js";
import { fitCanvas } from "./dom.js";

export class BoundaryView {
  constructor(canvas, caption) {
    this.canvas = canvas;
    this.caption = caption;
    this.grid = null;
    this.label = "";
    this.data = null;
    this.dataRange = null;
    this.drawn = null; // {train, test}: points drawn by the last draw (a test hook reads it)
    this.dirty = true;
    this.cell = document.createElement("canvas");
  }

  /** grid: a boundary {x, y, size, values} or null; label: where it comes from ("after epoch 12"). */
  setGrid(grid, label) {
    this.grid = grid;
    this.label = label;
    this.dirty = true;
  }

  /**
   * The run's points: {train: [[x, y, target]], test: [...], regression, nClasses}. Until a grid
   * arrives they are drawn over their own range padded by 10% (the range the worker's grid uses).
   */
  setData(data) {
    this.data = data;
    const all = [...data.train, ...data.test];
    if (all.length) {
      const lo = [Infinity, Infinity];
      const hi = [-Infinity, -Infinity];
      for (const p of all) {
        for (const d of [0, 1]) {
          lo[d] = Math.min(lo[d], p[d]);
          hi[d] = Math.max(hi[d], p[d]);
        }
      }
      const pad = (d) => (hi[d] > lo[d] ? 0.1 * (hi[d] - lo[d]) : 1);
      this.dataRange = { x: [lo[0] - pad(0), hi[0] + pad(0)], y: [lo[1] - pad(1), hi[1] + pad(1)] };
    }
    if (data.regression) {
      let tmin = Infinity;
      let tmax = -Infinity;
      for (const p of all) {
        tmin = Math.min(tmin, p[2]);
        tmax = Math.max(tmax, p[2]);
      }
      this.tRange = [tmin, tmax];
    }
    this.dirty = true;
  }

  draw() {
    if (!this.dirty) return;
    this.dirty = false;
    const size = this.canvas.clientWidth || 260;
    const ctx = fitCanvas(this.canvas, size, size);
    const pad = 22;
    const box = { x: pad, y: 4, w: size - pad - 4, h: size - pad - 4 };
    ctx.fillStyle = "#f3f4f6";
    ctx.fillRect(box.x, box.y, box.w, box.h);
    const g = this.grid;
    const regression = Boolean(this.data?.regression);
    let range = this.dataRange ?? { x: [-1, 1], y: [-1, 1] };
    if (g && Array.isArray(g.values) && g.size > 1) {
      range = { x: g.x, y: g.y };
      const s = g.size;
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of g.values) {
        if (Number.isFinite(v)) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
      }
      const unit = !regression && lo >= 0 && hi <= 1;
      // Several classes: the grid holds class indices 0..K-1, in lighter tints of the points' colours.
      const classes = !regression && (this.data?.nClasses ?? 2) > 2 ? this.data.nClasses : null;
      const span = hi - lo || 1;
      this.cell.width = s;
      this.cell.height = s;
      const cctx = this.cell.getContext("2d");
      const img = cctx.createImageData(s, s);
      for (let i = 0; i < s; i++) {
        for (let j = 0; j < s; j++) {
          const v = g.values[i * s + j];
          const t = unit ? v : (v - lo) / span;
          const css = classes && Number.isFinite(v) ? classColor(v, 0.45) : valueColor(Number.isFinite(t) ? t : 0.5);
          const [r, gg, b] = rgb(css);
          const o = ((s - 1 - i) * s + j) * 4; // row 0 is y min: the bottom of the picture
          img.data[o] = r;
          img.data[o + 1] = gg;
          img.data[o + 2] = b;
          img.data[o + 3] = 255;
        }
      }
      cctx.putImageData(img, 0, 0);
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(this.cell, box.x, box.y, box.w, box.h);
      const scale = classes
        ? ` (the predicted class, ${classes} classes)`
        : unit
          ? " (0 orange … 1 blue)"
          : ` (${lo.toPrecision(3)} … ${hi.toPrecision(3)})`;
      this.caption.textContent = `network output ${this.label}, ${s}×${s} grid${scale}`;
    } else {
      this.caption.textContent = "waiting for the network's first output…";
    }
    const d = this.data;
    if (d) {
      const opts = { tRange: this.tRange, nClasses: d.nClasses };
      this.drawn = {
        train: drawPoints(ctx, d.train, box, range, regression, opts),
        test: drawPoints(ctx, d.test, box, range, regression, { ...opts, hollow: true }),
      };
    }
    ctx.fillStyle = "#333";
    ctx.font = "10px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.fillText(range.x[0].toFixed(1), box.x + 8, box.y + box.h + 13);
    ctx.fillText(range.x[1].toFixed(1), box.x + box.w - 8, box.y + box.h + 13);
    ctx.fillText("x₁", box.x + box.w / 2, box.y + box.h + 14);
    ctx.textAlign = "right";
    ctx.fillText(range.y[1].toFixed(1), pad - 3, box.y + 9);
    ctx.fillText(range.y[0].toFixed(1), pad - 3, box.y + box.h);
    ctx.fillText("x₂", pad - 4, box.y + box.h / 2);
  }
}

function rgb(css) {
  const m = /rgba?\((\d+),(\d+),(\d+)/.exec(css);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

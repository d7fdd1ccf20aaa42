// The decision boundary of a 2-D dataset: the network's output on a grid as a heatmap, with the
// dataset's points on top. Grid (epoch event `boundary`): values[i*size + j] is the output at
// y = y0 + i·(y1-y0)/(size-1), x = x0 + j·(x1-x0)/(size-1) (row-major: y rows, x columns).

import { drawPoints, valueColor } from "./datasets.js";

export class BoundaryView {
  constructor(canvas, caption) {
    this.canvas = canvas;
    this.caption = caption;
    this.ctx = canvas.getContext("2d");
    this.grid = null;
    this.points = null;
    this.regression = false;
    this.dirty = true;
    this.cell = document.createElement("canvas");
  }

  /** grid: the epoch event's boundary; points: [[x, y, target]] or null; epoch: for the caption. */
  set(grid, points, regression, epoch) {
    this.grid = grid;
    this.points = points;
    this.regression = regression;
    this.epoch = epoch;
    this.dirty = true;
  }

  draw() {
    if (!this.dirty) return;
    this.dirty = false;
    const { canvas, ctx } = this;
    const dpr = window.devicePixelRatio || 1;
    const size = canvas.clientWidth || 260;
    if (canvas.width !== Math.round(size * dpr)) {
      canvas.width = Math.round(size * dpr);
      canvas.height = Math.round(size * dpr);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, size, size);
    const pad = 22;
    const box = { x: pad, y: 4, w: size - pad - 4, h: size - pad - 4 };
    ctx.fillStyle = "#f3f4f6";
    ctx.fillRect(box.x, box.y, box.w, box.h);
    const g = this.grid;
    let range = { x: [-1, 1], y: [-1, 1] };
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
      const unit = !this.regression && lo >= 0 && hi <= 1;
      const span = hi - lo || 1;
      this.cell.width = s;
      this.cell.height = s;
      const cctx = this.cell.getContext("2d");
      const img = cctx.createImageData(s, s);
      for (let i = 0; i < s; i++) {
        for (let j = 0; j < s; j++) {
          const v = g.values[i * s + j];
          const t = unit ? v : (v - lo) / span;
          const [r, gg, b] = rgb(valueColor(Number.isFinite(t) ? t : 0.5));
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
      this.caption.textContent = `network output after epoch ${this.epoch ?? "?"}, ${s}×${s} grid${
        unit ? " (0 orange … 1 blue)" : ` (${lo.toPrecision(3)} … ${hi.toPrecision(3)})`
      }`;
    } else {
      this.caption.textContent = "waiting for the first epoch's boundary…";
    }
    if (this.points) drawPoints(ctx, this.points, box, range, this.regression);
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

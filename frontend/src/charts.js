// Time series for the run view: a bounded, downsampled columnar history and thin uPlot wrappers.
//
// History keeps columns [x, y1, y2, ...] (uPlot's aligned data) of at most `capacity` points. When it
// fills up it keeps every other point and from then on records every 2nd (then 4th, ...) point, so a
// run of any length is drawn from at most `capacity` points spread evenly over the whole run, plus the
// latest point. Memory stays flat however long the run streams.

import uPlot from "../node_modules/uplot/dist/uPlot.esm.js";

export const LAYER_COLORS = [
  "#4e79a7",
  "#f28e2b",
  "#59a14f",
  "#e15759",
  "#b07aa1",
  "#76b7b2",
  "#edc948",
  "#9c755f",
  "#ff9da7",
  "#7f7f7f",
];

export const layerColor = (k) => LAYER_COLORS[k % LAYER_COLORS.length];

export class History {
  /** nSeries: number of y columns. */
  constructor(nSeries, capacity = 1000) {
    this.capacity = capacity;
    this.stride = 1;
    this.seen = 0;
    this.cols = Array.from({ length: nSeries + 1 }, () => []);
    this.tail = null; // the latest point when it was not kept, so the chart always ends at "now"
    this.version = 0;
  }

  get length() {
    return this.cols[0].length;
  }

  /** Append a point; ys may hold nulls (a gap in that series). */
  push(x, ys) {
    this.version += 1;
    const keep = this.seen % this.stride === 0;
    this.seen += 1;
    if (!keep) {
      this.tail = [x, ...ys];
      return;
    }
    this.tail = null;
    this.cols[0].push(x);
    for (let i = 0; i < ys.length; i++) this.cols[i + 1].push(ys[i] ?? null);
    if (this.cols[0].length >= this.capacity) this.compact();
  }

  compact() {
    for (const col of this.cols) {
      let j = 0;
      for (let i = 0; i < col.length; i += 2) col[j++] = col[i];
      col.length = j;
    }
    this.stride *= 2;
  }

  /** Aligned data for uPlot: the kept columns themselves, or copies with the latest point appended. */
  data() {
    if (!this.tail) return this.cols;
    return this.cols.map((col, i) => col.concat([this.tail[i]]));
  }

  clear() {
    for (const col of this.cols) col.length = 0;
    this.tail = null;
    this.stride = 1;
    this.seen = 0;
    this.version += 1;
  }
}

function lastValue(col) {
  if (!col) return null;
  for (let i = col.length - 1; i >= 0; i--) if (col[i] != null) return col[i];
  return null;
}

/** Values a log axis can show: positive finite numbers, else null. */
export const logSafe = (v) => (typeof v === "number" && Number.isFinite(v) && v > 0 ? v : null);

/** A number for people: 4 significant digits, exponent form when tiny or huge, "–" when missing. */
export const fmt = (v) => {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return Number(v.toPrecision(4)).toString();
};

const isDecade = (v) => v > 0 && Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9;

/** Log axis labels: every decade (every 2nd, 3rd… when many), in-between ticks only over a short range. */
function logLabels(u, splits) {
  const decades = splits.filter(isDecade).length;
  const every = Math.max(1, Math.ceil(decades / 5));
  return splits.map((v) => {
    if (v == null || !(v > 0)) return "";
    if (!isDecade(v)) return decades > 2 ? "" : v.toExponential(0).replace("e+", "e");
    return Math.round(Math.log10(v)) % every === 0 ? v.toExponential(0).replace("e+", "e") : "";
  });
}

function logAxis(label) {
  return { label, size: 60, values: logLabels };
}

/**
 * A uPlot chart inside `el`. series: [{label, color, dash?, width?}]; opts.log: log y axis;
 * opts.xLabel / yLabel; opts.band: [lo, hi, ref] a shaded reference band (log charts).
 */
export class Chart {
  constructor(el, { series, log = false, xLabel = "step", yLabel = "", height = 180, band = null, yRange = null }) {
    this.el = el;
    this.log = log;
    this.band = band;
    this.version = -1;
    const width = Math.max(200, el.clientWidth || 300);
    const opts = {
      width,
      height,
      legend: { show: true, live: true },
      cursor: { drag: { x: true, y: false } },
      scales: {
        x: { time: false },
        y: log ? { distr: 3, log: 10 } : yRange ? { range: yRange } : {},
      },
      axes: [
        { label: xLabel, size: 36, labelSize: 14 },
        log ? logAxis(yLabel) : { label: yLabel, size: 52, labelSize: 14 },
      ],
      series: [
        { label: xLabel, value: (u, v, si, idx) => fmt(idx == null ? lastValue(u.data[0]) : v) },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: s.width ?? 1.5,
          dash: s.dash,
          spanGaps: true,
          points: { size: 4 }, // uPlot shows points only where the data is sparse (e.g. a run's first steps)
          // Without a cursor on the chart the legend shows each series' latest value.
          value: (u, v, si, idx) => fmt(idx == null ? lastValue(u.data[si]) : v),
        })),
      ],
      hooks: band ? { drawClear: [(u) => this.drawBand(u)] } : {},
    };
    const empty = [[], ...series.map(() => [])];
    this.plot = new uPlot(opts, empty, el);
  }

  drawBand(u) {
    const [lo, hi, ref] = this.band;
    const { ctx, bbox } = u;
    const y0 = u.valToPos(hi, "y", true);
    const y1 = u.valToPos(lo, "y", true);
    if (!Number.isFinite(y0) || !Number.isFinite(y1)) return;
    const top = Math.max(bbox.top, Math.min(y0, y1));
    const bottom = Math.min(bbox.top + bbox.height, Math.max(y0, y1));
    ctx.save();
    if (bottom > top) {
      ctx.fillStyle = "rgba(89, 161, 79, 0.13)";
      ctx.fillRect(bbox.left, top, bbox.width, bottom - top);
    }
    const yr = u.valToPos(ref, "y", true);
    if (yr >= bbox.top && yr <= bbox.top + bbox.height) {
      ctx.strokeStyle = "rgba(60, 120, 60, 0.8)";
      ctx.setLineDash([4, 4]);
      ctx.beginPath();
      ctx.moveTo(bbox.left, yr);
      ctx.lineTo(bbox.left + bbox.width, yr);
      ctx.stroke();
    }
    ctx.restore();
  }

  /** Redraw from a History if it changed since the last call. */
  update(history) {
    if (history.version === this.version) return false;
    this.version = history.version;
    this.plot.setData(history.data());
    return true;
  }

  setData(data) {
    this.version = -1;
    this.plot.setData(data);
  }

  resize() {
    const width = Math.max(200, this.el.clientWidth);
    if (width !== this.plot.width) this.plot.setSize({ width, height: this.plot.height });
  }

  destroy() {
    this.plot.destroy();
  }
}

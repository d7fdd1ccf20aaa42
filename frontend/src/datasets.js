// Client-side samples of the built-in 2-D datasets, for the editor's preview before a run exists. They
// follow worker/nn/datasets.py's recipes with a different random generator, so they are a faithful
// *preview* of each dataset's shape, not the server's exact points (a run's view draws those, from
// GET /api/runs/{id}/data). Also: drawing points and the colour scale both views share.

function mulberry32(seed) {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

function rngFor(seed) {
  const u = mulberry32(seed * 2654435761 + 12345);
  const uniform = (lo, hi) => lo + (hi - lo) * u();
  const normal = () => {
    const a = Math.max(u(), 1e-12);
    return Math.sqrt(-2 * Math.log(a)) * Math.cos(2 * Math.PI * u());
  };
  return { u, uniform, normal };
}

const GENERATORS = {
  circle(r, n, noise) {
    const pts = [];
    const inner = Math.floor(n / 2);
    for (let i = 0; i < n; i++) {
      const rad = i < inner ? r.uniform(0, 2) : r.uniform(3, 5);
      const ang = r.uniform(0, 2 * Math.PI);
      pts.push([
        (rad * Math.cos(ang)) / 5 + (noise * r.normal()) / 5,
        (rad * Math.sin(ang)) / 5 + (noise * r.normal()) / 5,
        i < inner ? 1 : 0,
      ]);
    }
    return pts;
  },
  xor(r, n, noise) {
    const pts = [];
    for (let i = 0; i < n; i++) {
      const x = r.uniform(0.1, 1) * (r.u() < 0.5 ? -1 : 1);
      const y = r.uniform(0.1, 1) * (r.u() < 0.5 ? -1 : 1);
      pts.push([x + noise * r.normal(), y + noise * r.normal(), x * y > 0 ? 1 : 0]);
    }
    return pts;
  },
  gaussian(r, n, noise) {
    const pts = [];
    for (let i = 0; i < n; i++) {
      const c = i % 2 === 1 ? 0.5 : -0.5;
      pts.push([c + (0.15 + noise) * r.normal(), c + (0.15 + noise) * r.normal(), i % 2]);
    }
    return pts;
  },
  spiral(r, n, noise) {
    const pts = [];
    for (let i = 0; i < n; i++) {
      const y = i % 2;
      const t = r.u();
      const rad = 0.1 + 0.9 * t;
      const ang = 1.75 * 2 * Math.PI * t + Math.PI * y;
      pts.push([rad * Math.sin(ang) + (noise * r.normal()) / 5, rad * Math.cos(ang) + (noise * r.normal()) / 5, y]);
    }
    return pts;
  },
  moons(r, n, noise) {
    const pts = [];
    for (let i = 0; i < n; i++) {
      const y = i % 2;
      const a = r.uniform(0, Math.PI);
      let px = y === 0 ? Math.cos(a) : 1 - Math.cos(a);
      let py = y === 0 ? Math.sin(a) : 0.5 - Math.sin(a);
      px = (px - 0.5) / 1.5;
      py = (py - 0.25) / 1.5;
      pts.push([px + noise * r.normal(), py + noise * r.normal(), y]);
    }
    return pts;
  },
  plane(r, n, noise) {
    const pts = [];
    for (let i = 0; i < n; i++) {
      const x = r.uniform(-1, 1);
      const y = r.uniform(-1, 1);
      pts.push([x, y, (x + y) / 2 + noise * r.normal()]);
    }
    return pts;
  },
  gaussian_mix(r, n, noise) {
    const centres = [
      [-0.5, -0.5, 1],
      [0.5, 0.5, 1],
      [-0.5, 0.5, -1],
      [0.5, -0.5, -1],
    ];
    const pts = [];
    for (let i = 0; i < n; i++) {
      const x = r.uniform(-1, 1);
      const y = r.uniform(-1, 1);
      let t = 0;
      for (const [cx, cy, s] of centres) t += s * Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 0.2 ** 2));
      pts.push([x, y, t + noise * r.normal()]);
    }
    return pts;
  },
};

export const REGRESSION = new Set(["plane", "gaussian_mix"]);

/** Up to `max` preview points [x, y, target] of a built-in dataset spec, or null for uploads. */
export function samplePoints(dataset, max = 400) {
  const gen = GENERATORS[dataset?.name];
  if (!gen) return null;
  const n = Math.min(max, dataset.samples ?? 400);
  return gen(rngFor(dataset.seed ?? 0), n, dataset.noise ?? 0);
}

/**
 * Draw points [x, y, target] on a 2-D canvas context inside box {x, y, w, h} for data range
 * {x: [lo, hi], y: [lo, hi]}; returns how many were inside the range and drawn.
 * Colour: a regression target over `tRange` (default: these points' own range), a class label on the
 * orange–blue scale (two classes) or by classColor (more). `hollow` draws rings with a white centre (test points) instead of filled dots (training).
 */
export function drawPoints(ctx, pts, box, range, regression, { hollow = false, tRange = null, nClasses = 2 } = {}) {
  const [x0, x1] = range.x;
  const [y0, y1] = range.y;
  let [tmin, tmax] = tRange ?? [Infinity, -Infinity];
  if (regression && !tRange) {
    for (const p of pts) {
      tmin = Math.min(tmin, p[2]);
      tmax = Math.max(tmax, p[2]);
    }
  }
  const classes = Math.max(2, nClasses ?? 2);
  let drawn = 0;
  for (const [px, py, t] of pts) {
    if (px < x0 || px > x1 || py < y0 || py > y1) continue;
    const cx = box.x + ((px - x0) / (x1 - x0)) * box.w;
    const cy = box.y + (1 - (py - y0) / (y1 - y0)) * box.h;
    const color = regression
      ? valueColor((t - tmin) / (tmax - tmin || 1), 1)
      : classes > 2
        ? classColor(t)
        : valueColor(t, 1);
    drawn += 1;
    if (hollow) {
      // A ring in the class colour around a white centre: unlike a filled dot, it stays a ring on a
      // background of its own colour.
      ctx.beginPath();
      ctx.arc(cx, cy, 3.1, 0, 2 * Math.PI);
      ctx.fillStyle = "#ffffff";
      ctx.fill();
      ctx.lineWidth = 1.8;
      ctx.strokeStyle = color;
      ctx.stroke();
      ctx.beginPath();
      ctx.arc(cx, cy, 4.1, 0, 2 * Math.PI);
      ctx.lineWidth = 0.8;
      ctx.strokeStyle = "rgba(30,30,30,0.85)";
      ctx.stroke();
      continue;
    }
    ctx.beginPath();
    ctx.arc(cx, cy, 2.6, 0, 2 * Math.PI);
    ctx.fillStyle = color;
    ctx.fill();
    ctx.lineWidth = 0.9;
    ctx.strokeStyle = "rgba(30,30,30,0.75)";
    ctx.stroke();
  }
  return drawn;
}

// Classes of a dataset with more than two: orange and blue (as the two-class scale's ends), then Tableau 10.
const CLASS_COLORS = ["#f59322", "#0877bd", "#59a14f", "#b07aa1", "#e15759", "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#5f6b7a"];

/** The colour of class k (an integer label) when there are more than two classes; `tint` mixes in white. */
export function classColor(k, tint = 0) {
  const hex = CLASS_COLORS[((Math.round(k) % CLASS_COLORS.length) + CLASS_COLORS.length) % CLASS_COLORS.length];
  const n = Number.parseInt(hex.slice(1), 16);
  const c = [(n >> 16) & 255, (n >> 8) & 255, n & 255].map((ch) => Math.round(ch + (255 - ch) * tint));
  return `rgba(${c[0]},${c[1]},${c[2]},1)`;
}

/** TF-Playground-like diverging colour for v in [0, 1]: orange (0) – white (0.5) – blue (1). */
export function valueColor(v, alpha = 1) {
  const t = Math.max(0, Math.min(1, v));
  const lo = [245, 147, 34];
  const mid = [232, 234, 235];
  const hi = [8, 119, 189];
  const [a, b, s] = t < 0.5 ? [lo, mid, t / 0.5] : [mid, hi, (t - 0.5) / 0.5];
  const c = a.map((ch, i) => Math.round(ch + (b[i] - ch) * s));
  return `rgba(${c[0]},${c[1]},${c[2]},${alpha})`;
}

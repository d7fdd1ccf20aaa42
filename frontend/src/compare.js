// Compare two or more runs: their loss and per-layer gradient-norm curves overlaid. Each run's events
// come from GET /api/runs/{id}/events (paged); each curve is reduced to a bounded History first.

import { allEvents, runsApi } from "./api.js";
import { Chart, fmt, History, layerColor, logSafe } from "./charts.js";
import { esc } from "./dom.js";

const DASHES = [undefined, [6, 3], [2, 3], [8, 3, 2, 3], [1, 2], [10, 4]];

/** Align several [xs, ys] curves on the union of their x values (nulls where a curve has no point). */
export function alignCurves(curves) {
  const xs = [...new Set(curves.flatMap(([x]) => x))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const cols = curves.map(([x, y]) => {
    const col = new Array(xs.length).fill(null);
    for (let i = 0; i < x.length; i++) col[index.get(x[i])] = y[i];
    return col;
  });
  return [xs, ...cols];
}

export class CompareView {
  constructor(root) {
    this.root = root;
    this.closed = false;
  }

  async open(ids) {
    this.ids = ids;
    this.root.innerHTML = `
      <header class="run-head"><h2>Compare ${ids.length} runs</h2><span id="cmp-msg" class="msg" role="status"></span></header>
      <div id="cmp-table"></div>
      <div class="run-grid cmp-grid">
        <section class="panel"><div class="panel-head"><h3>Loss per epoch</h3><span class="muted">train solid, test dashed · log</span></div>
          <div id="cmp-loss" data-testid="compare-loss-chart" class="chart"></div></section>
        <section class="panel"><div class="panel-head"><h3>Gradient norm ‖∂J/∂W<sup>k</sup>‖ per layer</h3>
          <label>layer <select id="cmp-layer" data-testid="compare-layer"><option value="all">all layers</option></select></label></div>
          <div id="cmp-grad" data-testid="compare-grad-chart" class="chart"></div></section>
      </div>`;
    const msg = this.root.querySelector("#cmp-msg");
    if (ids.length < 2) {
      msg.textContent = "pick at least two runs in the run list";
      return;
    }
    msg.textContent = "loading events…";
    let results;
    try {
      results = await Promise.all(
        ids.map(async (id) => {
          const [run, events] = await Promise.all([runsApi.get(id), allEvents(id)]);
          return { run, ...this.reduce(events, run) };
        }),
      );
    } catch (err) {
      msg.textContent = `could not load the runs: ${err.message}`;
      return;
    }
    if (this.closed) return;
    msg.textContent = "";
    this.results = results;
    this.renderTable(results);
    const maxL = Math.max(...results.map((r) => r.L));
    const sel = this.root.querySelector("#cmp-layer");
    for (let k = 0; k < maxL; k++) sel.insertAdjacentHTML("beforeend", `<option value="${k}">layer ${k + 1}</option>`);
    sel.addEventListener("change", () => this.drawGrad(sel.value));
    this.drawLoss();
    this.drawGrad("all");
  }

  reduce(events, run) {
    const L = run.spec?.layers?.length ?? 1;
    const loss = new History(2, 800);
    const grad = new History(L, 800);
    for (const e of events) {
      if (e.type === "epoch") loss.push(e.epoch, [logSafe(e.train_loss), logSafe(e.test_loss)]);
      else if (e.type === "step") grad.push(e.step, (e.layers ?? []).map((s) => logSafe(s.grad_W_norm)));
    }
    return { L, loss: loss.data(), grad: grad.data(), events: events.length };
  }

  label(r, i) {
    return `${i + 1}: ${r.run.spec?.name || r.run.id}`;
  }

  renderTable(results) {
    const rows = results
      .map((r, i) => {
        const m = r.run.metrics ?? {};
        return `<tr><td><span class="swatch" style="background:${layerColor(i)}"></span>${esc(this.label(r, i))}</td>
          <td><a href="#/runs/${encodeURIComponent(r.run.id)}">${esc(r.run.id)}</a></td><td>${esc(r.run.status)}</td>
          <td>${esc((r.run.spec?.layers ?? []).map((l) => `${l.units} ${l.activation}`).join(" → "))}</td>
          <td>${esc(r.run.spec?.optimizer?.name ?? "")} ${fmt(r.run.spec?.optimizer?.learning_rate)}</td>
          <td>${fmt(m.train_loss)}</td><td>${fmt(m.test_loss)}</td><td>${m.test_accuracy == null ? "–" : `${(100 * m.test_accuracy).toFixed(1)}%`}</td>
          <td>${r.events}</td></tr>`;
      })
      .join("");
    this.root.querySelector("#cmp-table").innerHTML = `<table class="cmp" data-testid="compare-table"><thead><tr>
      <th>run</th><th>id</th><th>status</th><th>layers</th><th>optimizer</th><th>train loss</th><th>test loss</th><th>test acc</th><th>events</th>
      </tr></thead><tbody>${rows}</tbody></table>`;
  }

  drawLoss() {
    const curves = [];
    const series = [];
    this.results.forEach((r, i) => {
      const color = layerColor(i);
      const [x, tr, te] = r.loss;
      curves.push([x, tr], [x, te]);
      series.push({ label: `${this.label(r, i)} train`, color, width: 2 }, { label: `${this.label(r, i)} test`, color, dash: [6, 3], width: 1.5 });
    });
    this.replace("loss", new Chart(this.root.querySelector("#cmp-loss"), { xLabel: "epoch", yLabel: "loss", log: true, series, height: 240 }), alignCurves(curves));
  }

  drawGrad(which) {
    const curves = [];
    const series = [];
    this.results.forEach((r, i) => {
      const color = layerColor(i);
      for (let k = 0; k < r.L; k++) {
        if (which !== "all" && Number(which) !== k) continue;
        curves.push([r.grad[0], r.grad[k + 1]]);
        series.push({ label: `${this.label(r, i)} L${k + 1}`, color, dash: DASHES[k % DASHES.length], width: 1.5 });
      }
    });
    const el = this.root.querySelector("#cmp-grad");
    this.replace("grad", new Chart(el, { xLabel: "step", yLabel: "‖∂J/∂W‖", log: true, series, height: 260 }), alignCurves(curves));
    const note = which === "all" ? "colour = run, dash pattern = layer (solid L1, dashed L2, dotted L3, …)" : "";
    el.dataset.note = note;
  }

  replace(key, chart, data) {
    this[key]?.destroy();
    this[key] = chart;
    chart.setData(data);
  }

  resize() {
    this.loss?.resize();
    this.grad?.resize();
  }

  close() {
    this.closed = true;
    this.loss?.destroy();
    this.grad?.destroy();
    this.root.innerHTML = "";
  }
}

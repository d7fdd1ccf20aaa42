// One run's live view: takes the run's events from RunStream into bounded histories and draws every
// panel on requestAnimationFrame (never per message; heavy panels at most a few times a second).

import { Health, alertsHtml } from "./alerts.js";
import { allEvents, ApiError, controlsFor, RunStream, runsApi, TERMINAL } from "./api.js";
import { BoundaryView } from "./boundary.js";
import { Chart, fmt, History, layerColor, logSafe } from "./charts.js";
import { REGRESSION } from "./datasets.js";
import { esc } from "./dom.js";
import { equationsHtml } from "./equations.js";
import { factorHtml } from "./factor-view.js";
import { boundaryGrid, forwardCost } from "./forward.js";
import { HistView } from "./hist-view.js";
import { NetworkView } from "./network-view.js";
import { parseNpz } from "./npz.js";

const CHART_EVERY_MS = 100; // uPlot redraws at most 10×/s; the frame loop itself runs every frame
const SLOW_EVERY_MS = 250; // HTML panels and heatmaps
const MODEL_EVERY_MS = 3000; // weight snapshots fetched this often while running and the network is in view
const DATA_POINTS = 2000; // the run's points drawn under the boundary (GET /data?max_points=)
const BOUNDARY_SIZE = 40; // the worker's boundary grid
const LIVE_BOUNDARY_MAX_COST = 4e7; // multiply-adds: compute the boundary from a snapshot up to this
const SEQ_LOG_MAX = 20_000; // seqs kept for the test hook (bounded; the stream counts gaps/duplicates anyway)

const TEMPLATE = `
<header class="run-head">
  <div class="run-title-row">
    <h2 id="run-title">run</h2>
    <span id="run-status" class="badge" data-testid="run-status">…</span>
    <span id="run-conn" class="conn" data-testid="conn-state" title="live stream connection"></span>
    <span class="counters">step <b id="step-counter" data-testid="step-counter">–</b>
      · epoch <b id="epoch-counter" data-testid="epoch-counter">–</b>
      · minibatch loss <b id="loss-now" data-testid="loss-now">–</b>
      · test acc <b id="acc-now" data-testid="acc-now">–</b></span>
  </div>
  <div class="run-controls" role="toolbar" aria-label="run controls">
    <button type="button" data-op="pause" data-testid="pause-button">Pause</button>
    <button type="button" data-op="resume" data-testid="resume-button">Resume</button>
    <button type="button" data-op="step" data-testid="step-button" title="run one minibatch of a paused run">Step 1 minibatch</button>
    <button type="button" data-op="cancel" data-testid="cancel-button">Cancel</button>
    <button type="button" data-op="delete" data-testid="delete-button" class="danger">Delete</button>
    <span class="sep"></span>
    <span class="muted">export:</span>
    <button type="button" data-export="json" data-testid="export-json">events JSON</button>
    <button type="button" data-export="csv" data-testid="export-csv">events CSV</button>
    <button type="button" data-export="npz" data-testid="export-npz">model .npz</button>
    <span id="run-msg" class="msg" role="status"></span>
  </div>
</header>
<div class="run-grid">
  <section class="panel span2">
    <div class="panel-head"><h3>Network</h3>
      <label><input type="checkbox" id="show-grads" data-testid="show-grads"> show gradients ∂J/∂W instead of weights</label>
      <label>layer <select id="layer-select" data-testid="layer-select" aria-label="selected layer"></select></label>
    </div>
    <div class="net-wrap">
      <canvas id="net-canvas" data-testid="network-view" tabindex="0" aria-label="network diagram: nodes coloured by mean |δ|, edges by weights"></canvas>
      <div id="net-tip" class="tooltip" hidden></div>
    </div>
    <div id="net-legend" class="legend"></div>
  </section>
  <section class="panel" id="boundary-panel">
    <div class="panel-head"><h3>Decision boundary</h3></div>
    <canvas id="boundary-canvas" class="square" data-testid="boundary-view" aria-label="decision boundary"></canvas>
    <div id="boundary-caption" class="legend" data-testid="boundary-caption"></div>
    <div id="boundary-points" class="legend" data-testid="boundary-points">points: loading the run's data…</div>
  </section>
  <section class="panel"><div class="panel-head"><h3>Loss</h3></div><div id="loss-chart" data-testid="loss-chart" class="chart"></div></section>
  <section class="panel"><div class="panel-head"><h3>Gradient flow ‖∂J/∂W<sup>k</sup>‖</h3><span class="muted">log</span></div><div id="grad-chart" data-testid="grad-chart" class="chart"></div></section>
  <section class="panel"><div class="panel-head"><h3>δ rms per layer</h3><span class="muted">log</span></div><div id="delta-chart" data-testid="delta-chart" class="chart"></div></section>
  <section class="panel span3"><div class="panel-head"><h3>Health</h3><span class="muted">from the latest steps, smoothed</span></div><div id="alerts" data-testid="alerts" aria-live="polite"></div></section>
  <section class="panel span2"><div class="panel-head"><h3>Factor split: why δ shrinks or grows, layer by layer</h3></div><div id="factor" data-testid="factor-view"></div></section>
  <section class="panel"><div class="panel-head"><h3>Backprop equations</h3></div><div id="equations" data-testid="equations"></div></section>
  <section class="panel"><div class="panel-head"><h3>Accuracy</h3></div><div id="acc-chart" data-testid="accuracy-chart" class="chart"></div></section>
  <section class="panel"><div class="panel-head"><h3>‖ΔW‖/‖W‖ per step</h3><span class="muted">log · band ≈ 10⁻³</span></div><div id="ratio-chart" data-testid="ratio-chart" class="chart"></div></section>
  <section class="panel"><div class="panel-head"><h3>δ histograms over time</h3></div><div id="hist" data-testid="hist-view"></div>
    <div class="legend">x: the run so far; y: each column spans ±max|δ| of its step (the label: the latest); darker = more of the batch's δ, relative to the step's fullest bin</div></section>
</div>`;

export class RunView {
  constructor(root, { onSelectLayer, onShowGrads, onDeleted, onChanged, layer = null, showGrads = false }) {
    this.root = root;
    this.onSelectLayer = onSelectLayer;
    this.onShowGrads = onShowGrads;
    this.onDeleted = onDeleted;
    this.onChanged = onChanged;
    this.selected = layer;
    this.showGrads = showGrads;
    this.run = null;
    this.stream = null;
    this.seqs = [];
    this.lastStep = null;
    this.lastEpoch = null;
    this.gradcheck = null;
    this.status = null;
    this.dirty = { charts: false, net: false, slow: false, boundary: false };
    this.lastChart = 0;
    this.lastSlow = 0;
    this.lastModel = -Infinity;
    this.modelLoading = false;
    this.modelAgain = false;
    this.model = null; // the weights shown: {version, step, epoch, final}
    this.netVisible = true;
    this.epochGrid = null; // the latest epoch event's boundary: {grid, step, epoch}
    this.snapGrid = null; // the boundary of the latest weight snapshot: {grid, step}
    this.events = 0;
    this.closed = false;
  }

  async open(runId) {
    this.runId = runId;
    this.root.innerHTML = TEMPLATE;
    const $ = (id) => this.root.querySelector(`#${id}`);
    this.$ = $;
    $("run-title").textContent = runId;
    try {
      this.run = await runsApi.get(runId);
    } catch (err) {
      this.root.innerHTML = `<div class="panel"><h2>Run ${esc(runId)}</h2><p class="error" data-testid="run-error">${
        err.status === 404 ? "No such run (it may have been deleted)." : esc(err.message)
      }</p></div>`;
      return;
    }
    if (this.closed) return;
    this.setup();
    this.stream = new RunStream(runId, {
      onEvent: (e) => this.ingest(e),
      onState: (s) => this.connState(s),
    });
    this.poll = setInterval(() => this.refresh(), 1500);
  }

  setup() {
    const { $, run } = this;
    const spec = run.spec ?? {};
    this.spec = spec;
    this.L = spec.layers?.length ?? 1;
    this.activations = (spec.layers ?? []).map((l) => l.activation);
    this.units = (spec.layers ?? []).map((l) => l.units);
    this.batch = Math.max(1, Math.min(spec.batch_size ?? 10, spec.dataset?.samples ?? 1e9));
    $("run-title").textContent = spec.name || run.id;
    $("run-title").title = `run ${run.id}`;
    this.status = run.status;
    const L = this.L;
    const layerSeries = (prefix) =>
      Array.from({ length: L }, (_, k) => ({ label: `${prefix}${k + 1} ${this.activations[k] ?? ""}`, color: layerColor(k) }));

    // Histories: bounded, downsampled (charts.js).
    this.hStepLoss = new History(1);
    this.hEpoch = new History(4);
    this.hGrad = new History(L);
    this.hDelta = new History(L);
    this.hRatio = new History(L);

    this.lossChart = new Chart($("loss-chart"), {
      xLabel: "epoch",
      yLabel: "loss",
      log: true,
      series: [
        { label: "minibatch", color: "rgba(120,120,120,0.6)", width: 1 },
        { label: "train", color: "#4e79a7", width: 2 },
        { label: "test", color: "#e15759", width: 2 },
      ],
    });
    this.accChart = new Chart($("acc-chart"), {
      xLabel: "epoch",
      yLabel: "accuracy",
      yRange: [0, 1],
      series: [
        { label: "train", color: "#4e79a7", width: 2 },
        { label: "test", color: "#e15759", width: 2 },
      ],
    });
    this.gradChart = new Chart($("grad-chart"), { xLabel: "step", yLabel: "‖∂J/∂W‖", log: true, series: layerSeries("L") });
    this.deltaChart = new Chart($("delta-chart"), { xLabel: "step", yLabel: "δ rms", log: true, series: layerSeries("L") });
    this.ratioChart = new Chart($("ratio-chart"), {
      xLabel: "step",
      yLabel: "‖ΔW‖/‖W‖",
      log: true,
      band: [3e-4, 3e-3, 1e-3],
      series: layerSeries("L"),
    });
    this.charts = [this.lossChart, this.accChart, this.gradChart, this.deltaChart, this.ratioChart];

    this.net = new NetworkView($("net-canvas"), $("net-tip"), $("net-legend"), {
      onSelectLayer: (k) => this.selectLayer(k),
    });
    this.net.setShape([2, ...this.units], this.activations);
    this.net.setMode(this.showGrads);
    this.boundary = new BoundaryView($("boundary-canvas"), $("boundary-caption"));
    this.regression = REGRESSION.has(spec.dataset?.name);
    this.classification = !this.regression;
    this.inputDim = spec.dataset?.name?.startsWith("upload:") ? null : 2;
    this.loadData();
    if (typeof IntersectionObserver === "function") {
      this.observer = new IntersectionObserver((entries) => {
        for (const e of entries) this.netVisible = e.isIntersecting;
      });
      this.observer.observe($("net-canvas"));
    }
    this.hist = new HistView($("hist"), L, this.activations);
    this.health = new Health();

    const sel = $("layer-select");
    sel.innerHTML = this.activations.map((a, k) => `<option value="${k}">layer ${k + 1} (${a})</option>`).join("");
    if (this.selected === null || this.selected >= L) this.selected = L - 1;
    sel.value = String(this.selected);
    this.net.setSelected(this.selected);
    sel.addEventListener("change", () => this.selectLayer(Number(sel.value)));
    const grads = $("show-grads");
    grads.checked = this.showGrads;
    grads.addEventListener("change", () => {
      this.showGrads = grads.checked;
      this.net.setMode(this.showGrads);
      this.dirty.net = true;
      this.onShowGrads?.(this.showGrads);
    });
    $("net-canvas").addEventListener("keydown", (e) => {
      if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
        e.preventDefault();
        this.selectLayer(Math.max(0, Math.min(L - 1, this.selected + (e.key === "ArrowRight" ? 1 : -1))));
      }
    });
    this.root.querySelectorAll("[data-op]").forEach((b) => b.addEventListener("click", () => this.control(b.dataset.op)));
    this.root.querySelectorAll("[data-export]").forEach((b) => b.addEventListener("click", () => this.exportData(b.dataset.export)));
    this.applyRun(this.run);
    this.dirty = { charts: true, net: true, slow: true, boundary: true };
  }

  selectLayer(k) {
    this.selected = k;
    this.$("layer-select").value = String(k);
    this.net.setSelected(k);
    this.dirty.net = true;
    this.dirty.slow = true;
    this.onSelectLayer?.(k);
  }

  connState(s) {
    const el = this.$("run-conn");
    if (!el) return;
    const text = { connecting: "connecting…", open: "live", reconnecting: "reconnecting…", done: "complete", not_found: "run not found" }[s] ?? s;
    el.textContent = text;
    el.dataset.state = s;
  }

  /** Steps per epoch, from the run's progress (total steps / epochs). */
  spe() {
    const p = this.run?.progress;
    if (p?.steps && p?.epochs) return p.steps / p.epochs;
    return null;
  }

  /** One event from the stream: update the histories and mark panels dirty. Cheap: no drawing here. */
  ingest(e) {
    this.events += 1;
    if (this.seqs.length < SEQ_LOG_MAX) this.seqs.push(e.seq);
    if (e.type === "step") {
      this.lastStep = e;
      const layers = e.layers ?? [];
      const spe = this.spe();
      const x = spe ? e.step / spe : e.epoch;
      this.hStepLoss.push(x, [logSafe(e.loss)]);
      this.hGrad.push(e.step, layers.map((s) => logSafe(s.grad_W_norm)));
      this.hDelta.push(e.step, layers.map((s) => logSafe(s.delta?.rms)));
      this.hRatio.push(e.step, layers.map((s) => logSafe(s.update_ratio)));
      this.hist.push(layers);
      this.health.observe(layers);
      if (this.stepping) {
        this.stepping = false;
        this.$("run-msg").textContent = `stepped: minibatch ${e.step}`;
      }
      this.net.setStats(layers);
      this.dirty.charts = this.dirty.slow = this.dirty.net = true;
    } else if (e.type === "epoch") {
      this.lastEpoch = e;
      this.hEpoch.push(e.epoch, [logSafe(e.train_loss), logSafe(e.test_loss), e.train_accuracy ?? null, e.test_accuracy ?? null]);
      if (e.boundary) {
        const spe = this.spe();
        this.epochGrid = { grid: e.boundary, epoch: e.epoch, step: spe ? e.epoch * spe : null };
        this.pickBoundary();
      }
      this.dirty.charts = this.dirty.slow = true;
    } else if (e.type === "status") {
      this.status = e.status;
      if (this.run) {
        this.run.status = e.status;
        if (e.error) this.run.error = e.error;
      }
      this.dirty.slow = true;
      // The worker stores the weights before the run turns running (the initial ones), before every
      // pause (so also after each step), every few seconds while it runs, and when it ends.
      // The run record says whether weights are stored (run.model), so no request is a 404.
      this.refresh().then(() => this.wantModel());
      this.onChanged?.();
    } else if (e.type === "gradcheck") {
      this.gradcheck = e;
      this.dirty.slow = true;
    }
  }

  async refresh() {
    try {
      const run = await runsApi.get(this.runId);
      if (this.closed) return;
      this.run = { ...run, status: this.status && TERMINAL.has(this.status) ? this.status : run.status };
      this.applyRun(this.run);
    } catch (err) {
      if (err.status === 404) this.$("run-msg").textContent = "this run was deleted";
    }
  }

  applyRun(run) {
    const $ = this.$;
    const status = this.status ?? run.status;
    const badge = $("run-status");
    badge.textContent = status + (status === "queued" && run.queue_position != null ? ` #${run.queue_position}` : "");
    badge.dataset.status = status;
    const p = run.progress ?? {};
    const stepNow = Math.max(p.step ?? 0, this.lastStep?.step ?? 0);
    $("step-counter").textContent = stepNow ? String(stepNow) : p.steps ? "0" : "–";
    $("step-counter").title = p.steps ? `of ${p.steps} steps` : "";
    $("epoch-counter").textContent = p.epoch != null ? `${p.epoch}/${p.epochs ?? "?"}` : "–";
    for (const [op, on] of Object.entries(controlsFor(status))) {
      const b = this.root.querySelector(`[data-op="${op}"]`);
      if (b) b.disabled = !on;
    }
    if (!this.model && !this.modelLoading && performance.now() - this.lastModel >= MODEL_EVERY_MS) this.wantModel();
  }

  /** Whether the server has weights for this run now (so GET /model is not a 404). */
  hasModel() {
    return this.run?.model != null;
  }

  /** Fetch the latest weights unless a fetch is under way, in which case fetch once more after it. */
  wantModel() {
    if (this.closed || !this.hasModel()) return;
    if (this.modelLoading) {
      this.modelAgain = true;
      return;
    }
    this.loadModel();
  }

  async loadModel() {
    this.modelLoading = true;
    this.lastModel = performance.now();
    try {
      const snap = await runsApi.snapshot(this.runId);
      if (this.closed || (snap.version && snap.version === this.model?.version)) return;
      const arrays = await parseNpz(snap.buffer);
      const weights = [];
      const biases = [];
      for (let k = 1; arrays[`W${k}`]; k++) {
        weights.push(arrays[`W${k}`]);
        biases.push(arrays[`b${k}`]);
      }
      if (weights.length && !this.closed) {
        this.model = { version: snap.version, step: snap.step, epoch: snap.epoch, final: snap.final };
        this.net.setWeights(weights, this.model);
        this.weights = weights;
        this.biases = biases;
        this.dirty.net = true;
        this.liveBoundary();
      }
    } catch (err) {
      // An HTTP error (404: no weights yet, or a failed run) leaves the edges as they are, quietly.
      if (!(err instanceof ApiError)) console.warn("could not read the weights", err);
    } finally {
      this.modelLoading = false;
      if (this.modelAgain && !this.closed) {
        this.modelAgain = false;
        this.wantModel();
      }
    }
  }

  /** The run's real points (GET /data) under the boundary; its input size for the network diagram. */
  async loadData() {
    const legend = this.$("boundary-points");
    let d;
    try {
      d = await runsApi.data(this.runId, DATA_POINTS);
    } catch (err) {
      if (!this.closed) legend.textContent = `points unavailable: ${err.message}`;
      return;
    }
    if (this.closed) return;
    this.inputDim = d.input_dim;
    this.regression = d.task === "regression";
    this.classification = d.task === "classification";
    if (!this.weights) {
      this.net.setShape([d.input_dim, ...this.units], this.activations);
      this.dirty.net = true;
    }
    if (d.input_dim !== 2) {
      this.$("boundary-canvas").hidden = true;
      this.$("boundary-caption").textContent = `no decision boundary to draw: the inputs are ${d.input_dim}-dimensional`;
      legend.textContent = "";
      return;
    }
    const pts = (part) => part.X.map((x, i) => [x[0], x[1], part.y[i]]);
    const train = pts(d.train);
    const test = pts(d.test);
    this.boundary.setData({ train, test, regression: this.regression, nClasses: d.n_classes });
    const total = this.spec.dataset?.name?.startsWith("upload:") ? null : this.spec.dataset?.samples;
    const sampled = train.length + test.length >= DATA_POINTS;
    legend.textContent = `points: the run's own data, ${train.length} training (filled) and ${test.length} test (rings)${
      sampled ? ` — a fair sample of ${total ? `its ${total}` : "them"}` : ""
    }`;
    this.liveBoundary();
    this.dirty.boundary = true;
  }

  /** The boundary of the latest snapshot's weights, computed here (small nets, 2-D inputs). */
  liveBoundary() {
    if (!this.weights || this.inputDim !== 2 || this.model?.step == null) return;
    if (forwardCost(this.weights) * BOUNDARY_SIZE ** 2 > LIVE_BOUNDARY_MAX_COST) return;
    const range = this.epochGrid ? { x: this.epochGrid.grid.x, y: this.epochGrid.grid.y } : this.boundary.dataRange;
    if (!range) return;
    try {
      const grid = boundaryGrid(this.weights, this.biases, this.activations, range, BOUNDARY_SIZE, this.classification);
      this.snapGrid = { grid, step: this.model.step };
    } catch (err) {
      console.warn("could not compute the boundary from the weights", err);
      return;
    }
    this.pickBoundary();
  }

  /** Show the newer of the last epoch's boundary and the snapshot's (an epoch's wins a tie). */
  pickBoundary() {
    const e = this.epochGrid;
    const s = this.snapGrid;
    if (s && (!e || e.step === null || s.step > e.step)) {
      this.boundary.setGrid(s.grid, `after step ${s.step} (weight snapshot)`);
    } else if (e) {
      this.boundary.setGrid(e.grid, `after epoch ${e.epoch}`);
    }
    this.dirty.boundary = true;
  }

  async control(op) {
    const msg = this.$("run-msg");
    msg.textContent = "";
    try {
      if (op === "delete") {
        if (!window.confirm(`Delete run ${this.runId} and its events?`)) return;
        await runsApi.remove(this.runId);
        this.onDeleted?.(this.runId);
        return;
      }
      this.stepping = op === "step";
      msg.textContent = this.stepping ? "stepping one minibatch…" : `${op}…`;
      await runsApi.control(this.runId, op);
      if (!this.stepping && op !== "step") msg.textContent = `${op} sent`;
      this.refresh();
      this.onChanged?.();
    } catch (err) {
      msg.textContent = `${op}: ${err.message}`;
    }
  }

  async exportData(kind) {
    const msg = this.$("run-msg");
    try {
      let blob;
      let name;
      if (kind === "npz") {
        blob = new Blob([await runsApi.model(this.runId)], { type: "application/octet-stream" });
        name = `${this.runId}.npz`;
      } else {
        msg.textContent = "fetching events…";
        const events = await allEvents(this.runId, { onPage: (n) => (msg.textContent = `fetching events… ${n}`) });
        if (kind === "json") {
          blob = new Blob([JSON.stringify(events)], { type: "application/json" });
          name = `${this.runId}-events.json`;
        } else {
          blob = new Blob([eventsCsv(events, this.L)], { type: "text/csv" });
          name = `${this.runId}-events.csv`;
        }
      }
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = name;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
      msg.textContent = `saved ${name}`;
    } catch (err) {
      msg.textContent = `export: ${err.message}`;
    }
  }

  /** Called every animation frame while the view is visible. */
  frame(now) {
    if (!this.charts) return;
    if (this.status === "running" && this.netVisible && !document.hidden && now - this.lastModel >= MODEL_EVERY_MS) {
      this.lastModel = now;
      this.wantModel();
    }
    if (this.dirty.net) {
      this.dirty.net = false;
      this.net.draw();
    }
    if (this.dirty.charts && now - this.lastChart >= CHART_EVERY_MS) {
      this.dirty.charts = false;
      this.lastChart = now;
      this.lossChart.setData(mergeLoss(this.hStepLoss.data(), this.hEpoch.data()));
      const ep = this.hEpoch.data();
      this.accChart.setData([ep[0], ep[3], ep[4]]);
      this.gradChart.update(this.hGrad);
      this.deltaChart.update(this.hDelta);
      this.ratioChart.update(this.hRatio);
    }
    if (this.dirty.boundary) {
      this.dirty.boundary = false;
      this.boundary.draw();
    }
    if (this.dirty.slow && now - this.lastSlow >= SLOW_EVERY_MS) {
      this.dirty.slow = false;
      this.lastSlow = now;
      this.drawSlow();
    }
    if (this.hist.dirty && now - (this.lastHist ?? 0) >= SLOW_EVERY_MS) {
      this.lastHist = now;
      this.hist.draw();
    }
  }

  drawSlow() {
    const $ = this.$;
    const s = this.lastStep;
    const layers = s?.layers ?? [];
    if (s) $("loss-now").textContent = fmt(s.loss);
    if (this.lastEpoch) $("acc-now").textContent = fmt(this.lastEpoch.test_accuracy);
    if (this.run) this.applyRun(this.run);
    setHtml($("factor"), factorHtml(layers, this.batch, this.spec?.loss));
    setHtml($("equations"), equationsHtml(this.selected, this.L, layers[this.selected], this.spec, s ? { step: s.step, epoch: s.epoch } : null));
    setHtml($("alerts"), alertsHtml(this.health.alerts({ ...this.run, status: this.status }, this.gradcheck)));
  }

  resize() {
    for (const c of this.charts ?? []) c.resize();
    if (this.net) {
      this.net.dirty = true;
      this.dirty.net = true;
      this.boundary.dirty = true;
      this.dirty.boundary = true;
      this.hist.dirty = true;
    }
  }

  close() {
    this.closed = true;
    this.stream?.stop();
    this.observer?.disconnect();
    clearInterval(this.poll);
    for (const c of this.charts ?? []) c.destroy();
    this.charts = null;
    this.root.innerHTML = "";
  }
}

function setHtml(el, html) {
  if (el.__html !== html) {
    el.__html = html;
    el.innerHTML = html;
  }
}

/** Loss chart data: minibatch loss (x = fractional epoch) merged with per-epoch train/test loss. */
function mergeLoss(step, epoch) {
  const [xs, ls] = step;
  const [xe, tr, te] = epoch;
  const X = [];
  const A = [];
  const B = [];
  const C = [];
  let i = 0;
  let j = 0;
  while (i < xs.length || j < xe.length) {
    if (j >= xe.length || (i < xs.length && xs[i] < xe[j])) {
      X.push(xs[i]);
      A.push(ls[i]);
      B.push(null);
      C.push(null);
      i++;
    } else if (i >= xs.length || xe[j] < xs[i]) {
      X.push(xe[j]);
      A.push(null);
      B.push(tr[j]);
      C.push(te[j]);
      j++;
    } else {
      X.push(xs[i]);
      A.push(ls[i]);
      B.push(tr[j]);
      C.push(te[j]);
      i++;
      j++;
    }
  }
  return [X, A, B, C];
}

/** Events as CSV: one row per event, per-layer columns L{k}_<stat>. */
export function eventsCsv(events, L) {
  const base = ["seq", "type", "time", "status", "epoch", "step", "loss", "learning_rate", "train_loss", "test_loss", "train_accuracy", "test_accuracy"];
  const per = ["delta_rms", "delta_mean_abs", "delta_max_abs", "grad_W_norm", "grad_b_norm", "W_norm", "update_ratio", "backprop_norm", "fprime_mean", "fprime_zero_fraction", "fprime_saturated_fraction"];
  const head = [...base];
  for (let k = 1; k <= L; k++) for (const p of per) head.push(`L${k}_${p}`);
  const lines = [head.join(",")];
  const cell = (v) => (v === undefined || v === null ? "" : typeof v === "string" ? `"${v.replace(/"/g, '""')}"` : String(v));
  for (const e of events) {
    const row = base.map((k) => cell(e[k]));
    for (let k = 0; k < L; k++) {
      const s = e.layers?.[k];
      const vals = s
        ? [s.delta?.rms, s.delta?.mean_abs, s.delta?.max_abs, s.grad_W_norm, s.grad_b_norm, s.W_norm, s.update_ratio, s.backprop_norm, s.fprime?.mean, s.fprime?.zero_fraction, s.fprime?.saturated_fraction]
        : per.map(() => null);
      for (const v of vals) row.push(cell(v));
    }
    lines.push(row.join(","));
  }
  return `${lines.join("\n")}\n`;
}

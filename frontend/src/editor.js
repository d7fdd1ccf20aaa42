// The spec editor: a form and a JSON view of the same spec, kept in sync; presets; a dataset picker
// with a preview scatter and a CSV upload beside it; the server's 422 errors shown next to the field
// (or the upload) they name.
//
// Every form control carries data-path="a.b.0.c" — the spec path FastAPI reports in an error's loc
// (["body", "a", "b", 0, "c"]) — so an error finds its field by that path.

import { datasetsApi } from "./api.js";
import { drawPoints, REGRESSION, samplePoints } from "./datasets.js";
import { esc, fitCanvas } from "./dom.js";
import { adam, DEFAULT_SPEC, PRESETS, sgd } from "./presets.js";

export const ACTIVATIONS = ["tanh", "sigmoid", "relu", "leaky_relu", "linear", "softmax"];
const LOSSES = ["binary_cross_entropy", "cross_entropy", "mse"];
const INITS = ["xavier", "he", "normal"];
const BUILTIN = ["xor", "circle", "gaussian", "spiral", "moons", "plane", "gaussian_mix"];

const NOT_FOR_UPLOADS = ' disabled title="does not apply to an uploaded dataset (only test fraction and data seed do)"';

const clone = (o) => JSON.parse(JSON.stringify(o));

function getPath(obj, path) {
  return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

function setPath(obj, path, value) {
  const keys = path.split(".");
  let o = obj;
  for (let i = 0; i < keys.length - 1; i++) {
    if (o[keys[i]] == null || typeof o[keys[i]] !== "object") o[keys[i]] = /^\d+$/.test(keys[i + 1]) ? [] : {};
    o = o[keys[i]];
  }
  o[keys[keys.length - 1]] = value;
}

function options(list, current) {
  const all = current != null && current !== "" && !list.includes(current) ? [...list, current] : list;
  return all
    .map((v) => `<option value="${esc(v)}"${v === current ? " selected" : ""}>${esc(v)}${list.includes(v) ? "" : " (unknown)"}</option>`)
    .join("");
}

export class SpecEditor {
  /** root: the editor's element; onTrain(spec) → promise; onChange(spec) after every edit. */
  constructor(root, { onTrain, onChange }) {
    this.root = root;
    this.onTrain = onTrain;
    this.onChange = onChange;
    this.spec = clone(DEFAULT_SPEC);
    this.datasets = BUILTIN.map((name) => ({ name, task: REGRESSION.has(name) ? "regression" : "classification" }));
    this.errors = [];
    this.upload = { task: "auto", busy: false, error: "", message: "" }; // the CSV upload's state
    root.innerHTML = `
      <div class="editor-grid">
        <form class="spec-form" id="spec-form" novalidate aria-label="network spec">
          <div class="row">
            <label for="preset">Preset</label>
            <select id="preset" data-testid="preset-select">
              <option value="">— choose a preset —</option>
              ${PRESETS.map((p) => `<option value="${p.id}">${esc(p.label)}</option>`).join("")}
            </select>
          </div>
          <div id="form-fields"></div>
        </form>
        <div class="editor-side">
          <fieldset>
            <legend>Dataset preview</legend>
            <canvas id="preview" class="preview" data-testid="dataset-preview" aria-label="dataset preview scatter"></canvas>
            <p class="legend" id="preview-caption">a client-side sample of the dataset (preview, not the server's exact points)</p>
          </fieldset>
          <fieldset class="json-box">
            <legend><label for="spec-json">Spec as JSON</label></legend>
            <textarea id="spec-json" data-testid="spec-json" spellcheck="false" rows="22" aria-describedby="json-error"></textarea>
            <div id="json-error" class="field-error" data-testid="json-error" role="alert"></div>
          </fieldset>
          <div class="train-row">
            <button type="button" id="train" class="primary" data-testid="train-button">Train</button>
            <span id="train-msg" class="msg" role="status" data-testid="train-msg"></span>
          </div>
          <ul id="error-list" class="error-list" data-testid="error-list" aria-live="polite"></ul>
        </div>
      </div>`;
    this.fields = root.querySelector("#form-fields");
    this.json = root.querySelector("#spec-json");
    this.preview = root.querySelector("#preview");
    root.querySelector("#preset").addEventListener("change", (e) => {
      const p = PRESETS.find((x) => x.id === e.target.value);
      if (p) this.setSpec(clone(p.spec));
    });
    // The CSV upload: one element for the editor's life, put back beside the picker after every render
    // (so a re-render never replaces the file input while a file is being chosen).
    this.uploadEl = document.createElement("div");
    this.uploadEl.className = "field upload";
    this.uploadEl.innerHTML = `
      <span class="upload-title">or your own data</span>
      <span class="upload-row">
        <input id="csv-file" type="file" accept=".csv,text/csv,text/plain" data-testid="csv-upload" aria-describedby="csv-error csv-msg">
        <label for="csv-file" class="file-button">Upload CSV…</label>
        <label for="csv-task" class="sr">task of the uploaded CSV</label>
        <select id="csv-task" data-testid="csv-task" title="auto: classification when the last column holds labels 0..K-1">
          <option value="auto">task: auto</option><option value="classification">classification</option><option value="regression">regression</option>
        </select>
      </span>
      <span class="hint">features first, the target in the last column</span>
      <span class="field-error" id="csv-error" data-testid="csv-error" role="alert"></span>
      <span class="hint" id="csv-msg" data-testid="csv-msg" role="status"></span>`;
    this.uploadEl.querySelector("#csv-file").addEventListener("change", (e) => {
      e.stopPropagation();
      const input = e.target;
      this.uploadCsv(input.files?.[0]).finally(() => {
        input.value = ""; // choosing the same file again uploads it again
      });
    });
    this.uploadEl.querySelector("#csv-task").addEventListener("change", (e) => {
      e.stopPropagation();
      this.upload.task = e.target.value;
    });
    this.fields.addEventListener("input", (e) => this.fromField(e.target));
    this.fields.addEventListener("change", (e) => this.fromField(e.target, true));
    this.fields.addEventListener("click", (e) => this.layerButton(e));
    this.json.addEventListener("input", () => this.fromJson());
    root.querySelector("#train").addEventListener("click", () => this.train());
    this.render();
  }

  /** Datasets from GET /api/datasets: {"builtin": [{name, task, ...}], "uploaded": [{id, name, spec_name, rows, task}]}. */
  setDatasets(payload) {
    const builtin = Array.isArray(payload) ? payload : (payload?.builtin ?? []);
    const uploaded = payload?.uploaded ?? [];
    const found = [
      ...builtin.filter((d) => d?.name).map((d) => ({ name: d.name, task: d.task, info: d })),
      ...uploaded
        .filter((d) => d?.id)
        .map((d) => ({
          name: d.spec_name ?? `upload:${d.id}`,
          label: `${d.name ?? d.id} (uploaded${d.rows ? `, ${d.rows} rows` : ""})`,
          task: d.task,
          info: d,
        })),
    ];
    if (found.length) {
      this.datasets = found;
      this.render({ keepJson: true });
    }
  }

  setSpec(spec, { notify = true, keepJson = false } = {}) {
    this.spec = spec;
    this.clearErrors();
    this.render({ keepJson });
    if (notify) this.onChange?.(this.spec);
  }

  render({ keepJson = false } = {}) {
    // Re-rendering replaces the form's elements: keep keyboard focus on the same field.
    const focused = this.fields.contains(document.activeElement) ? document.activeElement.id : null;
    this.renderFields();
    if (focused) document.getElementById(focused)?.focus();
    if (!keepJson) this.json.value = JSON.stringify(this.spec, null, 2);
    this.showErrors();
    this.drawPreview();
  }

  renderFields() {
    const s = this.spec;
    const opt = s.optimizer ?? {};
    const ds = s.dataset ?? {};
    const dsNames = this.datasets.map((d) => d.name);
    const num = (path, label, attrs = "") => {
      const v = getPath(s, path);
      return `<div class="field"><label for="f-${path}">${label}</label><input id="f-${path}" type="number" data-path="${path}" value="${
        v === null || v === undefined ? "" : esc(v)
      }" ${attrs}><span class="field-error" data-error-for="${path}"></span></div>`;
    };
    const sel = (path, label, list) => `<div class="field"><label for="f-${path}">${label}</label><select id="f-${path}" data-path="${path}">${options(
      list,
      getPath(s, path),
    )}</select><span class="field-error" data-error-for="${path}"></span></div>`;
    const check = (path, label) => `<div class="field check"><input id="f-${path}" type="checkbox" data-path="${path}" ${
      getPath(s, path) ? "checked" : ""
    }><label for="f-${path}">${label}</label><span class="field-error" data-error-for="${path}"></span></div>`;
    const layers = (s.layers ?? [])
      .map(
        (l, k) => `<li class="layer" data-layer="${k}">
          <span class="layer-name">L${k + 1}${k === s.layers.length - 1 ? " (output)" : ""}</span>
          <label for="f-layers.${k}.units" class="sr">layer ${k + 1} units</label>
          <input id="f-layers.${k}.units" type="number" min="1" data-path="layers.${k}.units" data-testid="layer-units-${k}" value="${esc(l?.units ?? "")}" aria-label="layer ${k + 1} units">
          <label for="f-layers.${k}.activation" class="sr">layer ${k + 1} activation</label>
          <select id="f-layers.${k}.activation" data-path="layers.${k}.activation" data-testid="layer-activation-${k}" aria-label="layer ${k + 1} activation">${options(ACTIVATIONS, l?.activation)}</select>
          <button type="button" class="small" data-remove="${k}" aria-label="remove layer ${k + 1}" ${s.layers.length <= 1 ? "disabled" : ""}>✕</button>
          <span class="field-error" data-error-for="layers.${k}"></span>
          <span class="field-error" data-error-for="layers.${k}.units"></span>
          <span class="field-error" data-error-for="layers.${k}.activation"></span>
        </li>`,
      )
      .join("");
    const task = describeDataset(this.datasets.find((d) => d.name === ds.name));
    const upload = String(ds.name ?? "").startsWith("upload:");
    this.fields.innerHTML = `
      <div class="field wide"><label for="f-name">Name</label><input id="f-name" type="text" data-path="name" value="${esc(s.name ?? "")}"><span class="field-error" data-error-for="name"></span></div>
      <fieldset><legend>Dataset</legend>
        <div class="field"><label for="f-dataset.name">dataset</label><select id="f-dataset.name" data-path="dataset.name" data-testid="dataset-select">${this.datasets
          .map((d) => `<option value="${esc(d.name)}"${d.name === ds.name ? " selected" : ""}>${esc(d.label ?? d.name)}</option>`)
          .join("")}${ds.name && !dsNames.includes(ds.name) ? `<option selected value="${esc(ds.name)}">${esc(ds.name)} (unknown)</option>` : ""}</select>
          <span class="hint" data-testid="dataset-task">${esc(task)}</span><span class="field-error" data-error-for="dataset.name"></span></div>
        <div id="upload-slot"></div>
        ${num("dataset.samples", "samples", `min="10" step="10"${upload ? NOT_FOR_UPLOADS : ""}`)}
        ${num("dataset.noise", "noise", `min="0" step="0.05"${upload ? NOT_FOR_UPLOADS : ""}`)}
        ${num("dataset.test_fraction", "test fraction", 'min="0" max="0.9" step="0.05"')}
        ${num("dataset.seed", "data seed", 'min="0"')}
        <span class="field-error" data-error-for="dataset"></span>
      </fieldset>
      <fieldset><legend>Layers <small>(input size comes from the dataset)</small></legend>
        <ol class="layers" data-testid="layer-list">${layers}</ol>
        <button type="button" class="small" data-add-layer data-testid="add-layer">+ add hidden layer</button>
        <span class="field-error" data-error-for="layers"></span>
      </fieldset>
      <fieldset><legend>Loss and initialisation</legend>
        ${sel("loss", "loss", LOSSES)}
        ${sel("init", "init", INITS)}
        ${sel("dtype", "dtype", ["float64", "float32"])}
      </fieldset>
      <fieldset><legend>Optimizer</legend>
        ${sel("optimizer.name", "optimizer", ["sgd", "adam"])}
        ${num("optimizer.learning_rate", "learning rate", 'min="0" step="0.001"')}
        ${
          opt.name === "adam"
            ? `${num("optimizer.beta1", "β₁", 'step="0.01"')}${num("optimizer.beta2", "β₂", 'step="0.001"')}${num("optimizer.eps", "ε", 'step="any"')}`
            : `${num("optimizer.momentum", "momentum", 'min="0" max="0.99" step="0.05"')}${check("optimizer.nesterov", "Nesterov")}`
        }
        <span class="field-error" data-error-for="optimizer"></span>
      </fieldset>
      <fieldset><legend>Training</legend>
        ${num("epochs", "epochs", 'min="1"')}
        ${num("batch_size", "batch size", 'min="1"')}
        ${num("seed", "seed", 'min="0"')}
        ${num("regularization.l1", "L1", 'min="0" step="0.0001"')}
        ${num("regularization.l2", "L2", 'min="0" step="0.0001"')}
        ${num("telemetry.every_steps", "stream every N steps", 'min="1" placeholder="auto"')}
        ${num("telemetry.histogram_bins", "δ histogram bins", 'min="2" max="200"')}
        ${check("gradcheck", "gradient check before training")}
      </fieldset>`;
    this.fields.querySelector("#upload-slot").replaceWith(this.uploadEl);
    this.showUpload();
  }

  showUpload() {
    const up = this.upload;
    this.uploadEl.querySelector("#csv-file").disabled = up.busy;
    this.uploadEl.querySelector("#csv-task").value = up.task;
    this.uploadEl.querySelector("#csv-error").textContent = up.error;
    this.uploadEl.querySelector("#csv-msg").textContent = up.message;
  }

  /** A form control changed: write its value into the spec at its data-path. */
  fromField(el, committed = false) {
    const path = el.dataset?.path;
    if (!path) return;
    let value;
    if (el.type === "checkbox") value = el.checked;
    else if (el.type === "number") {
      if (el.value.trim() === "") value = null;
      else {
        value = Number(el.value);
        if (!Number.isFinite(value)) return;
      }
    } else value = el.value;
    if (path === "optimizer.name") {
      const lr = this.spec.optimizer?.learning_rate ?? 0.01;
      this.spec.optimizer = value === "adam" ? adam(lr) : sgd(lr);
      this.changed(true);
      return;
    }
    setPath(this.spec, path, value);
    if (path === "dataset.name") this.fitDataset(value);
    this.clearError(path);
    // Selects and checkboxes re-render (dependent fields); typed numbers keep focus and only update JSON.
    this.changed(committed && el.tagName === "SELECT");
  }

  /**
   * Keep the output layer and loss consistent with a newly picked dataset (contract §3): regression →
   * mse with one linear unit per target; more than two classes → softmax + cross_entropy with one unit
   * per class; two classes → one sigmoid unit (two softmax units if the spec already uses cross_entropy).
   */
  fitDataset(name) {
    const d = this.datasets.find((x) => x.name === name);
    const s = this.spec;
    const out = s.layers?.[s.layers.length - 1];
    if (!d || !out) return;
    const info = d.info ?? {};
    if (d.task === "regression") {
      if (s.loss !== "mse" || out.activation === "sigmoid" || out.activation === "softmax") out.activation = "linear";
      s.loss = "mse";
      out.units = info.target_dim ?? 1;
    } else if (d.task === "classification") {
      const classes = info.n_classes ?? 2;
      if (classes > 2) {
        s.loss = "cross_entropy";
        out.activation = "softmax";
        out.units = classes;
      } else if (s.loss === "cross_entropy") {
        out.activation = "softmax";
        out.units = 2;
      } else {
        if (s.loss === "mse" && out.activation === "linear") s.loss = "binary_cross_entropy";
        if (out.activation === "linear" || out.activation === "softmax") out.activation = "sigmoid";
        out.units = 1;
      }
    }
  }

  /** POST the chosen CSV to /api/datasets; on success pick it and fit the output layer, else show why. */
  async uploadCsv(file) {
    if (!file || this.upload.busy) return;
    this.upload = { ...this.upload, busy: true, error: "", message: `uploading ${file.name}…` };
    this.showUpload();
    try {
      const d = await datasetsApi.upload(file, { name: file.name.replace(/\.csv$/i, ""), task: this.upload.task });
      const entry = { name: d.spec_name, label: `${d.name} (uploaded, ${d.rows} rows)`, task: d.task, info: d };
      const rest = this.datasets.filter((x) => x.name !== entry.name);
      const builtin = rest.filter((x) => !x.info?.id);
      this.datasets = [...builtin, entry, ...rest.filter((x) => x.info?.id)];
      setPath(this.spec, "dataset.name", d.spec_name);
      this.fitDataset(d.spec_name);
      this.upload = { ...this.upload, busy: false, message: `uploaded ${d.name}: ${describeDataset(entry)}` };
      this.errors = this.errors.filter((e) => !pathOf(e).startsWith("dataset") && !pathOf(e).startsWith("layers"));
      this.changed(true);
    } catch (err) {
      // 422: the CSV rules' message, which names the line and column; 413: over the size limit.
      const detail = Array.isArray(err.detail) ? err.detail.map((e) => e.msg ?? String(e)).join("; ") : err.detail;
      this.upload = { ...this.upload, busy: false, message: "", error: `${file.name}: ${typeof detail === "string" ? detail : err.message}` };
      this.showUpload();
    }
  }

  layerButton(e) {
    const t = e.target;
    if (!(t instanceof HTMLElement)) return;
    const layers = this.spec.layers ?? (this.spec.layers = []);
    if (t.dataset.remove !== undefined) {
      layers.splice(Number(t.dataset.remove), 1);
      this.changed(true);
    } else if (t.dataset.addLayer !== undefined) {
      const prev = layers[Math.max(0, layers.length - 2)] ?? { units: 8, activation: "tanh" };
      layers.splice(Math.max(0, layers.length - 1), 0, { units: layers.length > 1 ? prev.units : 8, activation: layers.length > 1 ? prev.activation : "tanh" });
      this.changed(true);
    }
  }

  changed(rerender) {
    if (rerender) this.render(); // redraws the preview too
    else {
      this.json.value = JSON.stringify(this.spec, null, 2);
      this.drawPreview();
    }
    this.onChange?.(this.spec);
  }

  fromJson() {
    const err = this.root.querySelector("#json-error");
    let spec;
    try {
      spec = JSON.parse(this.json.value);
    } catch (e) {
      err.textContent = `not valid JSON: ${e.message}`;
      this.jsonBroken = true;
      return;
    }
    if (!spec || typeof spec !== "object" || Array.isArray(spec)) {
      err.textContent = "the spec must be a JSON object";
      this.jsonBroken = true;
      return;
    }
    err.textContent = "";
    this.jsonBroken = false;
    this.spec = spec;
    this.errors = [];
    this.render({ keepJson: true });
    this.onChange?.(this.spec);
  }

  drawPreview() {
    const size = this.preview.clientWidth || 200;
    const ctx = fitCanvas(this.preview, size, size);
    ctx.fillStyle = "#f3f4f6";
    ctx.fillRect(0, 0, size, size);
    const ds = this.spec.dataset ?? {};
    const pts = samplePoints(ds, 300);
    const cap = this.root.querySelector("#preview-caption");
    if (!pts) {
      const known = this.datasets.find((d) => d.name === ds.name);
      cap.textContent = known?.info?.id
        ? `uploaded: ${describeDataset(known)} (no preview here; a run's view draws its points)`
        : ds.name
          ? `no preview for ${ds.name}`
          : "choose a dataset";
      ctx.fillStyle = "#8a94a3";
      ctx.font = "12px system-ui, sans-serif";
      ctx.textAlign = "center";
      ctx.fillText(known?.info?.id ? "uploaded CSV" : "no preview", size / 2, size / 2);
      return;
    }
    let m = 0;
    for (const p of pts) m = Math.max(m, Math.abs(p[0]), Math.abs(p[1]));
    m = Math.ceil(m * 10) / 10 || 1;
    drawPoints(ctx, pts, { x: 4, y: 4, w: size - 8, h: size - 8 }, { x: [-m, m], y: [-m, m] }, REGRESSION.has(ds.name));
    cap.textContent = `${ds.name}: ${pts.length} points, a client-side sample (preview, not the server's exact points)`;
  }

  async train() {
    const msg = this.root.querySelector("#train-msg");
    if (this.jsonBroken) {
      msg.textContent = "fix the JSON first";
      return;
    }
    this.clearErrors();
    msg.textContent = "submitting…";
    const btn = this.root.querySelector("#train");
    btn.disabled = true;
    try {
      await this.onTrain(this.spec);
      msg.textContent = "";
    } catch (err) {
      if (err.status === 422 && Array.isArray(err.detail)) {
        this.errors = err.detail;
        this.showErrors();
        msg.textContent = `the server refused the spec: ${err.detail.length} problem${err.detail.length > 1 ? "s" : ""}`;
      } else {
        msg.textContent = `could not start the run: ${err.message}`;
      }
    } finally {
      btn.disabled = false;
    }
  }

  clearErrors() {
    this.errors = [];
    this.showErrors();
  }

  clearError(path) {
    const before = this.errors.length;
    this.errors = this.errors.filter((e) => pathOf(e) !== path);
    if (this.errors.length !== before) this.showErrors();
  }

  /** Put each 422 error next to its field (nearest enclosing path with a slot), and list them all. */
  showErrors() {
    for (const el of this.root.querySelectorAll("[data-error-for]")) el.textContent = "";
    for (const el of this.root.querySelectorAll(".has-error")) el.classList.remove("has-error");
    const list = this.root.querySelector("#error-list");
    list.innerHTML = "";
    for (const e of this.errors) {
      const path = pathOf(e);
      const slot = this.slotFor(path);
      const text = e.msg ?? String(e);
      if (slot) {
        slot.textContent = slot.textContent ? `${slot.textContent}; ${text}` : text;
        const field = this.fields.querySelector(`[data-path="${cssEscape(slot.dataset.errorFor)}"]`);
        field?.classList.add("has-error");
        field?.setAttribute("aria-invalid", "true");
      }
      const li = document.createElement("li");
      li.innerHTML = `<code>${esc(path || "(spec)")}</code>: ${esc(text)}`;
      list.append(li);
    }
  }

  slotFor(path) {
    let keys = path ? path.split(".") : [];
    // A discriminated union puts the tag in the loc: optimizer.adam.learning_rate → optimizer.learning_rate.
    if (keys[0] === "optimizer" && (keys[1] === "sgd" || keys[1] === "adam")) keys = [keys[0], ...keys.slice(2)];
    while (keys.length) {
      const slot = this.root.querySelector(`[data-error-for="${cssEscape(keys.join("."))}"]`);
      if (slot) return slot;
      keys = keys.slice(0, -1);
    }
    return null;
  }
}

/** "classification, 3 classes · 120 rows, 2 inputs" for a dataset entry of the picker. */
function describeDataset(d) {
  if (!d) return "";
  const info = d.info ?? {};
  const parts = [d.task ?? ""];
  if (d.task === "classification" && info.n_classes) parts[0] += `, ${info.n_classes} classes`;
  if (info.id) parts.push(`${info.rows} rows, ${info.input_dim} input${info.input_dim === 1 ? "" : "s"}`);
  return parts.filter(Boolean).join(" · ");
}

/** An error's spec path: its loc without the leading "body". */
export function pathOf(e) {
  const loc = Array.isArray(e?.loc) ? e.loc : [];
  return (loc[0] === "body" ? loc.slice(1) : loc).join(".");
}

function cssEscape(s) {
  return window.CSS?.escape ? CSS.escape(s) : s.replace(/["\\]/g, "\\$&");
}

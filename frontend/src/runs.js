// The run list: status, progress, queue position, live metrics and controls, polled from GET /api/runs.
// Items are updated in place (keyed by run id) so focus and hover survive a refresh.

import { controlsFor, runsApi } from "./api.js";
import { fmt } from "./charts.js";
import { esc } from "./dom.js";


export class RunList {
  constructor(root, { onOpen, onCompare, onDeleted }) {
    this.root = root;
    this.onOpen = onOpen;
    this.onCompare = onCompare;
    this.onDeleted = onDeleted;
    this.items = new Map();
    this.selected = new Set();
    this.current = null;
    this.list = root.querySelector("#runs");
    this.empty = root.querySelector("#runs-empty");
    this.compareBtn = root.querySelector("#compare-button");
    this.msg = root.querySelector("#runs-msg");
    this.compareBtn.addEventListener("click", () => this.onCompare([...this.selected]));
    this.list.addEventListener("click", (e) => this.click(e));
    this.list.addEventListener("change", (e) => {
      const box = e.target.closest?.("input[data-compare]");
      if (!box) return;
      if (box.checked) this.selected.add(box.dataset.compare);
      else this.selected.delete(box.dataset.compare);
      this.updateCompare();
    });
    this.timer = null;
  }

  start(every = 1500) {
    this.refresh();
    this.timer = setInterval(() => this.refresh(), every);
  }

  setCurrent(id) {
    this.current = id;
    for (const [rid, el] of this.items) el.classList.toggle("current", rid === id);
  }

  async refresh() {
    if (this.busy) return;
    this.busy = true;
    try {
      const page = await runsApi.list(100);
      this.render(page.runs ?? page ?? []);
      this.msg.textContent = "";
    } catch (err) {
      this.msg.textContent = `runs: ${err.message}`;
    } finally {
      this.busy = false;
    }
  }

  render(runs) {
    const seen = new Set();
    let prev = null;
    for (const run of runs) {
      seen.add(run.id);
      let el = this.items.get(run.id);
      if (!el) {
        el = this.create(run);
        this.items.set(run.id, el);
      }
      this.update(el, run);
      // Keep the server's order (newest first) without moving nodes that are already in place.
      const want = prev ? prev.nextSibling : this.list.firstChild;
      if (want !== el) this.list.insertBefore(el, want);
      prev = el;
    }
    for (const [id, el] of this.items) {
      if (!seen.has(id)) {
        el.remove();
        this.items.delete(id);
        this.selected.delete(id);
      }
    }
    this.empty.hidden = runs.length > 0;
    this.updateCompare();
  }

  create(run) {
    const li = document.createElement("li");
    li.className = "run-item";
    li.dataset.runId = run.id;
    li.innerHTML = `
      <div class="run-line">
        <input type="checkbox" data-compare="${esc(run.id)}" aria-label="select run ${esc(run.id)} for comparison">
        <a href="#/runs/${encodeURIComponent(run.id)}" class="run-name" data-open></a>
        <span class="badge"></span>
      </div>
      <div class="run-progress"><progress max="1" value="0" aria-label="progress"></progress><span class="pct"></span></div>
      <div class="run-metrics"></div>
      <div class="run-buttons">
        <button type="button" class="small" data-op="pause">pause</button>
        <button type="button" class="small" data-op="resume">resume</button>
        <button type="button" class="small" data-op="step">step</button>
        <button type="button" class="small" data-op="cancel">cancel</button>
        <button type="button" class="small danger" data-op="delete" aria-label="delete run">delete</button>
      </div>`;
    li.classList.toggle("current", run.id === this.current);
    return li;
  }

  update(li, run) {
    const key = JSON.stringify([run.status, run.progress, run.metrics, run.queue_position, run.spec?.name, run.error]);
    if (li.__key === key) return;
    li.__key = key;
    const name = run.spec?.name || run.id;
    const a = li.querySelector(".run-name");
    a.textContent = name;
    a.title = `run ${run.id}`;
    const badge = li.querySelector(".badge");
    badge.textContent = run.status === "queued" && run.queue_position != null ? `queued #${run.queue_position}` : run.status;
    badge.dataset.status = run.status;
    if (run.error) badge.title = `${run.error.type}: ${run.error.message}`;
    const p = run.progress ?? {};
    const frac = p.steps ? Math.min(1, (p.step ?? 0) / p.steps) : 0;
    li.querySelector("progress").value = frac;
    li.querySelector(".pct").textContent = p.steps ? `epoch ${p.epoch ?? 0}/${p.epochs} · ${(100 * frac).toFixed(0)}%` : "";
    const m = run.metrics ?? {};
    const parts = [];
    if (m.train_loss != null) parts.push(`loss ${fmt(m.train_loss)}`);
    if (m.test_loss != null) parts.push(`test ${fmt(m.test_loss)}`);
    if (m.test_accuracy != null) parts.push(`acc ${(100 * m.test_accuracy).toFixed(1)}%`);
    if (run.error) parts.push(`<span class="err">${esc(run.error.type)}</span>`);
    li.querySelector(".run-metrics").innerHTML = parts.join(" · ");
    for (const [op, on] of Object.entries({ ...controlsFor(run.status), delete: true })) {
      li.querySelector(`[data-op="${op}"]`).hidden = !on;
    }
  }

  async click(e) {
    const btn = e.target.closest?.("button[data-op]");
    const li = e.target.closest?.(".run-item");
    if (!li) return;
    const id = li.dataset.runId;
    if (!btn) {
      if (e.target.closest("[data-open]")) {
        e.preventDefault();
        this.onOpen(id);
      }
      return;
    }
    const op = btn.dataset.op;
    try {
      if (op === "delete") {
        if (!window.confirm(`Delete run ${id} and its events?`)) return;
        await runsApi.remove(id);
        this.onDeleted?.(id);
      } else {
        await runsApi.control(id, op);
      }
      this.refresh();
    } catch (err) {
      this.msg.textContent = `${op}: ${err.message}`;
    }
  }

  updateCompare() {
    for (const id of this.selected) if (!this.items.has(id)) this.selected.delete(id);
    this.compareBtn.disabled = this.selected.size < 2;
    this.compareBtn.textContent = `Compare selected (${this.selected.size})`;
  }
}

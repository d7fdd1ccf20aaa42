// Wiring: the views, the URL hash, the token prompt and the one requestAnimationFrame loop.

import { api, datasetsApi, runsApi, setToken, setTokenPrompt } from "./api.js";
import { CompareView } from "./compare.js";
import { SpecEditor } from "./editor.js";
import { RunView } from "./run-view.js";
import { RunList } from "./runs.js";
import { loadFromHash, onStateChange, setState, state } from "./state.js";

const $ = (id) => document.getElementById(id);

// --- the token prompt (a configured server answers 401 without "Authorization: Bearer <token>") --------

function askToken() {
  const dialog = $("token-dialog");
  const input = $("token-input");
  input.value = "";
  return new Promise((resolve) => {
    const done = (value) => {
      dialog.removeEventListener("close", onClose);
      resolve(value);
    };
    const onClose = () => done(dialog.returnValue === "ok" ? input.value.trim() : null);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    input.focus();
  });
}
setTokenPrompt(askToken);
$("token-cancel").addEventListener("click", () => $("token-dialog").close("cancel"));
$("token-button").addEventListener("click", async () => {
  const token = await askToken();
  if (token !== null) {
    setToken(token);
    runList.refresh();
  }
});

// --- views ----------------------------------------------------------------------------------------

const editor = new SpecEditor($("editor-view-body"), {
  onTrain: async (spec) => {
    const run = await runsApi.create(spec);
    runList.refresh();
    setState({ view: "run", runId: run.id, layer: null }, { push: true });
    route();
  },
  onChange: (spec) => {
    if (state.view === "editor") setState({ spec });
    else state.spec = spec;
  },
});

const runList = new RunList($("run-list-panel"), {
  onOpen: (id) => {
    setState({ view: "run", runId: id, layer: null }, { push: true });
    route();
  },
  onCompare: (ids) => {
    setState({ view: "compare", compareIds: ids }, { push: true });
    route();
  },
  onDeleted: (id) => {
    if (state.view === "run" && state.runId === id) {
      setState({ view: "editor", runId: null, spec: editor.spec }, { push: true });
      route();
    }
  },
});

let runView = null;
let compareView = null;
let compareKey = "";

function show(view) {
  $("editor-view").hidden = view !== "editor";
  $("run-view").hidden = view !== "run";
  $("compare-view").hidden = view !== "compare";
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === view);
}

/** Make the page show what `state` says (idempotent: an open run view is kept). */
function route() {
  show(state.view);
  if (state.view !== "run" && runView) {
    runView.close();
    runView = null;
  }
  if (state.view !== "compare" && compareView) {
    compareView.close();
    compareView = null;
    compareKey = "";
  }
  if (state.view === "editor") {
    if (state.spec && JSON.stringify(state.spec) !== JSON.stringify(editor.spec)) editor.setSpec(state.spec, { notify: false });
    setState({ spec: editor.spec });
    document.title = "deltaboard · new run";
  } else if (state.view === "run") {
    if (!runView || runView.runId !== state.runId) {
      runView?.close();
      runView = new RunView($("run-view"), {
        layer: state.layer,
        showGrads: state.showGrads,
        onSelectLayer: (k) => setState({ layer: k }),
        onShowGrads: (on) => setState({ showGrads: on }),
        onDeleted: (id) => runList.onDeleted(id),
        onChanged: () => runList.refresh(),
      });
      runView.open(state.runId);
    }
    runList.setCurrent(state.runId);
    document.title = `deltaboard · run ${state.runId}`;
  } else if (state.view === "compare") {
    const key = state.compareIds.join(",");
    if (!compareView || key !== compareKey) {
      compareView?.close();
      compareView = new CompareView($("compare-view"));
      compareKey = key;
      compareView.open(state.compareIds);
    }
    document.title = "deltaboard · compare";
  }
  if (state.view !== "run") runList.setCurrent(null);
}

onStateChange(route);

// --- the frame loop: every view draws here, never per message -----------------------------------------

const frames = { count: 0, last: 0 };
function frame(now) {
  frames.count += 1;
  frames.last = now;
  if (runView && state.view === "run") {
    try {
      runView.frame(now);
    } catch (err) {
      console.error("run view frame failed", err);
    }
  }
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    runView?.resize();
    compareView?.resize();
    editor.drawPreview();
  }, 100);
});

// --- server info --------------------------------------------------------------------------------------

async function health() {
  const el = $("server-state");
  try {
    const h = await api("/health");
    el.textContent = `server ${h.status} · ${h.workers ?? "?"} worker${h.workers === 1 ? "" : "s"}`;
    el.dataset.state = "ok";
  } catch (err) {
    el.textContent = `server: ${err.status === 503 ? "redis unreachable" : "unreachable"}`;
    el.dataset.state = "bad";
  }
}

async function loadDatasets() {
  try {
    editor.setDatasets(await datasetsApi.list());
  } catch {
    /* the built-in list stays */
  }
}

// --- hooks for tests and benchmarks ------------------------------------------------------------------

window.__deltaboard = {
  state,
  frames,
  seqs: () => (runView ? runView.seqs.slice() : []),
  lastStep: () => runView?.lastStep ?? null,
  /** Which weights the network view shows: {version, step, epoch, final} of the snapshot, or null. */
  model: () => (runView?.model ? { ...runView.model } : null),
  /** Points the boundary view drew on its last draw: {train, test} (compare with GET /data). */
  boundaryPoints: () => (runView?.boundary?.drawn ? { ...runView.boundary.drawn } : null),
  /** Where the boundary's heatmap comes from, e.g. "after step 120 (weight snapshot)". */
  boundaryLabel: () => runView?.boundary?.label ?? null,
  /** The weights the network view drew, as nested arrays [k][i][j] (from the parsed .npz). */
  weights: () =>
    runView?.weights?.map((W) => Array.from({ length: W.shape[0] }, (_, i) => Array.from({ length: W.shape[1] }, (_, j) => W.get(i, j)))) ?? null,
  streamStats: () =>
    runView?.stream
      ? {
          lastSeq: runView.stream.lastSeq,
          connects: runView.stream.connects,
          drops: runView.stream.drops,
          gaps: runView.stream.gaps,
          duplicates: runView.stream.duplicates,
          done: runView.stream.done,
          events: runView.events,
        }
      : null,
  dropSocket: () => {
    if (!runView?.stream?.ws) return false;
    runView.stream.drop(4000);
    return true;
  },
  editor,
  runList,
};

loadFromHash(); // routes through onStateChange
runList.start(1500);
loadDatasets();
health();
setInterval(health, 15_000);

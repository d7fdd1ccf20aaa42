// One state object for the whole page, serialised to the URL hash so a link reproduces the view.
//
//   #/                          the spec editor (also #/new)
//   #/runs/<id>                 a run's live view (contract §7)
//   #/compare/<id>,<id>,...     overlaid curves of two or more runs
// and a query after the path:  ?layer=<k>&grads=1&spec=<base64url JSON of the editor's spec>
// The spec rides along on the editor view; a run's view needs only its id (the run holds its spec).

export const state = {
  view: "editor", // "editor" | "run" | "compare"
  runId: null,
  compareIds: [],
  layer: null, // selected layer index (0-based) in the run view; null = the output layer
  showGrads: false, // network view: dJ/dW instead of W
  spec: null, // the editor's spec (object)
};

const listeners = new Set();

/** Call fn(state) whenever the hash changes the state (back/forward, a pasted link). */
export function onStateChange(fn) {
  listeners.add(fn);
}

function b64urlEncode(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function b64urlDecode(text) {
  const bin = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

/** The hash for a state (pure; used for links too). */
export function toHash(s = state) {
  const q = new URLSearchParams();
  let path = "/";
  if (s.view === "run" && s.runId) path = `/runs/${encodeURIComponent(s.runId)}`;
  else if (s.view === "compare") path = `/compare/${s.compareIds.map(encodeURIComponent).join(",")}`;
  if (s.view === "run") {
    if (s.layer !== null && s.layer !== undefined) q.set("layer", String(s.layer));
    if (s.showGrads) q.set("grads", "1");
  }
  if (s.view === "editor" && s.spec) q.set("spec", b64urlEncode(JSON.stringify(s.spec)));
  const qs = q.toString();
  return `#${path}${qs ? `?${qs}` : ""}`;
}

/** Parse a hash into a partial state; unknown or broken parts are ignored. */
export function fromHash(hash) {
  const raw = (hash || "").replace(/^#/, "");
  const [path, qs = ""] = raw.split("?");
  const q = new URLSearchParams(qs);
  const parts = path.split("/").filter(Boolean);
  const out = { view: "editor", runId: null, compareIds: [], layer: null, showGrads: q.get("grads") === "1" };
  if (parts[0] === "runs" && parts[1]) {
    out.view = "run";
    out.runId = decodeURIComponent(parts[1]);
  } else if (parts[0] === "compare") {
    out.view = "compare";
    out.compareIds = (parts[1] || "").split(",").filter(Boolean).map(decodeURIComponent);
  }
  const layer = Number.parseInt(q.get("layer") ?? "", 10);
  if (Number.isFinite(layer) && layer >= 0) out.layer = layer;
  if (q.has("spec")) {
    try {
      out.spec = JSON.parse(b64urlDecode(q.get("spec")));
    } catch {
      /* a mangled spec in a link: keep the editor's own */
    }
  }
  return out;
}

let lastWritten = null;

/** Change the state and the hash. `push` adds a history entry (view changes); else the entry is replaced. */
export function setState(patch, { push = false } = {}) {
  Object.assign(state, patch);
  const hash = toHash();
  if (hash === location.hash) return;
  lastWritten = hash;
  if (push) location.hash = hash;
  else history.replaceState(null, "", hash);
}

/** Read the current hash into the state and notify listeners. */
export function loadFromHash() {
  const parsed = fromHash(location.hash);
  Object.assign(state, parsed);
  for (const fn of listeners) fn(state);
}

window.addEventListener("hashchange", () => {
  if (location.hash !== lastWritten) loadFromHash();
  lastWritten = null;
});

// REST calls and the run stream (contract §4, §5). The only module that talks to the server.
//
// With a configured API token every /api call needs "Authorization: Bearer <token>" and the websocket
// takes ?token=. The token lives in localStorage; on a 401 the page asks for it (see setTokenPrompt).

const TOKEN_KEY = "deltaboard.token";

export class ApiError extends Error {
  /** status: HTTP status; detail: the JSON body's `detail` (a string or FastAPI's list of errors). */
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

export function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function setToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled: the token lasts for this page only */
  }
  memoryToken = token;
}

let memoryToken = getToken();
let askToken = null; // async () => token | null, installed by main.js
let pendingAsk = null;

/** Install the function that asks the user for a token (returns a promise of the token or null). */
export function setTokenPrompt(fn) {
  askToken = fn;
}

/** One prompt at a time, shared by every request that hit a 401 meanwhile. */
function requestToken() {
  if (!askToken) return Promise.resolve(null);
  if (!pendingAsk) {
    pendingAsk = askToken().finally(() => {
      pendingAsk = null;
    });
  }
  return pendingAsk;
}

function headers(extra = {}) {
  const h = { ...extra };
  if (memoryToken) h.Authorization = `Bearer ${memoryToken}`;
  return h;
}

/**
 * fetch /api<path>; JSON in and out (a FormData body goes as multipart). Throws ApiError with the
 * server's `detail` on a non-2xx answer. opts.raw: return the Response (for binary bodies);
 * opts.cache: fetch's cache mode. On 401 asks for a token once and retries.
 */
export async function api(path, { method = "GET", body, raw = false, cache, retried = false } = {}) {
  const form = body instanceof FormData;
  const init = { method, headers: headers(body === undefined || form ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = form ? body : JSON.stringify(body);
  if (cache) init.cache = cache;
  const res = await fetch(`/api${path}`, init);
  if (res.status === 401 && !retried) {
    const token = await requestToken();
    if (token !== null) {
      setToken(token);
      return api(path, { method, body, raw, cache, retried: true });
    }
  }
  if (!res.ok) {
    let detail = res.statusText;
    try {
      detail = (await res.json()).detail ?? detail;
    } catch {
      /* not JSON */
    }
    throw new ApiError(res.status, detail);
  }
  if (raw) return res;
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

export const runsApi = {
  list: (limit = 50) => api(`/runs?limit=${limit}`),
  get: (id) => api(`/runs/${encodeURIComponent(id)}`),
  create: (spec) => api("/runs", { method: "POST", body: spec }),
  control: (id, op, body) =>
    api(`/runs/${encodeURIComponent(id)}/${op}`, { method: "POST", body: body ?? (op === "step" ? { steps: 1 } : {}) }),
  remove: (id) => api(`/runs/${encodeURIComponent(id)}`, { method: "DELETE" }),
  events: (id, after = 0, limit = 1000) => api(`/runs/${encodeURIComponent(id)}/events?after=${after}&limit=${limit}`),
  model: async (id) => (await api(`/runs/${encodeURIComponent(id)}/model`, { raw: true })).arrayBuffer(),
  /**
   * The run's latest weights: {buffer, step, epoch, final, status, version}. A snapshot while the run is
   * active, its final weights once it ended. The browser revalidates with the ETag, so an unchanged
   * snapshot costs a 304; `version` (the ETag) tells the caller whether there is anything new to parse.
   */
  snapshot: async (id) => {
    const res = await api(`/runs/${encodeURIComponent(id)}/model`, { raw: true, cache: "no-cache" });
    const h = res.headers;
    const int = (name) => (h.has(name) ? Number.parseInt(h.get(name), 10) : null);
    return {
      buffer: await res.arrayBuffer(),
      step: int("X-Deltaboard-Step"),
      epoch: int("X-Deltaboard-Epoch"),
      final: h.get("X-Deltaboard-Final") === "true",
      status: h.get("X-Deltaboard-Status"),
      version: h.get("ETag"),
    };
  },
  /** The points the run trains and tests on: {task, input_dim, n_classes, train: {X, y}, test: {X, y}}. */
  data: (id, maxPoints = 2000) => api(`/runs/${encodeURIComponent(id)}/data?max_points=${maxPoints}`),
};

export const datasetsApi = {
  list: () => api("/datasets"),
  /** Upload a CSV (multipart: file, name, task); 201 → {id, name, spec_name, task, input_dim, n_classes, target_dim, rows}. */
  upload: (file, { name, task = "auto" } = {}) => {
    const form = new FormData();
    form.append("file", file, file.name);
    if (name) form.append("name", name);
    form.append("task", task);
    return api("/datasets", { method: "POST", body: form });
  },
};

/** Every event of a run after `after`, paging with ?after=&limit= (onPage(count) reports progress). */
export async function allEvents(id, { after = 0, limit = 1000, onPage } = {}) {
  const out = [];
  for (;;) {
    const page = await runsApi.events(id, after, limit);
    if (!Array.isArray(page) || page.length === 0) break;
    for (const e of page) out.push(e);
    after = page[page.length - 1].seq;
    onPage?.(out.length);
    if (page.length < limit) break;
  }
  return out;
}

/** The statuses a run never leaves. */
export const TERMINAL = new Set(["finished", "failed", "canceled"]);

/** Which of runsApi.control's ops apply to a run in `status` (the buttons a view enables). */
export function controlsFor(status) {
  return {
    pause: status === "running" || status === "queued",
    resume: status === "paused",
    step: status === "paused",
    cancel: !TERMINAL.has(status),
  };
}

/**
 * The live stream of one run, resuming after the last seq it delivered whenever the socket drops.
 *
 * onEvent(event) is called once per seq, in order, with no gap and no duplicate: events at or below
 * the last delivered seq are skipped, and a jump past lastSeq+1 reconnects with ?after=lastSeq.
 * onState(state, info) reports "connecting" | "open" | "reconnecting" | "done" | "not_found" | "error".
 */
export class RunStream {
  constructor(runId, { after = 0, onEvent, onState } = {}) {
    this.runId = runId;
    this.lastSeq = after;
    this.onEvent = onEvent;
    this.onState = onState ?? (() => {});
    this.ws = null;
    this.stopped = false;
    this.done = false;
    this.retry = 0;
    this.timer = null;
    this.connects = 0;
    this.drops = 0;
    this.gaps = 0;
    this.duplicates = 0;
    this.connect();
  }

  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams({ after: String(this.lastSeq) });
    if (memoryToken) q.set("token", memoryToken);
    return `${proto}//${location.host}/api/runs/${encodeURIComponent(this.runId)}/stream?${q}`;
  }

  connect() {
    if (this.stopped) return;
    this.onState(this.connects ? "reconnecting" : "connecting");
    this.connects += 1;
    const ws = new WebSocket(this.url());
    this.ws = ws;
    this.openedWithoutEvents = true;
    ws.onopen = () => {
      this.retry = 0;
      this.onState("open");
    };
    ws.onmessage = (msg) => {
      if (ws !== this.ws) return;
      let data;
      try {
        data = JSON.parse(msg.data);
      } catch {
        return;
      }
      for (const event of Array.isArray(data) ? data : [data]) {
        if (!this.deliver(event, ws)) return;
      }
    };
    ws.onclose = (ev) => this.closed(ws, ev.code, ev.reason);
    ws.onerror = () => {
      /* onclose follows and decides */
    };
  }

  /** Pass one event on if it is the next seq; false when the socket is being replaced. */
  deliver(event, ws) {
    const seq = Number(event.seq);
    if (!Number.isFinite(seq) || seq <= this.lastSeq) {
      this.duplicates += 1;
      return true;
    }
    if (seq > this.lastSeq + 1) {
      // Never skip: reopen from the last seq we have; the server resends from there.
      this.gaps += 1;
      this.drop(4000);
      return false;
    }
    this.lastSeq = seq;
    this.openedWithoutEvents = false;
    if (event.type === "status" && TERMINAL.has(event.status)) this.done = true;
    this.onEvent?.(event);
    return ws === this.ws;
  }

  closed(ws, code, reason) {
    if (ws !== this.ws) return;
    this.ws = null;
    if (this.stopped) return;
    if (this.done) {
      this.onState("done", { code });
      return;
    }
    if (code === 4404) {
      this.onState("not_found", { code, reason });
      return;
    }
    if (code === 1000 && this.openedWithoutEvents) {
      // The run ended at or before our seq: nothing more will come.
      this.done = true;
      this.onState("done", { code });
      return;
    }
    if (code === 4403 || code === 1008) {
      this.onState("error", { code, reason });
      return;
    }
    if (code === 4401) {
      // Refused: ask for a token, then try again.
      requestToken().then((token) => {
        if (token !== null) setToken(token);
        this.schedule();
      });
      return;
    }
    this.drops += 1;
    this.schedule();
  }

  schedule() {
    if (this.stopped) return;
    const wait = Math.min(5000, 150 * 2 ** this.retry);
    this.retry += 1;
    this.onState("reconnecting", { wait });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  /** Close the current socket as a dropped connection would be (the stream reconnects by itself). */
  drop(code = 4000) {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    ws.onmessage = null;
    ws.onclose = null;
    try {
      ws.close(code, "dropped");
    } catch {
      /* already closing */
    }
    this.drops += 1;
    this.retry = 0;
    this.schedule();
  }

  /** Stop for good (the view closed). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onmessage = null;
      ws.onclose = null;
      ws.close(1000, "view closed");
    }
  }
}

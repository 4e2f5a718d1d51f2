// The operator's page of `streamdeq serve`: one tile per stream, live overlays and sparklines
// from server-sent events, controls that PATCH a stream's settings. Plain JS, no build step, no
// libraries: it must work offline, from the package itself.
"use strict";

// The token travels in the URL fragment (#token=...), which browsers never send to servers or
// put in Referer headers; the page adds it to each request itself.
const TOKEN = new URLSearchParams(location.hash.slice(1)).get("token") || "";
const HISTORY = 120; // points per sparkline
const MIN_OVERLAY_MS = 100; // at most ~10 overlay refreshes a second per tile
const POLL_MS = 2000; // stream list refresh (states, streams added elsewhere)
const tiles = new Map(); // stream id -> tile state
// Counts removals sent and finished: a stream list requested before a removal ended may still
// hold the removed stream, and must not bring its tile back (nor fetch its result: a 404).
let removals = 0;
// What the banner says: the first of these that is set. A missing or wrong token outranks the
// rest (without it no picture or result can show), and a stream list that loads must not clear
// what the event stream or a refused request reported.
const notices = { token: "", server: "", events: "" };
const TOKEN_NOTICE = TOKEN
  ? "this server refused the token in the address: open the page as /#token=<the right token>"
  : "this server needs a token to show pictures and results: open the page as /#token=<token>";
// What a tile shows where its picture will be, until one has loaded.
const PLACEHOLDERS = {
  starting: "waiting for the first frame…",
  live: "waiting for the first result…",
  reconnecting: "reconnecting…",
  failed: "no picture: the source failed",
  ended: "no picture: the stream ended",
};

function withToken(url) {
  if (!TOKEN) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN);
}

async function api(method, path, body) {
  const headers = {};
  if (TOKEN) headers.Authorization = "Bearer " + TOKEN;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  if (response.status === 401) notify("token", TOKEN_NOTICE);
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) {
    const error = new Error(data.error || "HTTP " + response.status);
    error.status = response.status;
    throw error;
  }
  return data;
}

function notify(kind, message) {
  notices[kind] = message || "";
  const text = notices.token || notices.server || notices.events;
  const banner = document.getElementById("banner");
  banner.textContent = text;
  banner.hidden = !text;
}

function fmt(value, digits) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

// ---------------------------------------------------------------------------------------- tiles

function createTile(info) {
  const node = document.getElementById("tile-template").content.firstElementChild.cloneNode(true);
  node.dataset.stream = info.id;
  node.querySelector(".name").textContent = info.id;
  const tile = {
    id: info.id,
    node,
    series: { latency_ms: [], iters: [], residual: [], new_drops: [] },
    marks: [], // shot changes / resets, as indices into the series
    lastDrops: null,
    lastResult: null, // {processed, finished_at} of the result shown last
    shown: { main: false, compare: false }, // whether a picture has loaded
    overlay: { busy: false, pending: false, last: 0, timer: null },
    compareOverlay: { busy: false, pending: false, last: 0, timer: null },
    settings: null,
    removeArmed: null,
  };
  bindControls(tile);
  document.getElementById("tiles").appendChild(node);
  tiles.set(info.id, tile);
  if (info.frames > 0) loadLatest(tile);
  return tile;
}

// A tile opened after its stream's last result (a file that has ended, a stalled camera) gets
// no event: fetch what there is. A refusal is reported by api() (the token notice); the
// events bring anything newer.
async function loadLatest(tile) {
  try {
    onResult(await api("GET", `/api/streams/${encodeURIComponent(tile.id)}/result`));
  } catch (error) {
    if (error.status === 401) tile.node.querySelector("figure.main .placeholder").textContent = "no picture without the token";
    else if (error.status !== 404) showTileError(tile, error.message);
  }
}

function bindControls(tile) {
  const q = (selector) => tile.node.querySelector(selector);
  const patch = (changes) =>
    api("PATCH", `/api/streams/${encodeURIComponent(tile.id)}/settings`, changes)
      .then((settings) => showSettings(tile, settings))
      .catch((error) => showTileError(tile, error.message));
  q(".mode").addEventListener("change", (event) => patch({ mode: event.target.value }));
  const iters = q(".iters-slider");
  iters.addEventListener("input", () => (q(".iters-value").textContent = iters.value));
  iters.addEventListener("change", () => patch({ iters: Number(iters.value) }));
  const budget = q(".budget-slider");
  budget.addEventListener("input", () => (q(".budget-value").textContent = budget.value));
  budget.addEventListener("change", () => patch({ budget_ms: Number(budget.value) }));
  q(".compare-toggle").addEventListener("change", (event) =>
    patch({ compare: event.target.checked ? "baseline" : null }),
  );
  const remove = q(".remove");
  remove.addEventListener("click", () => {
    // two clicks: a stray click must not drop a camera
    if (!tile.removeArmed) {
      remove.textContent = "Click again to remove";
      tile.removeArmed = setTimeout(() => {
        tile.removeArmed = null;
        remove.textContent = "Remove";
      }, 3000);
      return;
    }
    clearTimeout(tile.removeArmed);
    stopOverlays(tile); // no overlay request may reach the server after the stream is gone
    removals += 1;
    api("DELETE", `/api/streams/${encodeURIComponent(tile.id)}`)
      .then(() => dropTile(tile.id))
      .catch((error) => {
        tile.removing = false;
        showTileError(tile, error.message);
      })
      .finally(() => (removals += 1));
  });
}

function stopOverlays(tile) {
  // changing an <img>'s src aborts its request in flight: with the refreshes stopped before
  // the DELETE is sent, none can come back as a 404 for the removed stream
  tile.removing = true;
  for (const gate of [tile.overlay, tile.compareOverlay]) {
    clearTimeout(gate.timer);
    gate.timer = null;
    gate.pending = false;
    gate.busy = false; // the aborted load calls no handler: the gate must not stay shut
  }
  for (const img of tile.node.querySelectorAll("img.overlay, img.overlay-compare")) {
    img.onload = img.onerror = null;
    if (img.hasAttribute("src")) img.removeAttribute("src");
  }
}

function dropTile(id) {
  const tile = tiles.get(id);
  if (!tile) return;
  clearTimeout(tile.overlay.timer);
  clearTimeout(tile.compareOverlay.timer);
  tile.node.remove();
  tiles.delete(id);
  document.getElementById("empty").hidden = tiles.size > 0;
}

function showTileError(tile, message) {
  const error = tile.node.querySelector(".error");
  error.textContent = message || "";
  error.hidden = !message;
}

function showInfo(tile, info) {
  const q = (selector) => tile.node.querySelector(selector);
  for (const badge of [q(".state"), q("figure.main figcaption")]) {
    badge.textContent = info.state;
    badge.dataset.state = info.state;
  }
  if (!notices.token) q("figure.main .placeholder").textContent = PLACEHOLDERS[info.state] || "no picture yet";
  q(".source").textContent = `${info.source} · ${info.kind}${info.loop ? " · loop" : ""} · ${fmt(info.fps, 1)} frames/s`;
  showTileError(tile, info.error);
  showSettings(tile, info.settings);
}

function showSettings(tile, settings) {
  tile.settings = settings;
  const q = (selector) => tile.node.querySelector(selector);
  // a control the operator is dragging is left alone
  if (document.activeElement !== q(".mode")) q(".mode").value = settings.mode;
  const iters = q(".iters-slider");
  if (settings.iters !== null && document.activeElement !== iters) {
    iters.value = settings.iters;
    q(".iters-value").textContent = settings.iters;
  }
  const budget = q(".budget-slider");
  if (document.activeElement !== budget) {
    if (settings.budget_ms !== null) budget.value = settings.budget_ms;
    q(".budget-value").textContent = settings.budget_ms === null ? "off" : settings.budget_ms;
  }
  iters.disabled = budget.disabled = settings.mode === "baseline";
  q(".compare-toggle").checked = settings.compare !== null;
  q("figure.compare").hidden = settings.compare === null;
}

// ------------------------------------------------------------------------------------- results

function onResult(result) {
  const tile = tiles.get(result.stream);
  if (!tile) return;
  const last = tile.lastResult;
  // the result fetched when the tile was made may come again as an event, or after a newer one
  if (last && (result.processed === last.processed || result.finished_at < last.finished_at)) return;
  tile.lastResult = { processed: result.processed, finished_at: result.finished_at };
  const q = (selector) => tile.node.querySelector(selector);
  const settings = tile.settings;
  const slider = q(".iters-slider");
  if (settings && settings.mode !== "baseline" && settings.iters === null && settings.tol === null && settings.budget_ms === null && document.activeElement !== slider) {
    slider.value = result.iters; // the service's default M: show what it runs
    q(".iters-value").textContent = result.iters;
  }
  q(".frame").textContent = result.frame_index;
  q(".iters").textContent = result.iters;
  q(".latency").textContent = fmt(result.latency_ms, 1);
  q(".shot").textContent = result.reset ? "reset: " + result.reset : result.shot_change ? "shot change" : "";
  const newDrops = tile.lastDrops === null ? 0 : Math.max(0, result.drops - tile.lastDrops);
  tile.lastDrops = result.drops;
  const point = {
    latency_ms: result.latency_ms,
    iters: result.iters,
    residual: result.residual,
    new_drops: newDrops,
  };
  let shifted = 0;
  for (const [metric, values] of Object.entries(tile.series)) {
    values.push(point[metric]);
    if (values.length > HISTORY) {
      values.shift();
      shifted = 1;
    }
  }
  tile.marks = tile.marks.map((i) => i - shifted).filter((i) => i >= 0);
  if (result.shot_change || result.reset) tile.marks.push(tile.series.iters.length - 1);
  for (const canvas of tile.node.querySelectorAll("canvas.spark")) drawSpark(canvas, tile);
  for (const span of tile.node.querySelectorAll("[data-last]")) {
    const value = point[span.dataset.last];
    span.textContent = value === null ? "–" : span.dataset.last === "residual" ? Number(value).toExponential(1) : fmt(value, span.dataset.last === "latency_ms" ? 1 : 0);
  }
  refreshOverlay(tile, "main", q("img.overlay"), tile.overlay);
  if (result.compare) refreshOverlay(tile, "compare", q("img.overlay-compare"), tile.compareOverlay);
}

// One request in flight per image, and at most one every MIN_OVERLAY_MS: a fast stream never
// queues pictures the browser cannot show.
function refreshOverlay(tile, lane, img, gate) {
  if (tile.removing) return;
  if (gate.busy || gate.timer) {
    gate.pending = true;
    return;
  }
  const wait = gate.last + MIN_OVERLAY_MS - performance.now();
  if (wait > 0) {
    gate.timer = setTimeout(() => {
      gate.timer = null;
      refreshOverlay(tile, lane, img, gate);
    }, wait);
    return;
  }
  gate.busy = true;
  gate.pending = false;
  gate.last = performance.now();
  const done = () => {
    gate.busy = false;
    if (gate.pending && tiles.has(tile.id)) refreshOverlay(tile, lane, img, gate);
  };
  // the <img> shows only once a picture has loaded: never a broken-image icon
  const placeholder = img.parentElement.querySelector(".placeholder");
  img.onload = () => {
    img.hidden = false;
    if (placeholder) placeholder.hidden = true;
    done();
  };
  img.onerror = () => {
    img.hidden = true;
    if (placeholder) placeholder.hidden = false;
    done();
  };
  const path = `/api/streams/${encodeURIComponent(tile.id)}/overlay.jpg?lane=${lane}&t=${Date.now()}`;
  img.src = withToken(path);
}

// -------------------------------------------------------------------------------------- plots

function drawSpark(canvas, tile) {
  const metric = canvas.dataset.metric;
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, width, height);
  const raw = tile.series[metric];
  const values = raw.map((v) => (v === null || v === undefined ? null : metric === "residual" ? Math.log10(Math.max(v, 1e-12)) : v));
  const finite = values.filter((v) => v !== null && Number.isFinite(v));
  if (finite.length === 0) return;
  let low = Math.min(...finite);
  let high = Math.max(...finite);
  if (metric !== "residual") low = Math.min(low, 0);
  if (high - low < 1e-9) high = low + 1;
  const span = Math.max(values.length, 30) - 1; // fills from the left, then scrolls
  const x = (i) => (i / span) * (width - 2) + 1;
  const y = (v) => height - 2 - ((v - low) / (high - low)) * (height - 4);
  ctx.strokeStyle = "#d1495b";
  ctx.lineWidth = ratio;
  for (const i of tile.marks) {
    ctx.beginPath();
    ctx.moveTo(x(i), 0);
    ctx.lineTo(x(i), height);
    ctx.stroke();
  }
  ctx.strokeStyle = "#2e86ab";
  ctx.lineWidth = 1.5 * ratio;
  ctx.beginPath();
  let drawing = false;
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) {
      drawing = false;
      return;
    }
    if (drawing) ctx.lineTo(x(i), y(v));
    else ctx.moveTo(x(i), y(v));
    drawing = true;
  });
  ctx.stroke();
}

// ---------------------------------------------------------------------------- summary, polling

function onSummary(summary) {
  const set = (id, text) => (document.getElementById(id).textContent = text);
  set("sum-streams", summary.streams);
  set("sum-live", summary.live);
  set("sum-fps", fmt(summary.total_fps, 1));
  set("sum-p50", fmt(summary.latency_ms.p50, 1) + " ms");
  set("sum-p99", fmt(summary.latency_ms.p99, 1) + " ms");
  set("sum-batch", summary.batch_size.mean === null ? "–" : `${fmt(summary.batch_size.mean, 1)} (max ${summary.batch_size.max})`);
}

async function loadStreams() {
  try {
    const before = removals;
    const infos = await api("GET", "/api/streams");
    if (removals !== before) return; // it may list a stream removed meanwhile: the next poll
    const seen = new Set();
    for (const info of infos) {
      seen.add(info.id);
      showInfo(tiles.get(info.id) || createTile(info), info);
    }
    for (const id of [...tiles.keys()]) if (!seen.has(id)) dropTile(id);
    document.getElementById("empty").hidden = tiles.size > 0;
    notify("server", "");
  } catch (error) {
    notify("server", "server unreachable: " + error.message);
  }
}

function connectEvents() {
  const source = new EventSource(withToken("/api/events"));
  source.addEventListener("result", (event) => onResult(JSON.parse(event.data)));
  source.addEventListener("summary", (event) => onSummary(JSON.parse(event.data)));
  source.addEventListener("open", () => notify("events", ""));
  source.addEventListener("error", () => {
    if (source.readyState !== EventSource.CLOSED) {
      notify("events", "live updates interrupted; reconnecting…"); // EventSource retries by itself
      return;
    }
    // refused (401, 503): EventSource gives up, so try again later ourselves
    notify(
      "events",
      TOKEN
        ? "live updates refused (wrong token, or the server is busy); retrying…"
        : "live updates refused: this server may need a token (open the page as /#token=<token>) or is busy; retrying…",
    );
    setTimeout(connectEvents, 5000);
  });
}

function bindAddForm() {
  const form = document.getElementById("add-form");
  const error = document.getElementById("add-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const field = (name) => form.elements.namedItem(name);
    const body = { source: field("source").value.trim(), loop: field("loop").checked };
    const id = field("id").value.trim(); // not form.id: that is the form's own id attribute
    if (id) body.id = id;
    try {
      const info = await api("POST", "/api/streams", body);
      showInfo(tiles.get(info.id) || createTile(info), info);
      document.getElementById("empty").hidden = true;
      error.hidden = true;
      form.reset();
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    }
  });
}

bindAddForm();
loadStreams();
connectEvents();
setInterval(loadStreams, POLL_MS);

// The live view's logic: polls the read API every 2 s and draws by hand.
// Nothing here is secret: the API key comes from the user and stays in this
// browser (localStorage); it is sent as a Bearer header, never in a URL.
"use strict";

const REFRESH_MS = 2000;
const CHART_MINUTES = 5;
const RATE_WINDOW_S = 60;
const KEY_STORE = "bridge.apiKey";
const $ = (id) => document.getElementById(id);
// generation: bumped whenever the view restarts, so a poll in flight from
// before does not schedule a second loop.
const state = { key: null, device: null, metric: null, timer: null, generation: 0 };

class AuthError extends Error {}

async function api(path) {
  const reply = await fetch(path, { headers: { Authorization: `Bearer ${state.key}` } });
  if (reply.status === 401 || reply.status === 403) throw new AuthError("the API refused the key");
  if (!reply.ok) {
    const problem = await reply.json().catch(() => ({}));
    throw new Error(problem.detail || `${path}: HTTP ${reply.status}`);
  }
  return reply.json();
}

// #key=...&device=... : the key is stored and taken out of the address bar,
// so it is not left in the history or shown on screen.
function readFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("key")) {
    localStorage.setItem(KEY_STORE, params.get("key"));
    params.delete("key");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  }
  return { device: params.get("device"), metric: params.get("metric") };
}

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

// Every device, following the cursor in pages of the API's default size
// (a demo page: it stops after 50 pages).
async function allDevices() {
  const devices = [];
  let after = null;
  for (let page = 0; page < 50; page++) {
    const doc = await api(`/api/v1/devices${after ? `?after=${encodeURIComponent(after)}` : ""}`);
    devices.push(...doc.items);
    if (!doc.next) break;
    after = doc.next;
  }
  return devices;
}

// Points stored with a time in the last minute, over every device and metric
// (the summary's counts), per second.
async function ingestRate() {
  const start = new Date(Date.now() - RATE_WINDOW_S * 1000).toISOString();
  const doc = await api(`/api/v1/analytics/summary?start=${encodeURIComponent(start)}`);
  return doc.series.reduce((sum, s) => sum + s.count, 0) / RATE_WINDOW_S;
}

function fillSelect(select, values, chosen) {
  const current = [...select.options].map((o) => o.value).join("\n");
  if (current !== values.join("\n")) {
    select.replaceChildren(...values.map((v) => new Option(v, v)));
  }
  select.value = chosen;
}

async function refreshFleet() {
  const [devices, rate] = await Promise.all([allDevices(), ingestRate()]);
  const online = devices.filter((d) => d.status === "online");
  $("ingest-rate").textContent = rate.toFixed(1);
  $("devices-online").textContent = String(online.length);
  $("devices-total").textContent = `of ${devices.length} known`;
  const ids = devices.map((d) => d.device_id);
  if (!ids.includes(state.device)) state.device = (online[0] || devices[0] || {}).device_id || null;
  fillSelect($("device"), ids, state.device);
}

// Alarms not yet cleared (active, then acknowledged), newest first.
async function refreshAlarms() {
  const [active, acked] = await Promise.all(["active", "acknowledged"].map(
    (status) => api(`/api/v1/analytics/anomalies?status=${status}&limit=100`)));
  const open = [...active.items, ...acked.items];
  $("alarm-count").textContent = String(open.length);
  $("alarms").tBodies[0].replaceChildren(...open.map((a) => {
    const row = document.createElement("tr");
    row.dataset.alarm = String(a.id);
    row.className = a.severity;
    const cells = [
      ["severity", a.severity], ["device", a.device_id], ["metric", a.metric || "any"],
      ["rule", a.rule || ""], ["since", new Date(a.started_at).toLocaleTimeString()],
      ["peak", a.peak === null ? "" : String(a.peak)], ["status", a.status],
    ];
    for (const [cls, text] of cells) {
      const cell = row.insertCell();
      cell.className = cls;
      cell.textContent = text;
    }
    return row;
  }));
}

async function refreshDevice() {
  if (!state.device) return;
  const id = encodeURIComponent(state.device);
  const detail = await api(`/api/v1/devices/${id}`);
  const metrics = Object.keys(detail.latest).sort();
  if (!metrics.includes(state.metric)) state.metric = metrics[0] || null;
  fillSelect($("metric"), metrics, state.metric);
  $("latest").tBodies[0].replaceChildren(...metrics.map((m) => {
    const row = document.createElement("tr");
    row.dataset.metric = m;
    row.classList.toggle("chosen", m === state.metric);
    const { value, time } = detail.latest[m];
    for (const [cls, text] of [["name", m], ["value", String(value)], ["time", new Date(time).toLocaleTimeString()]]) {
      const cell = row.insertCell();
      cell.className = cls;
      cell.textContent = text;
    }
    return row;
  }));
  if (!state.metric) return;
  const start = new Date(Date.now() - CHART_MINUTES * 60000).toISOString();
  const doc = await api(`/api/v1/telemetry/${id}?metric=${encodeURIComponent(state.metric)}&start=${encodeURIComponent(start)}`);
  const points = (doc.series[0] || { points: [] }).points.map((p) => [Date.parse(p.time), p.value]);
  drawChart(points, Date.now() - CHART_MINUTES * 60000, Date.now());
  $("chart-caption").textContent = `${state.device} · ${state.metric} · last ${CHART_MINUTES} minutes (${doc.resolution})`;
}

// A line chart on a canvas: the y range fits the points, the x range is the
// window. data-points and data-last let a test see what was drawn.
function drawChart(points, t0, t1) {
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 64, R = 12, T = 12, B = 28;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#6b7385";
  ctx.strokeStyle = "#dde1e8";
  ctx.strokeRect(L, T, W - L - R, H - T - B);
  canvas.dataset.points = String(points.length);
  canvas.dataset.last = points.length ? String(points[points.length - 1][0]) : "";
  if (!points.length) {
    ctx.fillText("no points in the window yet", L + 12, T + 24);
    return;
  }
  let lo = Math.min(...points.map((p) => p[1])), hi = Math.max(...points.map((p) => p[1]));
  if (hi === lo) { hi += 1; lo -= 1; }
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    ctx.fillText(v.toFixed(1), 4, y(v) + 4);
    ctx.beginPath(); ctx.moveTo(L, y(v)); ctx.lineTo(W - R, y(v)); ctx.stroke();
  }
  for (let m = 0; m <= CHART_MINUTES; m++) {
    const t = t0 + m * 60000;
    const label = new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const width = ctx.measureText(label).width;
    ctx.fillText(label, Math.min(x(t) - width / 2, W - R - width), H - 8);
  }
  ctx.strokeStyle = "#2f6fed";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  points.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
  ctx.stroke();
}

async function tick(generation = state.generation) {
  try {
    await refreshFleet();
    await refreshAlarms();
    await refreshDevice();
    setStatus(`updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    if (err instanceof AuthError) return askForKey(err.message);
    setStatus(`cannot refresh: ${err.message}`, true);
  }
  if (generation === state.generation) state.timer = setTimeout(() => tick(generation), REFRESH_MS);
}

function askForKey(why) {
  clearTimeout(state.timer);
  state.generation++;
  localStorage.removeItem(KEY_STORE);
  state.key = null;
  $("live").hidden = true;
  $("key-form").hidden = false;
  setStatus(why || "an API key is needed", Boolean(why));
}

function start() {
  state.key = localStorage.getItem(KEY_STORE);
  if (!state.key) return askForKey();
  $("key-form").hidden = true;
  $("live").hidden = false;
  tick();
}

document.addEventListener("DOMContentLoaded", () => {
  const wanted = readFragment();
  state.device = wanted.device;
  state.metric = wanted.metric;
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(KEY_STORE, $("key-input").value.trim());
    $("key-input").value = "";
    start();
  });
  $("forget-key").addEventListener("click", () => askForKey());
  $("device").addEventListener("change", (e) => { state.device = e.target.value; state.metric = null; restart(); });
  $("metric").addEventListener("change", (e) => { state.metric = e.target.value; restart(); });
  start();
});

function restart() {
  clearTimeout(state.timer);
  state.generation++;
  tick();
}

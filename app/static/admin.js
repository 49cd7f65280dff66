// The admin page: the keys (list, create, rotate, revoke), this month's spend by day as a chart,
// the top end users and the live streams (each can be stopped), through /v1/admin/ with the
// admin key this tab was given. The live streams are read again every few seconds.

const KEY_ITEM = "chatwait.adminKey";
const STREAMS_EVERY_MS = 3000;
const $ = (id) => document.getElementById(id);

function adminKey() {
  try {
    return sessionStorage.getItem(KEY_ITEM) || "";
  } catch {
    return "";
  }
}

function setAdminKey(key) {
  try {
    sessionStorage.setItem(KEY_ITEM, key);
  } catch {
    // not kept: asked again on the next 401
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${adminKey()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const found = await response.json().catch(() => ({}));
  if (response.status === 401) {
    askKey();
    throw new Error("This page needs an admin key.");
  }
  if (!response.ok) throw new Error(`${found.message || `HTTP ${response.status}`} ${found.detail || ""}`.trim());
  return found;
}

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function summary(limits) {
  const said = Object.entries(limits || {}).map(([name, value]) => `${name} ${value}`);
  return said.length ? said.join(", ") : "none";
}

function showSecret(name, secret) {
  $("secret-name").textContent = name;
  $("secret-value").textContent = secret;
  $("secret").hidden = false;
}

function keyRow(tbody, key) {
  const row = tbody.insertRow();
  row.dataset.name = key.name;
  cell(row, key.source === "file" ? `${key.name} (file)` : key.name);
  cell(row, summary(key.limits));
  cell(row, summary(key.users));
  const state = key.revoked_at ? "revoked" : key.rotating_until ? "rotating" : "active";
  cell(row, state, `state-${state}`);
  const actions = cell(row, "", "actions");
  if (key.source !== "api" || key.revoked_at) return;
  const rotate = document.createElement("button");
  rotate.textContent = "Rotate";
  rotate.addEventListener("click", () => act(async () => {
    const found = await api("POST", `/v1/admin/keys/${encodeURIComponent(key.id)}/rotate`, { overlap_seconds: 3600 });
    showSecret(found.name, found.key);
  }));
  const revoke = document.createElement("button");
  revoke.textContent = "Revoke";
  revoke.className = "danger";
  revoke.addEventListener("click", () => act(async () => {
    if (!window.confirm(`Revoke ${key.name}? No secret opens it afterwards.`)) return;
    await api("DELETE", `/v1/admin/keys/${encodeURIComponent(key.id)}`);
  }));
  actions.append(rotate, " ", revoke);
}

async function loadKeys() {
  const tbody = $("keys").tBodies[0];
  const found = await api("GET", "/v1/admin/keys");
  tbody.replaceChildren();
  for (const key of found.data) keyRow(tbody, key);
}

function chart(days) {
  const svg = $("spend-chart");
  const ns = svg.namespaceURI; // the chart is drawn in the SVG element's own namespace
  svg.replaceChildren();
  const most = Math.max(...days.map((day) => day.cost_usd), 0);
  const width = 620 / Math.max(days.length, 1);
  days.forEach((day, index) => {
    const height = most && day.cost_usd ? Math.max(1, (day.cost_usd / most) * 130) : 0;
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("x", String(index * width + 2));
    bar.setAttribute("y", String(140 - height));
    bar.setAttribute("width", String(Math.max(2, width - 4)));
    bar.setAttribute("height", String(height));
    const title = document.createElementNS(ns, "title");
    title.textContent = `${day.day}: $${day.cost_usd.toFixed(6)}`;
    bar.append(title);
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", String(index * width + 2));
    label.setAttribute("y", "155");
    label.textContent = day.day.slice(8);
    svg.append(bar, label);
  });
}

/** Every day from `first` to `last` (YYYY-MM-DD, UTC) with its spend (0 when none). */
function everyDay(first, last, spent) {
  const costs = new Map(spent.map((entry) => [entry.day, entry.cost_usd]));
  const days = [];
  for (let at = new Date(`${first}T00:00:00Z`); at <= new Date(`${last}T00:00:00Z`); at.setUTCDate(at.getUTCDate() + 1)) {
    const day = at.toISOString().slice(0, 10);
    days.push({ day, cost_usd: costs.get(day) || 0 });
  }
  return days;
}

async function loadSpend() {
  const byDay = await api("GET", "/v1/admin/spend?group_by=day");
  $("spend-total").textContent = `$${byDay.total_usd.toFixed(6)} from ${byDay.from} to ${byDay.to}`;
  chart(everyDay(byDay.from, byDay.to, byDay.data));
  const users = await api("GET", "/v1/admin/spend?group_by=end_user,key");
  const top = users.data.filter((entry) => entry.end_user).sort((a, b) => b.cost_usd - a.cost_usd).slice(0, 10);
  const tbody = $("top-users").tBodies[0];
  tbody.replaceChildren();
  for (const entry of top) {
    const row = tbody.insertRow();
    cell(row, entry.end_user);
    cell(row, entry.key || "");
    cell(row, entry.cost_usd.toFixed(6));
    cell(row, String(entry.requests));
  }
}

function age(seconds) {
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.floor(seconds % 60)} s`;
}

function streamRow(tbody, stream) {
  const row = tbody.insertRow();
  row.dataset.id = stream.id;
  cell(row, stream.id, "mono");
  cell(row, stream.key || "(none)");
  cell(row, stream.model);
  cell(row, stream.api);
  cell(row, age(stream.age_seconds));
  cell(row, String(stream.events));
  const stop = document.createElement("button");
  stop.textContent = "Stop";
  stop.className = "danger";
  stop.addEventListener("click", () => act(async () => {
    await api("DELETE", `/v1/admin/streams/${encodeURIComponent(stream.id)}`);
  }));
  cell(row, "", "actions").append(stop);
}

async function loadStreams() {
  const found = await api("GET", "/v1/admin/streams?limit=50");
  const shown = found.data.length < found.live ? ` (the ${found.data.length} newest shown)` : "";
  $("streams-count").textContent = `${found.live} generating now${shown}`;
  const tbody = $("streams").tBodies[0];
  tbody.replaceChildren();
  for (const stream of found.data) streamRow(tbody, stream);
}

async function refresh() {
  await loadKeys();
  await loadStreams().catch((error) => notice(error.message));
  await loadSpend().catch((error) => notice(error.message)); // no spend kept: the keys still show
  document.body.dataset.ready = "true";
}

async function act(run) {
  try {
    notice("");
    await run();
    await refresh();
  } catch (error) {
    notice(error.message);
  }
}

function askKey() {
  $("key-input").value = adminKey();
  if (!$("key-dialog").open) $("key-dialog").showModal();
}

function numberOf(id) {
  const value = $(id).value.trim();
  return value === "" ? undefined : Number(value);
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setAdminKey($("key-input").value.trim());
  $("key-dialog").close();
  act(async () => {});
});
$("key-cancel").addEventListener("click", () => $("key-dialog").close());
$("admin-key-button").addEventListener("click", askKey);
$("secret-done").addEventListener("click", () => {
  $("secret").hidden = true;
  $("secret-value").textContent = "";
});
$("create").addEventListener("submit", (event) => {
  event.preventDefault();
  act(async () => {
    const body = { name: $("create-name").value.trim(), rpm: numberOf("create-rpm"), budget_day: numberOf("create-budget") };
    const userRpm = numberOf("create-user-rpm");
    if (userRpm !== undefined) body.users = { rpm: userRpm };
    const found = await api("POST", "/v1/admin/keys", JSON.parse(JSON.stringify(body)));
    showSecret(found.name, found.key);
    $("create").reset();
  });
});

setInterval(() => {
  if (document.hidden || !adminKey() || $("key-dialog").open) return;
  loadStreams().catch(() => {}); // a failed read is shown by the next action, not every 3 s
}, STREAMS_EVERY_MS);

if (adminKey()) act(async () => {});
else {
  document.body.dataset.ready = "true";
  askKey();
}

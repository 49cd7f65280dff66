// The service's own API, as the page uses it: readiness, start, resume and stop a stream; with
// the client key this browser was given (when the service asks for one: CHATWAIT_API_KEYS).

const KEY_ITEM = "chatwait.apiKey";

/** The client key kept in this browser ("" when none). */
export function apiKey() {
  try {
    return localStorage.getItem(KEY_ITEM) || "";
  } catch {
    return "";
  }
}

/** Keep (or, with "", forget) the client key in this browser. */
export function setApiKey(key) {
  try {
    if (key) localStorage.setItem(KEY_ITEM, key);
    else localStorage.removeItem(KEY_ITEM);
  } catch {
    // storage refused: the key is not kept, and the next request is asked for it again
  }
}

function withKey(headers = {}) {
  const key = apiKey();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

/** An error answer of the service: its catalogue fields (message, detail, action, retryable). */
export class ApiError extends Error {
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.errorCode = body.error_code || "http_error";
    this.detail = body.detail || "";
    this.action = body.action || "Try again.";
    this.retryable = body.retryable !== false;
    this.retryAfter = typeof body.retry_after_seconds === "number" ? body.retry_after_seconds : null;
    this.correlationId = body.correlation_id || null;
    this.dropHistoryMessages = body.drop_history_messages ?? null;
    this.fields = body.fields && typeof body.fields === "object" ? body.fields : null;
  }
}

async function checked(response) {
  if (response.ok) return response;
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = { message: `The service answered HTTP ${response.status}.` };
  }
  throw new ApiError(response.status, body);
}

/** What /ready says: provider, model, allowed models. */
export async function readiness() {
  return (await checked(await fetch("/ready", { cache: "no-store" }))).json();
}

/** The models the service offers (GET /v1/models), in its order: each with its id and what the
 * service knows of it (context window, output limit, modalities, tools, reasoning). */
export async function listModels() {
  const answer = await (await checked(await fetch("/v1/models", { headers: withKey(), cache: "no-store" }))).json();
  return (answer.data || []).filter((model) => typeof model?.id === "string");
}

/** POST /v1/chat/streaming; resolves to the open SSE response. */
export async function startStream(body, signal) {
  const response = await fetch("/v1/chat/streaming", {
    method: "POST",
    headers: withKey({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify(body),
    signal,
  });
  return checked(response);
}

/** GET /v1/chat/streaming/{id}?last_event_id=N; the events after N, then live ones. */
export async function resumeStream(streamId, lastEventId, signal) {
  const query = lastEventId === null ? "" : `?last_event_id=${encodeURIComponent(lastEventId)}`;
  const response = await fetch(`/v1/chat/streaming/${encodeURIComponent(streamId)}${query}`, {
    headers: withKey({ Accept: "text/event-stream" }),
    cache: "no-store",
    signal,
  });
  return checked(response);
}

/** DELETE /v1/chat/streaming/{id}: the reply stops; its stream ends with done/cancelled. */
export async function stopStream(streamId) {
  const url = `/v1/chat/streaming/${encodeURIComponent(streamId)}`;
  return (await checked(await fetch(url, { method: "DELETE", headers: withKey() }))).json();
}

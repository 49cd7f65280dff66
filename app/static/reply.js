// One assistant reply, followed from its first event to its terminal one.
//
// The reply survives a dropped connection: it resumes with the last event id it holds
// (GET /v1/chat/streaming/{id}?last_event_id=N), backing off between attempts, and skips
// any chunk it already has, so the text has no gap and no repeat. It also resumes a reply
// that a reload interrupted, from the stream id and event id stored with the message, and one
// whose store went out of reach for a while (an `error` without an id ends that response only;
// a 503 that says to retry is retried).

import { ApiError, resumeStream, startStream, stopStream } from "./api.js";
import { friendly } from "./friendly.js";
import { SseParser } from "./sse.js";

export const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000, 8000, 8000, 8000, 8000, 8000];

class Gap extends Error {}

class Interrupted extends Error {} // the response ended, the stream did not: resume it

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const CLOSES = ".!?,;:";
const isLower = (c) => c !== c.toUpperCase() && c === c.toLowerCase();
const isUpper = (c) => c !== c.toLowerCase() && c === c.toUpperCase();

/** Whether a space must join a cut reply's `text` and its continuation beginning `next`, as the
 * service joins its own continuations (app/generation/seam.py): after a sentence's or a clause's
 * punctuation, or where a capital begins a word glued to a lowercase letter. */
export function needsSpace(text, next) {
  if (!text || !next || /\s/u.test(text.at(-1)) || /\s/u.test(next[0])) return false;
  const [last, first] = [text.at(-1), next[0]];
  return (CLOSES.includes(last) && /[\p{L}\p{N}]/u.test(first)) || (isLower(last) && isUpper(first));
}

export class ReplyStream {
  /**
   * @param message the stored assistant message this reply writes into
   * @param hooks {onText(delta), onChange()}: text appended; status or details changed
   */
  constructor(message, hooks) {
    this.message = message;
    this.hooks = hooks;
    this.abort = new AbortController();
    this.stopping = false;
    this.finished = false;
    this.sentAt = performance.now();
  }

  /** Send the turn and follow the reply to its end. A turn the service refused (or could not
   * be sent) ends `refused`, with the reason in `this.refusal`: no reply was started. */
  async start(body) {
    this.setStatus("streaming");
    let response = null;
    try {
      response = await startStream(body, this.abort.signal);
    } catch (error) {
      if (this.stopping) return this.end("stopped");
      this.refusal =
        error instanceof ApiError
          ? error
          : new ApiError(0, {
              error_code: "network_error",
              message: "ChatWait could not be reached.",
              detail: String(error?.message || error),
              action: "Check your connection, then try again.",
            });
      return this.end("refused");
    }
    return this.follow(response);
  }

  /** Pick up a reply that a reload interrupted. */
  async resume() {
    this.setStatus("reconnecting");
    return this.follow(null);
  }

  /** Stop generating; the partial text is kept. */
  async stop() {
    this.stopping = true;
    if (!this.message.streamId) {
      this.abort.abort();
      return;
    }
    try {
      await stopStream(this.message.streamId);
    } catch {
      // the stream may have ended or expired meanwhile: stopping locally is all that is left
    }
    if (!this.finished && this.message.status === "reconnecting") this.end("stopped");
  }

  async follow(response) {
    let attempt = 0;
    let wait = response !== null; // a reply picked up after a reload is asked for at once
    for (;;) {
      if (response !== null) {
        const before = this.message.lastEventId;
        await this.read(response);
        if (this.finished) return;
        if (this.message.lastEventId !== before) attempt = 0; // it made progress: backoff starts over
      }
      if (this.stopping) return this.end("stopped");
      if (!this.message.streamId) {
        return this.fail(null, "The connection broke before the reply started.", "Retry the message.");
      }
      if (attempt >= RECONNECT_DELAYS_MS.length) {
        return this.fail(null, "The connection was lost and could not be restored.", "Check the connection, then retry.");
      }
      this.setStatus("reconnecting");
      if (wait) await sleep(RECONNECT_DELAYS_MS[attempt] * (0.8 + Math.random() * 0.4));
      wait = true;
      attempt += 1;
      if (this.stopping) return this.end("stopped");
      try {
        response = await resumeStream(this.message.streamId, this.message.lastEventId, this.abort.signal);
      } catch (error) {
        if (error instanceof ApiError && !(error.status === 503 && error.retryable)) {
          if (error.status === 401) return this.fail(error, "ChatWait asks for an API key.", null, "interrupted");
          const gone = error.errorCode === "stream_not_found";
          return this.fail(error, gone ? "This reply can no longer be resumed: it expired." : null, null, "interrupted");
        }
        response = null; // still offline, or the store still out of reach: try again after the next delay
      }
    }
  }

  /** Read one SSE response until it ends or breaks. */
  async read(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser((event) => this.handle(event));
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        parser.push(decoder.decode(value, { stream: true }));
        if (this.finished) return;
      }
    } catch {
      // a network error, a Gap or an interruption: the caller resumes from the last event id held
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  handle(event) {
    const data = JSON.parse(event.data);
    const message = this.message;
    if (event.event === "queued") {
      message.queuedAhead = data.ahead; // waiting for the embedded model: this many before it
      this.hooks.onChange();
    } else if (event.event === "stream") {
      message.streamId = data.stream_id;
      message.correlationId = data.correlation_id;
      message.model = data.model;
      if (message.lastEventId === null || message.lastEventId === undefined) message.lastEventId = 0;
      this.setStatus("streaming");
    } else if (event.event === "chunk") {
      if (data.sequence <= message.lastEventId) return; // already held (a replay after resuming)
      if (data.sequence !== message.lastEventId + 1) throw new Gap(`chunk ${data.sequence} after ${message.lastEventId}`);
      if (message.ttftMs === undefined) message.ttftMs = Math.round(performance.now() - this.sentAt);
      if (message.queuedAhead) {
        delete message.queuedAhead;
        this.hooks.onChange();
      }
      let text = data.content;
      if (message.joining && text) {
        if (needsSpace(message.content, text)) text = ` ${text}`; // a continuation glued to the cut word
        delete message.joining;
      }
      message.content += text;
      message.lastEventId = data.sequence;
      if (message.status !== "streaming") this.setStatus("streaming");
      this.hooks.onText(text);
    } else if (event.event === "error" && data.sequence === undefined) {
      throw new Interrupted(data.detail); // no id: this response ends here, the reply goes on
    } else if (event.event === "done" || event.event === "error") {
      message.lastEventId = data.sequence;
      message.usage = data.usage;
      message.durationMs = data.duration_ms;
      message.finishReason = data.finish_reason ?? null;
      if (event.event === "error") {
        this.fail(new ApiError(0, data));
      } else {
        this.end(data.finish_reason === "cancelled" ? "stopped" : "complete");
      }
    }
  }

  setStatus(status) {
    if (this.message.status !== status) {
      this.message.status = status;
      this.hooks.onChange();
    }
  }

  end(status) {
    this.finished = true;
    this.setStatus(status);
    this.hooks.onChange();
  }

  /** End in failure: the page's own words (`message`, `action`) where it knows better, else the
   * plain words for the service's error, whose own words go under Details. */
  fail(error, message = null, action = null, status = "error") {
    const [headline, todo] = friendly(error?.errorCode || "network_error", error?.message, error?.action, error?.retryAfter);
    this.message.error = {
      message: message || headline,
      action: action || todo,
      code: error?.errorCode || "network_error",
      said: error ? `${error.message} ${error.action}` : "",
      detail: error?.detail || "",
      retryable: error ? error.retryable : true,
      correlationId: error?.correlationId || null,
    };
    delete this.message.queuedAhead;
    this.end(status);
    if (error?.status === 401) this.hooks.onKeyNeeded?.();
  }
}

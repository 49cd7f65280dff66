// What a person reads when a turn is refused or a reply fails: plain words and what to do, by
// the service's error code. The service's own words (message, detail, code, correlation id) stay
// one click away, under Details.

const WORDS = {
  validation_error: ["This message could not be sent.", "Change what is listed below, then send it again."],
  invalid_json: ["This message could not be sent.", "Reload the page and try again."],
  payload_too_large: ["This message is too long to send.", "Shorten it, or split it in parts."],
  input_too_long: ["This conversation has grown too long for the model.", "Leave out its oldest messages, or start a new conversation."],
  content_policy_violation: ["The model's provider declined this message.", "Rephrase it, then send it again."],
  invalid_api_key: ["This ChatWait asks for a key.", "Enter the key its operator gave you."],
  rate_limited: ["You are sending messages faster than this key allows.", "Wait a moment, then try again."],
  budget_exhausted: ["This key has used up its budget for now.", "Try again when it resets, or ask the operator."],
  server_busy: ["ChatWait is busy with other replies.", "Try again in a few seconds."],
  service_restarting: ["ChatWait is restarting.", "Try again in a few seconds."],
  store_unavailable: ["ChatWait cannot keep replies right now.", "Try again in a few seconds."],
  generation_lost: ["The reply was lost when a server stopped.", "Regenerate it."],
  model_not_found: ["That model is not available here.", "Pick another model."],
  upstream_rate_limited: ["The model is busy right now.", "Try again in a few seconds."],
  upstream_unavailable: ["The model is not available right now.", "Try again in a few seconds."],
  upstream_timeout: ["The model took too long to answer.", "Try again."],
  upstream_interrupted: ["The model stopped in the middle of its reply.", "Keep what it wrote, or try again."],
  upstream_bad_response: ["The model sent something ChatWait could not read.", "Try again."],
  upstream_auth_failed: ["ChatWait cannot reach its model.", "Tell the operator of this ChatWait."],
  upstream_tls_failed: ["ChatWait cannot reach its model.", "Tell the operator of this ChatWait."],
  upstream_model_unknown: ["The model server does not know this model.", "Pick another model, or tell the operator of this ChatWait."],
  upstream_misconfigured: ["ChatWait cannot reach its model.", "Tell the operator of this ChatWait: retrying will not help soon."],
  upstream_rejected: ["The model refused this request.", "Try another model, or rephrase the message."],
  internal_error: ["Something went wrong in ChatWait.", "Try again; if it keeps happening, tell its operator."],
  network_error: ["ChatWait could not be reached.", "Check your connection, then try again."],
};

// What to do when the service said how long to wait (Retry-After), by the error's code.
const WAITS = {
  rate_limited: (wait) => `Wait ${wait}, then try again.`,
  upstream_rate_limited: (wait) => `Try again in ${wait}.`,
  server_busy: (wait) => `Try again in ${wait}.`,
  budget_exhausted: (wait) => `It resets in ${wait}; or ask the operator for more.`,
};

/** A wait in a person's words: seconds under two minutes, then minutes, hours, days (rounded up). */
export function howLong(seconds) {
  const [count, unit] =
    seconds < 120 ? [Math.max(1, Math.ceil(seconds)), "second"]
    : seconds < 7200 ? [Math.ceil(seconds / 60), "minute"]
    : seconds < 172800 ? [Math.ceil(seconds / 3600), "hour"]
    : [Math.ceil(seconds / 86400), "day"];
  return `${count} ${unit}${count === 1 ? "" : "s"}`;
}

/** [headline, what to do] for `code`, or the service's own words when the code is not listed;
 * where the service said how long to wait (`retryAfter`, seconds), what to do says it. */
export function friendly(code, message, action, retryAfter = null) {
  const [headline, todo] = WORDS[code] ?? [message || "Something went wrong.", action || "Try again."];
  const wait = WAITS[code];
  return wait && typeof retryAfter === "number" && retryAfter > 0 ? [headline, wait(howLong(retryAfter))] : [headline, todo];
}

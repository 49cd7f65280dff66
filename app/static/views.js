// The DOM of messages, the welcome state and the notice above the composer.
//
// A person's text is only ever inserted as text. A reply's text is Markdown, rendered by
// markdown.js (sanitised); while it streams, the page calls `showText` once per animation frame.

import { copyButton, decorate } from "./code.js";
import { friendly } from "./friendly.js";
import { LiveMarkdown } from "./markdown.js";
import { IN_FLIGHT, streamingElsewhere } from "./store.js";

export const EXAMPLES = [
  "Explain Server-Sent Events in two sentences.",
  "Write a haiku about waiting for a reply.",
  "Give me three names for a friendly robot, as a list.",
  "Show a Python function that reverses a string, in a code block.",
];

const STATUS_TEXT = {
  streaming: "Generating…",
  reconnecting: "Reconnecting…",
  complete: "",
  stopped: "Stopped",
  error: "Error",
  interrupted: "Interrupted",
};

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const views = new WeakMap();

export function viewOf(message) {
  return views.get(message);
}

/** The DOM of one message. A person's has Edit (`hooks.edit`, shown on the last one); a reply
 * has its state, Copy, Details, Retry or Regenerate (`hooks.retry`) and, when it stopped at its
 * length limit, Continue (`hooks.continueReply`). */
export function messageView(message, hooks) {
  const root = element("article", `message ${message.role}`);
  const bubble = element("div", "bubble");
  root.append(bubble);
  const view = { root, bubble };
  if (message.role === "user") {
    bubble.textContent = message.content;
    view.edit = button("edit", "Edit", () => hooks.edit(message));
    const meta = element("div", "meta");
    meta.append(view.edit);
    root.append(meta);
  } else {
    view.body = element("div", "markdown");
    view.markdown = new LiveMarkdown(view.body);
    view.cursor = element("span", "cursor");
    view.cursor.setAttribute("aria-hidden", "true");
    bubble.append(view.body, view.cursor);
    const meta = element("div", "meta");
    view.state = element("span", "state");
    view.cut = element("span", "cut", "Stopped at its length limit.");
    view.continue = button("continue primary", "Continue", () => hooks.continueReply(message));
    view.copy = copyButton("Copy", () => message.content);
    view.copy.setAttribute("aria-label", "Copy reply");
    view.retry = button("retry", "Retry", () => hooks.retry(message));
    view.detailsToggle = button("details-toggle", "Details", () => toggleDetails(message, view));
    view.detailsToggle.setAttribute("aria-expanded", "false");
    view.details = element("dl", "details");
    view.details.hidden = true;
    view.error = element("div", "error");
    view.error.setAttribute("role", "alert");
    meta.append(view.state, view.cut, view.continue, view.copy, view.detailsToggle, view.retry);
    root.append(view.error, meta, view.details);
    showText(message, view);
  }
  views.set(message, view);
  renderState(message, view);
  return view;
}

function button(className, label, onClick) {
  const node = element("button", className, label);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

function toggleDetails(message, view) {
  view.details.hidden = !view.details.hidden;
  view.detailsToggle.setAttribute("aria-expanded", String(!view.details.hidden));
  if (!view.details.hidden) {
    renderDetails(message, view);
    view.details.scrollIntoView({ block: "nearest" }); // opened below the fold: bring it in view
  }
}

/** The last message of a person, edited in place: `onSave(text)` sends it again, `onCancel` keeps it. */
export function editView(message, view, onSave, onCancel) {
  const form = element("form", "edit-form");
  const area = element("textarea", "edit-input");
  area.value = message.content;
  area.setAttribute("aria-label", "Edit message");
  const save = element("button", "primary", "Send");
  save.type = "submit";
  const cancel = button("", "Cancel", onCancel);
  const buttons = element("div", "edit-buttons");
  buttons.append(cancel, save);
  form.append(area, buttons);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (area.value.trim()) onSave(area.value);
  });
  area.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    } else if (event.key === "Escape") {
      onCancel();
    }
  });
  view.bubble.replaceChildren(form);
  view.root.classList.add("editing");
  area.focus();
  area.setSelectionRange(area.value.length, area.value.length);
}

/** Bring a reply's text on screen: the new part while it streams, all of it once it has ended. */
export function showText(message, view) {
  if (IN_FLIGHT.has(message.status)) {
    view.markdown.update(message.content);
    view.finished = false;
  } else if (!view.finished || view.shown !== message.content) {
    view.markdown.finish(message.content);
    decorate(view.body);
    view.finished = true;
  }
  view.shown = message.content;
  view.bubble.hidden = !message.content && !IN_FLIGHT.has(message.status);
}

export function stateText(message) {
  const status = message.status || "complete";
  if (IN_FLIGHT.has(status) && message.queuedAhead > 0) return `Waiting for the model (${message.queuedAhead} ahead)`;
  if (IN_FLIGHT.has(status) && message.tab && streamingElsewhere(message)) return "Generating in another tab…";
  return STATUS_TEXT[status] ?? "";
}

export function renderState(message, view) {
  if (message.role !== "assistant") return;
  const status = message.status || "complete";
  const inFlight = IN_FLIGHT.has(status);
  view.root.dataset.status = status;
  view.root.setAttribute("aria-busy", String(inFlight));
  view.cursor.hidden = !inFlight;
  view.state.textContent = stateText(message);
  const failed = (status === "error" || status === "interrupted") && message.error;
  const cut = status === "complete" && message.finishReason === "length";
  view.cut.hidden = !cut;
  view.continue.hidden = !cut;
  view.copy.hidden = inFlight || !message.content;
  view.retry.textContent = status === "complete" ? "Regenerate" : "Retry";
  view.retry.hidden = inFlight || (failed && message.error.retryable === false);
  view.detailsToggle.hidden = inFlight;
  view.error.hidden = !failed;
  view.error.textContent = failed ? `${message.error.message} ${message.error.action}` : "";
  if (inFlight) view.bubble.hidden = false;
  else showText(message, view); // the whole reply, once, and its bubble hidden when it has no text
  if (!view.details.hidden) renderDetails(message, view);
}

function renderDetails(message, view) {
  const rows = [
    ["Model", message.model],
    ["Finish", message.finishReason],
    ["Prompt tokens", message.usage?.prompt_tokens],
    ["Completion tokens", message.usage?.completion_tokens],
    ["First token", message.ttftMs !== undefined ? `${message.ttftMs} ms` : undefined],
    ["Duration", message.durationMs !== undefined ? `${Math.round(message.durationMs)} ms` : undefined],
    ["Stream", message.streamId],
    ["Error", message.error?.code],
    ["Service said", message.error?.said],
    ["Why", message.error?.detail],
    ["Correlation id", message.error?.correlationId],
  ].filter(([, value]) => value !== undefined && value !== null && value !== "");
  view.details.replaceChildren(...rows.flatMap(([name, value]) => [element("dt", "", name), element("dd", "", String(value))]));
}

/** The welcome state of an empty conversation: what this is, the model, example prompts. */
export function welcomeView(model, onPick) {
  const root = element("section", "welcome");
  root.setAttribute("aria-label", "Welcome");
  root.append(element("h2", "", "Ask ChatWait anything"));
  const line = element("p", "", "Replies stream in as they are written and survive a dropped connection.");
  root.append(line, element("p", "welcome-model", model ? `Model: ${model}` : ""));
  const list = element("div", "examples");
  for (const example of EXAMPLES) {
    const button = element("button", "example", example);
    button.type = "button";
    button.addEventListener("click", () => onPick(example));
    list.append(button);
  }
  root.append(list);
  return root;
}

const FIELD_NAMES = { message: "Your message", history: "The earlier messages", system: "The instructions" };

/** What the service found wrong with each field of a refused turn, in the words it used, at most 5. */
export function fieldProblems(fields, limit = 5) {
  const found = [];
  const walk = (value, name) => {
    if (found.length >= limit) return;
    if (typeof value === "string") found.push(`${FIELD_NAMES[name] || name}: ${value}`);
    else if (Array.isArray(value)) value.forEach((item) => walk(item, name));
    else if (value && typeof value === "object") Object.values(value).forEach((item) => walk(item, name));
  };
  for (const [name, value] of Object.entries(fields || {})) walk(value, name);
  return found;
}

/** The notice above the composer for a turn that was not sent: what happened, what to do, the
 * buttons that help (`actions`: [label, handler]), and the technical detail under Details. */
export function noticeView(error, actions, onClose) {
  const root = element("div", "notice");
  root.setAttribute("role", "alert");
  const text = element("p", "notice-text");
  const [headline, todo] = friendly(error.errorCode, error.message, error.action, error.retryAfter);
  text.append(element("strong", "", headline), " ", todo);
  const problems = fieldProblems(error.fields);
  if (problems.length) text.append(element("ul", "notice-fields"));
  for (const problem of problems) text.lastChild.append(element("li", "", problem));
  const buttons = element("div", "notice-buttons");
  for (const [label, handler, primary] of actions) {
    const button = element("button", primary ? "primary" : "", label);
    button.type = "button";
    button.addEventListener("click", handler);
    buttons.append(button);
  }
  const toggle = element("button", "details-toggle", "Details");
  toggle.type = "button";
  const details = element("dl", "details");
  details.hidden = true;
  const rows = [
    ["Error", error.errorCode],
    ["Service said", `${error.message} ${error.action}`],
    ["Why", error.detail],
    ["HTTP status", error.status || undefined],
    ["Correlation id", error.correlationId],
  ].filter(([, value]) => value !== undefined && value !== null && value !== "");
  details.append(...rows.flatMap(([name, value]) => [element("dt", "", name), element("dd", "", String(value))]));
  toggle.addEventListener("click", () => {
    details.hidden = !details.hidden;
    if (!details.hidden) details.scrollIntoView({block: "nearest"});
  });
  const close = element("button", "notice-close", "×");
  close.type = "button";
  close.setAttribute("aria-label", "Dismiss");
  close.addEventListener("click", onClose);
  buttons.append(toggle);
  root.append(close, text, buttons, details);
  return root;
}

// The chat page: conversations on the left, the active one on the right, a composer below.
//
// Text from the model or the person is only ever inserted as text (textContent / Text
// nodes), never as HTML. One reply streams at a time; the composer is disabled meanwhile.

import { apiKey, readiness, setApiKey } from "./api.js";
import { ReplyStream } from "./reply.js";
import { ConversationStore, IN_FLIGHT, historyOf, titleFrom } from "./store.js";

const $ = (selector) => document.querySelector(selector);
const ui = {
  sidebar: $("#sidebar"),
  list: $("#conversation-list"),
  newConversation: $("#new-conversation"),
  toggleSidebar: $("#toggle-sidebar"),
  title: $("#conversation-title"),
  model: $("#model"),
  messages: $("#messages"),
  jump: $("#jump"),
  status: $("#status"),
  form: $("#composer"),
  input: $("#input"),
  send: $("#send"),
  stop: $("#stop"),
  keyButton: $("#key-button"),
  keyDialog: $("#key-dialog"),
  keyForm: $("#key-form"),
  keyInput: $("#key-input"),
  keyCancel: $("#key-cancel"),
};

const STATUS_TEXT = {
  streaming: "Generating…",
  reconnecting: "Reconnecting…",
  complete: "",
  stopped: "Stopped",
  error: "Error",
  interrupted: "Interrupted",
};
const ANNOUNCEMENTS = {
  streaming: "Generating a reply.",
  reconnecting: "Connection lost; reconnecting.",
  complete: "Reply complete.",
  stopped: "Reply stopped.",
  error: "The reply failed.",
  interrupted: "The reply was interrupted.",
};

const store = new ConversationStore();
let current = null; // {reply: ReplyStream, conversation, message, view} while a reply streams
let following = true; // keep the newest text in view unless the person scrolled up
let pinnedTop = 0; // where following last put the scroll position
let saveTimer = null;

// ---- rendering -------------------------------------------------------------------------

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderSidebar() {
  ui.list.replaceChildren(
    ...store.conversations.map((conversation) => {
      const item = element("li", conversation.id === store.state.activeId ? "active" : "");
      const open = element("button", "open", conversation.title);
      open.addEventListener("click", () => switchTo(conversation.id));
      const remove = element("button", "delete", "×");
      remove.setAttribute("aria-label", `Delete conversation “${conversation.title}”`);
      remove.addEventListener("click", () => deleteConversation(conversation.id));
      item.append(open, remove);
      return item;
    }),
  );
}

function renderConversation() {
  const conversation = store.active;
  ui.title.textContent = conversation ? conversation.title : "ChatWait";
  ui.messages.replaceChildren(...(conversation ? conversation.messages.map((message) => messageView(message).root) : []));
  scrollToNewest();
  following = true;
  ui.jump.hidden = true;
}

const views = new WeakMap();

function viewOf(message) {
  return views.get(message);
}

/** The DOM of one message; assistant messages also get state, details and retry. */
function messageView(message) {
  const root = element("article", `message ${message.role}`);
  const bubble = element("div", "bubble");
  const text = document.createTextNode(message.content);
  bubble.append(text);
  root.append(bubble);
  const view = { root, bubble, text };
  if (message.role === "assistant") {
    view.cursor = element("span", "cursor");
    view.cursor.setAttribute("aria-hidden", "true");
    bubble.append(view.cursor);
    const meta = element("div", "meta");
    view.state = element("span", "state");
    view.retry = element("button", "retry", "Retry");
    view.retry.addEventListener("click", () => retry(message));
    view.detailsToggle = element("button", "details-toggle", "Details");
    view.detailsToggle.setAttribute("aria-expanded", "false");
    view.details = element("dl", "details");
    view.details.hidden = true;
    view.detailsToggle.addEventListener("click", () => {
      view.details.hidden = !view.details.hidden;
      view.detailsToggle.setAttribute("aria-expanded", String(!view.details.hidden));
      if (!view.details.hidden) renderDetails(message, view);
    });
    view.error = element("div", "error");
    view.error.setAttribute("role", "alert");
    meta.append(view.state, view.detailsToggle, view.retry);
    root.append(view.error, meta, view.details);
  }
  views.set(message, view);
  renderState(message, view);
  return view;
}

function renderState(message, view) {
  if (message.role !== "assistant") return;
  const status = message.status || "complete";
  view.root.dataset.status = status;
  view.root.setAttribute("aria-busy", String(IN_FLIGHT.has(status)));
  view.cursor.hidden = !IN_FLIGHT.has(status);
  view.state.textContent = STATUS_TEXT[status] ?? "";
  view.retry.hidden = IN_FLIGHT.has(status) || status === "complete";
  view.detailsToggle.hidden = IN_FLIGHT.has(status);
  const failed = (status === "error" || status === "interrupted") && message.error;
  view.error.hidden = !failed;
  view.error.textContent = failed ? `${message.error.message} ${message.error.action}` : "";
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
  ].filter(([, value]) => value !== undefined && value !== null);
  view.details.replaceChildren(...rows.flatMap(([name, value]) => [element("dt", "", name), element("dd", "", String(value))]));
}

function renderComposer() {
  const busy = current !== null;
  ui.input.disabled = busy;
  ui.send.disabled = busy;
  ui.send.hidden = busy;
  ui.stop.hidden = !busy;
}

function announce(status) {
  ui.status.textContent = ANNOUNCEMENTS[status] ?? "";
}

// ---- scrolling ---------------------------------------------------------------------------

function nearBottom() {
  return ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 48;
}

function scrollToNewest() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
  pinnedTop = ui.messages.scrollTop;
}

function keepNewestInView() {
  // Scrolled up since the last pin, even if its scroll event is not dispatched yet: let go.
  if (following && ui.messages.scrollTop < pinnedTop - 4) following = false;
  if (following) scrollToNewest();
  else ui.jump.hidden = false;
}

ui.messages.addEventListener("scroll", () => {
  following = nearBottom();
  if (following) {
    pinnedTop = ui.messages.scrollTop;
    ui.jump.hidden = true;
  }
});

ui.jump.addEventListener("click", () => {
  following = true;
  ui.jump.hidden = true;
  scrollToNewest();
});

// ---- saving ------------------------------------------------------------------------------

function saveSoon() {
  if (saveTimer === null) {
    saveTimer = setTimeout(() => {
      saveTimer = null;
      store.save();
    }, 250);
  }
}

function saveNow() {
  clearTimeout(saveTimer);
  saveTimer = null;
  store.save();
}

window.addEventListener("pagehide", saveNow);

// ---- replies -----------------------------------------------------------------------------

function follow(conversation, message, run) {
  const reply = new ReplyStream(message, {
    onText(delta) {
      const view = viewOf(message);
      if (view?.root.isConnected) {
        view.text.appendData(delta);
        keepNewestInView();
      }
      saveSoon();
    },
    onChange() {
      const view = viewOf(message);
      if (view) renderState(message, view);
      announce(message.status);
      saveNow();
    },
    onKeyNeeded() {
      askForKey(message);
    },
  });
  current = { reply, conversation, message };
  renderComposer();
  announce(message.status);
  run(reply).finally(() => {
    if (current?.reply === reply) current = null;
    renderComposer();
    saveNow();
    if (store.active === conversation) ui.input.focus();
  });
}

function send(text) {
  let conversation = store.active || store.create();
  const history = historyOf(conversation.messages);
  if (conversation.messages.length === 0) conversation.title = titleFrom(text);
  const user = { role: "user", content: text, createdAt: Date.now() };
  const assistant = { role: "assistant", content: "", status: "streaming", streamId: null, lastEventId: null, createdAt: Date.now() };
  conversation.messages.push(user, assistant);
  saveNow();
  renderSidebar();
  ui.title.textContent = conversation.title;
  ui.messages.append(messageView(user).root, messageView(assistant).root);
  following = true;
  keepNewestInView();
  follow(conversation, assistant, (reply) => reply.start({ message: text, history }));
}

/** Send the same turn again in place of a failed or stopped reply. */
function retry(message) {
  if (current) return;
  const conversation = store.active;
  const index = conversation.messages.indexOf(message);
  const user = conversation.messages[index - 1];
  if (index < 1 || user.role !== "user") return;
  const history = historyOf(conversation.messages.slice(0, index - 1));
  Object.assign(message, { content: "", status: "streaming", streamId: null, lastEventId: null, error: null });
  for (const key of ["usage", "durationMs", "finishReason", "ttftMs", "model"]) delete message[key];
  const view = viewOf(message);
  view.text.data = "";
  renderState(message, view);
  follow(conversation, message, (reply) => reply.start({ message: user.content, history }));
}

/** A reply that was streaming when the page was left: resume it, or say why not. */
function resumeInterrupted() {
  for (const conversation of store.conversations) {
    for (const message of conversation.messages) {
      if (message.role !== "assistant" || !IN_FLIGHT.has(message.status)) continue;
      if (message.streamId && current === null) {
        follow(conversation, message, (reply) => reply.resume());
      } else {
        message.status = "interrupted";
        message.error = { message: "The page was closed before this reply finished.", action: "Retry the message." };
      }
    }
  }
  saveNow();
}

// ---- the client key ------------------------------------------------------------------------

let keyFor = null; // the reply refused for want of a key: sent again once one is given

/** Ask for the client key (the service answered 401); then pick up the refused reply. */
function askForKey(message = null) {
  keyFor = message;
  ui.keyButton.hidden = false;
  ui.keyInput.value = apiKey();
  if (!ui.keyDialog.open) ui.keyDialog.showModal();
  ui.keyInput.focus();
}

ui.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  setApiKey(ui.keyInput.value.trim());
  ui.keyDialog.close();
  const message = keyFor;
  keyFor = null;
  if (!message || current) return;
  if (message.status === "interrupted" && message.streamId) {
    const conversation = store.conversations.find((candidate) => candidate.messages.includes(message));
    if (conversation) follow(conversation, message, (reply) => reply.resume());
  } else if (message.status === "error") {
    retry(message);
  }
});
ui.keyCancel.addEventListener("click", () => ui.keyDialog.close());
ui.keyButton.addEventListener("click", () => askForKey());

// ---- conversations -------------------------------------------------------------------------

function switchTo(id) {
  store.select(id);
  renderSidebar();
  renderConversation();
  document.body.classList.remove("sidebar-open");
  ui.toggleSidebar.setAttribute("aria-expanded", "false");
}

function deleteConversation(id) {
  if (current?.conversation.id === id) current.reply.stop();
  store.remove(id);
  if (!store.active) store.create();
  renderSidebar();
  renderConversation();
}

ui.newConversation.addEventListener("click", () => {
  const empty = store.conversations.find((conversation) => conversation.messages.length === 0);
  if (empty) store.select(empty.id);
  else store.create();
  switchTo(store.state.activeId);
  ui.input.focus();
});

ui.toggleSidebar.addEventListener("click", () => {
  const open = document.body.classList.toggle("sidebar-open");
  ui.toggleSidebar.setAttribute("aria-expanded", String(open));
});

// ---- composer ------------------------------------------------------------------------------

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.input.value;
  if (current || !text.trim()) return;
  ui.input.value = "";
  autoGrow();
  send(text);
});

ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.form.requestSubmit();
  }
});

function autoGrow() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 200)}px`;
}

ui.input.addEventListener("input", autoGrow);
ui.stop.addEventListener("click", () => current?.reply.stop());

// Another tab changed the conversations: show the new list (this tab's reply keeps its own).
window.addEventListener("storage", (event) => {
  if (event.key && event.key.startsWith("chatwait.") && current === null) {
    store.state = store.read();
    renderSidebar();
    renderConversation();
  }
});

// ---- start ---------------------------------------------------------------------------------

if (!store.active) {
  if (store.conversations.length) store.select(store.conversations[0].id);
  else store.create();
}
resumeInterrupted();
renderSidebar();
renderConversation();
renderComposer();
readiness()
  .then((ready) => {
    ui.model.textContent = ready.model;
    ui.model.title = `Provider: ${ready.provider}`;
    ui.keyButton.hidden = !ready.client_keys;
  })
  .catch(() => {
    ui.model.textContent = "service not ready";
  });
document.body.dataset.ready = "true";

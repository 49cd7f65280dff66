// The chat page: conversations on the left, the active one on the right, a composer below.
//
// One reply streams at a time per tab; its text reaches the screen once per animation frame.
// A turn the service refuses is taken back: its text returns to the composer and a notice says
// why and what to do. Several tabs share the conversations (store.js); each has its own active one.

import { listModels, readiness } from "./api.js";
import { friendly } from "./friendly.js";
import { KeyDialog } from "./keydialog.js";
import { ReplyStream } from "./reply.js";
import { FollowScroll } from "./scroll.js";
import { BEAT_MS, ConversationStore, IN_FLIGHT, TAB_ID, dropOldest, historyOf, newId, streamingElsewhere, titleOf } from "./store.js";
import { editView, element, messageView, noticeView, renderState, showText, stateText, viewOf, welcomeView } from "./views.js";

const $ = (selector) => document.querySelector(selector);
const ui = {
  list: $("#conversation-list"),
  newConversation: $("#new-conversation"),
  toggleSidebar: $("#toggle-sidebar"),
  title: $("#conversation-title"),
  model: $("#model"),
  picker: $("#model-picker"),
  messages: $("#messages"),
  jump: $("#jump"),
  status: $("#status"),
  notice: $("#notice"),
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

const ANNOUNCEMENTS = {
  streaming: "Generating a reply.",
  reconnecting: "Connection lost; reconnecting.",
  complete: "Reply complete.",
  stopped: "Reply stopped.",
  error: "The reply failed.",
  interrupted: "The reply was interrupted.",
};

const store = new ConversationStore();
let current = null; // {reply, conversation, message} while this tab streams a reply
let modelName = ""; // the service's default model
let models = []; // the models a person may pick (GET /v1/models)
// Sent as the reply's last user turn when a person asks a reply cut at its length limit to go on.
const CONTINUE_PROMPT = "Continue your previous reply exactly where it stopped, without repeating any of it.";
const unsaved = new Set();
let saveTimer = null;
const unshown = new Set();
let frame = 0;

const scroll = new FollowScroll(ui.messages, ui.jump);
const keys = new KeyDialog({
  dialog: ui.keyDialog, form: ui.keyForm, input: ui.keyInput, cancel: ui.keyCancel, button: ui.keyButton,
  onKey: () => loadModels(),
});

const visible = (messages) => messages.filter((message) => !message.deleted);

// ---- rendering -------------------------------------------------------------------------

function renderSidebar() {
  ui.list.replaceChildren(
    ...store.conversations.map((conversation) => {
      const item = element("li", conversation.id === store.activeId ? "active" : "");
      const busy = conversation.messages.some((message) => IN_FLIGHT.has(message.status) && !message.deleted);
      const open = element("button", "open", conversation.title);
      open.addEventListener("click", () => switchTo(conversation.id));
      if (busy) open.append(element("span", "busy", " ●"));
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
  const messages = conversation ? conversation.messages : [];
  const nodes = [];
  messages.forEach((message, index) => {
    if (index === conversation.contextStart && index > 0) {
      nodes.push(element("p", "context-start", "The messages above are no longer sent to the model."));
    }
    if (message.deleted) return;
    const { root } = messageView(message, { retry, continueReply, edit: editLast });
    if (index < (conversation.contextStart || 0)) root.classList.add("out-of-context");
    nodes.push(root);
  });
  if (visible(messages).length === 0) nodes.push(welcomeView(modelName, (text) => submit(text)));
  ui.messages.replaceChildren(...nodes);
  scroll.restart();
  renderComposer();
  renderPicker();
}

/** Mark the last turn (its person's message may be edited; its reply regenerated or continued). */
function markLastTurn() {
  const shown = visible(store.active?.messages ?? []);
  const last = new Set([shown.findLast((m) => m.role === "user"), shown.findLast((m) => m.role === "assistant")]);
  for (const message of shown) viewOf(message)?.root.classList.toggle("last-turn", last.has(message));
}

function renderComposer() {
  const elsewhere = store.active?.messages.some((message) => streamingElsewhere(message)) ?? false;
  const busy = current !== null || elsewhere;
  ui.input.disabled = busy;
  ui.send.disabled = busy;
  ui.send.hidden = current !== null;
  ui.stop.hidden = current === null;
  ui.input.placeholder = elsewhere ? "This conversation is answering in another tab…" : "Message ChatWait…";
  ui.picker.disabled = busy;
  document.body.classList.toggle("busy", busy);
  markLastTurn();
}

function announce(message) {
  ui.status.textContent = message.queuedAhead > 0 ? `${stateText(message)}.` : (ANNOUNCEMENTS[message.status] ?? "");
}

/** Show new reply text at the next animation frame, all of it in one go. */
function textChanged(message) {
  unshown.add(message);
  if (!frame) frame = requestAnimationFrame(showUnshown);
}

function showUnshown() {
  frame = 0;
  for (const message of unshown) {
    const view = viewOf(message);
    if (view?.root.isConnected) showText(message, view);
  }
  unshown.clear();
  scroll.keep();
}

// ---- saving ------------------------------------------------------------------------------

function touch(message) {
  message.updatedAt = Date.now();
}

function saveSoon(conversation) {
  unsaved.add(conversation);
  if (saveTimer === null) saveTimer = setTimeout(saveNow, 250);
}

function saveNow(conversation = null) {
  if (conversation) unsaved.add(conversation);
  clearTimeout(saveTimer);
  saveTimer = null;
  for (const pending of unsaved) store.save(pending);
  unsaved.clear();
}

window.addEventListener("pagehide", () => saveNow());

// Another tab saved or deleted a conversation: take its version in (this tab's own newer work stays).
window.addEventListener("storage", (event) => {
  const id = store.received(event);
  if (id === null) return;
  if (!store.active) {
    store.select(store.conversations[0]?.id ?? store.create().id);
    renderConversation();
  } else if (id === store.activeId) {
    refreshActive();
  }
  renderSidebar();
});

/** Bring the active conversation's views up to date after a merge, rebuilding only when needed. */
function refreshActive() {
  const messages = store.active.messages;
  const shown = messages.every((message) => message.deleted || viewOf(message)?.root.isConnected);
  const removed = [...ui.messages.querySelectorAll(".message")].length !== visible(messages).length;
  if (!shown || removed) return renderConversation();
  for (const message of messages) {
    const view = viewOf(message);
    if (message.deleted || !view || message.role !== "assistant") continue;
    if (view.shown !== message.content) textChanged(message);
    renderState(message, view);
  }
  renderComposer();
}

// ---- replies -----------------------------------------------------------------------------

function follow(conversation, message, run, sentText = null) {
  Object.assign(message, { tab: TAB_ID, beat: Date.now() });
  const reply = new ReplyStream(message, {
    onText() {
      message.beat = Date.now();
      touch(message);
      textChanged(message);
      saveSoon(conversation);
    },
    onChange() {
      touch(message);
      const view = viewOf(message);
      if (view) renderState(message, view);
      announce(message);
      saveNow(conversation);
      if (!IN_FLIGHT.has(message.status)) renderSidebar();
    },
    onKeyNeeded() {
      askForKey(message);
    },
  });
  current = { reply, conversation, message };
  const beating = setInterval(() => {
    message.beat = Date.now();
    touch(message);
    saveSoon(conversation);
  }, BEAT_MS);
  renderComposer();
  renderSidebar();
  announce(message);
  run(reply).finally(() => {
    clearInterval(beating);
    if (current?.reply === reply) current = null;
    if (reply.refusal && sentText !== null) refused(conversation, message, sentText, reply.refusal);
    else if (reply.refusal) refusedAgain(message, reply.refusal);
    renderComposer();
    saveNow(conversation);
    renderSidebar();
    if (store.active === conversation) ui.input.focus();
  });
}

/** Send a turn: the person's text, with the conversation's history. */
function send(text) {
  hideNotice();
  const conversation = store.active || store.create();
  const history = historyOf(conversation.messages, conversation.contextStart || 0);
  const model = modelOf(conversation);
  const now = Date.now();
  const user = { id: newId(), role: "user", content: text, createdAt: now, updatedAt: now };
  const assistant = {
    id: newId(), role: "assistant", content: "", status: "streaming", streamId: null, lastEventId: null,
    createdAt: now + 1, updatedAt: now, tab: TAB_ID, beat: now,
  };
  conversation.messages.push(user, assistant);
  conversation.title = titleOf(conversation.messages);
  saveNow(conversation);
  renderConversation();
  renderSidebar();
  follow(conversation, assistant, (reply) => reply.start({ message: text, history, ...model }), text);
}

/** The model a conversation asks for: `{model}` when the person picked one, else nothing (the default). */
function modelOf(conversation) {
  const picked = conversation.model;
  return picked && models.includes(picked) && picked !== modelName ? { model: picked } : {};
}

/** The service refused the turn (or it could not be sent): take it back, say why, offer what helps. */
function refused(conversation, assistant, text, error) {
  const index = conversation.messages.indexOf(assistant);
  for (const message of conversation.messages.slice(Math.max(0, index - 1), index + 1)) {
    Object.assign(message, { deleted: true, status: "complete", content: message.role === "user" ? "" : message.content });
    touch(message);
  }
  conversation.title = titleOf(conversation.messages);
  saveNow(conversation);
  renderSidebar();
  if (store.active === conversation) {
    renderConversation();
    if (!ui.input.value.trim()) {
      ui.input.value = text;
      autoGrow();
    }
  }
  const actions = [];
  if (error.status === 401) {
    keys.ask(() => submit());
    actions.push(["Enter a key", () => keys.ask(() => submit()), true]);
  } else if (error.errorCode === "input_too_long") {
    if (error.dropHistoryMessages) {
      const count = error.dropHistoryMessages;
      actions.push([`Leave out the ${count} oldest message${count > 1 ? "s" : ""} and send`, () => leaveOut(conversation, count), true]);
    }
    actions.push(["Continue in a new conversation", () => { newConversation(); submit(); }]);
  } else if (error.retryable) {
    actions.push(["Try again", () => submit(), true]);
  }
  showNotice(error, actions);
}

/** A retried turn was refused: the reply says why, in place. */
function refusedAgain(message, error) {
  const [headline, todo] = friendly(error.errorCode, error.message, error.action, error.retryAfter);
  message.status = "error";
  message.error = {
    message: headline, action: todo, code: error.errorCode, said: `${error.message} ${error.action}`,
    detail: error.detail, retryable: error.retryable, correlationId: error.correlationId,
  };
  touch(message);
  const view = viewOf(message);
  if (view) renderState(message, view);
  if (error.status === 401) askForKey(message);
}

/** Stop sending the oldest messages of a conversation (they stay on screen), then send the composer's text. */
function leaveOut(conversation, count) {
  conversation.contextStart = dropOldest(conversation.messages, conversation.contextStart || 0, count);
  conversation.messages.forEach(touch);
  saveNow(conversation);
  renderConversation();
  submit();
}

function showNotice(error, actions) {
  ui.notice.replaceChildren(noticeView(error, actions, hideNotice));
  ui.notice.hidden = false;
}

function hideNotice() {
  ui.notice.hidden = true;
  ui.notice.replaceChildren();
}

/** Send the same turn again in place of a reply: a failed or stopped one, or the last (Regenerate). */
function retry(message) {
  if (current) return;
  const conversation = store.active;
  const index = conversation.messages.indexOf(message);
  const user = conversation.messages[index - 1];
  if (index < 1 || user.role !== "user") return;
  const history = historyOf(conversation.messages.slice(0, index - 1), conversation.contextStart || 0);
  restart(message, "");
  follow(conversation, message, (reply) => reply.start({ message: user.content, history, ...modelOf(conversation) }));
}

/** A reply cut at its length limit goes on in place: the model is sent the reply so far and asked
 * to continue it; what it writes is appended, and the conversation keeps one reply. */
function continueReply(message) {
  if (current) return;
  const conversation = store.active;
  const index = conversation.messages.indexOf(message);
  const history = historyOf(conversation.messages.slice(0, index + 1), conversation.contextStart || 0);
  restart(message, message.content);
  message.joining = true; // its first words join the cut text at a word boundary (reply.js)
  follow(conversation, message, (reply) => reply.start({ message: CONTINUE_PROMPT, history, ...modelOf(conversation) }));
}

/** A reply about to stream again, holding `content` (empty: regenerated; its text: continued). */
function restart(message, content) {
  Object.assign(message, { content, status: "streaming", streamId: null, lastEventId: null, error: null });
  for (const key of ["usage", "durationMs", "finishReason", "ttftMs", "model", "queuedAhead", "joining"]) delete message[key];
  touch(message);
  const view = viewOf(message);
  view.markdown.reset();
  renderState(message, view);
}

/** Edit the last message of the person in place; sending it regenerates the reply after it. */
function editLast(user) {
  const conversation = store.active;
  const reply = conversation.messages.slice(conversation.messages.indexOf(user) + 1).find((m) => !m.deleted);
  if (current || !reply) return;
  editView(user, viewOf(user), (text) => {
    user.content = text;
    touch(user);
    conversation.title = titleOf(conversation.messages);
    saveNow(conversation);
    renderConversation();
    renderSidebar();
    retry(reply);
  }, () => renderConversation());
}

/** Replies left in flight: resume this tab's own (a reload) and those of tabs that have gone. */
function pickUpOrphans() {
  for (const conversation of store.conversations) {
    for (const message of conversation.messages) {
      if (message.role !== "assistant" || message.deleted || !IN_FLIGHT.has(message.status) || streamingElsewhere(message)) continue;
      if (current?.message === message) continue;
      if (message.streamId) {
        if (current === null) follow(conversation, message, (reply) => reply.resume());
      } else {
        message.status = "interrupted";
        message.error = { message: "The page was closed before this reply finished.", action: "Retry the message.", retryable: true };
        touch(message);
        saveNow(conversation);
        const view = viewOf(message);
        if (view) renderState(message, view);
      }
    }
  }
}

// ---- the client key ------------------------------------------------------------------------

/** Ask for the client key (the service answered 401), then pick up the refused reply. */
function askForKey(message) {
  keys.ask(() => {
    if (current) return;
    if (message.status === "interrupted" && message.streamId) {
      const conversation = store.conversations.find((candidate) => candidate.messages.includes(message));
      if (conversation) follow(conversation, message, (reply) => reply.resume());
    } else if (message.status === "error") {
      retry(message);
    }
  });
}

// ---- conversations -------------------------------------------------------------------------

function switchTo(id) {
  store.select(id);
  hideNotice();
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

function newConversation() {
  const empty = store.conversations.find((conversation) => visible(conversation.messages).length === 0);
  switchTo(empty ? empty.id : store.create().id);
}

ui.newConversation.addEventListener("click", () => {
  newConversation();
  ui.input.focus();
});

ui.toggleSidebar.addEventListener("click", () => {
  const open = document.body.classList.toggle("sidebar-open");
  ui.toggleSidebar.setAttribute("aria-expanded", String(open));
});

// ---- composer ------------------------------------------------------------------------------

/** Send `text`, or the composer's text (which is then cleared). */
function submit(text = null) {
  const sending = text ?? ui.input.value;
  if (current || !sending.trim() || ui.input.disabled) return;
  if (text === null) {
    ui.input.value = "";
    autoGrow();
  }
  send(sending);
}

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  submit();
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

// ---- the model -----------------------------------------------------------------------------

/** The picker shows the active conversation's model (when the service offers more than one). */
function renderPicker() {
  if (models.length < 2) return;
  const picked = store.active?.model;
  ui.picker.value = picked && models.includes(picked) ? picked : modelName || models[0];
}

/** Tokens as a person reads them: 128k, 1M. */
function tokens(count) {
  if (count >= 1_000_000) return `${+(count / 1_000_000).toFixed(1)}M`;
  return count >= 1000 ? `${Math.round(count / 1000)}k` : String(count);
}

/** What a model is, in a line: its context window and output limit, what it reads, what it does. */
function describe(model) {
  const said = [];
  if (model.context_window) said.push(`${tokens(model.context_window)} context`);
  if (model.max_output_tokens) said.push(`${tokens(model.max_output_tokens)} out`);
  const reads = (model.input_modalities || []).filter((kind) => kind !== "text");
  if (reads.length) said.push(reads.join(", "));
  if (model.tools) said.push("tools");
  if (model.reasoning) said.push("reasoning");
  return said.join(" · ");
}

function showModels(offered) {
  models = offered.map((model) => model.id);
  const own = offered.find((model) => model.id === modelName);
  if (own) ui.model.title = describe(own);
  if (models.length < 2) return;
  const options = offered.map((model) => {
    const described = describe(model);
    const option = element("option", "", described ? `${model.id} — ${described}` : model.id);
    return Object.assign(option, { value: model.id, title: described });
  });
  ui.picker.replaceChildren(...options);
  ui.picker.hidden = false;
  ui.model.hidden = true;
  renderPicker();
}

ui.picker.addEventListener("change", () => {
  const conversation = store.active || store.create();
  conversation.model = ui.picker.value;
  ui.model.textContent = ui.picker.value;
  saveNow(conversation);
});
ui.stop.addEventListener("click", () => current?.reply.stop());

// ---- start ---------------------------------------------------------------------------------

if (!store.active) store.select(store.conversations[0]?.id ?? store.create().id);
pickUpOrphans();
renderSidebar();
renderConversation();
setInterval(() => {
  pickUpOrphans(); // a tab that streamed a reply has gone: this one takes it over
  if (store.active) refreshActive();
}, BEAT_MS * 2);
/** The models the service offers; without a key yet (401), asked again once one is given. */
function loadModels() {
  listModels()
    .then(showModels)
    .catch(() => {}); // no list: the default model answers
}

loadModels();
readiness()
  .then((ready) => {
    modelName = ready.model;
    ui.model.textContent = ready.model;
    ui.model.title = `Provider: ${ready.provider}`;
    ui.keyButton.hidden = !ready.client_keys;
    const welcome = ui.messages.querySelector(".welcome-model");
    if (welcome) welcome.textContent = `Model: ${ready.model}`;
    renderPicker(); // the list may have come first
  })
  .catch(() => {
    ui.model.textContent = "service not ready";
  });
document.body.dataset.ready = "true";

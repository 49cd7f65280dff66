// Conversations kept in the browser's localStorage: a list, the active one, their messages.
//
// A message is {role, content, status, ...}. Assistant messages also keep what a reload
// needs to resume them (streamId, lastEventId) and what the details panel shows.
// Statuses: streaming, reconnecting (in flight); complete, stopped, error, interrupted.

const KEY = "chatwait.conversations.v1";
export const IN_FLIGHT = new Set(["streaming", "reconnecting"]);

function newId() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

export class ConversationStore {
  constructor(storage = globalThis.localStorage) {
    this.storage = storage;
    this.state = this.read();
  }

  read() {
    try {
      const state = JSON.parse(this.storage.getItem(KEY) || "null");
      if (state && Array.isArray(state.conversations)) return state;
    } catch {
      // unreadable (edited by hand, or another version): start afresh rather than break the page
    }
    return { conversations: [], activeId: null };
  }

  /** Write everything; false when the browser refuses (storage full or disabled). */
  save() {
    try {
      this.storage.setItem(KEY, JSON.stringify(this.state));
      return true;
    } catch {
      return false;
    }
  }

  get conversations() {
    return this.state.conversations;
  }

  get active() {
    return this.find(this.state.activeId) || null;
  }

  find(id) {
    return this.state.conversations.find((conversation) => conversation.id === id);
  }

  create() {
    const conversation = { id: newId(), title: "New conversation", createdAt: Date.now(), messages: [] };
    this.state.conversations.unshift(conversation);
    this.state.activeId = conversation.id;
    this.save();
    return conversation;
  }

  select(id) {
    if (this.find(id)) {
      this.state.activeId = id;
      this.save();
    }
  }

  remove(id) {
    this.state.conversations = this.state.conversations.filter((conversation) => conversation.id !== id);
    if (this.state.activeId === id) this.state.activeId = this.state.conversations[0]?.id ?? null;
    this.save();
  }
}

/** The prior turns to send as `history`: every message with text, oldest first. */
export function historyOf(messages) {
  return messages.filter((message) => message.content).map(({ role, content }) => ({ role, content }));
}

/** A conversation's title: the start of its first message. */
export function titleFrom(text) {
  const line = text.trim().split("\n")[0];
  return line.length > 48 ? `${line.slice(0, 47)}…` : line || "New conversation";
}

// Conversations kept in the browser's localStorage, one item per conversation, safe in many tabs.
//
// Each tab has its own active conversation (sessionStorage). A save writes one conversation and
// first merges what another tab stored meanwhile, message by message (the newer `updatedAt`
// wins), so no tab overwrites another's newer work; the `storage` event brings other tabs'
// saves in. A message streaming in a tab carries that tab's id and a heartbeat (`beat`): other
// tabs show it as streaming there, and pick it up (resume) only once the heartbeat has stopped.
//
// A message is {id, role, content, status, createdAt, updatedAt, ...}. Assistant messages also
// keep what a reload needs to resume them (streamId, lastEventId) and what Details shows.
// Statuses: streaming, reconnecting (in flight); complete, stopped, error, interrupted.

const PREFIX = "chatwait.conversation.";
const LEGACY_KEY = "chatwait.conversations.v1";
const ACTIVE_KEY = "chatwait.active";
export const IN_FLIGHT = new Set(["streaming", "reconnecting"]);
export const BEAT_MS = 1000; // how often a streaming tab says it is still there
export const BEAT_STALE_MS = 5000; // a heartbeat older than this: the tab has gone

export function newId() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

/** This tab's id: kept across reloads of the tab (sessionStorage), so a reload resumes its own replies. */
export const TAB_ID = (() => {
  try {
    const kept = sessionStorage.getItem("chatwait.tab");
    if (kept) return kept;
    const id = newId();
    sessionStorage.setItem("chatwait.tab", id);
    return id;
  } catch {
    return newId();
  }
})();

/** Whether a message is being streamed by another tab that is still open. */
export function streamingElsewhere(message, now = Date.now()) {
  return IN_FLIGHT.has(message.status) && message.tab !== TAB_ID && now - (message.beat || 0) < BEAT_STALE_MS;
}

/** Both versions of a conversation's messages, merged: the newer version of each (a reply this tab
 * streams is never taken from another tab), in order. */
export function mergeMessages(mine, theirs) {
  const byId = new Map(mine.map((message) => [message.id, message]));
  for (const message of theirs) {
    const held = byId.get(message.id);
    if (!held) byId.set(message.id, message);
    else if (IN_FLIGHT.has(held.status) && held.tab === TAB_ID) continue; // this tab's own reply: its version only
    else if ((message.updatedAt || 0) > (held.updatedAt || 0)) Object.assign(held, message); // the page holds `held`
  }
  return [...byId.values()].sort((a, b) => a.createdAt - b.createdAt || (a.role === "user" ? -1 : 1));
}

export class ConversationStore {
  constructor(storage = globalThis.localStorage, session = globalThis.sessionStorage) {
    this.storage = storage;
    this.session = session;
    this.conversations = [];
    this.activeId = null;
    this.migrate();
    this.load();
  }

  /** Read every stored conversation, newest first. */
  load() {
    const found = [];
    for (let index = 0; index < this.storage.length; index += 1) {
      const key = this.storage.key(index);
      if (key && key.startsWith(PREFIX)) {
        const conversation = this.readItem(key);
        if (conversation) found.push(conversation);
      }
    }
    this.conversations = found.sort((a, b) => b.createdAt - a.createdAt);
    const wanted = this.sessionGet(ACTIVE_KEY);
    this.activeId = this.find(wanted) ? wanted : (this.conversations[0]?.id ?? null);
  }

  readItem(key) {
    try {
      const conversation = JSON.parse(this.storage.getItem(key) || "null");
      if (conversation && typeof conversation.id === "string" && Array.isArray(conversation.messages)) return conversation;
    } catch {
      // unreadable (edited by hand, or another version): left out rather than break the page
    }
    return null;
  }

  /** The one-item layout of earlier versions, split into one item per conversation. */
  migrate() {
    let legacy = null;
    try {
      legacy = JSON.parse(this.storage.getItem(LEGACY_KEY) || "null");
    } catch {
      legacy = null;
    }
    if (!legacy || !Array.isArray(legacy.conversations)) return;
    for (const conversation of legacy.conversations) {
      conversation.messages.forEach((message, index) => {
        message.id ??= newId();
        message.createdAt ??= (conversation.createdAt || 0) + index;
      });
      this.write(conversation);
    }
    this.storage.removeItem(LEGACY_KEY);
  }

  get active() {
    return this.find(this.activeId) || null;
  }

  find(id) {
    return this.conversations.find((conversation) => conversation.id === id);
  }

  create() {
    const now = Date.now();
    const conversation = { id: newId(), title: "New conversation", createdAt: now, updatedAt: now, messages: [] };
    this.conversations.unshift(conversation);
    this.select(conversation.id);
    return conversation;
  }

  select(id) {
    if (this.find(id)) {
      this.activeId = id;
      this.sessionSet(ACTIVE_KEY, id);
    }
  }

  remove(id) {
    this.conversations = this.conversations.filter((conversation) => conversation.id !== id);
    this.storage.removeItem(PREFIX + id);
    if (this.activeId === id) this.select(this.conversations[0]?.id ?? null);
  }

  /** Save one conversation, merged with what another tab stored meanwhile; false when the
   * browser refuses (storage full or disabled). Empty conversations are not stored. */
  save(conversation) {
    const stored = this.readItem(PREFIX + conversation.id);
    if (stored) this.adopt(conversation, stored);
    if (conversation.messages.length === 0) return true;
    return this.write(conversation);
  }

  write(conversation) {
    try {
      this.storage.setItem(PREFIX + conversation.id, JSON.stringify(conversation));
      return true;
    } catch {
      return false;
    }
  }

  /** Take another tab's version of a conversation into this one (both kept, the newer of each message). */
  adopt(conversation, stored) {
    conversation.messages = mergeMessages(conversation.messages, stored.messages);
    conversation.title = titleOf(conversation.messages);
    conversation.contextStart = Math.max(conversation.contextStart || 0, stored.contextStart || 0);
  }

  /** A `storage` event: another tab saved or deleted a conversation. Returns its id, or null
   * when the event is not about a conversation. */
  received(event) {
    if (!event.key || !event.key.startsWith(PREFIX)) return null;
    const id = event.key.slice(PREFIX.length);
    const held = this.find(id);
    const stored = event.newValue === null ? null : this.readItem(event.key);
    if (stored === null) {
      if (held) this.conversations = this.conversations.filter((conversation) => conversation !== held);
      if (this.activeId === id) this.activeId = null;
    } else if (held) {
      this.adopt(held, stored);
    } else {
      this.conversations.push(stored);
      this.conversations.sort((a, b) => b.createdAt - a.createdAt);
    }
    return id;
  }

  sessionGet(key) {
    try {
      return this.session.getItem(key);
    } catch {
      return null;
    }
  }

  sessionSet(key, value) {
    try {
      if (value === null) this.session.removeItem(key);
      else this.session.setItem(key, value);
    } catch {
      // no session storage: this tab's choice is not kept across a reload
    }
  }
}

/** The prior turns to send as `history`: every message with text from `contextStart` on, oldest first. */
export function historyOf(messages, contextStart = 0) {
  return messages
    .slice(contextStart)
    .filter((message) => message.content && !message.deleted)
    .map(({ role, content }) => ({ role, content }));
}

/** Where the context starts once the `count` oldest history messages (from `contextStart`) are
 * left out, rounded up to whole turns so that what is sent starts with a person's message. */
export function dropOldest(messages, contextStart, count) {
  let index = contextStart;
  let dropped = 0;
  while (index < messages.length && dropped < count) {
    if (messages[index].content && !messages[index].deleted) dropped += 1;
    index += 1;
  }
  while (index < messages.length && messages[index].role !== "user") index += 1;
  return index;
}

/** A conversation's title: the start of its first message still in it (a refused turn is not). */
export function titleOf(messages) {
  const first = messages.find((message) => message.role === "user" && !message.deleted);
  return titleFrom(first ? first.content : "");
}

/** A title from a message's text: its first line, shortened. */
export function titleFrom(text) {
  const line = text.trim().split("\n")[0];
  return line.length > 48 ? `${line.slice(0, 47)}…` : line || "New conversation";
}

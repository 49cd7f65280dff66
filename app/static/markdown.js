// Replies as Markdown (marked), sanitised (DOMPurify) before they touch the DOM: no HTML from the
// model survives except a short list of harmless tags, no script, style, image or form, and links
// only to http(s) and mailto, opened in a new tab without a referrer.
//
// While a reply streams, its text is rendered in pieces so that each animation frame costs the
// new text only: everything up to the last safe block boundary is rendered once and kept; only
// the tail after it is rendered again. The tail is kept short (TAIL_CHARS): past that, it is cut
// at a line end (a code block is closed and reopened around the cut). Once the reply has ended,
// it is rendered once as a whole, which undoes any provisional cut.

import { Marked } from "./vendor/marked.js";
import DOMPurify from "./vendor/purify.js";

export const TAIL_CHARS = 2000;

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escapeHtml = (text) => text.replace(/[&<>"']/g, (char) => ESCAPES[char]);
// HTML written by the model is shown as the text it is, never as markup; DOMPurify is the second guard.
const marked = new Marked({ gfm: true, breaks: true, async: false, renderer: { html: ({ text }) => escapeHtml(text) } });
const ALLOWED_TAGS = [
  "p", "br", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li", "hr", "a",
  "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "input",
];
const PURIFY = {
  ALLOWED_TAGS,
  ALLOWED_ATTR: ["href", "title", "start", "align", "class", "type", "checked", "disabled"],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
  RETURN_DOM_FRAGMENT: true,
};

// A code block's language (marked's), and highlight.js's classes (`code.js`): no other class.
const CLASSES = /^(language-[\w+-]{1,40}|hljs-[\w-]{1,40}( [\w-]{1,40}){0,3})$/;
const HIGHLIGHTED = { ALLOWED_TAGS: ["span"], ALLOWED_ATTR: ["class"], RETURN_DOM_FRAGMENT: true };

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
  if (node.tagName === "INPUT" && node.getAttribute("type") !== "checkbox") node.remove(); // task lists only
  if (node.hasAttribute("class") && !CLASSES.test(node.getAttribute("class"))) {
    node.removeAttribute("class");
  }
});

/** Work done, for tests and the page benchmark: characters rendered, and the largest render. */
export const renderStats = { renders: 0, chars: 0, largest: 0 };

/** Markdown text as a sanitised DocumentFragment. */
export function renderMarkdown(text) {
  renderStats.renders += 1;
  renderStats.chars += text.length;
  renderStats.largest = Math.max(renderStats.largest, text.length);
  return DOMPurify.sanitize(marked.parse(text), PURIFY);
}

/** highlight.js's markup of a code block (spans with its classes), sanitised like a reply. */
export function sanitizeHighlight(html) {
  return DOMPurify.sanitize(html, HIGHLIGHTED);
}

const FENCE = /^ {0,3}(`{3,}|~{3,})/;
const CONTINUES = /^(\s|[-*+>|]|\d{1,9}[.)])/; // a line that may belong to the block before a blank line

/** One reply's Markdown in the DOM, updated as its text grows. */
export class LiveMarkdown {
  constructor(root) {
    this.root = root;
    this.done = document.createElement("div");
    this.tail = document.createElement("div");
    this.done.className = "md-done";
    this.tail.className = "md-tail";
    root.replaceChildren(this.done, this.tail);
    this.reset();
  }

  reset() {
    this.done.replaceChildren();
    this.tail.replaceChildren();
    this.committed = 0; // text[0 .. committed) is rendered in `done`
    this.scanned = 0; // the lines before this offset have been scanned
    this.fence = null; // the open fence line at `scanned` (inside a code block), or null
    this.reopen = ""; // a fence to put in front of the tail: the cut was inside a code block
    this.pending = -1; // a blank line's end, committed once the next line shows it closed a block
    this.text = "";
  }

  /** Show `text` (the reply so far, which only ever grows; a new text starts over). */
  update(text) {
    if (!text.startsWith(this.text)) this.reset();
    this.text = text;
    this.scan();
    // A tail too long to render again on every frame is cut at its last line end, else its last space.
    while (text.length - this.committed > TAIL_CHARS) {
      let cut = text.lastIndexOf("\n", text.length - 1) + 1;
      if (cut <= this.committed) cut = text.lastIndexOf(" ", text.length - 1) + 1;
      if (cut <= this.committed) break; // one unbroken word: nothing to cut at
      this.commit(this.committed, cut, cut >= this.scanned ? this.fence : this.fenceBefore(cut));
    }
    this.tail.replaceChildren(renderMarkdown(this.reopen + text.slice(this.committed)));
  }

  /** The whole text, rendered once as one document (the reply has ended). */
  finish(text) {
    this.reset();
    this.text = text;
    this.done.replaceChildren(renderMarkdown(text));
  }

  scan() {
    const text = this.text;
    for (;;) {
      const newline = text.indexOf("\n", this.scanned);
      if (newline < 0) return;
      const line = text.slice(this.scanned, newline);
      const start = this.scanned;
      this.scanned = newline + 1;
      if (this.pending >= 0 && line.trim() !== "") {
        if (!CONTINUES.test(line)) this.commit(this.committed, this.pending, null);
        this.pending = -1;
      }
      const fence = FENCE.exec(line);
      if (this.fence === null && fence) {
        this.fence = fence[1];
      } else if (this.fence !== null && fence && fence[1][0] === this.fence[0] && fence[1].length >= this.fence.length && line.trim() === fence[1]) {
        this.fence = null;
        this.commit(this.committed, this.scanned, null); // a closed code block is a whole block
      } else if (this.fence === null && line.trim() === "" && start > this.committed) {
        this.pending = this.scanned;
      }
    }
  }

  /** The code fence open at offset `at` (after `committed`), or null. */
  fenceBefore(at) {
    let fence = this.reopen ? this.reopen.trim() : null;
    for (const line of this.text.slice(this.committed, at).split("\n")) {
      const found = FENCE.exec(line);
      if (fence === null && found) fence = found[1];
      else if (fence !== null && found && line.trim() === found[1] && found[1][0] === fence[0]) fence = null;
    }
    return fence;
  }

  /** Render text[from .. to) once into `done`; `openFence`: the cut is inside that code block. */
  commit(from, to, openFence) {
    if (to <= from) return;
    const closing = openFence ? `\n${openFence}\n` : "";
    this.done.append(renderMarkdown(this.reopen + this.text.slice(from, to) + closing));
    this.reopen = openFence ? `${openFence}\n` : "";
    this.committed = to;
    if (this.pending >= 0 && this.pending <= to) this.pending = -1;
  }
}

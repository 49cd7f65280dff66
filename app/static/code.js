// A finished reply's extras: a Copy button on each code block, and its syntax highlighted by the
// vendored highlight.js, loaded on the first reply that holds a code block (the page stays light).
// highlight.js escapes the code it marks up; its markup still goes through the sanitiser.

import { sanitizeHighlight } from "./markdown.js";

const AUTO_MAX_CHARS = 5_000; // a block without a language is guessed only when short (it tries every language)
let highlighter = null; // the import in flight or done

/** Copy `text` to the clipboard; resolves true when it was copied. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // no clipboard API (a page served over plain HTTP from another host): the older way
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    const copied = document.execCommand("copy");
    area.remove();
    return copied;
  }
}

/** A button that copies what `text()` gives, and says so for a moment. */
export function copyButton(label, text) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "copy";
  button.textContent = label;
  button.addEventListener("click", async () => {
    const copied = await copyText(text());
    button.textContent = copied ? "Copied" : "Copy failed";
    setTimeout(() => {
      button.textContent = label;
    }, 1500);
  });
  return button;
}

/** Give each code block of a rendered reply its Copy button and its colours. */
export function decorate(root) {
  const blocks = [...root.querySelectorAll("pre > code")];
  for (const code of blocks) {
    const copy = copyButton("Copy", () => code.textContent);
    copy.setAttribute("aria-label", "Copy code");
    code.parentElement.append(copy);
  }
  if (blocks.length) loadHighlighter().then((hljs) => blocks.forEach((code) => highlight(hljs, code)), () => {});
}

function loadHighlighter() {
  highlighter ??= import("./vendor/highlight.js").then((module) => module.default);
  return highlighter;
}

function highlight(hljs, code) {
  if (!code.isConnected || code.classList.contains("hljs")) return;
  const text = code.textContent;
  const language = /(?:^|\s)language-([\w+-]+)/.exec(code.className)?.[1];
  let result = null;
  if (language && hljs.getLanguage(language)) result = hljs.highlight(text, { language, ignoreIllegals: true });
  else if (!language && text.length <= AUTO_MAX_CHARS) result = hljs.highlightAuto(text);
  if (!result) return;
  code.replaceChildren(sanitizeHighlight(result.value));
  code.classList.add("hljs");
  code.dataset.language = result.language || language || "";
}

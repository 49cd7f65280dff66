"""The Messages API's documents and search results, as the chat parts every upstream takes: a
document by its data, a URL or an Anthropic file is a file (`apis/files`), its text (plain, or
text blocks) inlined; a search result is its title, source and text."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError

from ..files import file_part, inlined
from ..schema import text_of


def document_part(block: dict[str, Any]) -> dict[str, Any]:
    """A document block as a chat part (`apis/files`): base64 data, plain text or text blocks
    (inlined), a URL, or a file of Anthropic's Files API; ValidationError when malformed."""
    source, title = block["source"], block.get("title")
    kind = source.get("type") if isinstance(source, dict) else None
    if title is not None and not isinstance(title, str):
        raise ValidationError("A document's title is a string.")
    if kind == "text" and isinstance(source.get("data"), str):
        return {"type": "text", "text": inlined(title or "document", text_of(source["data"]))}
    if kind == "content" and isinstance(source.get("content"), str | list):
        texts = _texts(source["content"])
        return {"type": "text", "text": inlined(title or "document", "\n".join(texts))}
    if kind == "base64":
        return file_part(data=source.get("data"), filename=title, media_type=source.get("media_type"))
    if kind == "url":
        return file_part(url=source.get("url"), filename=title)
    if kind == "file":
        return file_part(file_id=source.get("file_id"), filename=title)
    raise ValidationError("A document's source is of type base64, text, content, url or file.")


def _texts(content: Any) -> list[str]:
    """The texts of a string, or of a list of text blocks; ValidationError otherwise."""
    if isinstance(content, str):
        return [text_of(content)]
    if all(isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) for b in content):
        return [text_of(b["text"]) for b in content]
    raise ValidationError("Text content is a string or a list of text blocks.")


def search_text(block: dict[str, Any]) -> str:
    """A search result as the text a model reads: its title, its source, its text blocks."""
    said = (block["source"], block["title"])
    if not (all(isinstance(text, str) for text in said) and isinstance(block["content"], list)):
        raise ValidationError("A search result has a source and a title (strings) and content (text blocks).")
    return "\n".join([text_of(block["title"]), text_of(block["source"]), *_texts(block["content"])])

"""A file a client attaches to a message (the Responses API's `input_file` part, chat completions'
`file` part, the Messages API's `document` block), as the chat part every upstream is sent.

A text file (by its media type or its name) is inlined as text, between lines that name it: every
model reads text, so no server needs to take files for it. Any other file (a PDF) is a `file`
part, its data as a data URL with its name, or the id of a file an OpenAI server keeps, or its
URL: an OpenAI-compatible server takes the first two, an Anthropic one reads any of them as a
document; a provider that cannot (the embedded model; a URL for an OpenAI-compatible server) is
refused with a 400 naming the part (`apis.functions.refuse_untaken`).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from typing import Any

from marshmallow import ValidationError

from ..providers.counted import FILE_PART
from .schema import text_of

MAX_FILENAME_CHARS = 256
MAX_FILE_ID_CHARS = 256
MAX_URL_CHARS = 8192
# Media types read as text (besides text/*), and the names of text files sent without one.
TEXT_MEDIA = frozenset(
    (
        "application/json application/xml application/x-yaml application/yaml application/toml "
        "application/javascript application/x-sh application/sql application/x-python"
    ).split()
)
TEXT_SUFFIXES = frozenset(
    (
        ".txt .md .markdown .csv .tsv .json .jsonl .xml .html .htm .yaml .yml .toml .ini .cfg .log .py .js "
        ".mjs .ts .tsx .jsx .sh .rs .go .java .kt .c .h .cc .cpp .hpp .rb .php .sql .css .diff .patch"
    ).split()
)
_DATA_URL = re.compile(r"data:([\w.+/-]+)(?:;[\w=.+-]+)*;base64,(.*)", re.DOTALL | re.IGNORECASE)
_URL = re.compile(r"https?://\S+", re.IGNORECASE)
_SHAPE = "data (a data URL, or base64 with its filename), a file_id, or an http(s) URL"


def file_part(
    data: Any = None, filename: Any = None, file_id: Any = None, url: Any = None, media_type: Any = None
) -> dict[str, Any]:
    """The chat part of one file, given by exactly one of its `data` (a data URL, or base64 with a
    `filename` or `media_type`), an OpenAI `file_id` or an http(s) `url`; ValidationError
    (what to send) when it is none of them or not well formed."""
    given = [name for name, value in (("data", data), ("file_id", file_id), ("url", url)) if value is not None]
    if len(given) != 1 or not all(isinstance(value, str | None) for value in (data, filename, file_id, url)):
        raise ValidationError(f"A file is given by one of: {_SHAPE}.")
    if filename is not None and not 0 < len(text_of(filename)) <= MAX_FILENAME_CHARS:
        raise ValidationError(f"A file's name is 1 to {MAX_FILENAME_CHARS} characters.")
    if file_id is not None:
        if not 0 < len(file_id) <= MAX_FILE_ID_CHARS:
            raise ValidationError(f"A file_id is 1 to {MAX_FILE_ID_CHARS} characters.")
        return {"type": FILE_PART, "file": {"file_id": text_of(file_id)}}
    if url is not None:
        if len(url) > MAX_URL_CHARS or not _URL.fullmatch(url):
            raise ValidationError(f"A file's URL is an http(s) URL of at most {MAX_URL_CHARS} characters.")
        return {"type": FILE_PART, "file": {"file_url": url, **({"filename": filename} if filename else {})}}
    return _data_part(data, filename, media_type)


def _data_part(data: str, filename: str | None, media_type: Any) -> dict[str, Any]:
    found = _DATA_URL.fullmatch(data)
    media, encoded = (found.group(1).lower(), found.group(2)) if found else (media_type, data)
    media = media if isinstance(media, str) else (mimetypes.guess_type(filename or "")[0] or "")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("A file's data is base64 (or a data URL: data:<media type>;base64,...).") from None
    if not raw:
        raise ValidationError("A file's data is empty.")
    name = filename or "file"
    if _is_text(media, name):
        try:
            return {"type": "text", "text": inlined(name, text_of(raw.decode("utf-8")))}
        except (UnicodeDecodeError, ValidationError):
            pass  # not UTF-8 text after all: sent as a file
    if not media:
        raise ValidationError("A file that is not text needs its media type (a data URL) or a filename that says it.")
    return {"type": FILE_PART, "file": {"file_data": f"data:{media};base64,{encoded}", "filename": name}}


def _is_text(media: str, filename: str) -> bool:
    return media.startswith("text/") or media in TEXT_MEDIA or filename.lower().endswith(tuple(TEXT_SUFFIXES))


def inlined(filename: str, text: str) -> str:
    """A text file as the model reads it: its text between lines that name it."""
    return f'<file name="{filename}">\n{text}\n</file>'


def data_chars(part: Any) -> int:
    """The characters a file's data takes as sent (before validation): counted toward the
    conversation's characters, as its text would be."""
    if not isinstance(part, dict):
        return 0
    found = [part.get(name) for name in ("file_data", "data")]
    source = part.get("source")
    if isinstance(source, dict):
        found.append(source.get("data"))
    file = part.get("file")
    if isinstance(file, dict):
        found.append(file.get("file_data"))
    return sum(len(text) for text in found if isinstance(text, str))

"""What a file (a PDF) is billed as, by the target model's published rule: what a generation
reserves for it (a key's tpm and budget) beyond the estimate by its bytes that the input limit
counts (`counted`).

Both providers bill a PDF by its pages: OpenAI reads each page's text and an image of the page
(the image billed by its image rule), Anthropic 1,500 to 3,000 tokens a page. A PDF's pages are
read from its structure (the page tree's `/Count`, and the page objects its bytes show), never
rendered; a file whose pages cannot be read (a file id, a URL, an unreadable PDF) is reserved at
its model's worst case, the most pages a request's PDFs may have. Other files are read as text:
their bytes are their count.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
from collections.abc import Iterable
from typing import Any

import pypdf
import pypdf.errors

from . import images
from .counted import FILE_PART, file_tokens

MAX_PAGES = 100  # the most pages a request's PDFs may have (OpenAI's and Anthropic's limit)
PAGE_TEXT_TOKENS = 1_500  # the most a page's text is billed, beside its image (OpenAI)
CLAUDE_PAGE_TOKENS = 3_000  # the most Anthropic bills a page (its text and its image)
_PAGE_OBJECT = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")  # a page object in the bytes (not /Pages)

logging.getLogger("pypdf").setLevel(logging.ERROR)  # a broken file's warnings are the client's, not the log's


def surcharge(models: Iterable[str], messages: Iterable[dict[str, Any]]) -> int:
    """The tokens `messages`' files are billed as beyond what the input count gave them (their
    bytes; never below it), by the one of `models` that bills them most (each file read once)."""
    found = []
    for message in messages:
        content = message.get("content")
        for part in content if type(content) is list else ():
            if part.get("type") == FILE_PART:
                data = part[FILE_PART].get("file_data")
                if data and not _is_pdf(data):
                    continue  # read as its text: its bytes are what the input count gave it
                found.append((pages(data) if data else None, file_tokens(data)))
    if not found:
        return 0
    return max(sum(max(0, billed(model, count) - counted) for count, counted in found) for model in models)


def billed(model: str, count: int | None) -> int:
    """The tokens `model` bills a PDF of `count` pages (None: unknown, MAX_PAGES)."""
    count = MAX_PAGES if count is None else min(count, MAX_PAGES)
    if model.lower().startswith("claude"):
        return count * CLAUDE_PAGE_TOKENS
    return count * (PAGE_TEXT_TOKENS + images.billed(model, None))


def _is_pdf(data_url: str) -> bool:
    return data_url[:21].lower() == "data:application/pdf;"


def pages(data_url: str) -> int | None:
    """A PDF's pages, from its data URL (None: one whose pages cannot be read)."""
    comma = data_url.find(",", 0, 256)
    if comma < 0:
        return None
    try:
        data = base64.b64decode(data_url[comma + 1 :])
    except (binascii.Error, ValueError):
        return None
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        told = int(reader.trailer["/Root"]["/Pages"]["/Count"])
    except (pypdf.errors.PyPdfError, KeyError, TypeError, ValueError, AttributeError, RecursionError, OSError):
        return None
    # A page tree that says fewer pages than its bytes hold is not believed.
    return max(told, len(_PAGE_OBJECT.findall(data))) if told > 0 else None

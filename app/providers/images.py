"""What an image is billed as, by the target model's published rule: what a generation reserves
for it (a key's tpm and budget) beyond the flat estimate the input limit counts (`counted`).

OpenAI bills most models by 512-pixel tiles after scaling (a base and a price per tile, the base
alone at `detail: low`), its mini and nano models by 32-pixel patches (at most 1,536, times a
multiplier), and Anthropic by pixels (width x height / 750, at most about 1,600). An image's size
is read from its data URL's header (Pillow opens it lazily: nothing is decoded); an image by URL,
or one whose header cannot be read, is reserved at its model's worst case.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from collections.abc import Iterable
from typing import Any

import PIL.Image

from .counted import IMAGE_TOKENS

PIL.Image.MAX_IMAGE_PIXELS = None  # only sizes are read here, never pixels: no image is too big to size
FORMATS = ("PNG", "JPEG", "GIF", "WEBP")  # what the model APIs take
HEADER_BYTES = 96 * 1024  # of an image's data read for its size (a JPEG's EXIF comes before it)
# Tile rules (base, per tile), by the longest model-name prefix; others bill as gpt-4o.
TILES = {
    "gpt-4o-mini": (2833, 5667),
    "gpt-5": (70, 140),
    "o1": (75, 150),
    "o3": (75, 150),
    "computer-use-preview": (65, 129),
}
DEFAULT_TILES = (85, 170)
PATCHES = {"gpt-4.1-mini": 1.62, "gpt-4.1-nano": 2.46, "gpt-5-mini": 1.62, "gpt-5-nano": 2.46, "o4-mini": 1.72}
MAX_PATCHES = 1536
CLAUDE_MAX_EDGE, CLAUDE_MAX_TOKENS = 1568, 1600
WORST = (768, 2048)  # the most tiles a scaled image has (8)


def surcharge(models: Iterable[str], messages: Iterable[dict[str, Any]]) -> int:
    """The tokens `messages`' images are billed as beyond what the input count gave them
    (IMAGE_TOKENS each; never below it), by the one of `models` that bills them most (each
    image's header read once)."""
    found = []
    for message in messages:
        content = message.get("content")
        for part in content if type(content) is list else ():
            if part.get("type") == "image_url":
                image = part["image_url"]
                found.append((size(image.get("url", "")), image.get("detail")))
    if not found:
        return 0
    return max(sum(max(0, billed(model, *image) - IMAGE_TOKENS) for image in found) for model in models)


def billed(model: str, dimensions: tuple[int, int] | None, detail: str | None = None) -> int:
    """The tokens `model` bills an image of `dimensions` (None: unknown, the worst case) at `detail`."""
    name = model.lower()
    if name.startswith("claude"):
        return _pixels(dimensions)
    multiplier = _prefixed(PATCHES, name)
    if multiplier is not None:
        width, height = dimensions or (MAX_PATCHES * 32, 32)
        return math.ceil(min(math.ceil(width / 32) * math.ceil(height / 32), MAX_PATCHES) * multiplier)
    base, tile = _prefixed(TILES, name) or DEFAULT_TILES
    if detail == "low":
        return base
    width, height = _scaled(*(dimensions or WORST))
    return base + tile * math.ceil(width / 512) * math.ceil(height / 512)


def size(url: str) -> tuple[int, int] | None:
    """An image's width and height from its data URL's header (None: a URL, or unreadable)."""
    if not url.startswith("data:"):
        return None
    comma = url.find(",", 0, 256)
    if comma < 0 or ";base64" not in url[:comma]:
        return None
    head = url[comma + 1 : comma + 1 + HEADER_BYTES * 4 // 3]
    try:
        data = base64.b64decode(head[: len(head) // 4 * 4])
        with PIL.Image.open(io.BytesIO(data), formats=FORMATS) as image:
            width, height = image.size
    except (binascii.Error, ValueError, OSError, SyntaxError, EOFError):
        return None
    return (width, height) if width > 0 and height > 0 else None


def _prefixed(table: dict[str, Any], name: str) -> Any:
    found = [prefix for prefix in table if name.startswith(prefix)]
    return table[max(found, key=len)] if found else None


def _scaled(width: int, height: int) -> tuple[float, float]:
    """OpenAI's scaling: within 2048 x 2048, then the shortest side at most 768."""
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    return width * scale, height * scale


def _pixels(dimensions: tuple[int, int] | None) -> int:
    """Anthropic's rule: width x height / 750, the long edge scaled to at most 1568."""
    if dimensions is None:
        return CLAUDE_MAX_TOKENS
    width, height = dimensions
    scale = min(1.0, CLAUDE_MAX_EDGE / max(width, height))
    return min(CLAUDE_MAX_TOKENS, math.ceil(width * scale * height * scale / 750))

"""What an image is reserved at: its size read from its data URL's header (PNG, JPEG, GIF, WebP),
and the target model's published rule (tiles, patches, pixels); the worst case when unread."""

from __future__ import annotations

import base64
import io

import PIL.Image
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.providers import images
from app.providers.counted import IMAGE_TOKENS


def _url(width: int, height: int, kind: str = "PNG") -> str:
    data = io.BytesIO()
    PIL.Image.new("RGB", (width, height)).save(data, kind)
    return f"data:image/{kind.lower()};base64," + base64.b64encode(data.getvalue()).decode()


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "GIF", "WEBP"])
def test_the_size_is_read_from_the_header_of_every_format_the_apis_take(kind: str) -> None:
    assert images.size(_url(2048, 768, kind)) == (2048, 768)


def test_a_url_or_an_unreadable_image_has_no_size() -> None:
    assert images.size("https://example.com/cat.png") is None
    assert images.size("data:image/png;base64,AAAA") is None
    assert images.size("data:image/png;base64,@@not base64@@") is None
    bmp = io.BytesIO()
    PIL.Image.new("RGB", (4, 4)).save(bmp, "BMP")
    assert images.size("data:image/bmp;base64," + base64.b64encode(bmp.getvalue()).decode()) is None


@pytest.mark.parametrize(
    ("model", "dimensions", "detail", "tokens"),
    [
        ("gpt-4o-mini", (2048, 768), "high", 48_169),  # OpenAI's published count
        ("gpt-4o-mini", None, None, 48_169),  # unknown: the most tiles a scaled image has
        ("gpt-4o", (1024, 1024), None, 765),
        ("gpt-4o", (2048, 4096), "high", 1_105),
        ("gpt-4o", (4096, 8192), "low", 85),
        ("gpt-5.1", (512, 512), "auto", 210),
        ("o3-pro", (512, 512), None, 225),
        ("gpt-4.1-mini", (1024, 1024), None, 1_659),
        ("gpt-4.1-nano", None, None, 3_779),
        ("claude-sonnet-4-5", (1000, 1000), None, 1_334),
        ("claude-opus-4", (8000, 8000), None, 1_600),
        ("a-local-model", (1024, 1024), None, 765),
    ],
)
def test_each_model_bills_by_its_published_rule(model, dimensions, detail, tokens) -> None:
    assert images.billed(model, dimensions, detail) == tokens


def test_the_surcharge_is_what_the_input_count_left_out() -> None:
    part = {"type": "image_url", "image_url": {"url": _url(2048, 768), "detail": "high"}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, part, part]},
        {"role": "user", "content": "x"},
    ]
    assert images.surcharge(["gpt-4o-mini"], messages) == 2 * (48_169 - IMAGE_TOKENS)
    assert images.surcharge(["gpt-4o", "gpt-4o-mini"], messages) == 2 * (48_169 - IMAGE_TOKENS), "the dearest"
    small = [{"role": "user", "content": [{**part, "image_url": {"url": _url(8, 8)}}]}]
    assert images.surcharge(["gpt-4o"], small) == 0 and images.surcharge(["gpt-4o"], [{"content": "hi"}]) == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096), st.sampled_from(["png", "jpeg", "gif", "webp"]))
def test_any_bytes_are_sized_or_not_and_never_raise(data: bytes, kind: str) -> None:
    found = images.size(f"data:image/{kind};base64," + base64.b64encode(data).decode())
    assert found is None or (found[0] > 0 and found[1] > 0)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["PNG", "GIF"]), st.integers(1, 200), st.binary(min_size=1, max_size=64))
def test_a_truncated_or_corrupted_header_is_sized_or_not_and_never_raises(kind: str, cut: int, noise: bytes) -> None:
    whole = base64.b64decode(_url(300, 200, kind).split(",", 1)[1])
    spoiled = whole[:cut] + noise + whole[cut + len(noise) :]
    found = images.size(f"data:image/{kind.lower()};base64," + base64.b64encode(spoiled).decode())
    assert found is None or (found[0] > 0 and found[1] > 0)

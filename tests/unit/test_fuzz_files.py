"""Fuzz: a file a client attaches, through ChatWait's own reading of it (`apis/files`: data URLs,
base64, names, media types) and the Messages API's documents. Any input becomes a chat part or a
ValidationError, never anything else; a valid file comes out whole (a text file's text inlined,
any other's bytes kept exactly). Bounded: a few hundred examples, no deadline."""

from __future__ import annotations

import base64

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from app.apis.files import TEXT_MEDIA, TEXT_SUFFIXES, file_part, inlined
from app.apis.messages.documents import document_part
from app.providers.counted import FILE_PART

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
TEXTS = st.one_of(st.none(), st.text(max_size=80), st.sampled_from(["data:application/pdf;base64,", "a.pdf", "x.csv"]))
MEDIA = st.sampled_from(["application/pdf", "text/plain", "text/csv", "image/png", "application/json", "a/b"])


@SETTINGS
@given(data=TEXTS, filename=TEXTS, file_id=TEXTS, url=TEXTS, media=st.one_of(st.none(), MEDIA, st.text(max_size=20)))
def test_any_file_becomes_a_part_or_a_validation_error(data, filename, file_id, url, media) -> None:
    try:
        part = file_part(data=data, filename=filename, file_id=file_id, url=url, media_type=media)
    except ValidationError:
        return
    assert part["type"] in ("text", FILE_PART)


@SETTINGS
@given(content=st.binary(min_size=1, max_size=2000), media=MEDIA, name=st.text(min_size=1, max_size=40))
def test_a_valid_file_comes_out_whole(content: bytes, media: str, name: str) -> None:
    encoded = base64.b64encode(content).decode()
    try:
        part = file_part(data=f"data:{media};base64,{encoded}", filename=name)
    except ValidationError:  # a name that is not text (a lone surrogate)
        return
    if part["type"] == "text":
        assert media.startswith("text/") or media in TEXT_MEDIA or name.lower().endswith(tuple(TEXT_SUFFIXES))
        assert part["text"] == inlined(name, content.decode("utf-8"))
    else:
        assert part[FILE_PART] == {"file_data": f"data:{media};base64,{encoded}", "filename": name}
        assert base64.b64decode(part[FILE_PART]["file_data"].split(",", 1)[1]) == content


@SETTINGS
@given(
    source=st.one_of(
        st.dictionaries(st.text(max_size=12), st.one_of(st.text(max_size=40), st.none(), st.integers())),
        st.text(max_size=10),
        st.none(),
    ),
    title=st.one_of(st.none(), st.text(max_size=20), st.integers()),
)
def test_any_document_becomes_a_part_or_a_validation_error(source, title) -> None:
    try:
        part = document_part({"type": "document", "source": source, "title": title})
    except ValidationError:
        return
    assert part["type"] in ("text", FILE_PART)

"""A PDF is reserved as its model bills its pages: the page count read from its structure (a page
tree that says fewer pages than its bytes hold not believed), the worst case for a file that
cannot be sized (by id, by URL, unreadable), text files by their bytes; hostile files fuzzed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from app.providers import documents, images
from app.providers.counted import file_tokens

from ..documents import data_url, pdf_bytes


def _message(**file: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "file", "file": file}, {"type": "text", "text": "read it"}]}]


HUNDRED = pdf_bytes(100)


def test_a_pdfs_pages_are_read_from_its_structure() -> None:
    assert documents.pages(data_url(pdf_bytes(1))) == 1
    assert documents.pages(data_url(HUNDRED)) == 100
    lying = HUNDRED.replace(b"/Count 100", b"/Count 1  ")
    assert documents.pages(data_url(lying)) == 100, "a page tree that says fewer pages than its bytes hold"


def test_each_model_bills_a_page_by_its_rule() -> None:
    assert documents.billed("claude-sonnet-4-5", 10) == 10 * documents.CLAUDE_PAGE_TOKENS
    assert documents.billed("gpt-4o", 10) == 10 * (documents.PAGE_TEXT_TOKENS + images.billed("gpt-4o", None))
    assert documents.billed("gpt-4o", None) == documents.billed("gpt-4o", documents.MAX_PAGES), "unknown: worst"
    assert documents.billed("gpt-4o", 10_000) == documents.billed("gpt-4o", documents.MAX_PAGES)


def test_the_surcharge_is_what_the_pages_cost_beyond_the_bytes_counted() -> None:
    url = data_url(HUNDRED)
    expected = documents.billed("gpt-4o", 100) - file_tokens(url)
    assert documents.surcharge(["gpt-4o"], _message(file_data=url, filename="a.pdf")) == expected
    assert documents.surcharge(["gpt-4o", "claude-opus-4"], _message(file_data=url)) == 300_000 - file_tokens(url)
    by_id = documents.surcharge(["gpt-4o"], _message(file_id="file-abc"))
    assert by_id == documents.billed("gpt-4o", None) - file_tokens(None), "a file by id: its model's worst case"
    broken = data_url(b"%PDF-1.7\n" + b"\x00" * 500)
    assert documents.surcharge(["gpt-4o"], _message(file_data=broken)) > 250_000, "unreadable: the worst case"
    text = data_url(b"plain words " * 100, "application/octet-stream")
    assert documents.surcharge(["gpt-4o"], _message(file_data=text)) == 0, "not a PDF: its bytes are its count"
    assert documents.surcharge(["gpt-4o"], [{"role": "user", "content": "no files"}]) == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_any_bytes_as_a_pdf_give_a_page_count_or_none(data: bytes) -> None:
    found = documents.pages(data_url(b"%PDF-1.4\n" + data))
    assert found is None or found >= 1


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(HUNDRED) - 1), st.integers(1, 64), st.binary(min_size=1, max_size=64))
def test_a_damaged_pdf_gives_a_page_count_or_none(at: int, length: int, junk: bytes) -> None:
    damaged = HUNDRED[:at] + junk + HUNDRED[at + length :]
    found = documents.pages(data_url(damaged))
    assert found is None or found >= 1
    assert documents.pages(data_url(HUNDRED[:at])) in (None, *range(1, 101))


def test_a_page_tree_that_loops_or_nests_deeply_is_not_a_crash() -> None:
    looped = HUNDRED.replace(b"/Kids [", b"/Kids [ 1 0 R ", 1)
    assert documents.pages(data_url(looped)) in (None, *range(1, 102))
    deep = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Count " + b"[" * 5000
    assert documents.pages(data_url(deep + b"\ntrailer << /Root 1 0 R >>\n%%EOF")) in (None, *range(1, 10))

"""PDFs for the tests: blank pages made with pypdf, and a file's data URL."""

from __future__ import annotations

import base64
import io

import pypdf


def pdf_bytes(pages: int) -> bytes:
    """A PDF of `pages` blank pages (~12 KB for 100)."""
    writer = pypdf.PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(612, 792)
    data = io.BytesIO()
    writer.write(data)
    return data.getvalue()


def data_url(data: bytes, media: str = "application/pdf") -> str:
    """`data` as a file part's data URL."""
    return f"data:{media};base64," + base64.b64encode(data).decode()

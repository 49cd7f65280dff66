"""A request's header block, parsed as gevent's WSGI server parses it, without the email package.

gevent's pywsgi reads the header lines with `http.client` and hands them to the `email`
package's feed parser, whose message it keeps; that parser is the costliest step before the
app is called. `parse_headers` reads the same lines and splits them as that parser does,
into the same message class (`pywsgi.OldMessage`, an `email.message.Message`): the same names
and values in the same order, the same refusal of a line that is too long (its `status`),
the same error for too many headers.

What the feed parser does with a header block, and so what this does:

- lines end at CR LF, CR or LF;
- the block ends at the first line that is neither `name:value` (a name of printable ASCII
  without space or colon, possibly empty) nor a continuation (leading space or tab), nor a
  line beginning "From " (a mailbox envelope, skipped); whatever follows is not a header;
- a continuation is joined to the header before it, line ending included, and skipped when
  there is none; a line with an empty name is skipped;
- a value loses the spaces and tabs after its colon and the line endings at its very end.
"""

from __future__ import annotations

import re
from http import client
from typing import Any

from gevent.pywsgi import OldMessage

_HEADER_LINE = re.compile(r"From |[\041-\071\073-\176]*:|[\t ]")  # email.feedparser.headerRE
_LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
# The usual block: only `name:value` lines, each ended by CR LF or LF, then the blank line.
_PLAIN_BLOCK = re.compile(r"(?:[\041-\071\073-\176]+:[^\r\n]*\r?\n)*(?:\r?\n)?")
_PLAIN_FIELD = re.compile(r"([\041-\071\073-\176]+):[ \t]*([^\r\n]*)\r?\n")


def parse_headers(rfile: Any) -> OldMessage:
    """Read a request's header lines from `rfile` and parse them as pywsgi's `MessageClass`."""
    message = OldMessage()
    try:
        lines = client._read_headers(rfile)  # the reading half of http.client.parse_headers
    except client.LineTooLong:
        message.status = "Line too long"
        return message
    for name, value in header_fields(b"".join(lines).decode("iso-8859-1")):
        message.set_raw(name, value)
    return message


def header_fields(text: str) -> list[tuple[str, str]]:
    """The (name, value) pairs of a header block, as the email package's feed parser finds them."""
    if _PLAIN_BLOCK.fullmatch(text):
        return _PLAIN_FIELD.findall(text)
    fields: list[tuple[str, str]] = []
    source: list[str] = []  # the lines of the header being read: its first, then continuations
    for line in _LINES.findall(text):
        if not _HEADER_LINE.match(line):
            break
        if line[0] in " \t":
            if source:
                source.append(line)
            continue
        if source:
            fields.append(_field(source))
            source = []
        if line.startswith("From ") or line[0] == ":":
            continue
        source = [line]
    if source:
        fields.append(_field(source))
    return fields


def _field(source: list[str]) -> tuple[str, str]:
    """The name and value of one header from its lines (email's compat32 header_source_parse)."""
    name, value = source[0].split(":", 1)
    value = value.lstrip(" \t") + "".join(source[1:])
    return name, value.rstrip("\r\n")

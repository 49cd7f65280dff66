"""Redaction of secrets and personal data in a formatted log line.

Each pattern runs only when a cheap substring test says it could match, and the digit patterns
only inside the runs of digit-like characters that could hold a match (a line's hex ids are
such runs): redaction runs on every log line, so it must not cost a dozen regex scans.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

REDACTED = "[REDACTED]"
# A configured secret shorter than this is not searched for as it is: a one-letter key would
# redact that letter everywhere. Such a key protects nothing anyway (build_app warns).
MIN_LITERAL_CHARS = 8

_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*")
# OpenAI-style keys, including masked fragments such as sk-...abcd or sk-proj-****wxyz.
_OPENAI_KEY = re.compile(r"\bsk-[A-Za-z0-9_\-.*]{3,}")
_JWT = re.compile(r"(?i)\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
# Values of key-like fields: api_key=..., "password": "...", authorization: ...; _KEY_VALUE runs
# only on a line holding one of the hints, which every name it matches contains.
_KEY_HINTS = ("api", "authorization", "passw", "secret", "access")
_KEY_VALUE = re.compile(
    r"(?i)\b(?:api[_-]?key|apikey|authorization|password|passwd|secret|access[_-]?token)"
    r"(?:[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]+"
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# International phone numbers: +33 6 12 34 56 78, +1 (415) 555-2671.
_INTL_PHONE = re.compile(r"(?<![\w.])\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,6}(?![\w.])")
# Runs of grouped digits; each is then judged: a card number (13-19 digits passing Luhn) or a
# national phone number (555-123-4567, (555) 123 4567) is redacted, anything else is kept.
_DIGIT_GROUPS = re.compile(r"(?<![\w.(])\(?\d[\d \t().-]{5,26}\d(?![\w.])")
# From a digit not glued to a word (a match can only start there, or at the "(" before it), the
# longest run of the characters a _DIGIT_GROUPS match is made of: every match lies inside such a
# run, starting at most one character before it. A pattern that starts with a single \d is
# scanned fast; the lookbehind skips the digits inside words (hex ids) once one is found.
_DIGIT_SPAN = re.compile(r"\d(?<!\w\d)[\d \t().-]{5,}")
_NATIONAL_PHONE = re.compile(r"(?:\(\d{2,4}\)\s?|\d{2,4}[\s.-])\d{3,4}[\s.-]\d{3,5}")
_NOT_DIGIT = re.compile(r"\D")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _judge_digits(match: re.Match[str]) -> str:
    candidate = match.group(0)
    digits = _NOT_DIGIT.sub("", candidate)
    if 13 <= len(digits) <= 19 and _luhn_valid(digits):
        return REDACTED
    if _NATIONAL_PHONE.fullmatch(candidate):
        return REDACTED
    return candidate


def redact(text: str) -> str:
    """Replace secrets and personal data in `text` with a marker."""
    lowered = text.lower()
    if "bearer" in lowered:
        text = _BEARER.sub(REDACTED, text)
    if "sk-" in text:
        text = _OPENAI_KEY.sub(REDACTED, text)
    if "eyj" in lowered:
        text = _JWT.sub(REDACTED, text)
    if any(hint in lowered for hint in _KEY_HINTS):
        text = _KEY_VALUE.sub(REDACTED, text)
    if "@" in text:
        text = _EMAIL.sub(REDACTED, text)
    if "+" in text:
        text = _INTL_PHONE.sub(REDACTED, text)
    return _redact_digit_groups(text)


# Every _DIGIT_GROUPS match is a run of at least 7 of its characters; in an ASCII line, the
# bytes of such a run become "1"s under this table (every other byte a "0").
_GROUP_BYTES = bytes(0x31 if chr(byte) in "0123456789 \t().-" else 0x30 for byte in range(256))
_GROUP_RUN = re.compile(rb"1111111+")


def _redact_digit_groups(text: str) -> str:
    """`_DIGIT_GROUPS.sub(_judge_digits, text)`, searching only the runs that could hold a match
    (the lookbehind still sees the characters before a run, the lookahead the one after it). In
    an ASCII line those runs are found in its byte translation (a literal search, several times
    faster than the scan for runs, and nothing at all to search on nearly every line)."""
    if text.isascii():
        runs = ((run.start(), run.end()) for run in _GROUP_RUN.finditer(text.encode("ascii").translate(_GROUP_BYTES)))
    else:
        runs = ((max(span.start() - 1, 0), span.end()) for span in _DIGIT_SPAN.finditer(text))
    pieces: list[str] = []
    done = 0
    for start, end in runs:
        for match in _DIGIT_GROUPS.finditer(text, start, end + 1):
            pieces += (text[done : match.start()], _judge_digits(match))
            done = match.end()
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def literal_redactor(secrets: Sequence[str]) -> Callable[[str], str]:
    """A function that replaces each of `secrets` (as it is, and as JSON escapes it) in a text
    with the marker: the configured keys, whatever they look like (an Azure key is plain hex).
    Secrets shorter than MIN_LITERAL_CHARS are left to the patterns."""
    kept = [secret for secret in secrets if len(secret) >= MIN_LITERAL_CHARS]
    forms = {form for secret in kept for form in (secret, json.dumps(secret)[1:-1])}
    if not forms:
        return lambda text: text
    pattern = re.compile("|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True)))
    return lambda text: pattern.sub(REDACTED, text) if any(form in text for form in forms) else text

"""Redaction of secret values from a byte stream that arrives in arbitrary pieces.

Each secret is searched in the forms a script is likely to print it:

* as is (UTF-8);
* URL-encoded (``quote`` with and without ``/`` safe, ``quote_plus``);
* base64, standard and URL-safe alphabets: the whole encoding with and without padding, and,
  because the base64 of a secret embedded in a longer blob depends on its offset modulo 3,
  the stable middle part of the encoding for each of the three alignments (the characters
  that depend only on the secret's own bits). A secret encoded inside a larger blob thus
  loses all but at most three characters at each end.

Secrets shorter than ``MIN_SECRET_LENGTH`` bytes are not redacted (nor are derived forms that
short): replacing every ``ab`` in the output would garble it without protecting anything
worth the name. Every occurrence is replaced by ``***``.

Streaming: the result is exactly what one pass over the whole stream would give (leftmost
match first, the longest form at a given position). To get there across piece boundaries,
``feed`` holds back the shortest tail that could still grow into a match — the longest
suffix that is a proper prefix of some form, so at most ``longest form - 1`` bytes, and
usually nothing — until more data or ``flush`` (end of stream) decides it.
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Iterable

MIN_SECRET_LENGTH = 4
REPLACEMENT = b"***"
_URLSAFE = bytes.maketrans(b"+/", b"-_")
# Base64 characters to drop at the start of encode(b"\0" * offset + secret) because they mix
# bits of the prefix with bits of the secret.
_MIXED_LEADING_CHARS = {0: 0, 1: 2, 2: 3}


def secret_forms(secret: str) -> set[bytes]:
    """Every byte string that reveals ``secret`` (see the module docstring)."""
    raw = secret.encode()
    if len(raw) < MIN_SECRET_LENGTH:
        return set()
    forms = {raw}
    for quoted in (
        urllib.parse.quote(raw, safe=""),
        urllib.parse.quote(raw),
        urllib.parse.quote_plus(raw),
    ):
        forms.add(quoted.encode("ascii"))
    whole = base64.b64encode(raw)
    encodings = {whole, whole.rstrip(b"=")}
    for offset, mixed in _MIXED_LEADING_CHARS.items():
        encoded = base64.b64encode(b"\0" * offset + raw)
        determined = (8 * (offset + len(raw))) // 6  # chars fixed by these bytes alone
        encodings.add(encoded[mixed:determined])
    for encoding in encodings:
        forms.add(encoding)
        forms.add(encoding.translate(_URLSAFE))
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


class Redactor:
    """Replaces secrets in one stream. ``feed`` each piece in order, then ``flush`` once."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[bytes] = set()
        for secret in secrets:
            forms |= secret_forms(secret)
        self._forms = sorted(forms, key=len, reverse=True)
        self._longest = len(self._forms[0]) if self._forms else 0
        by_first: dict[int, list[bytes]] = {}
        for form in self._forms:
            by_first.setdefault(form[0], []).append(form)
        self._by_first_byte = by_first
        self._carry = b""

    @property
    def active(self) -> bool:
        """False when there is nothing to redact (output passes through untouched)."""
        return bool(self._forms)

    def feed(self, data: bytes) -> bytes:
        """Redacted output that can be released now; may hold back a few trailing bytes."""
        if not self._forms:
            return data
        if self._carry:
            data = self._carry + data
        out, self._carry = self._redact(data, self._hold_from(data))
        return out

    def flush(self) -> bytes:
        """The end of the stream: release whatever was held back, redacted."""
        data, self._carry = self._carry, b""
        if not data:
            return b""
        out, rest = self._redact(data, len(data))
        return out + rest

    def _hold_from(self, data: bytes) -> int:
        """The first position whose suffix is a proper prefix of a form (len(data) if none):
        a match could still start there once more bytes arrive."""
        end = len(data)
        window = max(0, end - self._longest + 1)
        candidates: list[int] = []
        for first in self._by_first_byte:
            position = data.find(first, window)
            while position != -1:
                candidates.append(position)
                position = data.find(first, position + 1)
        for position in sorted(candidates):
            tail = data[position:]
            for form in self._by_first_byte[data[position]]:
                if len(form) > len(tail) and form.startswith(tail):
                    return position
        return end

    def _redact(self, data: bytes, hold: int) -> tuple[bytes, bytes]:
        """Replace matches starting before ``hold``; return (released, held back)."""
        matches: list[tuple[int, int]] = []
        for form in self._forms:
            position = data.find(form)
            while position != -1:
                matches.append((position, -len(form)))
                position = data.find(form, position + 1)
        if not matches:
            return data[:hold], data[hold:]
        matches.sort()  # leftmost first; at one position, longest first
        pieces: list[bytes] = []
        cursor = 0
        for start, negative_length in matches:
            if start >= hold:
                break
            if start < cursor:
                continue  # overlaps a match already taken
            pieces.append(data[cursor:start])
            pieces.append(REPLACEMENT)
            cursor = start - negative_length
        released_to = max(cursor, hold)
        pieces.append(data[cursor:released_to])
        return b"".join(pieces), data[released_to:]


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """One whole string with every form of every secret replaced: for values that reach
    a client outside the output streams (the variables a summary returns)."""
    redactor = Redactor(secrets)
    if not redactor.active:
        return text
    redacted = redactor.feed(text.encode()) + redactor.flush()
    return redacted.decode("utf-8", errors="replace")

"""Header values → one line of text: unfolding, RFC 2047 encoded words (also split across
words), raw 8-bit text, RFC 2231 parameters, message ids and dates; lenient base64."""

from __future__ import annotations

import binascii
import re
from datetime import datetime, timezone
from email import utils as email_utils
from urllib.parse import unquote_to_bytes

from mailbot.message.charsets import (
    charset_label,
    decode_text_bytes,
    guess_text,
)

_ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([BbQq])\?([^?]*)\?=")
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]")
_BASE64_PADDING = re.compile(rb"=+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def decode_header_value(value: str | bytes) -> str:
    """Decode one header value to a single line of text.

    Unfolds, decodes RFC 2047 encoded words (also without spaces around them, and characters
    split across adjacent words: their bytes are joined before decoding) and raw 8-bit or
    ISO-2022-JP text. Control characters, including encoded CR/LF, become spaces, so a decoded
    value can never smuggle a header line into a reply.
    """
    raw = _FOLD.sub(b"", to_bytes(value))
    pieces: list[str] = []
    run = bytearray()  # decoded bytes of adjacent encoded words in one charset
    run_charset = ""
    pos = 0
    for match in _ENCODED_WORD.finditer(raw):
        gap = raw[pos : match.start()]
        # RFC 2047 §6.2: whitespace between two encoded words is not part of the text.
        if gap and not (pos > 0 and gap.isspace()):
            _flush_words(run, run_charset, pieces)
            pieces.append(_decode_raw(gap))
        charset = charset_label(match.group(1).decode("ascii", "replace"))
        if run and charset != run_charset:
            _flush_words(run, run_charset, pieces)
        run_charset = charset
        run += _decode_word_payload(match.group(2), match.group(3))
        pos = match.end()
    _flush_words(run, run_charset, pieces)
    pieces.append(_decode_raw(raw[pos:]))
    return one_line("".join(pieces))


def _flush_words(run: bytearray, charset: str, pieces: list[str]) -> None:
    if run:
        pieces.append(decode_text_bytes(bytes(run), charset)[0])
        run.clear()


def _decode_word_payload(encoding: bytes, text: bytes) -> bytes:
    if encoding in (b"B", b"b"):
        return b64decode_lenient(text)
    return binascii.a2b_qp(text, header=True)


def b64decode_lenient(text: bytes | str) -> bytes:
    """Base64 (bytes, or ASCII text) with junk characters dropped and padding repaired; padding
    in the middle (chunks encoded one by one and concatenated) ends a chunk instead of the data."""
    if ("=" if isinstance(text, str) else b"=") not in text.rstrip()[:-2]:
        # No padding before the end: binascii skips line breaks and junk itself, without the
        # copies below (a 15 MB attachment: ~60 MB less at the peak).
        try:
            return binascii.a2b_base64(text)
        except binascii.Error:
            pass  # padding to repair
    if isinstance(text, str):
        text = text.encode("ascii")
    return b"".join(_b64decode_chunk(chunk) for chunk in _BASE64_PADDING.split(_NOT_BASE64.sub(b"", text)))


def _b64decode_chunk(chunk: bytes) -> bytes:
    remainder = len(chunk) % 4
    if remainder == 1:  # one lone character carries no whole byte
        chunk = chunk[:-1]
    elif remainder:
        chunk += b"=" * (4 - remainder)
    return binascii.a2b_base64(chunk)


def _decode_raw(raw: bytes) -> str:
    """Header text outside encoded words: ASCII, or raw 8-bit / ISO-2022-JP bytes (guessed)."""
    if raw.isascii() and b"\x1b" not in raw:
        return raw.decode("ascii")
    return guess_text(raw)


def to_bytes(value: str | bytes) -> bytes:
    """Header text back to bytes: raw 8-bit bytes that the parser kept as surrogates return as
    they were, real characters become UTF-8."""
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # surrogates the parser did not make
        return value.encode("utf-8", "replace")


def one_line(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()


# --- parameters (Content-Type / Content-Disposition) -----------------------------------------

# One ';'-separated segment; a quoted string may hide ';' and may be left unterminated.
_PARAM_SEGMENT = re.compile(r'(?:[^;"]|"(?:[^"\\]|\\.)*"?)+', re.S)
_RFC2231_NAME = re.compile(r"^(?P<name>[^*]+)\*(?:(?P<num>\d{1,4})(?P<enc>\*)?)?$")
_QUOTED_PAIR = re.compile(r'\\([\\"])')
FOLD_TEXT = re.compile(r"\r?\n(?=[ \t])")


def parse_params(value: str) -> tuple[str, dict[str, str]]:
    """'attachment; filename*=...' → ('attachment', {'filename': decoded}); never raises."""
    segments = _PARAM_SEGMENT.findall(FOLD_TEXT.sub("", value))
    main = ""
    if segments and "=" not in segments[0]:
        main = segments.pop(0).strip().lower()
    pairs: list[tuple[str, str]] = []
    for segment in segments:
        name, _, val = segment.partition("=")
        name, val = name.strip().lower(), val.strip()
        if not name:
            continue
        if val.startswith('"'):
            val = _QUOTED_PAIR.sub(r"\1", val[1:].removesuffix('"'))
        pairs.append((name, val))
    return main, _assemble_params(pairs)


def _assemble_params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Join RFC 2231 continuations and decode every value (RFC 2231, RFC 2047, raw 8-bit)."""
    plain: dict[str, str] = {}
    extended: dict[str, list[tuple[int, bool, str]]] = {}
    for name, val in pairs:
        match = _RFC2231_NAME.match(name)
        if match is None:
            plain.setdefault(name, val)  # a duplicated parameter: the first one counts
            continue
        num = match["num"]
        encoded = num is None or match["enc"] is not None
        extended.setdefault(match["name"], []).append((int(num or 0), encoded, val))
    params = {name: decode_header_value(val) for name, val in plain.items()}
    for name, pieces in extended.items():
        params[name] = _decode_rfc2231(pieces)  # the RFC 2231 form wins over a plain one
    return params


def _decode_rfc2231(pieces: list[tuple[int, bool, str]]) -> str:
    pieces.sort(key=lambda piece: piece[0])
    if not any(encoded for _, encoded, _ in pieces):
        return decode_header_value("".join(val for _, _, val in pieces))
    charset: str | None = None
    chunks: list[bytes] = []
    for index, (_, encoded, val) in enumerate(pieces):
        raw = to_bytes(val)
        if index == 0 and encoded and raw.count(b"'") >= 2:
            label, _lang, raw = raw.split(b"'", 2)
            charset = label.decode("ascii", "replace")
        chunks.append(unquote_to_bytes(raw) if encoded else raw)
    return one_line(decode_text_bytes(b"".join(chunks), charset)[0])



# --- ids and dates

MSG_ID = re.compile(r"<[^<>]*>")
WHITESPACE = re.compile(r"\s+")

def msg_ids(value: str) -> list[str]:
    """Message ids in a header value, with angle brackets; bare tokens when there are none."""
    ids = [WHITESPACE.sub("", found) for found in MSG_ID.findall(value)]
    return ids or value.split()


def first_msg_id(value: str) -> str | None:
    ids = msg_ids(value)
    return ids[0] if ids else None


def parse_date(value: str) -> datetime | None:
    """An aware datetime, or None; a date without zone (or -0000) is taken as UTC."""
    if not value.strip():
        return None
    try:
        parsed = email_utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)

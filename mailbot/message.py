"""Bytes of one mail → `Mail`: decoded headers, addresses, body text and attachments.

Why it is built this way:

* The stdlib parser runs with ``policy=compat32``. The default policy's header parser raises
  ``AttributeError`` on ``To: unlisted-recipients:; (no To-header on input)`` (real bounces) and
  is quadratic on a Subject of 20,000 encoded words; compat32 only splits lines, and every header
  is decoded here, from its raw bytes, by code that is linear in its input.
* Japanese mail is decoded as Windows writes it: ISO-2022-JP via Shift_JIS into cp932
  (CP50220 style, so ①, ㈱, 髙, 﨑, Ⅱ, № survive), every Shift_JIS label as cp932, and the
  JIS/cp932 mapping differences (U+301C vs U+FF5E …) folded onto the cp932 side.
* Work is bounded: header fields are cut at ``max_header_bytes``, and the parse stops as soon
  as the part count or nesting depth passes its limit (counted while the parser attaches parts,
  not after it has built 20,000 of them).
* Broken input is repaired, not refused: bad base64, missing boundaries, unknown charsets and
  the like end in ``Mail.defects``. Only input that is not a mail at all, or has too many parts
  or nests them too deep, raises `UnreadableMail`.
"""

from __future__ import annotations

import binascii
import codecs
import quopri
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from email import utils as email_utils
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesFeedParser
from email.policy import Compat32, compat32
from html import unescape
from html.parser import HTMLParser
from io import BytesIO
from urllib.parse import unquote_to_bytes

from mailbot.model import Address, Attachment, Mail
from mailbot.text import jis_to_cp932

__all__ = ["UnreadableMail", "decode_bytes", "decode_header_value", "parse_mail"]


class UnreadableMail(Exception):
    """The input cannot be read as a mail; `reason` is one short English line for staff."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Charsets
# --------------------------------------------------------------------------------------------

_CP50220 = "x-cp50220"  # our ISO-2022-JP decoder (not a Python codec name)
_EUC_JP = "x-euc-jp"  # euc_jis_2004, falling back to euc_jp

# Every label of a family decodes the way Windows encodes it.
_CHARSET_ALIASES: dict[str, str] = {
    **dict.fromkeys(
        [
            "shift-jis", "shiftjis", "sjis", "s-jis", "x-sjis", "ms932",
            "ms-932", "cp932", "windows-31j", "x-ms-cp932", "csshiftjis", "cswindows31j",
            "ms-kanji", "x-mac-japanese",
        ],
        "cp932",
    ),
    **dict.fromkeys(
        [
            "iso-2022-jp", "iso-2022-jp-ms", "iso-2022-jp-1", "iso-2022-jp-2", "iso-2022-jp-3",
            "iso-2022-jp-2004", "iso2022jp", "csiso2022jp", "csiso2022jp2", "cp50220",
            "cp50221", "cp50222", "jis", "x-jis",
        ],
        _CP50220,
    ),
    **dict.fromkeys(
        [
            "euc-jp", "eucjp", "x-euc-jp", "x-euc", "ujis", "cseucpkdfmtjapanese", "cp51932",
            "euc-jis-2004", "euc-jisx0213",
        ],
        _EUC_JP,
    ),
    **dict.fromkeys(["utf-8", "utf8", "utf-8-sig", "unicode-1-1-utf-8", "x-unicode20utf8"], "utf-8"),
    # Supersets that mail clients actually use behind these labels.
    "gb2312": "gbk",
    "x-gbk": "gbk",
    "euc-cn": "gbk",
    "ks-c-5601-1987": "cp949",
    "euc-kr": "cp949",
    "tis-620": "cp874",
    "iso-8859-8-i": "iso8859-8",
}

# Labels that say nothing: guess instead. US-ASCII is here because old Japanese mailers send
# ISO-2022-JP (7-bit) under it.
_GUESS_LABELS = frozenset(
    {"", "us-ascii", "ascii", "ansi-x3.4-1968", "unknown-8bit", "x-unknown", "unknown",
     "default", "x-user-defined", "none"}
)

# Python codecs that are not mail charsets (and some are slow or always fail).
_REFUSED_CODECS = frozenset(
    {"punycode", "idna", "undefined", "unicode_escape", "raw_unicode_escape", "mbcs", "oem"}
)

# JIS X 0208 cells that the stdlib JIS/EUC codecs map differently from cp932. The mailbox is
# read by people on Windows and matched by patterns, so both spellings become cp932's.

_JIS_ESCAPE = re.compile(rb"\x1b(?:\$[@B]|\$\([@-Z]|\([BIJ])")


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode `data` declared as `charset` (None/unknown: guess). Never raises on bad bytes."""
    return _decode(data, charset)[0]


def _decode(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """The text, and a short note when the declared charset was unusable or wrong."""
    label = _label(charset)
    if label in _GUESS_LABELS:
        return _normalise(_guess(data)), None
    codec = _codec_for(label)
    if codec is None:
        return _normalise(_guess(data)), f"unknown charset {label!r}, guessed"
    if codec != _CP50220 and data.isascii() and _JIS_ESCAPE.search(data) and _ascii_based(codec):
        # 7-bit text with ISO-2022-JP escapes is ISO-2022-JP, whatever the label claims.
        return _normalise(_decode_iso2022jp(data)), f"charset {label} had ISO-2022-JP escapes"
    try:
        return _normalise(_decode_strict(data, codec)), None
    except UnicodeDecodeError:
        pass
    if codec != "utf-8" and _is_utf8(data):
        return _normalise(data.decode("utf-8")), f"charset {label} did not fit, read as UTF-8"
    return _normalise(_decode_lenient(data, codec)), f"bad bytes for charset {label}, replaced"


def _label(charset: str | None) -> str:
    """A comparable charset label: lower-case, '-' for '_', no quotes or RFC 2231 language."""
    if not charset:
        return ""
    label = charset.split("*", 1)[0].strip().strip("\"'").strip().lower()
    return label.replace("_", "-")


def _codec_for(label: str) -> str | None:
    """The codec for a label, or None when Python does not know it as a text encoding."""
    if label in _CHARSET_ALIASES:
        return _CHARSET_ALIASES[label]
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):  # ValueError: labels with NUL bytes and the like
        return None
    if info.name in _REFUSED_CODECS or not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def _ascii_based(codec: str) -> bool:
    """Whether the codec reads 7-bit bytes as ASCII (so escape sequences would be wrong there)."""
    return not codec.startswith(("iso2022", "utf-16", "utf-32", "utf-7", "hz"))


def _decode_strict(data: bytes, codec: str) -> str:
    if codec == _CP50220:
        if not data.isascii():  # ISO-2022-JP is 7-bit; 8-bit bytes mean a wrong label
            raise UnicodeDecodeError(codec, data, 0, 1, "8-bit byte in ISO-2022-JP")
        return _decode_iso2022jp(data)
    if codec == _EUC_JP:
        try:
            return data.decode("euc_jis_2004")
        except UnicodeDecodeError:
            return data.decode("euc_jp")
    if codec == "utf-8":
        return data.decode("utf-8").removeprefix("\ufeff")
    return data.decode(codec)


def _decode_lenient(data: bytes, codec: str) -> str:
    if codec == _CP50220:
        return _decode_iso2022jp(data)  # 8-bit runs are read as cp932 there
    if codec == _EUC_JP:
        return data.decode("euc_jis_2004", "replace")
    try:
        return data.decode(codec, "replace").removeprefix("\ufeff")
    except UnicodeError:  # a codec that cannot replace (rare); fall back to guessing
        return _guess(data)


def _guess(data: bytes) -> str:
    """Decode bytes of unknown charset: ISO-2022-JP if 7-bit with escapes, UTF-8, cp932, latin-1."""
    if data.isascii():
        return _decode_iso2022jp(data) if _JIS_ESCAPE.search(data) else data.decode("ascii")
    if _is_utf8(data):
        return data.decode("utf-8").removeprefix("\ufeff")
    if _JIS_ESCAPE.search(data):
        return _decode_iso2022jp(data)
    try:
        return data.decode("cp932")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _normalise(text: str) -> str:
    return jis_to_cp932(text)


# --- ISO-2022-JP, CP50220 style ---------------------------------------------------------------

# Escape sequences, shift-out/in (half-width kana in CP50221/2) and line ends (RFC 1468: every
# line ends in ASCII, so a sender's missing ESC ( B must not garble the next line).
_JIS_TOKEN = re.compile(rb"\x1b(?:\$\(?[@-Z]|\([@-Z]|&@)|[\x0e\x0f]|\r\n|[\r\n]")
_JIS_MODES: dict[bytes, str] = {
    b"\x1b$@": "jis0208",
    b"\x1b$B": "jis0208",
    b"\x1b$(@": "jis0208",
    b"\x1b$(B": "jis0208",
    b"\x1b$(D": "jis0212",
    b"\x1b$(O": "jis0213-1",
    b"\x1b$(Q": "jis0213-1",
    b"\x1b$(P": "jis0213-2",
    b"\x1b$A": "gb2312",
    b"\x1b$(C": "ksc5601",
    b"\x1b(B": "ascii",
    b"\x1b(J": "ascii",  # JIS Roman: cp932 reads 0x5C/0x7E as ASCII too
    b"\x1b(H": "ascii",
    b"\x1b(I": "kana",
    b"\x0e": "kana",
    b"\x0f": "ascii",
}
_JIS_PAIR_RUN = re.compile(rb"((?:[\x21-\x7e]{2})+)|([\s\S])")
_KANA_TO_8BIT = bytes(b + 0x80 if 0x21 <= b <= 0x5F else b for b in range(256))
_SET_HIGH_BIT = bytes(b | 0x80 if 0x21 <= b <= 0x7E else b for b in range(256))


def _jis_pair_to_sjis(c1: int, c2: int) -> bytes:
    """JIS X 0208 row/cell bytes → Shift_JIS bytes (arithmetic, so cp932's extensions map)."""
    s1 = ((c1 - 0x21) >> 1) + 0x81
    if s1 > 0x9F:
        s1 += 0x40
    if c1 & 1:
        s2 = c2 + 0x1F
        if s2 >= 0x7F:
            s2 += 1
    else:
        s2 = c2 + 0x7E
    return bytes((s1, s2))


_SJIS_OF_JIS = {
    bytes((c1, c2)): _jis_pair_to_sjis(c1, c2) for c1 in range(0x21, 0x7F) for c2 in range(0x21, 0x7F)
}


def _decode_iso2022jp(data: bytes) -> str:
    """ISO-2022-JP as Windows sends it (CP50220/ISO-2022-JP-MS), never raising."""
    out: list[str] = []
    mode, pos = "ascii", 0
    for match in _JIS_TOKEN.finditer(data):
        if match.start() > pos:
            out.append(_decode_jis_run(data[pos : match.start()], mode))
        token, pos = match.group(), match.end()
        if token[:1] in (b"\r", b"\n"):
            out.append(token.decode("ascii"))
            mode = "ascii"
        elif token != b"\x1b&@":  # ESC & @ only announces JIS X 0208-1990
            mode = _JIS_MODES.get(token, "unknown")
    if pos < len(data):
        out.append(_decode_jis_run(data[pos:], mode))
    return "".join(out)


def _decode_jis_run(run: bytes, mode: str) -> str:
    if mode == "ascii":
        return run.decode("cp932", "replace")  # tolerates raw Shift_JIS pasted into JIS text
    if mode == "kana":
        return run.translate(_KANA_TO_8BIT).decode("cp932", "replace")
    decode_pairs = _PAIR_DECODERS.get(mode)
    if decode_pairs is None:
        return "\ufffd"
    pieces: list[str] = []
    for match in _JIS_PAIR_RUN.finditer(run):
        if match.group(1):
            pieces.append(decode_pairs(match.group(1)))
        else:  # a stray byte inside a two-byte run
            pieces.append(" " if match.group(2) == b" " else "\ufffd")
    return "".join(pieces)


def _decode_pairwise(encoded: bytes, width: int, codec: str) -> str:
    """Decode a run of fixed-width characters; on a bad one, decode one by one so a single bad
    character cannot shift the alignment of the rest."""
    try:
        return encoded.decode(codec)
    except UnicodeDecodeError:
        return "".join(
            encoded[i : i + width].decode(codec, "replace")[:1] for i in range(0, len(encoded), width)
        )


def _jis0208(pairs: bytes) -> str:
    sjis = b"".join([_SJIS_OF_JIS[pairs[i : i + 2]] for i in range(0, len(pairs), 2)])
    return _decode_pairwise(sjis, 2, "cp932")


def _jis_as_euc(codec: str, three_byte: bool = False) -> Callable[[bytes], str]:
    """A decoder for 94×94 sets that Python knows in their EUC form (bytes | 0x80)."""

    def decode(pairs: bytes) -> str:
        euc = pairs.translate(_SET_HIGH_BIT)
        if three_byte:  # the second plane / JIS X 0212 sit behind SS3 (0x8F) in EUC
            euc = b"".join([b"\x8f" + euc[i : i + 2] for i in range(0, len(euc), 2)])
        return _decode_pairwise(euc, 3 if three_byte else 2, codec)

    return decode


_PAIR_DECODERS = {
    "jis0208": _jis0208,
    "jis0212": _jis_as_euc("euc_jp", three_byte=True),
    "jis0213-1": _jis_as_euc("euc_jis_2004"),
    "jis0213-2": _jis_as_euc("euc_jis_2004", three_byte=True),
    "gb2312": _jis_as_euc("gbk"),
    "ksc5601": _jis_as_euc("cp949"),
}


# --------------------------------------------------------------------------------------------
# Headers
# --------------------------------------------------------------------------------------------

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
    raw = _FOLD.sub(b"", _to_bytes(value))
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
        charset = _label(match.group(1).decode("ascii", "replace"))
        if run and charset != run_charset:
            _flush_words(run, run_charset, pieces)
        run_charset = charset
        run += _decode_word_payload(match.group(2), match.group(3))
        pos = match.end()
    _flush_words(run, run_charset, pieces)
    pieces.append(_decode_raw(raw[pos:]))
    return _one_line("".join(pieces))


def _flush_words(run: bytearray, charset: str, pieces: list[str]) -> None:
    if run:
        pieces.append(_decode(bytes(run), charset)[0])
        run.clear()


def _decode_word_payload(encoding: bytes, text: bytes) -> bytes:
    if encoding in (b"B", b"b"):
        return _b64decode_lenient(text)
    return binascii.a2b_qp(text, header=True)


def _b64decode_lenient(text: bytes | str) -> bytes:
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
    return _normalise(_guess(raw))


def _to_bytes(value: str | bytes) -> bytes:
    """Header text back to bytes: raw 8-bit bytes that the parser kept as surrogates return as
    they were, real characters become UTF-8."""
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # surrogates the parser did not make
        return value.encode("utf-8", "replace")


def _one_line(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()


# --- parameters (Content-Type / Content-Disposition) -----------------------------------------

# One ';'-separated segment; a quoted string may hide ';' and may be left unterminated.
_PARAM_SEGMENT = re.compile(r'(?:[^;"]|"(?:[^"\\]|\\.)*"?)+', re.S)
_RFC2231_NAME = re.compile(r"^(?P<name>[^*]+)\*(?:(?P<num>\d{1,4})(?P<enc>\*)?)?$")
_QUOTED_PAIR = re.compile(r'\\([\\"])')
_FOLD_TEXT = re.compile(r"\r?\n(?=[ \t])")


def _parse_params(value: str) -> tuple[str, dict[str, str]]:
    """'attachment; filename*=...' → ('attachment', {'filename': decoded}); never raises."""
    segments = _PARAM_SEGMENT.findall(_FOLD_TEXT.sub("", value))
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
        raw = _to_bytes(val)
        if index == 0 and encoded and raw.count(b"'") >= 2:
            label, _lang, raw = raw.split(b"'", 2)
            charset = label.decode("ascii", "replace")
        chunks.append(unquote_to_bytes(raw) if encoded else raw)
    return _one_line(_decode(b"".join(chunks), charset)[0])


# --- addresses, ids, dates -------------------------------------------------------------------

_MSG_ID = re.compile(r"<[^<>]*>")
_WHITESPACE = re.compile(r"\s+")


def _addresses(raw_values: list[str]) -> tuple[Address, ...]:
    """Every address of the given raw header values. Names are decoded after the split, so an
    encoded comma or bracket in a name cannot change the addresses."""
    found: list[Address] = []
    for raw in raw_values:
        for name, addr in _address_pairs(raw):
            address = Address(decode_header_value(name), _clean_addr(addr))
            if address.name or address.addr:
                found.append(address)
    return tuple(found)


# The stdlib's address parser recurses once per ':' (a RecursionError on mimekit's
# stack-overflow.txt) and copies lists inside groups (quadratic); this one is a single pass.
_ADDRESS_TOKEN = re.compile(
    r"""
      "(?:[^"\\]|\\.)*"?             # quoted string, perhaps unterminated
    | =\?[^?\s]+\?[BbQq]\?[^?]*\?=   # encoded word: may hide ':' ',' '<'
    | [(),;:<>]                        # specials
    | [^"(),;:<>=]+                    # ordinary text
    | =                                # a lone '='
    """,
    re.X | re.S,
)
_COMMENT_STOP = re.compile(r"[()\\]")
_QUOTED_CHAR = re.compile(r"\\(.)", re.S)


class _AddressScan:
    """State of one address while scanning an address list."""

    def __init__(self) -> None:
        self.phrase: list[str] = []
        self.angle: list[str] = []
        self.comments: list[str] = []
        self.in_angle = False
        self.saw_angle = False

    def add(self, text: str) -> None:
        (self.angle if self.in_angle else self.phrase).append(text)

    def pair(self) -> tuple[str, str]:
        name = "".join(self.phrase).strip()
        if not name and not self.saw_angle:
            return "", ""  # nothing, or only a comment such as '(no To-header on input)'
        if self.saw_angle:
            addr = "".join(self.angle).rpartition(":")[2]  # drop an obsolete source route
        elif "@" in name or (name and not any(ch.isspace() for ch in name)):
            addr, name = name, ""  # a bare addr-spec
        else:
            addr = ""  # a name without address
        if not name and self.comments:
            name = " ".join(comment.strip() for comment in self.comments)  # addr (Name)
        return name, addr


def _address_pairs(value: str) -> list[tuple[str, str]]:
    """(display name, addr-spec) pairs of an RFC 5322 address list; tolerant of groups,
    comments, quoted names with commas and unterminated quotes or brackets."""
    value = _FOLD_TEXT.sub("", value)
    pairs: list[tuple[str, str]] = []
    scan = _AddressScan()
    pos = 0
    while pos < len(value):
        match = _ADDRESS_TOKEN.match(value, pos)
        assert match is not None  # the alternatives cover every character
        token, pos = match.group(), match.end()
        if token == "(":
            end = _comment_end(value, pos)
            scan.comments.append(value[pos : end - 1] if value[end - 1 : end] == ")" else value[pos:end])
            pos = end
        elif token.startswith('"'):
            inner = token[1:-1] if len(token) > 1 and token.endswith('"') else token[1:]
            scan.add(_QUOTED_CHAR.sub(r"\1", inner))
        elif token == "<" and not scan.in_angle:
            scan.in_angle = scan.saw_angle = True
            scan.angle.clear()
        elif token == ">" and scan.in_angle:
            scan.in_angle = False
        elif token in (",", ";") and not scan.in_angle:
            pair = scan.pair()
            if pair[0] or pair[1]:
                pairs.append(pair)
            scan = _AddressScan()
        elif token == ":" and not scan.in_angle and not scan.saw_angle and "@" not in "".join(scan.phrase):
            scan = _AddressScan()  # 'group name:' starts a group; its members follow
        elif token not in (")", ">"):
            scan.add(token)
    pair = scan.pair()
    if pair[0] or pair[1]:
        pairs.append(pair)
    return pairs


def _comment_end(value: str, pos: int) -> int:
    """Index just past the ')' that closes a comment opened before `pos` (nesting, escapes)."""
    depth = 1
    while depth:
        match = _COMMENT_STOP.search(value, pos)
        if match is None:
            return len(value)
        pos = match.end()
        if match.group() == "\\":
            pos += 1
        else:
            depth += 1 if match.group() == "(" else -1
    return min(pos, len(value))


def _clean_addr(addr: str) -> str:
    # No RFC 2047 decoding here: an encoded word must not turn into an address.
    text = _to_bytes(addr).decode("utf-8", "replace")
    return _WHITESPACE.sub("", _one_line(text)).strip("<>").lower()


def _msg_ids(value: str) -> list[str]:
    """Message ids in a header value, with angle brackets; bare tokens when there are none."""
    ids = [_WHITESPACE.sub("", found) for found in _MSG_ID.findall(value)]
    return ids or value.split()


def _first_msg_id(value: str) -> str | None:
    ids = _msg_ids(value)
    return ids[0] if ids else None


def _parse_date(value: str) -> datetime | None:
    """An aware datetime, or None; a date without zone (or -0000) is taken as UTC."""
    if not value.strip():
        return None
    try:
        parsed = email_utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# --------------------------------------------------------------------------------------------
# The MIME tree
# --------------------------------------------------------------------------------------------


class _TooBig(Exception):
    """Raised from inside the parser to stop it; turned into UnreadableMail."""


class _Limits:
    def __init__(self, max_parts: int, max_depth: int) -> None:
        self.max_parts = max_parts
        self.max_depth = max_depth
        self.parts = 1


class _Part(Message):
    """A compat32 message that checks the limits as the parser attaches each child, so a
    20,000-part mail costs 1,000 parts of work, not 20,000."""

    _limits: _Limits | None = None
    _depth = 0

    def attach(self, payload: Message) -> None:  # type: ignore[override]
        limits = self._limits
        if limits is not None and isinstance(payload, _Part):
            payload._depth = self._depth + 1
            limits.parts += 1
            if limits.parts > limits.max_parts:
                raise _TooBig(f"more than {limits.max_parts} MIME parts")
            if payload._depth > limits.max_depth:
                raise _TooBig(f"MIME parts nested deeper than {limits.max_depth} levels")
        super().attach(payload)


_FEED_PIECE = 1 << 20


def _parse_tree(data: bytes, max_parts: int, max_depth: int) -> _Part:
    limits = _Limits(max_parts, max_depth)

    def factory(policy=compat32) -> _Part:  # noqa: ANN001 - the parser's factory signature
        part = _Part(policy)
        part._limits = limits
        return part

    parser = BytesFeedParser(_factory=factory, policy=compat32)
    try:
        # In pieces: fed whole, the parser first decodes all of it into one string and splits
        # that into lines (a 20 MB mail: 138 MB at the peak of parse_mail, 82 MB in pieces).
        for start in range(0, len(data), _FEED_PIECE):
            parser.feed(data[start:start + _FEED_PIECE])
        root = parser.close()
    except _TooBig as exc:
        raise UnreadableMail(str(exc)) from None
    except RecursionError:  # only reachable with a max_depth above Python's own limit
        raise UnreadableMail("MIME parts nested too deeply") from None
    return root


_OBSOLETE_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.M)
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def _prepare(data: bytes, notes: list[str]) -> bytes:
    """Repairs the stdlib parser does not make: a UTF-8 BOM, and RFC 5322 obsolete syntax
    `Subject : x` (space before the colon), which it would read as body text."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
        notes.append("UTF-8 byte order mark before the headers removed")
    end_match = _HEADER_END.search(data)
    end = end_match.start() if end_match else len(data)
    header, count = _OBSOLETE_FIELD.subn(rb"\1:", data[:end])
    if count:
        notes.append("space before ':' in header names removed (obsolete syntax)")
        data = header + data[end:]
    return data


def _raw_headers(part: Message, cap: int, notes: list[str] | None = None) -> list[tuple[str, str]]:
    """(lower-case name, raw value) of a part, each value cut at `cap` characters."""
    found: list[tuple[str, str]] = []
    for name, value in part.raw_items():
        name = name.strip().lower()
        if not name:
            continue
        if not isinstance(value, str):
            value = str(value)
        if len(value) > cap:
            if notes is not None:
                notes.append(f"header {name} cut from {len(value)} to {cap} bytes")
            value = _cut(value, cap)
        found.append((name, value))
    return found


def _cut(value: str, cap: int) -> str:
    """The first `cap` characters, without a trailing piece of an encoded word (at most 75
    characters long, RFC 2047 §2), which would otherwise show as '=?UT'."""
    cut = value[:cap]
    space = cut.rfind(" ", max(0, cap - 76))
    return cut[:space] if space > 0 and "=?" in cut[space:] else cut


def _first_raw(part: Message, name: str, cap: int) -> str | None:
    for key, value in part.raw_items():
        if key.strip().lower() == name:
            return str(value)[:cap]
    return None


def _leaves(part: Message) -> Iterator[Message]:
    """Leaf parts in order. A message/* part (a forwarded mail, a DSN report) is one leaf: its
    insides are the attachment, not part of this mail's body."""
    if part.is_multipart() and part.get_content_maintype() != "message":
        for child in part.get_payload():
            yield from _leaves(child)
    else:
        yield part


_NOT_TOKEN = re.compile(r"""[^!#$%&'*+.^_`|~0-9A-Za-z-]""")  # RFC 2045 token characters


def _content_type(part: Message) -> str:
    """Lower-case maintype/subtype, stray characters ('text/plain>') dropped."""
    maintype, _, subtype = part.get_content_type().partition("/")
    maintype, subtype = _NOT_TOKEN.sub("", maintype), _NOT_TOKEN.sub("", subtype)
    if not maintype or not subtype:
        return "application/octet-stream"
    return f"{maintype}/{subtype}".lower()


# --------------------------------------------------------------------------------------------
# Body and attachments
# --------------------------------------------------------------------------------------------

_TRANSFER_ALIASES = {
    "quotedprintable": "quoted-printable",
    "qp": "quoted-printable",
    "7-bit": "7bit",
    "8-bit": "8bit",
    "8bits": "8bit",
    "7bits": "7bit",
}
_UU_ENCODINGS = frozenset({"x-uuencode", "uuencode", "uue", "x-uue"})
_BASE64_JUNK = re.compile(r"[^A-Za-z0-9+/=\s]")
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
_LINE_ENDS = re.compile(r"\r\n?")


@dataclass(frozen=True)
class _Leaf:
    """What the headers of one leaf part say about it."""

    ctype: str
    disposition: str
    filename: str
    charset: str | None

    @property
    def is_body_text(self) -> bool:
        # A multipart leaf has lost its boundary: its raw text is the best body there is.
        text = self.ctype in ("text/plain", "text/html") or self.ctype.startswith("multipart/")
        return text and self.disposition != "attachment" and not self.filename


def _describe(part: Message, cap: int) -> _Leaf:
    _, type_params = _parse_params(_first_raw(part, "content-type", cap) or "")
    disposition, disp_params = _parse_params(_first_raw(part, "content-disposition", cap) or "")
    filename = disp_params.get("filename") or type_params.get("name") or ""
    return _Leaf(_content_type(part), disposition, filename, type_params.get("charset"))


def _read_parts(
    root: Message, names: dict[int, str], cap: int, notes: list[str]
) -> tuple[str, tuple[Attachment, ...]]:
    """The body (the plain parts, else the HTML parts as text) and the attachments."""
    plain: list[str] = []
    html_texts: list[str] = []
    attachments: list[Attachment] = []
    for part in _leaves(root):
        where = names[id(part)]
        leaf = _describe(part, cap)
        if leaf.ctype.startswith("message/") and part.is_multipart():
            attachments.append(Attachment(leaf.filename, leaf.ctype, _message_bytes(part, cap, where, notes)))
        elif leaf.is_body_text:
            data = _payload(part, cap, where, notes)
            if leaf.ctype == "text/html":
                html_texts.append(_decode_text(data, leaf.charset or _meta_charset(data), where, notes))
            else:
                plain.append(_decode_text(data, leaf.charset, where, notes))
        else:
            attachments.append(Attachment(leaf.filename, leaf.ctype, _payload(part, cap, where, notes)))
    # HTML is made text only when it is the body: beside a plain part it is the same words.
    body = "\n".join(plain) if plain else "\n".join(_html_to_text(h, notes) for h in html_texts)
    return body, tuple(attachments)


def _transfer_encoding(part: Message, cap: int) -> str:
    raw = _first_raw(part, "content-transfer-encoding", cap) or ""
    cte = _WHITESPACE.sub("", decode_header_value(raw).partition(";")[0]).lower()
    return _TRANSFER_ALIASES.get(cte, cte)


def _payload(part: Message, cap: int, where: str, notes: list[str]) -> bytes:
    """The decoded payload of a leaf part. Lenient where the stdlib is strict about the label
    ('quoted-printable;', 'QuotedPrintable') and about base64 (junk, padding mid-stream)."""
    cte = _transfer_encoding(part, cap)
    if cte in _UU_ENCODINGS:
        decoded = part.get_payload(decode=True)  # the stdlib falls back to the raw text
        return decoded if isinstance(decoded, bytes) else b""
    # Not get_payload(): for 8-bit text it re-decodes with the declared charset, lossily.
    # _payload holds the parser's text, raw bytes kept as surrogates.
    payload = part._payload  # noqa: SLF001
    text = payload if isinstance(payload, str) else ""
    if cte == "base64":
        if _BASE64_JUNK.search(text):  # raw 8-bit bytes are surrogates here: junk too
            notes.append(f"{where}: invalid characters in base64 ignored")
        # ASCII text is decoded as it is: no bytes copy of a big attachment's base64
        return _b64decode_lenient(text if text.isascii() else _to_bytes(text))
    data = _to_bytes(text)
    if cte == "quoted-printable":
        return quopri.decodestring(data)
    if cte not in ("", "7bit", "8bit", "binary"):
        notes.append(f"{where}: unknown transfer encoding {cte[:40]!r}, left as is")
    return data


def _decode_text(data: bytes, charset: str | None, where: str, notes: list[str]) -> str:
    text, note = _decode(data, charset)
    if note:
        notes.append(f"{where}: {note}")
    return _LINE_ENDS.sub("\n", text)


def _meta_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii") if match else None


class _VerbatimHeaders(Compat32):
    """compat32 that writes header fields back as they were read. Its own refolding goes
    through email.header.Header, quadratic on a Subject of 20,000 encoded words (14 s)."""

    def fold_binary(self, name: str, value: str) -> bytes:
        return _to_bytes(f"{name}: {value}{self.linesep}")


_SERIALISE = _VerbatimHeaders(linesep="\r\n")


def _message_bytes(part: Message, cap: int, where: str, notes: list[str]) -> bytes:
    """A message/* part as bytes (regenerated: the parser keeps no offsets)."""
    out = BytesIO()
    try:
        for inner in part.get_payload():
            BytesGenerator(out, mangle_from_=False, policy=_SERIALISE).flatten(inner)
    except (TypeError, ValueError, LookupError, UnicodeError) as exc:
        notes.append(f"{where}: enclosed message could not be rebuilt ({type(exc).__name__})")
        return b""
    data = out.getvalue()
    cte = _transfer_encoding(part, cap)
    # message/* must be 7bit/8bit/binary, but some clients base64 a forwarded mail anyway.
    if cte == "base64":
        return _b64decode_lenient(data)
    if cte == "quoted-printable":
        return quopri.decodestring(data)
    return data


# --- HTML → text ---------------------------------------------------------------------------

_HTML_SPACE = re.compile(r"[ \t\r\n\f]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_TAG = re.compile(r"<[^>]*>")
_SKIPPED_TAGS = frozenset({"script", "style", "title", "template"})
_BLOCK_TAGS = frozenset(
    {
        "p", "div", "tr", "li", "ul", "ol", "dl", "dt", "dd", "table", "blockquote", "pre",
        "hr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "header", "footer",
        "address", "form", "fieldset", "center", "body",
    }
)


class _HtmlText(HTMLParser):
    """Readable text of an HTML body: script/style dropped, a line per <br>, and block elements
    (<p>, <div>, <tr> …) on lines of their own. <p> gets no blank line: Outlook writes every
    line as a <p class=MsoNormal>, and an empty one (&nbsp;) already is a blank line."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._out: list[str] = []
        self._skip = 0
        self._pre = 0
        self._line_start = True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip += 1
        elif tag == "br":
            self._write("\n")
        elif tag in _BLOCK_TAGS:
            self._end_line()
        elif tag in ("td", "th"):
            self._write(" ")
        if tag == "pre":
            self._pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self._end_line()
        if tag == "pre":
            self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if not self._pre:
            data = _HTML_SPACE.sub(" ", data)
            if self._line_start and data == " ":  # indentation between tags (not &nbsp;)
                return
        self._write(data)

    def _write(self, text: str) -> None:
        if text:
            self._out.append(text)
            self._line_start = text.endswith("\n")

    def _end_line(self) -> None:
        if not self._line_start:
            self._write("\n")

    def text(self) -> str:
        return _tidy_lines("".join(self._out))


def _html_to_text(html: str, notes: list[str]) -> str:
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except AssertionError:  # html.parser's reaction to some malformed <![ ... ]> sections
        notes.append("HTML could not be parsed; tags stripped instead")
        return _tidy_lines(unescape(_TAG.sub("\n", html)))
    return parser.text()


def _tidy_lines(text: str) -> str:
    lines = (line.strip(" \t") for line in text.replace("\xa0", " ").split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")


# --------------------------------------------------------------------------------------------
# parse_mail
# --------------------------------------------------------------------------------------------

_MAX_NOTES = 50
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def parse_mail(
    data: bytes, *, max_header_bytes: int = 256 * 1024, max_parts: int = 1000, max_depth: int = 30
) -> Mail:
    """Parse and decode one mail.

    Raises UnreadableMail when the input has no header fields (not a mail), has more than
    `max_parts` MIME parts, or nests them deeper than `max_depth`. Header fields longer than
    `max_header_bytes` are cut (and noted in `defects`); everything else that is broken is
    repaired and noted in `defects`.
    """
    if not data.strip():
        raise UnreadableMail("empty input")
    notes: list[str] = []
    root = _parse_tree(_prepare(bytes(data), notes), max_parts, max_depth)
    raw = _raw_headers(root, max_header_bytes, notes)
    if not raw:
        raise UnreadableMail("no header fields found: not a mail")
    headers: dict[str, list[str]] = {}
    for name, value in raw:
        headers.setdefault(name, []).append(decode_header_value(value))
    names = _part_names(root)
    body, attachments = _read_parts(root, names, max_header_bytes, notes)
    notes.extend(_parser_defects(root, names))
    return _build_mail(raw, {k: tuple(v) for k, v in headers.items()}, root, body, attachments, notes)


def _build_mail(
    raw: list[tuple[str, str]],
    headers: dict[str, tuple[str, ...]],
    root: Message,
    body: str,
    attachments: tuple[Attachment, ...],
    notes: list[str],
) -> Mail:
    def first(name: str) -> str:
        return headers.get(name, ("",))[0]

    def raw_all(name: str) -> list[str]:
        return [value for key, value in raw if key == name]

    from_addrs = _addresses(raw_all("from"))
    date = _parse_date(first("date"))
    if first("date") and date is None:
        notes.append(f"unreadable Date: {first('date')[:60]!r}")
    received = first("received")
    references = [ref for value in headers.get("references", ()) for ref in _msg_ids(value)]
    return Mail(
        subject=first("subject"),
        sender=from_addrs[0] if from_addrs else None,
        from_addrs=from_addrs,
        reply_to=_addresses(raw_all("reply-to")),
        to=_addresses(raw_all("to")),
        cc=_addresses(raw_all("cc")),
        message_id=_first_msg_id(first("message-id")),
        in_reply_to=_first_msg_id(first("in-reply-to")),
        references=tuple(references),
        date=date,
        received_at=_parse_date(received.rpartition(";")[2]) if ";" in received else None,
        headers=headers,
        content_type=_content_type(root),
        body=body,
        attachments=attachments,
        defects=_limit_notes(notes),
    )


def _part_names(root: Message) -> dict[int, str]:
    """How notes name a part: 'message', or 'part N' in walk order (containers counted)."""
    return {id(part): f"part {index}" if index else "message" for index, part in enumerate(root.walk())}


def _parser_defects(root: Message, names: dict[int, str]) -> list[str]:
    """The stdlib parser's defects (missing boundaries, bad base64 …) as short notes."""
    notes: list[str] = []
    for part in root.walk():
        for defect in getattr(part, "defects", ()):
            words = _CAMEL.sub(" ", type(defect).__name__.removesuffix("Defect")).lower()
            notes.append(f"{names[id(part)]}: {words}")
    return notes


def _limit_notes(notes: list[str]) -> tuple[str, ...]:
    unique = list(dict.fromkeys(notes))
    if len(unique) > _MAX_NOTES:
        unique = unique[:_MAX_NOTES] + [f"… and {len(unique) - _MAX_NOTES} more"]
    return tuple(unique)

"""Bytes in a declared (or no) charset → text, as Windows would show it: every Shift_JIS label
read as cp932, ISO-2022-JP decoded CP50220-style (JIS → Shift_JIS → cp932, so ①, ㈱, 髙, 﨑, Ⅱ,
№ survive), EUC-JP; unknown or wrong labels guessed; never raises on bad bytes."""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable

from mailbot.text import jis_to_cp932

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
    return decode_text_bytes(data, charset)[0]


def decode_text_bytes(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """The text, and a short note when the declared charset was unusable or wrong."""
    label = charset_label(charset)
    if label in _GUESS_LABELS:
        return guess_text(data), None
    codec = _codec_for(label)
    if codec is None:
        return guess_text(data), f"unknown charset {label!r}, guessed"
    if codec != _CP50220 and data.isascii() and _JIS_ESCAPE.search(data) and _ascii_based(codec):
        # 7-bit text with ISO-2022-JP escapes is ISO-2022-JP, whatever the label claims.
        return cp932_forms(_decode_iso2022jp(data)), f"charset {label} had ISO-2022-JP escapes"
    try:
        return _as_windows(_decode_strict(data, codec), codec), None
    except UnicodeDecodeError:
        pass
    if codec != "utf-8" and _is_utf8(data):
        return data.decode("utf-8"), f"charset {label} did not fit, read as UTF-8"
    return _as_windows(_decode_lenient(data, codec), codec), f"bad bytes for charset {label}, replaced"


def charset_label(charset: str | None) -> str:
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
        return guess_text(data)


def guess_text(data: bytes) -> str:
    """Decode bytes of unknown charset: ISO-2022-JP if 7-bit with escapes, UTF-8 (also with a few
    bad bytes, replaced), cp932 unless it gives private-use characters, else latin-1."""
    if data.isascii():
        return cp932_forms(_decode_iso2022jp(data)) if _JIS_ESCAPE.search(data) else data.decode("ascii")
    if _is_utf8(data):
        return data.decode("utf-8").removeprefix("\ufeff")
    if _JIS_ESCAPE.search(data):
        return cp932_forms(_decode_iso2022jp(data))
    utf8 = data.decode("utf-8", "replace").removeprefix("\ufeff")
    if _nearly_utf8(utf8):
        # One bad byte must not turn a whole UTF-8 header or filename into cp932 or latin-1 garbage.
        return utf8
    try:
        text = data.decode("cp932")
    except UnicodeDecodeError:
        text = None
    if text is not None and not _PRIVATE_USE.search(text):
        return text  # cp932 gives Windows's forms already
    return utf8 if any(ord(c) > 0x7F and c != "\ufffd" for c in utf8) else data.decode("latin-1")


# cp932 maps its user-defined area (lead bytes F0-F9) there: bytes of another charset, not text.
_PRIVATE_USE = re.compile("[\ue000-\uf8ff]")


def _nearly_utf8(text: str) -> bool:
    """Decoded as UTF-8 with replacements, at most one bad sequence per 4 good characters beyond
    ASCII (cp932 or latin-1 text read as UTF-8 is nearly all bad sequences: a cp932 lead byte
    is a UTF-8 continuation byte, or starts a sequence its trail byte cannot continue)."""
    bad = text.count("\ufffd")
    good = sum(1 for c in text if ord(c) > 0x7F) - bad
    return good > 0 and bad * 4 <= good


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# The families whose stdlib codecs map some JIS cells differently from cp932 (and cp932 itself,
# whose labels a sender may put on JIS-mapped text): only their text is folded onto cp932's forms.
_JIS_FAMILY = frozenset({"cp932", _CP50220, _EUC_JP, "shift_jis", "shift_jis_2004", "shift_jisx0213", "euc_jp",
                         "euc_jis_2004", "euc_jisx0213", "iso2022_jp", "iso2022_jp_1", "iso2022_jp_2",
                         "iso2022_jp_2004", "iso2022_jp_3", "iso2022_jp_ext"})


def _as_windows(text: str, codec: str) -> str:
    """JIS and Shift_JIS text with cp932's forms of the cells they map differently; any other
    charset's text as it is (a UTF-8 ¢ stays ¢)."""
    return cp932_forms(text) if codec in _JIS_FAMILY else text


def cp932_forms(text: str) -> str:
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


# Plain ISO-2022-JP: only ESC $ B, ESC $ @ and ESC ( B, and every line back in ASCII by its end.
_OTHER_JIS_SHIFT = re.compile(rb"\x1b(?!\$B|\$@|\(B)|[\x0e\x0f]")
_LINE_LEFT_IN_JIS = re.compile(rb"\x1b\$[B@][^\x1b\r\n]*[\r\n]")


def _decode_iso2022jp(data: bytes) -> str:
    """ISO-2022-JP as Windows sends it (CP50220/ISO-2022-JP-MS), never raising; the callers take
    the result to cp932's forms (cp932_forms).

    Plain ISO-2022-JP, which nearly every mail is, goes through the stdlib's codec (C, ~20x this
    module's own reader); anything else — NEC/IBM extensions, half-width kana, other sets, a
    line left in JIS X 0208, stray bytes — is read below, pair by pair."""
    if not _OTHER_JIS_SHIFT.search(data) and not _LINE_LEFT_IN_JIS.search(data):
        try:
            return data.decode("iso2022_jp")
        except UnicodeDecodeError:
            pass
    return _decode_iso2022jp_ms(data)


def _decode_iso2022jp_ms(data: bytes) -> str:
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

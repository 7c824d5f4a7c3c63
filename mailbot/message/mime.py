"""The MIME tree, parsed with bounded work (part count and depth checked as the parser
attaches parts), its leaves described, and their payloads decoded into the body text and the
attachments."""

from __future__ import annotations

import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesFeedParser
from email.policy import Compat32, compat32
from io import BytesIO

from mailbot.message.body import html_to_text
from mailbot.message.charsets import decode_text_bytes
from mailbot.message.headers import (
    WHITESPACE,
    b64decode_lenient,
    decode_header_value,
    parse_params,
    to_bytes,
)
from mailbot.model import Attachment


class UnreadableMail(Exception):
    """The input cannot be read as a mail; `reason` is one short English line for staff."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason





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


def parse_tree(data: bytes, max_parts: int, max_depth: int, notes: list[str] | None = None,
               lost: list[str] | None = None) -> _Part:
    """The MIME tree of `data`, bounded.  Parts hidden by a missing, wrong or reused boundary are
    recovered (and noted in `notes`); where an attachment is evidently lost all the same, `lost`
    says so (the mail is then held as unreadable, not read as one without its attachment)."""
    limits = _Limits(max_parts, max_depth)
    root = _parse(data, limits)
    _recover_lost_parts(root, limits, notes if notes is not None else [], lost if lost is not None else [])
    return root


def _parse(data: bytes, limits: _Limits, depth: int = 0) -> _Part:

    def factory(policy=compat32) -> _Part:  # noqa: ANN001 - the parser's factory signature
        part = _Part(policy)
        part._limits = limits
        part._depth = depth
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


# A delimiter line: "--" and a boundary (RFC 2046 §5.1.1), perhaps the closing one.
_DELIMITER = re.compile(r"^--(\S[^\r\n]{0,199}?)(--)?[ \t]*\r?$", re.M)
# Signs of a part that is not body text, in text where the parser found no parts.
_LOST_ATTACHMENT = re.compile(r"^content-(?:disposition:\s*attachment|type:\s*(?:application|image|audio|video)/)",
                              re.I | re.M)


def _recover_lost_parts(root: _Part, limits: _Limits, notes: list[str], lost: list[str]) -> None:
    """Parts the stdlib parser leaves as text: a multipart whose declared boundary is missing or
    differs from the one used (its parts stay one string), and parts after a close delimiter
    that an inner multipart reusing its parent's boundary made come too early (they end in the
    epilogue).  A lost attachment would make the mail read as one without its form."""
    for index, part in enumerate(list(root.walk())):
        if part.get_content_maintype() != "multipart":
            continue
        where = f"part {index}" if index else "message"
        payload = part._payload  # noqa: SLF001 - the raw text the parser kept
        if isinstance(payload, str):
            found, rest = _delimited_parts(payload, limits, part._depth)
            if found:
                part.set_payload(found)
                notes.append(f"{where}: {len(found)} parts recovered (MIME boundary missing or not the declared one)")
            if _LOST_ATTACHMENT.search(rest):
                lost.append(f"{where}: a MIME boundary is missing and an attachment could not be recovered")
        epilogue = part.epilogue or ""
        if isinstance(part._payload, list) and _DELIMITER.search(epilogue):  # noqa: SLF001
            found, rest = _delimited_parts(epilogue, limits, part._depth)
            if found:
                for child in found:
                    part.attach(child)
                part.epilogue = ""
                notes.append(f"{where}: {len(found)} parts after its end recovered (MIME boundary reused inside)")
            if _LOST_ATTACHMENT.search(rest):
                lost.append(f"{where}: an attachment after the end of the MIME parts could not be recovered")


def _delimited_parts(text: str, limits: _Limits, depth: int) -> tuple[list[_Part], str]:
    """The parts of `text` between delimiter lines of its most frequent boundary, each parsed
    as a part of its own (within the mail's limits), and the text outside them (preamble,
    epilogue, chunks without headers): ([], text) when there are none."""
    delimiters = [(m.group(1), m) for m in _DELIMITER.finditer(text)]
    if not delimiters:
        return [], text
    boundaries = [b for b, _ in delimiters]
    boundary = max(dict.fromkeys(boundaries), key=boundaries.count)
    marks = [m for b, m in delimiters if b == boundary]
    parts: list[_Part] = []
    rest = [text[:marks[0].start()]]
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        end = following.start() if following else len(text)
        chunk = text[mark.end():end].lstrip("\r\n")
        if mark.group(2):  # the close delimiter: what follows is epilogue
            rest.append(text[mark.end():])
            break
        if not re.match(r"[!-9;-~]+:", chunk):  # no header line: not a MIME part
            rest.append(chunk)
            continue
        limits.parts += 1
        if limits.parts > limits.max_parts:
            raise UnreadableMail(f"more than {limits.max_parts} MIME parts")
        parts.append(_parse(to_bytes(chunk), limits, depth + 1))
    return parts, "\n".join(rest)


_OBSOLETE_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.M)
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def prepare(data: bytes, notes: list[str]) -> bytes:
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


def raw_headers(part: Message, cap: int, notes: list[str] | None = None) -> list[tuple[str, str]]:
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


def content_type(part: Message) -> str:
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
# the same characters as bytes (\s of a str pattern takes in \x1c-\x1f too)
_BASE64_TEXT = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=" + bytes([*range(9, 14), *range(28, 33)])
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
    _, type_params = parse_params(_first_raw(part, "content-type", cap) or "")
    disposition, disp_params = parse_params(_first_raw(part, "content-disposition", cap) or "")
    filename = disp_params.get("filename") or type_params.get("name") or ""
    return _Leaf(content_type(part), disposition, filename, type_params.get("charset"))


def read_parts(
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
    body = "\n".join(plain) if plain else "\n".join(html_to_text(h, notes) for h in html_texts)
    return body, tuple(attachments)


def _transfer_encoding(part: Message, cap: int) -> str:
    raw = _first_raw(part, "content-transfer-encoding", cap) or ""
    cte = WHITESPACE.sub("", decode_header_value(raw).partition(";")[0]).lower()
    return _TRANSFER_ALIASES.get(cte, cte)


def _base64_junk(text: str) -> bool:
    """Whether base64 text holds anything but its alphabet and white space (raw 8-bit bytes are
    surrogates here: junk too).  ASCII text is checked by bytes.translate, ~10x the regex's speed
    on an attachment's hundreds of lines."""
    if text.isascii():
        return bool(text.encode("ascii").translate(None, _BASE64_TEXT))
    return _BASE64_JUNK.search(text) is not None


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
        if _base64_junk(text):
            notes.append(f"{where}: invalid characters in base64 ignored")
        # ASCII text is decoded as it is: no bytes copy of a big attachment's base64
        return b64decode_lenient(text if text.isascii() else to_bytes(text))
    data = to_bytes(text)
    if cte == "quoted-printable":
        return quopri.decodestring(data)
    if cte not in ("", "7bit", "8bit", "binary"):
        notes.append(f"{where}: unknown transfer encoding {cte[:40]!r}, left as is")
    return data


def _decode_text(data: bytes, charset: str | None, where: str, notes: list[str]) -> str:
    text, note = decode_text_bytes(data, charset)
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
        return to_bytes(f"{name}: {value}{self.linesep}")


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
        return b64decode_lenient(data)
    if cte == "quoted-printable":
        return quopri.decodestring(data)
    return data

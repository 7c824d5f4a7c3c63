"""Mail the bot writes, byte by byte: header fields, address lists and base64 text parts.

The stdlib's EmailMessage parses every header it is given through its header registry and
refolds it again when flattened: most of what a reply cost.  What the bot writes is simple
enough to write directly: ASCII fields folded at spaces, anything else as RFC 2047 UTF-8 words
(email.header.Header does the encoding and its folding), bodies as base64 UTF-8.

    header_field(name, value)          -> b"Name: value\\r\\n" (folded, encoded when not ASCII)
    address_field(name, [(display, addr)]) -> b"To: 名前 <a@x>, ...\\r\\n"
    base64_text(text)                  -> the UTF-8 text as base64 lines ending in CRLF
    text_mail(head, text)              -> a whole text/plain mail: `head` (written fields), the
                                          MIME fields, the text as base64
"""

from __future__ import annotations

import base64
import re
from email.header import Header

CRLF = "\r\n"
LINE = 78  # RFC 5322's recommended line length
# Header's own default (76) makes encoded words of 76 characters; RFC 2047 allows 75.
WORDS = 75
# Characters that make a display name a quoted-string (RFC 5322 "specials").
_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')


def header_field(name: str, value: str) -> bytes:
    """One header field: ASCII folded at spaces, anything else as RFC 2047 UTF-8 words, folded."""
    if value.isascii():
        return f"{name}: {_fold_ascii(len(name) + 2, value.split(' '), ' ')}{CRLF}".encode("ascii")
    return f"{name}: {Header(value, 'utf-8', WORDS, name).encode(linesep=CRLF)}{CRLF}".encode("ascii")


def address_field(name: str, addresses: list[tuple[str, str]]) -> bytes:
    """An address list field, one `display <addr>` (or bare addr) per entry, folded between them."""
    items = [f"{_display(display)} <{addr}>" if display else addr for display, addr in addresses]
    return f"{name}: {_fold_ascii(len(name) + 2, items, ', ')}{CRLF}".encode("ascii")


def base64_text(text: str) -> bytes:
    return base64.encodebytes(text.encode("utf-8")).replace(b"\n", b"\r\n")


def text_mail(head: list[bytes], text: str) -> bytes:
    mime = (("MIME-Version", "1.0"), ("Content-Type", 'text/plain; charset="utf-8"'),
            ("Content-Transfer-Encoding", "base64"))
    return b"".join(head) + b"".join(header_field(n, v) for n, v in mime) + b"\r\n" + base64_text(text)


def _display(name: str) -> str:
    if not name.isascii():
        return Header(name, "utf-8", WORDS).encode(linesep=CRLF)
    if _SPECIALS.search(name):
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return name


def _fold_ascii(start: int, items: list[str], separator: str) -> str:
    """Join `items` with `separator`, starting a continuation line where the line would pass 78
    characters (an item longer than a line keeps its own)."""
    out, width = "", start
    for i, item in enumerate(items):
        first_line = item.split(CRLF, 1)[0]
        if i and width + len(separator) + len(first_line) > LINE:
            out += separator.rstrip(" ") + CRLF + " "
            width = 1
        elif i:
            out += separator
            width += len(separator)
        out += item
        width = len(item.rsplit(CRLF, 1)[-1]) + (width if CRLF not in item else 0)
    return out

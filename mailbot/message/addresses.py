"""Address headers → `Address` values, in a single linear pass (the stdlib parser recurses
once per ':' and is quadratic inside groups); names decoded only after the split."""

from __future__ import annotations

import re

from mailbot.message.headers import (
    FOLD_TEXT,
    WHITESPACE,
    decode_header_value,
    one_line,
    to_bytes,
)
from mailbot.model import Address


def address_list(raw_values: list[str]) -> tuple[Address, ...]:
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
        self.quoted_local = False  # `"a b"@c.com`: a quoted local part, one address
        self.after_quote = False

    def add(self, text: str, quoted: bool = False) -> None:
        self.quoted_local |= self.after_quote and text.startswith("@")
        self.after_quote = quoted
        (self.angle if self.in_angle else self.phrase).append(text)

    def pair(self) -> tuple[str, str]:
        name = "".join(self.phrase).strip()
        if not name and not self.saw_angle:
            return "", ""  # nothing, or only a comment such as '(no To-header on input)'
        if self.saw_angle:
            addr = "".join(self.angle).rpartition(":")[2]  # drop an obsolete source route
        elif not self.quoted_local and (spec := _spec_among_words(name)) is not None:
            addr, name = spec  # `Big Bug bb@bug.com`: a name, then the address, without <>
        elif "@" in name or (name and not any(ch.isspace() for ch in name)):
            addr, name = name, ""  # a bare addr-spec (perhaps with spaces around its @)
        else:
            addr = ""  # a name without address
        if not name and self.comments:
            name = " ".join(comment.strip() for comment in self.comments)  # addr (Name)
        return name, addr


def _spec_among_words(phrase: str) -> tuple[str, str] | None:
    """(addr-spec, name) when exactly one of several words is a whole addr-spec: the words are
    a name and an address written without angle brackets, never one address to be invented by
    joining them."""
    words = phrase.split()
    specs = [w for w in words if "@" in w.strip("@")]
    if len(words) < 2 or len(specs) != 1:
        return None
    return specs[0], " ".join(w for w in words if w is not specs[0])


def _address_pairs(value: str) -> list[tuple[str, str]]:
    """(display name, addr-spec) pairs of an RFC 5322 address list; tolerant of groups,
    comments, quoted names with commas and unterminated quotes or brackets."""
    value = FOLD_TEXT.sub("", value)
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
            scan.add(_QUOTED_CHAR.sub(r"\1", inner), quoted=True)
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
    text = to_bytes(addr).decode("utf-8", "replace")
    return WHITESPACE.sub("", one_line(text)).strip("<>").lower()

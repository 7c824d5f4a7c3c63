"""Four defects of the mail reader found by comparing it with the PyPI package mail-parser
(issue 13), each on realistic mail: (a) parts hidden by a missing, wrong or reused MIME boundary
are recovered, or the mail is held as unreadable — never remanded as "no attachment"; (b) one bad
byte in nearly-valid UTF-8 costs one character, not the whole header; (c) words beside an address
are a name, not part of an invented address; (d) the JIS/CP932 folding is for Japanese charsets
only."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from test_loop import NOW

from demo.samples import sample_mails
from mailbot.config import embedded_default
from mailbot.message import decode_bytes, decode_header_value, parse_mail
from mailbot.model import Address
from mailbot.pipeline import evaluate

SETTINGS = embedded_default(Path("/nonexistent"))
MIXED = b"----=_NextPart_000_0001_01DC6BF9.940EC25E"  # the Outlook order's outer boundary
ALTERNATIVE = b"----=_NextPart_001_0002_01DC6BF9.940EC25E"  # its text/plain + text/html


@cache
def outlook_order() -> bytes:
    """The samples' Outlook equipment order (ISO-2022-JP, multipart/mixed around a
    multipart/alternative, the encrypted application form as a PDF with an RFC 2231 name)."""
    data = dict(sample_mails(NOW))["order_shibuya"]
    assert MIXED in data and ALTERNATIVE in data
    return data


def declared(data: bytes, boundary: bytes, new: bytes) -> bytes:
    """`data` with only the declaration of `boundary` changed (the delimiter lines kept)."""
    return data.replace(b'boundary="' + boundary + b'"', b'boundary="' + new + b'"', 1)


BROKEN = {
    # The alternative part reuses the outer boundary: the outer one closes after the HTML part,
    # and the form follows in what the parser takes for the epilogue.
    "reused": lambda d: d.replace(ALTERNATIVE, MIXED),
    # The boundary declared is not the one the delimiter lines use.
    "declared_differs": lambda d: declared(d, MIXED, b"----=_NextPart_000_0001_01DC6BF9.000000"),
    # No boundary parameter at all.
    "no_boundary": lambda d: re.sub(rb';\s*boundary="' + re.escape(MIXED) + rb'"', b"", d, count=1),
}


def pdfs(data: bytes) -> list[bytes]:
    return [a.data for a in parse_mail(data).attachments if a.content_type == "application/pdf"]


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_part_hidden_by_a_broken_boundary_is_recovered(case):
    intact = outlook_order()
    broken = BROKEN[case](intact)
    assert broken != intact
    mail = parse_mail(broken)
    assert pdfs(broken) == pdfs(intact) and len(pdfs(intact)) == 1
    assert "顧客" in mail.body or "988776654" in mail.body
    assert any("recovered" in d for d in mail.defects)
    # Decided as the intact mail is: the form is read, not remanded as missing.
    assert evaluate(broken, None, SETTINGS).decision == evaluate(intact, None, SETTINGS).decision


def test_an_attachment_lost_beyond_repair_holds_the_mail_as_unreadable():
    intact = outlook_order()
    # No boundary declared, and the delimiter lines mangled (a relay rewrote "--" as "=="):
    # the text still shows an application/pdf part, which nothing can cut out again.
    broken = BROKEN["no_boundary"](intact).replace(b"\r\n--" + MIXED, b"\r\n==" + MIXED)
    mail = parse_mail(broken)
    assert pdfs(broken) == [] and mail.lost_parts
    e = evaluate(broken, None, SETTINGS)
    assert (e.decision.action.value, e.decision.reasons) == ("hold", ["MAIL_UNREADABLE"])
    assert "ATTACHMENT_MISSING" not in e.decision.reasons


def test_an_outsiders_broken_mail_is_still_decided_by_who_sent_it():
    # The lost part does not matter for a mail no one answers: the gate checks decide first.
    intact = outlook_order().replace(b"i-suzuki@usen.co.jp", b"suzuki.ichiro@example.net")
    broken = BROKEN["no_boundary"](intact).replace(b"\r\n--" + MIXED, b"\r\n==" + MIXED)
    assert parse_mail(broken).lost_parts
    assert evaluate(broken, None, SETTINGS).decision.reasons == ["SENDER_NOT_ALLOWED"]


# --- (b) nearly-valid UTF-8 --------------------------------------------------------------------

def test_one_bad_byte_in_a_utf8_subject_costs_one_character():
    raw = "USEN SPOT 器材発注依頼_988776654 渋谷店".encode()
    damaged = raw.replace("渋".encode(), b"\xe6\xb8")  # a byte lost in a relay
    subject = parse_mail(b"From: a@usen.co.jp\r\nSubject: " + damaged + b"\r\n\r\nbody\r\n").subject
    assert subject == "USEN SPOT 器材発注依頼_988776654 \ufffd谷店"


def test_one_bad_byte_in_a_raw_utf8_filename_costs_one_character():
    name = "申込書_ソレイユ渋谷.pdf".encode().replace("ユ".encode(), b"\xe3\x83")
    data = (b"From: a@usen.co.jp\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
            b"--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"" + name +
            b"\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjcK\r\n--B--\r\n")
    assert parse_mail(data).attachments[0].filename == "申込書_ソレイ\ufffd渋谷.pdf"


def test_a_cp932_guess_with_private_use_characters_is_rejected():
    # F0-F9 lead bytes are cp932's user-defined area: such a guess is not text.
    assert not re.search("[\ue000-\uf8ff]", decode_header_value(b"\xf0\x40\xf5\x80 abc"))
    # Real Shift_JIS is still read as cp932.
    assert decode_header_value("器材発注依頼 ①".encode("cp932")) == "器材発注依頼 ①"
    assert decode_bytes("器材発注依頼".encode("cp932"), None) == "器材発注依頼"


# --- (c) addresses ------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("Big Bug bb@bug.com", Address("Big Bug", "bb@bug.com")),
    ("鈴木 一郎 i-suzuki@usen.co.jp", Address("鈴木 一郎", "i-suzuki@usen.co.jp")),
    ('"Big Bug" bb@bug.com', Address("Big Bug", "bb@bug.com")),
    ("i-suzuki@usen.co.jp (鈴木 一郎)", Address("鈴木 一郎", "i-suzuki@usen.co.jp")),
    ("i-suzuki @ usen.co.jp", Address("", "i-suzuki@usen.co.jp")),  # spaces around @: one address
])
def test_words_beside_an_address_are_a_name_never_part_of_it(value, expected):
    mail = parse_mail(f"From: {value}\r\nSubject: x\r\n\r\nbody\r\n".encode())
    assert mail.sender == expected


# --- (d) the JIS/CP932 folding --------------------------------------------------------------------

def test_utf8_text_keeps_its_characters():
    text = "価格 ¢50 − 割引 ¬ 〜"
    body = parse_mail(b"From: a@usen.co.jp\r\nSubject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                      + text.encode() + b"\r\n").body
    assert body.strip() == text


def test_shift_jis_and_iso_2022_jp_text_is_folded_to_windows_forms():
    assert decode_bytes("〜".encode("iso2022_jp"), "iso-2022-jp") == "～"
    assert decode_bytes("〜".encode("euc_jp"), "euc-jp") == "～"
    assert decode_bytes("～".encode("cp932"), "shift_jis") == "～"


def test_plain_iso2022jp_reads_the_same_through_the_stdlib_codec():
    """The fast path (the stdlib's codec for plain ISO-2022-JP) gives what the CP50220 reader
    gives, cell by cell; what only the reader handles still reaches it (issue 19)."""
    from mailbot.message.charsets import _decode_iso2022jp, _decode_iso2022jp_ms, cp932_forms

    for c1 in range(0x21, 0x7F):
        for c2 in range(0x21, 0x7F):
            line = b"a\x1b$B" + bytes((c1, c2)) + b"\x1b(Bz\r\n"
            assert cp932_forms(_decode_iso2022jp(line)) == cp932_forms(_decode_iso2022jp_ms(line)), hex(c1 << 8 | c2)
    # NEC row 13, a line a sender left in JIS X 0208, half-width kana: the reader's cases
    assert _decode_iso2022jp(b"\x1b$B-!\x1b(B") == "①"
    assert _decode_iso2022jp(b"\x1b$B$\"\r\nabc\r\n") == "あ\r\nabc\r\n"
    assert _decode_iso2022jp(b"\x1b(I1\x1b(B") == "ｱ"

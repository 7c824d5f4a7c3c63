"""mailbot.message: bytes → Mail.

* every file of the malformed-mail corpus (shared/corpora/email) parses or raises UnreadableMail,
  in bounded time and memory;
* the Japanese cases of _synthetic-ja decode to the right text (each file says what it tests in
  its X-Case: header);
* hand-built mails: Outlook multipart/mixed in ISO-2022-JP with an RFC 2231 filename, HTML-only,
  forwarded message/rfc822, Shift_JIS, quoted-printable UTF-8;
* the charset, header and address decoders on their own, and the limits.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import quopri
import re
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import CORPORA
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.message import (
    UnreadableMail,
    decode_bytes,
    decode_header_value,
    parse_mail,
)
from mailbot.model import Address, Mail

EMAIL_CORPUS = CORPORA / "email"
SYNTHETIC = EMAIL_CORPUS / "_synthetic-ja"
JST = timezone(timedelta(hours=9))

# The Windows characters of the brief, as Outlook writes them in ISO-2022-JP (CP50220): JIS rows
# 13 (NEC specials) and 89-92 (NEC-selected IBM extensions), which the stdlib codec rejects.
WINDOWS_CHARS = "①㈱髙﨑Ⅱ№"
WINDOWS_CHARS_JIS = b"\x1b$B-!-j|byu-6-b\x1b(B"

_SURROGATE = re.compile("[\ud800-\udfff]")


def corpus_files() -> list[Path]:
    return sorted(p for p in EMAIL_CORPUS.rglob("*") if p.is_file())


def read(name: str) -> Mail:
    return parse_mail((SYNTHETIC / name).read_bytes())


def jis(text: str) -> bytes:
    """Standard JIS X 0208 text in ISO-2022-JP, by the stdlib encoder (independent of ours)."""
    return text.encode("iso2022_jp")


def encoded_word(text: str, charset: str = "ISO-2022-JP", codec: str = "iso2022_jp") -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode(codec)).decode('ascii')}?="


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("ascii")


def strings_of(mail: Mail) -> list[str]:
    addresses = mail.from_addrs + mail.reply_to + mail.to + mail.cc
    return [
        mail.subject, mail.body, mail.content_type, *mail.defects, *mail.references,
        *(v for values in mail.headers.values() for v in values), *mail.headers,
        *(a.name for a in addresses), *(a.addr for a in addresses),
        *(a.filename for a in mail.attachments), *(a.content_type for a in mail.attachments),
    ]


# --------------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------------


def test_the_corpus_is_there() -> None:
    assert len(corpus_files()) >= 600, f"the mail corpus is missing at {EMAIL_CORPUS}"


@pytest.mark.parametrize(
    "path", corpus_files(), ids=lambda p: str(p.relative_to(EMAIL_CORPUS))
)
def test_every_corpus_file_parses_or_is_unreadable(path: Path) -> None:
    data = path.read_bytes()
    start = time.perf_counter()
    try:
        mail = parse_mail(data)
    except UnreadableMail as exc:
        assert exc.reason and "\n" not in exc.reason
        mail = None
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"{elapsed:.2f} s"
    if mail is None:
        return
    # What later stages rely on: text without lone surrogates (they break every encoder),
    # one-line headers, aware datetimes, a maintype/subtype.
    for text in strings_of(mail):
        assert not _SURROGATE.search(text)
    assert "\n" not in mail.subject and "\r" not in mail.subject
    for ctype in (mail.content_type, *(a.content_type for a in mail.attachments)):
        assert re.fullmatch(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+", ctype), ctype
    for when in (mail.date, mail.received_at):
        assert when is None or when.tzinfo is not None
    assert all(a.addr == a.addr.lower() for a in mail.from_addrs + mail.to + mail.cc + mail.reply_to)
    assert mail.sender == (mail.from_addrs[0] if mail.from_addrs else None)


@pytest.mark.parametrize(
    "name",
    [
        "_synthetic-ja/18a-deep-multipart-2000.eml",
        "_synthetic-ja/18b-20000-parts.eml",
        "_synthetic-ja/18c-many-encoded-words.eml",
        "_synthetic-ja/18d-many-headers.eml",
        "_synthetic-ja/18e-huge-header-line.eml",
        "_synthetic-ja/18f-nested-rfc822-200.eml",
        "flanker/tests/fixtures/messages/enclosed-endless.eml",
        "flanker/tests/fixtures/messages/torture.eml",
        "mimekit/UnitTests/TestData/messages/stack-overflow.txt",
    ],
)
def test_hostile_corpus_files_stay_small(name: str) -> None:
    data = (EMAIL_CORPUS / name).read_bytes()
    tracemalloc.start()
    try:
        try:
            parse_mail(data)
        except UnreadableMail:
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20, f"{peak / 2**20:.0f} MiB"


@pytest.mark.parametrize(
    "name",
    [
        "mail-parser/tests/mails/mail_outlook_1",  # an Outlook .msg file (OLE), not a mail
        "enmime/testdata/mail/erroneous.raw",
        "mime4j/core/src/test/resources/testmsgs/malformedHeader-noheader.msg",
        "flanker/tests/fixtures/messages/dkim/email.01",  # empty
    ],
)
def test_corpus_files_that_are_not_mails(name: str) -> None:
    with pytest.raises(UnreadableMail):
        parse_mail((EMAIL_CORPUS / name).read_bytes())


def test_corpus_repairs() -> None:
    # A UTF-8 BOM before the headers would otherwise turn the whole mail into body text.
    mail = parse_mail((EMAIL_CORPUS / "mimekit/UnitTests/TestData/messages/feedback-report.txt").read_bytes())
    assert mail.subject == "FW: Earn money" and mail.sender == Address("", "abusedesk@example.com")
    # RFC 5322 obsolete syntax: space before the colon.
    mail = parse_mail((EMAIL_CORPUS / "mime4j/core/src/test/resources/testmsgs/obsolete.msg").read_bytes())
    assert mail.subject.startswith("The obsolete syntax allow spaces before the colon")
    assert mail.date is None and any("Date" in note for note in mail.defects)
    # The stdlib address parser recurses once per ':' in this To: header.
    mail = parse_mail((EMAIL_CORPUS / "mimekit/UnitTests/TestData/messages/stack-overflow.txt").read_bytes())
    assert mail.to[0] == Address("test", "test@test.com")


# --------------------------------------------------------------------------------------------
# _synthetic-ja
# --------------------------------------------------------------------------------------------

REQUEST = "【申請】見積書の送付について（株式会社テスト）"


@pytest.mark.parametrize(
    ("name", "subject"),
    [
        ("01-iso2022jp-baseline.eml", "【申請】見積書の送付について"),
        ("02-iso2022jp-with-cp932-ext.eml", "【申請】見積書①の送付 ㈱テスト"),
        ("03-shiftjis-label-cp932-chars.eml", "【申請】見積書①の送付 ㈱テスト"),
        ("04-encoded-word-split-midchar.eml", REQUEST),  # one UTF-8 character over two words
        ("05-raw-8bit-sjis-subject.eml", REQUEST),
        ("06-raw-utf8-subject.eml", REQUEST),
        ("07-raw-jis-subject.eml", "【申請】見積書の送付について"),
        ("08-encoded-word-no-space.eml", "[test]見積書の送付x"),
        ("09-iso2022jp-no-charset.eml", "見積書の送付"),
        ("10-attachment-filename-variants.eml", "見積書の送付"),
        ("11-charset-alias-MS932.eml", "見積書の送付"),
        ("11-charset-alias-iso-2022-jp-ms.eml", "見積書の送付"),
        ("11-charset-alias-windows-31j.eml", "見積書の送付"),
        ("11-charset-alias-x-sjis.eml", "見積書の送付"),
        ("11-charset-alias-x-unknown.eml", "見積書の送付"),
        ("12-euc-jp.eml", "見積書の送付"),
        ("13-halfwidth-kana-sjis.eml", "ｼﾝｾｲ 見積"),
        ("13b-halfwidth-kana-jis-esc-I.eml", "ｼﾝｾｲ"),
        ("14-prefix-0.eml", "Re: Re: RE: " + REQUEST),
        ("14-prefix-1.eml", "返信: " + REQUEST),
        ("14-prefix-2.eml", "転送: FW: " + REQUEST),
        ("14-prefix-3.eml", "ＲＥ：" + REQUEST),
        ("14-prefix-4.eml", "Re[2]: " + REQUEST),
        ("14-prefix-5.eml", "AW: " + REQUEST),
        ("14-prefix-6.eml", "【至急】Re: " + REQUEST),
        ("15-long-folded-subject.eml", "見積書" * 120),
        ("15b-overlong-line.eml", "見積書" * 120),
        ("16a-ooo-exchange.eml", "自動応答: " + REQUEST),
        ("16b-ooo-no-autosubmitted.eml", "不在通知: " + REQUEST),
        ("16c-ooo-subject-only.eml", "不在通知: " + REQUEST),
        ("16d-list-mail.eml", REQUEST),
        ("16e-dsn-bounce-null-return-path.eml", "Undelivered Mail Returned to Sender"),
        ("16f-unlisted-recipients-group.eml", REQUEST),
        ("17c-replyto-outsider.eml", REQUEST),
        ("17g-duplicate-message-id-1.eml", REQUEST + " 2通目"),
        # Zero-width space and RIGHT-TO-LEFT OVERRIDE are kept: removing them is classify's job.
        ("17h-bidi-zero-width.eml", "【申\u200b請】見積書\u202eの送付"),
    ],
)
def test_synthetic_subjects(name: str, subject: str) -> None:
    mail = read(name)
    assert mail.subject == subject
    assert mail.header("x-case")  # the case description survives as a decoded header


@pytest.mark.parametrize(
    "name", sorted(p.name for p in SYNTHETIC.glob("*.eml") if p.name < "16")
)
def test_synthetic_sender_name_is_decoded(name: str) -> None:
    # ISO-2022-JP encoded word in every case, raw Shift_JIS bytes in 05.
    assert read(name).sender == Address("山田", "yamada@example.co.jp")


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("01-iso2022jp-baseline.eml", "見積書を添付いたします。\nよろしくお願いいたします。\n"),
        ("02-iso2022jp-with-cp932-ext.eml", "①②③\n"),  # NEC row 13 in ISO-2022-JP
        ("03-shiftjis-label-cp932-chars.eml", "本文①②③ ㈱テスト ～ ～"),  # 0x8160 is U+FF5E
        ("05-raw-8bit-sjis-subject.eml", "本文\n"),
        ("09-iso2022jp-no-charset.eml", "見積書を添付いたします。\nよろしくお願いいたします。\n"),
        ("11-charset-alias-MS932.eml", "本文"),
        ("11-charset-alias-iso-2022-jp-ms.eml", "本文"),
        ("11-charset-alias-windows-31j.eml", "本文"),
        ("11-charset-alias-x-sjis.eml", "本文"),
        ("11-charset-alias-x-unknown.eml", "本文"),
        ("12-euc-jp.eml", "本文です\n"),
        ("16e-dsn-bounce-null-return-path.eml", "配信できませんでした。"),
    ],
)
def test_synthetic_bodies(name: str, body: str) -> None:
    assert read(name).body == body


def test_synthetic_charset_notes() -> None:
    assert read("11-charset-alias-MS932.eml").defects == ()  # an alias is not a defect
    assert read("11-charset-alias-x-unknown.eml").defects == ()  # says "unknown": guessed, no note


def test_synthetic_attachment_filename_variants() -> None:
    mail = read("10-attachment-filename-variants.eml")
    # RFC 2231 in ISO-2022-JP, RFC 2231 UTF-8 with continuations, RFC 2047 inside a quoted
    # string (non-standard, common), raw Shift_JIS bytes: all the same name.
    assert [a.filename for a in mail.attachments] == ["見積書_2026年8月.pdf"] * 4
    assert {a.content_type for a in mail.attachments} == {"application/pdf"}
    assert all(a.data.startswith(b"%PDF-1.4") for a in mail.attachments)
    assert mail.body == "見積書を添付いたします。\nよろしくお願いいたします。"


def test_synthetic_bounce_and_auto_replies() -> None:
    dsn = read("16e-dsn-bounce-null-return-path.eml")
    assert dsn.header("return-path") == "<>"
    assert dsn.sender == Address("Mail Delivery System", "mailer-daemon@mx.example.co.jp")
    assert dsn.content_type == "multipart/report"
    assert [a.content_type for a in dsn.attachments] == ["message/delivery-status", "text/rfc822-headers"]
    assert b"Status: 5.1.1" in dsn.attachments[0].data
    assert read("16a-ooo-exchange.eml").header("Auto-Submitted") == "auto-replied"
    assert read("16b-ooo-no-autosubmitted.eml").header("precedence") == "bulk"
    assert read("16d-list-mail.eml").headers["list-id"] == ("<sales.example.co.jp>",)


def test_synthetic_unlisted_recipients_bounce_parses() -> None:
    # The stdlib's default policy raises AttributeError on this To: header.
    mail = read("16f-unlisted-recipients-group.eml")
    assert mail.to == ()
    assert mail.header("to") == "unlisted-recipients:; (no To-header on input)"
    assert mail.sender == Address("", "postmaster@example.co.jp")


def test_synthetic_encoded_crlf_in_subject() -> None:
    # The encoded CR LF is decoded and then made a space: a header value is one line, so the
    # subject cannot carry a "Bcc:" line into a reply. This is what it gives:
    mail = read("17a-subject-encoded-crlf.eml")
    assert mail.subject == REQUEST + "  Bcc: leak@evil.example"
    assert "\r" not in mail.subject and "\n" not in mail.subject


def test_synthetic_spoofing_cases() -> None:
    assert read("17b-from-encoded-lf.eml").from_addrs == (Address("", "badname@example.com"),)
    assert read("17c-replyto-outsider.eml").reply_to == (Address("", "attacker@evil.example"),)
    spoof = read("17d-display-name-spoof.eml")
    assert spoof.sender == Address("yamada@example.co.jp", "attacker@evil.example")
    two = read("17e-two-from.eml")
    assert two.from_addrs == (Address("山田", "yamada@example.co.jp"), Address("", "attacker@evil.example"))
    assert len(two.headers["from"]) == 2


def test_synthetic_message_ids() -> None:
    assert read("17f-no-message-id.eml").message_id is None
    first, second = read("17g-duplicate-message-id-0.eml"), read("17g-duplicate-message-id-1.eml")
    assert first.message_id == second.message_id == "<dup@synthetic.example.co.jp>"
    assert first.date == datetime(2026, 8, 18, 10, 0, tzinfo=JST)


def test_synthetic_limits() -> None:
    with pytest.raises(UnreadableMail, match="more than 1000 MIME parts"):
        read("18b-20000-parts.eml")
    for name, length in (("18c-many-encoded-words.eml", 339_999), ("18e-huge-header-line.eml", 2_000_000)):
        mail = read(name)  # the top headers are cheap to read: cut the field, keep the mail
        assert f"header subject cut from {length} to 262144 bytes" in mail.defects
        assert mail.sender == Address("山田", "yamada@example.co.jp")
    assert read("18c-many-encoded-words.eml").subject == "あ" * (262_144 // 17)
    assert len(read("18d-many-headers.eml").headers) == 50_000 + 7
    # 18a/18f put a blank line before their nesting: it is body text, and stays text.
    assert read("18a-deep-multipart-2000.eml").body.startswith('Content-Type: multipart/mixed; boundary="b0"')


# --------------------------------------------------------------------------------------------
# Hand-built mails
# --------------------------------------------------------------------------------------------


def outlook_order() -> bytes:
    """Outlook 16 on Windows: multipart/mixed ▸ (alternative ▸ plain + HTML) + PDF, in ISO-2022-JP."""
    subject = encoded_word("USEN SPOT 器材発注依頼_988776654")
    name = encoded_word("鈴木 一郎")
    filename = quote("申込書_988776654.pdf".encode("iso2022_jp"), safe="")
    cut = filename.index("%", len(filename) // 2)  # Outlook splits long names into continuations
    plain = (
        jis("事務センター\r\nご担当者様\r\n\r\n顧客CD：988776654\r\n")
        + jis("店舗名：") + WINDOWS_CHARS_JIS + jis("カフェ\r\n")
        + jis("受付時間：9時〜18時\r\n")  # 0x2141, the wave dash
    )
    html = quopri.encodestring(jis("<html><body><p>顧客CD：988776654</p></body></html>"))
    head = crlf(
        "Received: from mx01.usen.co.jp by mail.usen.co.jp; Fri, 20 Nov 2026 10:15:07 +0900 (JST)\n"
        "Received: from EXCH01 by mx01.usen.co.jp; Fri, 20 Nov 2026 10:15:03 +0900\n"
        f"From: {name} <I-Suzuki@USEN.co.jp>\n"
        "To: usen_spot@usen.co.jp\n"
        f'Cc: "Shibuya, Manager" <shibuya-mgr@usen.co.jp>, {encoded_word("渋谷 次長")}\n'
        " <shibuya-sub@usen.co.jp>\n"
        f"Subject: {subject}\n"
        "Date: Fri, 20 Nov 2026 10:15:00 +0900\n"
        "Message-ID: <000001db0001$aaaa$bbbb@usen.co.jp>\n"
        "In-Reply-To: <prev@usen.co.jp>\n"
        "References: <first@usen.co.jp>\n <prev@usen.co.jp>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed;\n\tboundary="----=_NextPart_000_0001_01DB0001.AAAA0000"\n'
        "X-Mailer: Microsoft Outlook 16.0\n"
        "Content-Language: ja\n"
        "\n"
        "This is a multi-part message in MIME format.\n"
        "\n"
        "------=_NextPart_000_0001_01DB0001.AAAA0000\n"
        'Content-Type: multipart/alternative;\n\tboundary="----=_NextPart_001_0002_01DB0001.AAAA0000"\n'
        "\n"
        "\n"
        "------=_NextPart_001_0002_01DB0001.AAAA0000\n"
        'Content-Type: text/plain;\n\tcharset="iso-2022-jp"\n'
        "Content-Transfer-Encoding: 7bit\n"
        "\n"
    )
    middle = crlf(
        "\n------=_NextPart_001_0002_01DB0001.AAAA0000\n"
        'Content-Type: text/html;\n\tcharset="iso-2022-jp"\n'
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
    )
    tail = crlf(
        "\n------=_NextPart_001_0002_01DB0001.AAAA0000--\n"
        "\n"
        "------=_NextPart_000_0001_01DB0001.AAAA0000\n"
        f'Content-Type: application/pdf;\n\tname="{encoded_word("申込書_988776654.pdf")}"\n'
        "Content-Transfer-Encoding: base64\n"
        "Content-Disposition: attachment;\n"
        f"\tfilename*0*=iso-2022-jp''{filename[:cut]};\n"
        f"\tfilename*1*={filename[cut:]}\n"
        "\n"
        f"{base64.encodebytes(b'%PDF-1.7 placeholder').decode('ascii')}"
        "\n------=_NextPart_000_0001_01DB0001.AAAA0000--\n"
    )
    return head + plain + middle + html + tail


def test_outlook_multipart_mixed_iso2022jp() -> None:
    mail = parse_mail(outlook_order())
    assert mail.subject == "USEN SPOT 器材発注依頼_988776654"
    assert mail.sender == Address("鈴木 一郎", "i-suzuki@usen.co.jp")
    assert mail.to == (Address("", "usen_spot@usen.co.jp"),)
    assert mail.cc == (
        Address("Shibuya, Manager", "shibuya-mgr@usen.co.jp"),
        Address("渋谷 次長", "shibuya-sub@usen.co.jp"),
    )
    assert mail.content_type == "multipart/mixed"
    assert mail.body == (
        "事務センター\nご担当者様\n\n顧客CD：988776654\n"
        f"店舗名：{WINDOWS_CHARS}カフェ\n受付時間：9時～18時\n"
    )
    (pdf,) = mail.attachments
    assert pdf.filename == "申込書_988776654.pdf"
    assert pdf.content_type == "application/pdf" and pdf.data == b"%PDF-1.7 placeholder"
    assert mail.message_id == "<000001db0001$aaaa$bbbb@usen.co.jp>"
    assert mail.in_reply_to == "<prev@usen.co.jp>"
    assert mail.references == ("<first@usen.co.jp>", "<prev@usen.co.jp>")
    assert mail.date == datetime(2026, 11, 20, 10, 15, 0, tzinfo=JST)
    assert mail.received_at == datetime(2026, 11, 20, 10, 15, 7, tzinfo=JST)  # the topmost one
    assert mail.headers["received"][1].endswith("Fri, 20 Nov 2026 10:15:03 +0900")
    assert mail.header("X-Mailer") == "Microsoft Outlook 16.0"
    assert mail.defects == ()


def test_html_only_body() -> None:
    page = (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>件名</title>"
        "<style>p { color: red; }</style><script>alert('x')</script></head><body>"
        "<div>事務センター&nbsp;ご担当者様</div><p>お疲れ様です。<br>渋谷支店の鈴木です。</p>"
        "<table><tr><td>顧客CD</td><td>988776654</td></tr><tr><td>店舗名</td><td>A&amp;B 渋谷店</td></tr></table>"
        "<p>よろしく\n   お願いいたします。</p><!-- a comment --></body></html>"
    )
    data = crlf(
        "From: i-suzuki@usen.co.jp\nSubject: html\nMIME-Version: 1.0\n"
        "Content-Type: text/html\nContent-Transfer-Encoding: base64\n\n"  # charset from <meta>
    ) + base64.encodebytes(page.encode("utf-8"))
    mail = parse_mail(data)
    assert mail.content_type == "text/html"
    assert mail.body == (
        "事務センター ご担当者様\nお疲れ様です。\n渋谷支店の鈴木です。\n"
        "顧客CD 988776654\n店舗名 A&B 渋谷店\nよろしく お願いいたします。"
    )
    assert mail.attachments == ()


def test_plain_part_wins_over_html() -> None:
    data = crlf(
        'From: a@b.jp\nSubject: alt\nContent-Type: multipart/alternative; boundary="A"\n\n'
        "--A\nContent-Type: text/plain; charset=utf-8\n\nplain text\n"
        "--A\nContent-Type: text/html; charset=utf-8\n\n<p>html text</p>\n--A--\n"
    )
    mail = parse_mail(data)
    assert mail.body == "plain text" and mail.attachments == ()


def forwarded() -> bytes:
    inner = crlf(
        f"From: {encoded_word('清水', 'UTF-8', 'utf-8')} <shimizu@usen.co.jp>\n"
        f"Subject: {encoded_word('USEN SPOT 器材発注依頼_965432107', 'UTF-8', 'utf-8')}\n"
        'Content-Type: multipart/mixed; boundary="in"\n\n'
        "--in\nContent-Type: text/plain; charset=utf-8\n\nINNER BODY\n"
        "--in\nContent-Type: application/pdf; name=inner.pdf\nContent-Transfer-Encoding: base64\n\n"
        "JVBERi0xLjQ=\n--in--\n"
    )
    outer = crlf(
        "From: d-ogawa@usen.co.jp\nTo: usen_spot@usen.co.jp\nSubject: FW: forwarded\n"
        'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="out"\n\n'
        "--out\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
    ) + "転送します。\n".encode("utf-8") + crlf(
        '--out\nContent-Type: message/rfc822\nContent-Disposition: attachment; filename="fwd.eml"\n\n'
    )
    return outer + inner + crlf("--out--\n")


def test_forwarded_message_is_one_attachment() -> None:
    mail = parse_mail(forwarded())
    assert mail.body == "転送します。"  # the line end before a boundary belongs to the boundary
    assert "INNER BODY" not in mail.body
    (enclosed,) = mail.attachments  # the inner PDF belongs to the enclosed mail, not to this one
    assert enclosed.content_type == "message/rfc822" and enclosed.filename == "fwd.eml"
    inner = parse_mail(enclosed.data)
    assert inner.subject == "USEN SPOT 器材発注依頼_965432107"
    assert inner.sender == Address("清水", "shimizu@usen.co.jp")
    assert inner.body.strip() == "INNER BODY"
    assert [(a.filename, a.data) for a in inner.attachments] == [("inner.pdf", b"%PDF-1.4")]


@pytest.mark.parametrize("name", ["10-attachment-filename-variants.eml", "18c-many-encoded-words.eml"])
def test_forwarded_message_bytes_are_kept(name: str) -> None:
    inner = (SYNTHETIC / name).read_bytes()
    data = crlf(
        'From: a@b.jp\nSubject: fwd\nContent-Type: multipart/mixed; boundary="X"\n\n'
        "--X\nContent-Type: text/plain\n\nsee below\n--X\nContent-Type: message/rfc822\n\n"
    ) + inner + crlf("\n--X--\n")
    start = time.perf_counter()
    mail = parse_mail(data)
    assert time.perf_counter() - start < 1.0  # refolding 20,000 encoded words took 14 s
    assert mail.attachments[0].data == inner  # header fields written back as they were read


def test_outlook_html() -> None:
    page = (
        '<html xmlns:o="urn:schemas-microsoft-com:office:office"><head>'
        "<!--[if gte mso 9]><xml><o:OfficeDocumentSettings>96</o:OfficeDocumentSettings></xml><![endif]-->"
        "<style><!-- p.MsoNormal {margin:0mm;} --></style></head><body lang=JA>\n"
        "<div class=WordSection1>\n<p class=MsoNormal>顧客CD：988776654<o:p></o:p></p>\n"
        "<p class=MsoNormal><o:p>&nbsp;</o:p></p>\n<p class=MsoNormal>店舗名：カフェ<o:p></o:p></p>\n"
        "</div></body></html>"
    )
    data = crlf("From: a@b.jp\nContent-Type: text/html; charset=utf-8\n\n") + page.encode("utf-8")
    assert parse_mail(data).body == "顧客CD：988776654\n\n店舗名：カフェ"


def test_html_the_parser_rejects_is_stripped() -> None:
    data = crlf("From: a@b.jp\nContent-Type: text/html\n\n<p>a</p><![foo bar]><p>b &amp; c</p>\n")
    mail = parse_mail(data)  # html.parser raises AssertionError on this marked section
    assert mail.body == "a\n\nb & c"
    assert "HTML could not be parsed; tags stripped instead" in mail.defects


def test_shift_jis_body() -> None:
    text = f"顧客CD：988776654\n店舗名：{WINDOWS_CHARS}～ソ表\n"  # ソ/表 end in 0x5C
    data = crlf(
        f"From: a@usen.co.jp\nSubject: {encoded_word('発注', 'Shift_JIS', 'cp932')}\n"
        "Content-Type: text/plain; charset=Shift_JIS\nContent-Transfer-Encoding: 8bit\n\n"
    ) + text.replace("\n", "\r\n").encode("cp932")
    mail = parse_mail(data)
    assert mail.subject == "発注"
    assert mail.body == text
    assert mail.defects == ()


def test_quoted_printable_utf8() -> None:
    text = "顧客CD：988776654\n店舗名：カフェ・ド・ソレイユ 渋谷店 " + "長い行" * 30 + "\n"
    body = quopri.encodestring(text.encode("utf-8"))
    assert b"=\n" in body  # soft line breaks
    data = crlf(
        "From: =?UTF-8?Q?=E9=88=B4=E6=9C=A8_=E4=B8=80=E9=83=8E?= <a@usen.co.jp>\n"
        "Subject: =?utf-8?q?USEN_SPOT_=E5=A5=91=E7=B4=84=E5=A4=89=E6=9B=B4_932104567?=\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: Quoted-Printable\n\n"
    ) + body
    mail = parse_mail(data)
    assert mail.subject == "USEN SPOT 契約変更 932104567"
    assert mail.sender == Address("鈴木 一郎", "a@usen.co.jp")
    assert mail.body == text


# --------------------------------------------------------------------------------------------
# Broken input: repaired and noted, or unreadable
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"  \r\n\r\n",
        bytes(range(256)) * 20,
        b"\x89PNG\r\n\x1a\n" + b"\0" * 100,
        b"just some text\nno headers\n",
    ],
    ids=["empty", "blank", "binary", "png", "text"],
)
def test_not_a_mail(data: bytes) -> None:
    with pytest.raises(UnreadableMail) as caught:
        parse_mail(data)
    assert caught.value.reason


def test_bad_base64_and_missing_boundary_are_notes() -> None:
    data = crlf(
        'From: a@b.jp\nSubject: x\nContent-Type: multipart/mixed; boundary="B"\n\n'
        "--B\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
        "5pys5paH*!\n"  # '本文' with junk after it, no padding
        "--B\nContent-Type: application/pdf; name=a.pdf\nContent-Transfer-Encoding: base64\n\n"
        "YQ==Yg==\n"  # chunks encoded one by one
    )  # and no closing boundary
    mail = parse_mail(data)
    assert mail.body == "本文"
    assert mail.attachments[0].data == b"ab"
    assert "part 1: invalid characters in base64 ignored" in mail.defects
    assert any("close boundary not found" in note for note in mail.defects)


def test_multipart_without_boundary_keeps_its_text() -> None:
    data = crlf("From: a@b.jp\nSubject: x\nContent-Type: multipart/mixed\n\nsome text\n")
    mail = parse_mail(data)
    assert mail.body == "some text\n"
    assert "message: no boundary in multipart" in mail.defects


def test_wrong_and_unknown_charsets() -> None:
    def body(charset: str, payload: bytes) -> Mail:
        head = crlf(f"From: a@b.jp\nSubject: x\nContent-Type: text/plain; charset={charset}\n\n")
        return parse_mail(head + payload)

    mail = body("iso-2022-jp", "本文".encode("utf-8"))  # Outlook for Mac's label, UTF-8 bytes
    assert mail.body == "本文" and mail.defects == ("message: charset iso-2022-jp did not fit, read as UTF-8",)
    mail = body("utf-8", jis("本文"))  # 7-bit with JIS escapes is ISO-2022-JP whatever the label says
    assert mail.body == "本文" and mail.defects == ("message: charset utf-8 had ISO-2022-JP escapes",)
    mail = body('"bogus-charset"', "本文".encode("cp932"))
    assert mail.body == "本文" and mail.defects == ("message: unknown charset 'bogus-charset', guessed",)
    mail = body("utf-8", b"caf\xe9 \xff")
    assert mail.body == "caf\ufffd \ufffd"
    assert mail.defects == ("message: bad bytes for charset utf-8, replaced",)
    mail = body("base64", b"YWJj")  # a Python codec, but not a text encoding
    assert mail.body == "YWJj"


def test_broken_headers() -> None:
    data = crlf(
        "From: Broken <a@b.jp\n"  # unterminated angle bracket
        "To: undisclosed-recipients:;\n"
        "Cc: a@b.jp (comment, with comma), \"Quoted, Name\" <Q@B.JP>, group: x@y.jp, z@y.jp;\n"
        "Subject: =?utf-8?B?broken base64?= =?x-nonsense?Q?abc?= =?utf-8?Q?=E6=9C=AC=E6?=\n"
        "Date: yesterday\n"
        "Received: by host without a date\n"
        "Message-ID: no-brackets@host\n\nbody\n"
    )
    mail = parse_mail(data)
    assert mail.sender == Address("Broken", "a@b.jp")
    assert mail.to == ()
    assert [a.addr for a in mail.cc] == ["a@b.jp", "q@b.jp", "x@y.jp", "z@y.jp"]
    assert mail.cc[0].name == "comment, with comma" and mail.cc[1].name == "Quoted, Name"
    assert mail.subject.endswith("abc本\ufffd")  # undecodable bytes become U+FFFD, nothing raises
    assert mail.date is None and mail.received_at is None
    assert mail.message_id == "no-brackets@host"


def test_date_without_zone_is_utc() -> None:
    mail = parse_mail(crlf("From: a@b.jp\nDate: Fri, 20 Nov 2026 01:00:00 -0000\n\nx\n"))
    assert mail.date == datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc)


def test_headers_keep_every_value_in_order() -> None:
    mail = parse_mail(crlf("X-A: 1\nx-a: =?UTF-8?B?5LqM?=\nX-B:\n  folded\n value\nFrom: a@b.jp\n\n"))
    assert mail.headers["x-a"] == ("1", "二")
    assert mail.headers["x-b"] == ("folded value",)
    assert mail.header("X-B") == "folded value" and mail.header("missing") == ""
    assert mail.subject == "" and mail.message_id is None and mail.body == ""


# --------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------


def nested_multipart(depth: int) -> bytes:
    lines = ["From: a@b.jp", "Subject: deep", 'Content-Type: multipart/mixed; boundary="b0"', ""]
    for level in range(1, depth):
        lines += [f"--b{level - 1}", f'Content-Type: multipart/mixed; boundary="b{level}"', ""]
    lines += [f"--b{depth - 1}", "Content-Type: text/plain", "", "deepest"]
    for level in reversed(range(depth)):
        lines += [f"--b{level}--"]
    return crlf("\n".join(lines) + "\n")


def nested_rfc822(depth: int) -> bytes:
    head = "From: a@b.jp\nSubject: nest\nContent-Type: message/rfc822\n\n"
    return crlf(head + "Subject: n\nContent-Type: message/rfc822\n\n" * (depth - 1) + "Subject: n\n\nx\n")


def many_parts(count: int) -> bytes:
    part = "--M\nContent-Type: text/plain\n\nx\n"
    head = 'From: a@b.jp\nSubject: many\nContent-Type: multipart/mixed; boundary="M"\n\n'
    return crlf(head + part * count + "--M--\n")


def test_nesting_limit() -> None:
    assert parse_mail(nested_multipart(30)).body == "deepest"
    with pytest.raises(UnreadableMail, match="nested deeper than 30 levels"):
        parse_mail(nested_multipart(31))
    with pytest.raises(UnreadableMail, match="nested deeper than 30 levels"):
        parse_mail(nested_rfc822(200))
    start = time.perf_counter()
    with pytest.raises(UnreadableMail):
        parse_mail(nested_multipart(5000))
    assert time.perf_counter() - start < 2.0
    assert parse_mail(nested_multipart(40), max_depth=50).body == "deepest"


def test_parts_limit() -> None:
    assert len(parse_mail(many_parts(999)).body) == 999 * 2 - 1  # "x\n" joined by "\n"
    with pytest.raises(UnreadableMail, match="more than 1000 MIME parts"):
        parse_mail(many_parts(1000))  # plus the multipart itself
    with pytest.raises(UnreadableMail, match="more than 10 MIME parts"):
        parse_mail(many_parts(10), max_parts=10)
    start = time.perf_counter()
    with pytest.raises(UnreadableMail):
        parse_mail(many_parts(200_000))
    assert time.perf_counter() - start < 2.0


def test_header_limit_cuts_the_field() -> None:
    data = crlf("From: a@b.jp\nSubject: " + "=?UTF-8?B?44GC?= " * 100 + "\nX-Other: kept\n\nx\n")
    mail = parse_mail(data, max_header_bytes=170)
    assert mail.subject == "あ" * 10
    assert mail.header("x-other") == "kept"
    assert "header subject cut from 1700 to 170 bytes" in mail.defects


# --------------------------------------------------------------------------------------------
# decode_bytes
# --------------------------------------------------------------------------------------------

SHIFT_JIS_LABELS = ["Shift_JIS", "shift-jis", "SJIS", "x-sjis", "windows-31j", "MS932", "cp932", "csShiftJIS"]
JIS_LABELS = ["ISO-2022-JP", "iso-2022-jp-ms", "ISO-2022-JP-2", "iso-2022-jp-3", "CP50220", "csISO2022JP"]


@pytest.mark.parametrize("label", SHIFT_JIS_LABELS)
def test_every_shift_jis_label_is_cp932(label: str) -> None:
    text = f"{WINDOWS_CHARS}～－￠￡￢∥ｶﾅ表"
    assert decode_bytes(text.encode("cp932"), label) == text


@pytest.mark.parametrize("label", JIS_LABELS)
def test_every_iso2022jp_label_reads_windows_characters(label: str) -> None:
    assert decode_bytes(jis("株式会社") + WINDOWS_CHARS_JIS, label) == "株式会社" + WINDOWS_CHARS
    # The stdlib codec alone cannot (the reason for the CP50220 decoder):
    assert WINDOWS_CHARS not in WINDOWS_CHARS_JIS.decode("iso2022_jp", "replace")


def test_iso2022jp_details() -> None:
    assert decode_bytes(b"\x1b(I<]>2\x1b(B", "iso-2022-jp") == "ｼﾝｾｲ"  # JIS X 0201 kana
    assert decode_bytes(b"\x0e<]>2\x0f", "iso-2022-jp") == "ｼﾝｾｲ"  # the same by SO/SI (CP50221)
    assert decode_bytes(b"\x1b$B$\"\nabc", "iso-2022-jp") == "あ\nabc"  # ASCII again after a line end
    assert decode_bytes(b"\x1b$(D0!\x1b(B", "iso-2022-jp-2") == "丂"  # JIS X 0212
    assert decode_bytes(b"\x1b$B$\"\"\x1b(B", "iso-2022-jp") == "あ\ufffd"  # odd byte
    assert decode_bytes(b"\x1b$B\"/$\"\x1b(B", "iso-2022-jp") == "\ufffdあ"  # unassigned cell, aligned after


def test_jis_and_cp932_divergences_are_folded_to_cp932() -> None:
    jis_forms = "〜‖−¢£¬"  # what the stdlib JIS codecs give for 0x2141, 0x2142, 0x215D, 0x2171 …
    cp932_forms = "～∥－￠￡￢"
    assert decode_bytes(jis(jis_forms), "iso-2022-jp") == cp932_forms
    assert decode_bytes(jis_forms.encode("euc_jp"), "EUC-JP") == cp932_forms
    # UTF-8 text keeps its own characters: a Mac's 〜, and ¢ − ¬ of any non-Japanese text
    # (the comparisons fold both forms themselves, mailbot.text.fold / same_text).
    assert decode_bytes(jis_forms.encode("utf-8"), "utf-8") == jis_forms
    assert decode_bytes(jis_forms.encode("utf-8"), None) == jis_forms


def test_euc_jp() -> None:
    assert decode_bytes("見積書①".encode("euc_jis_2004"), "EUC-JP") == "見積書①"
    assert decode_bytes("丂".encode("euc_jp"), "euc-jp") == "丂"  # JIS X 0212: only euc_jp has it


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ("見積書".encode("utf-8"), "見積書"),
        (jis("見積書"), "見積書"),
        ("見積書".encode("cp932"), "見積書"),
        (b"caf\xe9 au lait", "café au lait"),
        (b"plain ascii", "plain ascii"),
    ],
)
@pytest.mark.parametrize("label", [None, "", "us-ascii", "x-unknown", "unknown-8bit"])
def test_guessing_order(data: bytes, text: str, label: str | None) -> None:
    # utf-8, ISO-2022-JP (escapes), cp932, latin-1
    assert decode_bytes(data, label) == text


@settings(max_examples=200)
@given(
    st.binary(max_size=300),
    st.sampled_from([None, "utf-8", "iso-2022-jp", "shift_jis", "euc-jp", "x-unknown", "base64",
                     "utf-16", "utf-7", "punycode", "idna", "rot13", "iso-8859-1", "\x00"]),
)
def test_decode_bytes_never_raises(data: bytes, label: str | None) -> None:
    assert isinstance(decode_bytes(data, label), str)


@functools.cache
def _reference():  # noqa: ANN202 - the research helper of the corpus, loaded from its path
    spec = importlib.util.spec_from_file_location("iso2022jp_ms", CORPORA / "tools" / "iso2022jp_ms.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cp932_cell(pair: tuple[int, int]) -> bool:
    try:
        _reference().jis_pair_to_sjis(*pair).decode("cp932")
    except UnicodeDecodeError:
        return False
    return True


_JIS_CELLS = st.tuples(st.integers(0x21, 0x7E), st.integers(0x21, 0x7E)).filter(_cp932_cell)
_KANA_7BIT = bytes(range(128)) + bytes(c - 0x80 for c in range(128, 256))  # 0xA1-0xDF → 0x21-0x5F


def _jis_run(cells: list[tuple[int, int]]) -> bytes:
    return b"\x1b$B" + b"".join(bytes(cell) for cell in cells) + b"\x1b(B"


def _ascii_run(data: bytes) -> bytes:
    return bytes(c & 0x7F for c in data if c & 0x7F not in (0x0A, 0x0D, 0x0E, 0x0F, 0x1B))


def _kana_run(kana: str) -> bytes:
    return b"\x1b(I" + kana.encode("cp932").translate(_KANA_7BIT) + b"\x1b(B"


_JIS_RUNS = st.lists(
    st.one_of(
        st.lists(_JIS_CELLS, min_size=1, max_size=8).map(_jis_run),
        st.binary(max_size=6).map(_ascii_run),
        st.text("ｱｲｳｴｵｶﾞﾊﾟｰ", min_size=1, max_size=5).map(_kana_run),
    ),
    max_size=6,
)


@settings(max_examples=300)
@given(_JIS_RUNS)
def test_iso2022jp_matches_the_reference_tool(runs: list[bytes]) -> None:
    data = b"".join(runs)  # (no line ends: ours resets to ASCII there, the reference does not)
    assert decode_bytes(data, "iso-2022-jp") == _reference().decode_iso2022jp_ms(data)


# --------------------------------------------------------------------------------------------
# decode_header_value
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("=?UTF-8?B?44CQ55Sz6A==?=\r\n =?UTF-8?B?q4vjgJE=?=", "【申請】"),  # split inside a character
        ("=?UTF-8?Q?=E7=94?= =?UTF-8?Q?=B3?=", "申"),
        ("[x]=?SHIFT_JIS?B?jKmQz4+R?=x", "[x]見積書x"),  # no spaces around the word
        ("=?ISO-2022-JP?B?GyRCOCsbKEI=?= =?UTF-8?B?56mN?=", "見積"),  # two charsets side by side
        ("a =?UTF-8?Q?b_c?= d", "a b c d"),  # spaces around a word are text
        ("=?UTF-8*ja?B?5pel5pys?=", "日本"),  # RFC 2231 language tag
        ("=?utf-8?b?5pel5pys?=", "日本"),
        ("=?UTF-8?B?5pel5pys?", "=?UTF-8?B?5pel5pys?"),  # not an encoded word: left alone
        ("=?UTF-8?B?5pel5pys?==?UTF-8?B?5pel5pys?=", "日本日本"),
        ("Re:\r\n\t=?ISO-2022-JP?B?GyRCOCsbKEI=?=", "Re: 見"),  # folding tab: a space
        ("=?UTF-8?B?QQ0KQmNjOiB4QHk=?=", "A  Bcc: x@y"),  # an encoded CR LF becomes spaces
        ("  spaced  ", "spaced"),
    ],
)
def test_decode_header_value(value: str, text: str) -> None:
    assert decode_header_value(value) == text


def test_decode_header_value_raw_bytes() -> None:
    assert decode_header_value("見積書".encode("cp932")) == "見積書"
    assert decode_header_value("見積書".encode("utf-8")) == "見積書"
    assert decode_header_value(jis("見積書")) == "見積書"
    # A str from the compat32 parser keeps raw bytes as surrogates; they decode the same way.
    assert decode_header_value("見積書".encode("cp932").decode("ascii", "surrogateescape")) == "見積書"


def test_decode_header_value_is_linear() -> None:
    value = " ".join(["=?UTF-8?B?44GC?="] * 20_000 + ["=?ISO-2022-JP?B?GyRCJCIbKEI=?="] * 20_000)
    start = time.perf_counter()
    assert decode_header_value(value) == "あ" * 40_000
    assert time.perf_counter() - start < 1.0


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_decode_header_value_never_raises_and_is_one_line(value: str | bytes) -> None:
    text = decode_header_value(value)
    assert not re.search(r"[\x00-\x1f\x7f]", text)
    assert not _SURROGATE.search(text)


_MAIL_LINES = [
    b"From: a@b.jp\r\n",
    b"Subject: =?UTF-8?B?44GC?=\r\n",
    b"To: g:;\r\n",
    b"\r\n",
    b"--B\r\n",
    b"--B--\r\n",
    b'Content-Type: multipart/mixed; boundary="B"\r\n',
    b"Content-Type: message/rfc822\r\n",
    b"Content-Type: text/html\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Disposition: attachment; filename*0*=x''%FF\r\n",
    b"\x1b$B$\"\x1b(B\r\n",
    b"\xff\xfe\r\n",
    b" folded\r\n",
    b"5pys5paH\r\n",
    b"<p>x</p><![y z]>\r\n",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_MAIL_LINES), max_size=40))
def test_parse_mail_never_raises_anything_else(chunks: list[bytes]) -> None:
    try:
        mail = parse_mail(b"".join(chunks))
    except UnreadableMail:
        return
    for text in strings_of(mail):
        assert not _SURROGATE.search(text)

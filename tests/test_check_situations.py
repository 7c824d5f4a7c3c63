"""Every reason code of DOMAIN.md §4 end to end: realistic mails through `mailbot check --json`.

Each situation is a mail as a branch sends it (built from the sample mails of `demo.samples`:
Outlook ISO-2022-JP / Shift_JIS, Outlook for Mac and iPhone UTF-8, the company MX's trace
headers on top), changed the way real mails differ (another customer code, a forgotten CC, a
form with a field left out, a resend, a reply after the cutoff …), with its expected outcome:
kind, customer code, decision and the exact set of reason codes.  Clean situations expect no
reason at all, and "near misses" pin down what must NOT give a code (光ネクスト family vs
mansion, shop names differing only in width/spaces, the withdrawal deadline, a cancellation on
the order's day N …).

All mails go through ONE `mailbot check` run (the sample UNIS extract with extra lines appended,
the sample branch directory), in the order they arrived, so that the in-run history gives
DUPLICATE_REQUEST and CANCEL_AFTER_ORDER as the mailbox would.  Situations that are not about
history use customer codes of their own (with their own UNIS lines), so that they cannot meet.

Times (Asia/Tokyo): the samples arrive on Friday 2026-11-20 between 06:54 and 10:23, the UNIS
extract was taken at 06:00 that day; Monday 2026-11-23 is a national holiday; cutoff 17:00.
"""

from __future__ import annotations

import base64
import csv
import email
import hashlib
import html
import io
import json
import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import Message
from email.policy import compat32
from email.utils import format_datetime, parsedate_to_datetime
from functools import cache
from pathlib import Path

import pytest
from backlog import set_text
from helpers import ROOT, TOKYO
from test_loop import NOW

from demo.forms import (
    application_pdf,
    sample_application,
    scanned_pdf,
    termination_pdf,
)
from demo.samples import (
    _FORMS,  # the values of each sample order's form (private: the source of truth for the samples)
    ISHII,
    ITO,
    KUDO,
    MORI,
    NISHIDA,
    OGAWA,
    OKADA,
    PDF_PASSWORD,
    SAMPLES,
    SUZUKI,
    TAKAHASHI,
    TANAKA,
    WATANABE,
    Person,
    sample_directory,
    sample_extract,
    sample_mails,
)
from demo.samples import encoded_words as sample_encoded_words
from mailbot.forms.model import TerminationForm

# Staff of a branch opened after the directory was last exported (BRANCH_UNKNOWN).
ABE = Person("阿部 拓真", "t-abe@usen.co.jp", "仙台支店", "営業課", "022-261-0105")
SASAKI = Person("佐々木 進", "s-sasaki@usen.co.jp", "仙台支店", "支店長", "022-261-0100")


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=TOKYO)


# ---- the mails -----------------------------------------------------------------------------------


@cache
def samples() -> dict[str, bytes]:
    return dict(sample_mails(NOW))


@cache
def order_form(base_code: str, overrides: tuple[tuple[str, object], ...] = (), encryption: str | None = "aes256",
               password: str = PDF_PASSWORD) -> bytes:
    """The form of the sample order `base_code` (same layout, producer and values), changed by
    `overrides` (ApplicationForm fields, e.g. customer_code)."""
    layout, producer, values = _FORMS[base_code]
    form = sample_application(base_code, **{**values, **dict(overrides)})
    return application_pdf(form, layout=layout, producer=producer, encryption=encryption, password=password)


@cache
def termination_form(code: str, end: date, encryption: str | None = "aes256") -> bytes:
    return termination_pdf(TerminationForm(customer_code=code, termination_date=end, reason="閉店のため"),
                           encryption=encryption, password=PDF_PASSWORD)


@cache
def xlsx_form() -> bytes:
    """What Excel saves: a zip of XML parts (the branch attached the sheet instead of the PDF)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n'
                   '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
        z.writestr("xl/workbook.xml", "<workbook><sheets><sheet name=\"申込書\" sheetId=\"1\"/></sheets></workbook>")
        z.writestr("xl/worksheets/sheet1.xml", "<worksheet>" + "<row><c t=\"s\"><v>0</v></c></row>" * 200
                   + "</worksheet>")
    return buf.getvalue()


_CODECS = {"iso-2022-jp": "iso-2022-jp", "shift_jis": "cp932", "utf-8": "utf-8"}


def encoded_words(text: str, label: str) -> str:
    """RFC 2047 B-encoded words as the mail client writes them (each word self-contained)."""
    return sample_encoded_words(text, label, _CODECS[label.lower()])


class Draft:
    """A sample mail being changed the way a real one would differ.  Chainable; `.bytes()` at the end."""

    def __init__(self, base: str):
        self.base = base
        self.msg: Message = email.message_from_bytes(samples()[base], policy=compat32)
        plain = next(p for p in self.msg.walk() if p.get_content_type() == "text/plain")
        self.label = plain.get_param("charset")  # iso-2022-jp, Shift_JIS, utf-8
        self.subject_text = SAMPLES[base].subject

    # -- headers

    def _set(self, name: str, value: str | None) -> Draft:
        if value is None:
            del self.msg[name]
        elif name in self.msg:
            self.msg.replace_header(name, value)
        else:
            self.msg[name] = value
        return self

    def subject(self, text: str) -> Draft:
        self.subject_text = text
        return self._set("Subject", encoded_words(text, self.label))

    def _addr(self, p: Person | str) -> str:
        return p if isinstance(p, str) else f"{encoded_words(p.name, self.label)} <{p.addr}>"

    def sender(self, p: Person) -> Draft:
        self._set("Return-Path", f"<{p.addr}>")
        return self._set("From", self._addr(p))

    def cc(self, *people: Person | str) -> Draft:
        return self._set("Cc", ", ".join(self._addr(p) for p in people) if people else None)

    def header(self, name: str, value: str | None) -> Draft:
        return self._set(name, value)

    def at(self, received: datetime) -> Draft:
        """Delivered by the MX at `received` (the topmost Received:), sent a few seconds earlier."""
        top = self.msg["Received"]
        self.msg.replace_header("Received", top.rpartition(";")[0] + "; " + format_datetime(received) + " (JST)")
        return self._set("Date", format_datetime(received - timedelta(seconds=4)))

    def via(self, relay: str, auth: str) -> Draft:
        """Delivered from another relay, with these Authentication-Results."""
        top = self.msg["Received"]
        self.msg.replace_header("Received", re.sub(r"^from .*?\r?\n", f"from {relay}\r\n", top, count=1))
        return self._set("Authentication-Results", f"mx01.usen.co.jp;\r\n\t{auth}")

    # -- text

    def _texts(self, fn: Callable[[str, bool], str]) -> None:
        for part in self.msg.walk():
            if part.get_content_maintype() != "text" or part.get_filename():
                continue
            codec = _CODECS[part.get_content_charset()]
            text = part.get_payload(decode=True).decode(codec).replace("\r\n", "\n")
            set_text(part, fn(text, part.get_content_subtype() == "html"), codec)

    def text(self, *pairs: tuple[str, str], strict: bool = True) -> Draft:
        """Replace text in the body (plain and HTML); with `strict`, each must be in the plain text."""
        def edit(text: str, is_html: bool) -> str:
            for old, new in pairs:
                if is_html:
                    text = text.replace(html.escape(old), html.escape(new))
                else:
                    assert not strict or old in text, f"{self.base}: {old!r} not in the body"
                    text = text.replace(old, new)
            return text
        self._texts(edit)
        return self

    def drop(self, *starts: str) -> Draft:
        """Remove the body lines starting with these (an item the branch left out)."""
        def edit(text: str, is_html: bool) -> str:
            for start in starts:
                if is_html:
                    text = re.sub(rf"<(p|div)\b[^>]*>{re.escape(html.escape(start))}.*?</\1>\n?", "", text)
                else:
                    lines = text.split("\n")
                    kept = [ln for ln in lines if not ln.startswith(start)]
                    assert len(kept) < len(lines), f"{self.base}: no line {start!r}"
                    text = "\n".join(kept)
            return text
        self._texts(edit)
        return self

    def person(self, old: Person, new: Person) -> Draft:
        """The same mail written by `new` (self-introduction, signature)."""
        return self.text((old.name, new.name), (f"{old.branch} {old.dept}", f"{new.branch} {new.dept}"),
                         (f"{old.branch}の{old.family}", f"{new.branch}の{new.family}"),
                         (old.tel, new.tel), (old.addr, new.addr), strict=False)

    def code(self, new: str) -> Draft:
        """The same request for another customer: subject, body items, attachment name."""
        old = SAMPLES[self.base].code
        wide = str.maketrans("0123456789", "０１２３４５６７８９")  # as the full-width subject writes it
        self.subject(self.subject_text.replace(old, new).replace(old.translate(wide), new.translate(wide)))
        self.text((old, new), strict=False)
        for part in self.msg.walk():
            if part.get_filename() and old in part.get_filename():
                self._name(part, part.get_filename().replace(old, new))
        return self

    # -- attachments

    def _name(self, part: Message, filename: str) -> None:
        ctype = part.get_content_type()
        del part["Content-Type"], part["Content-Disposition"]
        part["Content-Type"] = f'{ctype};\r\n\tname="{encoded_words(filename, self.label)}"'
        part.add_header("Content-Disposition", "attachment", filename=("utf-8", "", filename))

    def attach(self, filename: str, data: bytes, ctype: str = "application/pdf") -> Draft:
        """Replace the attached form (Outlook: RFC 2047 name, RFC 2231 filename, base64)."""
        part = next(p for p in self.msg.walk() if p.get_filename())
        del part["Content-Type"]
        part["Content-Type"] = ctype
        self._name(part, filename)
        part.set_payload(base64.encodebytes(data).decode("ascii"))
        return self

    def detach(self) -> Draft:
        """No attachment: the mail is its multipart/alternative alone."""
        body = self.msg.get_payload(0)
        self.msg.replace_header("Content-Type", body["Content-Type"])
        self.msg.set_payload(body.get_payload())
        return self

    def bytes(self) -> bytes:
        """The mail, with a Message-ID of its own (of the sample's shape): every mail sent has one."""
        key = hashlib.sha256(self.msg.as_bytes()).hexdigest()
        local, _, domain = self.msg["Message-ID"].strip().strip("<>").rpartition("@")
        digits = iter(key * 2)
        local = re.sub(r"[0-9A-Fa-f]", lambda m: next(digits) if m.group().islower() or m.group().isdigit()
                       else next(digits).upper(), local)
        self._set("Message-ID", f"<{local}@{domain}>")
        return self.msg.as_bytes(policy=compat32.clone(linesep="\r\n"))


def order(base: str, code: str, encryption: str | None = "aes256", password: str = PDF_PASSWORD,
          **form: object) -> Draft:
    """The sample order `base` for customer `code`, its form carrying `code` and `form` changes."""
    pdf = order_form(SAMPLES[base].code, tuple({"customer_code": code, **form}.items()), encryption, password)
    return Draft(base).code(code).attach(f"申込書_{code}.pdf", pdf)


# ---- the UNIS extract ----------------------------------------------------------------------------


def _extract_rows() -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(sample_extract(NOW).decode("cp932"), newline=""))
    header = next(reader)
    return header, [dict(zip(header, row, strict=True)) for row in reader]


def unis(base_code: str, code: str, *, items: tuple[str, ...] | None = None, **columns: str) -> tuple[dict, ...]:
    """UNIS lines of `code`: those of the sample customer `base_code`, with `columns` changed
    (keys are the extract's column names: 店舗名, 契約状態, 受注日, 解約日, 管轄支店名, 回線種別 …)."""
    base = [r for r in _extract_rows()[1] if r["顧客CD"] == base_code]
    assert base, base_code
    if items is not None:
        base = [{**base[0], "契約品目CD": item} for item in items]
    return tuple({**r, "顧客CD": code, **columns} for r in base)


def write_extract(path: Path, extra: list[dict[str, str]]) -> None:
    header, rows = _extract_rows()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    for row in [*rows, *extra]:
        writer.writerow([row[h] for h in header])
    path.write_bytes(buf.getvalue().encode("cp932"))


# ---- the situations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Situation:
    name: str
    build: Callable[[], bytes]
    kind: str
    code: str | None
    decision: str
    reasons: frozenset[str]
    unis: tuple[dict[str, str], ...] = ()  # UNIS lines appended to the sample extract


SITUATIONS: list[Situation] = []


def situation(name: str, build: Callable[[], bytes], kind: str, code: str | None, decision: str,
              *reasons: str, unis: tuple[dict[str, str], ...] = ()) -> None:
    assert name not in {s.name for s in SITUATIONS}, name
    SITUATIONS.append(Situation(name, build, kind, code, decision, frozenset(reasons), unis))


def sample(name: str) -> Callable[[], bytes]:
    return lambda: samples()[name]


EO, CC_, CA, TE, RN, RL, TW = ("equipment_order", "contract_change", "cancellation", "termination",
                               "router_not_removed", "relocation", "termination_withdrawal")
END = date(2026, 12, 31)  # the 解約日 of the sample termination and withdrawal (end of next month)

# -- the sample morning as it is (tests/test_loop.py EXPECTED, with the reasons)
situation("auto_reply", sample("auto_reply"), EO, "912345678", "ignore", "AUTO_REPLY")
situation("bounce", sample("bounce"), "unknown", None, "ignore", "AUTO_REPLY")
situation("order_shibuya", sample("order_shibuya"), EO, "988776654", "accept")
# UNIS 受注日 four weekdays ago and no order accepted by the bot: the router is being made.
situation("cancellation", sample("cancellation"), CA, "921098765", "accept", "CANCEL_AFTER_ORDER")
situation("order_fullwidth", sample("order_fullwidth"), EO, "988123456", "accept")
situation("contract_change", sample("contract_change"), CC_, "932104567", "accept")
situation("order_forwarded", sample("order_forwarded"), EO, "965432107", "accept")
situation("outside_gmail", sample("outside_gmail"), CA, "944556677", "hold", "SENDER_NOT_ALLOWED")
situation("order_multi_units", sample("order_multi_units"), EO, "987650123", "accept")
situation("termination", sample("termination"), TE, "910987654", "accept")
situation("order_no_code", sample("order_no_code"), EO, None, "remand", "CODE_MISSING")
situation("router_not_removed", sample("router_not_removed"), RN, "909876543", "accept")
situation("order_resubmission", sample("order_resubmission"), EO, "976543210", "accept")
situation("relocation", sample("relocation"), RL, "998765432", "accept")
situation("order_8digit", sample("order_8digit"), EO, "98877665", "remand", "CODE_INVALID")
situation("registration_notice", sample("registration_notice"), "registration_notice", "955443322", "remand",
          "REGISTRATION_NOTICE_VIA_DRAGON")
situation("termination_withdrawal", sample("termination_withdrawal"), TW, "945612378", "accept")
situation("order_no_pdf", sample("order_no_pdf"), EO, "943215678", "remand", "ATTACHMENT_MISSING")
situation("unknown_subject", sample("unknown_subject"), "unknown", None, "hold", "UNKNOWN_SUBJECT")

# -- the subject's code
situation("cancellation_code_forgotten",
          lambda: Draft("cancellation").code("921098701").subject("USEN SPOT キャンセル申請").bytes(),
          CA, None, "remand", "CODE_MISSING")
situation("change_code_10_digits",
          lambda: Draft("contract_change").code("932104501").subject("USEN SPOT 契約変更_9321045010").bytes(),
          CC_, "9321045010", "remand", "CODE_INVALID", unis=unis("932104567", "932104501"))
situation("order_body_code_typo",
          lambda: order("order_shibuya", "988776601").text(("顧客CD：988776601", "顧客CD：988776610")).bytes(),
          EO, "988776601", "remand", "CODE_MISMATCH", unis=unis("988776654", "988776601"))
situation("order_form_code_typo",
          lambda: order("order_shibuya", "988776602", customer_code="988767602").bytes(),
          EO, "988776602", "remand", "CODE_MISMATCH", unis=unis("988776654", "988776602"))
situation("order_body_code_fullwidth",  # the same code in full-width digits is no mismatch
          lambda: order("order_shibuya", "988776636").text(("顧客CD：988776636", "顧客CD：９８８７７６６３６")).bytes(),
          EO, "988776636", "accept", unis=unis("988776654", "988776636"))
situation("order_body_code_with_note",  # the same code, followed by a note
          lambda: order("order_shibuya", "988776637").text(("顧客CD：988776637", "顧客CD：988776637（新規）")).bytes(),
          EO, "988776637", "accept", unis=unis("988776654", "988776637"))
situation("order_subject_with_shop_after_code",
          lambda: order("order_shibuya", "988776638")
          .subject("USEN SPOT 器材発注依頼_988776638（カフェ・ド・ソレイユ 渋谷店）").bytes(),
          EO, "988776638", "accept", unis=unis("988776654", "988776638"))
situation("termination_form_of_another_customer",
          lambda: Draft("termination").code("910987604").attach(
              "解約申請書_910987604.pdf", termination_form("910987640", END)).bytes(),
          TE, "910987604", "remand", "CODE_MISMATCH", unis=unis("910987654", "910987604"))

# -- the termination's 解約日 (DOMAIN.md §4 TERMINATION_DATE_MISMATCH)
situation("termination_date_in_the_past",
          lambda: Draft("termination").code("910987605").attach(
              "解約申請書_910987605.pdf", termination_form("910987605", date(2026, 11, 10))).bytes(),
          TE, "910987605", "hold", "TERMINATION_DATE_MISMATCH", unis=unis("910987654", "910987605"))
situation("termination_date_other_than_unis",
          lambda: Draft("termination").code("910987606").attach(
              "解約申請書_910987606.pdf", termination_form("910987606", date(2027, 1, 31))).bytes(),
          TE, "910987606", "hold", "TERMINATION_DATE_MISMATCH", unis=unis("910987654", "910987606"))
situation("termination_not_registered_in_unis_yet",  # near miss: the branch registers it after mailing
          lambda: Draft("termination").code("910987607").attach(
              "解約申請書_910987607.pdf", termination_form("910987607", END)).bytes(),
          TE, "910987607", "accept", unis=unis("910987654", "910987607", 契約状態="確定", 解約日=""))

# -- the attachment
situation("order_excel_instead_of_pdf",
          lambda: Draft("order_shibuya").code("988776603").attach(
              "申込書_988776603.xlsx", xlsx_form(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
          ).bytes(),
          EO, "988776603", "remand", "ATTACHMENT_NOT_PDF", unis=unis("988776654", "988776603"))
situation("termination_form_forgotten",
          lambda: Draft("termination").code("910987601").detach().bytes(),
          TE, "910987601", "remand", "ATTACHMENT_MISSING", unis=unis("910987654", "910987601"))
situation("order_pdf_without_password",
          lambda: order("order_shibuya", "988776604", encryption=None).bytes(),
          EO, "988776604", "remand", "PDF_NOT_ENCRYPTED", unis=unis("988776654", "988776604"))
situation("termination_pdf_without_password",
          lambda: Draft("termination").code("910987602").attach(
              "解約申請書_910987602.pdf", termination_form("910987602", END, encryption=None)).bytes(),
          TE, "910987602", "remand", "PDF_NOT_ENCRYPTED", unis=unis("910987654", "910987602"))
situation("order_pdf_branch_password",  # the branch's own password, not the agreed one
          lambda: order("order_shibuya", "988776605", password="0354582100").bytes(),
          EO, "988776605", "remand", "PDF_WRONG_PASSWORD", unis=unis("988776654", "988776605"))
situation("order_scanned_form",
          lambda: Draft("order_shibuya").code("988776606").attach("申込書_988776606.pdf", scanned_pdf()).bytes(),
          EO, "988776606", "hold", "PDF_UNREADABLE", unis=unis("988776654", "988776606"))
situation("order_truncated_pdf",  # the upload broke off
          lambda: Draft("order_shibuya").code("988776607").attach(
              "申込書_988776607.pdf", order_form("988776654", (("customer_code", "988776607"),))[:3000]).bytes(),
          EO, "988776607", "hold", "PDF_UNREADABLE", unis=unis("988776654", "988776607"))

# -- UNIS order lines (extract taken Friday 06:00)
situation("order_not_in_unis_yet",  # arrived after the extract: deferred to the next one
          lambda: order("order_shibuya", "988776608").bytes(),
          EO, "988776608", "defer", "UNIS_ORDER_NOT_FOUND")
situation("order_not_in_unis_since_yesterday",  # arrived Thursday evening, still not in Friday's extract
          lambda: order("order_shibuya", "988776609").at(jst(2026, 11, 19, 18, 40, 12)).bytes(),
          EO, "988776609", "remand", "UNIS_ORDER_NOT_FOUND")
situation("order_unis_line_cancelled",  # UNIS shows the order line cancelled: no order
          lambda: order("order_shibuya", "988776610").at(jst(2026, 11, 19, 15, 2, 40)).bytes(),
          EO, "988776610", "remand", "UNIS_ORDER_NOT_FOUND", unis=unis("988776654", "988776610", 契約状態="キャンセル"))
situation("order_not_in_unis_yet_and_no_cc",  # a firm remand: the deferred finding is not told
          lambda: order("order_shibuya", "988776611").cc().bytes(),
          EO, "988776611", "remand", "CC_MANAGER_MISSING")

# -- the application form
situation("order_line_kind_not_chosen",
          lambda: order("order_shibuya", "988776612", line_kind=None, line_type=None).bytes(),
          EO, "988776612", "remand", "LINE_KIND_MISSING", unis=unis("988776654", "988776612"))
situation("order_b_flets_without_type",
          lambda: order("order_fullwidth", "988123401", line_type=None).bytes(),
          EO, "988123401", "remand", "LINE_TYPE_MISSING", unis=unis("988123456", "988123401"))
situation("order_next_without_type",  # 光ネクスト needs no type
          lambda: order("order_shibuya", "988776613", line_type=None).bytes(),
          EO, "988776613", "accept", unis=unis("988776654", "988776613"))
situation("order_opening_check_still_missing",  # the resubmission forgot the fix
          lambda: order("order_resubmission", "976543201", opening_check=None).bytes(),
          EO, "976543201", "remand", "OPENING_CHECK_MISSING", unis=unis("976543210", "976543201"))
situation("order_no_mail_address",
          lambda: order("order_shibuya", "988776614", mail_addresses=()).bytes(),
          EO, "988776614", "remand", "MAIL_ADDRESS_MISSING", unis=unis("988776654", "988776614"))
situation("order_gmail_address",
          lambda: order("order_shibuya", "988776615", mail_addresses=("soleil.shibuya@gmail.com",)).bytes(),
          EO, "988776615", "remand", "MAIL_ADDRESS_INVALID", unis=unis("988776654", "988776615"))
situation("order_ssid_in_katakana",
          lambda: order("order_shibuya", "988776616", ssid="ソレイユ_Free_Wi-Fi").bytes(),
          EO, "988776616", "remand", "SSID_NOT_HALFWIDTH", unis=unis("988776654", "988776616"))
situation("order_ssid_in_halfwidth_kana",  # 半角 but not 英数字・記号
          lambda: order("order_shibuya", "988776643", ssid="ｿﾚｲﾕ_Free").bytes(),
          EO, "988776643", "remand", "SSID_NOT_HALFWIDTH", unis=unis("988776654", "988776643"))
SSID_32, SSID_33 = "Cafe_de_Soleil_Shibuya_FreeWiFi_", "Cafe_de_Soleil_Shibuya_FreeWiFi_5"
assert (len(SSID_32.encode()), len(SSID_33.encode())) == (32, 33)
situation("order_ssid_33_bytes",
          lambda: order("order_shibuya", "988776617", ssid=SSID_33).bytes(),
          EO, "988776617", "remand", "SSID_TOO_LONG", unis=unis("988776654", "988776617"))
situation("order_ssid_32_bytes",
          lambda: order("order_shibuya", "988776618", ssid=SSID_32).bytes(),
          EO, "988776618", "accept", unis=unis("988776654", "988776618"))

# -- several routers
situation("order_several_said_in_the_text",  # one UNIS line, but the branch writes 複数台 and no counts
          lambda: order("order_shibuya", "988776645").text(("申込書を送付いたします。", "申込書を送付いたします。複数台での発注となります。"))
          .bytes(),
          EO, "988776645", "remand", "UNIT_COUNT_MISSING", unis=unis("988776654", "988776645"))
situation("order_units_not_given",  # three UNIS lines; 親1台、子2台 neither in the body nor in 備考
          lambda: order("order_multi_units", "987650101", remarks="2F・3F客室フロアに子機設置")
          .drop("備考 : ").bytes(),
          EO, "987650101", "remand", "UNIT_COUNT_MISSING", unis=unis("987650123", "987650101"))
situation("order_units_in_body_only",
          lambda: order("order_multi_units", "987650102", remarks="2F・3F客室フロアに子機設置")
          .text(("備考 : 親1台、子2台（2F・3F客室フロアに子機設置）", "備考 : 親機1台／子機2台")).bytes(),
          EO, "987650102", "accept", unis=unis("987650123", "987650102"))
situation("order_units_in_form_only",
          lambda: order("order_multi_units", "987650103").drop("備考 : ").bytes(),
          EO, "987650103", "accept", unis=unis("987650123", "987650103"))

# -- the branch
situation("order_manager_not_in_cc",
          lambda: order("order_shibuya", "988776619").cc(OKADA).bytes(),
          EO, "988776619", "remand", "CC_MANAGER_MISSING", unis=unis("988776654", "988776619"))
situation("order_other_branch_manager_in_cc",
          lambda: order("order_shibuya", "988776620").cc(TAKAHASHI).bytes(),
          EO, "988776620", "remand", "CC_MANAGER_MISSING", unis=unis("988776654", "988776620"))
situation("order_branch_written_without_shiten",
          lambda: order("order_shibuya", "988776621").text(("送付支店名：渋谷支店", "送付支店名：渋谷")).bytes(),
          EO, "988776621", "accept", unis=unis("988776654", "988776621"))
situation("order_from_branch_not_in_directory",
          lambda: order("order_shibuya", "988776622").sender(ABE).cc(SASAKI).person(SUZUKI, ABE)
          .text(("送付支店名：渋谷支店", "送付支店名：仙台支店")).bytes(),
          EO, "988776622", "hold", "BRANCH_UNKNOWN", unis=unis("988776654", "988776622", 管轄支店名="仙台支店"))
situation("cancellation_from_branch_not_in_directory",  # no 送付支店名: the UNIS 管轄支店名 decides
          lambda: Draft("cancellation").code("921098702").sender(ABE).cc(SASAKI).person(ISHII, ABE).bytes(),
          CA, "921098702", "hold", "BRANCH_UNKNOWN",
          unis=unis("921098765", "921098702", 管轄支店名="仙台支店", 受注日=f"{NOW:%Y/%m/%d}"))
situation("order_corporate_sales_for_a_branch",  # 送付支店名 is where the router goes: no CC rule of 渋谷
          lambda: order("order_shibuya", "988776644").sender(KUDO).cc(NISHIDA).person(SUZUKI, KUDO).bytes(),
          EO, "988776644", "hold", "CORPORATE_CASE")
situation("order_corporate_sales",  # not in UNIS: the office center registers corporate orders
          lambda: order("order_shibuya", "988776623").sender(KUDO).cc(NISHIDA).person(SUZUKI, KUDO)
          .text(("送付支店名：渋谷支店", "送付支店名：法人営業部")).bytes(),
          EO, "988776623", "hold", "CORPORATE_CASE")

situation("order_unis_says_corporate",  # a regional branch sends it, but UNIS 獲得区分 is 法人 (seed 001 IX)
          lambda: order("order_shibuya", "988776681").bytes(),
          EO, "988776681", "hold", "CORPORATE_CASE", unis=unis("988776654", "988776681", 獲得区分="法人"))
situation("order_unis_says_corporate_sales",  # 法人営業 contains 法人 too
          lambda: order("order_fullwidth", "988123481").bytes(),
          EO, "988123481", "hold", "CORPORATE_CASE",
          unis=unis("988123456", "988123481", 獲得区分="法人営業"))
situation("corporate_bulk_order_with_a_regional_form_left_blank",  # never remanded for a regional form's fields
          lambda: order("order_shibuya", "988776682", line_kind=None, line_type=None, opening_check=None,
                        mail_addresses=()).cc().bytes(),
          EO, "988776682", "hold", "CORPORATE_CASE", unis=unis("988776654", "988776682", 獲得区分="法人"))
situation("order_unis_says_new_not_corporate",  # near miss: 新規 is a branch's own case
          lambda: order("order_shibuya", "988776683").bytes(),
          EO, "988776683", "accept", unis=unis("988776654", "988776683", 獲得区分="新規"))

# -- conversations with the bot (DOMAIN.md §2): threading headers first, the subject's tag second
BOT_ACCEPT = "<accept.0d74104fd61fca9f0d74104fd61fca9f.mailbot@usen.co.jp>"
BOT_HOLD = "<hold.9853079bfd24f1739853079bfd24f173.mailbot@usen.co.jp>"
BOT_REMAND = "<remand.a356aae27caddd59a356aae27caddd59.mailbot@usen.co.jp>"


def answering(draft: Draft, bot_message_id: str) -> Draft:
    """`draft` sent as a reply to the bot's mail `bot_message_id` (Outlook's threading headers)."""
    return draft.header("In-Reply-To", bot_message_id).header("References", f"<orig.x@usen.co.jp> {bot_message_id}")


situation("thanks_for_an_acceptance",  # 「ありがとうございます」: no request, never answered
          lambda: answering(Draft("contract_change").code("932104561")
                            .subject("Re: 【受付】USEN SPOT 契約変更_932104561"), BOT_ACCEPT).bytes(),
          CC_, "932104561", "hold", "REPLY_TO_BOT", unis=unis("932104567", "932104561"))
situation("question_on_an_acceptance_with_the_subject_edited",  # 「発送日はいつですか」: the headers tell
          lambda: answering(order("order_shibuya", "988776684")
                            .subject("USEN SPOT 器材発注依頼_988776684 発送日について"), BOT_ACCEPT).bytes(),
          EO, "988776684", "hold", "REPLY_TO_BOT", unis=unis("988776654", "988776684"))
situation("answer_to_an_acknowledgement_by_its_tag_only",  # no threading headers: the 【確認中】 tag tells
          lambda: Draft("contract_change").code("932104562").subject("RE: 【確認中】USEN SPOT 契約変更_932104562").bytes(),
          CC_, "932104562", "hold", "REPLY_TO_BOT", unis=unis("932104567", "932104562"))
situation("reply_to_an_acceptance_without_a_kind",  # REPLY_TO_BOT, not UNKNOWN_SUBJECT
          lambda: answering(Draft("contract_change").subject("Re: 【受付】お問い合わせ"), BOT_ACCEPT).bytes(),
          "unknown", None, "hold", "REPLY_TO_BOT")
situation("resubmission_threaded_after_the_tag_was_removed",  # In-Reply-To names a remand: the request again
          lambda: answering(order("order_shibuya", "988776685"), BOT_REMAND).bytes(),
          EO, "988776685", "accept", unis=unis("988776654", "988776685"))
situation("threading_wins_over_a_stale_tag",  # subject still says 【受付】 but it answers a remand
          lambda: answering(order("order_shibuya", "988776686")
                            .subject("Re: 【受付】USEN SPOT 器材発注依頼_988776686"), BOT_REMAND).bytes(),
          EO, "988776686", "accept", unis=unis("988776654", "988776686"))
situation("forward_of_an_acceptance_quoting_it_is_still_an_answer",
          lambda: answering(Draft("contract_change").code("932104563")
                            .subject("FW: 【受付】USEN SPOT 契約変更_932104563"), BOT_HOLD).bytes(),
          CC_, "932104563", "hold", "REPLY_TO_BOT", unis=unis("932104567", "932104563"))

# -- registration notices (seed 000): never by mail; the reply is the support centre / Dragon procedure
situation("registration_notice_without_a_code",  # its code is optional: no CODE_MISSING
          lambda: Draft("registration_notice").subject("USEN SPOT 登録通知書の再発送について（ご相談）").bytes(),
          "registration_notice", None, "remand", "REGISTRATION_NOTICE_VIA_DRAGON")
situation("registration_notice_code_after_other_words",  # 9 digits anywhere in the subject
          lambda: Draft("registration_notice").subject("登録通知書 再発行のお願い 顧客CD 955443322 北のめぐみ様").bytes(),
          "registration_notice", "955443322", "remand", "REGISTRATION_NOTICE_VIA_DRAGON")

# -- child-unit orders (DOMAIN.md §3a): no application form, an installed router, 追加 or 交換
ASKED = "申込書を添付いたしますので、器材の発注をお願いいたします。"
situation("child_unit_addition",
          lambda: Draft("order_no_pdf").code("943215671").text((ASKED, "客席を拡張したため、子機の追加（子1台）をお願いいたします。")).bytes(),
          EO, "943215671", "accept", unis=unis("943215678", "943215671", 契約状態="確定"))
situation("child_unit_exchange",
          lambda: Draft("order_no_pdf").code("943215672").text((ASKED, "子機が故障したため、子機交換（子1台）をお願いいたします。")).bytes(),
          EO, "943215672", "accept", unis=unis("943215678", "943215672", 契約状態="確定"))
situation("child_unit_order_not_saying_what_for",
          lambda: Draft("order_no_pdf").code("943215673").text((ASKED, "子機を1台手配してください。")).bytes(),
          EO, "943215673", "remand", "CHILD_UNIT_PURPOSE_MISSING", unis=unis("943215678", "943215673", 契約状態="確定"))
situation("child_unit_for_a_router_not_installed_yet",  # the parent is only ordered (受注): no 確定 line
          lambda: Draft("order_no_pdf").code("943215674").text((ASKED, "子機の追加（子1台）をお願いいたします。")).bytes(),
          EO, "943215674", "hold", "NO_ACTIVE_CONTRACT", unis=unis("943215678", "943215674"))

# -- cancellations by case (DOMAIN.md §5)
situation("cancellation_of_an_installed_router",  # 確定: that is a termination
          lambda: Draft("cancellation").code("921098711").bytes(),
          CA, "921098711", "remand", "ALREADY_INSTALLED", unis=unis("921098765", "921098711", 契約状態="確定"))
situation("cancellation_with_no_order_anywhere",  # nothing accepted here, nothing 受注 in UNIS
          lambda: Draft("cancellation").code("921098712").bytes(),
          CA, "921098712", "hold", "NO_OPEN_ORDER")
situation("order_remanded_before_its_cancellation",
          lambda: order("order_shibuya", "988776687", line_kind=None, line_type=None).bytes(),
          EO, "988776687", "remand", "LINE_KIND_MISSING", unis=unis("988776654", "988776687"))
situation("cancellation_of_an_order_only_ever_remanded",  # nothing was ordered: no cost (not CANCEL_AFTER_ORDER)
          lambda: Draft("cancellation").code("988776687").text(("珈琲館 ひだまり 吉祥寺店", "カフェ・ド・ソレイユ 渋谷店"),
                                                                strict=False).bytes(),
          CA, "988776687", "accept")

# -- body items
situation("order_branch_item_forgotten",
          lambda: order("order_shibuya", "988776624").drop("送付支店名").bytes(),
          EO, "988776624", "remand", "BODY_FIELD_MISSING", unis=unis("988776654", "988776624"))
situation("order_contact_left_empty",
          lambda: order("order_shibuya", "988776639").text(("担当者名：鈴木 一郎", "担当者名：")).bytes(),
          EO, "988776639", "remand", "BODY_FIELD_MISSING", unis=unis("988776654", "988776639"))
situation("relocation_line_kind_forgotten",
          lambda: Draft("relocation").code("998765401").drop("移設先回線種別").bytes(),
          RL, "998765401", "remand", "BODY_FIELD_MISSING", unis=unis("998765432", "998765401"))
situation("router_not_removed_without_reason",
          lambda: Draft("router_not_removed").code("909876501").drop("理由").bytes(),
          RN, "909876501", "remand", "BODY_FIELD_MISSING", unis=unis("909876543", "909876501"))
situation("change_without_change_item",
          lambda: Draft("contract_change").code("932104502").drop("変更内容", "変更日", "UNISの店舗名").bytes(),
          CC_, "932104502", "remand", "BODY_FIELD_MISSING", unis=unis("932104567", "932104502"))
situation("change_written_as_free_text",  # no 変更内容 label: the branch's own sentences are the change
          lambda: Draft("contract_change").code("932104505").drop("変更内容", "変更日")
          .text(("UNISの店舗名は変更済みです。",
                 "12月1日より、店舗名が「居酒屋 さくら」から「和食処 さくら」に変わります。UNISは変更済みです。")).bytes(),
          CC_, "932104505", "accept", unis=unis("932104567", "932104505"))
situation("router_not_removed_reason_as_free_text",  # no 理由 label: the sentence says why
          lambda: Draft("router_not_removed").code("909876503")
          .text(("理由：閉店後にオーナー様と連絡が取れず、店舗が施錠されたままのため撤去できておりません。",
                 "閉店後にオーナー様と連絡が取れず、店舗が施錠されたままのため撤去できておりません。")).bytes(),
          RN, "909876503", "accept", unis=unis("909876543", "909876503"))
situation("change_without_body_code",  # the body's 顧客CD is only compared, never required
          lambda: Draft("contract_change").code("932104503").drop("顧客CD").bytes(),
          CC_, "932104503", "accept", unis=unis("932104567", "932104503"))

# -- body, form and UNIS agree?
situation("order_plus_in_body_only",
          lambda: order("order_shibuya", "988776625").text(("SPOT Plus該当：無", "SPOT Plus該当：有")).bytes(),
          EO, "988776625", "hold", "PLUS_MISMATCH", unis=unis("988776654", "988776625"))
situation("order_plus_in_unis_only",
          lambda: order("order_shibuya", "988776626").bytes(),
          EO, "988776626", "hold", "PLUS_MISMATCH", unis=unis("988776654", "988776626", items=("9603030",)))
situation("order_b_flets_but_unis_next",
          lambda: order("order_shibuya", "988776627", line_kind="Bフレッツ", line_type="マンション").bytes(),
          EO, "988776627", "hold", "LINE_MISMATCH", unis=unis("988776654", "988776627"))
situation("order_b_flets_family_but_unis_mansion",
          lambda: order("order_fullwidth", "988123402", line_type="ファミリー").bytes(),
          EO, "988123402", "hold", "LINE_MISMATCH", unis=unis("988123456", "988123402"))
situation("order_next_family_but_unis_mansion",  # 光ネクスト: family vs mansion is no mismatch
          lambda: order("order_shibuya", "988776628", line_type="ファミリー").bytes(),
          EO, "988776628", "accept", unis=unis("988776654", "988776628"))
situation("order_other_shop",
          lambda: order("order_shibuya", "988776629", shop_name="カフェ・ド・ソレイユ 原宿店").bytes(),
          EO, "988776629", "hold", "SHOP_MISMATCH", unis=unis("988776654", "988776629"))
situation("order_shop_fullwidth_space",
          lambda: order("order_shibuya", "988776630", shop_name="カフェ・ド・ソレイユ\u3000渋谷店").bytes(),
          EO, "988776630", "accept", unis=unis("988776654", "988776630"))
situation("order_shop_halfwidth_kana",
          lambda: order("order_shibuya", "988776631", shop_name="ｶﾌｪ･ﾄﾞ･ｿﾚｲﾕ 渋谷店").bytes(),
          EO, "988776631", "accept", unis=unis("988776654", "988776631"))
situation("order_shop_unis_halfwidth_no_space",
          lambda: order("order_shibuya", "988776632").bytes(),
          EO, "988776632", "accept", unis=unis("988776654", "988776632", 店舗名="ｶﾌｪ･ﾄﾞ･ｿﾚｲﾕ渋谷店"))
situation("order_unis_spells_line_short",  # UNIS 光ネクスト / マンションタイプ = the form's フレッツ光ネクスト / マンション
          lambda: order("order_shibuya", "988776640").bytes(),
          EO, "988776640", "accept", unis=unis("988776654", "988776640", 回線種別="光ネクスト", 回線タイプ="マンションタイプ"))

# -- the contract in UNIS
situation("relocation_of_terminated_contract",
          lambda: Draft("relocation").code("998765409").bytes(),
          RL, "998765409", "hold", "NO_ACTIVE_CONTRACT", unis=unis("998765432", "998765409", 契約状態="解約"))
situation("relocation_naming_another_customers_shop",  # the body's 店舗名 is not the code's UNIS shop
          lambda: Draft("relocation").code("909876504").bytes(),
          RL, "909876504", "hold", "SHOP_MISMATCH", unis=unis("909876543", "909876504", 契約状態="確定"))
situation("cancellation_naming_another_customers_shop",
          lambda: Draft("cancellation").code("988776688").bytes(),
          CA, "988776688", "hold", "SHOP_MISMATCH", unis=unis("988776654", "988776688"))
situation("termination_of_cancelled_order",
          lambda: Draft("termination").code("910987603").attach(
              "解約申請書_910987603.pdf", termination_form("910987603", END)).bytes(),
          TE, "910987603", "hold", "NO_ACTIVE_CONTRACT",
          unis=unis("910987654", "910987603", 契約状態="キャンセル", 解約日=""))
situation("change_of_unknown_customer",
          lambda: Draft("contract_change").code("932104504").bytes(),
          CC_, "932104504", "hold", "NO_ACTIVE_CONTRACT")
situation("withdrawal_without_termination",
          lambda: Draft("termination_withdrawal").code("945612301").bytes(),
          TW, "945612301", "hold", "NOT_TERMINATING", unis=unis("945612378", "945612301", 契約状態="確定", 解約日=""))

# -- the withdrawal deadline: 解約日 Friday 11-27 → Tuesday 11-24 before 17:00 (11-23 is a holiday)
_ENDS_27 = {"解約日": "2026/11/27"}
situation("withdrawal_tuesday_1659",
          lambda: Draft("termination_withdrawal").code("945612302").at(jst(2026, 11, 24, 16, 59, 59))
          .text(("2026年12月31日", "2026年11月27日")).bytes(),
          TW, "945612302", "accept", unis=unis("945612378", "945612302", **_ENDS_27))
situation("withdrawal_tuesday_1700",
          lambda: Draft("termination_withdrawal").code("945612303").at(jst(2026, 11, 24, 17, 0, 0))
          .text(("2026年12月31日", "2026年11月27日")).bytes(),
          TW, "945612303", "hold", "WITHDRAWAL_TOO_LATE", unis=unis("945612378", "945612303", **_ENDS_27))
situation("withdrawal_on_the_holiday",  # counts from Tuesday: still on time
          lambda: Draft("termination_withdrawal").code("945612304").at(jst(2026, 11, 23, 11, 12, 5))
          .text(("2026年12月31日", "2026年11月27日")).bytes(),
          TW, "945612304", "accept", unis=unis("945612378", "945612304", **_ENDS_27))
situation("withdrawal_wednesday",
          lambda: Draft("termination_withdrawal").code("945612305").at(jst(2026, 11, 25, 9, 3, 30))
          .text(("2026年12月31日", "2026年11月27日")).bytes(),
          TW, "945612305", "hold", "WITHDRAWAL_TOO_LATE", unis=unis("945612378", "945612305", **_ENDS_27))

# -- what the bot accepted before (the in-run history)
situation("order_shibuya_sent_again",  # no reply yet, so the branch sent it again
          lambda: Draft("order_shibuya").at(jst(2026, 11, 20, 10, 5, 41)).bytes(),
          EO, "988776654", "hold", "DUPLICATE_REQUEST")
situation("order_held_for_plus",  # held, so not "accepted and open": the corrected resend is no duplicate
          lambda: order("order_shibuya", "988776641").text(("SPOT Plus該当：無", "SPOT Plus該当：有"))
          .at(jst(2026, 11, 20, 8, 2, 11)).bytes(),
          EO, "988776641", "hold", "PLUS_MISMATCH", unis=unis("988776654", "988776641"))
situation("order_held_for_plus_corrected",
          lambda: order("order_shibuya", "988776641").at(jst(2026, 11, 20, 9, 47, 36)).bytes(),
          EO, "988776641", "accept")
situation("order_shibuya_cancelled_tuesday",  # accepted Friday; Tuesday is N+1
          lambda: Draft("cancellation").code("988776654").sender(SUZUKI).cc(TANAKA).person(ISHII, SUZUKI)
          .text(("珈琲館 ひだまり 吉祥寺店", "カフェ・ド・ソレイユ 渋谷店")).at(jst(2026, 11, 24, 9, 31, 2)).bytes(),
          CA, "988776654", "accept", "CANCEL_AFTER_ORDER")
situation("order_forwarded_cancelled_after_cutoff",  # Friday 17:05 counts from Tuesday
          lambda: Draft("cancellation").code("965432107").sender(OGAWA).cc(MORI).person(ISHII, OGAWA)
          .text(("珈琲館 ひだまり 吉祥寺店", "ラーメン 一番星 池袋東口店")).at(jst(2026, 11, 20, 17, 5, 17)).bytes(),
          CA, "965432107", "accept", "CANCEL_AFTER_ORDER")
situation("order_resubmission_cancelled_same_day",  # UNIS 受注日 is Thursday, but the bot ordered it Friday
          lambda: Draft("cancellation").code("976543210").sender(WATANABE).cc(ITO).person(ISHII, WATANABE)
          .text(("珈琲館 ひだまり 吉祥寺店", "居酒屋 はなまる 新宿三丁目店")).at(jst(2026, 11, 20, 16, 48, 9)).bytes(),
          CA, "976543210", "accept")
situation("cancellation_on_unis_order_day",  # no order accepted by the bot: UNIS 受注日 is today
          lambda: Draft("cancellation").code("921098703").at(jst(2026, 11, 20, 10, 12, 33)).bytes(),
          CA, "921098703", "accept", unis=unis("921098765", "921098703", 受注日=f"{NOW:%Y/%m/%d}"))

# -- who sent it
situation("order_reply_to_private_address",
          lambda: order("order_shibuya", "988776633").header("Reply-To", "ichiro.suzuki.88@gmail.com").bytes(),
          EO, "988776633", "hold", "SENDER_NOT_ALLOWED", unis=unis("988776654", "988776633"))
situation("cancellation_spoofed_from_outside",
          lambda: Draft("cancellation").code("921098704").sender(SUZUKI).cc(TANAKA).person(ISHII, SUZUKI).via(
              "unknown (vps-203-0-113-77.example.net [203.0.113.77])",
              "spf=fail (sender IP is 203.0.113.77) smtp.mailfrom=usen.co.jp;\r\n\tdkim=none (message not signed);"
              "\r\n\tdmarc=fail action=none header.from=usen.co.jp").bytes(),
          CA, "921098704", "hold", "SENDER_NOT_ALLOWED",
          unis=unis("921098765", "921098704", 管轄支店名="渋谷支店", 受注日=f"{NOW:%Y/%m/%d}"))
situation("out_of_office_without_auto_submitted",  # an old server's OOF: known by its subject alone
          lambda: Draft("auto_reply").header("Auto-Submitted", None).header("X-Auto-Response-Suppress", None)
          .subject("自動応答: 【差戻】USEN SPOT 器材発注依頼_988776654").bytes(),
          EO, "988776654", "ignore", "AUTO_REPLY")

# -- several findings at once: every one is told
situation("order_many_faults",
          lambda: order("order_shibuya", "988776635", ssid="Cafe_de_Soleil_Shibuya_Free_WiFi_5G", opening_check=None)
          .cc().text(("SPOT Plus該当：無", "SPOT Plus該当：有")).bytes(),
          EO, "988776635", "remand", "SSID_TOO_LONG", "OPENING_CHECK_MISSING", "CC_MANAGER_MISSING", "PLUS_MISMATCH",
          unis=unis("988776654", "988776635"))


# ---- the run -------------------------------------------------------------------------------------


def received(data: bytes) -> datetime:
    msg = email.message_from_bytes(data, policy=compat32)
    return parsedate_to_datetime(msg["Received"].rpartition(";")[2].replace("(JST)", "").strip())


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict]:
    """`mailbot check --json` once over every situation's mail, in the order they arrived."""
    tmp = tmp_path_factory.mktemp("situations")
    extract, directory = tmp / "usen_spot_orders.csv", tmp / "branches.csv"
    write_extract(extract, [row for s in SITUATIONS for row in s.unis])
    directory.write_bytes(sample_directory())
    mails = []
    for s in SITUATIONS:
        data = s.build()
        path = tmp / f"{s.name}.eml"
        path.write_bytes(data)
        mails.append((received(data), path.name))
    mails.sort(key=lambda m: m[0])  # stable: variants arriving with their sample keep the table's order
    run = subprocess.run(
        [sys.executable, "-m", "mailbot", "check", "--json", "--unis", str(extract), "--branches", str(directory),
         *(m[1] for m in mails)],
        cwd=tmp, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [o["file"] for o in lines] == [m[1] for m in mails]
    return {Path(o["file"]).stem: o for o in lines}


@pytest.mark.parametrize("s", [pytest.param(s, id=s.name) for s in SITUATIONS])
def test_situation(s: Situation, outcomes):
    o = outcomes[s.name]
    got = (o["kind"], o["customer_code"], o["decision"], set(o["reasons"]))
    assert got == (s.kind, s.code, s.decision, set(s.reasons)), o["fields"]


def test_decision_follows_the_reasons_policy():
    """The table's decisions are those rules/reasons.toml gives its reasons (remand > hold > accept)."""
    policy = {code: v["decision"] for code, v in tomllib.loads((ROOT / "rules" / "reasons.toml").read_text()).items()}
    for s in SITUATIONS:
        if s.decision == "defer":
            assert s.reasons == {"UNIS_ORDER_NOT_FOUND"}, s.name
            continue
        decisions = {policy[r] for r in s.reasons}
        expected = next((d for d in ("ignore", "remand", "hold") if d in decisions), "accept")
        assert s.decision == expected, s.name


def test_every_check_outcome_has_a_situation():
    policy = tomllib.loads((ROOT / "rules" / "reasons.toml").read_text())
    # OWN_COPY and REPLY_BOUNCED need replies the bot sent (tests/test_faults.py, test_crash.py,
    # test_digest.py); `check` sends none.
    not_check_outcomes = {"MAIL_UNREADABLE", "PROCESSING_FAILED", "REPLY_FAILED", "REPLY_LIMIT", "OWN_COPY",
                          "REPLY_BOUNCED"}
    covered = set().union(*(s.reasons for s in SITUATIONS))
    assert covered == set(policy) - not_check_outcomes
    assert {s.decision for s in SITUATIONS} == {"accept", "remand", "hold", "defer", "ignore"}
    assert sum(1 for s in SITUATIONS if not s.reasons) >= 10  # clean situations and near misses


# -- what branches read: Japanese only (DOMAIN.md §6)

# Names a careful office-center person writes in Latin letters.
ALLOWED_WORDS = {"USEN", "SPOT", "Plus", "UNIS", "SSID", "PDF", "Wi-Fi", "FGN-1000", "FGN-1000PoE", "CR-1",
                 "OASIS-WEB", "Dragon", "NTT", "CD", "CC", "B",  # Bフレッツ
                 "Excel", "Word", "uspot", "uspot.jp"}  # the agreed password, the addresses' domain
_ADDRESS = re.compile(r"[\w.+-]+@[\w.-]+")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*")


@pytest.fixture(scope="module")
def replies(tmp_path_factory) -> list[tuple[str, str, str]]:
    """(situation, the branch's own text, the reply's subject and body) for every reply the
    situations get, and for every held one the remand staff would send by moving its note."""
    from mailbot.config import embedded_default
    from mailbot.decide import decide_by_staff
    from mailbot.message import parse_mail
    from mailbot.model import Action
    from mailbot.pipeline import evaluate
    from mailbot.record.history import MemoryHistory
    from mailbot.reference.data import ReferenceData
    from mailbot.reply.render import ReplySettings, build_reply, next_steps

    tmp = tmp_path_factory.mktemp("replies")
    settings = embedded_default(tmp)
    write_extract(tmp / "unis.csv", [row for s in SITUATIONS for row in s.unis])
    (tmp / "branches.csv").write_bytes(sample_directory())
    reference = ReferenceData.load(settings, unis_extract=tmp / "unis.csv", branch_directory=tmp / "branches.csv",
                                   unis_db=tmp / "unis.sqlite3", strict=True)
    reply_settings = ReplySettings(sender=settings.reply_from, internal_domains=("usen.co.jp",), acknowledge_held=True,
                                   templates_dir=settings.templates_dir, rules_dir=settings.rules_dir,
                                   sender_name=settings.reply_from_name)
    out = []
    history = MemoryHistory()  # in the order they arrived, as the check run decides them
    from mailbot.record.history import PastRequest

    built = sorted(((received(data), s.name, data) for s in SITUATIONS for data in [s.build()]), key=lambda b: b[0])
    try:
        for _, name, data in built:
            e = evaluate(data, None, settings, now=NOW, reference=reference, history=history)
            if e.classification.code and e.received is not None:
                history.add(PastRequest(e.classification.kind, e.classification.code, e.decision.action, e.received))
            if e.mail is None:
                continue
            own = " ".join([e.mail.subject, e.mail.body, json.dumps(e.fields, ensure_ascii=False, default=str),
                            *(a.filename for a in parse_mail(data).attachments)])
            decisions = [e.decision]
            if e.decision.action is Action.HOLD:
                decisions.append(decide_by_staff(e.decision, False, settings.rules_dir))
            for d in decisions:
                r = build_reply(e.mail, hashlib.sha256(data).hexdigest(), e.classification, d, reply_settings,
                                next_steps(e.classification, d, e.received, settings.rules_dir, e.fields))
                if r is not None:
                    out.append((name, own, f"{r.message['Subject']}\n{r.message.get_content()}"))
    finally:
        reference.close()
    return out


def test_every_reply_a_branch_reads_is_japanese(replies):
    assert len(replies) > 60
    strangers = {}
    for name, own, text in replies:
        for word in _WORD.findall(_ADDRESS.sub(" ", text)):
            if word not in ALLOWED_WORDS and word not in own:
                strangers.setdefault(word, name)
    # addresses and values the branch wrote itself are its own words, not the bot's
    assert strangers == {}, sorted(strangers.items())


def test_the_reply_is_from_the_office_center_by_name():
    from email.utils import parseaddr

    from mailbot.config import embedded_default

    settings = embedded_default(Path("/nonexistent"))
    assert settings.reply_from_name == "USEN SPOT 事務センター"
    assert parseaddr(f"{settings.reply_from_name} <{settings.reply_from}>")[1] == "usen_spot@usen.co.jp"


def test_a_registration_notice_request_is_answered_with_the_procedure_and_the_unis_addresses(replies):
    texts = {name: text for name, _, text in replies}
    text = texts["registration_notice"]
    assert text.startswith("【差戻】USEN SPOT 登録通知書再発送依頼_955443322")
    for must in ("0120-773-713", "Dragon", "発送関連_センター以外（業務店）", "事務センター東京開業支援グループ",
                 "オーナー様または店舗スタッフ様", "郵送のみ", "2～3営業日"):
        assert must in text, must
    # UNIS knows the code: the three registered addresses, so the branch can tell the customer
    assert "設置先：北海道札幌市中央区南4条西3丁目1番" in text and "請求先：" in text
    without = texts["registration_notice_without_a_code"]
    assert "0120-773-713" in without and "設置先：" not in without


def test_a_cancellation_states_the_true_cost_and_the_branchs_unis_step(replies):
    texts = {name: text for name, _, text in replies}
    remanded = texts["cancellation_of_an_order_only_ever_remanded"]
    assert "発注していません。費用は発生しません。" in remanded and "手配済み" not in remanded
    after = texts["cancellation"]  # UNIS 受注日 four weekdays ago
    assert "手配済みの費用が発生します" in after
    for text in (remanded, after):
        assert "UNISのキャンセル処理（手順②）" in text and "管理台帳をキャンセルに更新" in text
    installed = texts["cancellation_of_an_installed_router"]
    assert installed.startswith("【差戻】") and "解約申請" in installed


def test_a_termination_acceptance_says_plainly_whether_unis_shows_it_scheduled(replies):
    texts = {name: text for name, _, text in replies}
    registered, unregistered = texts["termination"], texts["termination_not_registered_in_unis_yet"]
    assert "UNISの解約予定の登録を確認しました。" in registered and "登録されていません" not in registered
    assert "UNISにはこのお客様の解約予定が登録されていません" in unregistered
    assert "UNISの解約処理（予定登録）をお願いいたします" in unregistered
    for text in (registered, unregistered):
        assert "紛失手数料 30,000円（税抜、お客様起因の紛失・破損の場合）" in text and "南港の物流センター" in text
        assert "\n\n\n" not in text.replace("\r\n", "\n")


def test_one_sender_is_one_branch_whatever_the_mail(tmp_path):
    """DOMAIN.md §7, every time: a sender in the directory whose mail names no 送付支店名 counts for
    the sender's branch, whether the mail is an order, a question no kind matches, an answer to
    the bot or an automatic reply; the digest never splits one branch's mail (issue 20)."""
    from mailbot.config import embedded_default
    from mailbot.message import parse_mail
    from mailbot.pipeline import evaluate
    from mailbot.reference.branches import BranchDirectory
    from mailbot.reference.data import ReferenceData

    extract, directory = tmp_path / "usen_spot_orders.csv", tmp_path / "branches.csv"
    write_extract(extract, [row for s in SITUATIONS for row in s.unis])
    directory.write_bytes(sample_directory())
    settings = embedded_default(tmp_path)
    members = BranchDirectory.from_text(sample_directory().decode("utf-8"))
    reference = ReferenceData.load(settings, unis_extract=extract, branch_directory=directory)
    by_sender: dict[str, set] = {}
    kinds: dict[str, set] = {}
    try:
        for s in SITUATIONS:
            data = s.build()
            mail = parse_mail(data)
            branches = members.branches_of(mail.sender.addr if mail.sender else None)
            if len(branches) != 1 or "送付支店名" in mail.body or any(b.corporate for b in branches):
                continue
            e = evaluate(data, None, settings, reference=reference)
            by_sender.setdefault(mail.sender.addr, set()).add(e.branch)
            kinds.setdefault(mail.sender.addr, set()).add(e.classification.kind.value)
    finally:
        reference.close()
    assert any("unknown" in k and len(k) > 1 for k in kinds.values())  # the case of the issue is among them
    split = {sender: names for sender, names in by_sender.items() if len(names) != 1}
    assert split == {}
    assert all(names == {members.branches_of(sender)[0].name} for sender, names in by_sender.items())

"""Every form reason code of issue 3 on realistic mails: the Outlook ISO-2022-JP equipment order of
the samples (RFC 2231 file name), carrying forms of several layouts and producers."""

from __future__ import annotations

from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from functools import cache
from pathlib import Path

import pytest
from test_loop import NOW

from demo.forms import application_pdf, sample_application, scanned_pdf, termination_pdf
from demo.samples import SAMPLES, sample_mails
from mailbot.config import embedded_default
from mailbot.forms.model import TerminationForm
from mailbot.pipeline import evaluate

SETTINGS = embedded_default(Path("/nonexistent"))
ORDER = "order_shibuya"
CODE = SAMPLES[ORDER].code
# (layout, producer): every shape of form, both producers.
SHAPES = [("excel_grid", "reportlab"), ("word_stacked", "fpdf2"), ("browser_chosen_only", "fpdf2"),
          ("label_below", "reportlab"), ("acroform", "reportlab"), ("acroform_split", "fpdf2")]


@cache
def _other_pdf(code: str) -> bytes:
    return application_pdf(sample_application(code))


def order_mail(pdf: bytes) -> bytes:
    """The sample Outlook order, with `pdf` as its application form."""
    mails = sample_mails(NOW, application_pdf=lambda code: pdf if code == CODE else _other_pdf(code),
                         termination_pdf=lambda code: termination_pdf(TerminationForm(customer_code=code)))
    return dict(mails)[ORDER]


def reasons(pdf: bytes) -> tuple[str, set[str], dict]:
    e = evaluate(order_mail(pdf), None, SETTINGS)
    return e.decision.action.value, set(e.decision.reasons), e.fields


CASES = [
    ({}, set()),
    ({"line_kind": None, "line_type": None}, {"LINE_KIND_MISSING"}),
    ({"line_kind": "Bフレッツ", "line_type": None}, {"LINE_TYPE_MISSING"}),
    ({"line_kind": "フレッツ光ネクスト", "line_type": None}, set()),
    ({"opening_check": None}, {"OPENING_CHECK_MISSING"}),
    ({"mail_addresses": ()}, {"MAIL_ADDRESS_MISSING"}),
    ({"mail_addresses": ("cafe-soleil@gmail.com",)}, {"MAIL_ADDRESS_INVALID"}),
    ({"ssid": "ソレイユＷｉＦｉ"}, {"SSID_NOT_HALFWIDTH"}),
    ({"ssid": "Cafe_de_Soleil_Shibuya_Free_WiFi_2"}, {"SSID_TOO_LONG"}),
    ({"customer_code": "988776655"}, {"CODE_MISMATCH"}),
    ({"line_kind": "Bフレッツ", "line_type": None, "opening_check": None, "mail_addresses": (),
      "ssid": "ソレイユＷｉＦｉ＿渋谷店ゲスト"}, {"LINE_TYPE_MISSING", "OPENING_CHECK_MISSING",
                                         "MAIL_ADDRESS_MISSING", "SSID_NOT_HALFWIDTH", "SSID_TOO_LONG"}),
]


@pytest.mark.parametrize("layout,producer", SHAPES)
@pytest.mark.parametrize("overrides,expected", CASES, ids=lambda v: ",".join(v) if isinstance(v, (dict, set)) else None)
def test_form_findings_in_every_layout(layout, producer, overrides, expected):
    pdf = application_pdf(sample_application(CODE, **overrides), layout=layout, producer=producer)
    action, found, fields = reasons(pdf)
    assert found == expected
    assert action == ("remand" if expected else "accept")
    assert fields["pdf"]["status"] == "read"
    assert fields["form"]["customer_code"] == overrides.get("customer_code", CODE)


@pytest.mark.parametrize("encryption", ["aes256", "aes128", "rc4"])
def test_every_encryption_opens_with_the_agreed_password(encryption):
    assert reasons(application_pdf(sample_application(CODE), encryption=encryption))[:2] == ("accept", set())


def test_unencrypted_form_is_remanded_and_still_checked():
    pdf = application_pdf(sample_application(CODE, opening_check=None), encryption=None)
    action, found, fields = reasons(pdf)
    assert action == "remand" and found == {"PDF_NOT_ENCRYPTED", "OPENING_CHECK_MISSING"}
    assert fields["pdf"]["status"] == "not_encrypted"


def test_wrong_password_is_remanded_without_form_checks():
    action, found, _ = reasons(application_pdf(sample_application(CODE), password="usen"))
    assert (action, found) == ("remand", {"PDF_WRONG_PASSWORD"})


def test_scan_is_held_for_a_person():
    action, found, fields = reasons(scanned_pdf())
    assert (action, found) == ("hold", {"PDF_UNREADABLE"})
    assert "text" in fields["pdf"]["detail"]


@pytest.mark.parametrize("pdf", [b"%PDF-", b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog", b"<html>not a pdf</html>"],
                         ids=["header-only", "truncated", "html"])
def test_broken_pdf_is_held(pdf):
    action, found, _ = reasons(pdf)
    assert (action, found) == ("hold", {"PDF_UNREADABLE"})


def _outlook_order(attachment: MIMEApplication) -> bytes:
    msg = MIMEMultipart()
    msg["From"] = "i-suzuki@usen.co.jp"
    msg["To"] = "usen_spot@usen.co.jp"
    msg["Cc"] = "m-tanaka@usen.co.jp"
    msg["Subject"] = f"USEN SPOT 器材発注依頼_{CODE}"
    msg["Message-ID"] = "<000001dc0102$03040506$0708090a$@usen.co.jp>"
    body = (f"お疲れ様です。\n申込書送付します。\n\n顧客CD：{CODE}\n店舗名：カフェ・ド・ソレイユ 渋谷店\n"
            "リンク品使用：無\nSPOT Plus該当：無\n送付支店名：渋谷支店\n担当者名：鈴木\n")
    msg.attach(MIMEText(body, "plain", "iso-2022-jp"))
    msg.attach(attachment)
    return msg.as_bytes()


@pytest.mark.parametrize("name,maintype,data", [
    ("申込書_988776654.xlsx", "vnd.openxmlformats-officedocument.spreadsheetml.sheet", b"PK\x03\x04" + b"\0" * 400),
    ("申込書.docx", "vnd.openxmlformats-officedocument.wordprocessingml.document", b"PK\x03\x04" + b"\0" * 400),
    ("申込書.zip", "zip", b"PK\x03\x04" + b"\0" * 400),
])
def test_form_in_another_format(name, maintype, data):
    part = MIMEApplication(data, maintype)
    part.add_header("Content-Disposition", "attachment", filename=("iso-2022-jp", "ja", name))
    e = evaluate(_outlook_order(part), None, SETTINGS)
    assert e.decision.action.value == "remand" and e.decision.reasons == ["ATTACHMENT_NOT_PDF"]


def test_rfc2231_named_pdf_is_found_and_read():
    part = MIMEApplication(application_pdf(sample_application(CODE)), "pdf")
    part.add_header("Content-Disposition", "attachment", filename=("iso-2022-jp", "ja", f"申込書_{CODE}.pdf"))
    e = evaluate(_outlook_order(part), None, SETTINGS)
    assert e.decision.reasons == [] and e.fields["pdf"]["status"] == "read"


def test_termination_form_code_and_date():
    data = dict(sample_mails(NOW))["termination"]
    e = evaluate(data, None, SETTINGS)
    assert e.decision.action.value == "accept"
    assert e.fields["form"]["customer_code"] == SAMPLES["termination"].code
    assert e.fields["form"]["termination_date"]
    wrong = termination_pdf(TerminationForm(customer_code="910987655"), layout="plain")
    mails = sample_mails(NOW, termination_pdf=lambda code: wrong)
    assert evaluate(dict(mails)["termination"], None, SETTINGS).decision.reasons == ["CODE_MISMATCH"]

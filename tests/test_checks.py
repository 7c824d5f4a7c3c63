"""Checks alone, on hand-built requests, and the decision they lead to."""

from datetime import datetime
from pathlib import Path

import pytest
from helpers import RULES, TOKYO, mail

from mailbot.checks import CheckContext, all_checks, run_checks
from mailbot.classify import classify
from mailbot.decide import decide
from mailbot.extract import body_items
from mailbot.model import Action, Attachment, Finding, Request

CTX = CheckContext(rules_dir=RULES, internal_domains=("usen.co.jp",), own_addresses=("usen_spot@usen.co.jp",),
                   now=datetime(2026, 11, 20, 10, 0, tzinfo=TOKYO))
PDF = Attachment("申込書_988776654.pdf", "application/pdf", b"%PDF-1.7\n...")
ORDER_BODY = """お疲れ様です。渋谷支店の鈴木です。
申込書送付します。

顧客CD : 988776654
店舗名 : カフェ・ド・ソレイユ 渋谷店
リンク品使用 無
SPOT Plus該当 有
送付支店名 : 渋谷支店
担当者名 : 鈴木
"""


def findings_of(m) -> list[str]:
    request = Request(mail=m, classification=classify(m.subject, RULES), received=CTX.now,
                      body_items=body_items(m.body, RULES))
    return [f.code for f in run_checks(request, CTX, all_checks())]


def decision_of(m):
    request = Request(mail=m, classification=classify(m.subject, RULES), received=CTX.now,
                      body_items=body_items(m.body, RULES))
    return decide(run_checks(request, CTX, all_checks()), RULES)


def test_complete_equipment_order_is_accepted():
    d = decision_of(mail(body=ORDER_BODY, attachments=(PDF,)))
    assert d.action is Action.ACCEPT and d.reasons == []


@pytest.mark.parametrize("headers", [
    {"Auto-Submitted": ("auto-replied",)},
    {"Auto-Submitted": ("auto-generated; foo",)},
    {"Precedence": ("bulk",)},
    {"Precedence": ("junk",)},
    {"Precedence": ("list",)},
    {"List-Id": ("<spot.lists.usen.co.jp>",)},
    {"List-Unsubscribe": ("<mailto:x@usen.co.jp>",)},
    {"Return-Path": ("<>",)},
    {"X-Autoreply": ("yes",)},
])
def test_automatic_mail_is_ignored(headers):
    d = decision_of(mail(body=ORDER_BODY, attachments=(PDF,), headers=headers))
    assert d.action is Action.IGNORE and d.reasons == ["AUTO_REPLY"]


def test_auto_submitted_no_is_ordinary_mail():
    assert findings_of(mail(body=ORDER_BODY, attachments=(PDF,), headers={"Auto-Submitted": ("no",)})) == []


@pytest.mark.parametrize("subject", ["自動応答: USEN SPOT 器材発注依頼_988776654", "不在通知：【受付】USEN SPOT 解約申請_988776654",
                                     "Automatic reply: USEN SPOT 器材発注依頼_988776654",
                                     "Out of Office: hello", "Undeliverable: USEN SPOT 器材発注依頼_988776654"])
def test_out_of_office_subjects_are_ignored(subject):
    assert findings_of(mail(subject, body=ORDER_BODY, attachments=(PDF,))) == ["AUTO_REPLY"]


def test_a_kind_subject_mentioning_absence_is_not_an_auto_reply():
    m = mail("USEN SPOT ルーター未撤去_988776654 店主不在のため", body="理由 : 店主不在で撤去できず")
    assert findings_of(m) == []


@pytest.mark.parametrize("sender", ["MAILER-DAEMON@usen.co.jp".lower(), "postmaster@mx.usen.co.jp",
                                    "usen_spot@usen.co.jp"])
def test_system_senders_and_own_mail_are_ignored(sender):
    assert findings_of(mail(sender=sender, body=ORDER_BODY, attachments=(PDF,))) == ["AUTO_REPLY"]


class _Replies:
    """A history that knows the Message-IDs of the replies the bot made."""

    def __init__(self, *ids: str):
        self.ids = set(ids)

    def made_reply(self, message_id: str) -> bool:
        return message_id in self.ids

    def requests_for(self, code: str) -> list:
        return []


@pytest.mark.parametrize(("sender", "made", "expected"), [
    ("usen_spot@usen.co.jp", True, ["OWN_COPY"]),  # the copy of one of its replies
    ("usen_spot@usen.co.jp", False, ["AUTO_REPLY"]),  # other mail from its own address
    ("i-suzuki@usen.co.jp", True, []),  # someone else reusing a reply's Message-ID
])
def test_the_copy_of_an_own_reply_goes_to_the_sent_folder(sender, made, expected):
    from dataclasses import replace

    from mailbot.config import embedded_default
    from mailbot.pipeline import target_folder

    m = mail(sender=sender, body=ORDER_BODY, attachments=(PDF,),
             headers={"Auto-Submitted": ("auto-replied",)} if sender.startswith("usen_spot") else {})
    ctx = replace(CTX, history=_Replies(m.message_id if made else "<other@usen.co.jp>"))
    request = Request(mail=m, classification=classify(m.subject, RULES), received=CTX.now,
                      body_items=body_items(m.body, RULES))
    found = run_checks(request, ctx, all_checks())
    assert [f.code for f in found if f.code in ("OWN_COPY", "AUTO_REPLY")] == expected
    if expected == ["OWN_COPY"]:
        settings = embedded_default(Path("/nonexistent"))
        assert target_folder(decide(found, RULES), settings) == settings.folders.sent == "送信済"


def test_delivery_reports_are_ignored():
    assert findings_of(mail(content_type="multipart/report", body=ORDER_BODY)) == ["AUTO_REPLY"]


@pytest.mark.parametrize("kwargs", [
    {"sender": "someone@gmail.com"},
    {"sender": "x@usen.co.jp.evil.example"},
    {"sender": "x@notusen.co.jp"},
    {"reply_to": ("attacker@evil.example",)},
    {"from_addrs": ("i-suzuki@usen.co.jp", "attacker@evil.example")},
])
def test_outsiders_are_held_and_nothing_else_is_checked(kwargs):
    d = decision_of(mail(**kwargs))
    assert d.action is Action.HOLD and d.reasons == ["SENDER_NOT_ALLOWED"]


def test_subdomains_are_internal():
    assert findings_of(mail(sender="a@shibuya.usen.co.jp", body=ORDER_BODY, attachments=(PDF,))) == []


def test_unknown_subject_is_held_and_stops():
    d = decision_of(mail("お疲れ様です"))
    assert d.action is Action.HOLD and d.reasons == ["UNKNOWN_SUBJECT"]


def test_every_finding_is_reported_not_the_first():
    m = mail("USEN SPOT 器材発注依頼_", body="お疲れ様です。\n店舗名 : テスト\n")
    assert findings_of(m) == ["CODE_MISSING", "ATTACHMENT_MISSING", "BODY_FIELD_MISSING"]
    assert decision_of(m).action is Action.REMAND


def test_invalid_code():
    assert findings_of(mail("USEN SPOT 器材発注依頼_98877665", body=ORDER_BODY, attachments=(PDF,))) == ["CODE_INVALID"]


def test_form_sent_as_excel():
    xlsx = Attachment("申込書.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", b"PK\x03\x04")
    assert findings_of(mail(body=ORDER_BODY, attachments=(xlsx,))) == ["ATTACHMENT_NOT_PDF"]


def test_signature_logo_is_not_a_form():
    logo = Attachment("image001.png", "image/png", b"\x89PNG" + b"0" * 2000)
    assert findings_of(mail(body=ORDER_BODY, attachments=(logo,))) == ["ATTACHMENT_MISSING"]


def test_body_code_must_match_subject():
    body = ORDER_BODY.replace("顧客CD : 988776654", "顧客CD : 988776655")
    assert findings_of(mail(body=body, attachments=(PDF,))) == ["CODE_MISMATCH"]


@pytest.mark.parametrize("subject,body,expected", [
    ("USEN SPOT 契約変更_988776654", "変更内容 : 店舗名 旧カフェ → 新カフェ", []),
    ("USEN SPOT 契約変更_988776654", "お疲れ様です。", ["BODY_FIELD_MISSING"]),
    ("USEN SPOT ルーター未撤去_988776654", "理由：店舗閉鎖のため連絡がとれない", []),
    ("USEN SPOT ルーター未撤去_988776654", "理由：", ["BODY_FIELD_MISSING"]),
    ("USEN SPOT 移設依頼_988776654", "移設先：東京都港区1-1\n移設先回線種別：フレッツ光ネクスト", []),
    ("USEN SPOT 移設依頼_988776654", "移設先：東京都港区1-1", ["BODY_FIELD_MISSING"]),
    ("USEN SPOT キャンセル申請_988776654", "", []),
    ("USEN SPOT 解約キャンセル依頼_988776654", "", []),
])
def test_body_items_per_kind(subject, body, expected):
    assert findings_of(mail(subject, body=body)) == expected


def test_items_missing_from_the_own_text_are_taken_from_the_quoted_original():
    body = "再送します。\n変更内容 : 店舗名変更\n-----Original Message-----\n変更内容 : 旧\n"
    m = mail("RE: 【差戻】USEN SPOT 契約変更_988776654", body=body)
    assert body_items(m.body, RULES) == {"change": "店舗名変更"}
    forwarded = "転送します。\n\n---------- 転送メッセージ ----------\n理由 : 店主不在\n> 顧客CD : 988776654"
    assert body_items(forwarded, RULES) == {"reason": "店主不在", "customer_code": "988776654"}


def test_empty_labels_are_absent():
    assert findings_of(mail("USEN SPOT 契約変更_988776654", body="変更内容 :\n")) == ["BODY_FIELD_MISSING"]


def test_decision_precedence_and_deferral():
    assert decide([Finding("CANCEL_AFTER_ORDER")], RULES).action is Action.ACCEPT
    assert decide([Finding("SHOP_MISMATCH"), Finding("CANCEL_AFTER_ORDER")], RULES).action is Action.HOLD
    assert decide([Finding("SHOP_MISMATCH"), Finding("CODE_MISSING")], RULES).action is Action.REMAND
    assert decide([Finding("UNIS_ORDER_NOT_FOUND", defer=True)], RULES).action is Action.DEFER
    remand = decide([Finding("UNIS_ORDER_NOT_FOUND", defer=True), Finding("ATTACHMENT_MISSING")], RULES)
    assert remand.action is Action.REMAND and remand.reasons == ["ATTACHMENT_MISSING"]
    assert decide([], RULES).action is Action.ACCEPT


MX = "mx01.usen.co.jp"


@pytest.mark.parametrize("results, held", [
    ((f"{MX}; spf=pass smtp.mailfrom=usen.co.jp; dkim=pass header.d=usen.co.jp",), False),
    ((f"{MX}; spf=fail (sender IP is 203.0.113.7) smtp.mailfrom=usen.co.jp",), True),
    ((f"{MX}; spf=pass; dkim=fail header.d=usen.co.jp",), True),
    ((f"{MX}; spf=pass; dkim=fail header.d=other.example; dkim=pass header.d=usen.co.jp",), False),
    ((f"{MX}; dmarc=fail action=none header.from=usen.co.jp",), True),
    ((f"{MX}; spf=softfail; dkim=none",), False),  # only "fail" fails (rules/senders.toml)
    # a forged header below the company MX's own is not read
    ((f"{MX}; spf=pass", "evil.example; spf=fail"), False),
    (("evil.example; spf=pass", f"{MX}; spf=fail"), False),  # the topmost one is the verdict
    ((f"{MX}; spf=pass (comment says spf=fail)",), False),
    ((), False),
])
def test_failed_spf_dkim_dmarc_is_held_never_answered(results, held):
    m = mail(body=ORDER_BODY, cc=("m-tanaka@usen.co.jp",), attachments=(PDF,),
             headers={"Authentication-Results": results} if results else None)
    codes = findings_of(m)
    assert ("SENDER_NOT_ALLOWED" in codes) is held
    if held:
        assert codes == ["SENDER_NOT_ALLOWED"]  # stops the other checks: nothing more is read


def test_a_cancellations_case_is_worked_out_once_per_mail():
    """The check (CANCEL_AFTER_ORDER) and the reply's fields (what cost to state) read one case:
    the history is asked once per mail, and a new mail's context asks again."""
    from dataclasses import replace

    from mailbot.checks.history import cancellation_by_case, cancellation_fields
    from mailbot.model import Kind
    from mailbot.record.history import MemoryHistory, PastRequest

    class CountingHistory(MemoryHistory):
        asked = 0

        def requests_for(self, code):
            self.asked += 1
            return super().requests_for(code)

    history = CountingHistory()
    history.add(PastRequest(Kind.EQUIPMENT_ORDER, "988776654", Action.ACCEPT,
                            datetime(2026, 11, 17, 10, 0, tzinfo=TOKYO)))
    m = mail("USEN SPOT キャンセル申請_988776654", body="顧客CD : 988776654\nキャンセル理由 : 開店延期のため\n")
    request = Request(mail=m, classification=classify(m.subject, RULES), received=CTX.now,
                      body_items=body_items(m.body, RULES))
    ctx = replace(CTX, history=history)
    assert [f.code for f in cancellation_by_case(request, ctx)] == ["CANCEL_AFTER_ORDER"]
    assert cancellation_fields(request, ctx) == {"case": "open_order", "order_day": "2026-11-17", "source": "発注受付日"}
    assert history.asked == 1
    fresh = replace(CTX, history=history)
    assert cancellation_fields(request, fresh)["case"] == "open_order" and history.asked == 2

"""Replies: subject, threading, recipients, wording from templates, and no header injection."""

from email import message_from_bytes
from email.policy import default

import pytest
from helpers import RULES, TEMPLATES, TOKYO, mail
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.checks.sender import is_internal
from mailbot.classify import classify
from mailbot.model import Action, Decision, Finding
from mailbot.reply.render import ReplySettings, build_reply

SETTINGS = ReplySettings(sender="usen_spot@usen.co.jp", internal_domains=("usen.co.jp",), acknowledge_held=False,
                         templates_dir=TEMPLATES, rules_dir=RULES)
SHA = "ab" * 32


def reply_for(m, action, findings=(), reply_settings=SETTINGS):
    return build_reply(m, SHA, classify(m.subject, RULES), Decision(action, tuple(findings)), reply_settings)


def parsed(reply):
    return message_from_bytes(reply.data, policy=default)


def test_remand_lists_every_finding_with_its_fix():
    m = mail("RE: Fw: USEN SPOT 器材発注依頼_98877665")
    r = reply_for(m, Action.REMAND, [Finding("CODE_INVALID", "98877665"), Finding("ATTACHMENT_MISSING")])
    msg = parsed(r)
    assert msg["Subject"] == "【差戻】USEN SPOT 器材発注依頼_98877665"
    body = msg.get_content()
    assert "1. 件名の顧客コードが9桁の数字ではありません。（98877665）" in body
    assert "2. 必要なPDFが添付されていません。" in body
    assert "パスワード（uspot）" in body
    assert body.startswith("鈴木 一郎 様")


def test_threading_and_auto_submitted():
    msg = parsed(reply_for(mail(), Action.ACCEPT))
    assert msg["In-Reply-To"] == "<abc.123@mail.usen.co.jp>"
    assert msg["References"] == "<abc.123@mail.usen.co.jp>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["From"] == "usen_spot@usen.co.jp"
    assert msg["Message-ID"] == f"<accept.{SHA[:32]}.mailbot@usen.co.jp>"


def test_reply_goes_to_sender_with_original_cc_internal_only():
    m = mail(cc=("shibuya-mgr@usen.co.jp", "partner@gmail.com", "usen_spot@usen.co.jp"))
    r = reply_for(m, Action.ACCEPT)
    msg = parsed(r)
    assert [a.addr_spec for a in msg["To"].addresses] == ["i-suzuki@usen.co.jp"]
    assert [a.addr_spec for a in msg["Cc"].addresses] == ["shibuya-mgr@usen.co.jp"]
    assert r.recipients == ["i-suzuki@usen.co.jp", "shibuya-mgr@usen.co.jp"]


def test_no_reply_for_ignore_defer_outsiders_and_holds_without_acknowledgement():
    assert reply_for(mail(), Action.IGNORE, [Finding("AUTO_REPLY")]) is None
    assert reply_for(mail(), Action.DEFER) is None
    assert reply_for(mail(), Action.HOLD, [Finding("SENDER_NOT_ALLOWED")]) is None
    assert reply_for(mail(), Action.HOLD, [Finding("SHOP_MISMATCH")]) is None
    assert reply_for(mail(sender="x@gmail.com"), Action.ACCEPT) is None


def test_held_acknowledgement_when_enabled():
    ack = ReplySettings(**{**SETTINGS.__dict__, "acknowledge_held": True})
    msg = parsed(reply_for(mail(), Action.HOLD, [Finding("SHOP_MISMATCH")], ack))
    assert msg["Subject"].startswith("【確認中】")
    assert reply_for(mail(), Action.HOLD, [Finding("SENDER_NOT_ALLOWED")], ack) is None


def test_acceptance_texts_per_kind():
    assert "ファイバーゲート社" in parsed(reply_for(mail(), Action.ACCEPT)).get_content()
    termination = parsed(reply_for(mail("USEN SPOT 解約申請_988776654"), Action.ACCEPT)).get_content()
    assert "30,000円" in termination and "撤去" in termination
    # A registration notice is never accepted by mail: its remand is the procedure (seed 000).
    notice = parsed(reply_for(mail("登録通知書の再発行依頼"), Action.REMAND,
                              [Finding("REGISTRATION_NOTICE_VIA_DRAGON")])).get_content()
    assert "0120-773-713" in notice and "Dragon" in notice and "郵送のみ" in notice and "日付指定はできません" in notice


SUBJECTS = {
    "equipment_order": "USEN SPOT 器材発注依頼_988776654", "contract_change": "USEN SPOT 契約変更_988776654",
    "cancellation": "USEN SPOT キャンセル申請_988776654", "termination": "USEN SPOT 解約申請_988776654",
    "router_not_removed": "USEN SPOT ルーター未撤去_988776654", "relocation": "USEN SPOT 移設依頼_988776654",
    "termination_withdrawal": "USEN SPOT 解約キャンセル依頼_988776654",
    "registration_notice": "USEN SPOT 登録通知書再発送依頼_988776654", "unknown": "ルーターについて",
}


@pytest.mark.parametrize("kind", sorted(SUBJECTS))
@pytest.mark.parametrize("action, findings", [
    (Action.ACCEPT, ()),
    (Action.ACCEPT, (Finding("CANCEL_AFTER_ORDER", "UNIS受注日 2026-11-19、キャンセル受付 2026-11-24"),)),
    (Action.REMAND, (Finding("CC_MANAGER_MISSING", "渋谷支店 m-tanaka@usen.co.jp"),
                     Finding("BODY_FIELD_MISSING", "店舗名"))),
    (Action.HOLD, (Finding("SHOP_MISMATCH", "申込書 A / UNIS B"),)),
])
def test_every_kind_renders_for_every_decision(kind, action, findings):
    """Each template of templates/ renders for each kind, with and without findings."""
    m = mail(SUBJECTS[kind])
    r = reply_for(m, action, findings, ReplySettings(**{**SETTINGS.__dict__, "acknowledge_held": True}))
    assert classify(m.subject, RULES).kind.value == kind
    body = parsed(r).get_content()
    assert body.startswith("鈴木 一郎 様") and "USEN SPOT 事務センター" in body
    for f in findings:
        # Accept and remand tell every finding with what exactly was found; a hold only
        # acknowledges (its findings are for office-center staff, in the held folder).
        assert (f.detail in body) is (action is not Action.HOLD)
    if action is Action.REMAND:
        assert "支店長（依頼部署責任者）をCCに入れて再送してください。" in body


def test_cancellation_tells_whether_the_router_was_already_made():
    m = mail("USEN SPOT キャンセル申請_988776654")
    today = {"cancellation_case": "open_order"}  # the order was accepted today (DOMAIN.md §5)
    free = parsed(build_reply(m, SHA, classify(m.subject, RULES), Decision(Action.ACCEPT, ()), SETTINGS,
                              today)).get_content()
    unknown = parsed(reply_for(m, Action.ACCEPT)).get_content()  # no reference data: no claim of cost
    assert "費用は発生しません" not in unknown and "費用の有無を改めてご連絡します" in unknown
    late = parsed(reply_for(m, Action.ACCEPT, [Finding("CANCEL_AFTER_ORDER", "発注受付日 2026-11-19、キャンセル受付 2026-11-24")]))
    late = late.get_content()
    assert "費用は発生しません" in free and "返送" not in free
    assert "手配済み" in late and "物流センターへ返送" in late and "2026-11-19" in late
    assert late.count("物流センター") == 1  # explained once, not again among the notes


NASTY = st.text(alphabet=st.sampled_from(list("AbＡ漢\r\n\x00\u2028\u2029\u202e\u200b\t =?:<>@\"")), max_size=60)


@settings(max_examples=200, deadline=None)
@given(subject=NASTY, name=NASTY, message_id=NASTY)
def test_nothing_from_the_mail_adds_a_header(subject, name, message_id):
    m = mail("USEN SPOT 器材発注依頼_988776654 " + subject, name=name)
    m = m.__class__(**{**m.__dict__, "message_id": message_id, "references": (message_id,)})
    r = reply_for(m, Action.ACCEPT)
    raw = r.data
    head = raw.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0] for line in head.split(b"\r\n") if line and not line[:1].isspace()]
    allowed = {b"From", b"To", b"Cc", b"Subject", b"Date", b"Message-ID", b"In-Reply-To", b"References",
               b"Auto-Submitted", b"X-Auto-Response-Suppress", b"X-Mailbot-Decision", b"MIME-Version",
               b"Content-Type", b"Content-Transfer-Encoding"}
    assert set(names) <= allowed
    assert len(names) == len(set(names))
    assert b"\x00" not in head


HOSTILE = list("AbＡ漢\r\n\x00\u2028\u2029\u0085\u202e\u202d\u200b\u200f\u2066\ufeff\t =?:<>@\"") + ["Bcc: x@evil.example"]
HOSTILE_TEXT = st.lists(st.sampled_from(HOSTILE), max_size=20).map("".join)


def encoded_word(text: str, charset: str, b64: bool) -> str:
    """An RFC 2047 encoded word carrying `text` (what a hostile sender writes to smuggle bytes)."""
    import base64

    data = text.encode(charset, "replace")
    if b64:
        return f"=?{charset}?B?{base64.b64encode(data).decode()}?="
    return f"=?{charset}?Q?{''.join(chr(b) if chr(b).isalnum() and b < 128 else f'={b:02X}' for b in data)}?="


@settings(max_examples=200, deadline=None)
@given(subject=HOSTILE_TEXT, name=HOSTILE_TEXT, charset=st.sampled_from(["utf-8", "iso-2022-jp", "shift_jis"]),
       b64=st.booleans())
def test_encoded_words_from_the_wire_never_add_a_header_or_an_invisible_character(subject, name, charset, b64):
    """Raw bytes as a sender writes them → parse → reply: CR, LF, NUL, U+2028, bidi and zero-width
    characters hidden in encoded words end up neither as a header nor inside one."""
    from mailbot.message import parse_mail

    raw = (f"From: {encoded_word(name, charset, b64)} <i-suzuki@usen.co.jp>\r\n"
           f"To: usen_spot@usen.co.jp\r\nCc: m-tanaka@usen.co.jp\r\n"
           f"Subject: USEN SPOT 器材発注依頼_988776654 {encoded_word(subject, charset, b64)}\r\n"
           f"Message-ID: <a1@usen.co.jp>\r\nDate: Fri, 20 Nov 2026 10:00:00 +0900\r\n"
           f"Content-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n").encode("utf-8")
    m = parse_mail(raw)
    reply = reply_for(m, Action.ACCEPT)
    if reply is None:  # a From whose name hides a line break is no usable internal address: never answered
        assert m.sender is None or not is_internal(m.sender, ("usen.co.jp",))
        return
    out = reply.data
    head = out.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0] for line in head.split(b"\r\n") if line and not line[:1].isspace()]
    assert set(names) <= {b"From", b"To", b"Cc", b"Subject", b"Date", b"Message-ID", b"In-Reply-To", b"References",
                          b"Auto-Submitted", b"X-Auto-Response-Suppress", b"X-Mailbot-Decision",
                          b"MIME-Version", b"Content-Type", b"Content-Transfer-Encoding"}
    assert len(names) == len(set(names)) and b"\x00" not in head
    parsed_back = message_from_bytes(out, policy=default)
    for value in (str(parsed_back["Subject"]), str(parsed_back["To"])):
        assert not any(c in value for c in "\r\n\x00\u2028\u2029\u0085\u202e\u202d\u200b\u200f\u2066\ufeff"), value
    assert str(parsed_back["Subject"]).startswith("【受付】USEN SPOT 器材発注依頼_988776654")


def test_equipment_acceptance_states_the_dates_from_the_business_calendar():
    from datetime import datetime

    from helpers import TOKYO

    from mailbot.reply.render import next_steps

    m = mail()
    decision = Decision(Action.ACCEPT, ())
    c = classify(m.subject, RULES)
    # Friday 2026-11-20 18:05, after the cutoff: day N is Tuesday 11-24 (Monday 11-23 is a holiday).
    context = next_steps(c, decision, datetime(2026, 11, 20, 18, 5, tzinfo=TOKYO), RULES)
    body = parsed(build_reply(m, SHA, c, decision, SETTINGS, context)).get_content()
    assert "受付日（11月24日（火））" in body
    assert "11月25日（水）　ファイバーゲート社へ登録" in body
    assert "11月26日（木）　キッティング・出荷" in body
    assert "11月27日（金）～12月1日（火）　支店へ到着予定" in body
    # Before the cutoff on a business day, day N is that day.
    context = next_steps(c, decision, datetime(2026, 11, 25, 16, 59, tzinfo=TOKYO), RULES)
    assert context["day_n"].isoformat() == "2026-11-25" and context["schedule"].registered.isoformat() == "2026-11-26"
    assert next_steps(c, Decision(Action.REMAND, ()), datetime(2026, 11, 25, 10, tzinfo=TOKYO), RULES) == {}


def test_a_subject_that_spells_an_encoded_word_stays_text():
    """A subject whose decoded text is itself "=?utf-8?Q?=00=0D=0ABcc:_x?=" must not be decoded a
    second time on the way out (that would put a NUL and a line break into the reply's header)."""
    m = mail("USEN SPOT 器材発注依頼_988776654 =?utf-8?Q?=00=0D=0ABcc:_x@evil.example?=")
    out = reply_for(m, Action.ACCEPT).data
    head = out.split(b"\r\n\r\n", 1)[0]
    assert b"\x00" not in head and b"Bcc" not in head.replace(b"Bcc:_x", b"")
    subject = str(message_from_bytes(out, policy=default)["Subject"])
    assert "\x00" not in subject and "\n" not in subject and subject.endswith("=？utf-8?Q?=00=0D=0ABcc:_x@evil.example?=")


def test_termination_acceptance_states_the_date_of_its_form():
    from datetime import datetime

    from mailbot.reply.render import next_steps

    m = mail("USEN SPOT 解約申請_910987654")
    c = classify(m.subject, RULES)
    decision = Decision(Action.ACCEPT, ())
    received = datetime(2026, 11, 20, 10, 0, tzinfo=TOKYO)
    with_form = next_steps(c, decision, received, RULES, {"form": {"termination_date": "2026-12-31"}})
    r = build_reply(m, SHA, c, decision, SETTINGS, with_form)
    assert "解約日 12月31日（木） の解約に向けて" in parsed(r).get_content()
    without = next_steps(c, decision, received, RULES, {"form": {"termination_date": "31.12."}})
    assert "termination_date" not in without
    assert "プロバイダ契約の解除手続きを進めます" in parsed(build_reply(m, SHA, c, decision, SETTINGS, without)).get_content()


def test_the_from_carries_the_office_centers_name(tmp_path):
    from mailbot.config import load

    named = ReplySettings(**{**SETTINGS.__dict__, "sender_name": "USEN SPOT 事務センター"})
    msg = parsed(reply_for(mail(), Action.ACCEPT, reply_settings=named))
    assert msg["From"].addresses[0].display_name == "USEN SPOT 事務センター"
    assert msg["From"].addresses[0].addr_spec == "usen_spot@usen.co.jp"
    config = tmp_path / "mailbot.toml"
    config.write_text('[maildir]\npath = "mb"\n[outbox]\npath = "out"\nfrom_name = "USEN SPOT 事務センター 東京"\n', "utf-8")
    assert load(config).reply_from_name == "USEN SPOT 事務センター 東京"

"""The held folder as staff work it, on the real servers (issue 5): a note per held mail with the
findings on top and the original attached untouched; staff decide by moving the note; exactly one
reply per decision; the note filed afterwards."""

from __future__ import annotations

import base64
import email
import subprocess
import sys
from datetime import timedelta
from email.policy import default

import pytest
from test_loop import HELD, ORIGINALS, PROCESSED, appended, bot_session, write_config

from mailbot.reply.note import HELD_HEADER, original_of

ACCEPT, REMAND = HELD + "/受付", HELD + "/差戻"


def staff_move(account, folder: str, dest: str) -> None:
    """What a person does in Outlook: drag the (only) item of `folder` into `dest`."""
    c = account.client()
    try:
        c.select_folder(folder)
        uids = c.search("ALL")
        assert len(uids) == 1, uids
        c.move(uids, dest)
    finally:
        c.logout()


def text_of(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=default)
    return msg.get_body(("plain",)).get_content()


@pytest.fixture
def held_unknown(imap_account, smtp_sink, tmp_path):
    """The sample question no kind matches, held by one poll."""
    data = appended(imap_account, "unknown_subject")
    config = write_config(tmp_path, imap_account, smtp_sink)
    with bot_session(config) as (bot, store):
        bot.poll()
    return config, data


def test_a_held_mail_shows_why_at_the_top_and_keeps_the_original_untouched(imap_account, held_unknown):
    _config, data = held_unknown
    assert list(imap_account.messages(ORIGINALS).values()) == [data]  # the original itself, untouched
    (note,) = imap_account.messages(HELD).values()
    assert original_of(note) == data  # …and carried by the note, byte for byte
    msg = email.message_from_bytes(note, policy=default)
    assert msg["Subject"] == "【保留】USEN SPOT ルーターの設置場所について（ご相談）"
    assert msg[HELD_HEADER] and msg["Auto-Submitted"] == "auto-generated"
    text = text_of(note)
    assert text.index("保留の理由") < text.index("件名が規定の形式") < text.index("対応のしかた")
    assert "種別：不明" in text
    assert f"「{ACCEPT}」へ移動" in text and f"「{REMAND}」へ移動" in text and f"「{PROCESSED}」へ移動" in text
    html = msg.get_body(("html",)).get_content()
    assert "件名が規定の形式" in html and "<script" not in html
    (attached,) = [p for p in msg.iter_attachments()]
    assert attached.get_content_type() == "message/rfc822" and attached.get_filename() == "original.eml"


def test_staff_accept_sends_one_acceptance_and_files_the_note(imap_account, smtp_sink, held_unknown):
    config, data = held_unknown
    staff_move(imap_account, HELD, ACCEPT)
    with bot_session(config) as (bot, store):
        report = bot.poll()
        assert report.staff == [("USEN SPOT ルーターの設置場所について（ご相談）", "accepted")]
        assert report.sent == 1
        bot.poll()
        assert bot.poll().sent == 0
        assert store.open_held_items() == []
        events = [e for _, e, _ in store.events(1)]
        assert events[-4:] == ["staff accepted", "reply queued", "reply sent", "filed"]
    (reply,) = smtp_sink.messages()
    assert reply.message["Subject"] == "【受付】USEN SPOT ルーターの設置場所について（ご相談）"
    assert reply.message["In-Reply-To"] == email.message_from_bytes(data)["Message-ID"]
    assert imap_account.messages(ACCEPT) == {} and imap_account.messages(HELD) == {}
    (filed,) = imap_account.messages(PROCESSED).values()
    assert original_of(filed) == data
    assert list(imap_account.messages(ORIGINALS).values()) == [data]


def test_staff_remand_tells_the_branch_what_to_fix(imap_account, smtp_sink, held_unknown):
    config, _data = held_unknown
    staff_move(imap_account, HELD, REMAND)
    with bot_session(config) as (bot, store):
        assert bot.poll().sent == 1
        assert bot.poll().sent == 0
        assert store.db.execute("SELECT outcome FROM held").fetchone()[0] == "remanded"
    (reply,) = smtp_sink.messages()
    assert reply.message["Subject"] == "【差戻】USEN SPOT ルーターの設置場所について（ご相談）"
    body = reply.message.get_body(("plain",)).get_content()
    # The branch's fix (branch_fix), not the note for staff.
    assert "件名を「USEN SPOT <依頼種別>_UNIS顧客コード（9桁）」の形にして再送してください。" in body
    assert "支店へ規定の件名での再送を依頼" not in body
    assert imap_account.messages(REMAND) == {} and len(imap_account.messages(PROCESSED)) == 1


def test_staff_moving_the_note_to_processed_is_handled_by_a_person_no_reply(imap_account, smtp_sink, held_unknown):
    config, _data = held_unknown
    staff_move(imap_account, HELD, PROCESSED)
    with bot_session(config) as (bot, store):
        report = bot.poll()
        assert report.staff and report.staff[0][1] == "handled" and report.sent == 0
        assert bot.poll().staff == []  # looked at once (the cursor moved on)
        assert store.open_held_items() == []
    assert smtp_sink.messages() == []
    assert len(imap_account.messages(PROCESSED)) == 1


@pytest.mark.parametrize("crash", ["after the APPEND", "before the APPEND"])
def test_a_note_is_filed_once_whenever_the_bot_died(imap_account, smtp_sink, tmp_path, crash):
    """_file records 'held note begun' (synced) before the first APPEND, which does not look for
    the note first; the next process, seeing it begun, looks: it finds the note the APPEND made,
    or makes the one it never made."""
    appended(imap_account, "unknown_subject")
    config = write_config(tmp_path, imap_account, smtp_sink)
    with bot_session(config) as (bot, store):
        bot._file = lambda report, **_: None  # decided, not yet filed
        bot.poll()
        row = store.unfinished("INBOX")[0]
        assert store.notes_begun([row.id]) == set()  # as _file records it
        if crash == "after the APPEND":
            assert bot._file_note(row, look_first=False)
    with bot_session(config) as (bot, store):
        bot.poll()
        assert store.notes_begun([row.id]) == {row.id}
        assert [e for _, e, _ in store.events(row.id)].count("held note begun") == 1
    assert len(imap_account.messages(HELD)) == 1 and len(imap_account.messages(ORIGINALS)) == 1


def test_staff_decision_moved_twice_answers_once(imap_account, smtp_sink, held_unknown):
    """A note dragged into 受付, answered; a copy of it dragged there again: no second reply."""
    config, _ = held_unknown
    c = imap_account.client()
    try:
        c.select_folder(HELD)
        c.copy(c.search("ALL"), ACCEPT)
        c.copy(c.search("ALL"), ACCEPT)  # two copies in 受付 (a double drag)
    finally:
        c.logout()
    with bot_session(config) as (bot, _store):
        bot.poll()
        bot.poll()
    assert len(smtp_sink.messages()) == 1


@pytest.mark.parametrize("dest", [ACCEPT, REMAND])
def test_staff_asking_to_answer_an_outsider_get_the_note_back_with_why_and_what_to_do(
        imap_account, smtp_sink, tmp_path, dest):
    """The note of a Gmail sender moved to 受付/差戻: nothing is sent (nothing outside the
    company), and the note comes back to the held folder with a notice beside it saying why and
    what to do; the item stays open until staff file it to 処理済 (issue 20)."""
    data = appended(imap_account, "outside_gmail")
    config = write_config(tmp_path, imap_account, smtp_sink)
    with bot_session(config) as (bot, store):
        bot.poll()
    (note,) = imap_account.messages(HELD).values()
    staff_move(imap_account, HELD, dest)
    with bot_session(config) as (bot, store):
        report = bot.poll()
        assert report.staff == [] and report.sent == 0
        assert len(store.open_held_items()) == 1
        assert [e for _, e, _ in store.events(1)][-1] == "staff answer impossible"
        bot.poll()  # nothing more happens: the notice is filed once
    assert smtp_sink.messages() == [] and imap_account.messages(dest) == {}
    held = list(imap_account.messages(HELD).values())
    assert len(held) == 2 and note in held
    (notice,) = [m for m in held if m != note]
    msg = email.message_from_bytes(notice, policy=default)
    assert msg["Subject"] == "【保留】自動では返信できません：" + email.message_from_bytes(data, policy=default)["Subject"]
    assert HELD_HEADER not in msg  # not a note: moving it decides nothing
    text = text_of(notice)
    assert f"「{dest}」へ移動された保留メモを、「{HELD}」フォルダへ戻しました。" in text
    assert "社内のアドレスではないため、mailbot からは返信しません" in text
    assert f"「{PROCESSED}」へ移動してください" in text
    # Staff do as the notice says: handled, no reply, the item closed.
    c = imap_account.client()
    try:
        c.select_folder(HELD)
        c.move([uid for uid, m in c.fetch(c.search("ALL"), ["RFC822"]).items() if m[b"RFC822"] == note], PROCESSED)
    finally:
        c.logout()
    with bot_session(config) as (bot, store):
        assert [outcome for _, outcome in bot.poll().staff] == ["handled"]
        assert store.open_held_items() == []
    assert smtp_sink.messages() == []


def test_a_copy_of_a_decided_note_left_in_accept_or_remand_is_filed_and_logged(
        imap_account, smtp_sink, held_unknown, caplog):
    """Staff copied the note into 受付 and 差戻 (a drag with Ctrl): the first decides; the other copy
    would stay in its folder forever: it is filed to 処理済, with an event and a log line."""
    config, _ = held_unknown
    c = imap_account.client()
    try:
        c.select_folder(HELD)
        uids = c.search("ALL")
        c.copy(uids, ACCEPT)
        c.move(uids, REMAND)
    finally:
        c.logout()
    with caplog.at_level("INFO", logger="mailbot"), bot_session(config) as (bot, store):
        bot.poll()
        bot.poll()
        events = [e for _, e, _ in store.events(1)]
    assert len(smtp_sink.messages()) == 1  # one decision, one reply
    assert imap_account.messages(ACCEPT) == {} and imap_account.messages(REMAND) == {}
    assert len(imap_account.messages(PROCESSED)) == 2
    assert "stale note copy filed" in events
    assert any("a copy of its note" in r.getMessage() and f"filed to {PROCESSED}" in r.getMessage() for r in caplog.records)


def test_held_command_lists_open_items_oldest_first(imap_account, smtp_sink, tmp_path):
    appended(imap_account, "unknown_subject")
    appended(imap_account, "outside_gmail")
    config = write_config(tmp_path, imap_account, smtp_sink)
    with bot_session(config) as (bot, _store):
        bot.poll()
    result = subprocess.run([sys.executable, "-m", "mailbot", "held", "--config", str(config)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # In Japanese for staff: headings, kinds, reasons (rules/reasons.toml labels), never a code.
    assert lines[0].split()[:6] == ["保留日時", "経過営業日", "種別", "顧客CD", "理由", "件名"]
    assert "不明" in lines[2] and "件名の形式違い" in lines[2]
    assert "キャンセル申請" in lines[3] and "社外・認証不可の送信者" in lines[3] and "944556677" in lines[3]
    assert "UNKNOWN_SUBJECT" not in result.stdout and "SENDER_NOT_ALLOWED" not in result.stdout
    assert lines[-1].startswith("未処理の保留 2件（「保留/要確認」のメモを「保留/要確認/受付」")


def test_a_branch_answering_the_acceptance_is_held_never_answered_and_its_note_shows_the_decision(
        imap_account, smtp_sink, tmp_path):
    """The branch thanks for the acceptance and asks when the router ships (DOMAIN.md §2): no
    second acceptance, no remand; staff find the earlier decision in the note."""
    appended(imap_account, "order_shibuya")
    config = write_config(tmp_path, imap_account, smtp_sink)
    with bot_session(config) as (bot, store):
        bot.poll()
        (acceptance,) = smtp_sink.wait_for(1)
        accepted = acceptance.message
        assert accepted["Subject"].startswith("【受付】")
        answer = (
            "From: =?UTF-8?B?6Yi05pyoIOS4gOmDjg==?= <i-suzuki@usen.co.jp>\r\n"
            "To: usen_spot@usen.co.jp\r\nCc: m-tanaka@usen.co.jp\r\n"
            f"Subject: =?UTF-8?B?{base64.b64encode(('RE: ' + accepted['Subject']).encode()).decode()}?=\r\n"
            "Date: Fri, 20 Nov 2026 11:02:00 +0900\r\nMessage-ID: <answer.1@usen.co.jp>\r\n"
            f"In-Reply-To: {accepted['Message-ID']}\r\nReferences: {accepted['Message-ID']}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            "事務センター ご担当者様\r\n\r\nご対応ありがとうございます。\r\n発送日はいつになりますでしょうか。\r\n\r\n"
            "渋谷支店 鈴木\r\n").encode()
        imap_account.append("INBOX", answer)
        report = bot.poll()
        assert [e.decision.reasons for _, e, _ in report.handled] == [["REPLY_TO_BOT"]]
        assert report.sent == 0 and len(smtp_sink.messages()) == 1  # never answered
    (note,) = imap_account.messages(HELD).values()
    text = text_of(note)
    assert "受付（または確認中）のメールへの返信" in text
    assert "■ これまでのメールと判定（顧客コード 988776654、新しい順）" in text
    earlier = text[text.index("■ これまでのメールと判定"):text.index("■ 対応のしかた")]
    assert "器材発注依頼" in earlier and "受付" in earlier and "USEN SPOT 器材発注依頼_988776654" in earlier
    # The UNIS lines of the code are in the note, and what staff's 受付 would send (差戻: nothing to fix).
    assert "■ UNISの登録内容（顧客コード 988776654）" in text
    accept = text[text.index("■ 受け付けた場合に送られる返信（プレビュー"):text.index("■ 差し戻した場合")]
    assert "件名：【受付】" in accept and "宛先：i-suzuki@usen.co.jp" in accept


def test_a_staff_acceptance_replaces_the_hold_everywhere(imap_account, smtp_sink, tmp_path):
    """DOMAIN.md §9: an order staff accepted from the held folder is an accepted order: a second
    identical order is a duplicate, and the record (digest, history) says 受付."""
    from test_loop import NOW, crlf

    from demo.forms import scanned_pdf
    from demo.samples import sample_mails

    scan = scanned_pdf()  # a photographed form: PDF_UNREADABLE, held for a person
    order = crlf(dict(sample_mails(NOW, application_pdf=lambda code: scan))["order_shibuya"])
    imap_account.append("INBOX", order)
    config = write_config(tmp_path, imap_account, smtp_sink)
    with bot_session(config) as (bot, store):
        first = bot.poll()
        assert [e.decision.reasons for _, e, _ in first.handled] == [["PDF_UNREADABLE"]]
        staff_move(imap_account, HELD, ACCEPT)  # staff read the scan and accept it
        assert bot.poll().staff == [("USEN SPOT 器材発注依頼_988776654", "accepted")]
        assert store.get(1).action == "accept"
        (past,) = store.requests_for("988776654")
        assert past.action.value == "accept" and past.decided_at is not None and past.accepted_on > past.received
        # The branch sends the same order again (a new Message-ID: Outlook's 再送)
        again = order.replace(b"Message-ID: <", b"Message-ID: <resent.", 1)
        assert again != order
        imap_account.append("INBOX", again, internaldate=store.get(1).received + timedelta(minutes=30))
        second = bot.poll()
        assert "DUPLICATE_REQUEST" in second.handled[0][1].decision.reasons
    history = subprocess.run([sys.executable, "-m", "mailbot", "history", "--config", str(config), "--json",
                              "988776654"], capture_output=True, text=True, timeout=120)
    import json

    decisions = [m["decision"] for m in json.loads(history.stdout)["mails"]]
    assert decisions[0] == "accept", decisions

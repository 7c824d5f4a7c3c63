"""ImapMailbox against a real Dovecot, and the SMTP sink the end-to-end tests rely on."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta, timezone
from email.header import Header
from email.message import EmailMessage

import aiosmtplib
import pytest

from mailbot.mailbox import MailboxError
from mailbot.mailbox.imap import ImapMailbox
from mailbot.model import MailRef

JST = timezone(timedelta(hours=9))
PROCESSED = "処理済"
HELD = "保留"
HELD_RECEIVED = "保留/受付"


def ascii_mail(n: int, *, message_id: bool = True, extra: str = "") -> bytes:
    lines = [
        "From: Branch <branch@example.jp>",
        "To: office@example.jp",
        f"Subject: test {n}",
        "Date: Mon, 06 Jan 2025 10:00:00 +0900",
    ]
    if message_id:
        lines.append(f"Message-ID: <test-{n}@example.jp>")
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=us-ascii", "", f"body {n}{extra}", ""]
    return "\r\n".join(lines).encode("ascii")


def jp_mail() -> bytes:
    subject = Header("機器発注　ABC-1234 渋谷支店", "iso-2022-jp").encode()
    head = (
        "From: =?ISO-2022-JP?B?GyRCO1lFORsoQg==?= <branch@example.jp>\r\n"
        "To: office@example.jp\r\n"
        f"Subject: {subject}\r\n"
        "Date: Mon, 06 Jan 2025 10:00:00 +0900\r\n"
        "Message-ID: <jp-1@example.jp>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=ISO-2022-JP\r\n"
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
    ).encode("ascii")
    body = "お世話になっております。\r\n機器の発注をお願いいたします。\r\n".encode("iso-2022-jp")
    return head + body


def refs(mb: ImapMailbox, folder: str) -> list[MailRef]:
    return [raw.ref for raw in mb.fetch(folder, mb.list_uids(folder))]


# ------------------------------------------------------------------------------ reading


def test_fetch_returns_exact_bytes_and_internaldate_without_seen(imap_account):
    mails = [ascii_mail(1), jp_mail(), ascii_mail(3)]
    when = datetime(2025, 1, 6, 9, 30, 15, tzinfo=JST)
    for i, data in enumerate(mails):
        imap_account.append("INBOX", data, internaldate=when + timedelta(minutes=i))

    with imap_account.mailbox() as mb:
        uids = mb.list_uids("INBOX")
        assert uids == sorted(uids) and len(uids) == 3
        uidvalidity = mb.uidvalidity("INBOX")
        got = list(mb.fetch("INBOX", uids))

    assert [r.data for r in got] == mails
    assert [r.ref for r in got] == [MailRef("INBOX", uidvalidity, u) for u in uids]
    for i, raw in enumerate(got):
        assert raw.internaldate is not None and raw.internaldate.tzinfo is not None
        assert raw.internaldate == when + timedelta(minutes=i)
    assert raw.sha256 == hashlib.sha256(mails[2]).hexdigest()
    assert all(b"\\Seen" not in flags for flags in imap_account.flags("INBOX").values())


def test_fetch_batches_skips_vanished_and_survives_moves_in_between(imap_account):
    for n in range(7):
        imap_account.append("INBOX", ascii_mail(n))
    with imap_account.mailbox(batch_size=3) as mb:
        mb.ensure_folders([PROCESSED])
        uids = mb.list_uids("INBOX")
        moved = []
        for raw in mb.fetch("INBOX", [uids[0], 9999, *uids[1:], uids[2]]):  # a gap and a repeat
            moved.append(raw.data)
            mb.move(raw.ref, PROCESSED)  # selects other folders between the batches
        assert mb.list_uids("INBOX") == []
        assert list(mb.fetch("INBOX", [])) == []
    assert moved == [ascii_mail(n) for n in range(7)]
    assert list(imap_account.messages(PROCESSED).values()) == moved


def test_fetch_from_a_missing_folder_is_a_mailbox_error(imap_account):
    with imap_account.mailbox() as mb:
        with pytest.raises(MailboxError, match="ない"):
            list(mb.fetch("ない", [1]))
        with pytest.raises(MailboxError):
            mb.list_uids("ない")
        assert mb.list_uids("INBOX") == []  # the connection is still usable


# ------------------------------------------------------------------------------ folders


def test_ensure_folders_creates_japanese_hierarchy(imap_account):
    with imap_account.mailbox() as mb:
        mb.ensure_folders([HELD_RECEIVED, PROCESSED, HELD, "INBOX"])  # child before parent
        mb.ensure_folders([HELD_RECEIVED, PROCESSED, HELD])  # again: nothing to do
        mb.append(HELD_RECEIVED, ascii_mail(1))
        mb.append(HELD, ascii_mail(2))
        assert len(mb.list_uids(HELD_RECEIVED)) == 1
        assert len(mb.list_uids(HELD)) == 1
    assert imap_account.folders() == sorted(["INBOX", HELD, HELD_RECEIVED, PROCESSED])
    c = imap_account.client()
    try:
        subscribed = {name for _f, _d, name in c.list_sub_folders()}
    finally:
        c.logout()
    assert {HELD, HELD_RECEIVED, PROCESSED} <= subscribed


def test_ensure_folders_maps_onto_dot_separator_and_inbox_prefix(nomove_account):
    with nomove_account.mailbox() as mb:
        mb.ensure_folders([PROCESSED, HELD, HELD_RECEIVED])
        mb.append(HELD_RECEIVED, ascii_mail(1))
        assert len(mb.list_uids(HELD_RECEIVED)) == 1
        assert mb.uidvalidity(HELD_RECEIVED) > 0
    assert nomove_account.folders() == sorted(["INBOX", "INBOX.処理済", "INBOX.保留", "INBOX.保留.受付"])
    assert len(nomove_account.messages("INBOX.保留.受付")) == 1


# ------------------------------------------------------------------------------ moving


def _spy(mb: ImapMailbox, monkeypatch) -> list[str]:
    """Record which IMAP commands the mailbox's connection uses for moving."""
    client = mb._connect()
    calls: list[str] = []
    for name in ("move", "copy", "uid_expunge", "expunge"):
        real = getattr(client, name)

        def wrapper(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(client, name, wrapper)
    return calls


@pytest.mark.parametrize("use_move", [None, False], ids=["MOVE", "forced-COPY"])
def test_move_and_repeat(imap_account, monkeypatch, use_move):
    imap_account.append("INBOX", ascii_mail(1))
    imap_account.append("INBOX", jp_mail())
    with imap_account.mailbox(use_move=use_move) as mb:
        mb.ensure_folders([PROCESSED])
        calls = _spy(mb, monkeypatch)
        first, second = refs(mb, "INBOX")
        mb.move(second, PROCESSED)
        mb.move(second, PROCESSED)  # repeated: already done
        assert calls == (["move"] if use_move is None else ["copy", "uid_expunge"])
        assert mb.list_uids("INBOX") == [first.uid]
    assert list(imap_account.messages(PROCESSED).values()) == [jp_mail()]
    assert list(imap_account.messages("INBOX").values()) == [ascii_mail(1)]


def test_move_on_server_without_move_uses_copy_and_uid_expunge(nomove_account, monkeypatch):
    for n in range(3):
        nomove_account.append("INBOX", ascii_mail(n))
    with nomove_account.mailbox() as mb:
        mb.ensure_folders([HELD, HELD_RECEIVED])
        calls = _spy(mb, monkeypatch)
        a, b, c = refs(mb, "INBOX")
        mb.move(b, HELD_RECEIVED)
        mb.move(b, HELD_RECEIVED)
        assert calls == ["copy", "uid_expunge"]
        assert mb.list_uids("INBOX") == [a.uid, c.uid]  # nothing else expunged
    assert list(nomove_account.messages("INBOX.保留.受付").values()) == [ascii_mail(1)]


@pytest.mark.parametrize("message_id", [True, False], ids=["message-id", "no-message-id"])
@pytest.mark.parametrize("flagged", [False, True], ids=["copied", "copied-and-flagged"])
def test_copy_fallback_resumes_after_crash_without_second_copy(imap_account, message_id, flagged):
    imap_account.append("INBOX", ascii_mail(1, message_id=message_id))
    imap_account.append("INBOX", ascii_mail(2, message_id=message_id))
    with imap_account.mailbox(use_move=False) as mb:
        mb.ensure_folders([PROCESSED])
        ref = refs(mb, "INBOX")[0]
        # an earlier run crashed after COPY (and maybe after STORE \Deleted), before UID EXPUNGE
        c = imap_account.client()
        try:
            c.select_folder("INBOX")
            c.copy([ref.uid], PROCESSED)
            if flagged:
                c.add_flags([ref.uid], [b"\\Deleted"])
        finally:
            c.logout()
        mb.move(ref, PROCESSED)
        mb.move(ref, PROCESSED)
        assert len(mb.list_uids("INBOX")) == 1
    assert list(imap_account.messages(PROCESSED).values()) == [ascii_mail(1, message_id=message_id)]
    assert list(imap_account.messages("INBOX").values()) == [ascii_mail(2, message_id=message_id)]


def test_copy_fallback_still_copies_when_dest_has_another_mail_with_that_message_id(imap_account):
    imap_account.append("INBOX", ascii_mail(1))
    imap_account.create_folder(PROCESSED)
    other = ascii_mail(1, extra=" (an older, different mail that reused the Message-ID)")
    imap_account.append(PROCESSED, other)
    with imap_account.mailbox(use_move=False) as mb:
        mb.move(refs(mb, "INBOX")[0], PROCESSED)
        assert mb.list_uids("INBOX") == []
    assert sorted(imap_account.messages(PROCESSED).values()) == sorted([other, ascii_mail(1)])


def test_move_to_the_same_folder_does_nothing(imap_account):
    imap_account.append("INBOX", ascii_mail(1))
    with imap_account.mailbox(use_move=False) as mb:
        ref = refs(mb, "INBOX")[0]
        mb.move(ref, "INBOX")
        assert mb.list_uids("INBOX") == [ref.uid]


def test_move_with_stale_uidvalidity_raises_and_moves_nothing(imap_account):
    with imap_account.mailbox() as mb:
        mb.ensure_folders([HELD, PROCESSED])
        mb.append(HELD, ascii_mail(1))
        stale = refs(mb, HELD)[0]
        mb.close()  # (Dovecot trips over a mailbox deleted while another session has it selected)
        c = imap_account.client()
        try:
            c.delete_folder(HELD)
            c.create_folder(HELD)
        finally:
            c.logout()
        mb.append(HELD, ascii_mail(2))  # gets the same UID under the new UIDVALIDITY
        fresh = refs(mb, HELD)[0]
        assert fresh.uid == stale.uid and fresh.uidvalidity != stale.uidvalidity
        assert mb.uidvalidity(HELD) == fresh.uidvalidity
        for use_move in (None, False):
            mb.use_move = use_move
            with pytest.raises(MailboxError, match="UIDVALIDITY"):
                mb.move(stale, PROCESSED)
        assert mb.list_uids(HELD) == [fresh.uid]
    assert imap_account.messages(PROCESSED) == {}


def test_server_without_move_and_uidplus_refuses_to_move(dovecot_factory):
    server = dovecot_factory(without=("MOVE", "UIDPLUS"))
    acct = server.add_user()
    acct.append("INBOX", ascii_mail(1))
    with acct.mailbox() as mb:
        mb.ensure_folders([PROCESSED])
        with pytest.raises(MailboxError, match="UIDPLUS"):
            mb.move(refs(mb, "INBOX")[0], PROCESSED)
    assert len(acct.messages("INBOX")) == 1 and acct.messages(PROCESSED) == {}


# ------------------------------------------------------------------------------ failures


def test_errors_when_the_server_is_down_then_reconnects(dovecot_factory):
    server = dovecot_factory()
    acct = server.add_user(password="pw-Zx9-secret")
    acct.append("INBOX", ascii_mail(1))
    mb = acct.mailbox(timeout=5.0)
    ref = refs(mb, "INBOX")[0]
    server.stop()
    for call in (
        lambda: mb.list_uids("INBOX"),  # the open connection is gone
        lambda: mb.list_uids("INBOX"),  # a new one is refused
        lambda: list(mb.fetch("INBOX", [ref.uid])),
        lambda: mb.move(ref, PROCESSED),
        lambda: mb.ensure_folders([PROCESSED]),
        lambda: mb.append("INBOX", ascii_mail(2)),
        lambda: mb.uidvalidity("INBOX"),
    ):
        with pytest.raises(MailboxError) as info:
            call()
        assert "pw-Zx9-secret" not in str(info.value)
        assert f"{server.host}:{server.port}" in str(info.value)
    server.start()  # same port, same store
    assert mb.list_uids("INBOX") == [ref.uid]
    mb.close()
    mb.close()


def test_wrong_password_is_a_mailbox_error_without_the_password(imap_account):
    mb = ImapMailbox(imap_account.host, imap_account.port, False, imap_account.username, "wrong-Pw-77", timeout=5)
    with pytest.raises(MailboxError, match="(?i)authentication") as info:
        mb.list_uids("INBOX")
    assert "wrong-Pw-77" not in str(info.value)
    # What the operator can act on, not what the bot was doing (issue 20)
    assert "refused the login of" in str(info.value) and "check [imap] username and the password" in str(info.value)
    assert "UID SEARCH" not in str(info.value)
    mb.close()


def test_unreachable_port_is_a_mailbox_error():
    from servers import free_port

    with ImapMailbox("127.0.0.1", free_port(), False, "u", "p", timeout=2) as mb:
        with pytest.raises(MailboxError, match="refused") as info:
            mb.ensure_folders([PROCESSED])
    assert str(info.value).startswith("cannot connect to the IMAP server 127.0.0.1:")
    assert "(check [imap] host and port, and that the server is running" in str(info.value)
    assert "ensure_folders" not in str(info.value) and "folders" not in str(info.value)


def test_silent_server_times_out_as_mailbox_error():
    import socket

    with socket.socket() as listener:  # accepts (backlog) but never greets
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with ImapMailbox("127.0.0.1", port, False, "u", "p", timeout=0.3) as mb:
            with pytest.raises(MailboxError, match="timed out"):
                mb.list_uids("INBOX")


# ------------------------------------------------------------------------------ SMTP sink


def _mail(to: str = "branch@example.jp") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "office@example.jp"
    msg["To"] = to
    msg["Subject"] = "【受付】機器発注 ABC-1234"
    msg.set_content("受け付けました。\n")
    return msg


def _send(sink, msg=None, **kwargs):
    kwargs.setdefault("timeout", 5)
    return asyncio.run(
        aiosmtplib.send(msg or _mail(), hostname=sink.host, port=sink.port, start_tls=False, **kwargs)
    )


def test_sink_stores_message_and_envelope(smtp_sink):
    _send(smtp_sink, sender="bounce@example.jp", recipients=["branch@example.jp", "cc@example.jp"])
    (got,) = smtp_sink.wait_for(1)
    assert got.mail_from == "bounce@example.jp"
    assert got.rcpt_tos == ["branch@example.jp", "cc@example.jp"]
    assert got.message["Subject"] == "【受付】機器発注 ABC-1234"
    assert got.message.get_content().strip() == "受け付けました。"
    assert got.auth_user is None


@pytest.mark.parametrize(("mode", "code"), [("tempfail", 451), ("permfail", 554)])
def test_sink_fault_modes_answer_data(smtp_sink, mode, code):
    smtp_sink.set_mode(mode)
    with pytest.raises(aiosmtplib.SMTPDataError) as info:
        _send(smtp_sink)
    assert info.value.code == code
    smtp_sink.set_mode("accept")
    _send(smtp_sink)
    assert len(smtp_sink.messages()) == 1


def test_sink_hang_mode_times_out(smtp_sink):
    smtp_sink.set_mode("hang")
    with pytest.raises(aiosmtplib.SMTPTimeoutError):
        _send(smtp_sink, timeout=0.3)
    assert smtp_sink.messages() == []


def test_sink_rejects_chosen_recipients(smtp_sink):
    smtp_sink.reject_rcpt("nobody@example.jp")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        _send(smtp_sink, _mail("nobody@example.jp"))
    _send(smtp_sink, sender="office@example.jp", recipients=["nobody@example.jp", "branch@example.jp"])
    assert smtp_sink.wait_for(1)[0].rcpt_tos == ["branch@example.jp"]


def test_sink_auth_and_restart(smtp_sink_factory):
    sink = smtp_sink_factory(auth=("bot", "smtp-pw"), auth_required=True)
    with pytest.raises(aiosmtplib.SMTPAuthenticationError):
        _send(sink, username="bot", password="wrong")
    with pytest.raises(aiosmtplib.SMTPResponseException):
        _send(sink)  # auth required
    _send(sink, username="bot", password="smtp-pw")
    port = sink.port
    sink.restart()
    assert sink.port == port
    _send(sink, username="bot", password="smtp-pw")
    got = sink.messages()
    assert [m.auth_user for m in got] == ["bot", "bot"]
    sink.stop()
    with pytest.raises(aiosmtplib.SMTPConnectError):
        _send(sink, username="bot", password="smtp-pw", timeout=2)

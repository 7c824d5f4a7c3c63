"""Server faults on the real servers (Dovecot, the SMTP sink), injected by tests/faults.py's proxy
or by stopping the servers: after the fault clears and the bot polls again, every sample mail is
filed exactly once byte for byte and answered exactly once (nothing lost, nothing doubled)."""

from __future__ import annotations

import email
import email.utils
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from faults import FaultProxy
from helpers import ROOT
from test_loop import (
    EXPECTED,
    HELD,
    IGNORED,
    NOW,
    ORIGINALS,
    PROCESSED,
    _reset_uidvalidity,
    bot_session,
    crlf,
    write_config,
)

from demo.samples import sample_mails
from mailbot.classify import bot_reply_id as reply_message_id
from mailbot.mailbox import MailboxError, MailboxUnreachable
from mailbot.model import Action
from mailbot.record.store import Store
from mailbot.reply.note import note_message_id, original_of

SENDER = "usen_spot@usen.co.jp"
SENT = "送信済"
FETCH_BODY = r"^UID FETCH .*BODY\.PEEK\[\]"
ALL = list(EXPECTED)


# ------------------------------------------------------------------------------ helpers


def load(account, names=ALL) -> dict[str, bytes]:
    """The sample mails appended to the INBOX; name → raw bytes."""
    mails = dict(sample_mails(NOW))
    loaded = {}
    for name in names:
        loaded[name] = crlf(mails[name])
        account.append("INBOX", loaded[name])
    return loaded


def config(tmp_path: Path, account, sink, *, imap=None, smtp=None, imap_timeout: float = 5.0,
           smtp_timeout: float = 5.0, poll_interval: int | None = None, copy_wait: float | None = None) -> Path:
    """test_loop's configuration, through the proxies when given, with short timeouts; with
    `copy_wait`, each reply's copy to the shared mailbox ([smtp] copy_to_mailbox)."""
    via_imap = SimpleNamespace(host=account.host, port=imap.port if imap else account.port,
                               username=account.username, password=account.password)
    via_smtp = SimpleNamespace(host=sink.host, port=smtp.port if smtp else sink.port)
    path = write_config(tmp_path, via_imap, via_smtp)
    text = path.read_text("utf-8")
    text = text.replace("ssl = false\n", f"ssl = false\ntimeout = {imap_timeout}\n", 1)
    text = text.replace("starttls = false\n", f"starttls = false\ntimeout = {smtp_timeout}\n", 1)
    if copy_wait is not None:
        text = text.replace(f'from = "{SENDER}"\n', f'from = "{SENDER}"\ncopy_to_mailbox = true\n'
                                                     f"copy_wait = {copy_wait}\n", 1)
    if poll_interval:
        text += f"\n[scheduler]\npoll_interval = {poll_interval}\n"
    path.write_text(text, "utf-8")
    return path


def reply_id(data: bytes, name: str) -> str:
    action = Action(EXPECTED[name][0])
    return reply_message_id(hashlib.sha256(data).hexdigest(), action, SENDER)


def check_once(account, sink, loaded: dict[str, bytes], *, server_name=lambda f: f,
               expected: dict | None = None, resent: set[str] = frozenset(),
               refused: set[str] = frozenset(), copy_to: str | None = None) -> None:
    """Every mail filed exactly once, byte for byte, in its folder and nowhere else; one held note
    per held mail; one reply per mail due one (matched by In-Reply-To, with the reply's derived
    Message-ID), to every address in its To and Cc (but the `refused` ones), and none for the
    others.  `resent`: mails whose reply the sink may have accepted twice, the same message under
    the same Message-ID (an SMTP answer lost after the server took it).  `copy_to`: the shared
    mailbox each reply also went to (Bcc), its copy filed to the sent folder once."""
    expected = expected or EXPECTED
    assert account.messages(server_name("INBOX")) == {}, "the inbox is empty"
    folders = {f: list(account.messages(server_name(f)).values()) for f in (PROCESSED, ORIGINALS, IGNORED)}
    for name, data in loaded.items():
        for folder, contents in folders.items():
            want = 1 if folder == expected[name][1] else 0
            assert contents.count(data) == want, f"{name}: {contents.count(data)} copies in {folder}"
    assert sum(map(len, folders.values())) == len(loaded), "nothing else was filed"
    notes = list(account.messages(server_name(HELD)).values())
    held = sorted(data for name, data in loaded.items() if expected[name][1] == ORIGINALS)
    assert sorted(original_of(n) for n in notes) == held, "one note per held mail"
    for data in held:
        note_id = note_message_id(hashlib.sha256(data).hexdigest(), SENDER)
        assert sum(note_id.encode() in n for n in notes) == 1

    by_source: dict[str, list] = {}
    for m in sink.messages():
        by_source.setdefault(m.message["In-Reply-To"], []).append(m)
    for name, data in loaded.items():
        source_id = str(email.message_from_bytes(data)["Message-ID"])
        got = by_source.pop(source_id, [])
        if expected[name][2] is None:
            assert got == [], f"{name}: no reply expected, {len(got)} sent"
            continue
        assert got, f"{name}: reply lost"
        assert {m.message["Message-ID"] for m in got} == {reply_id(data, name)}, name
        assert str(got[0].message["Subject"]).startswith(expected[name][2])
        headers = [str(v) for v in got[0].message.get_all("To", []) + got[0].message.get_all("Cc", [])]
        addressed = {a.lower() for _, a in email.utils.getaddresses(headers)}
        for m in got:
            assert {a.lower() for a in m.rcpt_tos} == (addressed - refused) | ({copy_to} if copy_to else set()), \
                f"{name}: {m.rcpt_tos}"
        if name in resent:
            assert len(got) <= 2 and len({m.raw for m in got}) == 1, f"{name}: {len(got)} different replies"
        else:
            assert len(got) == 1, f"{name}: {len(got)} replies"
    assert by_source == {}, "no reply to anything else"
    copies = sorted(str(email.message_from_bytes(d)["Message-ID"]) for d in account.messages(server_name(SENT)).values())
    assert copies == (sorted({str(m.message["Message-ID"]) for m in sink.messages()}) if copy_to else []), \
        "each reply's copy once in the sent folder"


def check_store(database: Path, *, replies: str = "sent") -> None:
    store = Store(database)
    try:
        states = {r[0] for r in store.db.execute("SELECT state FROM mails")}
        assert states == {"filed"}, states
        reply_states = {r[0] for r in store.db.execute("SELECT state FROM replies")}
        assert reply_states <= {replies}, reply_states
    finally:
        store.close()


def events(database: Path, event: str) -> list[tuple[int | None, str]]:
    """(mail_id, detail) of the audit trail's events of that name (read-only: a bot may be running)."""
    if not database.exists():
        return []
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        return [tuple(r) for r in db.execute("SELECT mail_id, detail FROM events WHERE event=?", (event,))]
    finally:
        db.close()


def poll_until_quiet(bot, limit: int = 4) -> None:
    """Poll until a cycle has nothing left to do (the fault has cleared)."""
    for _ in range(limit):
        report = bot.poll()
        if not (report.handled or report.sent or report.filed or report.errors or report.send_failures):
            return
    raise AssertionError(f"still busy after {limit} polls: {report}")


@pytest.fixture
def imap_proxy(imap_account):
    with FaultProxy(imap_account.port, "imap") as proxy:
        yield proxy


@pytest.fixture
def smtp_proxy(smtp_sink):
    with FaultProxy(smtp_sink.port, "smtp") as proxy:
        yield proxy


# ------------------------------------------------------------------------------ IMAP


@pytest.mark.parametrize(("skip", "when"), [(0, "before"), (1, "after")], ids=["first-batch-before", "second-batch-after"])
def test_connection_dropped_during_fetch(imap_account, imap_proxy, smtp_sink, tmp_path, skip, when):
    loaded = load(imap_account)
    imap_proxy.fail_on(FETCH_BODY, when=when, skip=skip)
    cfg = config(tmp_path, imap_account, smtp_sink, imap=imap_proxy)
    with bot_session(cfg, batch_size=6, timeout=5) as (bot, _store):
        with pytest.raises(MailboxError, match="connection lost"):
            bot.poll()
        assert len(imap_proxy.hits) == 1
        poll_until_quiet(bot)
    check_once(imap_account, smtp_sink, loaded)
    check_store(tmp_path / "state.sqlite3")


# The bot files a chunk's mails with one UID MOVE per destination (ignored, processed, held
# originals, in order of arrival); when one fails, each of its mails is moved alone.  What is
# left is tried again at the end of the cycle (`failed`: mails whose own move failed once).
@pytest.mark.parametrize(("command", "when", "action", "skips", "failed"), [
    ("UID MOVE", "before", "drop", (0,), 0),      # a batch not moved: each mail alone, all filed
    ("UID MOVE", "after", "drop", (0,), 0),       # moved by the server, unheard: each alone finds it gone
    ("UID MOVE", "before", "drop", (1, 2), 1),    # the second batch, then its first mail alone too
    ("UID MOVE", "after", "stall", (1,), 0),      # ... and the client waits until its timeout
    ("APPEND", "after", "drop", (0,), 1),         # a held mail's note appended, unheard
])
def test_connection_dropped_during_filing(imap_account, imap_proxy, smtp_sink, tmp_path, command, when, action,
                                          skips, failed):
    loaded = load(imap_account)
    for skip in skips:
        imap_proxy.fail_on(f"^{command} ", when=when, action=action, skip=skip)
    cfg = config(tmp_path, imap_account, smtp_sink, imap=imap_proxy)
    with bot_session(cfg, timeout=1.0 if action == "stall" else 5.0) as (bot, _store):
        report = bot.poll()
        assert len(imap_proxy.hits) == len(skips)
        assert len(report.errors) == len(skips) and report.sent == 15
        assert report.filed == len(loaded), report.errors
        poll_until_quiet(bot)
    check_once(imap_account, smtp_sink, loaded)
    db = tmp_path / "state.sqlite3"
    check_store(db)
    assert len(events(db, "move failed")) == failed


def _nomove(folder: str) -> str:
    return "INBOX" if folder == "INBOX" else "INBOX." + folder.replace("/", ".")


def test_connection_dropped_during_copy_store_and_expunge(nomove_account, smtp_sink, tmp_path):
    """A server without MOVE: COPY, STORE \\Deleted and UID EXPUNGE, broken before the server did
    them and after it did them, each on another mail in the same cycle."""
    loaded = load(nomove_account)
    with FaultProxy(nomove_account.port, "imap") as proxy:
        proxy.fail_on("^UID COPY ", when="before", skip=1)    # nothing done
        proxy.fail_on("^UID COPY ", when="after", skip=3)     # copied, unheard
        proxy.fail_on("^UID STORE ", when="after", skip=5)    # copied, flagged \Deleted, unheard
        proxy.fail_on("^UID EXPUNGE ", when="before", skip=7)  # copied and flagged
        proxy.fail_on("^UID EXPUNGE ", when="after", skip=9)  # moved, unheard
        cfg = config(tmp_path, nomove_account, smtp_sink, imap=proxy)
        with bot_session(cfg, timeout=5) as (bot, _store):
            report = bot.poll()
            assert [h.split()[1] for h in proxy.hits] == ["COPY", "COPY", "STORE", "EXPUNGE", "EXPUNGE"]
            # each failure is met again at once (the mail alone) or at the end of the cycle
            assert len(report.errors) == 5 and report.filed == len(loaded), report.errors
            assert not any(c.startswith("UID MOVE") for c in proxy.commands)
            poll_until_quiet(bot)
    check_once(nomove_account, smtp_sink, loaded, server_name=_nomove)
    check_store(tmp_path / "state.sqlite3")


def test_imap_server_restarted_in_the_middle_of_a_run(dovecot_factory, smtp_sink, tmp_path):
    """Dovecot stops and starts again (same port, same Maildir) while the bot fetches, and again
    while it files: the command in flight meets the dead connection, the bot reconnects later."""
    server = dovecot_factory()
    account = server.add_user()
    loaded = load(account)
    validity = account.uidvalidity("INBOX")
    restarts = []

    def restart(command: str) -> None:
        server.restart()
        restarts.append(command.split()[1])

    with FaultProxy(server.port, "imap") as proxy:
        proxy.on(FETCH_BODY, restart, skip=1)  # the second batch
        proxy.on(r"^UID MOVE ", restart, skip=4)  # the fifth UID MOVE (batches, then mails alone)
        cfg = config(tmp_path, account, smtp_sink, imap=proxy)
        with bot_session(cfg, batch_size=5, timeout=5) as (bot, _store):
            with pytest.raises(MailboxError):
                bot.poll()
            assert restarts == ["FETCH"]
            report = bot.poll()
            assert restarts == ["FETCH", "MOVE"]
            # the MOVE met the dead connection; its mail was moved again at once or at the cycle's end
            assert report.sent == 15 and report.filed == len(loaded) and len(report.errors) == 1, report.errors
            poll_until_quiet(bot)
    assert account.uidvalidity("INBOX") == validity, "the Maildir survived the restarts"
    check_once(account, smtp_sink, loaded)
    check_store(tmp_path / "state.sqlite3")


def test_uidvalidity_reset_between_decision_and_move_of_a_held_mail(imap_account, smtp_sink, tmp_path):
    """The held mail's note is in the held folder, the decision recorded; then the inbox is rebuilt
    (new UIDVALIDITY, new UIDs) before its original is moved: no second note, no mail moved by a
    stale UID, everything filed once after the next poll."""
    loaded = load(imap_account)
    cfg = config(tmp_path, imap_account, smtp_sink)
    before = imap_account.uidvalidity("INBOX")
    with bot_session(cfg, timeout=5) as (bot, store):
        move_many = bot.mailbox.move_many
        rebuilt = []

        def rebuild_then_move(refs, dest):
            if dest == ORIGINALS and not rebuilt:
                bot.mailbox.close()
                left = list(imap_account.messages("INBOX").values())
                c = imap_account.client()
                c.select_folder("INBOX")
                c.delete_messages(c.search("ALL"))
                c.expunge()
                c.logout()
                _reset_uidvalidity(imap_account)
                for data in left:
                    imap_account.append("INBOX", data)
                rebuilt.append(len(left))
            return move_many(refs, dest)

        bot.mailbox.move_many = rebuild_then_move
        report = bot.poll()
        assert rebuilt and rebuilt[0] > 1
        assert imap_account.uidvalidity("INBOX") != before
        assert any("UIDVALIDITY" in e for e in report.errors)
        held = sum(1 for e in EXPECTED.values() if e[1] == ORIGINALS)
        assert 1 <= len(imap_account.messages(HELD)) <= held, "no held mail's note twice"
        poll_until_quiet(bot)
        relocated = store.db.execute("SELECT COUNT(*) FROM events WHERE event='relocated'").fetchone()[0]
        assert relocated == rebuilt[0]
    check_once(imap_account, smtp_sink, loaded)
    check_store(tmp_path / "state.sqlite3")


def test_imap_server_down_or_silent(imap_account, imap_proxy, smtp_sink, tmp_path):
    """Connection refused, a server that hangs up at once, one that accepts and never answers:
    each poll fails within the timeout, and the first poll after recovery does everything."""
    loaded = load(imap_account)
    cfg = config(tmp_path, imap_account, smtp_sink, imap=imap_proxy)
    with bot_session(cfg, timeout=1.0) as (bot, _store):
        imap_proxy.refuse()
        with pytest.raises(MailboxUnreachable, match="refused"):
            bot.poll()
        imap_proxy.hangup()
        with pytest.raises(MailboxUnreachable):
            bot.poll()
        imap_proxy.stall()
        started = time.monotonic()
        with pytest.raises(MailboxUnreachable, match="timed out"):
            bot.poll()
        assert time.monotonic() - started < 2.5
        imap_proxy.resume()
        report = bot.poll()
        assert len(report.handled) == len(loaded) and report.filed == len(loaded)
        poll_until_quiet(bot)
    check_once(imap_account, smtp_sink, loaded)


def test_imap_server_falls_silent_in_the_middle_of_filing(imap_account, imap_proxy, smtp_sink, tmp_path):
    """The server becomes a black hole while the bot files (the connection and every new one hang):
    the cycle gives up after a timeout or two, not one timeout per mail left to file."""
    loaded = load(imap_account)
    imap_proxy.on(r"^UID MOVE ", lambda _: imap_proxy.freeze(), skip=2)
    cfg = config(tmp_path, imap_account, smtp_sink, imap=imap_proxy)
    with bot_session(cfg, timeout=1.0) as (bot, _store):
        started = time.monotonic()
        with pytest.raises(MailboxUnreachable, match="timed out"):
            bot.poll()  # the stalled MOVE times out; so does the next connection: the cycle ends
        took = time.monotonic() - started
        assert took < 6, f"the cycle took {took:.1f}s"
        # the batch's MOVE timed out; the first of its mails alone met the silent server too
        assert len(events(tmp_path / "state.sqlite3", "move failed")) == 1
        assert len(events(tmp_path / "state.sqlite3", "filed")) >= 2, "the batches before it"
        imap_proxy.resume()
        poll_until_quiet(bot)
    check_once(imap_account, smtp_sink, loaded)
    check_store(tmp_path / "state.sqlite3")


# ------------------------------------------------------------------------------ SMTP


def test_smtp_4xx_is_retried_with_backoff_then_sent_once(imap_account, smtp_sink, tmp_path):
    loaded = load(imap_account)
    cfg = config(tmp_path, imap_account, smtp_sink)
    smtp_sink.set_mode("tempfail")
    with bot_session(cfg) as (bot, store):
        bot.retry_base = timedelta(minutes=2)
        waits = []
        for attempt in (1, 2, 3):
            t = datetime.now(timezone.utc)
            report = bot.poll()
            assert report.sent == 0 and report.send_failures == 15
            assert bot.poll().send_failures == 0, "not due yet: nothing tried"
            nexts = {datetime.fromisoformat(r[0]) - t for r in store.db.execute("SELECT next_attempt FROM replies")}
            waits.append(min(nexts))
            assert max(nexts) - min(nexts) < timedelta(seconds=5)
            store.db.execute("UPDATE replies SET next_attempt=?", (datetime.now(timezone.utc).isoformat(),))
        assert [round(w / timedelta(minutes=1)) for w in waits] == [2, 4, 8], "doubling backoff"
        assert len(imap_account.messages("INBOX")) == 15, "the unanswered mails wait in the inbox"
        smtp_sink.set_mode("accept")
        assert bot.poll().sent == 15
        poll_until_quiet(bot)
        attempts = {r[0] for r in store.db.execute("SELECT attempts FROM replies")}
        assert attempts == {4}
    check_once(imap_account, smtp_sink, loaded)
    check_store(tmp_path / "state.sqlite3")


def test_smtp_recipient_refused_now_or_for_good(imap_account, smtp_sink, tmp_path):
    """At RCPT TO, 450 for one manager in CC (mailbox busy, greylisted) and 550 for another (who
    left): the first one's replies wait and go later to everyone, once, not to the branch now and
    to the manager never; the second one's go to the others at once, the refusal in the audit trail."""
    loaded = load(imap_account)
    cfg = config(tmp_path, imap_account, smtp_sink)
    smtp_sink.tempfail_rcpt("s-nakamura@usen.co.jp")  # CC of order_multi_units and relocation
    smtp_sink.reject_rcpt("t-kato@usen.co.jp")  # CC of order_no_code and termination_withdrawal
    with bot_session(cfg) as (bot, _store):
        report = bot.poll()
        assert report.sent == 13 and report.send_failures == 2
        assert len(imap_account.messages("INBOX")) == 2
        smtp_sink.tempfail_rcpt()
        assert bot.poll().sent == 2
        poll_until_quiet(bot)
    check_once(imap_account, smtp_sink, loaded, refused={"t-kato@usen.co.jp"})
    check_store(tmp_path / "state.sqlite3")
    noted = events(tmp_path / "state.sqlite3", "reply recipient refused")
    assert len(noted) == 2 and all("t-kato@usen.co.jp" in d and "550" in d for _, d in noted)


def test_smtp_5xx_holds_the_mail_and_never_retries(imap_account, smtp_sink, tmp_path):
    loaded = load(imap_account)
    cfg = config(tmp_path, imap_account, smtp_sink)
    smtp_sink.set_mode("permfail")
    with bot_session(cfg) as (bot, store):
        report = bot.poll()
        assert report.send_failures == 15 and report.sent == 0
        smtp_sink.set_mode("accept")
        poll_until_quiet(bot)
        assert bot.poll().sent == 0
        assert {r[0] for r in store.db.execute("SELECT attempts FROM replies")} == {1}
    # every mail due a reply is held instead (its note says REPLY_FAILED); nothing reached the sink
    held = {name: (e[0], ORIGINALS, None) if e[2] else e for name, e in EXPECTED.items()}
    check_once(imap_account, smtp_sink, loaded, expected=held)
    for note in imap_account.messages(HELD).values():
        name = next(n for n, d in loaded.items() if d == original_of(note))
        assert (b"REPLY_FAILED" in note) == bool(EXPECTED[name][2]), name
    check_store(tmp_path / "state.sqlite3", replies="failed")


@pytest.mark.parametrize("fault", ["stall-greeting", "stall-end-of-data", "drop-end-of-data", "drop-before-end"])
def test_smtp_timeout_is_bounded_and_retried(imap_account, smtp_sink, smtp_proxy, tmp_path, fault):
    """A stalled SMTP server: the send gives up after [smtp] timeout and is retried at the next poll.
    At the end of DATA the server may already have taken the message when the client gave up (or
    lost the connection): the retry is the same message with the same derived Message-ID, and the
    sink shows both copies."""
    names = ["order_shibuya", "cancellation", "auto_reply", "order_no_code", "outside_gmail"]
    loaded = load(imap_account, names)
    cfg = config(tmp_path, imap_account, smtp_sink, smtp=smtp_proxy, smtp_timeout=1.0)
    if fault == "stall-greeting":
        smtp_proxy.stall()
    elif fault == "drop-before-end":  # the message is cut short: the server drops it
        smtp_proxy.fail_on(r"^\.$", when="before")
    else:  # the 250 to the first message never reaches the bot
        smtp_proxy.fail_on(r"^\.$", when="after", action=fault.split("-")[0])
    with bot_session(cfg, timeout=5) as (bot, _store):
        send, spent = bot.transport.send, []

        def timed(messages, **kw):
            t = time.monotonic()
            try:
                return send(messages, **kw)
            finally:
                spent.append(time.monotonic() - t)

        bot.transport.send = timed
        report = bot.poll()
        assert report.sent == 0 and report.send_failures == 3
        if fault.startswith("stall"):
            assert 0.9 < spent[0] < 2.0, f"a stalled server costs one timeout, not {spent[0]:.1f}s"
        assert len(imap_account.messages("INBOX")) == 3
        accepted = smtp_sink.messages()
        assert len(accepted) == (1 if fault.endswith("end-of-data") else 0)
        smtp_proxy.resume()
        assert bot.poll().sent == 3
        poll_until_quiet(bot)
    resent = set()
    if accepted:
        # The sink took the first reply twice: byte-identical, the same derived Message-ID.
        first = accepted[0]
        copies = [m for m in smtp_sink.messages() if m.message["Message-ID"] == first.message["Message-ID"]]
        assert len(copies) == 2 and copies[0].raw == copies[1].raw
        resent = {next(n for n, d in loaded.items() if reply_id(d, n) == first.message["Message-ID"])}
    check_once(imap_account, smtp_sink, loaded, resent=resent)
    assert len(smtp_sink.messages()) == 3 + len(resent)
    check_store(tmp_path / "state.sqlite3")


@pytest.mark.parametrize("fault", ["stall-end-of-data", "drop-end-of-data", "drop-before-end"])
def test_a_reply_in_doubt_goes_out_once_with_copies(imap_account, smtp_sink, smtp_proxy, tmp_path, fault):
    """With [smtp] copy_to_mailbox the shared mailbox gets each reply's copy from the relay.  When
    the answer to the end of DATA is lost (the server took the message, or not: "drop-before-end"),
    the reply stays in doubt: its copy found in the mailbox marks it sent; no copy after copy_wait
    and it goes again.  Either way every mail has its one reply."""
    names = ["order_shibuya", "cancellation", "auto_reply", "order_no_code", "outside_gmail"]
    loaded = load(imap_account, names)
    smtp_sink.deliver_to(SENDER, imap_account)
    cfg = config(tmp_path, imap_account, smtp_sink, smtp=smtp_proxy, smtp_timeout=1.0, copy_wait=1.5)
    if fault == "drop-before-end":
        smtp_proxy.fail_on(r"^\.$", when="before")
    else:
        smtp_proxy.fail_on(r"^\.$", when="after", action=fault.split("-")[0])
    with bot_session(cfg, timeout=5) as (bot, store):
        report = bot.poll()
        assert report.sent == 0 and report.send_failures == 3
        taken = len(smtp_sink.messages())
        assert taken == (0 if fault == "drop-before-end" else 1)
        smtp_proxy.resume()
        assert bot.poll().sent == 2, "the two never tried go out; the one in doubt waits for its copy"
        states = [r[0] for r in store.db.execute("SELECT state FROM replies ORDER BY id")]
        assert states.count("sending") == 1 - taken
        time.sleep(1.6)  # copy_wait is over: a reply in doubt without a copy goes again
        assert bot.poll().sent == 1 - taken
        poll_until_quiet(bot)
        found = [d for _, d in events(tmp_path / "state.sqlite3", "reply sent") if "its copy is in" in d]
        assert len(found) == taken
    check_once(imap_account, smtp_sink, loaded, copy_to=SENDER)
    assert len(smtp_sink.messages()) == 3
    check_store(tmp_path / "state.sqlite3")


def test_smtp_down_is_retried_nothing_lost(imap_account, smtp_sink, smtp_proxy, tmp_path):
    loaded = load(imap_account)
    cfg = config(tmp_path, imap_account, smtp_sink, smtp=smtp_proxy)
    smtp_proxy.refuse()
    with bot_session(cfg) as (bot, store):
        for _ in range(2):
            report = bot.poll()
            # one refused connection a cycle, not one per chunk: the rest wait for the next cycle
            assert report.sent == 0 and 0 < report.send_failures <= 15 and report.relay_down
        assert "SMTPConnectError" in store.db.execute("SELECT last_error FROM replies").fetchone()[0]
        assert len(imap_account.messages("INBOX")) == 15
        smtp_proxy.resume()
        assert bot.poll().sent == 15
        poll_until_quiet(bot)
    check_once(imap_account, smtp_sink, loaded)
    check_store(tmp_path / "state.sqlite3")


# ------------------------------------------------------------------------------ mailbot run


def _wait(condition, timeout: float, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"mailbot run exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_mailbot_run_survives_an_imap_outage(dovecot_factory, smtp_sink, tmp_path):
    """`mailbot run` as a process: Dovecot is stopped for a few seconds just as new mail came in
    (wherever the cycle was), and started again; the loop carries on by itself, the outage is in
    the audit trail, and everything is done exactly once."""
    server = dovecot_factory()
    account = server.add_user()
    first = load(account, ALL[:9])
    cfg = config(tmp_path, account, smtp_sink, imap_timeout=2.0, poll_interval=1)
    db = tmp_path / "state.sqlite3"
    with open(tmp_path / "run.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mailbot", "run", "--config", str(cfg)], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        replies = sum(1 for n in first if EXPECTED[n][2])
        _wait(lambda: len(smtp_sink.messages()) >= replies and not account.messages("INBOX"), 40,
              "the first mails", proc)
        second = load(account, ALL[9:])
        time.sleep(0.5)
        server.stop()
        _wait(lambda: len(events(db, "mailbox unreachable")) >= 2, 15, "failed cycles", proc)
        server.start()
        _wait(lambda: len(smtp_sink.messages()) >= 15 and not account.messages("INBOX"), 40,
              "the mails after the outage", proc)
        time.sleep(1.5)  # another cycle or two: nothing more may happen
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    output = (tmp_path / "run.log").read_text("utf-8", "replace")
    assert proc.returncode == 0, output
    assert "Traceback" not in output and "raised an exception" not in output, output
    unreachable = events(db, "mailbox unreachable")
    assert unreachable and all(mail_id is None for mail_id, _ in unreachable)
    check_once(account, smtp_sink, {**first, **second})
    check_store(db)


def test_a_refused_smtp_login_keeps_replies_queued_not_held(imap_account, smtp_sink_factory, tmp_path):
    """A wrong relay password is the setup's fault: the replies wait and go out once it is fixed;
    no mail is held for it."""
    from test_loop import appended, bot_session, write_config

    sink = smtp_sink_factory(auth=("bot", "right-pw"), auth_required=True)
    data = appended(imap_account, "order_shibuya")
    cfg = write_config(tmp_path, imap_account, sink)
    text = cfg.read_text(encoding="utf-8").replace('from = "usen_spot@usen.co.jp"',
                                                   'from = "usen_spot@usen.co.jp"\nusername = "bot"\n'
                                                   'password = "wrong-pw"')
    cfg.write_text(text, encoding="utf-8")
    with bot_session(cfg) as (bot, store):
        for _ in range(3):
            report = bot.poll()
            assert report.sent == 0 and report.send_failures == 1
        assert store.db.execute("SELECT state FROM replies").fetchone()[0] == "queued"
        assert list(imap_account.messages("INBOX").values()) == [data]  # waits for its reply, not held
    cfg.write_text(text.replace("wrong-pw", "right-pw"), encoding="utf-8")
    with bot_session(cfg) as (bot, _store):
        assert bot.poll().sent == 1
    assert len(sink.messages()) == 1 and imap_account.messages("INBOX") == {}

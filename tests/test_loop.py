"""The whole loop on real servers: mails appended to Dovecot → `mailbot poll` → replies received by
the SMTP server → originals in the right folders → a second poll sends nothing."""

from __future__ import annotations

import email
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from helpers import ROOT, TOKYO

from demo.samples import SAMPLES, sample_mails
from mailbot.classify import classify
from mailbot.config import load
from mailbot.mailbox.imap import ImapMailbox
from mailbot.pipeline import Bot
from mailbot.record.store import Store
from mailbot.reply.note import original_of
from mailbot.reply.send import SmtpTransport

NOW = datetime(2026, 11, 20, 10, 30, tzinfo=TOKYO)
PROCESSED, HELD, IGNORED = "処理済", "保留/要確認", "対象外"
ORIGINALS = HELD + "/原本"  # held originals, untouched; the held folder has a note carrying each

# What each sample mail must come to: (decision, folder, reply subject prefix or None).
EXPECTED = {
    "auto_reply": ("ignore", IGNORED, None),
    "bounce": ("ignore", IGNORED, None),
    "order_shibuya": ("accept", PROCESSED, "【受付】"),
    "cancellation": ("accept", PROCESSED, "【受付】"),
    "order_fullwidth": ("accept", PROCESSED, "【受付】"),
    "contract_change": ("accept", PROCESSED, "【受付】"),
    "order_forwarded": ("accept", PROCESSED, "【受付】"),
    "outside_gmail": ("hold", ORIGINALS, None),
    "order_multi_units": ("accept", PROCESSED, "【受付】"),
    "termination": ("accept", PROCESSED, "【受付】"),
    "order_no_code": ("remand", PROCESSED, "【差戻】"),
    "router_not_removed": ("accept", PROCESSED, "【受付】"),
    "order_resubmission": ("accept", PROCESSED, "【受付】"),
    "relocation": ("accept", PROCESSED, "【受付】"),
    "order_8digit": ("remand", PROCESSED, "【差戻】"),
    "registration_notice": ("remand", PROCESSED, "【差戻】"),
    "termination_withdrawal": ("accept", PROCESSED, "【受付】"),
    "order_no_pdf": ("remand", PROCESSED, "【差戻】"),
    "unknown_subject": ("hold", ORIGINALS, None),
}


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def write_config(tmp_path: Path, account, sink, **policy: object) -> Path:
    policy_lines = "\n".join(f"{k} = {str(v).lower() if isinstance(v, bool) else v}" for k, v in policy.items())
    path = tmp_path / "mailbot.toml"
    path.write_text(textwrap.dedent(f"""
        [imap]
        host = "{account.host}"
        port = {account.port}
        ssl = false
        username = "{account.username}"
        password = "{account.password}"

        [folders]
        processed = "{PROCESSED}"
        held = "{HELD}"
        ignored = "{IGNORED}"

        [smtp]
        host = "{sink.host}"
        port = {sink.port}
        starttls = false
        from = "usen_spot@usen.co.jp"

        [state]
        database = "state.sqlite3"

        [policy]
        """) + policy_lines + "\n", encoding="utf-8")
    return path


def poll_cli(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailbot", "poll", "--config", str(config)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.fixture
def loaded(imap_account):
    """The sample morning appended to the INBOX; name → raw bytes."""
    mails = dict(sample_mails(NOW))
    assert set(mails) == set(EXPECTED), "every sample has an expectation"
    for name, data in mails.items():
        imap_account.append("INBOX", crlf(data))
    return {name: crlf(data) for name, data in mails.items()}


def test_whole_loop_on_real_servers(imap_account, smtp_sink, loaded, tmp_path):
    config = write_config(tmp_path, imap_account, smtp_sink)
    result = poll_cli(config)
    assert result.returncode == 0, result.stderr
    assert f"{len(loaded)} mails decided" in result.stdout

    # Every original is in exactly one folder, byte for byte, and the inbox is empty.
    assert imap_account.messages("INBOX") == {}
    by_folder = {folder: sorted(imap_account.messages(folder).values())
                 for folder in (PROCESSED, ORIGINALS, IGNORED)}
    for name, data in loaded.items():
        folder = EXPECTED[name][1]
        assert by_folder[folder].count(data) == 1, f"{name} not filed once in {folder}"
    assert sum(len(v) for v in by_folder.values()) == len(loaded)
    # Each held mail has one note in the held folder, carrying the original byte for byte.
    notes = [original_of(n) for n in imap_account.messages(HELD).values()]
    assert sorted(notes) == sorted(data for name, data in loaded.items() if EXPECTED[name][1] == ORIGINALS)
    for folder in (PROCESSED, ORIGINALS, IGNORED):
        for flags in imap_account.flags(folder).values():
            assert b"\\Seen" not in flags, "nothing is marked read by the bot"

    # One reply per mail that is due one, with the right prefix, threaded, to internal addresses only.
    replies = smtp_sink.wait_for(sum(1 for e in EXPECTED.values() if e[2]), timeout=10)
    by_subject = {}
    for r in replies:
        by_subject.setdefault(r.message["Subject"], []).append(r)
        assert all(addr.endswith("@usen.co.jp") for addr in r.rcpt_tos), r.rcpt_tos
        assert r.message["Auto-Submitted"] == "auto-replied"
        assert r.mail_from == "usen_spot@usen.co.jp"
    for name, (_decision, _folder, prefix) in EXPECTED.items():
        if prefix is None:
            continue
        original = classify(SAMPLES[name].subject, ROOT / "rules").subject  # as the branch wrote it
        got = by_subject.get(prefix + original, [])
        assert len(got) == 1, f"{name}: {len(got)} replies with subject {prefix + original}"
        reply = got[0].message
        source = email.message_from_bytes(loaded[name])
        assert reply["In-Reply-To"] == source["Message-ID"]
        assert source["From"] and got[0].rcpt_tos[0] in str(reply["To"])
    assert len(replies) == sum(1 for e in EXPECTED.values() if e[2])

    # The audit trail has the decision of every mail.
    store = Store(tmp_path / "state.sqlite3")
    decisions = dict(store.db.execute("SELECT subject, action FROM mails").fetchall())
    assert sorted(decisions.values()) == sorted(e[0] for e in EXPECTED.values())
    store.close()

    # A second cycle finds nothing to do: no reply, nothing moved.
    again = poll_cli(config)
    assert again.returncode == 0, again.stderr
    assert "0 mails decided, 0 replies sent, 0 mails filed" in again.stdout
    assert len(smtp_sink.messages()) == len(replies)


class Crash(BaseException):
    """Stands for the process dying at that point: nothing after it runs."""


@contextmanager
def bot_session(config: Path, **mailbox_options):
    """A Bot on the configured real servers, as one `mailbot` process would run it."""
    settings = load(config)
    i = settings.imap
    mailbox = ImapMailbox(i.host, i.port, i.ssl, i.username, i.password, **mailbox_options)
    store = Store(settings.database)
    try:
        yield Bot(settings, mailbox, SmtpTransport(settings.smtp), store, retry_base=timedelta(0)), store
    finally:
        mailbox.close()
        store.close()


def then_crash(step):
    def run_then_crash(*args, **kwargs):
        step(*args)
        raise Crash
    return run_then_crash


def appended(account, name: str) -> bytes:
    data = crlf(dict(sample_mails(NOW))[name])
    account.append("INBOX", data)
    return data


def test_failed_send_is_retried_never_lost_never_doubled(imap_account, smtp_sink, tmp_path):
    data = appended(imap_account, "order_shibuya")
    with bot_session(write_config(tmp_path, imap_account, smtp_sink)) as (bot, store):
        smtp_sink.set_mode("tempfail")
        report = bot.poll()
        assert report.sent == 0 and report.send_failures == 1
        assert list(imap_account.messages("INBOX").values()) == [data], "stays in the inbox until answered"

        smtp_sink.set_mode("accept")
        report = bot.poll()
        assert report.sent == 1 and report.filed == 1
        assert bot.poll().sent == 0
        assert len(smtp_sink.messages()) == 1
        assert list(imap_account.messages(PROCESSED).values()) == [data]
        events = [e for _, e, _ in store.events(1)]
        assert events == ["received", "decided accept", "reply queued", "reply retry", "reply sent", "filed"]


def test_permanent_send_failure_holds_the_mail_for_a_person(imap_account, smtp_sink, tmp_path):
    data = appended(imap_account, "order_no_pdf")
    with bot_session(write_config(tmp_path, imap_account, smtp_sink)) as (bot, _store):
        smtp_sink.set_mode("permfail")
        bot.poll()
    assert list(imap_account.messages(ORIGINALS).values()) == [data]
    (note,) = imap_account.messages(HELD).values()
    assert original_of(note) == data and b"REPLY_FAILED" in note
    assert smtp_sink.messages() == []


def test_crash_between_move_and_record_files_once(imap_account, smtp_sink, tmp_path):
    """The MOVE happened but the bot died before recording it: no second copy, no second reply."""
    data = appended(imap_account, "termination")
    config = write_config(tmp_path, imap_account, smtp_sink)
    with bot_session(config) as (bot, _store):
        bot.mailbox.move_many = then_crash(bot.mailbox.move_many)
        with pytest.raises(Crash):
            bot.poll()
    with bot_session(config) as (bot, store):
        report = bot.poll()
        assert report.sent == 0 and report.filed == 0
        assert store.get(1).state == "filed"
    assert list(imap_account.messages(PROCESSED).values()) == [data]
    assert len(smtp_sink.messages()) == 1


def test_crash_after_decision_before_send_sends_once(imap_account, smtp_sink, tmp_path):
    data = appended(imap_account, "relocation")
    config = write_config(tmp_path, imap_account, smtp_sink)
    with bot_session(config) as (bot, store):
        bot._send_replies = then_crash(lambda report: None)
        with pytest.raises(Crash):
            bot.poll()
        assert store.get(1).state == "reply_queued"
    with bot_session(config) as (bot, _store):
        assert bot.poll().sent == 1
        assert bot.poll().sent == 0
    assert len(smtp_sink.messages()) == 1
    assert list(imap_account.messages(PROCESSED).values()) == [data]


def test_a_slow_relay_holds_up_no_decision_of_the_next_chunk(imap_account, smtp_sink, tmp_path):
    """A chunk's replies go out on the sender's thread while the next chunk is decided: with a
    relay that takes 60 ms before each message, the second chunk's mails are decided before the
    first chunk's last reply has gone out; every reply still goes out once, over one session."""
    from backlog import make_backlog
    from faults import FaultProxy
    from test_crash import crash_config

    backlog = make_backlog(40, seed=5)
    for m in backlog.mails:
        imap_account.append("INBOX", m.data)
    with FaultProxy(smtp_sink.port, "smtp") as relay:
        relay.on(r"^MAIL FROM", lambda _: time.sleep(0.06), times=None)
        config = crash_config(tmp_path, imap_account, relay, backlog)
        with bot_session(config) as (bot, store):
            report = bot.poll()
            at = {(mail_id, event.split()[0]): datetime.fromisoformat(when) for mail_id in range(1, 41)
                  for when, event, _ in store.events(mail_id) if event == "reply sent" or event.startswith("decided ")}
    first_chunk_sent = [t for (mail_id, event), t in at.items() if event == "reply" and mail_id <= 16]
    second_chunk_decided = [t for (mail_id, event), t in at.items() if event == "decided" and 16 < mail_id <= 32]
    assert len(first_chunk_sent) > 8 and len(second_chunk_decided) == 16
    assert min(second_chunk_decided) < max(first_chunk_sent)
    replies = smtp_sink.messages()
    assert report.sent == len(replies) == sum(m.replied for m in backlog.mails)
    assert len({m.session for m in replies}) == 1


def test_the_gil_is_handed_back_within_a_millisecond_while_replies_go_out(imap_account, smtp_sink, tmp_path):
    """The main thread waits for the GIL up to the switch interval each time it comes back from
    SQLite or a socket while the sender runs Python: 1 ms during a cycle, as it was afterwards."""
    appended(imap_account, "relocation")
    config = write_config(tmp_path, imap_account, smtp_sink)
    before = sys.getswitchinterval()
    with bot_session(config) as (bot, _store):
        send, seen = bot.transport.send, []
        bot.transport.send = lambda messages, **kw: seen.append(sys.getswitchinterval()) or send(messages, **kw)
        assert bot.poll().sent == 1
    assert seen == [min(before, 0.001)] and sys.getswitchinterval() == before


def test_the_chunks_of_a_cycle_share_one_smtp_session_which_ends_with_the_cycle(imap_account, smtp_sink, tmp_path):
    """Replies go out after each chunk of mails (16): over one session, checked with NOOP before
    each chunk's replies; the cycle's end closes it."""
    from backlog import make_backlog
    from test_crash import crash_config

    backlog = make_backlog(40, seed=5)
    for m in backlog.mails:
        imap_account.append("INBOX", m.data)
    config = crash_config(tmp_path, imap_account, smtp_sink, backlog)
    with bot_session(config) as (bot, _store):
        report = bot.poll()
        assert bot.transport._client is None and bot.transport._runner is None
    replies = smtp_sink.messages()
    assert report.sent == len(replies) == sum(m.replied for m in backlog.mails) > 16
    assert len({m.session for m in replies}) == 1


def test_a_kept_smtp_session_that_dropped_is_replaced(smtp_sink, imap_account, tmp_path):
    from mailbot.reply.send import Outcome

    transport = SmtpTransport(load(write_config(tmp_path, imap_account, smtp_sink)).smtp)
    mail = (b"From: bot@usen.co.jp\r\nTo: shibuya@usen.co.jp\r\nSubject: test\r\n\r\nbody\r\n",
            ["shibuya@usen.co.jp"])
    [first] = transport.send([mail], keep_open=True)
    transport._client.close()  # the connection dropped while idle (a relay's idle timeout)
    [second] = transport.send([mail], keep_open=True)
    [third] = transport.send([mail])
    assert first.outcome == second.outcome == third.outcome == Outcome.SENT
    assert transport._client is None
    sessions = [m.session for m in smtp_sink.messages()]
    assert len(sessions) == 3 and sessions[0] != sessions[1] == sessions[2]


def test_uidvalidity_change_does_not_make_old_mail_new(imap_account, smtp_sink, tmp_path):
    """The inbox is rebuilt with new UIDs while a reply is pending: one reply, one filed copy."""
    config = write_config(tmp_path, imap_account, smtp_sink)
    data = appended(imap_account, "cancellation")
    smtp_sink.set_mode("tempfail")
    with bot_session(config) as (bot, _store):
        bot.poll()
    before = imap_account.uidvalidity("INBOX")

    # Rebuild the inbox: a new UIDVALIDITY and new UIDs for the same mail.
    client = imap_account.client()
    client.select_folder("INBOX")
    client.delete_messages(client.search("ALL"))
    client.expunge()
    client.logout()
    _reset_uidvalidity(imap_account)
    imap_account.append("INBOX", data)
    assert imap_account.uidvalidity("INBOX") != before

    smtp_sink.set_mode("accept")
    with bot_session(config) as (bot, _store):
        report = bot.poll()
    assert report.sent == 1 and report.filed == 1 and report.handled == []
    assert len(smtp_sink.messages()) == 1
    assert list(imap_account.messages(PROCESSED).values()) == [data]
    assert imap_account.messages("INBOX") == {}


def _reset_uidvalidity(account) -> None:
    """Make Dovecot hand out a new UIDVALIDITY for INBOX, as after a server-side rebuild."""
    import time

    root = account.server.maildir(account.username)
    for name in ("dovecot-uidlist", "dovecot.index", "dovecot.index.cache", "dovecot.index.log",
                 "dovecot.list.index", "dovecot.list.index.log"):
        path = Path(root) / name
        if path.exists():
            path.unlink()
    time.sleep(1.1)  # UIDVALIDITY is a timestamp


def test_whole_loop_on_a_server_without_move(nomove_account, smtp_sink, tmp_path):
    """COPY + UID EXPUNGE instead of MOVE, on a server with "." separators and an INBOX. prefix."""
    mails = dict(sample_mails(NOW))
    names = ["order_shibuya", "outside_gmail", "bounce", "order_no_code"]
    for name in names:
        nomove_account.append("INBOX", crlf(mails[name]))
    config = write_config(tmp_path, nomove_account, smtp_sink)
    assert poll_cli(config).returncode == 0
    assert nomove_account.messages("INBOX") == {}
    for name in names:
        folder = "INBOX." + EXPECTED[name][1].replace("/", ".")  # as this server names it
        assert list(nomove_account.messages(folder).values()).count(crlf(mails[name])) == 1, name
    assert len(smtp_sink.messages()) == 2
    assert poll_cli(config).returncode == 0
    assert len(smtp_sink.messages()) == 2


def test_a_form_being_read_holds_up_only_the_mails_of_its_own_customer_code():
    """Issue 19: the main process decides the mails whose forms are read (or that have none) while
    a reader is still busy, but never a mail before an earlier one of the same customer code (the
    cancellation after its order, the resubmission after its remand)."""
    from concurrent.futures import Future

    from mailbot.config import embedded_default
    from mailbot.model import MailRef, RawMail
    from mailbot.pipeline import _Chunk, assess

    settings = embedded_default(Path("/tmp/mailbot-order-test"))
    samples = dict(sample_mails(NOW))
    names = ["order_shibuya", "cancellation", "order_multi_units", "unknown_subject"]
    raws = [RawMail(MailRef("INBOX", 1, i + 1), samples[n]) for i, n in enumerate(names)]
    # The cancellation names the order's customer code here: it must wait for the order.
    from test_check_situations import Draft

    raws[1] = RawMail(MailRef("INBOX", 1, 2), Draft("cancellation").code("988776654").bytes())
    assessed = {r.sha256: assess(r.data, None, settings) for r in raws}
    busy, done = Future(), Future()
    done.set_result(None)
    readings = {raws[0].sha256: busy, raws[2].sha256: done}
    chunk = _Chunk(raws, assessed, readings)
    order = chunk.order()
    # The order's form is being read: the other code's order (form read) and the mail without a
    # code go first; the cancellation of the busy order's code waits for it.
    assert [next(order).ref.uid for _ in range(2)] == [3, 4]
    busy.set_result(None)
    assert [r.ref.uid for r in order] == [1, 2]
    # All read: arrival order.
    assert [r.ref.uid for r in _Chunk(raws, assessed, {k: done for k in readings}).order()] == [1, 2, 3, 4]

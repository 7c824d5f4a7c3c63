"""Hostile input and outsiders (issue 6, items 4 and 5): every mail of the shared corpus through the
whole loop on the real servers; replies only to internal addresses; a per-sender daily cap and a
global circuit breaker on replies; no secrets or personal data in the logs."""

from __future__ import annotations

import email
import email.utils
import hashlib
import logging
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest
from helpers import ROOT
from test_loop import (
    HELD,
    IGNORED,
    NOW,
    ORIGINALS,
    PROCESSED,
    bot_session,
    write_config,
)

from demo.samples import sample_mails
from mailbot.config import ConfigError, from_dict
from mailbot.logs import log_failure
from mailbot.mailbox.maildir import MaildirMailbox
from mailbot.model import Action
from mailbot.pipeline import Bot
from mailbot.record.store import Store
from mailbot.reply.note import original_of
from mailbot.reply.send import MaildirOutbox

CORPUS = ROOT.parent / "shared" / "corpora" / "email"
INTERNAL = "example.co.jp"  # the synthetic Japanese cases write as colleagues of this domain


def corpus() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and not p.name.startswith("README"))


# ------------------------------------------------------------------ an oracle independent of the bot

_ADDR = re.compile(rb"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)")


def may_be_answered(raw: bytes) -> tuple[bool, str]:
    """Whether a mail may get an automatic reply at all, judged from its raw headers with plain
    rules (not mailbot's code): only an ordinary, non-automatic mail from one internal sender."""
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    unfolded = re.sub(rb"\r?\n[ \t]+", b" ", head)
    fields = [line.split(b":", 1) for line in unfolded.splitlines() if b":" in line]
    named = {}
    for name, value in fields:
        named.setdefault(name.strip().lower(), []).append(value.strip())
    auto = [v.lower() for v in named.get(b"auto-submitted", [])]
    if any(not v.startswith(b"no") for v in auto):
        return False, "Auto-Submitted"
    if any(v.lower() in (b"bulk", b"list", b"junk") for v in named.get(b"precedence", [])):
        return False, "Precedence"
    if any(k.startswith(b"list-") for k in named):
        return False, "list"
    if any(v in (b"<>", b"") for v in named.get(b"return-path", [])):
        return False, "bounce"
    if b"multipart/report" in b" ".join(named.get(b"content-type", [])).lower():
        return False, "report"
    froms = named.get(b"from", [])
    if len(froms) != 1:
        return False, "From count"
    decoded = str(email.header.make_header(email.header.decode_header(froms[0].decode("latin-1"))))
    for value in [decoded.encode("utf-8", "replace"), *named.get(b"reply-to", [])]:
        domains = {m.group(1).lower() for m in _ADDR.finditer(value)}
        if not domains or any(d != INTERNAL.encode() for d in domains):
            return False, "outsider"
    if re.search(rb"mailer-daemon|postmaster", froms[0], re.I):
        return False, "system sender"
    return True, ""


def test_the_whole_corpus_through_the_loop(imap_account, smtp_sink, tmp_path):
    appended, refused = {}, []
    client = imap_account.client()
    try:
        for path in corpus():
            data = path.read_bytes()
            try:
                client.append("INBOX", data)
                appended[path] = data
            except Exception as e:  # the server itself refuses some (e.g. NUL bytes): never reach the bot
                refused.append((path.name, str(e)[:60]))
    finally:
        client.logout()
    assert len(appended) >= 600, refused

    # acknowledge_held: a held mail from a colleague gets 【確認中】, so the reply path is tried on all
    config = write_config(tmp_path, imap_account, smtp_sink, internal_domains=f'["{INTERNAL}"]',
                          acknowledge_held=True)
    with bot_session(config) as (bot, store):
        report = bot.poll()
        assert bot.poll().handled == []  # nothing left to decide, nothing decided twice
        actions = [row[0] for row in store.db.execute("SELECT action FROM mails")]

    # Every mail ends processed, held or ignored: the inbox is empty and nothing is lost.
    assert imap_account.messages("INBOX") == {}
    filed = {f: imap_account.messages(f) for f in (PROCESSED, ORIGINALS, IGNORED)}
    assert sum(len(v) for v in filed.values()) == len(appended)
    # One note per held mail; a byte-identical second delivery is filed beside the first, and
    # staff decide once (the corpus has 10 such duplicates).
    notes = [original_of(n) for n in imap_account.messages(HELD).values()]
    assert sorted(notes) == sorted(set(filed[ORIGINALS].values()))
    # (distinct as the server stores them: it writes line ends its own way, which makes a few
    # corpus pairs that differ only in LF/CRLF one and the same mail)
    distinct = len({data for folder in filed.values() for data in folder.values()})
    assert len(actions) == distinct and set(actions) <= {"accept", "remand", "hold", "ignore"}

    # Replies only where the oracle allows one, only to internal addresses, one per mail.  A reply's
    # Message-ID names the mail it answers (the SHA-256 of its bytes): also for mails without one.
    stored = {hashlib.sha256(data).hexdigest()[:32]: data for folder in filed.values() for data in folder.values()}
    replies = smtp_sink.messages()
    answered: list[bytes] = []
    for r in replies:
        assert all(a.lower().endswith("@" + INTERNAL) for a in r.rcpt_tos), r.rcpt_tos
        source = stored[re.match(r"<\w+\.([0-9a-f]{32})\.mailbot@", r.message["Message-ID"]).group(1)]
        ok, why = may_be_answered(source)
        assert ok, f"{r.message['Subject']} was answered although {why}"
        answered.append(source.replace(b"\r\n", b"\n"))
    assert len(answered) == len(set(answered)), "a mail answered twice"
    print(f"corpus: {len(appended)} appended, {len(refused)} refused by Dovecot, {len(replies)} replies, "
          f"{len(filed[PROCESSED])} processed, {len(filed[ORIGINALS])} held, {len(filed[IGNORED])} ignored, "
          f"{len(report.errors)} errors")

    # The cases written to trap a bot (shared/corpora/README): none is answered.
    synthetic = {p.name: p for p in appended if p.parent.name == "_synthetic-ja"}
    for name in ("16a-ooo-exchange.eml", "16b-ooo-no-autosubmitted.eml", "16c-ooo-subject-only.eml",
                 "16d-list-mail.eml", "16e-dsn-bounce-null-return-path.eml", "16f-unlisted-recipients-group.eml",
                 "17c-replyto-outsider.eml", "17d-display-name-spoof.eml", "17e-two-from.eml"):
        assert appended[synthetic[name]].replace(b"\r\n", b"\n") not in answered, name
    assert appended[synthetic["01-iso2022jp-baseline.eml"]].replace(b"\r\n", b"\n") in answered
    # …and what is answered carries no header smuggled in through the subject or the sender's name.
    allowed = {"from", "to", "cc", "subject", "date", "message-id", "in-reply-to", "references",
               "auto-submitted", "x-auto-response-suppress", "x-mailbot-decision", "mime-version",
               "content-type", "content-transfer-encoding"}
    for r in replies:
        assert {k.lower() for k in r.message.keys()} <= allowed, r.message.keys()


# ------------------------------------------------------------------ per-sender cap and circuit breaker


def local_bot(tmp_path: Path, **policy: int):
    settings = from_dict({"maildir": {"path": "mailbox"}, "outbox": {"path": "outbox"},
                          "state": {"database": "state.sqlite3"}, "policy": policy}, base=tmp_path)
    mailbox = MaildirMailbox(settings.maildir)
    store = Store(settings.database)
    return Bot(settings, mailbox, MaildirOutbox(settings.outbox), store), mailbox, store


def contract_changes(n: int) -> list[bytes]:
    """n distinct contract-change mails from the same branch employee (as Outlook writes them)."""
    mails = []
    for i in range(n):
        msg = EmailMessage()
        msg["From"] = "鈴木 一郎 <i-suzuki@usen.co.jp>"
        msg["To"] = "usen_spot@usen.co.jp"
        msg["Cc"] = "m-tanaka@usen.co.jp"
        msg["Subject"] = f"USEN SPOT 契約変更_{932104568 + i}"
        msg["Message-ID"] = f"<change{i}.{NOW:%Y%m%d}@usen.co.jp>"
        msg["Date"] = email.utils.format_datetime(NOW)
        msg.set_content(f"お疲れ様です。\n\n顧客CD：{932104568 + i}\n変更内容：店舗名変更\n", charset="iso-2022-jp")
        mails.append(msg.as_bytes())
    return mails


def test_one_sender_gets_at_most_the_daily_cap_of_replies(tmp_path):
    bot, mailbox, store = local_bot(tmp_path, max_replies_per_sender_per_day=2)
    try:
        for data in contract_changes(4):
            mailbox.append("INBOX", data, datetime.now(timezone.utc))
        report = bot.poll()
        assert [e.decision.action for _, e, _ in report.handled] == [Action.ACCEPT] * 2 + [Action.HOLD] * 2
        assert [e.decision.reasons for _, e, _ in report.handled][2:] == [["REPLY_LIMIT"]] * 2
        assert report.sent == 2
    finally:
        mailbox.close()
        store.close()


def test_the_circuit_breaker_holds_replies_back_and_loses_none(tmp_path):
    bot, mailbox, store = local_bot(tmp_path, max_replies_per_hour=3)
    try:
        for data in contract_changes(5):
            mailbox.append("INBOX", data, datetime.now(timezone.utc))
        report = bot.poll()
        assert report.sent == 3 and any("circuit breaker" in e for e in report.errors)
        assert bot.poll().sent == 0  # still within the hour
        assert len(mailbox.list_uids("INBOX")) == 2  # not filed before their replies went out
        # An hour later the rest goes out, once.
        store.db.execute("UPDATE replies SET sent_at=? WHERE state='sent'",
                         ((datetime.now(timezone.utc) - timedelta(hours=2)).isoformat(),))
        assert bot.poll().sent == 2
        assert bot.poll().sent == 0 and mailbox.list_uids("INBOX") == []
        assert store.db.execute("SELECT COUNT(*) FROM events WHERE event='reply circuit breaker open'").fetchone()[0]
    finally:
        mailbox.close()
        store.close()


# ------------------------------------------------------------------ logs


def test_a_failure_is_logged_without_the_data_it_was_about(caplog):
    try:
        raise ValueError("株式会社ソレイユ 日向 陽子 03-6416-2201 hinata@example.co.jp")
    except ValueError as e:
        with caplog.at_level(logging.ERROR):
            log_failure(logging.getLogger("mailbot"), "processing mail 7 failed", e)
    assert "processing mail 7 failed: ValueError at test_hostile.py:" in caplog.text
    assert "ソレイユ" not in caplog.text and "03-6416" not in caplog.text and "hinata" not in caplog.text


def test_a_password_of_the_wrong_type_is_not_echoed():
    with pytest.raises(ConfigError) as e:
        from_dict({"imap": {"host": "h", "username": "u", "password": 98765432}}, base=Path("/tmp"))
    assert str(e.value) == "imap.password: expected a string, got int"


def test_verbose_logs_carry_no_password_and_no_personal_data(imap_account, smtp_sink, tmp_path):
    for _name, data in sample_mails(NOW):
        imap_account.append("INBOX", data)
    config = write_config(tmp_path, imap_account, smtp_sink)
    result = subprocess.run([sys.executable, "-m", "mailbot", "-v", "poll", "--config", str(config)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    logs = result.stderr
    assert "INFO mailbot" in logs  # verbose logs were written: their absence of secrets means something
    secrets = [imap_account.password, "uspot", "usen-spot-owner"]
    personal = ["株式会社ソレイユ", "日向 陽子", "03-6416-2201", "宇田川町", "soleil-shibuya@uspot.jp",
                "鈴木 一郎", "i-suzuki@usen.co.jp", "ken.ishii.0815@gmail.com"]
    for s in secrets + personal:
        assert s not in logs, s

"""record/: the mail state machine is enforced, and the send-once mechanism the digests (and the
coming ledger shares) use lets exactly one sender send each day's mail."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mailbot.model import MailRef, RawMail
from mailbot.record.sendonce import CLAIM_EXPIRES, SendOnce
from mailbot.record.states import MAIL_TRANSITIONS, MailState, SendState, WrongTransition
from mailbot.record.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.sqlite3")
    yield s
    s.close()


def _mail(store: Store, uid: int = 1):
    return store.add_received(RawMail(MailRef("INBOX", 7, uid), b"Subject: x\r\n\r\nbody %d\r\n" % uid), None)


def test_states_keep_the_text_the_database_always_had(store):
    row = _mail(store)
    assert row.state == "received" and row.state == MailState.RECEIVED
    assert {s.value for s in MailState} == {"received", "decided", "reply_queued", "sent", "filed", "vanished"}
    assert set(MAIL_TRANSITIONS) == set(MailState)


def test_a_move_the_state_machine_does_not_have_is_refused(store):
    row = _mail(store)
    with pytest.raises(WrongTransition, match="received → sent"):
        store.set_state(row.id, MailState.SENT, "impossible")
    assert store.get(row.id).state == MailState.RECEIVED  # nothing written
    store.set_state(row.id, MailState.VANISHED, "left the inbox")
    assert store.get(row.id).state == MailState.VANISHED
    # the next cycles see it missing again: staying in a state is no change
    store.set_state(row.id, MailState.VANISHED, "left the inbox")
    assert store.get(row.id).state == MailState.VANISHED


def test_one_claim_wins_and_the_mail_is_sent_once(store):
    once = SendOnce(store, "digests")
    first = once.queue("2026-12-04", "<d1@x>", b"mail one")
    again = once.queue("2026-12-04", "<d2@x>", b"mail two")  # a second build keeps the first
    assert first["message_id"] == again["message_id"] == "<d1@x>" and bytes(again["data"]) == b"mail one"
    assert once.claim("2026-12-04") is True
    assert once.claim("2026-12-04") is False  # another sender meanwhile
    once.sent("2026-12-04")
    assert once.claim("2026-12-04") is False
    assert once.row("2026-12-04")["state"] == SendState.SENT
    assert once.sent_keys("2026-12-01") == {"2026-12-04"}


def test_a_claim_left_by_a_crash_is_taken_over_after_it_expires(store):
    once = SendOnce(store, "digests")
    once.queue("2026-12-04", "<d@x>", b"mail")
    t = datetime(2026, 12, 4, 9, 0, tzinfo=timezone.utc)
    assert once.claim("2026-12-04", t)
    assert not once.claim("2026-12-04", t + CLAIM_EXPIRES - timedelta(seconds=1))
    assert once.claim("2026-12-04", t + CLAIM_EXPIRES + timedelta(seconds=1))


def test_a_failure_leaves_it_queued_or_failed(store):
    once = SendOnce(store, "digests")
    once.queue("2026-12-04", "<d@x>", b"mail")
    assert once.claim("2026-12-04")
    assert once.failed("2026-12-04", "451 try later", permanent=False) is SendState.QUEUED
    assert once.claim("2026-12-04")
    assert once.failed("2026-12-04", "550 no", permanent=True) is SendState.FAILED
    row = once.row("2026-12-04")
    assert (row["state"], row["attempts"], row["last_error"]) == ("failed", 2, "550 no")
    assert once.claim("2026-12-04")  # sent again when asked (mailbot digest --send)


def test_only_known_tables():
    with pytest.raises(ValueError):
        SendOnce(None, "mails; DROP TABLE mails")


def test_the_per_sender_cap_reads_indexes_only(tmp_path):
    """replies_to_sender_since runs at every reply: the sender's mails by their index, each one's
    'reply queued' events by (mail_id, event, at) without reading a row; a database made before
    the index loses the old one (mail_id alone) when opened."""
    import sqlite3

    path = tmp_path / "state.sqlite3"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE events (id INTEGER PRIMARY KEY, mail_id INTEGER, at TEXT NOT NULL,"
                      " event TEXT NOT NULL, detail TEXT); CREATE INDEX events_mail ON events (mail_id);")
    old.close()
    store = Store(path)
    try:
        indexes = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE tbl_name='events'"
                                                  " AND type='index'")}
        assert "events_mail_event" in indexes and "events_mail" not in indexes
        plan = " / ".join(r[3] for r in store.db.execute(
            "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM events e JOIN mails m ON m.id = e.mail_id"
            " WHERE e.event='reply queued' AND m.sender=? AND e.at>=?", ("a@usen.co.jp", "2026-12-04")))
        assert "COVERING INDEX mails_sender" in plan and "COVERING INDEX events_mail_event" in plan, plan
        for uid in (1, 2, 3):
            store.event(_mail(store, uid).id, "reply queued")
        store.db.execute("UPDATE mails SET sender='a@usen.co.jp'")
        assert store.replies_to_sender_since("a@usen.co.jp", datetime.now(timezone.utc) - timedelta(hours=1)) == 3
        assert store.replies_to_sender_since("a@usen.co.jp", datetime.now(timezone.utc) + timedelta(hours=1)) == 0
    finally:
        store.close()


def test_a_folders_unfinished_mails_are_read_from_their_own_index(store):
    """unfinished() runs after every chunk: the rows of filed mails stay in their folder (a year of
    them in the inbox), so only a partial index of the others is read."""
    for uid in (1, 2, 3):
        _mail(store, uid)
    store.set_filed([(1, "処理済")])
    plan = " / ".join(r[3] for r in store.db.execute(
        f"EXPLAIN QUERY PLAN SELECT * FROM mails WHERE folder=? AND state!='{MailState.FILED}' ORDER BY id", ("INBOX",)))
    assert plan == "SEARCH mails USING INDEX mails_unfinished (folder=?)", plan
    assert [row.ref.uid for row in store.unfinished("INBOX")] == [2, 3]

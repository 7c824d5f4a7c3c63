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

"""A mail that must go out exactly once per key (the digest of a business day, the day's
管理台帳 share with FiberGate), whoever sends it: `mailbot run` after a poll, or a person with
`mailbot digest --send`, maybe both at the same moment, maybe after a crash.

    once = SendOnce(store, "digests")
    once.queue(key, message_id, data)        the mail, made once; later calls keep the first
    once.claim(key)                          True for exactly one sender (a stale claim is taken over)
    once.sent(key) / once.failed(key, …)     the outcome, recorded
    once.row(key), once.sent_keys(since)     what the table says
    once.due_days(calendar, now, first, …)   the business days whose mail is due and not sent

States are states.SendState: queued ──► sending ──► sent, or back to queued (a temporary failure)
or failed (a permanent one; claimed again only when asked).  Every change is committed (and the
claim synced) before the mail goes out.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Callable
from datetime import date, datetime, timedelta

from mailbot.record.states import SendState
from mailbot.record.store import Store, now_utc
from mailbot.reference.calendar import BusinessCalendar

# Longer than any send can take (the SMTP timeout is seconds): a claim this old was left by a crash.
CLAIM_EXPIRES = timedelta(minutes=15)

# Who claims: this host and process (a claim of a process that is gone is taken over at once).
CLAIMER = f"{socket.gethostname()}:{os.getpid()}"


def _claim_is_stale(row: sqlite3.Row, now: datetime) -> bool:
    if not row["claimed_at"] or row["claimed_at"] < (now - CLAIM_EXPIRES).isoformat():
        return True
    host, _, pid = (row["claimed_by"] or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True  # the sender died mid-send
    except PermissionError:
        pass  # alive, another user's
    return False


# The tables of once-only mails: key column day (YYYY-MM-DD), message_id, state, data, claimed_at,
# claimed_by, attempts, last_error, created_at, sent_at (store.SCHEMA).
TABLES = frozenset({"digests", "ledger_shares"})


class SendOnce:
    def __init__(self, store: Store, table: str):
        if table not in TABLES:
            raise ValueError(f"no once-only table {table!r}")
        self.store = store
        self.table = table

    def row(self, key: str) -> sqlite3.Row | None:
        return self.store.db.execute(f"SELECT * FROM {self.table} WHERE day=?", (key,)).fetchone()

    def due_days(self, calendar: BusinessCalendar, now: datetime, first: date, moment: Callable[[date], datetime],
                 catch_up_days: int) -> list[date]:
        """The business days from `first` (at most `catch_up_days` back) whose `moment(day)` has
        passed at `now` and whose mail was not sent, oldest first: a missed day is sent late, once."""
        day = max(first, now.date() - timedelta(days=catch_up_days))
        sent = self.sent_keys(day.isoformat())
        out = []
        while day <= now.date():
            if calendar.is_business_day(day) and moment(day) <= now and day.isoformat() not in sent:
                out.append(day)
            day += timedelta(days=1)
        return out

    def sent_keys(self, since: str) -> set[str]:
        return {r[0] for r in self.store.db.execute(f"SELECT day FROM {self.table} WHERE state=? AND day >= ?",
                                                    (SendState.SENT, since))}

    def queue(self, key: str, message_id: str, data: bytes,
              along: Callable[[sqlite3.Connection], None] | None = None) -> sqlite3.Row:
        """The mail of `key`, queued unless one is there already (which is kept); the row.  `along`
        runs in the same commit when this call queued it (the ledger lines the share carries)."""
        with self.store.transaction() as db:
            queued = db.execute(f"INSERT OR IGNORE INTO {self.table} (day, message_id, state, data, created_at)"
                                " VALUES (?,?,?,?,?)", (key, message_id, SendState.QUEUED, data,
                                                        now_utc().isoformat())).rowcount
            if queued and along is not None:
                along(db)
        return self.row(key)

    def claim(self, key: str, now: datetime | None = None) -> bool:
        """Whether this caller sends it now: one sender at a time.  A claim is taken over when its
        process is gone (same host, its PID not running: killed mid-send) or older than
        CLAIM_EXPIRES (another host, or a PID reused).  Synced before the caller sends."""
        now = now or now_utc()
        row = self.row(key)
        if row is None:
            return False
        stale = row["state"] == SendState.SENDING and _claim_is_stale(row, now)
        with self.store.transaction() as db:
            claimed = db.execute(
                f"UPDATE {self.table} SET state=?, claimed_at=?, claimed_by=? WHERE day=? AND"
                " (state IN (?, ?) OR (state=? AND ? AND claimed_at IS ?))",
                (SendState.SENDING, now.isoformat(), CLAIMER, key, SendState.QUEUED, SendState.FAILED,
                 SendState.SENDING, stale, row["claimed_at"])).rowcount
        self.store.flush()
        return bool(claimed)

    def sent(self, key: str) -> None:
        with self.store.transaction() as db:
            db.execute(f"UPDATE {self.table} SET state=?, sent_at=?, attempts=attempts+1, last_error=NULL"
                       " WHERE day=?", (SendState.SENT, now_utc().isoformat(), key))

    def failed(self, key: str, error: str, permanent: bool) -> SendState:
        """Back to queued (tried again later) or failed for good; the state it is left in."""
        state = SendState.FAILED if permanent else SendState.QUEUED
        with self.store.transaction() as db:
            db.execute(f"UPDATE {self.table} SET state=?, attempts=attempts+1, last_error=? WHERE day=?",
                       (state, error, key))
        return state

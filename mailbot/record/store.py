"""SQLite state: one row per mail with its state machine, its reply, and an audit trail; and
every SQL statement of the bot (the reports read through the queries at the end).

States (states.py; DOMAIN: nothing lost, nothing answered twice):

    received ──► decided ──────────────────────────► filed
                    └──► reply_queued ──► sent ──────┘
    (decided with action "defer": stays in the inbox, decided again later)

Every transition is committed before the next side effect, so after a crash the row says
exactly what is left to do.  A mail is known by the SHA-256 of its raw bytes (survives a
UIDVALIDITY change) and by where it sits (folder, UIDVALIDITY, UID).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from mailbot.model import Action, Kind, MailRef, RawMail
from mailbot.record.history import PastRequest
from mailbot.record.ledger import LedgerLine
from mailbot.record.states import MailState, SendState, check_transition

SCHEMA = """
CREATE TABLE IF NOT EXISTS mails (
    id            INTEGER PRIMARY KEY,
    sha256        TEXT NOT NULL UNIQUE,
    message_id    TEXT,
    folder        TEXT NOT NULL,
    uidvalidity   INTEGER NOT NULL,
    uid           INTEGER NOT NULL,
    internaldate  TEXT,
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    action        TEXT,
    kind          TEXT,
    code          TEXT,
    reasons       TEXT,
    fields        TEXT,
    subject       TEXT,
    sender        TEXT,
    sender_name   TEXT,                   -- the From's display name (a held note shows it)
    target        TEXT,
    data_version  TEXT,
    received      TEXT,
    branch        TEXT,
    findings      TEXT,
    previews      TEXT,                   -- a held mail: the replies staff's 受付 / 差戻 would send (JSON)
    rules_version TEXT,                   -- the rules and templates in force when it was decided (hash)
    first_seen    TEXT NOT NULL,
    updated       TEXT NOT NULL,
    UNIQUE (folder, uidvalidity, uid)
);
CREATE INDEX IF NOT EXISTS mails_state ON mails (state);
CREATE INDEX IF NOT EXISTS mails_code ON mails (code);
CREATE INDEX IF NOT EXISTS mails_sender ON mails (sender);  -- the per-sender daily cap
-- a folder's mails not yet filed, asked for after every chunk: a filed row stays in its folder,
-- and without this the inbox's whole history was read each time
CREATE INDEX IF NOT EXISTS mails_unfinished ON mails (folder, id) WHERE state != 'filed';
CREATE TABLE IF NOT EXISTS replies (
    id            INTEGER PRIMARY KEY,
    mail_id       INTEGER NOT NULL REFERENCES mails (id),
    message_id    TEXT NOT NULL UNIQUE,
    action        TEXT NOT NULL,
    recipients    TEXT NOT NULL,
    data          BLOB NOT NULL,
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  TEXT NOT NULL,
    last_error    TEXT,
    sent_at       TEXT,
    sending_at    TEXT                    -- when the last attempt began
);
CREATE INDEX IF NOT EXISTS replies_state ON replies (state, next_attempt);
CREATE INDEX IF NOT EXISTS replies_sent ON replies (sent_at);
-- a mail's replies, asked for at every reply sent: without it a year's replies were scanned each time
CREATE INDEX IF NOT EXISTS replies_mail ON replies (mail_id);
CREATE TABLE IF NOT EXISTS events (
    id       INTEGER PRIMARY KEY,
    mail_id  INTEGER REFERENCES mails (id),
    at       TEXT NOT NULL,
    event    TEXT NOT NULL,
    detail   TEXT
);
-- a mail's events, and whether it has one (the per-sender daily cap: 'reply queued' since a day)
-- without a look at the rows
CREATE INDEX IF NOT EXISTS events_mail_event ON events (mail_id, event, at);
DROP INDEX IF EXISTS events_mail;
CREATE INDEX IF NOT EXISTS events_at ON events (at);
-- A held mail (DOMAIN.md §6): its note in the held folder, until office-center staff decide by
-- moving the note (outcome accepted | remanded | handled).
CREATE TABLE IF NOT EXISTS held (
    mail_id       INTEGER PRIMARY KEY REFERENCES mails (id),
    note_id       TEXT NOT NULL UNIQUE,   -- the note's Message-ID
    original      BLOB NOT NULL,          -- the original bytes, to answer once staff decide
    opened_at     TEXT NOT NULL,
    closed_at     TEXT,
    outcome       TEXT,
    decided_in    TEXT                    -- the folder the note was moved to
);
-- The USEN SPOT 管理台帳 (DOMAIN.md §8): one line per router event of an accepted request, written
-- in the commit of that decision; share_day: the FiberGate share it went out in (NULL: not yet).
CREATE TABLE IF NOT EXISTS ledger (
    id            INTEGER PRIMARY KEY,
    key           TEXT NOT NULL UNIQUE,   -- mail:<id> | unis:… (強制解約)
    mail_id       INTEGER REFERENCES mails (id),
    category      TEXT NOT NULL,
    data          TEXT NOT NULL,          -- the line (record/ledger.LedgerLine, JSON)
    created_at    TEXT NOT NULL,          -- UTC: when the decision was recorded
    share_day     TEXT                    -- YYYY-MM-DD of the share (ledger_shares.day)
);
CREATE INDEX IF NOT EXISTS ledger_share ON ledger (share_day, created_at);
-- How far the bot has looked for staff decisions in a folder (the processed folder grows).
CREATE TABLE IF NOT EXISTS cursors (
    folder        TEXT PRIMARY KEY,
    uidvalidity   INTEGER NOT NULL,
    last_uid      INTEGER NOT NULL
);
-- The supervisors' daily digest: one row per business day, sent exactly once.
CREATE TABLE IF NOT EXISTS digests (
    day           TEXT PRIMARY KEY,       -- YYYY-MM-DD (Asia/Tokyo)
    message_id    TEXT NOT NULL UNIQUE,
    state         TEXT NOT NULL,          -- queued | sending | sent | failed
    data          BLOB NOT NULL,
    claimed_at    TEXT,                   -- when a process began sending it (one sender at a time)
    claimed_by    TEXT,                   -- that process: host:pid
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at    TEXT NOT NULL,
    sent_at       TEXT
);
-- Each mail's bytes as received, zlib-compressed (level 1: a form's base64 gains little from more,
-- and the bot compresses every mail): `mailbot replay` decides them again.
CREATE TABLE IF NOT EXISTS originals (
    mail_id       INTEGER PRIMARY KEY REFERENCES mails (id),
    data          BLOB NOT NULL
);
-- How the service is doing: one row per key (the last successful poll …), for `mailbot health`.
CREATE TABLE IF NOT EXISTS status (
    key           TEXT PRIMARY KEY,
    value         TEXT NOT NULL,
    at            TEXT NOT NULL
);
-- The daily 管理台帳 share with FiberGate: one row per business day, sent exactly once.
CREATE TABLE IF NOT EXISTS ledger_shares (
    day           TEXT PRIMARY KEY,
    message_id    TEXT NOT NULL UNIQUE,
    state         TEXT NOT NULL,
    data          BLOB NOT NULL,
    claimed_at    TEXT,
    claimed_by    TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at    TEXT NOT NULL,
    sent_at       TEXT
);
"""


# A staff decision (the note moved to the accept or remand folder) as the decision it replaces the
# hold with; a note moved to the processed folder stays a hold, handled by a person.
STAFF_ACTIONS = {"accepted": Action.ACCEPT, "remanded": Action.REMAND}


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


@dataclass(frozen=True)
class MailRow:
    id: int
    sha256: str
    message_id: str | None
    ref: MailRef
    internaldate: datetime | None
    state: str
    attempts: int
    action: str | None
    kind: str | None
    code: str | None
    reasons: list[str]
    target: str | None
    data_version: str | None
    findings: list[tuple[str, str]] = ()  # (code, detail) of the decision
    subject: str = ""
    sender: str = ""
    received: datetime | None = None
    sender_name: str = ""
    fields: dict = field(default_factory=dict)  # as the pipeline reported them (body, form …)
    previews: dict = field(default_factory=dict)  # a held mail: {"accept"|"remand": {"subject", "body"} | None}

    @classmethod
    def from_sql(cls, r: sqlite3.Row) -> MailRow:
        return cls(
            id=r["id"], sha256=r["sha256"], message_id=r["message_id"],
            ref=MailRef(r["folder"], r["uidvalidity"], r["uid"]),
            internaldate=datetime.fromisoformat(r["internaldate"]) if r["internaldate"] else None,
            state=r["state"], attempts=r["attempts"], action=r["action"], kind=r["kind"], code=r["code"],
            reasons=json.loads(r["reasons"]) if r["reasons"] else [], target=r["target"],
            data_version=r["data_version"],
            findings=[tuple(f) for f in json.loads(r["findings"])] if r["findings"] else [],
            subject=r["subject"] or "", sender=r["sender"] or "", sender_name=r["sender_name"] or "",
            received=datetime.fromisoformat(r["received"]) if r["received"] else None,
            fields=json.loads(r["fields"]) if r["fields"] else {},
            previews=json.loads(r["previews"]) if r["previews"] else {},
        )


@dataclass(frozen=True)
class HeldRow:
    mail_id: int
    note_id: str
    original: bytes
    opened_at: datetime
    closed_at: datetime | None
    outcome: str | None  # accepted | remanded | handled

    @classmethod
    def from_sql(cls, r: sqlite3.Row) -> HeldRow:
        return cls(r["mail_id"], r["note_id"], bytes(r["original"]), datetime.fromisoformat(r["opened_at"]),
                   datetime.fromisoformat(r["closed_at"]) if r["closed_at"] else None, r["outcome"])


@dataclass(frozen=True)
class ReplyRow:
    id: int
    mail_id: int
    message_id: str
    action: str
    recipients: list[str]
    data: bytes
    state: str
    attempts: int
    sending_at: datetime | None = None  # when the last attempt began (a 'sending' row: interrupted)


_PIECE = 1 << 20  # bytes of a mail compressed at a time


def compressed_copy(data: bytes) -> list[bytes]:
    """data zlib-compressed at level 1, as a mail is kept, in pieces written one by one into its
    blob: a 20 MB mail's compressed copy is never joined, nor copied whole by SQLite (zlib.compress
    held its output twice while joining it, the bound blob once more: ~45 MB at the peak)."""
    z = zlib.compressobj(1)
    view = memoryview(data)
    pieces = [z.compress(view[i:i + _PIECE]) for i in range(0, len(view), _PIECE)]
    pieces.append(z.flush())
    return pieces


class Store:
    def __init__(self, path: Path, *, _lock: threading.RLock | None = None):
        """The database at `path`, made or brought up to date."""
        self.path = path
        # Shared by the connections of one process to this database (sibling()), so that their
        # write transactions take turns here instead of in SQLite's busy handler, which sleeps.
        self.lock = _lock or threading.RLock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        # A commit survives a crash of the process at once; it is made to survive a crash of the
        # machine before each side effect outside the database (flush()): one fsync there instead
        # of one per commit (~0.5 ms each, 4 a mail).
        self.db.execute("PRAGMA synchronous=NORMAL")
        if _lock is None:  # a sibling finds the schema made
            self.db.executescript(SCHEMA)
            self._migrate()

    def sibling(self) -> Store:
        """Another connection to this database, for another thread (an SQLite connection stays
        with the thread that made it: call this on that thread); its writes take turns with ours."""
        return Store(self.path, _lock=self.lock)

    def _migrate(self) -> None:
        """Columns added after a database was first made."""
        have = {r["name"] for r in self.db.execute("PRAGMA table_info(mails)")}
        # received time (DOMAIN.md §5), requesting branch (§7), findings [[code, detail], ...]
        for column in ("received", "branch", "findings", "previews", "rules_version", "sender_name"):
            if column not in have:
                self.db.execute(f"ALTER TABLE mails ADD COLUMN {column} TEXT")
        if "sending_at" not in {r["name"] for r in self.db.execute("PRAGMA table_info(replies)")}:
            self.db.execute("ALTER TABLE replies ADD COLUMN sending_at TEXT")
        have = {r["name"] for r in self.db.execute("PRAGMA table_info(digests)")}
        for column in ("claimed_at", "claimed_by"):
            if column not in have:
                self.db.execute(f"ALTER TABLE digests ADD COLUMN {column} TEXT")

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def flush(self) -> None:
        """Every commit so far on disk, before a side effect outside the database (a reply or
        the digest sent, a MOVE, an APPEND): the write-ahead log is synced; what a checkpoint
        moved into the database file was synced by the checkpoint."""
        try:
            fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # ------------------------------------------------------------ mails

    def _one(self, sql: str, *args: object) -> MailRow | None:
        r = self.db.execute(sql, args).fetchone()
        return MailRow.from_sql(r) if r else None

    def by_ref(self, ref: MailRef) -> MailRow | None:
        return self._one("SELECT * FROM mails WHERE folder=? AND uidvalidity=? AND uid=?",
                         ref.folder, ref.uidvalidity, ref.uid)

    def by_sha(self, sha256: str) -> MailRow | None:
        return self._one("SELECT * FROM mails WHERE sha256=?", sha256)

    def get(self, mail_id: int) -> MailRow:
        row = self._one("SELECT * FROM mails WHERE id=?", mail_id)
        assert row is not None, mail_id
        return row

    def in_folder(self, folder: str, uidvalidity: int, uids: list[int]) -> dict[int, MailRow]:
        """The rows of these UIDs of the folder (only those: the folder's history is not read)."""
        out = {}
        for i in range(0, len(uids), 500):
            chunk = uids[i:i + 500]
            rows = self.db.execute(f"SELECT * FROM mails WHERE folder=? AND uidvalidity=? AND uid IN"
                                   f" ({','.join('?' * len(chunk))})", (folder, uidvalidity, *chunk))
            out.update({r["uid"]: MailRow.from_sql(r) for r in rows})
        return out

    def unfinished(self, folder: str) -> list[MailRow]:
        """Mails of this folder not yet filed, oldest first."""
        # the state as a literal: the partial index mails_unfinished serves only a query naming it
        rows = self.db.execute(f"SELECT * FROM mails WHERE folder=? AND state!='{MailState.FILED}' ORDER BY id", (folder,))
        return [MailRow.from_sql(r) for r in rows]

    def add_received(self, raw: RawMail, message_id: str | None, attempts: int = 0,
                     copy: list[bytes] | None = None) -> MailRow:
        """A new mail; `attempts`: processing attempts already begun (count_attempt's count);
        `copy`: compressed_copy(raw.data) if made already."""
        t = now_utc().isoformat()
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO mails (sha256, message_id, folder, uidvalidity, uid, internaldate, state, first_seen,"
                " updated, attempts) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (raw.sha256, message_id, raw.ref.folder, raw.ref.uidvalidity, raw.ref.uid,
                 _iso(raw.internaldate), MailState.RECEIVED, t, t, attempts),
            )
            self._event(db, cur.lastrowid, "received", f"{raw.ref.folder} uid {raw.ref.uid}")
            pieces = copy if copy is not None else compressed_copy(raw.data)
            kept = db.execute("INSERT OR IGNORE INTO originals (mail_id, data) VALUES (?, zeroblob(?))",
                              (cur.lastrowid, sum(map(len, pieces))))
            if kept.rowcount:
                with db.blobopen("originals", "data", cur.lastrowid) as blob:
                    for piece in pieces:
                        blob.write(piece)
        return self.get(cur.lastrowid)

    def original(self, mail_id: int) -> bytes | None:
        """The mail's bytes as received (None for a mail taken in before they were kept)."""
        r = self.db.execute("SELECT data FROM originals WHERE mail_id=?", (mail_id,)).fetchone()
        return zlib.decompress(r[0]) if r else None

    def relocate(self, mail_id: int, ref: MailRef, why: str) -> None:
        """The same mail now sits at another (folder, UIDVALIDITY, UID)."""
        with self.transaction() as db:
            db.execute("UPDATE mails SET folder=?, uidvalidity=?, uid=?, updated=? WHERE id=?",
                       (ref.folder, ref.uidvalidity, ref.uid, now_utc().isoformat(), mail_id))
            self._event(db, mail_id, "relocated", f"{why}: {ref.folder} uidvalidity {ref.uidvalidity} uid {ref.uid}")

    def count_attempt(self, mail_id: int) -> int:
        """Recorded before the work, so that a crash during it counts too (poison mail)."""
        with self.transaction() as db:
            db.execute("UPDATE mails SET attempts=attempts+1 WHERE id=?", (mail_id,))
        return self.get(mail_id).attempts

    def record_decision(self, mail_id: int, *, action: str, kind: str | None, code: str | None,
                        reasons: list[str], fields: dict[str, object], subject: str, sender: str,
                        message_id: str | None, target: str | None, data_version: str | None, detail: str,
                        reply: tuple[str, list[str], bytes] | None, received: datetime | None = None,
                        branch: str | None = None, findings: list[tuple[str, str]] | None = None,
                        ledger: LedgerLine | None = None, bounced: tuple[int, str] | None = None,
                        previews: dict[str, object] | None = None, rules_version: str | None = None,
                        sender_name: str = "") -> None:
        """The decision, its reply (message-id, recipients, bytes), the ledger line it writes and,
        for a bounce of one of the bot's replies, the event on the mail that reply answered
        (bounced: its id, the detail) — in one commit."""
        t = now_utc().isoformat()
        state = MailState.REPLY_QUEUED if reply else MailState.DECIDED
        with self.transaction() as db:
            db.execute(
                "UPDATE mails SET state=?, action=?, kind=?, code=?, reasons=?, fields=?, subject=?, sender=?,"
                " message_id=?, target=?, data_version=?, received=?, branch=?, findings=?, previews=?,"
                " rules_version=?, sender_name=?, updated=? WHERE id=?",
                (state, action, kind, code, json.dumps(reasons), json.dumps(fields, ensure_ascii=False, default=str),
                 subject, sender, message_id, target, data_version, _iso(received), branch,
                 json.dumps(findings or [], ensure_ascii=False),
                 json.dumps(previews, ensure_ascii=False) if previews is not None else None, rules_version,
                 sender_name, t, mail_id),
            )
            self._event(db, mail_id, f"decided {action}", detail)
            if reply:
                message_id, recipients, data = reply
                # A reply Message-ID is derived from the source mail: the same reply is never queued twice.
                db.execute(
                    "INSERT OR IGNORE INTO replies (mail_id, message_id, action, recipients, data, state, next_attempt)"
                    f" VALUES (?,?,?,?,?,'{SendState.QUEUED}',?)",
                    (mail_id, message_id, action, json.dumps(recipients), data, t),
                )
                self._event(db, mail_id, "reply queued", message_id)
            self._add_ledger_line(db, mail_id, ledger, t)
            if bounced is not None:
                self._event(db, bounced[0], "reply bounced", bounced[1])

    def _add_ledger_line(self, db: sqlite3.Connection, mail_id: int | None, line: LedgerLine | None, t: str) -> None:
        if line is not None:
            db.execute("INSERT OR IGNORE INTO ledger (key, mail_id, category, data, created_at) VALUES (?,?,?,?,?)",
                       (line.key, mail_id, line.category, line.to_json(), t))

    def requests_for(self, code: str) -> list[PastRequest]:
        """The decided requests of a customer code, oldest first (history.History)."""
        rows = self.db.execute(
            "SELECT m.kind, m.code, m.action, m.received, h.closed_at AS staff_at FROM mails m"
            " LEFT JOIN held h ON h.mail_id = m.id AND h.outcome IN ('accepted', 'remanded')"
            " WHERE m.code=? AND m.received IS NOT NULL AND m.action IS NOT NULL AND m.kind IS NOT NULL"
            " ORDER BY m.received, m.id", (code,))
        return [PastRequest(Kind(r["kind"]), r["code"], Action(r["action"]), datetime.fromisoformat(r["received"]),
                            datetime.fromisoformat(r["staff_at"]) if r["staff_at"] else None)
                for r in rows]

    def replies_to_sender_since(self, sender: str, since: datetime) -> int:
        """Replies queued for mails of this sender since `since` (the per-sender daily cap)."""
        if not sender:
            return 0
        return self.db.execute(
            "SELECT COUNT(*) FROM events e JOIN mails m ON m.id = e.mail_id"
            " WHERE e.event='reply queued' AND m.sender=? AND e.at>=?",
            (sender, since.astimezone(timezone.utc).isoformat())).fetchone()[0]

    def replies_sent_since(self, since: datetime) -> int:
        """Replies sent since `since` (the global circuit breaker)."""
        return self.db.execute("SELECT COUNT(*) FROM replies WHERE state=? AND sent_at>=?",
                               (SendState.SENT, since.astimezone(timezone.utc).isoformat())).fetchone()[0]

    def set_state(self, mail_id: int, state: MailState, event: str, detail: str = "", **columns: object) -> None:
        """A move of the state machine (states.MAIL_TRANSITIONS), with its event; any other is a bug."""
        sets = ", ".join(f"{k}=?" for k in columns)
        with self.transaction() as db:
            check_transition(db.execute("SELECT state FROM mails WHERE id=?", (mail_id,)).fetchone()[0], state)
            db.execute(f"UPDATE mails SET state=?, updated=?{', ' + sets if sets else ''} WHERE id=?",
                       (state, now_utc().isoformat(), *columns.values(), mail_id))
            self._event(db, mail_id, event, detail)

    # ------------------------------------------------------------ held mails and staff decisions

    def set_filed(self, filed: list[tuple[int, str]]) -> None:
        """(mail id, folder) of mails just moved to their folder: one transaction for all."""
        t = now_utc().isoformat()
        with self.transaction() as db:
            for mail_id, folder in filed:
                db.execute("UPDATE mails SET state=?, updated=? WHERE id=?", (MailState.FILED, t, mail_id))
                self._event(db, mail_id, "filed", folder)

    def notes_begun(self, mail_ids: list[int]) -> set[int]:
        """Records that the held notes of these mails are about to be appended (one transaction);
        returns those whose note was begun before: an attempt cut short may have appended it."""
        if not mail_ids:
            return set()
        before = set()
        with self.transaction() as db:
            for mail_id in mail_ids:
                if db.execute("SELECT 1 FROM events WHERE mail_id=? AND event='held note begun'", (mail_id,)).fetchone():
                    before.add(mail_id)
                else:
                    self._event(db, mail_id, "held note begun")
        return before

    def open_held(self, mail_id: int, note_id: str, original: bytes) -> None:
        """The note is in the held folder: the item is open until staff decide (idempotent)."""
        with self.transaction() as db:
            cur = db.execute("INSERT OR IGNORE INTO held (mail_id, note_id, original, opened_at) VALUES (?,?,?,?)",
                             (mail_id, note_id, original, now_utc().isoformat()))
            if cur.rowcount:
                self._event(db, mail_id, "held note filed", note_id)

    def held_item(self, sha256: str) -> tuple[MailRow, HeldRow] | None:
        r = self.db.execute("SELECT h.* FROM held h JOIN mails m ON m.id = h.mail_id WHERE m.sha256=?",
                            (sha256,)).fetchone()
        return (self.get(r["mail_id"]), HeldRow.from_sql(r)) if r else None

    def open_held_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM held WHERE closed_at IS NULL").fetchone()[0]

    def open_held_items(self) -> list[tuple[MailRow, HeldRow]]:
        """Held items staff have not decided yet, oldest first."""
        rows = self.db.execute("SELECT * FROM held WHERE closed_at IS NULL ORDER BY opened_at, mail_id")
        return [(self.get(r["mail_id"]), HeldRow.from_sql(r)) for r in rows.fetchall()]

    def staff_decision(self, mail_id: int, outcome: str, note: MailRef, target: str,
                       reply: tuple[str, str, list[str], bytes] | None, ledger: LedgerLine | None = None) -> None:
        """Staff moved the note (now at `note`): the item is closed, and the mail row follows the
        note so that it is answered (reply: message-id, action, recipients, bytes) and filed to
        `target` like any decided mail, and an acceptance writes its ledger line.  One commit: a
        staff decision is recorded exactly once."""
        t = now_utc().isoformat()
        state = MailState.REPLY_QUEUED if reply else (MailState.FILED if note.folder == target else MailState.DECIDED)
        with self.transaction() as db:
            cur = db.execute("UPDATE held SET closed_at=?, outcome=?, decided_in=? WHERE mail_id=? AND closed_at IS NULL",
                             (t, outcome, note.folder, mail_id))
            if not cur.rowcount:
                return
            db.execute("UPDATE mails SET folder=?, uidvalidity=?, uid=?, state=?, target=?, updated=? WHERE id=?",
                       (note.folder, note.uidvalidity, note.uid, state, target, t, mail_id))
            if outcome in STAFF_ACTIONS:  # the staff's decision replaces the bot's hold (DOMAIN.md §9)
                db.execute("UPDATE mails SET action=? WHERE id=?", (STAFF_ACTIONS[outcome].value, mail_id))
            self._event(db, mail_id, f"staff {outcome}", f"note moved to {note.folder}")
            if reply:
                message_id, action, recipients, data = reply
                db.execute(
                    "INSERT OR IGNORE INTO replies (mail_id, message_id, action, recipients, data, state, next_attempt)"
                    f" VALUES (?,?,?,?,?,'{SendState.QUEUED}',?)", (mail_id, message_id, action, json.dumps(recipients), data, t))
                self._event(db, mail_id, "reply queued", message_id)
            if outcome == "accepted":
                self._add_ledger_line(db, mail_id, ledger, t)

    def set_status(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO status (key, value, at) VALUES (?,?,?) ON CONFLICT (key) DO UPDATE"
                       " SET value=excluded.value, at=excluded.at", (key, value, now_utc().isoformat()))

    def status(self, key: str) -> tuple[str, datetime] | None:
        """(value, when) of a status key, None when never set."""
        r = self.db.execute("SELECT value, at FROM status WHERE key=?", (key,)).fetchone()
        return (r["value"], datetime.fromisoformat(r["at"])) if r else None

    def cursor(self, folder: str, uidvalidity: int) -> int:
        """The last UID looked at in a folder (0 after a UIDVALIDITY change)."""
        r = self.db.execute("SELECT * FROM cursors WHERE folder=?", (folder,)).fetchone()
        return r["last_uid"] if r and r["uidvalidity"] == uidvalidity else 0

    def set_cursor(self, folder: str, uidvalidity: int, last_uid: int) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO cursors (folder, uidvalidity, last_uid) VALUES (?,?,?) ON CONFLICT (folder)"
                       " DO UPDATE SET uidvalidity=excluded.uidvalidity, last_uid=excluded.last_uid",
                       (folder, uidvalidity, last_uid))

    # ------------------------------------------------------------ replies

    def due_replies(self, at: datetime) -> list[ReplyRow]:
        rows = self.db.execute(
            f"SELECT * FROM replies WHERE state IN ('{SendState.QUEUED}', '{SendState.SENDING}') AND next_attempt<=? ORDER BY id",
            (at.isoformat(),))
        return [ReplyRow(r["id"], r["mail_id"], r["message_id"], r["action"], json.loads(r["recipients"]),
                         r["data"], r["state"], r["attempts"],
                         datetime.fromisoformat(r["sending_at"]) if r["sending_at"] else None) for r in rows]

    def mail_of_reply(self, message_id: str) -> int | None:
        """The mail a reply (by its Message-ID) answered."""
        r = self.db.execute("SELECT mail_id FROM replies WHERE message_id=?", (message_id,)).fetchone()
        return r[0] if r else None

    def made_reply(self, message_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM replies WHERE message_id=?", (message_id,)).fetchone() is not None

    def pending_reply_count(self, mail_id: int) -> int:
        return self.db.execute(f"SELECT COUNT(*) FROM replies WHERE mail_id=? AND state IN ('{SendState.QUEUED}','{SendState.SENDING}')",
                               (mail_id,)).fetchone()[0]

    def reply_sending(self, reply: ReplyRow) -> None:
        # Marked before the SMTP transaction: a crash leaves it 'sending', and the next process
        # looks for its copy ([smtp] copy_to_mailbox) or sends it again, never loses it.
        with self.transaction() as db:
            db.execute(f"UPDATE replies SET state='{SendState.SENDING}', attempts=attempts+1, sending_at=? WHERE id=?",
                       (now_utc().isoformat(), reply.id))
        self.flush()

    def reply_sent(self, reply: ReplyRow, how: str = "") -> None:
        t = now_utc().isoformat()
        with self.transaction() as db:
            db.execute(f"UPDATE replies SET state='{SendState.SENT}', sent_at=?, last_error=NULL WHERE id=?", (t, reply.id))
            left = db.execute(f"SELECT COUNT(*) FROM replies WHERE mail_id=? AND state!='{SendState.SENT}'",
                              (reply.mail_id,)).fetchone()[0]
            if not left:
                db.execute(f"UPDATE mails SET state='{MailState.SENT}', updated=? WHERE id=? AND state='{MailState.REPLY_QUEUED}'",
                           (t, reply.mail_id))
            self._event(db, reply.mail_id, "reply sent",
                        f"{reply.message_id} to {', '.join(reply.recipients)}" + (f" ({how})" if how else ""))

    def reply_failed(self, reply: ReplyRow, error: str, retry_at: datetime | None, began: bool = True) -> None:
        """A temporary failure is retried at retry_at; None means given up (permanent or too many).
        `began`: its transaction had begun (reply_sending counted the attempt); else (the relay
        refused the connection or the login) the attempt is counted here."""
        more = 0 if began else 1
        with self.transaction() as db:
            if retry_at is None:
                db.execute(f"UPDATE replies SET state='{SendState.FAILED}', last_error=?, attempts=attempts+? WHERE id=?",
                           (error, more, reply.id))
                self._event(db, reply.mail_id, "reply failed", error)
            else:
                db.execute(f"UPDATE replies SET state='{SendState.QUEUED}', last_error=?, next_attempt=?, attempts=attempts+? "
                           "WHERE id=?", (error, retry_at.isoformat(), more, reply.id))
                self._event(db, reply.mail_id, "reply retry", f"{error}; next at {retry_at.isoformat()}")

    def reply_in_doubt(self, reply: ReplyRow, error: str, look_at: datetime) -> None:
        """The answer to its DATA was lost: left 'sending' (fate unknown), looked at again then."""
        with self.transaction() as db:
            db.execute("UPDATE replies SET last_error=?, next_attempt=? WHERE id=?",
                       (error, look_at.isoformat(), reply.id))
            self._event(db, reply.mail_id, "reply in doubt", f"{error}; its copy is looked for")

    # ------------------------------------------------------------ audit trail

    def _event(self, db: sqlite3.Connection, mail_id: int | None, event: str, detail: str = "") -> None:
        db.execute("INSERT INTO events (mail_id, at, event, detail) VALUES (?,?,?,?)",
                   (mail_id, now_utc().isoformat(), event, detail))

    def event(self, mail_id: int | None, event: str, detail: str = "") -> None:
        with self.transaction() as db:
            self._event(db, mail_id, event, detail)

    def events(self, mail_id: int) -> list[tuple[str, str, str]]:
        return [(r["at"], r["event"], r["detail"]) for r in self.event_rows(mail_id)]

    # ------------------------------------------------------------ what the reports read

    def decided_between(self, lo: str, hi: str) -> list[sqlite3.Row]:
        """Decided mails received (else first seen) from `lo` to before `hi` (ISO dates), by id."""
        return self.db.execute(
            "SELECT * FROM mails WHERE action IS NOT NULL AND COALESCE(received, first_seen) >= ?"
            " AND COALESCE(received, first_seen) < ? ORDER BY id", (lo, hi)).fetchall()

    def events_between(self, event: str, lo: str, hi: str) -> list[sqlite3.Row]:
        """(mail_id, at, detail) of the events named `event` from `lo` to before `hi`."""
        return self.db.execute("SELECT mail_id, at, detail FROM events WHERE event=? AND at >= ? AND at < ?"
                               " ORDER BY id", (event, lo, hi)).fetchall()

    def held_rows_open_after(self, since: str) -> list[sqlite3.Row]:
        """Held items still open, or closed after `since`: the mail's columns, h_opened, h_closed,
        h_outcome, h_folder (where staff moved the note)."""
        return self.db.execute(
            "SELECT m.*, h.opened_at AS h_opened, h.closed_at AS h_closed, h.outcome AS h_outcome,"
            " h.decided_in AS h_folder FROM held h JOIN mails m ON m.id = h.mail_id"
            " WHERE h.closed_at IS NULL OR h.closed_at >= ?", (since,)).fetchall()

    def accepted_since(self, kind: Kind, since: str) -> list[sqlite3.Row]:
        """Mails of `kind` accepted (by the bot, or by staff from the held folder) from `since`
        (ISO) on: the mail's columns with accepted_at (when staff accepted it, else its received).
        The times keep their offsets: compared as text they are right to within a day."""
        return self.db.execute(
            "SELECT m.*, COALESCE(h.closed_at, m.received) AS accepted_at FROM mails m"
            " LEFT JOIN held h ON h.mail_id = m.id AND h.outcome = 'accepted'"
            " WHERE m.kind=? AND m.action=? AND m.received IS NOT NULL AND COALESCE(h.closed_at, m.received) >= ?"
            " ORDER BY m.id", (kind.value, Action.ACCEPT.value, since)).fetchall()

    def unfinished_with_action(self, action: Action) -> list[sqlite3.Row]:
        """Mails decided `action` that are neither filed nor gone (e.g. deferred ones)."""
        return self.db.execute("SELECT * FROM mails WHERE action=? AND state NOT IN (?, ?)",
                               (action.value, MailState.FILED, MailState.VANISHED)).fetchall()

    def reply_problem_rows(self, mail_ids: list[int]) -> list[sqlite3.Row]:
        """Replies tried more than once, failed for good, or of `mail_ids`: the mail's columns
        with r_message_id, r_state, r_attempts, r_error, r_sent_at."""
        return self.db.execute(
            "SELECT m.*, r.message_id AS r_message_id, r.state AS r_state, r.attempts AS r_attempts,"
            " r.last_error AS r_error, r.sent_at AS r_sent_at FROM replies r JOIN mails m ON m.id = r.mail_id"
            " WHERE r.attempts > 1 OR r.state = ? OR r.mail_id IN (SELECT value FROM json_each(?))"
            " ORDER BY r.id", (SendState.FAILED, json.dumps(sorted(mail_ids)))).fetchall()

    def ledger_lines_unshared(self, before: str) -> list[LedgerLine]:
        """Ledger lines recorded before `before` (UTC ISO) and in no share yet, oldest first."""
        rows = self.db.execute("SELECT data FROM ledger WHERE share_day IS NULL AND created_at < ? ORDER BY id",
                               (before,)).fetchall()
        return [LedgerLine.from_json(r[0]) for r in rows]

    def ledger_lines_of_share(self, day: str) -> list[LedgerLine]:
        rows = self.db.execute("SELECT data FROM ledger WHERE share_day=? ORDER BY id", (day,)).fetchall()
        return [LedgerLine.from_json(r[0]) for r in rows]

    def ledger_has_key(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM ledger WHERE key=?", (key,)).fetchone() is not None

    def share_ledger_lines(self, db: sqlite3.Connection, day: str, lines: list[LedgerLine]) -> None:
        """Within the caller's commit (the share queued): `lines` are the share of `day`; those not
        in the ledger yet (強制解約) are added."""
        t = now_utc().isoformat()
        for line in lines:
            self._add_ledger_line(db, None, line, t)
            db.execute("UPDATE ledger SET share_day=? WHERE key=? AND share_day IS NULL", (day, line.key))

    def reply_trouble(self, since: datetime) -> tuple[int, int]:
        """(replies given up whose last attempt began after `since`, replies being retried)."""
        r = self.db.execute(f"SELECT SUM(state='{SendState.FAILED}' AND COALESCE(sending_at, next_attempt) >= ?),"
                            f" SUM(state='{SendState.QUEUED}' AND attempts>0) FROM replies",
                            (since.astimezone(timezone.utc).isoformat(),)).fetchone()
        return r[0] or 0, r[1] or 0

    def once_trouble(self, table: str) -> list[tuple[str, str, str | None]]:
        """(day, state, last error) of a once-only table's mails that failed or are being retried."""
        assert table in ("digests", "ledger_shares")
        return [tuple(r) for r in self.db.execute(
            f"SELECT day, state, last_error FROM {table} WHERE state='{SendState.FAILED}'"
            f" OR (state='{SendState.QUEUED}' AND attempts>0) ORDER BY day")]

    def first_seen(self) -> str | None:
        """When the first mail was taken in (ISO), None before any."""
        return self.db.execute("SELECT MIN(first_seen) FROM mails").fetchone()[0]

    def mail_row(self, mail_id: int) -> sqlite3.Row:
        return self.db.execute("SELECT * FROM mails WHERE id=?", (mail_id,)).fetchone()

    def mail_rows_with_code(self, code: str) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM mails WHERE code=? ORDER BY id", (code,)).fetchall()

    def mail_rows_with_message_id(self, message_id: str) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM mails WHERE message_id=? ORDER BY id", (message_id,)).fetchall()

    def event_rows(self, mail_id: int) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM events WHERE mail_id=? ORDER BY id", (mail_id,)).fetchall()

    def reply_rows(self, mail_id: int) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM replies WHERE mail_id=? ORDER BY id", (mail_id,)).fetchall()

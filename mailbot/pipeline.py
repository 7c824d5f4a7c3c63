"""One mail through every stage, and the poll cycle with its state transitions around them.

    evaluate():  bytes → message → classify → extract → check → decide     (pure, no side effects)
    Bot.poll():  mailbox → record → evaluate → reply queued → sent → filed  (each step committed)

`mailbot check` uses evaluate() alone; `mailbot poll`/`run` use Bot.poll().
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from mailbot.checks import CheckContext, content_checks, gate_checks, run_checks
from mailbot.checks.history import cancellation_fields
from mailbot.checks.reference import branch_name, termination_fields
from mailbot.classify import classify_mail
from mailbot.config import Settings
from mailbot.decide import decide, decide_by_staff, overrule
from mailbot.extract import (
    extract,
    read_form,
    required_form,
    stated_child_unit_purpose,
    stated_units,
)
from mailbot.forms.model import PdfReading
from mailbot.logs import log_failure
from mailbot.mailbox import Mailbox, MailboxError, MailboxUnreachable
from mailbot.message import UnreadableMail, parse_mail
from mailbot.model import (
    Action,
    Classification,
    Decision,
    Finding,
    Kind,
    Mail,
    RawMail,
    Request,
)
from mailbot.record.history import History
from mailbot.record.ledger import AcceptedRequest, LedgerLine, ledger_line
from mailbot.record.states import MailState, SendState
from mailbot.record.store import HeldRow, MailRow, ReplyRow, Store, compressed_copy
from mailbot.reference.calendar import business_calendar
from mailbot.reference.data import ReferenceData
from mailbot.reply.note import (
    HELD_HEADER,
    NOTE_HISTORY,
    EarlierMail,
    NoteFacts,
    build_note,
    held_original_sha,
    returned_notice,
)
from mailbot.reply.render import (
    Reply,
    ReplySettings,
    build_reply,
    next_steps,
    unanswerable,
)
from mailbot.reply.send import Outcome, SendResult, Transport
from mailbot.rules import load_rules, reasons, rules_version
from mailbot.text import TOKYO

log = logging.getLogger("mailbot")
# What a server says when a message is bigger than it takes (RFC 7889 TOOBIG, Dovecot's and
# Exchange's wording).
_TOO_BIG = ("[TOOBIG]", "[LIMIT]", "too large", "too big", "exceeds the maximum")
POLL_OK = "poll ok"  # the status key of the last successful poll (`mailbot health`, the watchdog)

# Mails are decided in chunks (at most this many, or this many bytes); each chunk's forms are read
# in parallel, one sandboxed reader per core, while the chunks before it are decided, answered and
# filed (up to _READ_AHEAD chunks ahead, and no more than _CHUNK_BYTES of mail in hand).
_CHUNK_MAILS = 16
_CHUNK_BYTES = 16 * 2**20
_READ_AHEAD = 2  # chunks whose forms are being read while one is decided
_PDF_WORKERS = os.cpu_count() or 2
# A failed send waits _RETRY_BASE, doubling up to _RETRY_CAP, before the next attempt.
_RETRY_BASE = timedelta(minutes=1)
_RETRY_CAP = timedelta(hours=1)


@dataclass(frozen=True)
class Evaluation:
    """Everything the pipeline concluded about one mail."""

    mail: Mail | None  # None: unreadable
    classification: Classification
    decision: Decision
    fields: dict[str, object] = field(default_factory=dict)
    received: datetime | None = None
    data_version: str | None = None  # the UNIS extract the checks consulted
    branch: str | None = None  # the requesting branch (DOMAIN.md §7), where known


def received_time(mail: Mail, internaldate: datetime | None) -> datetime:
    """IMAP INTERNALDATE, else the topmost Received:, else Date:, in Asia/Tokyo (DOMAIN.md §5)."""
    t = internaldate or mail.received_at or mail.date or datetime.now(timezone.utc)
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(TOKYO)


@dataclass(frozen=True)
class Assessment:
    """A mail read, classified and gate-checked, once: where the rest of its evaluation starts.

    `form` is the PDF its content checks will read (bytes, form name): None when the gate checks
    stopped (nothing of an outsider's or an automatic mail is opened) or no form is required."""

    mail: Mail | None  # None: unreadable
    request: Request | None
    gate_findings: tuple[Finding, ...]
    form: tuple[bytes, str] | None = None

    @property
    def stopped(self) -> bool:
        return any(f.stop for f in self.gate_findings)


def assess(data: bytes, internaldate: datetime | None, settings: Settings, history: History | None = None,
           now: datetime | None = None) -> Assessment:
    """bytes → Mail → Request (classified) → gate findings, and the form the checks will need."""
    try:
        mail = parse_mail(data)
    except UnreadableMail as e:
        return Assessment(None, None, (Finding("MAIL_UNREADABLE", e.reason, stop=True),))
    request = Request(mail=mail, classification=classify_mail(mail, settings.rules_dir),
                      received=received_time(mail, internaldate))
    gate = tuple(run_checks(request, _context(settings, now, None, history), gate_checks()))
    if any(f.stop for f in gate):
        return Assessment(mail, request, gate)
    found = required_form(request, settings.rules_dir)
    return Assessment(mail, request, gate, (found[0].data, found[1]) if found else None)


def conclude(assessment: Assessment, reading: PdfReading | None, settings: Settings, now: datetime | None = None,
             reference: ReferenceData | None = None, history: History | None = None) -> Evaluation:
    """Extract, run the content checks and decide.  Without `reference` (or with parts of it
    missing) the checks that need the UNIS extract or the branch directory are skipped; without
    `history` those that need earlier decisions (DUPLICATE_REQUEST, the bot's own order day)."""
    request = assessment.request
    findings = list(assessment.gate_findings)
    if request is None:
        return Evaluation(None, Classification(Kind.UNKNOWN, None, ""), decide(findings, settings.rules_dir))
    ctx = _context(settings, now, reference, history)
    if not assessment.stopped:
        request = extract(request, settings.rules_dir, reading)
        findings += run_checks(request, ctx, content_checks())
    decision = decide(findings, settings.rules_dir)
    # Every mail, whatever its kind: one sender's mail is one branch's in the digest (DOMAIN.md §7).
    branch = branch_name(request, ctx)
    fields = reported_fields(request, settings.rules_dir)
    if not assessment.stopped:  # what the reply states beyond the findings: the cost, the UNIS step
        for name, more in (("cancellation", cancellation_fields(request, ctx)),
                           ("termination", termination_fields(request, ctx))):
            if more is not None:
                fields[name] = more
    return Evaluation(assessment.mail, request.classification, decision, fields, request.received,
                      reference.version if reference else None, branch)


def evaluate(data: bytes, internaldate: datetime | None, settings: Settings, now: datetime | None = None,
             reference: ReferenceData | None = None, history: History | None = None) -> Evaluation:
    """bytes → Decision, with no side effects: assess, read the form, conclude."""
    assessment = assess(data, internaldate, settings, history, now)
    reading = read_form(*assessment.form, settings) if assessment.form else None
    return conclude(assessment, reading, settings, now, reference, history)


def _context(settings: Settings, now: datetime | None, reference: ReferenceData | None,
             history: History | None) -> CheckContext:
    return CheckContext(rules_dir=settings.rules_dir, internal_domains=settings.internal_domains,
                        own_addresses=(settings.reply_from.lower(),), now=now or datetime.now(TOKYO),
                        unis=reference.unis if reference else None,
                        branches=reference.branches if reference else None,
                        calendar=reference.calendar if reference else None, history=history)


def reported_fields(request: Request, rules_dir) -> dict[str, object]:
    """What `check --json` shows and the state database keeps: body items and the form as read;
    for an order, the routers it states (親N台、子M台) and what a child-unit order is for."""
    fields: dict[str, object] = {"body": dict(request.body_items)}
    reading = request.form_reading
    if reading is not None:
        fields["pdf"] = {"status": reading.status.value, "shape": reading.shape, "detail": reading.detail}
        fields["form"] = dict(reading.fields)
    if request.classification.kind is Kind.EQUIPMENT_ORDER:
        units = stated_units(request, rules_dir)
        if units is not None:
            fields["units"] = units
        if request.child_unit_order:
            fields["child_unit"] = {"purpose": stated_child_unit_purpose(request, rules_dir)}
    return fields


def target_folder(decision: Decision, settings: Settings) -> str | None:
    """The decision's folder, unless a finding's rule names another (OWN_COPY: the sent folder)."""
    folders = settings.folders
    table = reasons(settings.rules_dir)
    for finding in decision.findings:
        if table[finding.code].folder:
            return getattr(folders, table[finding.code].folder)
    return {Action.ACCEPT: folders.processed, Action.REMAND: folders.processed, Action.HOLD: folders.held,
            Action.IGNORE: folders.ignored}.get(decision.action)


@dataclass
class _Chunk:
    """Fetched mails, assessed, with their forms being read."""

    mails: list[RawMail]
    assessed: dict[str, Assessment]  # by the SHA-256 of the mail
    readings: dict[str, Future[PdfReading]]  # by the SHA-256 of the mail (one read per distinct PDF)
    copies: dict[str, Future[list[bytes]]] = field(default_factory=dict)  # the kept copies, being made

    @property
    def size(self) -> int:
        return sum(len(raw.data) for raw in self.mails)

    def ready(self, raw: RawMail) -> bool:
        """Whether deciding `raw` now waits on no reader (no form, or its form already read)."""
        ahead = self.readings.get(raw.sha256)
        return ahead is None or ahead.done()

    def code(self, raw: RawMail) -> str | None:
        assessment = self.assessed.get(raw.sha256)
        request = assessment.request if assessment is not None else None
        return request.classification.code if request is not None else None

    def order(self) -> Iterator[RawMail]:
        """The chunk's mails in the order to decide them: arrival order, except that a mail whose
        form is still being read does not hold up later mails of other customer codes (a
        decision consults only its own code's history; two mails of one code keep their order)."""
        pending = list(self.mails)
        while pending:
            waiting_codes: set[str | None] = set()
            for raw in pending:
                code = self.code(raw)
                if self.ready(raw) and (code is None or code not in waiting_codes):
                    break
                waiting_codes.add(code if code is not None else f"?{raw.sha256}")
            else:  # nothing can go without waiting: wait for the first form due, in order
                raw = pending[0]
            pending.remove(raw)
            yield raw

    def reading(self, raw: RawMail, assessment: Assessment, settings: Settings) -> PdfReading | None:
        """The mail's form as read ahead (or now, for a mail assessed late), None without one."""
        if assessment.form is None:
            return None
        ahead = self.readings.get(raw.sha256)
        return ahead.result() if ahead is not None else read_form(*assessment.form, settings)

    def copy(self, raw: RawMail) -> list[bytes] | None:
        """The mail's compressed copy as made ahead (None: the store makes it)."""
        ahead = self.copies.get(raw.sha256)
        return ahead.result() if ahead is not None else None


class _Sender:
    """Sends a poll cycle's replies on a thread of its own, with its own connection to the store:
    the waits for the relay's answers (and the sync before each transaction) overlap the next
    chunk's decisions.  One batch at a time, in order; the transport is used by this thread only."""

    # While the sender runs Python (aiosmtplib, its commits), the main thread coming back from
    # SQLite or a socket waits for the GIL up to the switch interval: 1 ms instead of 5 for the
    # cycle (the everyday mix's 500 mails: median 5.9 s instead of 6.8 s in four pairs of runs).
    _SWITCH_INTERVAL = 0.001

    def __init__(self, store: Store):
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, self._SWITCH_INTERVAL))
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sender")
        self._store = self._pool.submit(store.sibling)  # made on the thread that uses it
        self._busy: Future[None] | None = None

    def start(self, work: Callable[[Store], None]) -> None:
        """Begin `work(store)` once the batch before it is done."""
        self.wait()
        self._busy = self._pool.submit(lambda: work(self._store.result()))

    def wait(self) -> None:
        """The batch in hand is sent and recorded (its exception, if it failed, raised here)."""
        busy, self._busy = self._busy, None
        if busy is not None:
            busy.result()

    def close(self, transport: Transport) -> None:
        """After the batch in hand: the transport's session ended, the connection closed."""
        try:
            self.wait()
        finally:
            try:
                self._pool.submit(self._end, transport).result()
                self._pool.shutdown()
            finally:
                sys.setswitchinterval(self._switch_interval)

    def _end(self, transport: Transport) -> None:
        try:
            transport.close()
        finally:
            if self._store.exception() is None:
                self._store.result().close()


@dataclass
class CycleReport:
    """What one poll cycle did, for the command line and the logs."""

    # subject, the evaluation without its mail and fields, folder
    handled: list[tuple[str, Evaluation | None, str | None]] = field(default_factory=list)
    sent: int = 0
    send_failures: int = 0
    filed: int = 0
    errors: list[str] = field(default_factory=list)
    staff: list[tuple[str, str]] = field(default_factory=list)  # (subject, outcome) of staff decisions taken up
    # Replies are sent after each chunk of mail and at the end: each is tried once a cycle, and
    # a relay that could not be reached is not tried again until the next cycle.
    tried: set[int] = field(default_factory=set)
    relay_down: bool = False
    breaker_open: bool = False


class Bot:
    def __init__(self, settings: Settings, mailbox: Mailbox, transport: Transport, store: Store,
                 retry_base: timedelta = _RETRY_BASE, reference: ReferenceData | None = None):
        self.settings = settings
        # Shared across cycles by `run` (refreshed at each poll); else built at the first poll.
        self.reference = reference
        self.retry_base = retry_base  # first wait after a failed send; doubles up to _RETRY_CAP
        self.mailbox = mailbox
        self.transport = transport
        self.store = store
        self.reply_settings = ReplySettings(
            sender=settings.reply_from, internal_domains=settings.internal_domains,
            acknowledge_held=settings.acknowledge_held, templates_dir=settings.templates_dir,
            rules_dir=settings.rules_dir, sender_name=settings.reply_from_name)

    @property
    def inbox(self) -> str:
        return self.settings.imap.inbox if self.settings.imap else "INBOX"

    # ------------------------------------------------------------ the cycle

    def poll(self, stop: callable = lambda: False) -> CycleReport:
        """One cycle: take in new mail, decide it, send replies, file what is finished.

        `stop()` is asked between mails: the mail in hand is always finished first.
        """
        report = CycleReport()
        if self.reference is None:
            self.reference = ReferenceData.load(self.settings)
        else:
            self.reference.refresh()
        report.errors.extend(f"reference data: {e}" for e in self.reference.errors)
        self.mailbox.ensure_folders(self.settings.folders.all)
        self._sender = _Sender(self.store)
        try:
            self._take_in(report, stop)
            if not self.settings.shadow:  # a trial beside staff: decide and record, touch nothing else
                self._staff_decisions(report)
                self._send_replies(report)
                self._file(report)
        finally:
            self._sender.close(self.transport)  # and with it the SMTP session the chunks shared
        self.store.set_status(POLL_OK, f"{len(report.handled)} decided, {report.sent} sent, {report.filed} filed")
        return report

    def _take_in(self, report: CycleReport, stop: callable) -> None:
        validity = self.mailbox.uidvalidity(self.inbox)
        present = self.mailbox.list_uids(self.inbox)
        known = self.store.in_folder(self.inbox, validity, present)
        version = self.reference.version if self.reference else None
        # A deferred mail waits for another UNIS extract: checked again only when one came.
        wanted = [uid for uid in present if uid not in known or known[uid].state == MailState.RECEIVED
                  or (known[uid].state == MailState.DECIDED and known[uid].action == Action.DEFER.value
                      and known[uid].data_version != version)]
        # Pipelined: while one chunk is decided, answered and filed, the forms of the next
        # _READ_AHEAD chunks are being read.
        # zlib compresses without the GIL: the copies kept of the mails are made beside the main thread.
        with (ThreadPoolExecutor(max_workers=_PDF_WORKERS, thread_name_prefix="pdf-reader") as pool,
              ThreadPoolExecutor(max_workers=1, thread_name_prefix="compressor") as compressor):
            pending: deque[_Chunk] = deque()
            chunk: list[RawMail] = []
            size = 0
            for raw in self.mailbox.fetch(self.inbox, wanted):
                chunk.append(raw)
                size += len(raw.data)
                if len(chunk) >= _CHUNK_MAILS or size >= _CHUNK_BYTES:
                    # A big chunk (a mail of many megabytes) is parsed with nothing else in hand.
                    while size >= _CHUNK_BYTES and pending:
                        if self._finish_chunk(pending.popleft(), report, stop):
                            return
                    pending.append(self._start_chunk(chunk, pool, compressor))
                    chunk, size = [], 0
                    # Read ahead by count, and by bytes: big mails are decided before more come in.
                    while len(pending) > _READ_AHEAD or (len(pending) > 1 and sum(
                            c.size for c in pending) > _CHUNK_BYTES):
                        if self._finish_chunk(pending.popleft(), report, stop):
                            return
            if chunk:
                pending.append(self._start_chunk(chunk, pool, compressor))
            while pending:
                if self._finish_chunk(pending.popleft(), report, stop):
                    return
        self._forget_vanished(set(present), validity)

    def _start_chunk(self, chunk: list[RawMail], pool: ThreadPoolExecutor,
                     compressor: ThreadPoolExecutor) -> _Chunk:
        """Assess a few fetched mails (parsed, classified, gate-checked: once) and start reading
        the forms their checks will need, each in a sandbox of its own, one per core, and making
        the compressed copies they are kept as.  A mail whose assessment fails is assessed again
        by `_decide`, under its attempt count."""
        assessed: dict[str, Assessment] = {}
        jobs: dict[str, Future[PdfReading]] = {}
        by_pdf: dict[str, Future[PdfReading]] = {}  # the same PDF in two mails is read once
        copies = {raw.sha256: compressor.submit(compressed_copy, raw.data) for raw in chunk}
        for raw in chunk:
            try:
                assessment = assess(raw.data, raw.internaldate, self.settings, self.store)
            except Exception:  # noqa: BLE001 - a bug: _decide meets it again and counts it
                continue
            assessed[raw.sha256] = assessment
            if assessment.form is not None:
                digest = hashlib.sha256(assessment.form[0]).hexdigest()
                if digest not in by_pdf:
                    by_pdf[digest] = pool.submit(read_form, *assessment.form, self.settings)
                jobs[raw.sha256] = by_pdf[digest]
        return _Chunk(chunk, assessed, jobs, copies)

    def _finish_chunk(self, c: _Chunk, report: CycleReport, stop: callable) -> bool:
        """Decide the chunk's mails once their forms are read, then send their replies and file
        them while the readers work on the next chunk's forms; True when asked to stop."""
        for raw in c.order():
            self._take(raw, report, c)
            if stop():
                return True
        if not self.settings.shadow:
            self._send_replies(report, more_to_come=True)
            self._file(report, folders=(self.inbox,), in_hand={raw.sha256: raw.data for raw in c.mails})
        return False

    def _take(self, raw: RawMail, report: CycleReport, chunk: _Chunk) -> None:
        row = self.store.by_ref(raw.ref) or self.store.by_sha(raw.sha256)
        if row is None:
            # recorded with its first attempt counted: one commit before the work, not two
            self._decide(self.store.add_received(raw, None, attempts=1, copy=chunk.copy(raw)), raw, report, chunk,
                         counted=True)
            return
        elif row.ref != raw.ref:
            # Same bytes at a new place: the UIDVALIDITY changed, or the server delivered a copy.
            if row.state == MailState.FILED:
                self.store.event(row.id, "copy seen again", f"uid {raw.ref.uid}; filed like the first")
                self.mailbox.move(raw.ref, self._destination(row.target or self.settings.folders.held))
                return
            self.store.relocate(row.id, raw.ref, "UIDVALIDITY changed or copy delivered")
            row = self.store.get(row.id)
        if row.state == MailState.RECEIVED or row.action == Action.DEFER.value:
            self._decide(row, raw, report, chunk)

    def _decide(self, row: MailRow, raw: RawMail, report: CycleReport, chunk: _Chunk, counted: bool = False) -> None:
        attempts = row.attempts if counted else self.store.count_attempt(row.id)
        try:
            if attempts > self.settings.max_processing_attempts:
                evaluation = Evaluation(None, Classification(Kind.UNKNOWN, None, ""), decide(
                    [Finding("PROCESSING_FAILED", f"{attempts - 1}回続けて処理に失敗", stop=True)],
                    self.settings.rules_dir))
            else:
                assessment = chunk.assessed.get(raw.sha256)
                if assessment is None:  # its assessment failed in _start_chunk: again, counted
                    assessment = assess(raw.data, raw.internaldate, self.settings, self.store)
                evaluation = conclude(assessment, chunk.reading(raw, assessment, self.settings), self.settings,
                                      reference=self.reference, history=self.store)
            # A shadow trial queues no reply: nothing it recorded can ever be sent later.
            reply = None if self.settings.shadow else self._reply_for(evaluation, raw.sha256)
            if reply is not None and self._sender_over_limit(evaluation):
                evaluation = replace(evaluation, decision=overrule(evaluation.decision.findings, Finding(
                    "REPLY_LIMIT", f"{self.settings.max_replies_per_sender_per_day} replies today"),
                    self.settings.rules_dir))
                reply = None
        except Exception as e:  # a bug must cost one mail a retry, never the mailbox
            log_failure(log, f"processing mail {row.id} failed", e)
            self.store.event(row.id, "processing failed", f"{type(e).__name__}: {e}"[:300])
            report.errors.append(f"mail {row.id}: {type(e).__name__}")
            return
        if evaluation.decision.action is Action.DEFER and row.action == Action.DEFER.value:
            # Still waiting: only the extract it was checked against is new.
            if evaluation.data_version != row.data_version:
                self.store.set_state(row.id, row.state, "still deferred", evaluation.data_version or "",
                                     data_version=evaluation.data_version)
            return
        mail, c, d = evaluation.mail, evaluation.classification, evaluation.decision
        self.store.record_decision(
            row.id, action=d.action.value, kind=c.kind.value, code=c.code, reasons=d.reasons,
            fields=evaluation.fields, subject=mail.subject if mail else "",
            sender=mail.sender.addr if mail and mail.sender else "",
            message_id=mail.message_id if mail else None,
            target=target_folder(d, self.settings), data_version=evaluation.data_version,
            detail=" ".join(f"{f.code}({f.detail})" if f.detail else f.code for f in d.findings),
            reply=(reply.message_id, reply.recipients, reply.data) if reply else None,
            received=evaluation.received, branch=evaluation.branch,
            findings=[(f.code, f.detail) for f in d.findings],
            ledger=self._ledger_line(row, evaluation, d, evaluation.received) if d.action is Action.ACCEPT else None,
            bounced=self._bounced(d),
            previews=self._previews(evaluation, raw.sha256) if d.action is Action.HOLD else None,
            rules_version=rules_version(self.settings.rules_dir, self.settings.templates_dir),
            sender_name=mail.sender.name if mail and mail.sender else "")
        log.info("mail %s: %s %s %s %s", row.id, d.action.value, c.kind.value, c.code or "-", " ".join(d.reasons) or "-",
                 extra={"mail_id": row.id, "message_id": mail.message_id if mail else None, "kind": c.kind.value,
                        "code": c.code, "decision": d.action.value, "reasons": d.reasons})
        # The report keeps the decision, not the mail: a cycle over a big backlog must not hold
        # every parsed mail and its attachments until it ends.
        report.handled.append((mail.subject if mail else "", replace(evaluation, mail=None, fields={}),
                               target_folder(d, self.settings)))

    def _previews(self, evaluation: Evaluation, sha256: str) -> dict[str, object]:
        """What staff's 受付 and 差戻 would send (the held note shows both): subject and text, or
        None where nothing would be sent (an outsider, automatic mail, a conversation with the bot)."""
        out: dict[str, object] = {}
        if evaluation.mail is None:
            return {"accept": None, "remand": None}
        now = datetime.now(TOKYO)
        for name, accept in (("accept", True), ("remand", False)):
            decision = decide_by_staff(evaluation.decision, accept, self.settings.rules_dir)
            reply = build_reply(evaluation.mail, sha256, evaluation.classification, decision, self.reply_settings,
                                next_steps(evaluation.classification, decision, now, self.settings.rules_dir,
                                           evaluation.fields))
            out[name] = None if reply is None else {
                "subject": reply.subject, "to": ", ".join(reply.recipients), "body": reply.text}
        return out

    def _bounced(self, decision: Decision) -> tuple[int, str] | None:
        """A bounce of one of the bot's replies: the mail that reply answered, and what came back."""
        found = next((f for f in decision.findings if f.code == "REPLY_BOUNCED"), None)
        if found is None:
            return None
        mail_id = self.store.mail_of_reply(found.detail.split()[0])
        return (mail_id, found.detail) if mail_id is not None else None

    def _ledger_line(self, row: MailRow, evaluation: Evaluation, decision: Decision,
                     accepted_at: datetime | None) -> LedgerLine | None:
        """The 管理台帳 line an acceptance writes (DOMAIN.md §8), None when it changes no router."""
        if evaluation.mail is None or accepted_at is None:
            return None
        accepted = AcceptedRequest(
            kind=evaluation.classification.kind, code=evaluation.classification.code, fields=evaluation.fields,
            reasons=tuple(decision.reasons), branch=evaluation.branch, message_id=evaluation.mail.message_id,
            accepted_at=accepted_at)
        return ledger_line(accepted, f"mail:{row.id}", load_rules(self.settings.rules_dir).ledger,
                           self.reference.extract if self.reference is not None else None,
                           self.reference.calendar if self.reference is not None
                           else business_calendar(self.settings.rules_dir))

    def _sender_over_limit(self, evaluation: Evaluation) -> bool:
        """A sender answered this often today gets no more automatic replies (a mail loop, a
        script gone wrong): the mail is held for a person instead."""
        sender = evaluation.mail.sender.addr if evaluation.mail and evaluation.mail.sender else ""
        today = datetime.now(TOKYO).replace(hour=0, minute=0, second=0, microsecond=0)
        return self.store.replies_to_sender_since(sender, today) >= self.settings.max_replies_per_sender_per_day

    def _reply_for(self, evaluation: Evaluation, sha256: str) -> Reply | None:
        if evaluation.mail is None:
            return None
        return build_reply(evaluation.mail, sha256, evaluation.classification, evaluation.decision,
                           self.reply_settings, next_steps(evaluation.classification, evaluation.decision,
                                                           evaluation.received, self.settings.rules_dir,
                                                           evaluation.fields))

    def _forget_vanished(self, present: set[int], validity: int) -> None:
        """Mails recorded in the inbox that are no longer there."""
        for row in self.store.unfinished(self.inbox):
            if row.ref.uidvalidity == validity and row.ref.uid in present:
                continue
            if row.state in (MailState.DECIDED, MailState.SENT) and row.action != Action.DEFER.value:
                # Our own move finished, but the crash came before it was recorded.
                self.store.set_state(row.id, MailState.FILED, "filed", f"found moved to {row.target}")
            elif row.state != MailState.REPLY_QUEUED:
                self.store.set_state(row.id, MailState.VANISHED, "left the inbox outside mailbot")

    # ------------------------------------------------------------ replies

    def _send_replies(self, report: CycleReport, more_to_come: bool = False) -> None:
        """Send the replies due, once the batch before them is sent.  `more_to_come`: the cycle
        has more chunks: the SMTP session stays open for their replies, and this batch goes out
        while the next chunk is decided (its mails are filed by a later _file)."""
        self._sender.wait()
        due = self._due_replies(report)
        if due:
            self._sender.start(lambda store: self._send_due(due, report, store, keep_open=more_to_come))
            if not more_to_come:
                self._sender.wait()

    def _due_replies(self, report: CycleReport) -> list[ReplyRow]:
        """The replies to send now: within the hourly cap, tried once a cycle, those left in
        doubt by an interruption only when their copy does not show they went out."""
        if report.relay_down:
            return []
        due = [r for r in self.store.due_replies(datetime.now(timezone.utc)) if r.id not in report.tried]
        if not due:
            return []
        # Circuit breaker: however many are due, no more than max_replies_per_hour go out in any
        # hour; the rest stay queued (nothing is lost) and the digest raises an alert.
        room = self.settings.max_replies_per_hour - self.store.replies_sent_since(
            datetime.now(timezone.utc) - timedelta(hours=1))
        if len(due) > max(room, 0):
            held_back = len(due) - max(room, 0)
            if not report.breaker_open:
                report.breaker_open = True
                self.store.event(None, "reply circuit breaker open",
                                 f"{held_back} replies wait: {self.settings.max_replies_per_hour} per hour reached")
                report.errors.append(f"reply circuit breaker: {held_back} replies wait for the next hour")
            due = due[:max(room, 0)]
        # A reply in doubt is looked for once a cycle (not again after every chunk while it waits).
        looked = [(reply, self._went_out_before(reply)) for reply in due]
        report.tried.update(reply.id for reply, _ in looked)
        return [reply for reply, settled in looked if not settled]

    def _send_due(self, due: list[ReplyRow], report: CycleReport, store: Store, keep_open: bool) -> None:
        """On the sender's thread, with its connection to the store."""
        began: set[int] = set()
        recorded: set[int] = set()

        def start(i: int) -> None:
            # Committed before the transaction: a crash leaves just this reply 'sending', the one
            # whose fate is unknown (its copy tells, see _went_out_before).
            began.add(i)
            store.reply_sending(due[i])

        def record(i: int, result: SendResult) -> None:
            # Each result is committed before the next reply goes out: a crash later in the batch
            # never sends again those before it.
            recorded.add(i)
            self._record_send(due[i], result, report, store, began=i in began)

        copy = [self.settings.reply_from] if self._copies else []
        results = self.transport.send([(r.data, r.recipients + copy) for r in due], on_result=record, on_start=start,
                                      keep_open=keep_open)
        if not began:
            report.relay_down = True  # not even one transaction began: no connection, no login
        for i, (reply, result) in enumerate(zip(due, results, strict=True)):
            if i not in recorded:
                self._record_send(reply, result, report, store, began=i in began)

    @property
    def _copies(self) -> bool:
        return bool(self.settings.smtp and self.settings.smtp.copy_to_mailbox)

    def _went_out_before(self, reply: ReplyRow) -> bool:
        """A reply left 'sending' by a crash: its transaction may have reached the server.  With
        copies, its copy in the inbox or the sent folder proves it did (recorded sent); no copy
        yet: it waits `copy_wait` (the relay may still be delivering it) before it goes again."""
        if reply.state != SendState.SENDING or not self._copies:
            return False
        for folder in (self.inbox, self.settings.folders.sent):
            if self.mailbox.search_header(folder, "Message-ID", reply.message_id):
                self.store.reply_sent(reply, f"its copy is in {folder}: it went out before an interruption")
                return True
        waited = datetime.now(timezone.utc) - (reply.sending_at or datetime.now(timezone.utc))
        return waited < timedelta(seconds=self.settings.smtp.copy_wait)

    def _record_send(self, reply: ReplyRow, result: SendResult, report: CycleReport, store: Store,
                     began: bool = True) -> None:
        if result.outcome is Outcome.SENT:
            store.reply_sent(reply)
            if result.detail:  # sent, but some recipient refused it for good
                store.event(reply.mail_id, "reply recipient refused", result.detail)
            report.sent += 1
            return
        report.send_failures += 1
        attempts = reply.attempts + 1
        if result.outcome is Outcome.IN_DOUBT and self._copies:
            # Still 'sending': the next cycles look for its copy before it is sent again.
            store.reply_in_doubt(reply, result.detail, datetime.now(timezone.utc) + self.retry_base)
            return
        if result.outcome is Outcome.PERMANENT or attempts >= self.settings.max_send_attempts:
            store.reply_failed(reply, result.detail, None, began=began)
            # A reply that cannot be sent is a person's job: the mail goes to the held folder.
            recorded = [Finding(code, detail) for code, detail in store.get(reply.mail_id).findings]
            held = overrule(recorded, Finding("REPLY_FAILED", result.detail), self.settings.rules_dir)
            store.set_state(reply.mail_id, MailState.DECIDED, "held: reply could not be sent", result.detail,
                                 target=target_folder(held, self.settings),
                                 findings=json.dumps([(f.code, f.detail) for f in held.findings], ensure_ascii=False))
        else:
            delay = min(self.retry_base * 2 ** (attempts - 1), _RETRY_CAP)
            store.reply_failed(reply, result.detail, datetime.now(timezone.utc) + delay, began=began)

    # ------------------------------------------------------------ filing

    def _destination(self, target: str) -> str:
        """Where the mail itself goes: a held original beside its note, in the originals folder."""
        f = self.settings.folders
        return f.held_originals if target == f.held else target

    def _file(self, report: CycleReport, folders: tuple[str, ...] = (), in_hand: dict[str, bytes] | None = None) -> None:
        """Move the finished mails to their folders (a held one's note first); `in_hand`: the
        bytes of mails just fetched, by SHA-256, which their notes need not fetch again."""
        f = self.settings.folders
        # The inbox, and the notes staff moved to decide (filed to the processed folder once answered).
        for folder in folders or (self.inbox, f.held_accept, f.held_remand):
            ready = [row for row in self.store.unfinished(folder)
                     if (row.state == MailState.SENT or row.state == MailState.DECIDED and row.action != Action.DEFER.value)
                     and row.target and not self.store.pending_reply_count(row.id)]
            if not ready:
                continue
            retried = self.store.notes_begun([row.id for row in ready if row.target == f.held])
            self.store.flush()  # their decisions (and notes begun) on disk before notes are made and mails leave
            batches: dict[tuple[int, str], list[MailRow]] = {}
            for row in ready:
                try:
                    if row.target == f.held and not self._file_note(row, (in_hand or {}).get(row.sha256),
                                                                    look_first=row.id in retried):
                        continue
                except MailboxError as e:
                    self._move_failed(row, e, report)
                    continue
                batches.setdefault((row.ref.uidvalidity, self._destination(row.target)), []).append(row)
            for (_validity, destination), rows in batches.items():
                try:
                    self.mailbox.move_many([row.ref for row in rows], destination)
                except MailboxUnreachable:
                    raise  # every further mail would wait out the timeout: next cycle
                except MailboxError as e:
                    # one of them may be the trouble: each alone, so the others are filed
                    report.errors.append(f"{len(rows)} mails to {destination}: {e}; moved one at a time")
                    rows = [row for row in rows if self._move_one(row, destination, report)]
                self.store.set_filed([(row.id, row.target) for row in rows])
                report.filed += len(rows)

    def _move_one(self, row: MailRow, destination: str, report: CycleReport) -> bool:
        try:
            self.mailbox.move(row.ref, destination)
            return True
        except MailboxError as e:
            self._move_failed(row, e, report)
            return False

    def _move_failed(self, row: MailRow, e: MailboxError, report: CycleReport) -> None:
        report.errors.append(f"mail {row.id}: {e}")
        self.store.event(row.id, "move failed", str(e))
        if isinstance(e, MailboxUnreachable):
            raise e  # every further mail would wait out the timeout: next cycle

    def _file_note(self, row: MailRow, data: bytes | None = None, look_first: bool = True) -> bool:
        """Put the held mail's note into the held folder, once; False when the mail is gone.
        `data`: the mail's bytes when in hand (else fetched); `look_first`: the note may be there
        already (an earlier attempt was cut short after its APPEND): looked for before it is made."""
        f = self.settings.folders
        if data is None:
            raw = next(iter(self.mailbox.fetch(row.ref.folder, [row.ref.uid])), None)
            if raw is None or raw.ref.uidvalidity != row.ref.uidvalidity:
                return False
            data = raw.data
        unis = self.reference.extract if self.reference is not None else None
        facts = NoteFacts(
            row.sha256, row.kind, row.code, row.findings or [(code, "") for code in row.reasons], row.received,
            datetime.now(TOKYO), self._earlier(row),
            unis_lines=tuple(unis.lines(row.code)) if row.code and unis is not None else (),
            fields=row.fields, previews=row.previews,
            # What the pipeline read of the original: the note does not parse it again.
            subject=row.subject, sender=f"{row.sender_name} <{row.sender}>" if row.sender else "",
            message_id=row.message_id)
        note = build_note(data, facts, self.settings)
        # Found by its derived Message-ID: a crash after the APPEND never makes a second note.
        if not (look_first and self.mailbox.search_header(f.held, "Message-ID", note.message_id)):
            try:
                self.mailbox.append(f.held, note.data, datetime.now(timezone.utc))
            except MailboxError as e:
                if not any(word in str(e) for word in _TOO_BIG):
                    raise
                # The server's message size limit (Exchange: 35 MB by default): the note without
                # the original, which waits untouched in the held originals folder.
                log.warning("held note of mail %s too big for the server: filed without the original", row.id)
                note = build_note(data, facts, self.settings, attach=False)
                self.mailbox.append(f.held, note.data, datetime.now(timezone.utc))
        self.store.open_held(row.id, note.message_id, data)
        return True

    def _earlier(self, row: MailRow) -> tuple[EarlierMail, ...]:
        """The code's other mails up to this one, newest first (at most NOTE_HISTORY)."""
        if not row.code:
            return ()
        out = []
        for r in self.store.mail_rows_with_code(row.code):
            other = MailRow.from_sql(r)
            when = other.received or other.internaldate
            if other.id == row.id or other.action is None or when is None or (
                    row.received is not None and when > row.received):
                continue
            out.append(EarlierMail(when.astimezone(TOKYO), other.kind or "unknown", other.action,
                                   tuple(dict.fromkeys(other.reasons)), other.subject))
        return tuple(sorted(out, key=lambda e: e.received, reverse=True)[:NOTE_HISTORY])

    # ------------------------------------------------------------ staff decisions

    def _staff_decisions(self, report: CycleReport) -> None:
        """Staff decide on a held mail by moving its note: into the accept folder, the remand
        folder, or straight into the processed folder (handled by a person, no reply)."""
        f = self.settings.folders
        for folder, outcome in ((f.held_accept, "accepted"), (f.held_remand, "remanded"), (f.processed, "handled")):
            validity = self.mailbox.uidvalidity(folder)
            # The processed folder only grows: look at what arrived since the last cycle.
            since = self.store.cursor(folder, validity) + 1 if folder == f.processed else 1
            uids = self.mailbox.search_header(folder, HELD_HEADER, "", since)
            for raw in self.mailbox.fetch(folder, uids):
                sha = held_original_sha(raw.data)
                item = self.store.held_item(sha) if sha else None
                if item is None:
                    continue  # not one of ours
                row, held = item
                if held.closed_at is not None:
                    # Decided already: the decided note itself waits to be filed; another copy of it
                    # left in 受付/差戻 would stay there forever.
                    if folder != f.processed and raw.ref != row.ref:
                        self._file_stale_copy(row, held, raw)
                    continue
                try:
                    reply, line, unanswerable = (None, None, None) if outcome == "handled" else \
                        self._staff_answer(row, held, outcome)
                    if unanswerable is not None:
                        self._return_to_held(row, raw, outcome, unanswerable)
                        continue
                except MailboxError:
                    raise
                except Exception as e:  # a bug must not block the other decisions
                    log_failure(log, f"staff decision on mail {row.id} failed", e)
                    report.errors.append(f"mail {row.id}: staff decision: {type(e).__name__}")
                    continue
                self.store.staff_decision(row.id, outcome, raw.ref, f.processed, reply, line)
                report.staff.append((row.subject, outcome))
            if folder == f.processed and uids:
                self.store.set_cursor(folder, validity, max(uids))

    def _staff_answer(self, row: MailRow, held: HeldRow, outcome: str
                      ) -> tuple[tuple[str, str, list[str], bytes] | None, LedgerLine | None, str | None]:
        """The reply staff asked for: the acceptance (with what happens next from today) or the
        remand with every finding and how the branch fixes it; and an acceptance's ledger line,
        its 受付日 today.  The original is checked again against today's reference data: the
        answer states what holds when staff decide.  Third: why no answer can be sent
        ("unreadable", "outside", "automatic"), None when it can."""
        evaluation = evaluate(held.original, row.internaldate, self.settings, reference=self.reference,
                              history=self.store)
        if evaluation.mail is None:
            return None, None, "unreadable"
        now = datetime.now(TOKYO)
        decision = decide_by_staff(evaluation.decision, outcome == "accepted", self.settings.rules_dir)
        line = self._ledger_line(row, evaluation, decision, now) if decision.action is Action.ACCEPT else None
        reply = build_reply(evaluation.mail, row.sha256, evaluation.classification, decision,
                            self.reply_settings,
                            next_steps(evaluation.classification, decision, now, self.settings.rules_dir,
                                       evaluation.fields))
        if reply is None:
            return None, None, unanswerable(evaluation.mail, decision, self.reply_settings)
        return (reply.message_id, decision.action.value, reply.recipients, reply.data), line, None

    def _return_to_held(self, row: MailRow, raw: RawMail, outcome: str, why: str) -> None:
        """Staff asked for an answer nobody can be sent (an outside sender, automatic mail, an
        unreadable original): the note goes back to the held folder, with a notice beside it
        saying why and what to do; the item stays open."""
        f = self.settings.folders
        returned = sum(1 for _, event, _ in self.store.events(row.id) if event == "staff answer impossible")
        notice = returned_notice(row, why, outcome, returned, self.settings)
        # Found by its Message-ID: a crash between the APPEND and the move never makes two.
        if not self.mailbox.search_header(f.held, "Message-ID", notice.message_id):
            self.mailbox.append(f.held, notice.data, datetime.now(timezone.utc))
        self.mailbox.move(raw.ref, f.held)
        self.store.event(row.id, "staff answer impossible", f"{outcome}: {why}; note back in {f.held}")
        log.info("mail %s: staff moved its note to %s, but %s: note back in %s with a notice",
                 row.id, raw.ref.folder, {"outside": "the sender is outside the company",
                                          "automatic": "automatic mail gets no answer",
                                          "unreadable": "the original cannot be read"}[why], f.held)

    def _file_stale_copy(self, row: MailRow, held: HeldRow, raw: RawMail) -> None:
        """A copy of a note decided already, left in 受付/差戻: filed to the processed folder."""
        f = self.settings.folders
        self.mailbox.move(raw.ref, f.processed)
        self.store.event(row.id, "stale note copy filed", f"{raw.ref.folder} → {f.processed} ({held.outcome})")
        log.info("mail %s: a copy of its note, %s already, was left in %s: filed to %s",
                 row.id, held.outcome, raw.ref.folder, f.processed)





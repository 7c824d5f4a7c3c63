"""One mail through every stage, and the poll cycle with its state transitions around them.

    evaluate():  bytes → message → classify → extract → check → decide     (pure, no side effects)
    Bot.poll():  mailbox → record → evaluate → reply queued → sent → filed  (each step committed)

`mailbot check` uses evaluate() alone; `mailbot poll`/`run` use Bot.poll().
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from email.parser import BytesParser
from email.policy import SMTP
from zoneinfo import ZoneInfo

from mailbot.checks import CheckContext, content_checks, gate_checks, run_checks
from mailbot.checks.attachments import documents, is_pdf
from mailbot.checks.reference import branch_name
from mailbot.classify import classify
from mailbot.config import Settings
from mailbot.decide import decide
from mailbot.extract import body_items, request_rules
from mailbot.forms.read import form_from_reading
from mailbot.forms.sandbox import PdfLimits, read_pdf
from mailbot.history import History
from mailbot.mailbox import Mailbox, MailboxError
from mailbot.message import UnreadableMail, parse_mail
from mailbot.model import Action, Classification, Decision, Finding, Kind, Mail, RawMail, Request
from mailbot.outbox import Outcome, Transport
from mailbot.reference import ReferenceData
from mailbot.reply import Reply, ReplySettings, build_reply, next_steps
from mailbot.store import MailRow, Store

log = logging.getLogger("mailbot")
TOKYO = ZoneInfo("Asia/Tokyo")

# A mail whose processing failed (or crashed the bot) this many times is held for a person.
MAX_PROCESSING_ATTEMPTS = 3
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


def evaluate(data: bytes, internaldate: datetime | None, settings: Settings,
             now: datetime | None = None, reference: ReferenceData | None = None,
             history: History | None = None) -> Evaluation:
    """bytes → Decision, with no side effects.  Without `reference` (or with parts of it missing)
    the checks that need the UNIS extract or the branch directory are skipped; without `history`
    those that need earlier decisions (DUPLICATE_REQUEST, the bot's own order day)."""
    now = now or datetime.now(TOKYO)
    try:
        mail = parse_mail(data)
    except UnreadableMail as e:
        return Evaluation(None, Classification(Kind.UNKNOWN, None, ""),
                          decide([Finding("MAIL_UNREADABLE", e.reason, stop=True)], settings.rules_dir))
    classification = classify(mail.subject, settings.rules_dir)
    received = received_time(mail, internaldate)
    request = Request(mail=mail, classification=classification, received=received)
    ctx = CheckContext(rules_dir=settings.rules_dir, internal_domains=settings.internal_domains,
                       own_addresses=(settings.reply_from.lower(),), now=now,
                       unis=reference.unis if reference else None,
                       branches=reference.branches if reference else None,
                       calendar=reference.calendar if reference else None, history=history)
    findings = run_checks(request, ctx, gate_checks())
    if not any(f.stop for f in findings):
        request = extract(request, settings)
        findings += run_checks(request, ctx, content_checks())
    decision = decide(findings, settings.rules_dir)
    branch = branch_name(request, ctx) if classification.kind is not Kind.UNKNOWN else None
    return Evaluation(mail, classification, decision, reported_fields(request), received,
                      reference.version if reference else None, branch)


def extract(request: Request, settings: Settings) -> Request:
    """The body items, and the required form read from its PDF in the sandbox."""
    items = body_items(request.mail.body, settings.rules_dir)
    form_name = request_rules(settings.rules_dir).form.get(request.classification.kind.value)
    pdf = next((a for a in documents(request) if is_pdf(a)), None) if form_name else None
    if pdf is None:
        return replace(request, body_items=items)
    f = settings.forms
    reading = read_pdf(pdf.data, form_name, password=f.password, rules_dir=settings.rules_dir,
                       limits=PdfLimits(max_bytes=f.max_bytes, max_pages=f.max_pages, timeout_s=f.timeout_s,
                                        memory_mb=f.memory_mb))
    return replace(request, body_items=items, form_reading=reading, form=form_from_reading(reading, form_name))


def reported_fields(request: Request) -> dict[str, object]:
    """What `check --json` shows and the state database keeps: body items and the form as read."""
    fields: dict[str, object] = {"body": dict(request.body_items)}
    reading = request.form_reading
    if reading is not None:
        fields["pdf"] = {"status": reading.status.value, "shape": reading.shape, "detail": reading.detail}
        fields["form"] = dict(reading.fields)
    return fields


def target_folder(action: Action, settings: Settings) -> str | None:
    folders = settings.folders
    return {Action.ACCEPT: folders.processed, Action.REMAND: folders.processed, Action.HOLD: folders.held,
            Action.IGNORE: folders.ignored}.get(action)


@dataclass
class CycleReport:
    """What one poll cycle did, for the command line and the logs."""

    handled: list[tuple[str, Evaluation | None, str | None]] = field(default_factory=list)  # subject, eval, folder
    sent: int = 0
    send_failures: int = 0
    filed: int = 0
    errors: list[str] = field(default_factory=list)


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
            rules_dir=settings.rules_dir)

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
        f = self.settings.folders
        self.mailbox.ensure_folders([f.processed, f.held, f.ignored])
        self._take_in(report, stop)
        self._send_replies(report)
        self._file(report)
        return report

    def _take_in(self, report: CycleReport, stop: callable) -> None:
        validity = self.mailbox.uidvalidity(self.inbox)
        present = self.mailbox.list_uids(self.inbox)
        known = self.store.in_folder(self.inbox, validity)
        version = self.reference.version if self.reference else None
        # A deferred mail waits for another UNIS extract: checked again only when one came.
        wanted = [uid for uid in present if uid not in known or known[uid].state == "received"
                  or (known[uid].state == "decided" and known[uid].action == Action.DEFER.value
                      and known[uid].data_version != version)]
        for raw in self.mailbox.fetch(self.inbox, wanted):
            self._take(raw, report)
            if stop():
                return
        self._forget_vanished(set(present), validity)

    def _take(self, raw: RawMail, report: CycleReport) -> None:
        row = self.store.by_ref(raw.ref) or self.store.by_sha(raw.sha256)
        if row is None:
            row = self.store.add_received(raw, None)
        elif row.ref != raw.ref:
            # Same bytes at a new place: the UIDVALIDITY changed, or the server delivered a copy.
            if row.state == "filed":
                self.store.event(row.id, "copy seen again", f"uid {raw.ref.uid}; filed like the first")
                self.mailbox.move(raw.ref, row.target or self.settings.folders.held)
                return
            self.store.relocate(row.id, raw.ref, "UIDVALIDITY changed or copy delivered")
            row = self.store.get(row.id)
        if row.state == "received" or row.action == Action.DEFER.value:
            self._decide(row, raw, report)

    def _decide(self, row: MailRow, raw: RawMail, report: CycleReport) -> None:
        attempts = self.store.count_attempt(row.id)
        try:
            if attempts > MAX_PROCESSING_ATTEMPTS:
                evaluation = Evaluation(None, Classification(Kind.UNKNOWN, None, ""), decide(
                    [Finding("PROCESSING_FAILED", f"{attempts - 1} failed attempts", stop=True)],
                    self.settings.rules_dir))
            else:
                evaluation = evaluate(raw.data, raw.internaldate, self.settings, reference=self.reference,
                                      history=self.store)
            reply = self._reply_for(evaluation, raw.sha256)
        except Exception as e:  # a bug must cost one mail a retry, never the mailbox
            log.exception("processing mail %s failed", row.id)
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
            target=target_folder(d.action, self.settings), data_version=evaluation.data_version,
            detail=" ".join(f"{f.code}({f.detail})" if f.detail else f.code for f in d.findings),
            reply=(reply.message_id, reply.recipients, reply.message.as_bytes()) if reply else None,
            received=evaluation.received, branch=evaluation.branch)
        report.handled.append((mail.subject if mail else "", evaluation, target_folder(d.action, self.settings)))

    def _reply_for(self, evaluation: Evaluation, sha256: str) -> Reply | None:
        if evaluation.mail is None:
            return None
        return build_reply(evaluation.mail, sha256, evaluation.classification, evaluation.decision,
                           self.reply_settings, next_steps(evaluation.classification, evaluation.decision,
                                                           evaluation.received, self.settings.rules_dir))

    def _forget_vanished(self, present: set[int], validity: int) -> None:
        """Mails recorded in the inbox that are no longer there."""
        for row in self.store.unfinished(self.inbox):
            if row.ref.uidvalidity == validity and row.ref.uid in present:
                continue
            if row.state in ("decided", "sent") and row.action != Action.DEFER.value:
                # Our own move finished, but the crash came before it was recorded.
                self.store.set_state(row.id, "filed", "filed", f"found moved to {row.target}")
            elif row.state != "reply_queued":
                self.store.set_state(row.id, "vanished", "left the inbox outside mailbot")

    # ------------------------------------------------------------ replies

    def _send_replies(self, report: CycleReport) -> None:
        due = self.store.due_replies(datetime.now(timezone.utc))
        if not due:
            return
        parser = BytesParser(policy=SMTP)
        for reply in due:
            self.store.reply_sending(reply)
        results = self.transport.send([(parser.parsebytes(r.data), r.recipients) for r in due])
        for reply, result in zip(due, results, strict=True):
            if result.outcome is Outcome.SENT:
                self.store.reply_sent(reply)
                report.sent += 1
                continue
            report.send_failures += 1
            attempts = reply.attempts + 1
            if result.outcome is Outcome.PERMANENT or attempts >= self.settings.max_send_attempts:
                self.store.reply_failed(reply, result.detail, None)
                # A reply that cannot be sent is a person's job: the mail goes to the held folder.
                self.store.set_state(reply.mail_id, "decided", "held: reply could not be sent", result.detail,
                                     target=self.settings.folders.held)
            else:
                delay = min(self.retry_base * 2 ** (attempts - 1), _RETRY_CAP)
                self.store.reply_failed(reply, result.detail, datetime.now(timezone.utc) + delay)

    # ------------------------------------------------------------ filing

    def _file(self, report: CycleReport) -> None:
        for row in self.store.unfinished(self.inbox):
            ready = (row.state == "sent" or row.state == "decided" and row.action != Action.DEFER.value)
            if not ready or not row.target or self.store.pending_reply_count(row.id):
                continue
            try:
                self.mailbox.move(row.ref, row.target)
            except MailboxError as e:
                report.errors.append(f"mail {row.id}: {e}")
                self.store.event(row.id, "move failed", str(e))
                continue
            self.store.set_state(row.id, "filed", "filed", row.target)
            report.filed += 1





"""What one supervisors' digest says (DOMAIN.md §4–§9), from the state database as plain data.

    period = digest_period(day, digest_time, calendar, now)      # since the previous digest
    data = collect(store, day, now, rules_dir=…, calendar=…, extract=ExtractStatus(…), unis=…,
                   digest_time=time(18, 0))                      # DigestData

The digest of business day D covers the mails received from the previous business day's digest
time up to D's (a Monday digest covers the weekend, a Tuesday one after a holiday Monday too):
every mail is in exactly one digest.  A mail counts at its received time, else when mailbot first
saw it; only decided mails count.  Automatic replies are counted apart, not as traffic; copies of
the bot's own replies and bounces of them are no traffic either (a bounce is a problem).

Labels (kinds, decisions, reasons, events) are Japanese, from `rules/`; reason codes stay in the
data for logs and JSON only.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from mailbot.auth import OAuthSettings, expiry_warning
from mailbot.model import Action, Kind
from mailbot.record.states import SendState
from mailbot.record.store import Store
from mailbot.reference.calendar import BusinessCalendar
from mailbot.reference.unis import UnisData
from mailbot.rules import load_rules
from mailbot.rules.digest import DECISIONS
from mailbot.text import TOKYO, japanese_time

UNREACHABLE = "mailbox unreachable"  # the event recorded (mail_id NULL) when the mailbox could not be reached


# ---------------------------------------------------------------- the content


def remand_rate(counts: dict[str, int]) -> float:
    """Remanded share of the requests answered (accepted or remanded), 0 when none."""
    answered = counts.get("accept", 0) + counts.get("remand", 0)
    return counts.get("remand", 0) / answered if answered else 0.0


class _Counted:
    """The total and the remand rate of a table of decision → count (`counts`)."""

    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def remand_rate(self) -> float:
        return remand_rate(self.counts)


@dataclass(frozen=True)
class Row(_Counted):
    """One line of a count table: a kind or a branch, its count per decision."""

    key: str  # kind value or branch name ("" for a mail without a known branch)
    label: str
    counts: dict[str, int]  # decision → count (every decision present, zeros included)
    top_reason: str = ""  # the label of the most frequent remand reason (branches)


@dataclass(frozen=True)
class ReasonCount:
    code: str
    label: str
    title: str
    count: int


@dataclass(frozen=True)
class Tally(_Counted):
    """The mails of a period by kind, decision and branch (automatic replies apart)."""

    start: datetime
    end: datetime
    kinds: list[Row]  # every kind, in the order of kinds.toml [labels]
    totals: dict[str, int]  # decision → count
    remand_reasons: list[ReasonCount]  # the remand reasons of remanded mails, most first
    branches: list[Row]  # branches with mail, most first
    auto_replies: int = 0  # out-of-office and other automatic mail: counted apart, not traffic
    cancel_after_order: int = 0
    withdrawal_too_late: int = 0

    @property
    def counts(self) -> dict[str, int]:
        return self.totals


@dataclass(frozen=True)
class Week(_Counted):
    """One week of the four-week trend."""

    start: date
    end: date  # inclusive
    counts: dict[str, int]  # decision → count
    auto_replies: int

    @property
    def label(self) -> str:
        return f"{self.start.month}月{self.start.day}日〜{self.end.month}月{self.end.day}日"


@dataclass(frozen=True)
class MailItem:
    id: int
    received: datetime | None  # Asia/Tokyo
    kind: str
    kind_label: str
    code: str | None
    subject: str
    sender: str
    branch: str | None
    action: str | None
    decision_label: str
    reasons: list[str]  # codes (logs, JSON)
    reason_labels: list[str] = field(default_factory=list)  # Japanese, for the reader


@dataclass(frozen=True)
class HeldItem:
    mail: MailItem
    opened_at: datetime  # Asia/Tokyo
    age: int  # business days from its day N to the digest's day


@dataclass(frozen=True)
class DeferredItem:
    mail: MailItem
    waiting: int  # business days since its day N


@dataclass(frozen=True)
class SendProblem:
    mail: MailItem
    message_id: str
    state: str  # the reply's state: queued | sending | sent | failed
    state_label: str
    attempts: int
    retries: int  # "reply retry" events in the period
    last_error: str


@dataclass(frozen=True)
class Bounce:
    """A reply of the bot that came back undelivered: the branch never got its answer."""

    mail: MailItem  # the request the reply answered
    at: datetime  # when the bounce arrived
    detail: str  # the reply's Message-ID and the report's status, as recorded


@dataclass(frozen=True)
class ProcessingProblem:
    mail: MailItem
    failures: int  # "processing failed" events in the period
    last_error: str


@dataclass(frozen=True)
class Deadline:
    """A termination withdrawal waiting for staff whose deadline is near (seed 001: 3 business days)."""

    mail: MailItem
    termination_date: date
    deadline: datetime  # the moment from which it is too late


@dataclass(frozen=True)
class StaffOutcome:
    """A held mail staff decided in the period."""

    mail: MailItem
    outcome: str  # accepted | remanded | handled
    outcome_label: str
    folder: str
    hours: float  # from the hold to the staff's decision
    business_days: int


@dataclass(frozen=True)
class Resubmission:
    """A remanded request the branch fixed: remand → resubmitted → accepted in the period."""

    mail: MailItem  # the accepted resubmission
    remanded_at: datetime
    reasons: list[str]  # the labels of the remand's reasons
    business_days: int  # from the remand's day N to the acceptance's


@dataclass(frozen=True)
class UnregisteredTermination:
    """An accepted termination the UNIS extract still shows without 解約予定 or 解約: the branch's
    own UNIS 解約処理（予定登録） is missing (DOMAIN.md §6)."""

    mail: MailItem
    accepted_on: date  # its day N (of the staff's acceptance when staff accepted it)
    age: int  # business days from then to the digest's day
    termination_date: date | None  # the form's 解約日, when read


@dataclass(frozen=True)
class ExtractStatus:
    """The UNIS extract as the digest judges it."""

    configured: bool
    extracted_at: datetime | None = None  # of the extract in use; None: no usable extract
    error: str | None = None  # the latest file could not be imported (an older one may be in use)


@dataclass(frozen=True)
class Problems:
    """What went wrong or needs acting on now: the digest's problems section."""

    alerts: list[str]  # the mailbox, the UNIS extract, the reply brake
    bounced: list[Bounce]
    failed: list[SendProblem]  # replies given up in the period
    retried: list[SendProblem]  # replies retried in the period (and not given up)
    processing: list[ProcessingProblem]
    unreadable: list[MailItem]
    stale_held: list[HeldItem]  # held longer than `held_max_age` business days
    deadlines: list[Deadline]  # withdrawals whose deadline is within one business day

    @property
    def count(self) -> int:
        return (len(self.alerts) + len(self.bounced) + len(self.failed) + len(self.retried) + len(self.processing)
                + len(self.unreadable) + len(self.stale_held) + len(self.deadlines))


@dataclass(frozen=True)
class DigestData:
    day: date
    generated: datetime  # Asia/Tokyo
    start: datetime  # the period: from the previous digest's time …
    end: datetime  # … to this one's (or now, when earlier)
    today: Tally  # the period
    month: Tally  # the month to the period's end
    weeks: list[Week]  # the four-week trend, oldest first
    held: list[HeldItem]  # open at the period's end, oldest first
    staff: list[StaffOutcome]  # decided by staff in the period
    resubmissions: list[Resubmission]
    cancellations: list[MailItem]  # CANCEL_AFTER_ORDER in the period
    late_withdrawals: list[MailItem]  # WITHDRAWAL_TOO_LATE in the period
    deferred: list[DeferredItem]  # waiting for the UNIS extract now
    unregistered_terminations: list[UnregisteredTermination]
    problems: Problems
    decision_labels: dict[str, str] = field(default_factory=dict)
    unregistered_after: int = 0  # business days (rules/digest.toml unregistered_termination_after)

    @property
    def problem_count(self) -> int:
        return self.problems.count

    @property
    def staff_counts(self) -> list[tuple[str, int]]:
        """(outcome label, count) of the staff's decisions, in the order accepted, remanded, handled."""
        counts = Counter(s.outcome for s in self.staff)
        labels = {s.outcome: s.outcome_label for s in self.staff}
        return [(labels[o], counts[o]) for o in _OUTCOMES if counts[o]]


_OUTCOMES = ("accepted", "remanded", "handled")


def local_time(value: str | None) -> datetime | None:
    if not value:
        return None
    t = datetime.fromisoformat(value)
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).astimezone(TOKYO)


def _date_or_none(value: object) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def digest_period(day: date, digest_time: time, calendar: BusinessCalendar) -> tuple[datetime, datetime]:
    """The digest of `day` covers [previous business day at digest_time, day at digest_time)."""
    return (datetime.combine(calendar.previous_business_day(day), digest_time, tzinfo=TOKYO),
            datetime.combine(day, digest_time, tzinfo=TOKYO))


class StateReader:
    """The state database read for one digest."""

    def __init__(self, store: Store, rules_dir):
        self.store = store
        rules = load_rules(rules_dir)
        self.rules = rules.digest
        self.reasons = rules.reasons

    def label(self, code: str) -> str:
        reason = self.reasons.get(code)
        return reason.label if reason is not None else code

    def event_label(self, event: str) -> str:
        return self.rules.event_labels.get(event, event)

    def item(self, r) -> MailItem:
        kind = r["kind"] or Kind.UNKNOWN.value
        action = r["action"]
        codes = json.loads(r["reasons"]) if r["reasons"] else []
        return MailItem(
            id=r["id"], received=local_time(r["received"] or r["first_seen"]), kind=kind,
            kind_label=self.rules.kind_labels.get(kind, kind), code=r["code"], subject=r["subject"] or "",
            sender=r["sender"] or "", branch=r["branch"], action=action,
            decision_label=self.rules.decision_labels.get(action, action or "-") if action else "-",
            reasons=codes, reason_labels=[self.label(c) for c in dict.fromkeys(codes)])

    def decided(self, lo: datetime, hi: datetime) -> list[MailItem]:
        """Every decided mail received in [lo, hi), oldest first (left-out ones, e.g. the bot's own
        copies, excluded)."""
        # ISO strings of any offset sort within a day of their instant: a wide window, then exact.
        rows = self.store.decided_between((lo - timedelta(days=1)).date().isoformat(),
                                          (hi + timedelta(days=2)).date().isoformat())
        items = [m for m in map(self.item, rows) if m.received is not None and lo <= m.received < hi
                 and not self.rules.left_out.intersection(m.reasons)]
        return sorted(items, key=lambda m: (m.received, m.id))

    def is_auto_reply(self, m: MailItem) -> bool:
        return bool(self.rules.counted_apart.intersection(m.reasons))

    def events(self, event: str, lo: datetime, hi: datetime) -> list[tuple[int | None, datetime, str]]:
        rows = self.store.events_between(event, (lo - timedelta(days=1)).date().isoformat(),
                                         (hi + timedelta(days=2)).date().isoformat())
        out = [(r["mail_id"], local_time(r["at"]), r["detail"] or "") for r in rows]
        return [e for e in out if lo <= e[1] < hi]

    def tally(self, lo: datetime, hi: datetime, every: list[MailItem] | None = None) -> Tally:
        """The mails decided in [lo, hi) counted (`every`: those mails when already read)."""
        every = self.decided(lo, hi) if every is None else every
        mails = [m for m in every if not self.is_auto_reply(m)]
        labels = self.rules.kind_labels
        by_kind = {k: Counter() for k in labels}
        by_branch: dict[str, Counter] = {}
        branch_reasons: dict[str, Counter] = {}
        remand_reasons: Counter = Counter()
        for m in mails:
            by_kind.setdefault(m.kind, Counter())[m.action] += 1
            by_branch.setdefault(m.branch or "", Counter())[m.action] += 1
            if m.action == Action.REMAND.value:
                for code in dict.fromkeys(m.reasons):
                    reason = self.reasons.get(code)
                    if reason is None or reason.action is Action.REMAND:
                        remand_reasons[code] += 1
                        branch_reasons.setdefault(m.branch or "", Counter())[code] += 1

        def counts(c: Counter) -> dict[str, int]:
            return {d: c.get(d, 0) for d in DECISIONS}

        def top(branch: str) -> str:
            ranked = sorted((branch_reasons.get(branch) or Counter()).items(), key=lambda kv: (-kv[1], kv[0]))
            return self.label(ranked[0][0]) if ranked else ""

        kinds = [Row(k, labels.get(k, k), counts(c)) for k, c in by_kind.items()]
        branches = sorted((Row(b, b or "（支店不明）", counts(c), top(b)) for b, c in by_branch.items()),
                          key=lambda r: (-r.total, r.key == "", r.key))
        ranked = sorted(remand_reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        return Tally(
            start=lo, end=hi, kinds=kinds,
            totals={d: sum(r.counts[d] for r in kinds) for d in DECISIONS},
            remand_reasons=[ReasonCount(code, self.label(code), self.reasons[code].title if code in self.reasons
                                        else code, n) for code, n in ranked],
            branches=branches, auto_replies=len(every) - len(mails),
            cancel_after_order=sum("CANCEL_AFTER_ORDER" in m.reasons for m in mails),
            withdrawal_too_late=sum("WITHDRAWAL_TOO_LATE" in m.reasons for m in mails))

    def weeks(self, end: datetime, n: int = 4) -> list[Week]:
        """The last `n` weeks of seven days ending at `end`, oldest first."""
        out = []
        for k in range(n - 1, -1, -1):
            hi = end - timedelta(days=7 * k)
            lo = hi - timedelta(days=7)
            every = self.decided(lo, hi)
            traffic = [m for m in every if not self.is_auto_reply(m)]
            c = Counter(m.action for m in traffic)
            out.append(Week(lo.date(), (hi - timedelta(microseconds=1)).date(), {d: c.get(d, 0) for d in DECISIONS},
                            len(every) - len(traffic)))
        return out

    def held(self, day: date, until: datetime, calendar: BusinessCalendar) -> list[HeldItem]:
        """Held items open at `until`."""
        rows = self.store.held_rows_open_after((until - timedelta(days=2)).date().isoformat())
        out = []
        for r in rows:
            opened, closed = local_time(r["h_opened"]), local_time(r["h_closed"])
            if opened > until or (closed is not None and closed <= until):
                continue
            out.append(HeldItem(self.item(r), opened, calendar.business_days_between(calendar.day_n(opened), day)))
        return sorted(out, key=lambda h: (h.opened_at, h.mail.id))

    def staff(self, lo: datetime, hi: datetime, calendar: BusinessCalendar) -> list[StaffOutcome]:
        """Held mails staff decided in [lo, hi), in the order decided."""
        rows = self.store.held_rows_open_after((lo - timedelta(days=1)).date().isoformat())
        out = []
        for r in rows:
            opened, closed = local_time(r["h_opened"]), local_time(r["h_closed"])
            if closed is None or not lo <= closed < hi or not r["h_outcome"]:
                continue
            outcome = r["h_outcome"]
            out.append(StaffOutcome(
                self.item(r), outcome, self.rules.staff_labels.get(outcome, outcome), r["h_folder"] or "",
                (closed - opened).total_seconds() / 3600,
                calendar.business_days_between(calendar.day_n(opened), calendar.day_n(closed))))
        return sorted(out, key=lambda s: (s.mail.id,))

    def resubmissions(self, mails: list[MailItem], calendar: BusinessCalendar) -> list[Resubmission]:
        """Accepted requests of the period whose kind and code were remanded before: how long the
        branch took to fix them."""
        out = []
        for m in mails:
            if m.action != Action.ACCEPT.value or not m.code or m.received is None:
                continue
            earlier = [r for r in self.store.mail_rows_with_code(m.code)
                       if r["kind"] == m.kind and r["action"] == Action.REMAND.value and r["id"] != m.id]
            earlier = [(local_time(r["received"] or r["first_seen"]), r) for r in earlier]
            earlier = [(t, r) for t, r in earlier if t is not None and t < m.received]
            if not earlier:
                continue
            remanded_at, row = max(earlier, key=lambda x: x[0])
            remand = self.item(row)
            out.append(Resubmission(m, remanded_at, remand.reason_labels,
                                    calendar.business_days_between(calendar.day_n(remanded_at),
                                                                   calendar.day_n(m.received))))
        return out

    def deferred(self, day: date, until: datetime, calendar: BusinessCalendar) -> list[DeferredItem]:
        rows = self.store.unfinished_with_action(Action.DEFER)
        items = sorted((m for m in map(self.item, rows) if m.received is None or m.received <= until),
                       key=lambda m: (m.received or until, m.id))
        return [DeferredItem(m, calendar.business_days_between(calendar.day_n(m.received), day) if m.received else 0)
                for m in items]

    def send_problems(self, lo: datetime, hi: datetime) -> tuple[list[SendProblem], list[SendProblem]]:
        retries = Counter(mail_id for mail_id, _, _ in self.events("reply retry", lo, hi))
        failed_mails = {mail_id for mail_id, _, _ in self.events("reply failed", lo, hi)}
        rows = self.store.reply_problem_rows(sorted(set(retries) | failed_mails))
        retried, failed = [], []
        for r in rows:
            sent_at = local_time(r["r_sent_at"])
            problem = SendProblem(self.item(r), r["r_message_id"], r["r_state"],
                                  self.rules.send_state_labels.get(r["r_state"], r["r_state"]), r["r_attempts"],
                                  retries.get(r["id"], 0), r["r_error"] or "")
            if r["r_state"] == SendState.FAILED:
                if r["id"] in failed_mails:
                    failed.append(problem)
            elif r["id"] in retries or (r["r_attempts"] > 1 and sent_at is not None and lo <= sent_at < hi):
                retried.append(problem)
        return retried, failed

    def bounces(self, lo: datetime, hi: datetime) -> list[Bounce]:
        """The delivery reports received in [lo, hi) about the bot's replies (REPLY_BOUNCED), each
        with the request whose reply came back."""
        rows = self.store.decided_between((lo - timedelta(days=1)).date().isoformat(),
                                          (hi + timedelta(days=2)).date().isoformat())
        out = []
        for r in rows:
            at = local_time(r["received"] or r["first_seen"])
            findings = dict(json.loads(r["findings"])) if r["findings"] else {}
            if at is None or not lo <= at < hi or "REPLY_BOUNCED" not in findings:
                continue
            detail = findings["REPLY_BOUNCED"]
            answered = self.store.mail_of_reply(detail.split()[0]) if detail else None
            if answered is not None:
                out.append(Bounce(self.item(self.store.mail_row(answered)), at, detail))
        return sorted(out, key=lambda b: (b.at, b.mail.id))

    def processing(self, lo: datetime, hi: datetime, mails: list[MailItem]) -> list[ProcessingProblem]:
        """Mails whose processing failed in the period (retried, or held PROCESSING_FAILED)."""
        failures: dict[int, list[str]] = {}
        for mail_id, _, detail in self.events("processing failed", lo, hi):
            if mail_id is not None:
                failures.setdefault(mail_id, []).append(detail)
        for m in mails:
            if "PROCESSING_FAILED" in m.reasons:
                failures.setdefault(m.id, [])
        return [ProcessingProblem(self.item(self.store.mail_row(i)), len(d), d[-1] if d else "")
                for i, d in sorted(failures.items())]

    def unregistered_terminations(self, day: date, calendar: BusinessCalendar,
                                  unis: UnisData) -> list[UnregisteredTermination]:
        """Terminations accepted at least `unregistered_termination_after` business days before
        `day` whose code UNIS does not show terminating or terminated, and not withdrawn since."""
        since = datetime.combine(day - timedelta(days=self.rules.unregistered_termination_lookback), time(0),
                                 tzinfo=TOKYO)
        out = []
        rows = self.store.accepted_since(Kind.TERMINATION, (since - timedelta(days=1)).isoformat())
        for r in sorted(rows, key=lambda r: (local_time(r["accepted_at"]), r["id"])):
            accepted_at, code = local_time(r["accepted_at"]), r["code"]
            if accepted_at < since:
                continue
            accepted_on = calendar.day_n(accepted_at)
            age = calendar.business_days_between(accepted_on, day)
            if (code is None or age < self.rules.unregistered_termination_after
                    or unis.termination_registered(code) or self._withdrawn_after(code, accepted_at)):
                continue
            ends = ((json.loads(r["fields"]) if r["fields"] else {}).get("form") or {}).get("termination_date")
            out.append(UnregisteredTermination(self.item(r), accepted_on, age, _date_or_none(ends)))
        return out

    def _withdrawn_after(self, code: str, accepted_at: datetime) -> bool:
        return any(p.kind is Kind.TERMINATION_WITHDRAWAL and p.action is Action.ACCEPT and p.accepted_on > accepted_at
                   for p in self.store.requests_for(code))

    def deadlines(self, day: date, waiting: list[MailItem], calendar: BusinessCalendar,
                  unis: UnisData | None) -> list[Deadline]:
        """Termination withdrawals waiting for staff (held or deferred) whose deadline falls on or
        before the next business day's cutoff: tomorrow they are too late."""
        if unis is None:
            return []
        limit = calendar.at_cutoff(calendar.next_business_day(day))
        out = []
        for m in waiting:
            if m.kind != Kind.TERMINATION_WITHDRAWAL.value or not m.code:
                continue
            ends = unis.termination_date(m.code)
            if ends is not None and calendar.withdrawal_deadline(ends) <= limit:
                out.append(Deadline(m, ends, calendar.withdrawal_deadline(ends)))
        return sorted(out, key=lambda x: (x.deadline, x.mail.id))


def collect(store: Store, day: date, now: datetime, *, rules_dir, calendar: BusinessCalendar,
            extract: ExtractStatus, unis: UnisData | None = None, digest_time: time = time(18, 0),
            oauth: OAuthSettings | None = None) -> DigestData:
    """Everything the digest of `day` says, from the state database as it is at `now` (and the
    UNIS extract in use, `unis`, for what needs it: unregistered terminations, deadlines)."""
    q = StateReader(store, rules_dir)
    now = now.astimezone(TOKYO)
    start, end = digest_period(day, digest_time, calendar)
    end = min(end, now)
    mails = q.decided(start, end)
    retried, failed = q.send_problems(start, end)
    held = q.held(day, end, calendar)
    deferred = q.deferred(day, end, calendar)
    problems = Problems(
        alerts=_alerts(q, start, end, day, calendar, extract) + [
            w for w in [expiry_warning(oauth, now, q.rules.credential_warning_days)] if w],
        bounced=q.bounces(start, end), failed=failed,
        retried=retried, processing=q.processing(start, end, mails),
        unreadable=[m for m in mails if "MAIL_UNREADABLE" in m.reasons],
        stale_held=[h for h in held if h.age > q.rules.held_max_age],
        deadlines=q.deadlines(day, [h.mail for h in held] + [x.mail for x in deferred], calendar, unis))
    return DigestData(
        day=day, generated=now, start=start, end=end, today=q.tally(start, end, mails),
        month=q.tally(datetime.combine(day.replace(day=1), time(0), tzinfo=TOKYO), end),
        weeks=q.weeks(end), held=held, staff=q.staff(start, end, calendar),
        resubmissions=q.resubmissions(mails, calendar),
        cancellations=[m for m in mails if "CANCEL_AFTER_ORDER" in m.reasons],
        late_withdrawals=[m for m in mails if "WITHDRAWAL_TOO_LATE" in m.reasons],
        deferred=deferred,
        unregistered_terminations=q.unregistered_terminations(day, calendar, unis) if unis is not None else [],
        problems=problems, decision_labels=dict(q.rules.decision_labels),
        unregistered_after=q.rules.unregistered_termination_after)


def _alerts(q: StateReader, lo: datetime, hi: datetime, day: date, calendar: BusinessCalendar,
            extract: ExtractStatus) -> list[str]:
    alerts = []
    if extract.configured:
        if extract.extracted_at is None:
            alerts.append("UNISの抽出データを取り込めていません。UNISとの突合ができないため、抽出ファイルを確認してください。"
                          + (f"（{extract.error}）" if extract.error else ""))
        else:
            at = extract.extracted_at.astimezone(TOKYO)
            age = calendar.business_days_between(at.date(), day)
            if age > q.rules.unis_max_age:
                alerts.append(f"UNISの抽出データが古くなっています（抽出日時 {japanese_time(at)}、{age}営業日前）。"
                              "新しい抽出ファイルを確認してください。")
            if extract.error:
                alerts.append(f"最新のUNIS抽出ファイルを取り込めませんでした。前回の抽出データを使用しています（{extract.error}）。")
    unreachable = q.events(UNREACHABLE, lo, hi)
    if unreachable:
        first, last = unreachable[0][1], unreachable[-1][1]
        span = japanese_time(first) if japanese_time(first) == japanese_time(last) else \
            f"{japanese_time(first)}〜{japanese_time(last)}"
        alerts.append(f"メールボックスに接続できませんでした（{len(unreachable)}回、{span}）。")
    breaker = q.events("reply circuit breaker open", lo, hi)
    if breaker:
        alerts.append(f"返信数が1時間の上限に達し、返信を一時停止しました（{len(breaker)}回、最初 {japanese_time(breaker[0][1])}）。"
                      "送信ループや誤動作がないか確認してください。")
    for name in ("ledger share failed", "ledger share retry"):
        for _, at, detail in q.events(name, lo, hi):
            alerts.append(f"ファイバーゲート社への管理台帳の共有を送信できませんでした（{japanese_time(at)}、{detail}）。")
    return alerts

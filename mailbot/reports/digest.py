"""The supervisors' daily digest (DOMAIN.md §4–§7), and what mailbot did for one customer code.

    data = collect(store, day, now, rules_dir=…, calendar=…, extract=ExtractStatus(…), unis=…)  # DigestData
    digest = build_digest(settings, store, day, now)     # data + text + HTML + chart → EmailMessage
    send_due_digests(settings, store, transport, now)    # `mailbot run`: each due business day, once
    code_history(store, code)                            # `mailbot history CODE`

The content is computed from the state database only (plus the UNIS extract's age), as plain
dataclasses first (`DigestData`), then rendered with `templates/digest.txt.j2` and
`templates/digest.html.j2` and a small PNG chart drawn with Pillow.  Labels (kinds, decisions)
and the catch-up limit are in `rules/` (kinds.toml [labels], digest.toml).

A mail counts on the (Asia/Tokyo) day of its received time, else of when mailbot first saw it,
and in the digest of the first business day from then on (closed days' mail in the next one);
only decided mails count (a mail still being processed has no decision yet).

Exactly once per business day: the digest of a day gets a `digests` row (state queued) with its
bytes and a Message-ID derived from the day *before* it is sent, and is marked sent after.  A
crash in between resends the same bytes with the same Message-ID; a day already marked sent is
never sent again, and a missed day is sent late, once (back to `catch_up_days`).
"""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path

import jinja2

from mailbot.checks.sender import is_internal
from mailbot.config import Settings
from mailbot.model import Action, Kind
from mailbot.record.sendonce import SendOnce
from mailbot.record.states import SendState
from mailbot.record.store import Store
from mailbot.reference.calendar import BusinessCalendar
from mailbot.reference.data import ReferenceData
from mailbot.reference.unis import UnisData
from mailbot.reply.render import environment, header_text, japanese_date
from mailbot.reply.send import Transport
from mailbot.reports.once import deliver
from mailbot.rules import load_rules, reasons
from mailbot.rules.digest import DECISIONS
from mailbot.text import TOKYO

log = logging.getLogger("mailbot")
FONT = Path("/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf")  # fonts-ipafont-gothic
CHART_SIZE = (600, 262)  # at most 600 × 300
# Bar colours of the chart, per decision.
_COLOURS = {"accept": (46, 139, 87), "remand": (214, 96, 40), "hold": (230, 180, 30), "defer": (70, 120, 200),
            "ignore": (160, 160, 160)}
UNREACHABLE = "mailbox unreachable"  # the event recorded (mail_id NULL) when the mailbox could not be reached


# ---------------------------------------------------------------- rules


# ---------------------------------------------------------------- the content


@dataclass(frozen=True)
class Row:
    """One line of a count table: a kind or a branch, its count per decision."""

    key: str  # kind value or branch name ("" for a mail without a known branch)
    label: str
    counts: dict[str, int]  # decision → count (every decision present, zeros included)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class ReasonCount:
    code: str
    title: str
    count: int


@dataclass(frozen=True)
class Tally:
    """The mails of a period (a day, or the month to date) by kind, decision and branch."""

    start: date
    end: date
    kinds: list[Row]  # every kind, in the order of kinds.toml [labels]
    totals: dict[str, int]  # decision → count
    remand_reasons: list[ReasonCount]  # the remand reasons of remanded mails, most first
    branches: list[Row]  # branches with mail, most first
    cancel_after_order: int = 0  # CANCEL_AFTER_ORDER mails
    withdrawal_too_late: int = 0  # WITHDRAWAL_TOO_LATE mails

    @property
    def total(self) -> int:
        return sum(self.totals.values())


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
    reasons: list[str]


@dataclass(frozen=True)
class HeldItem:
    mail: MailItem
    opened_at: datetime  # Asia/Tokyo
    age: int  # business days from the day it counts from (day N of its opening) to the digest's day


@dataclass(frozen=True)
class DeferredItem:
    mail: MailItem
    waiting: int  # business days since its day N


@dataclass(frozen=True)
class SendProblem:
    mail: MailItem
    message_id: str
    state: str  # the reply's state: queued | sending | sent | failed
    attempts: int
    retries: int  # "reply retry" events on the day
    last_error: str


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
class DigestData:
    day: date
    generated: datetime  # Asia/Tokyo
    today: Tally
    month: Tally
    held: list[HeldItem]  # open at the end of the day, oldest first
    cancellations: list[MailItem]  # CANCEL_AFTER_ORDER on the day
    late_withdrawals: list[MailItem]  # WITHDRAWAL_TOO_LATE on the day
    deferred: list[DeferredItem]  # waiting for the UNIS extract now
    retried: list[SendProblem]  # replies retried on the day (and not given up)
    failed: list[SendProblem]  # replies given up on the day
    unreadable: list[MailItem]  # MAIL_UNREADABLE on the day
    alerts: list[str]
    unregistered_terminations: list[UnregisteredTermination] = field(default_factory=list)  # oldest first
    unregistered_after: int = 0  # business days (rules/digest.toml unregistered_termination_after)
    decision_labels: dict[str, str] = field(default_factory=dict)

    @property
    def problem_count(self) -> int:
        return len(self.retried) + len(self.failed) + len(self.unreadable)


def _date_or_none(value: object) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def local_time(value: str | None) -> datetime | None:
    if not value:
        return None
    t = datetime.fromisoformat(value)
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).astimezone(TOKYO)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=TOKYO)
    return start, start + timedelta(days=1)


class StateReader:
    """The state database read for one digest."""

    def __init__(self, store: Store, rules_dir: Path):
        self.store = store
        self.rules = load_rules(rules_dir).digest
        self.reasons = reasons(rules_dir)

    def item(self, r) -> MailItem:
        kind = r["kind"] or Kind.UNKNOWN.value
        action = r["action"]
        return MailItem(
            id=r["id"], received=local_time(r["received"] or r["first_seen"]), kind=kind,
            kind_label=self.rules.kind_labels.get(kind, kind), code=r["code"], subject=r["subject"] or "",
            sender=r["sender"] or "", branch=r["branch"], action=action,
            decision_label=self.rules.decision_labels.get(action, action or "-") if action else "-",
            reasons=json.loads(r["reasons"]) if r["reasons"] else [])

    def mails(self, start: date, end: date) -> list[MailItem]:
        """The decided mails of the days start … end (inclusive), oldest first."""
        lo, hi = day_bounds(start)[0], day_bounds(end)[1]
        # ISO strings of any offset sort within a day of their instant: a wide window, then exact.
        rows = self.store.decided_between((lo - timedelta(days=1)).date().isoformat(),
                                          (hi + timedelta(days=2)).date().isoformat())
        items = [self.item(r) for r in rows]
        items = [m for m in items if m.received is not None and lo <= m.received < hi
                 and not self.rules.left_out.intersection(m.reasons)]
        return sorted(items, key=lambda m: (m.received, m.id))

    def events_on(self, day: date, event: str) -> list[tuple[int | None, datetime, str]]:
        lo, hi = day_bounds(day)
        rows = self.store.events_between(event, (lo - timedelta(days=1)).date().isoformat(),
                                         (hi + timedelta(days=2)).date().isoformat())
        out = [(r["mail_id"], local_time(r["at"]), r["detail"] or "") for r in rows]
        return [e for e in out if lo <= e[1] < hi]

    def tally(self, start: date, end: date) -> Tally:
        mails = self.mails(start, end)
        labels = self.rules.kind_labels
        by_kind = {k: Counter() for k in labels}
        by_branch: dict[str, Counter] = {}
        remand_reasons: Counter = Counter()
        for m in mails:
            by_kind.setdefault(m.kind, Counter())[m.action] += 1
            by_branch.setdefault(m.branch or "", Counter())[m.action] += 1
            if m.action == Action.REMAND.value:
                for code in dict.fromkeys(m.reasons):
                    reason = self.reasons.get(code)
                    if reason is None or reason.action is Action.REMAND:
                        remand_reasons[code] += 1

        def counts(c: Counter) -> dict[str, int]:
            return {d: c.get(d, 0) for d in DECISIONS}

        kinds = [Row(k, labels.get(k, k), counts(c)) for k, c in by_kind.items()]
        branches = sorted((Row(b, b or "（支店不明）", counts(c)) for b, c in by_branch.items()),
                          key=lambda r: (-r.total, r.key == "", r.key))
        ranked = sorted(remand_reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        return Tally(
            start=start, end=end, kinds=kinds,
            totals={d: sum(r.counts[d] for r in kinds) for d in DECISIONS},
            remand_reasons=[ReasonCount(code, self.reasons[code].title if code in self.reasons else code, n)
                            for code, n in ranked],
            branches=branches,
            cancel_after_order=sum("CANCEL_AFTER_ORDER" in m.reasons for m in mails),
            withdrawal_too_late=sum("WITHDRAWAL_TOO_LATE" in m.reasons for m in mails))

    def held(self, day: date, until: datetime, calendar: BusinessCalendar) -> list[HeldItem]:
        """Held items open at `until` (the end of the day, or now when that is earlier)."""
        rows = self.store.held_rows_open_after((until - timedelta(days=2)).date().isoformat())
        out = []
        for r in rows:
            opened, closed = local_time(r["h_opened"]), local_time(r["h_closed"])
            if opened > until or (closed is not None and closed <= until):
                continue
            out.append(HeldItem(self.item(r), opened, calendar.business_days_between(calendar.day_n(opened), day)))
        return sorted(out, key=lambda h: (h.opened_at, h.mail.id))

    def deferred(self, day: date, until: datetime, calendar: BusinessCalendar) -> list[DeferredItem]:
        rows = self.store.unfinished_with_action(Action.DEFER)
        items = sorted((m for m in map(self.item, rows) if m.received is None or m.received <= until),
                       key=lambda m: (m.received or until, m.id))
        return [DeferredItem(m, calendar.business_days_between(calendar.day_n(m.received), day) if m.received else 0)
                for m in items]

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

    def send_problems(self, day: date) -> tuple[list[SendProblem], list[SendProblem]]:
        lo, hi = day_bounds(day)
        retries = Counter(mail_id for mail_id, _, _ in self.events_on(day, "reply retry"))
        failed_mails = {mail_id for mail_id, _, _ in self.events_on(day, "reply failed")}
        rows = self.store.reply_problem_rows(sorted(set(retries) | failed_mails))
        retried, failed = [], []
        for r in rows:
            sent_at = local_time(r["r_sent_at"])
            problem = SendProblem(self.item(r), r["r_message_id"], r["r_state"], r["r_attempts"],
                                  retries.get(r["id"], 0), r["r_error"] or "")
            if r["r_state"] == SendState.FAILED:
                if r["id"] in failed_mails:
                    failed.append(problem)
            elif r["id"] in retries or (r["r_attempts"] > 1 and sent_at is not None and lo <= sent_at < hi):
                retried.append(problem)
        return retried, failed


def collect(store: Store, day: date, now: datetime, *, rules_dir: Path, calendar: BusinessCalendar,
            extract: ExtractStatus, unis: UnisData | None = None) -> DigestData:
    """Everything the digest of `day` says, from the state database as it is at `now` (and the
    UNIS extract in use, `unis`, for the terminations the branches have not registered yet)."""
    q = StateReader(store, rules_dir)
    now = now.astimezone(TOKYO)
    until = min(day_bounds(day)[1], now)
    # The day's part runs from the day after the previous business day: Tuesday's digest after a
    # holiday weekend also counts what came in on Saturday, Sunday and the holiday.
    since = calendar.previous_business_day(day) + timedelta(days=1)
    today = q.tally(since, day)
    mails = q.mails(since, day)
    retried, failed = q.send_problems(day)
    return DigestData(
        day=day, generated=now, today=today, month=q.tally(day.replace(day=1), day),
        held=q.held(day, until, calendar),
        cancellations=[m for m in mails if "CANCEL_AFTER_ORDER" in m.reasons],
        late_withdrawals=[m for m in mails if "WITHDRAWAL_TOO_LATE" in m.reasons],
        deferred=q.deferred(day, until, calendar),
        retried=retried, failed=failed,
        unreadable=[m for m in mails if "MAIL_UNREADABLE" in m.reasons],
        alerts=_alerts(q, day, calendar, extract),
        decision_labels=dict(q.rules.decision_labels),
        unregistered_terminations=q.unregistered_terminations(day, calendar, unis) if unis is not None else [],
        unregistered_after=q.rules.unregistered_termination_after)


def _alerts(q: StateReader, day: date, calendar: BusinessCalendar, extract: ExtractStatus) -> list[str]:
    alerts = []
    if extract.configured:
        if extract.extracted_at is None:
            alerts.append("UNISの抽出データを取り込めていません。UNISとの突合ができないため、抽出ファイルを確認してください。"
                          + (f"（{extract.error}）" if extract.error else ""))
        else:
            at = extract.extracted_at.astimezone(TOKYO)
            age = calendar.business_days_between(at.date(), day)
            if age > q.rules.unis_max_age:
                alerts.append(f"UNISの抽出データが古くなっています（抽出日時 {at:%Y-%m-%d %H:%M}、{age}営業日前）。"
                              "新しい抽出ファイルを確認してください。")
            if extract.error:
                alerts.append(f"最新のUNIS抽出ファイルを取り込めませんでした。前回の抽出データを使用しています（{extract.error}）。")
    unreachable = q.events_on(day, UNREACHABLE)
    if unreachable:
        first, last = unreachable[0][1], unreachable[-1][1]
        span = f"{first:%H:%M}" if first.strftime("%H:%M") == last.strftime("%H:%M") else f"{first:%H:%M}〜{last:%H:%M}"
        alerts.append(f"メールボックスに接続できませんでした（{len(unreachable)}回、{span}）。")
    breaker = q.events_on(day, "reply circuit breaker open")
    if breaker:
        alerts.append(f"返信数が1時間の上限に達し、返信を一時停止しました（{len(breaker)}回、最初 {breaker[0][1]:%H:%M}）。"
                      "送信ループや誤動作がないか確認してください。")
    return alerts


def extract_status(settings: Settings, reference=None) -> ExtractStatus:
    """The UNIS extract of these settings: `reference` (a ReferenceData) when given, else loaded
    (importing the extract when its file changed, as a poll would)."""
    with _reference(settings, reference) as ref:
        return _extract_status(settings, ref)


@contextmanager
def _reference(settings: Settings, reference=None) -> Iterator[ReferenceData | None]:
    """`reference` when given, else the settings' reference data loaded for the digest and closed
    after (None when no UNIS extract is configured: the digest reads nothing else of it)."""
    if reference is not None or settings.unis_extract is None:
        yield reference
        return
    loaded = ReferenceData.load(settings)
    try:
        yield loaded
    finally:
        loaded.close()


def _extract_status(settings: Settings, reference: ReferenceData | None) -> ExtractStatus:
    if settings.unis_extract is None or reference is None:
        return ExtractStatus(configured=False)
    unis = reference.unis
    if unis is None or unis.info is None:
        error = str(unis.error) if unis is not None and unis.error else "; ".join(reference.errors) or None
        return ExtractStatus(configured=True, error=error)
    return ExtractStatus(configured=True, extracted_at=unis.info.extracted_at,
                         error=str(unis.error) if unis.error else None)


def collect_for(settings: Settings, store: Store, day: date, now: datetime, *, reference=None,
                calendar: BusinessCalendar | None = None) -> DigestData:
    """`collect` with the settings' rules, calendar and UNIS extract."""
    with _reference(settings, reference) as ref:
        unis = ref.unis if ref is not None and ref.unis is not None and ref.unis.info is not None else None
        return collect(store, day, now, rules_dir=settings.rules_dir,
                       calendar=calendar or BusinessCalendar.load(settings.rules_dir),
                       extract=_extract_status(settings, ref), unis=unis)


# ---------------------------------------------------------------- rendering


def _environment(templates_dir: Path) -> jinja2.Environment:
    return environment(templates_dir, trim_blocks=True)


def _context(data: DigestData) -> dict[str, object]:
    return {"d": data, "labels": data.decision_labels, "decisions": DECISIONS,
            "title": f"USEN SPOT 日次レポート {data.day.year}年{japanese_date(data.day)}"}


def render_text(data: DigestData, templates_dir: Path) -> str:
    return _environment(templates_dir).get_template("digest.txt.j2").render(**_context(data))


def render_html(data: DigestData, templates_dir: Path, chart_cid: str | None) -> str:
    return _environment(templates_dir).get_template("digest.html.j2").render(**_context(data), chart_cid=chart_cid)


def chart_png(data: DigestData, font_path: Path = FONT) -> bytes:
    """The day's mails by kind (horizontal bars), stacked by decision, as a PNG of CHART_SIZE."""
    from PIL import Image, ImageDraw, ImageFont

    japanese = font_path.exists()
    if japanese:
        font = ImageFont.truetype(str(font_path), 12)
        title_font = ImageFont.truetype(str(font_path), 14)
    else:  # no Japanese glyphs: the kind and decision values instead of their names
        font = title_font = ImageFont.load_default()
    width, height = CHART_SIZE
    image = Image.new("RGB", CHART_SIZE, "white")
    draw = ImageDraw.Draw(image)
    rows = data.today.kinds
    left, right, top, row_h, bar_h = 130, 40, 30, 22, 14
    draw.text((10, 8), f"{data.day.month}月{data.day.day}日の受信（種別・判定別）" if japanese
              else f"Mails of {data.day.isoformat()} by kind and decision", fill="black", font=title_font)
    most = max((r.total for r in rows), default=0)
    scale = (width - left - right) / most if most else 0
    for i, r in enumerate(rows):
        y = top + i * row_h
        draw.text((10, y + 1), r.label if japanese else r.key, fill="black", font=font)
        x = float(left)
        for d in DECISIONS:
            n = r.counts[d]
            if n:
                draw.rectangle([round(x), y + 2, round(x + n * scale) - 1, y + 2 + bar_h], fill=_COLOURS[d])
                x += n * scale
        draw.text((round(x) + 4, y + 1), str(r.total), fill="black", font=font)
    draw.line([left, top, left, top + len(rows) * row_h], fill=(120, 120, 120))
    x, y = 10, top + len(rows) * row_h + 10
    for d in DECISIONS:
        label = data.decision_labels.get(d, d) if japanese else d
        draw.rectangle([x, y + 2, x + 11, y + 13], fill=_COLOURS[d])
        draw.text((x + 15, y), label, fill="black", font=font)
        x += 15 + round(draw.textlength(label, font=font)) + 18
    out = io.BytesIO()
    image.quantize(colors=64).save(out, format="PNG", optimize=True)  # a palette image: a few KB
    return out.getvalue()


# ---------------------------------------------------------------- the mail


@dataclass(frozen=True)
class Digest:
    data: DigestData
    message: EmailMessage
    message_id: str
    recipients: list[str]


def digest_message_id(day: date, sender: str) -> str:
    """Derived from the day: a digest sent again after a crash has the same Message-ID."""
    return f"<digest.{day:%Y%m%d}.mailbot@{sender.rpartition('@')[2]}>"


def digest_subject(day: date) -> str:
    return f"【USEN SPOT 日次レポート】{day.year}年{day.month}月{day.day}日"


_dropped: set[str] = set()  # outside recipients already logged (digests are looked for after every poll)


def digest_recipients(settings: Settings) -> list[str]:
    """[digest] recipients inside the internal domains (others are dropped and logged once), none
    twice, never the shared mailbox itself (the bot would read its own digest)."""
    own = settings.reply_from.lower()
    seen = {own}
    out = []
    for r in settings.digest_recipients:
        addr = header_text(r, 250).lower()
        if addr in seen:
            continue
        if not is_internal(addr, settings.internal_domains):
            if addr not in _dropped:
                _dropped.add(addr)
                log.warning("digest: recipient %s is outside the internal domains: not sent to", addr)
            continue
        seen.add(addr)
        out.append(addr)
    return out


def compose(data: DigestData, settings: Settings, recipients: list[str], now: datetime) -> EmailMessage:
    """text/plain and multipart/related (HTML + the chart) as alternatives."""
    domain = settings.reply_from.rpartition("@")[2]
    cid = f"<chart.{data.day:%Y%m%d}.mailbot@{domain}>"
    msg = EmailMessage(policy=SMTP)
    msg["From"] = header_text(settings.reply_from)
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = header_text(digest_subject(data.day))
    msg["Date"] = format_datetime(now.astimezone(TOKYO))
    msg["Message-ID"] = digest_message_id(data.day, settings.reply_from)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(render_text(data, settings.templates_dir), charset="utf-8")
    msg.add_alternative(render_html(data, settings.templates_dir, cid[1:-1]), subtype="html", charset="utf-8")
    html_part = msg.get_payload()[1]
    html_part.add_related(chart_png(data), "image", "png", cid=cid, filename="chart.png", disposition="inline")
    return msg


def build_digest(settings: Settings, store: Store, day: date, now: datetime, *, reference=None,
                 calendar: BusinessCalendar | None = None) -> Digest:
    data = collect_for(settings, store, day, now, reference=reference, calendar=calendar)
    recipients = digest_recipients(settings)
    message = compose(data, settings, recipients, now)
    return Digest(data, message, message["Message-ID"], recipients)


def digest_text(settings: Settings, store: Store, day: date, now: datetime, *, reference=None) -> str:
    """The plain-text digest of `day` (`mailbot digest` without --send)."""
    data = collect_for(settings, store, day, now, reference=reference)
    return render_text(data, settings.templates_dir)


# ---------------------------------------------------------------- once per business day


def _time_of_day(value: str | time) -> time:
    if isinstance(value, time):
        return value
    hh, _, mm = value.partition(":")
    return time(int(hh), int(mm))


def first_mail_day(store: Store) -> date | None:
    """The day mailbot took in its first mail (Asia/Tokyo)."""
    first = store.first_seen()
    return local_time(first).date() if first else None


def due_days(store: Store, calendar: BusinessCalendar, now: datetime, digest_time: str | time,
             catch_up_days: int = 10) -> list[date]:
    """The business days whose digest time has passed and whose digest was not sent, oldest first:
    back to the first day with mail, and at most `catch_up_days` (rules/digest.toml) days back."""
    first = first_mail_day(store)
    if first is None:
        return []
    at = _time_of_day(digest_time)
    return SendOnce(store, "digests").due_days(calendar, now.astimezone(TOKYO), first,
                                               lambda day: datetime.combine(day, at, tzinfo=TOKYO), catch_up_days)


@dataclass(frozen=True)
class DigestResult:
    day: date
    state: str  # sent | queued (to retry) | failed | already sent | being sent elsewhere | skipped (failed before)
    message_id: str | None = None
    detail: str = ""


def digest_row(store: Store, day: date):
    return SendOnce(store, "digests").row(day.isoformat())


def send_digest(settings: Settings, store: Store, transport: Transport, day: date, now: datetime, *,
                reference=None, calendar: BusinessCalendar | None = None, retry_failed: bool = True) -> DigestResult:
    """Send the digest of `day` unless it was sent already.  A queued row (a crash or a temporary
    failure before) is sent again as it is, with the same Message-ID."""
    once = SendOnce(store, "digests")
    key = day.isoformat()
    row = once.row(key)
    if row is not None and row["state"] == SendState.SENT:
        return DigestResult(day, "already sent", row["message_id"], row["sent_at"] or "")
    if not digest_recipients(settings):
        return DigestResult(day, "no recipients")
    if row is not None and row["state"] == SendState.FAILED and not retry_failed:
        return DigestResult(day, "skipped", row["message_id"], row["last_error"] or "")
    if row is None:
        digest = build_digest(settings, store, day, now, reference=reference, calendar=calendar)
        row = once.queue(key, digest.message_id, digest.message.as_bytes())
        if row["state"] == SendState.SENT:  # another process was quicker
            return DigestResult(day, "already sent", row["message_id"])
    # One sender at a time (`mailbot run` and `mailbot digest --send` may meet on the same day).
    sent = deliver(once, key, transport, "digest")
    return DigestResult(day, sent.state, sent.message_id, sent.detail)


def send_due_digests(settings: Settings, store: Store, transport: Transport, now: datetime, *,
                     reference=None) -> list[DigestResult]:
    """Each due business day's digest, once.  No recipients: nothing.  A temporary failure stays
    queued and is tried again at the next call; a permanent one is not retried automatically
    (`mailbot digest --send --date D` does)."""
    if not digest_recipients(settings):
        return []
    rules = load_rules(settings.rules_dir).digest
    calendar = BusinessCalendar.load(settings.rules_dir)
    days = due_days(store, calendar, now, settings.digest_time, rules.catch_up_days)
    owned = None
    results = []
    try:
        for day in days:
            if reference is None and digest_row(store, day) is None and settings.unis_extract is not None:
                reference = owned = ReferenceData.load(settings)  # once, for every day to build
            results.append(send_digest(settings, store, transport, day, now, reference=reference,
                                       calendar=calendar, retry_failed=False))
    finally:
        if owned is not None:
            owned.close()
    return results

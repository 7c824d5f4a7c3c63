"""The supervisors' daily digest (DOMAIN.md §4–§9): the mail that carries it, once per business day.

    data = collect_for(settings, store, day, now)        # DigestData (reports/summary.py)
    digest = build_digest(settings, store, day, now)     # data + text + HTML + chart → EmailMessage
    send_due_digests(settings, store, transport, now)    # `mailbot run`: each due business day, once

The content (`summary.py`) covers the period since the previous digest; it is rendered with
`templates/digest.txt.j2` and `templates/digest.html.j2`, the HTML part with the PNG chart of
`chart.py` inline.  Labels and limits are in `rules/` (kinds.toml [labels], reasons.toml labels,
digest.toml).

Exactly once per business day: the digest of a day gets a `digests` row (state queued) with its
bytes and a Message-ID derived from the day *before* it is sent, and is marked sent after.  A
crash in between resends the same bytes with the same Message-ID; a day already marked sent is
never sent again, and a missed day is sent late, once (back to `catch_up_days`).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path

import jinja2

from mailbot.checks.sender import is_internal
from mailbot.config import Settings
from mailbot.record.sendonce import SendOnce
from mailbot.record.states import SendState
from mailbot.record.store import Store
from mailbot.reference.calendar import BusinessCalendar, business_calendar
from mailbot.reference.data import ReferenceData
from mailbot.reply.render import environment, header_text, japanese_date
from mailbot.reply.send import Transport
from mailbot.reports.chart import chart_png
from mailbot.reports.once import deliver
from mailbot.reports.summary import (  # noqa: F401 - the digest's content, re-exported for its users
    UNREACHABLE,
    DigestData,
    ExtractStatus,
    StateReader,
    collect,
    local_time,
)
from mailbot.rules import load_rules
from mailbot.rules.digest import DECISIONS
from mailbot.text import TOKYO

log = logging.getLogger("mailbot")


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
        unis = ref.extract if ref is not None else None
        return collect(store, day, now, rules_dir=settings.rules_dir,
                       calendar=calendar or business_calendar(settings.rules_dir),
                       extract=_extract_status(settings, ref), unis=unis, digest_time=settings.digest_time,
                       oauth=settings.oauth)


# ---------------------------------------------------------------- rendering


def _environment(templates_dir: Path) -> jinja2.Environment:
    return environment(templates_dir, trim_blocks=True)


def _context(data: DigestData) -> dict[str, object]:
    return {"d": data, "labels": data.decision_labels, "decisions": DECISIONS,
            "title": f"USEN SPOT 日次レポート {data.day.year}年{japanese_date(data.day)}"}


def render_text(data: DigestData, templates_dir: Path) -> str:
    return _environment(templates_dir).get_template("digest.txt.j2").render(**_context(data))


def render_html(data: DigestData, templates_dir: Path, chart_src: str | None) -> str:
    """The HTML part; `chart_src` is where the chart's <img> finds it ("cid:…" in the mail, a data:
    URL in a file of its own), None for no chart."""
    return _environment(templates_dir).get_template("digest.html.j2").render(**_context(data), chart_src=chart_src)


def html_page(settings: Settings, store: Store, day: date, now: datetime, *, reference=None) -> str:
    """The digest's HTML with its chart inside (a file a browser opens: `mailbot digest --html`)."""
    data = collect_for(settings, store, day, now, reference=reference)
    return render_html(data, settings.templates_dir,
                       "data:image/png;base64," + base64.b64encode(chart_png(data)).decode("ascii"))


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
    msg.add_alternative(render_html(data, settings.templates_dir, "cid:" + cid[1:-1]), subtype="html", charset="utf-8")
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


def first_mail_day(store: Store) -> date | None:
    """The day mailbot took in its first mail (Asia/Tokyo)."""
    first = store.first_seen()
    return local_time(first).date() if first else None


def due_days(store: Store, calendar: BusinessCalendar, now: datetime, digest_time: time,
             catch_up_days: int = 10) -> list[date]:
    """The business days whose digest time has passed and whose digest was not sent, oldest first:
    back to the first day with mail, and at most `catch_up_days` (rules/digest.toml) days back."""
    first = first_mail_day(store)
    if first is None:
        return []
    return SendOnce(store, "digests").due_days(calendar, now.astimezone(TOKYO), first,
                                               lambda day: datetime.combine(day, digest_time, tzinfo=TOKYO),
                                               catch_up_days)


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
    calendar = business_calendar(settings.rules_dir)
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

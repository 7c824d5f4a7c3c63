"""Is the bot alive and well? (`mailbot health`: for cron, a monitoring agent or a container's
health check.)  Each problem is a stable code and a Japanese detail; none means healthy.

    POLL_STALE       no successful poll for more than [health] max_poll_age seconds (or never)
    UNIS_STALE       the UNIS extract in use is older than one business day (rules/digest.toml)
    UNIS_MISSING     an extract is configured but none could be imported
    REPLY_FAILING    replies given up in the last 24 hours, or being retried
    DIGEST_FAILING   a digest or a 管理台帳 share that failed, or is being retried
    HELD_STALE       held items waiting longer than [health] max_held_age business days
    CREDENTIAL_EXPIRING  the Microsoft 365 app's certificate or secret expires within 30 days
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mailbot.auth import expiry_warning
from mailbot.config import Settings
from mailbot.pipeline import POLL_OK
from mailbot.record.store import Store
from mailbot.reference.calendar import business_calendar
from mailbot.reports.digest import extract_status
from mailbot.rules import load_rules
from mailbot.text import TOKYO, japanese_time


@dataclass(frozen=True)
class Problem:
    code: str
    detail: str


def health(settings: Settings, store: Store, now: datetime, *, reference=None) -> list[Problem]:
    now = now.astimezone(TOKYO)
    calendar = business_calendar(settings.rules_dir)
    problems = []
    polled = store.status(POLL_OK)
    limit = settings.service.max_poll_age
    if polled is None:
        problems.append(Problem("POLL_STALE", "まだ一度もポーリングに成功していません。"))
    else:
        age = (now - polled[1]).total_seconds()
        if age > limit:
            problems.append(Problem("POLL_STALE", f"最後に成功したポーリングは{int(age)}秒前です"
                                                  f"（{japanese_time(polled[1])}、上限{limit}秒）。"))
    extract = extract_status(settings, reference)
    if extract.configured and extract.extracted_at is None:
        problems.append(Problem("UNIS_MISSING", "UNISの抽出データを取り込めていません"
                                + (f"（{extract.error}）。" if extract.error else "。")))
    elif extract.configured:
        at = extract.extracted_at.astimezone(TOKYO)
        days = calendar.business_days_between(at.date(), now.date())
        if days > load_rules(settings.rules_dir).digest.unis_max_age:
            problems.append(Problem("UNIS_STALE", f"UNISの抽出データが{days}営業日前のものです（抽出日時 {japanese_time(at)}）。"))
    failed, retrying = store.reply_trouble(now - timedelta(days=1))
    if failed or retrying:
        problems.append(Problem("REPLY_FAILING", f"この24時間に送信を断念した返信 {failed}件、再送中の返信 {retrying}件があります。"))
    for table, name in (("digests", "日次レポート"), ("ledger_shares", "管理台帳の共有")):
        for day, state, error in store.once_trouble(table):
            problems.append(Problem("DIGEST_FAILING", f"{day} の{name}が送信できていません（{state}：{error or '－'}）。"))
    warning = expiry_warning(settings.oauth, now, load_rules(settings.rules_dir).digest.credential_warning_days)
    if warning:
        problems.append(Problem("CREDENTIAL_EXPIRING", warning))
    today = calendar.day_n(now)
    stale = [(m, h) for m, h in store.open_held_items()
             if calendar.business_days_between(calendar.day_n(h.opened_at), today) > settings.service.max_held_age]
    if stale:
        oldest = min(h.opened_at for _, h in stale).astimezone(TOKYO)
        problems.append(Problem("HELD_STALE", f"{settings.service.max_held_age}営業日を超えて保留中のメールが{len(stale)}件あります"
                                              f"（最も古いもの {japanese_time(oldest)}）。"))
    return problems

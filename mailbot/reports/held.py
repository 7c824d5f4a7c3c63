"""What waits for office-center staff in the held folder (`mailbot held`): the open held items,
oldest first, with their age in business days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mailbot.record.store import Store
from mailbot.reference.calendar import business_calendar
from mailbot.rules import load_rules


@dataclass(frozen=True)
class HeldLine:
    held_since: datetime  # Asia/Tokyo
    age: int  # business days since the day it was held
    kind: str
    kind_label: str
    code: str
    reasons: list[str]  # codes
    reason_labels: list[str]  # Japanese (rules/reasons.toml label)
    subject: str


def open_held(database: Path, rules_dir: Path, now: datetime) -> list[HeldLine]:
    """The held items staff have not decided yet; none before the bot's first poll."""
    if not database.exists():
        return []
    calendar = business_calendar(rules_dir)
    today = calendar.day_n(calendar.local(now))
    store = Store(database)
    try:
        items = store.open_held_items()
    finally:
        store.close()
    rules = load_rules(rules_dir)
    out = []
    for m, h in items:
        codes = list(dict.fromkeys([code for code, _ in m.findings] or list(m.reasons)))
        out.append(HeldLine(calendar.local(h.opened_at),
                            max(0, calendar.business_days_between(calendar.day_n(h.opened_at), today)),
                            m.kind or "", rules.kind_labels.get(m.kind or "unknown", m.kind or ""), m.code or "", codes,
                            [rules.reasons[c].label if c in rules.reasons else c for c in codes], m.subject))
    return out

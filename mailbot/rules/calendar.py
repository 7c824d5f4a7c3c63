"""rules/calendar.toml: the office's time zone, the daily cut-off, closed and open days, and the
business days of the equipment order's schedule and the withdrawal deadline (DOMAIN.md §5)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailbot.rules.base import RulesError, RulesFile
from mailbot.text import TOKYO

_MONTH_DAY = re.compile(r"^(\d{2})-(\d{2})$")


@dataclass(frozen=True)
class Closure:
    """A range of closed days: every year (month-day, may run over the year end) or once."""

    start: tuple[int, int] | date
    end: tuple[int, int] | date
    name: str

    def __contains__(self, d: date) -> bool:
        if isinstance(self.start, date):
            assert isinstance(self.end, date)
            return self.start <= d <= self.end
        md = (d.month, d.day)
        if self.start <= self.end:
            return self.start <= md <= self.end
        return md >= self.start or md <= self.end  # e.g. 12-29 … 01-03


@dataclass(frozen=True)
class CalendarRules:
    tz: ZoneInfo
    cutoff: time
    national_holidays: bool
    closures: tuple[Closure, ...]
    open_days: frozenset[date]
    equipment_offsets: tuple[int, int, int, int]
    withdrawal_days: int


def build_calendar_rules(file: RulesFile) -> CalendarRules:
    data = file.data

    def fail(key: str, what: str) -> RulesError:
        return file.error(key, what)

    try:
        tz = ZoneInfo(data.get("timezone", TOKYO.key))
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise fail("timezone", f"unknown time zone {data.get('timezone')!r}") from None
    cutoff_text = data.get("cutoff", "17:00")
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", cutoff_text) if isinstance(cutoff_text, str) else None
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        raise fail("cutoff", f"expected a time of day like \"17:00\", got {cutoff_text!r}")
    holidays = data.get("national_holidays", True)
    if not isinstance(holidays, bool):
        raise fail("national_holidays", "expected true or false")

    closed = data.get("closed") or {}
    closures: list[Closure] = []
    for i, entry in enumerate(closed.get("recurring", [])):
        key = f"closed.recurring[{i}]"
        if not isinstance(entry, dict) or "from" not in entry:
            raise fail(key, 'expected { from = "MM-DD", to = "MM-DD", name = "…" }')
        start = _month_day(entry["from"], lambda what: fail(f"{key}.from", what))
        end = _month_day(entry.get("to", entry["from"]), lambda what: fail(f"{key}.to", what))
        closures.append(Closure(start, end, str(entry.get("name", "休業日"))))
    for i, entry in enumerate(closed.get("dates", [])):
        key = f"closed.dates[{i}]"
        if isinstance(entry, (str, date)):
            d = _date(entry, lambda what: fail(key, what))
            closures.append(Closure(d, d, "休業日"))
        elif isinstance(entry, dict) and "from" in entry:
            start = _date(entry["from"], lambda what: fail(f"{key}.from", what))
            end = _date(entry.get("to", entry["from"]), lambda what: fail(f"{key}.to", what))
            if end < start:
                raise fail(key, "to is before from")
            closures.append(Closure(start, end, str(entry.get("name", "休業日"))))
        else:
            raise fail(key, 'expected "YYYY-MM-DD" or { from = "YYYY-MM-DD", to = "YYYY-MM-DD", name = "…" }')
    opened = frozenset(_date(e, lambda what, i=i: fail(f"open.dates[{i}]", what))
                       for i, e in enumerate((data.get("open") or {}).get("dates", [])))

    eq = data.get("equipment_order") or {}
    offsets = []
    for k, default in (("registered", 1), ("shipped", 2), ("arrive_from", 3), ("arrive_to", 5)):
        v = eq.get(k, default)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise fail(f"equipment_order.{k}", f"expected a number of business days, got {v!r}")
        offsets.append(v)
    if offsets != sorted(offsets):
        raise fail("equipment_order", "the days must not decrease (registered ≤ shipped ≤ arrive_from ≤ arrive_to)")
    wd = (data.get("termination_withdrawal") or {}).get("business_days_before", 3)
    if not isinstance(wd, int) or isinstance(wd, bool) or wd < 0:
        raise fail("termination_withdrawal.business_days_before", f"expected a number of days, got {wd!r}")
    return CalendarRules(tz=tz, cutoff=time(int(m[1]), int(m[2])), national_holidays=holidays, closures=tuple(closures),
               open_days=opened, equipment_offsets=(offsets[0], offsets[1], offsets[2], offsets[3]),
               withdrawal_days=wd)


def _month_day(value: Any, fail: Any) -> tuple[int, int]:
    m = _MONTH_DAY.match(value) if isinstance(value, str) else None
    if not m:
        raise fail(f'expected "MM-DD", got {value!r}')
    month, day = int(m[1]), int(m[2])
    try:
        date(2024, month, day)  # a leap year: 02-29 is a valid month-day
    except ValueError:
        raise fail(f"{value!r} is not a day of the year") from None
    return month, day


def _date(value: Any, fail: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value  # TOML date literal
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise fail(f'expected a date "YYYY-MM-DD", got {value!r}')

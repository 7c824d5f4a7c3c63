"""Business days, the daily cutoff and the dates the replies promise (DOMAIN.md §5).

Times are Asia/Tokyo.  A business day is Monday–Friday, not a Japanese national holiday
(jpholiday) and not one of the company's closed days; all of it is `rules/calendar.toml`.

    cal = BusinessCalendar.load(settings.rules_dir)
    n = cal.day_n(received)                  # after the cutoff or on a closed day: the next business day
    cal.equipment_schedule(n)                # (registered N+1, shipped N+2, arrive N+3 … N+5)
    cal.withdrawal_deadline(date(2026, 11, 27))   # 2026-11-24 17:00 JST (11-23 is 勤労感謝の日)

Conventions: the cutoff is exclusive (received at 17:00:00 is after the cutoff); a naive
datetime is taken as Tokyo time; `add_business_days(d, 0)` is d itself, even on a closed day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

import jpholiday

from mailbot.config import DEFAULT_RULES
from mailbot.rules import calendar_rules, load_rules
from mailbot.rules.calendar import CalendarRules, Closure
from mailbot.text import TOKYO

RULES_FILE = "calendar.toml"
_MONTH_DAY = re.compile(r"^(\d{2})-(\d{2})$")


class EquipmentSchedule(NamedTuple):
    """The dates an equipment order's acceptance states (business days after day N)."""

    registered: date  # N+1: registered at FiberGate
    shipped: date  # N+2: kitted and shipped
    arrive_from: date  # N+3: at the branch from …
    arrive_to: date  # N+5: … to


@dataclass
class BusinessCalendar:
    tz: ZoneInfo = TOKYO
    cutoff: time = time(17, 0)
    national_holidays: bool = True
    closures: tuple[Closure, ...] = ()
    open_days: frozenset[date] = frozenset()
    equipment_offsets: tuple[int, int, int, int] = (1, 2, 3, 5)
    withdrawal_days: int = 3
    _cache: dict[date, str | None] = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------ loading

    @classmethod
    def load(cls, rules_dir: Path = DEFAULT_RULES) -> BusinessCalendar:
        """The calendar of rules_dir's calendar.toml."""
        return cls.from_rules(calendar_rules(rules_dir))

    @classmethod
    def from_rules(cls, rules: CalendarRules) -> BusinessCalendar:
        return cls(tz=rules.tz, cutoff=rules.cutoff, national_holidays=rules.national_holidays,
                   closures=rules.closures, open_days=rules.open_days, equipment_offsets=rules.equipment_offsets,
                   withdrawal_days=rules.withdrawal_days)

    # ------------------------------------------------------------ days

    def closed_reason(self, d: date) -> str | None:
        """Why d is not a business day ("土曜日", "勤労感謝の日", "年末年始休業" …), None if it is one."""
        if isinstance(d, datetime):
            d = d.date()
        if d in self._cache:
            return self._cache[d]
        reason: str | None = None
        if d not in self.open_days:
            if d.weekday() >= 5:
                reason = "土曜日" if d.weekday() == 5 else "日曜日"
            elif self.national_holidays and (name := jpholiday.is_holiday_name(d)):
                reason = name
            else:
                reason = next((c.name for c in self.closures if d in c), None)
        self._cache[d] = reason
        return reason

    def is_business_day(self, d: date) -> bool:
        return self.closed_reason(d) is None

    def next_business_day(self, d: date) -> date:
        """The first business day after d."""
        return self.add_business_days(d, 1)

    def previous_business_day(self, d: date) -> date:
        """The last business day before d."""
        return self.add_business_days(d, -1)

    def add_business_days(self, d: date, n: int) -> date:
        """The n-th business day after d (before d when n < 0); d itself when n == 0."""
        if isinstance(d, datetime):
            d = d.date()
        step = timedelta(days=1 if n > 0 else -1)
        left = abs(n)
        while left:
            d += step
            if self.is_business_day(d):
                left -= 1
        return d

    def nth_business_day(self, year: int, month: int, n: int) -> date:
        """The n-th business day of the month (n ≥ 1)."""
        first = date(year, month, 1)
        return self.add_business_days(first, n - 1) if self.is_business_day(first) else self.add_business_days(first, n)

    def business_days_between(self, a: date, b: date) -> int:
        """The business days d with a < d ≤ b (negated when b < a), so that
        business_days_between(a, add_business_days(a, n)) == n for a business day a."""
        if isinstance(a, datetime):
            a = a.date()
        if isinstance(b, datetime):
            b = b.date()
        if b < a:
            return -self.business_days_between(b, a)
        count, d = 0, a
        while d < b:
            d += timedelta(days=1)
            if self.is_business_day(d):
                count += 1
        return count

    # ------------------------------------------------------------ times

    def local(self, t: datetime) -> datetime:
        """t in the calendar's time zone (a naive t is taken as already local)."""
        return t.replace(tzinfo=self.tz) if t.tzinfo is None else t.astimezone(self.tz)

    def day_n(self, received: datetime) -> date:
        """The business day a mail counts from: its own day when that is a business day and it
        came before the cutoff, else the next business day."""
        t = self.local(received)
        d = t.date()
        if self.is_business_day(d) and t.time() < self.cutoff:
            return d
        return self.next_business_day(d)

    def at_cutoff(self, d: date) -> datetime:
        """The cutoff moment of day d (aware)."""
        return datetime.combine(d, self.cutoff, tzinfo=self.tz)

    def equipment_schedule(self, day_n: date) -> EquipmentSchedule:
        """Registered at FiberGate N+1, shipped N+2, at the branch N+3 … N+5 (business days)."""
        return EquipmentSchedule(*(self.add_business_days(day_n, k) for k in self.equipment_offsets))

    def withdrawal_last_day(self, termination_date: date) -> date:
        """The last business day a termination withdrawal is on time (3 business days before 解約日)."""
        return self.add_business_days(termination_date, -self.withdrawal_days)

    def withdrawal_deadline(self, termination_date: date) -> datetime:
        """The moment from which a withdrawal is too late: the cutoff of the last day.  A withdrawal
        received strictly before it is on time (2026-11-27 → 2026-11-24 17:00 JST)."""
        return self.at_cutoff(self.withdrawal_last_day(termination_date))

    def withdrawal_on_time(self, received: datetime, termination_date: date) -> bool:
        return self.local(received) < self.withdrawal_deadline(termination_date)


@cache
def business_calendar(rules_dir: Path = DEFAULT_RULES) -> BusinessCalendar:
    """The calendar of `rules_dir`'s rules, made once per process (it caches its closed days)."""
    return BusinessCalendar.from_rules(load_rules(rules_dir).calendar)

"""Business days, the 17:00 cutoff, the equipment schedule and the withdrawal deadline (DOMAIN.md §5)."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbot.config import DEFAULT_RULES
from mailbot.reference.calendar import BusinessCalendar, EquipmentSchedule
from mailbot.rules import RulesError

TOKYO = ZoneInfo("Asia/Tokyo")
D = date.fromisoformat


def jst(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TOKYO)


@pytest.fixture(scope="module")
def cal() -> BusinessCalendar:
    return BusinessCalendar.load(DEFAULT_RULES)


def test_rules_file(cal):
    assert cal.cutoff == time(17, 0) and cal.tz.key == "Asia/Tokyo"
    assert cal.equipment_offsets == (1, 2, 3, 5) and cal.withdrawal_days == 3


@pytest.mark.parametrize("day,reason", [
    ("2026-11-23", "勤労感謝の日"),  # Monday
    ("2026-11-03", "文化の日"),
    ("2026-09-22", "国民の休日"),  # between 敬老の日 and 秋分の日
    ("2026-05-06", "憲法記念日 振替休日"),
    ("2027-01-11", "成人の日"),
    ("2026-11-21", "土曜日"),
    ("2026-11-22", "日曜日"),
    ("2026-12-29", "年末年始休業"),
    ("2026-12-31", "年末年始休業"),
    ("2027-01-01", "元日"),  # a holiday first
    ("2027-01-02", "土曜日"),
    ("2028-01-03", "年末年始休業"),  # Monday
    ("2025-12-30", "年末年始休業"),
])
def test_closed_days(cal, day, reason):
    assert not cal.is_business_day(D(day))
    assert cal.closed_reason(D(day)) == reason


@pytest.mark.parametrize("day", ["2026-11-20", "2026-11-24", "2026-12-28", "2027-01-04", "2028-01-04", "2026-09-24"])
def test_business_days(cal, day):
    assert cal.is_business_day(D(day)) and cal.closed_reason(D(day)) is None


def test_add_business_days(cal):
    assert cal.add_business_days(D("2026-11-20"), 1) == D("2026-11-24")  # weekend + 11-23
    assert cal.add_business_days(D("2026-11-24"), -1) == D("2026-11-20")
    assert cal.add_business_days(D("2026-11-27"), -3) == D("2026-11-24")
    assert cal.add_business_days(D("2026-12-28"), 1) == D("2027-01-04")  # year end
    assert cal.add_business_days(D("2027-01-04"), -1) == D("2026-12-28")
    assert cal.add_business_days(D("2026-11-21"), 1) == D("2026-11-24")  # from a Saturday
    assert cal.add_business_days(D("2026-11-21"), -1) == D("2026-11-20")
    assert cal.add_business_days(D("2026-11-21"), 0) == D("2026-11-21")
    assert cal.add_business_days(D("2026-11-02"), 5) == D("2026-11-10")  # 11-03 文化の日
    assert cal.next_business_day(D("2026-12-28")) == D("2027-01-04")
    assert cal.previous_business_day(D("2026-11-24")) == D("2026-11-20")


def test_business_days_between(cal):
    assert cal.business_days_between(D("2026-11-20"), D("2026-11-24")) == 1
    assert cal.business_days_between(D("2026-11-24"), D("2026-11-20")) == -1
    assert cal.business_days_between(D("2026-11-20"), D("2026-11-20")) == 0
    assert cal.business_days_between(D("2026-11-19"), D("2026-11-27")) == 5
    assert cal.business_days_between(D("2026-12-25"), D("2027-01-05")) == 3  # 12-28, 01-04, 01-05
    for n in range(-12, 13):
        a = D("2026-11-20")
        assert cal.business_days_between(a, cal.add_business_days(a, n)) == n


@pytest.mark.parametrize("received,expected", [
    ("2026-11-20 16:59:59", "2026-11-20"),  # Friday, before the cutoff
    ("2026-11-20 16:59", "2026-11-20"),
    ("2026-11-20 17:00", "2026-11-24"),  # at the cutoff: the next business day (Monday is a holiday)
    ("2026-11-20 17:01", "2026-11-24"),
    ("2026-11-20 00:00", "2026-11-20"),
    ("2026-11-21 10:00", "2026-11-24"),  # Saturday
    ("2026-11-23 09:00", "2026-11-24"),  # 勤労感謝の日
    ("2026-11-24 16:59", "2026-11-24"),
    ("2026-11-24 17:00", "2026-11-25"),
    ("2026-12-28 16:59", "2026-12-28"),
    ("2026-12-28 17:00", "2027-01-04"),
    ("2026-12-30 10:00", "2027-01-04"),
])
def test_day_n_cutoff(cal, received, expected):
    assert cal.day_n(jst(received)) == D(expected)


def test_day_n_converts_time_zones(cal):
    assert cal.day_n(datetime(2026, 11, 20, 7, 59, tzinfo=timezone.utc)) == D("2026-11-20")  # 16:59 JST
    assert cal.day_n(datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)) == D("2026-11-24")  # 17:00 JST
    assert cal.day_n(datetime(2026, 11, 19, 23, 30, tzinfo=timezone.utc)) == D("2026-11-20")  # 08:30 JST next day
    assert cal.day_n(datetime(2026, 11, 20, 16, 59)) == D("2026-11-20")  # naive: Tokyo


def test_equipment_schedule(cal):
    # Thursday: over the weekend and the Monday holiday
    assert cal.equipment_schedule(D("2026-11-19")) == EquipmentSchedule(
        D("2026-11-20"), D("2026-11-24"), D("2026-11-25"), D("2026-11-27"))
    registered, shipped, arrive_from, arrive_to = cal.equipment_schedule(D("2026-11-20"))
    assert (registered, shipped, arrive_from, arrive_to) == (
        D("2026-11-24"), D("2026-11-25"), D("2026-11-26"), D("2026-11-30"))
    # over the year end
    assert cal.equipment_schedule(D("2026-12-28")) == (D("2027-01-04"), D("2027-01-05"), D("2027-01-06"),
                                                      D("2027-01-08"))
    # a mail on Friday at 17:30 counts from Tuesday
    assert cal.equipment_schedule(cal.day_n(jst("2026-11-20 17:30"))).registered == D("2026-11-25")


def test_withdrawal_worked_example(cal):
    """解約日 Friday 2026-11-27 → Tuesday 2026-11-24 before 17:00 is the last moment (11-23 is a holiday)."""
    assert cal.withdrawal_last_day(D("2026-11-27")) == D("2026-11-24")
    deadline = cal.withdrawal_deadline(D("2026-11-27"))
    assert deadline == jst("2026-11-24 17:00") and deadline.tzinfo is not None
    assert cal.withdrawal_on_time(jst("2026-11-24 16:59:59"), D("2026-11-27"))
    assert not cal.withdrawal_on_time(jst("2026-11-24 17:00"), D("2026-11-27"))
    assert not cal.withdrawal_on_time(jst("2026-11-25 09:00"), D("2026-11-27"))
    assert cal.withdrawal_on_time(jst("2026-11-21 12:00"), D("2026-11-27"))  # Saturday
    assert cal.withdrawal_on_time(jst("2026-11-23 12:00"), D("2026-11-27"))  # the holiday
    assert cal.withdrawal_on_time(datetime(2026, 11, 24, 7, 59, tzinfo=timezone.utc), D("2026-11-27"))
    assert not cal.withdrawal_on_time(datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc), D("2026-11-27"))
    # on time ⇔ the mail's day N is no later than the last day
    for received in ("2026-11-20 17:00", "2026-11-24 16:00", "2026-11-24 17:00", "2026-11-22 23:00"):
        t = jst(received)
        assert cal.withdrawal_on_time(t, D("2026-11-27")) == (cal.day_n(t) <= D("2026-11-24"))


def test_withdrawal_over_the_year_end(cal):
    # 解約日 2027-01-06 (Wed): 01-05, 01-04, then back over 12-29 … 01-03 to 12-28
    assert cal.withdrawal_deadline(D("2027-01-06")) == jst("2026-12-28 17:00")


def _rules(tmp_path: Path, text: str) -> Path:
    (tmp_path / "calendar.toml").write_text(text, encoding="utf-8")
    return tmp_path


def test_own_rules(tmp_path):
    cal = BusinessCalendar.load(_rules(tmp_path, """
cutoff = "18:00"
[closed]
recurring = [{ from = "08-13", to = "08-16", name = "夏季休業" }]
dates = ["2026-11-26", { from = "2026-11-30", to = "2026-12-01", name = "棚卸" }]
[open]
dates = ["2026-11-21"]
[termination_withdrawal]
business_days_before = 2
"""))
    assert cal.cutoff == time(18, 0)
    assert cal.day_n(jst("2026-11-20 17:30")) == D("2026-11-20")
    assert cal.day_n(jst("2026-11-20 18:00")) == D("2026-11-21")  # the Saturday is open
    assert cal.closed_reason(D("2027-08-16")) == "夏季休業" and cal.is_business_day(D("2027-08-17"))
    assert cal.closed_reason(D("2026-11-26")) == "休業日"
    assert cal.closed_reason(D("2026-12-01")) == "棚卸"
    assert cal.is_business_day(D("2026-12-30"))  # no year-end closure in these rules
    assert cal.withdrawal_last_day(D("2026-11-27")) == D("2026-11-24")  # 26 closed, 25, 24


@pytest.mark.parametrize("text,key", [
    ('cutoff = "5pm"', "cutoff"),
    ('timezone = "Asia/Nowhere"', "timezone"),
    ('[closed]\nrecurring = [{ from = "13-01", to = "01-03" }]', "closed.recurring[0].from"),
    ('[closed]\ndates = ["2026-02-30"]', "closed.dates[0]"),
    ('[closed]\ndates = [{ from = "2026-12-02", to = "2026-12-01" }]', "closed.dates[0]"),
    ('[equipment_order]\nshipped = -1', "equipment_order.shipped"),
    ('[termination_withdrawal]\nbusiness_days_before = "3"', "termination_withdrawal.business_days_before"),
])
def test_rule_errors_name_the_file_line_and_key(tmp_path, text, key):
    with pytest.raises(RulesError, match=re.escape("calendar.toml:") + r"(\d+): " + re.escape(f"{key}:")) as e:
        BusinessCalendar.load(_rules(tmp_path, text))
    line = text.splitlines()[int(re.search(r"calendar\.toml:(\d+):", str(e.value))[1]) - 1]
    assert re.sub(r"\[\d+\]", "", key).rsplit(".", 1)[-1] in line

"""DOMAIN.md §9: a staff decision replaces the bot's hold — here, the cancellation's day N counts
from the day staff accepted the order (the history the checks consult)."""

from __future__ import annotations

from datetime import datetime
from functools import partial

from helpers import RULES, TOKYO, mail

from mailbot.checks import CheckContext
from mailbot.checks.history import cancellation_by_case, not_duplicate
from mailbot.classify import classify
from mailbot.model import Action, Kind, Request
from mailbot.record.history import MemoryHistory, PastRequest

CODE = "988776654"
THURSDAY, MONDAY, TUESDAY = (datetime(2026, 11, d, 10, 0, tzinfo=TOKYO) for d in (19, 24, 25))  # 23rd: holiday


def _history(decided_at: datetime | None) -> MemoryHistory:
    history = MemoryHistory()
    # received Thursday, held (a scan), accepted by staff on `decided_at`
    history.add(PastRequest(Kind.EQUIPMENT_ORDER, CODE, Action.ACCEPT, THURSDAY, decided_at))
    return history


def _cancellation(at: datetime, history: MemoryHistory):
    m = mail(f"USEN SPOT キャンセル申請_{CODE}", body="お疲れ様です。\nキャンセルをお願いします。\n")
    request = Request(mail=m, classification=classify(m.subject, RULES), received=at)
    ctx = CheckContext(rules_dir=RULES, internal_domains=("usen.co.jp",), own_addresses=(), now=at, history=history)
    return partial(lambda check: [f.code for f in check(request, ctx)])


def test_cancelling_on_the_day_staff_accepted_the_order_is_free():
    findings = _cancellation(MONDAY, _history(decided_at=MONDAY.replace(hour=9)))
    assert findings(cancellation_by_case) == []


def test_cancelling_after_the_day_staff_accepted_it_incurs_the_cost():
    findings = _cancellation(TUESDAY, _history(decided_at=MONDAY.replace(hour=9)))
    assert findings(cancellation_by_case) == ["CANCEL_AFTER_ORDER"]


def test_an_order_the_bot_accepted_counts_from_its_receipt():
    findings = _cancellation(MONDAY, _history(decided_at=None))
    assert findings(cancellation_by_case) == ["CANCEL_AFTER_ORDER"]


def test_a_second_order_after_a_staff_acceptance_is_a_duplicate():
    history = _history(decided_at=MONDAY.replace(hour=9))
    m = mail(f"USEN SPOT 器材発注依頼_{CODE}", body="お疲れ様です。\n")
    request = Request(mail=m, classification=classify(m.subject, RULES), received=TUESDAY)
    ctx = CheckContext(rules_dir=RULES, internal_domains=("usen.co.jp",), own_addresses=(), now=TUESDAY, history=history)
    assert [f.code for f in not_duplicate(request, ctx)] == ["DUPLICATE_REQUEST"]

"""Checks against what was decided before (DOMAIN.md §4, §5): DUPLICATE_REQUEST (the same kind
and code already accepted and still open) and CANCEL_AFTER_ORDER (a cancellation after the
order's day: the router is already being made).

Day N of an order is the business day the bot accepted it (its received time, 17:00 cutoff);
where the bot has no record of one, the UNIS 受注日.
"""

from __future__ import annotations

from datetime import date

from mailbot.checks.base import CheckContext
from mailbot.checks.reference import valid_code
from mailbot.model import Action, Finding, Kind, Request
from mailbot.record.history import PastRequest
from mailbot.rules import load_rules


def _earlier_accepted(request: Request, ctx: CheckContext, code: str) -> list[PastRequest]:
    assert ctx.history is not None
    return [p for p in ctx.history.requests_for(code)
            if p.action is Action.ACCEPT and p.received < request.received]


def not_duplicate(request: Request, ctx: CheckContext) -> list[Finding]:
    kind, code = request.classification.kind, valid_code(request, ctx)
    if ctx.history is None or code is None or kind is Kind.UNKNOWN:
        return []
    rules = load_rules(ctx.rules_dir).open_requests
    closers = rules.closed_by.get(kind, frozenset())
    still_open: PastRequest | None = None
    for past in _earlier_accepted(request, ctx, code):
        if past.kind is kind:
            still_open = past
        elif past.kind in closers:
            still_open = None
    if still_open is None:
        return []
    cal = ctx.calendar
    age = cal.business_days_between(cal.day_n(still_open.received), cal.day_n(request.received))
    if age > rules.business_days:
        return []
    return [Finding("DUPLICATE_REQUEST", f"{cal.local(still_open.received):%Y-%m-%d %H:%M} 受信分を受付済み")]


def _order_day(request: Request, ctx: CheckContext, code: str) -> tuple[date, str] | None:
    """Day N of the order being cancelled, and where it comes from."""
    cal = ctx.calendar
    if ctx.history is not None:
        orders = [p for p in _earlier_accepted(request, ctx, code) if p.kind is Kind.EQUIPMENT_ORDER]
        if orders:
            return cal.day_n(orders[-1].accepted_on), "発注受付日"
    if ctx.unis is not None:
        ordered = ctx.unis.latest_order_date(code)
        if ordered is not None:
            return (ordered if cal.is_business_day(ordered) else cal.next_business_day(ordered)), "UNIS受注日"
    return None


def cancel_on_order_day(request: Request, ctx: CheckContext) -> list[Finding]:
    code = valid_code(request, ctx)
    if request.classification.kind is not Kind.CANCELLATION or code is None:
        return []
    order = _order_day(request, ctx, code)
    if order is None:
        return []
    order_day, source = order
    day = ctx.calendar.day_n(request.received)
    if day > order_day:
        return [Finding("CANCEL_AFTER_ORDER", f"{source} {order_day:%Y-%m-%d}、キャンセル受付 {day:%Y-%m-%d}")]
    return []

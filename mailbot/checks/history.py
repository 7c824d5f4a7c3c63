"""Checks against what was decided before (DOMAIN.md §4, §5): DUPLICATE_REQUEST (the same kind
and code already accepted and still open), and a cancellation by case: ALREADY_INSTALLED (UNIS
確定: a termination), NO_OPEN_ORDER (nothing to cancel), CANCEL_AFTER_ORDER (after the order's day:
the router is already being made).

Day N of an order is the business day the bot (or staff) accepted it (its received time, 17:00
cutoff; staff: their decision); where the bot has no record of one, the UNIS 受注日.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

from mailbot.checks.base import CheckContext
from mailbot.checks.reference import valid_code
from mailbot.model import Action, Finding, Kind, Request
from mailbot.record.history import PastRequest
from mailbot.rules import load_rules
from mailbot.text import japanese_date, japanese_time


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
    return [Finding("DUPLICATE_REQUEST", f"{japanese_time(cal.local(still_open.received))} 受信分を受付済み")]


@dataclass(frozen=True)
class CancellationCase:
    """What a cancellation of a code would cancel (DOMAIN.md §5, seed 001 VII)."""

    case: str  # installed | open_order | unis_order | remanded_only | nothing | unknown
    order_day: date | None = None  # day N of the order cancelled
    source: str = ""  # where that day comes from: 発注受付日 | UNIS受注日


def cancellation_case(request: Request, ctx: CheckContext, code: str) -> CancellationCase:
    """Installed (UNIS 確定) → a termination, not a cancellation; an open order the bot or staff
    accepted → its day N; else an order only ever remanded → nothing was ordered; else a UNIS line
    in state 受注 (or one already cancelled there; no record of the order here) → its 受注日; else
    no order at all.  Worked out once per mail: the check and the reply's fields share it."""
    return ctx.once(f"cancellation_case {code}", lambda: _cancellation_case(request, ctx, code))


def _cancellation_case(request: Request, ctx: CheckContext, code: str) -> CancellationCase:
    cal = ctx.calendar
    if ctx.unis is not None and ctx.unis.has_installed_router(code):
        return CancellationCase("installed")
    earlier = [p for p in ctx.history.requests_for(code) if p.received < request.received] if ctx.history else []
    open_order: PastRequest | None = None
    for past in earlier:
        if past.action is Action.ACCEPT and past.kind is Kind.EQUIPMENT_ORDER:
            open_order = past
        elif past.action is Action.ACCEPT and past.kind is Kind.CANCELLATION:
            open_order = None  # cancelled already
    if open_order is not None:
        return CancellationCase("open_order", cal.day_n(open_order.accepted_on), "発注受付日")
    if any(p.kind is Kind.EQUIPMENT_ORDER and p.action is Action.REMAND for p in earlier):
        return CancellationCase("remanded_only")
    if ctx.unis is None:
        return CancellationCase("unknown")
    # A line the branch already cancelled in UNIS (its step ②, maybe done before mailing) is the
    # order this cancellation is about too ([status_groups] cancellable).
    ordered = ctx.unis.latest_order_date(code)
    if ordered is not None:
        return CancellationCase("unis_order", ordered if cal.is_business_day(ordered) else cal.next_business_day(ordered),
                                "UNIS受注日")
    return CancellationCase("nothing")


def cancellation_by_case(request: Request, ctx: CheckContext) -> list[Finding]:
    code = valid_code(request, ctx)
    if request.classification.kind is not Kind.CANCELLATION or code is None:
        return []
    found = cancellation_case(request, ctx, code)
    if found.case == "installed":
        return [Finding("ALREADY_INSTALLED", code)]
    if found.case == "nothing":
        return [Finding("NO_OPEN_ORDER", code)]
    if found.order_day is None:
        return []
    day = ctx.calendar.day_n(request.received)
    if day > found.order_day:
        return [Finding("CANCEL_AFTER_ORDER", f"{found.source} {japanese_date(found.order_day)}、キャンセル受付 {japanese_date(day)}")]
    return []


def cancellation_fields(request: Request, ctx: CheckContext) -> dict[str, object] | None:
    """The cancellation's case for the record and the reply (what cost to state), None for
    other kinds."""
    code = valid_code(request, ctx)
    if request.classification.kind is not Kind.CANCELLATION or code is None:
        return None
    found = asdict(cancellation_case(request, ctx, code))
    found["order_day"] = found["order_day"].isoformat() if found["order_day"] else None
    return found

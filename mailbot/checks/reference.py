"""Checks against the reference data (DOMAIN.md §4, §7): the branch directory (CORPORATE_CASE,
BRANCH_UNKNOWN, CC_MANAGER_MISSING) and the UNIS extract (UNIS_ORDER_NOT_FOUND with its
deferral, NO_ACTIVE_CONTRACT, NOT_TERMINATING, WITHDRAWAL_TOO_LATE).

A check whose reference data is not configured is skipped (no finding); so are all UNIS checks
when the subject has no valid customer code.
"""

from __future__ import annotations

from mailbot.checks.base import CheckContext
from mailbot.classify import code_is_valid
from mailbot.forms.model import TerminationForm
from mailbot.model import Finding, Kind, Request
from mailbot.reference.branches import Branch
from mailbot.text import japanese_date, japanese_time

_CONTRACT_KINDS = {Kind.TERMINATION, Kind.RELOCATION, Kind.CONTRACT_CHANGE}


def valid_code(request: Request, ctx: CheckContext) -> str | None:
    """The subject's customer code when it is valid (else no UNIS check applies)."""
    code = request.classification.code
    return code if code and code_is_valid(code, ctx.rules_dir) else None


def _sender(request: Request) -> str:
    return request.mail.sender.addr if request.mail.sender else ""


def _is_corporate(request: Request, ctx: CheckContext) -> bool:
    return ctx.branches is not None and ctx.branches.is_corporate(_sender(request))


def _requesting_branch(request: Request, ctx: CheckContext) -> Branch | None:
    """DOMAIN.md §7: the body's 送付支店名, else the sender's branch, else UNIS 管轄支店名."""
    assert ctx.branches is not None
    corporate = [b for b in ctx.branches.branches_of(_sender(request)) if b.corporate]
    if corporate:  # corporate sales request for themselves; 送付支店名 only says where the router goes
        return corporate[0]
    code = valid_code(request, ctx)
    unis_branch = ctx.unis.branch(code) if ctx.unis is not None and code else None
    return ctx.branches.requesting_branch(request.body_items.get("sending_branch"), _sender(request), unis_branch)


def branch_name(request: Request, ctx: CheckContext) -> str | None:
    """The requesting branch as the digest counts it: the directory's branch (DOMAIN.md §7),
    else the name the body or UNIS gives, else None."""
    if ctx.branches is not None:
        branch = _requesting_branch(request, ctx)
        if branch is not None:
            return branch.name
    named = (request.body_items.get("sending_branch") or "").strip()
    code = valid_code(request, ctx)
    return named or (ctx.unis.branch(code) if ctx.unis is not None and code else None) or None


def corporate_case(request: Request, ctx: CheckContext) -> list[Finding]:
    """Corporate sales' case: sent by corporate sales, or UNIS 獲得区分 of the code says 法人.  The
    office center registers and bulk-orders those itself: held, and no regional check (a form's
    fields, the branch, UNIS order) is told to anyone."""
    if _is_corporate(request, ctx):
        names = "、".join(b.name for b in ctx.branches.branches_of(_sender(request)) if b.corporate)
        return [Finding("CORPORATE_CASE", names, stop=True)]
    code = valid_code(request, ctx)
    lines = ctx.unis.corporate_lines(code) if ctx.unis is not None and code else []
    if lines:
        return [Finding("CORPORATE_CASE", f"UNIS 獲得区分「{lines[0].acquisition}」", stop=True)]
    return []


def branch_known(request: Request, ctx: CheckContext) -> list[Finding]:
    if ctx.branches is None or _requesting_branch(request, ctx) is not None:
        return []
    named = (request.body_items.get("sending_branch") or "").strip()
    return [Finding("BRANCH_UNKNOWN", f"送付支店名 {named}" if named else f"送信者 {_sender(request)}")]


def manager_in_cc(request: Request, ctx: CheckContext) -> list[Finding]:
    if ctx.branches is None:
        return []
    branch = _requesting_branch(request, ctx)
    if branch is None:
        return []  # BRANCH_UNKNOWN says it
    mail = request.mail
    present = {a.addr for a in (*mail.to, *mail.cc)} | {_sender(request)}  # a manager may write himself
    if branch.manager in present:
        return []
    return [Finding("CC_MANAGER_MISSING", f"{branch.name} {branch.manager}")]


def unis_order_found(request: Request, ctx: CheckContext) -> list[Finding]:
    code = valid_code(request, ctx)
    if request.classification.kind is not Kind.EQUIPMENT_ORDER or ctx.unis is None or code is None:
        return []
    if _is_corporate(request, ctx):
        return []  # corporate sales: the office center registers it in UNIS (CORPORATE_CASE)
    if request.child_unit_order:
        return []  # the customer exists: its installed router is checked (active_contract)
    if ctx.unis.has_order(code):
        return []
    extracted = ctx.unis.extracted_at
    detail = f"{code}（UNIS抽出 {japanese_time(extracted)}）"
    # Deferral: the extract predates the mail, so the order may simply be too new to be in it.
    return [Finding("UNIS_ORDER_NOT_FOUND", detail, defer=extracted < request.received)]


def active_contract(request: Request, ctx: CheckContext) -> list[Finding]:
    code = valid_code(request, ctx)
    if ctx.unis is None or code is None:
        return []
    if request.child_unit_order:  # a child unit joins an installed router (契約状態 確定)
        return [] if ctx.unis.has_installed_router(code) else [Finding("NO_ACTIVE_CONTRACT", f"{code}（確定の親機なし）")]
    if request.classification.kind not in _CONTRACT_KINDS:
        return []
    return [] if ctx.unis.has_live_contract(code) else [Finding("NO_ACTIVE_CONTRACT", code)]


def withdrawal_possible(request: Request, ctx: CheckContext) -> list[Finding]:
    code = valid_code(request, ctx)
    if request.classification.kind is not Kind.TERMINATION_WITHDRAWAL or ctx.unis is None or code is None:
        return []
    ends = ctx.unis.termination_date(code)
    if ends is None:
        return [Finding("NOT_TERMINATING", code)]
    if not ctx.calendar.withdrawal_on_time(request.received, ends):
        deadline = ctx.calendar.withdrawal_deadline(ends)
        return [Finding("WITHDRAWAL_TOO_LATE", f"解約日 {japanese_date(ends)}、期限 {japanese_time(deadline)}")]
    return []


def termination_date_agrees(request: Request, ctx: CheckContext) -> list[Finding]:
    """The termination form's 解約日 neither lies before the mail's day N nor differs from the
    解約日 UNIS has for the code (no UNIS 解約日 yet is no finding: the branch registers it after
    mailing, DOMAIN.md §6)."""
    form = request.form
    if request.classification.kind is not Kind.TERMINATION or not isinstance(form, TerminationForm) \
            or form.termination_date is None:
        return []
    ends = form.termination_date
    day_n = ctx.calendar.day_n(request.received)
    if ends < day_n:
        return [Finding("TERMINATION_DATE_MISMATCH", f"解約日 {japanese_date(ends)} は受付日 {japanese_date(day_n)} より前です")]
    code = valid_code(request, ctx)
    registered = ctx.unis.termination_date(code) if ctx.unis is not None and code else None
    if registered is not None and registered != ends:
        return [Finding("TERMINATION_DATE_MISMATCH", f"申込書 {japanese_date(ends)} / UNIS {japanese_date(registered)}")]
    return []


def termination_fields(request: Request, ctx: CheckContext) -> dict[str, object] | None:
    """For a termination: whether UNIS already shows it scheduled (解約予定, its 解約日), so that the
    acceptance can say plainly when the branch's UNIS 解約処理（予定登録） is still to be done.
    None for other kinds, or without the extract."""
    code = valid_code(request, ctx)
    if request.classification.kind is not Kind.TERMINATION or ctx.unis is None or code is None:
        return None
    ends = ctx.unis.termination_date(code)
    return {"unis_scheduled": ends is not None, "unis_termination_date": ends.isoformat() if ends else None}

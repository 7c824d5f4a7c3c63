"""Subject checks: an answer to the bot is no request (REPLY_TO_BOT), a known kind
(UNKNOWN_SUBJECT) and a well-formed customer code."""

from __future__ import annotations

from mailbot.checks.base import CheckContext
from mailbot.classify import code_is_valid
from mailbot.model import Action, Finding, Kind, Request
from mailbot.rules import load_rules

# Kinds whose subject carries no customer code.
_NO_CODE_KINDS = {Kind.REGISTRATION_NOTICE}


def reply_to_bot(request: Request, ctx: CheckContext) -> list[Finding]:
    """A branch answering an acceptance or an acknowledgement (thanks, a question, a correction)
    is held for a person and never answered automatically; an answer to a remand is the request
    again (a resubmission) and checked as one."""
    answers = request.classification.answers
    if answers not in (Action.ACCEPT, Action.HOLD):
        return []
    tag = load_rules(ctx.rules_dir).replies.subject_prefix[answers]
    return [Finding("REPLY_TO_BOT", f"{tag}への返信", stop=True)]


def registration_notice_via_dragon(request: Request, ctx: CheckContext) -> list[Finding]:
    """A registration notice is re-sent through the support centre and Dragon, never by mail
    (seed 000): the answer is that procedure, with the addresses UNIS has for the code."""
    if request.classification.kind is not Kind.REGISTRATION_NOTICE:
        return []
    code = request.classification.code
    lines = ctx.unis.lines(code) if ctx.unis is not None and code else []
    addresses = ""
    if lines:
        line = lines[0]
        addresses = "\n".join(f"{label}：{value}" for label, value in (
            ("設置先", line.install_address), ("契約先", line.contract_address), ("請求先", line.billing_address)) if value)
    return [Finding("REGISTRATION_NOTICE_VIA_DRAGON", addresses, stop=True)]


def unknown_subject(request: Request, ctx: CheckContext) -> list[Finding]:
    if request.classification.kind is Kind.UNKNOWN:
        return [Finding("UNKNOWN_SUBJECT", request.mail.subject[:120], stop=True)]
    return []


def customer_code(request: Request, ctx: CheckContext) -> list[Finding]:
    c = request.classification
    if c.kind in _NO_CODE_KINDS:
        return []
    if not c.code:
        return [Finding("CODE_MISSING")]
    if not code_is_valid(c.code, ctx.rules_dir):
        return [Finding("CODE_INVALID", c.code)]
    return []

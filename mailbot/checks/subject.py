"""Subject checks: a known kind (UNKNOWN_SUBJECT) and a well-formed customer code."""

from __future__ import annotations

from mailbot.checks.base import CheckContext
from mailbot.classify import code_is_valid
from mailbot.model import Finding, Kind, Request

# Kinds whose subject carries no customer code.
_NO_CODE_KINDS = {Kind.REGISTRATION_NOTICE}


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

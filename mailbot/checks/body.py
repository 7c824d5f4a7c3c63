"""Body checks: the items each kind must carry (BODY_FIELD_MISSING), and the body's 顧客CD."""

from __future__ import annotations

import re

from mailbot.checks.base import CheckContext
from mailbot.classify import code_is_valid
from mailbot.extract import stated_child_unit_purpose
from mailbot.model import Finding, Request
from mailbot.rules import load_rules
from mailbot.text import normalise


def required_items(request: Request, ctx: CheckContext) -> list[Finding]:
    rules = load_rules(ctx.rules_dir).requests
    required = rules.body_items.get(request.classification.kind.value, ())
    missing = [name for name in required if not request.body_items.get(name, "").strip()]
    if missing:
        return [Finding("BODY_FIELD_MISSING", "、".join(rules.display[n] for n in missing))]
    return []


def body_code_matches(request: Request, ctx: CheckContext) -> list[Finding]:
    subject_code = request.classification.code
    if not subject_code or not code_is_valid(subject_code, ctx.rules_dir):
        return []  # CODE_MISSING / CODE_INVALID already say the subject must change
    # The code is the value's first run of digits: branches add notes after it (「932104567（新規）」).
    found = re.search(r"[0-9][0-9-]*", normalise(request.body_items.get("customer_code", "")))
    body_code = found.group().replace("-", "") if found else ""
    if body_code and body_code != subject_code:
        return [Finding("CODE_MISMATCH", f"件名 {subject_code} / 本文 {body_code}")]
    return []


def child_unit_purpose(request: Request, ctx: CheckContext) -> list[Finding]:
    """A child-unit order must say whether it adds a unit (追加/増設) or exchanges one (交換)."""
    if not request.child_unit_order or stated_child_unit_purpose(request, ctx.rules_dir) is not None:
        return []
    return [Finding("CHILD_UNIT_PURPOSE_MISSING")]

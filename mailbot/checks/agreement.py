"""Does the request agree with itself and with UNIS (DOMAIN.md §4)?  For equipment orders:
PLUS_MISMATCH (body, form and UNIS item), LINE_MISMATCH and SHOP_MISMATCH (form and UNIS),
UNIT_COUNT_MISSING (several routers without 親N台、子M台).

A source that does not say (no UNIS line, an unread form, an answer in no list) is left out of
the comparison: only what is said can disagree.  Spellings and words are in rules/requests.toml.
"""

from __future__ import annotations

import re

from mailbot.checks.base import CheckContext
from mailbot.checks.form import readable_application
from mailbot.checks.reference import valid_code
from mailbot.extract import split_original
from mailbot.model import Finding, Kind, Request
from mailbot.reference.unis import OrderLine
from mailbot.rules import load_rules
from mailbot.rules.requests import AgreementRules
from mailbot.text import fold, normalise


def _order_lines(request: Request, ctx: CheckContext) -> list[OrderLine]:
    """The USEN SPOT order lines of an equipment order's code (none for other kinds)."""
    code = valid_code(request, ctx)
    if request.classification.kind is not Kind.EQUIPMENT_ORDER or ctx.unis is None or code is None:
        return []
    return ctx.unis.router_lines(code)


def _yes_no(text: str | None, rules: AgreementRules) -> bool | None:
    return rules.answers.get(fold(text)) if text else None


def _said(**sources: bool | None) -> str:
    return "、".join(f"{name} {'有' if v else '無'}" for name, v in sources.items() if v is not None)


def plus_agrees(request: Request, ctx: CheckContext) -> list[Finding]:
    if request.classification.kind is not Kind.EQUIPMENT_ORDER:
        return []
    rules = load_rules(ctx.rules_dir).agreement
    lines = _order_lines(request, ctx)
    form = readable_application(request)
    said = {"本文": _yes_no(request.body_items.get("plus"), rules),
            "申込書": form.plus if form is not None else None,
            "UNIS": any(x.plus for x in lines) if lines else None}
    if len({v for v in said.values() if v is not None}) > 1:
        return [Finding("PLUS_MISMATCH", _said(**said))]
    return []


def _canonical(value: str, spellings: dict[str, str]) -> str:
    key = fold(value)
    return spellings.get(key, key)


def line_agrees(request: Request, ctx: CheckContext) -> list[Finding]:
    form = readable_application(request)
    lines = _order_lines(request, ctx)
    if form is None or not lines or not form.line_kind:
        return []  # an unchosen line kind is LINE_KIND_MISSING, not a mismatch
    rules = load_rules(ctx.rules_dir).agreement
    kind = _canonical(form.line_kind, rules.line_kinds)
    typed = {fold(k) for k in load_rules(ctx.rules_dir).application_checks.kinds_needing_type}
    for line in lines:
        if not line.line_kind:
            continue
        if _canonical(line.line_kind, rules.line_kinds) != kind:
            return [Finding("LINE_MISMATCH", f"申込書 {form.line_kind} / UNIS {line.line_kind}")]
        if (fold(kind) in typed and form.line_type and line.line_type
                and _canonical(form.line_type, rules.line_types) != _canonical(line.line_type, rules.line_types)):
            return [Finding("LINE_MISMATCH", f"申込書 {form.line_kind} {form.line_type} / "
                                             f"UNIS {line.line_kind} {line.line_type}")]
    return []


def shop_agrees(request: Request, ctx: CheckContext) -> list[Finding]:
    """The shop the form (equipment orders) or the body (any kind) names is the code's UNIS shop,
    after width, kana and space folding: a request naming another customer's shop is held."""
    code = valid_code(request, ctx)
    if ctx.unis is None or code is None:
        return []
    if request.classification.kind is Kind.EQUIPMENT_ORDER:
        lines = _order_lines(request, ctx)
    else:
        lines = [x for x in ctx.unis.lines(code) if x.router]
    names = {x.shop_name for x in lines if x.shop_name}
    if not names:
        return []
    known = {fold(n) for n in names}
    form = readable_application(request)
    said = [("申込書", form.shop_name if form is not None else None),
            ("本文", request.body_items.get("shop_name"))]
    wrong = [f"{where} {name}" for where, name in said if name and fold(name) not in known]
    if wrong:
        return [Finding("SHOP_MISMATCH", f"{'、'.join(wrong)} / UNIS {'、'.join(sorted(names))}")]
    return []


def _counts(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"([0-9]+)\s*台", text)]


def unit_count_given(request: Request, ctx: CheckContext) -> list[Finding]:
    if request.classification.kind is not Kind.EQUIPMENT_ORDER or request.child_unit_order:
        return []  # a child-unit order may say 子N台, and needs not
    rules = load_rules(ctx.rules_dir).agreement
    form = readable_application(request)
    remarks = normalise(form.remarks or "") if form is not None else ""
    stated = normalise(request.body_items.get("unit_count", ""))
    if rules.units_given.search(normalise(request.mail.body)) or rules.units_given.search(remarks):
        return []
    lines = _order_lines(request, ctx)
    own_text = normalise(split_original(request.mail.body)[0])  # not the quoted mails (our own remand)
    says_several = [where for where, text in (("本文の台数", stated), ("申込書備考", remarks))
                    if any(w in fold(text) for w in rules.several_words) or any(n > 1 for n in _counts(text))]
    if any(w in fold(own_text) for w in rules.several_words):
        says_several.append("本文")
    if len(lines) > 1:
        says_several.append(f"UNISのUSEN SPOT品目 {len(lines)}件")
    if says_several:
        return [Finding("UNIT_COUNT_MISSING", "、".join(says_several))]
    return []

"""Findings → one Decision: the only place a Decision is made, and where the policy of
rules/reasons.toml (which code accepts, remands, holds, defers or ignores) is applied.

    decide(findings)                the checks' findings of a mail
    overrule(findings, finding)     a finding about its answer, after the decision (REPLY_LIMIT, REPLY_FAILED)
    decide_by_staff(decision, ok)   staff accepted or remanded a held mail
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from mailbot.model import Action, Decision, Finding
from mailbot.rules import RulesError, reasons

# Strongest first: one remanding finding remands the mail, and so on (DOMAIN.md §4).
_PRECEDENCE = (Action.IGNORE, Action.REMAND, Action.HOLD, Action.ACCEPT)


def merge_same_codes(findings: list[Finding]) -> list[Finding]:
    """One finding per code (the body and the form may both disagree with the subject), details joined."""
    merged: dict[str, Finding] = {}
    for f in findings:
        first = merged.get(f.code)
        if first is None:
            merged[f.code] = f
        elif f.detail and f.detail not in first.detail:
            merged[f.code] = replace(first, detail="; ".join(d for d in (first.detail, f.detail) if d))
    return list(merged.values())


def decide(findings: list[Finding], rules_dir: Path) -> Decision:
    findings = merge_same_codes(findings)
    table = _table(rules_dir, findings)
    deferred = [f for f in findings if f.defer]
    firm = [f for f in findings if not f.defer]
    actions = {table[f.code].action for f in firm}
    for action in _PRECEDENCE:
        if action in actions:
            if action is Action.ACCEPT and deferred:
                break
            # Deferred findings may resolve themselves with the next extract: only firm ones are told.
            return Decision(action, tuple(firm))
    if deferred:
        return Decision(Action.DEFER, tuple(findings))
    return Decision(Action.ACCEPT, tuple(findings))


def overrule(findings: Sequence[Finding], finding: Finding, rules_dir: Path) -> Decision:
    """A finding about the answer itself, raised after the mail was decided (REPLY_LIMIT: too many
    replies to this sender today; REPLY_FAILED: the reply cannot be sent): whatever the checks
    concluded (`findings`), the mail now takes that finding's action (a person's, by rules/reasons.toml)."""
    table = _table(rules_dir, [finding])
    return Decision(table[finding.code].action, (*findings, finding))


def decide_by_staff(decision: Decision, accepted: bool, rules_dir: Path) -> Decision:
    """Staff decided a held mail by moving its note: accepted, the acceptance keeps the findings an
    acceptance mentions; remanded, the remand lists every finding the branch must fix (the holds
    included, told with their branch_fix)."""
    table = _table(rules_dir, decision.findings)
    if accepted:
        return Decision(Action.ACCEPT, tuple(f for f in decision.findings if table[f.code].action is Action.ACCEPT))
    return Decision(Action.REMAND, tuple(f for f in decision.findings
                                         if table[f.code].action in (Action.REMAND, Action.HOLD)))


def _table(rules_dir: Path, findings) -> dict:
    table = reasons(rules_dir)
    for f in findings:
        if f.code not in table:
            raise RulesError(f"{rules_dir / 'reasons.toml'}: no entry for reason code {f.code}")
    return table

"""Findings → one Decision: the single place where policy (rules/reasons.toml) is applied."""

from __future__ import annotations

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
    table = reasons(rules_dir)
    findings = merge_same_codes(findings)
    for f in findings:
        if f.code not in table:
            raise RulesError(f"{rules_dir / 'reasons.toml'}: no entry for reason code {f.code}")
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

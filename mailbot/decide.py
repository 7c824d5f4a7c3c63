"""Findings → one Decision: the single place where policy (rules/reasons.toml) is applied."""

from __future__ import annotations

from pathlib import Path

from mailbot.model import Action, Decision, Finding
from mailbot.rules import RulesError, reasons

# Strongest first: one remanding finding remands the mail, and so on (DOMAIN.md §4).
_PRECEDENCE = (Action.IGNORE, Action.REMAND, Action.HOLD, Action.ACCEPT)


def decide(findings: list[Finding], rules_dir: Path) -> Decision:
    table = reasons(rules_dir)
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

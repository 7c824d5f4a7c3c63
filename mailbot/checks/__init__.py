"""Checks: small named functions, each looking at one concern of a request and returning findings.

Like Mailman's rules, a check only reports; `decide.py` turns the findings into a decision.
The order below is the order they run in; a finding with `stop=True` ends the run
(AUTO_REPLY, SENDER_NOT_ALLOWED, UNKNOWN_SUBJECT: nothing else is worth saying).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mailbot.model import Finding, Request


@dataclass(frozen=True)
class CheckContext:
    """What checks may consult besides the request itself."""

    rules_dir: Path
    internal_domains: tuple[str, ...]
    own_addresses: tuple[str, ...]  # the bot's own addresses: its mail is never answered
    now: datetime


Check = Callable[[Request, CheckContext], list[Finding]]


def run_checks(request: Request, ctx: CheckContext, checks: list[Check] | None = None) -> list[Finding]:
    findings: list[Finding] = []
    for check in checks if checks is not None else all_checks():
        found = check(request, ctx)
        findings.extend(found)
        if any(f.stop for f in found):
            break
    return findings


def all_checks() -> list[Check]:
    from mailbot.checks import attachments, body, sender, subject

    return [
        sender.auto_reply,
        sender.sender_allowed,
        subject.unknown_subject,
        subject.customer_code,
        attachments.required_attachment,
        body.required_items,
        body.body_code_matches,
    ]

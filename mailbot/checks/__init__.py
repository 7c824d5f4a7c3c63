"""Checks: small named functions, each looking at one concern of a request and returning findings.

Like Mailman's rules, a check only reports; `decide.py` turns the findings into a decision.
The order below is the order they run in; a finding with `stop=True` ends the run
(AUTO_REPLY, SENDER_NOT_ALLOWED, UNKNOWN_SUBJECT: nothing else is worth saying).
`run_checks` with no list runs them all, on a request whose form has already been read.
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


def gate_checks() -> list[Check]:
    """Who sent it and what it is: run before anything is extracted, so nothing of a mail that
    will not be answered (automatic, outsider, unknown) is opened."""
    from mailbot.checks import sender, subject

    return [sender.auto_reply, sender.sender_allowed, subject.unknown_subject]


def content_checks() -> list[Check]:
    """What the request says: subject code, attachments, body items, the form."""
    from mailbot.checks import attachments, body, form, subject

    return [
        subject.customer_code,
        attachments.required_attachment,
        form.pdf_opened_as_agreed,
        body.required_items,
        body.body_code_matches,
        form.form_code_matches,
        form.application_filled_in,
    ]


def all_checks() -> list[Check]:
    return gate_checks() + content_checks()

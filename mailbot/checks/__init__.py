"""Checks: small named functions, each looking at one concern of a request and returning findings.

Like Mailman's rules, a check only reports; `decide.py` turns the findings into a decision.
The order below is the order they run in; a finding with `stop=True` ends the run
(OWN_COPY, AUTO_REPLY, SENDER_NOT_ALLOWED, UNKNOWN_SUBJECT: nothing else is worth saying).
`run_checks` with no list runs them all, on a request whose form has already been read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mailbot.calendar import BusinessCalendar, business_calendar
from mailbot.model import Finding, Request

if TYPE_CHECKING:
    from mailbot.branches import BranchDirectory
    from mailbot.history import History
    from mailbot.unis import UnisData


@dataclass(frozen=True)
class CheckContext:
    """What checks may consult besides the request itself."""

    rules_dir: Path
    internal_domains: tuple[str, ...]
    own_addresses: tuple[str, ...]  # the bot's own addresses: its mail is never answered
    now: datetime
    unis: UnisData | None = None  # the UNIS extract in use; None: no extract, UNIS checks are skipped
    branches: BranchDirectory | None = None  # None: no directory, branch checks are skipped
    calendar: BusinessCalendar | None = None  # None: loaded from rules_dir
    history: History | None = None  # what was decided before; None: the history checks are skipped

    def __post_init__(self) -> None:
        if self.calendar is None:
            object.__setattr__(self, "calendar", business_calendar(self.rules_dir))


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

    return [sender.own_copy, sender.auto_reply, sender.sender_allowed, subject.unknown_subject]


def content_checks() -> list[Check]:
    """What the request says: subject code, attachments, body items, the form, then what the
    reference data (branch directory, UNIS extract, calendar) says about it."""
    from mailbot.checks import agreement, attachments, body, form, history, reference, subject

    return [
        subject.customer_code,
        attachments.required_attachment,
        form.pdf_opened_as_agreed,
        body.required_items,
        body.body_code_matches,
        form.form_code_matches,
        form.application_filled_in,
        reference.corporate_case,
        reference.branch_known,
        reference.manager_in_cc,
        reference.unis_order_found,
        reference.active_contract,
        reference.withdrawal_possible,
        agreement.plus_agrees,
        agreement.line_agrees,
        agreement.shop_agrees,
        agreement.unit_count_given,
        history.not_duplicate,
        history.cancel_on_order_day,
    ]


def all_checks() -> list[Check]:
    return gate_checks() + content_checks()

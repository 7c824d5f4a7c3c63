"""Checks: small named functions, each looking at one concern of a request and returning findings.

Like Mailman's rules, a check only reports; `decide.py` turns the findings into a decision.
The order below is the order they run in; a finding with `stop=True` ends the run
(OWN_COPY, AUTO_REPLY, SENDER_NOT_ALLOWED, REPLY_TO_BOT, UNKNOWN_SUBJECT, CORPORATE_CASE: nothing else is worth saying).
`run_checks` with no list runs them all, on a request whose form has already been read.
"""

from __future__ import annotations

from mailbot.checks import (
    agreement,
    attachments,
    body,
    form,
    history,
    reference,
    sender,
    subject,
)
from mailbot.checks.base import Check, CheckContext, run_checks

__all__ = ["Check", "CheckContext", "all_checks", "content_checks", "gate_checks", "run_checks"]


def gate_checks() -> list[Check]:
    """Who sent it and what it is: run before anything is extracted, so nothing of a mail that
    will not be answered (automatic, outsider, unknown) is opened."""
    return [sender.own_copy, sender.reply_bounced, sender.auto_reply, sender.sender_allowed, subject.reply_to_bot,
            subject.unknown_subject]


def content_checks() -> list[Check]:
    """What the request says: subject code, attachments, body items, the form, then what the
    reference data (branch directory, UNIS extract, calendar) says about it."""
    return [
        attachments.parts_readable,
        subject.registration_notice_via_dragon,  # stops: the answer is the procedure
        subject.customer_code,
        reference.corporate_case,  # stops: a corporate case gets none of the regional checks
        attachments.required_attachment,
        form.pdf_opened_as_agreed,
        body.required_items,
        body.child_unit_purpose,
        body.body_code_matches,
        form.form_code_matches,
        form.application_filled_in,
        reference.branch_known,
        reference.manager_in_cc,
        reference.unis_order_found,
        reference.active_contract,
        reference.withdrawal_possible,
        reference.termination_date_agrees,
        agreement.plus_agrees,
        agreement.line_agrees,
        agreement.shop_agrees,
        agreement.unit_count_given,
        history.not_duplicate,
        history.cancellation_by_case,
    ]


def all_checks() -> list[Check]:
    return gate_checks() + content_checks()

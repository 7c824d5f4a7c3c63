"""The states a mail, a reply and a once-a-day mail (digest, ledger share) go through, once.

StrEnums: the database keeps the same text it always kept.

    mail     received ──► decided ──────────────────────► filed
                 │            └──► reply_queued ──► sent ───┘      (any unfiled one: vanished)
    reply    queued ──► sending ──► sent
                 ▲          ├──► queued (retry)      failed (permanent, or out of attempts)
                 └──────────┘
    once     queued ──► sending ──► sent                             (digests, ledger shares)
                 ▲          └──► queued | failed ──► sending (sent again by hand)
"""

from __future__ import annotations

from enum import StrEnum


class MailState(StrEnum):
    RECEIVED = "received"  # recorded, not decided yet (or its processing failed: tried again)
    DECIDED = "decided"  # decided, no reply due (or deferred, or held after a failed reply)
    REPLY_QUEUED = "reply_queued"  # its reply waits to be sent
    SENT = "sent"  # its reply went out; it waits to be filed
    FILED = "filed"  # moved to its folder: finished
    VANISHED = "vanished"  # left the inbox outside mailbot before it was finished


# Every move the store makes; anything else is a bug (Store.set_state raises).
MAIL_TRANSITIONS: dict[MailState, frozenset[MailState]] = {
    MailState.RECEIVED: frozenset({MailState.DECIDED, MailState.REPLY_QUEUED, MailState.VANISHED}),
    # decided → decided: still deferred (another extract), or held after its reply failed
    MailState.DECIDED: frozenset({MailState.DECIDED, MailState.REPLY_QUEUED, MailState.FILED, MailState.VANISHED}),
    MailState.REPLY_QUEUED: frozenset({MailState.SENT, MailState.DECIDED}),
    MailState.SENT: frozenset({MailState.FILED, MailState.DECIDED, MailState.VANISHED}),
    # a held original is filed; staff deciding on its note make it due a reply, or file it again
    MailState.FILED: frozenset({MailState.REPLY_QUEUED, MailState.DECIDED, MailState.FILED}),
    MailState.VANISHED: frozenset({MailState.RECEIVED, MailState.DECIDED}),
}


class SendState(StrEnum):
    """A reply's state, and a once-a-day mail's (the same machine, sendonce.py)."""

    QUEUED = "queued"  # due (again at its next attempt time)
    SENDING = "sending"  # its SMTP transaction began: a crash leaves its fate unknown
    SENT = "sent"
    FAILED = "failed"  # for good: a person's job


class WrongTransition(RuntimeError):
    """A state change the machine does not have: a bug, never a mail's fault."""


def check_transition(old: MailState | str, new: MailState | str) -> None:
    """Staying in a state is no change (a deferred mail checked again, a vanished one seen missing
    again at every cycle); any other move must be in MAIL_TRANSITIONS."""
    if old != new and MailState(new) not in MAIL_TRANSITIONS[MailState(old)]:
        raise WrongTransition(f"mail state {old} → {new} is no transition of the state machine")

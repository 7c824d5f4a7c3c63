"""Sending a once-only mail that is queued (record/sendonce.py): the digest of a day, the day's
管理台帳 share.  One sender wins the claim, sends the stored bytes, and records the outcome."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import SMTP
from email.utils import getaddresses

from mailbot.record.sendonce import SendOnce
from mailbot.record.states import SendState
from mailbot.reply.send import Outcome, Transport

log = logging.getLogger("mailbot")


@dataclass(frozen=True)
class Delivery:
    state: str  # sent | queued (to retry) | failed | already sent | being sent elsewhere
    message_id: str
    detail: str = ""


def deliver(once: SendOnce, key: str, transport: Transport, name: str) -> Delivery:
    """Send the queued mail of `key` unless another sender holds it or sent it; the outcome is
    recorded (events "<name> sent|retry|failed").  A temporary failure leaves it queued."""
    if not once.claim(key):
        row = once.row(key)
        return Delivery("already sent" if row["state"] == SendState.SENT else "being sent elsewhere",
                        row["message_id"])
    row = once.row(key)
    # The stored bytes go out as they are (a crash resends the same); only the head is read.
    head = BytesHeaderParser(policy=SMTP).parsebytes(row["data"])
    envelope = [addr for _, addr in getaddresses([str(head["To"] or ""), str(head["Cc"] or "")]) if addr]
    result = transport.send([(row["data"], envelope)])[0]
    if result.outcome is Outcome.SENT:
        once.sent(key)
        once.store.event(None, f"{name} sent", f"{key} {row['message_id']} to {', '.join(envelope)}")
        return Delivery("sent", row["message_id"])
    state = once.failed(key, result.detail, permanent=result.outcome is Outcome.PERMANENT)
    once.store.event(None, f"{name} failed" if state == SendState.FAILED else f"{name} retry", f"{key} {result.detail}")
    log.warning("%s of %s not sent (%s): %s", name, key, state, result.detail)
    return Delivery(state.value, row["message_id"], result.detail)

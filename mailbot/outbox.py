"""Sending replies: over SMTP with aiosmtplib, or into a local outbox Maildir (embedded default).

A transport sends a batch over one connection and reports per message; retrying, giving up
and recording are the pipeline's business (store.py keeps the queue).
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import aiosmtplib

from mailbot.config import SmtpSettings


class Outcome(enum.Enum):
    SENT = "sent"
    TEMPORARY = "temporary"  # try again later (4xx, timeout, connection refused)
    PERMANENT = "permanent"  # will never work (5xx)


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    detail: str = ""


class Transport(Protocol):
    def send(self, messages: list[tuple[EmailMessage, list[str]]]) -> list[SendResult]:
        """Send each (message, envelope recipients); one result per message, in order."""


class SmtpTransport:
    def __init__(self, settings: SmtpSettings):
        self.settings = settings

    def send(self, messages: list[tuple[EmailMessage, list[str]]]) -> list[SendResult]:
        if not messages:
            return []
        return asyncio.run(self._send_all(messages))

    async def _send_all(self, messages: list[tuple[EmailMessage, list[str]]]) -> list[SendResult]:
        s = self.settings
        client = aiosmtplib.SMTP(hostname=s.host, port=s.port, timeout=s.timeout, start_tls=s.starttls or None,
                                 use_tls=False)
        results: list[SendResult] = []
        try:
            await client.connect()
            if s.username:
                await client.login(s.username, s.password or "")
        except (aiosmtplib.SMTPException, OSError) as e:
            return [_failure(e)] * len(messages)
        try:
            for message, recipients in messages:
                try:
                    await client.send_message(message, sender=s.sender, recipients=recipients)
                    results.append(SendResult(Outcome.SENT))
                except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError,
                        aiosmtplib.SMTPTimeoutError, OSError) as e:
                    # The connection is gone: this and every later message waits for the next try.
                    results.extend([_failure(e)] * (len(messages) - len(results)))
                    break
                except aiosmtplib.SMTPException as e:
                    results.append(_failure(e))
                    await _reset(client)
        finally:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
        return results


async def _reset(client: aiosmtplib.SMTP) -> None:
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError):
        pass


def _failure(error: Exception) -> SendResult:
    code = getattr(error, "code", None)
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused) and error.recipients:
        code = error.recipients[0].code
    detail = f"{type(error).__name__}: {error}"[:300]
    if isinstance(code, int) and 500 <= code < 600:
        return SendResult(Outcome.PERMANENT, detail)
    return SendResult(Outcome.TEMPORARY, detail)


class MaildirOutbox:
    """The embedded default: replies land as files in a local Maildir that any mail client opens."""

    def __init__(self, root: Path):
        from mailbot.mailbox.maildir import MaildirMailbox

        self.mailbox = MaildirMailbox(root)

    def send(self, messages: list[tuple[EmailMessage, list[str]]]) -> list[SendResult]:
        results = []
        for message, _recipients in messages:
            try:
                self.mailbox.append("INBOX", message.as_bytes())
                results.append(SendResult(Outcome.SENT))
            except OSError as e:
                results.append(SendResult(Outcome.TEMPORARY, str(e)))
        return results

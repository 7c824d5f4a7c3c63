"""Sending replies: over SMTP with aiosmtplib, or into a local outbox Maildir (embedded default).

A transport sends a batch over one connection and reports per message; retrying, giving up
and recording are the pipeline's business (store.py keeps the queue).  Over SMTP each message is
one transaction that reaches all its recipients or, when one of them is refused for now (4xx),
none of them: it is tried again later as a whole, so nobody misses it and nobody gets it twice.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Protocol

import aiosmtplib
from aiosmtplib.email import flatten_message

from mailbot.auth import AuthError, TokenSource
from mailbot.config import SmtpSettings


class Outcome(enum.Enum):
    SENT = "sent"
    TEMPORARY = "temporary"  # try again later (4xx, timeout, connection refused)
    PERMANENT = "permanent"  # will never work (5xx)
    # The connection failed during DATA: the server may have taken the message before its answer
    # was lost.  Sent again later like TEMPORARY, unless its copy shows it went out.
    IN_DOUBT = "in doubt"


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    detail: str = ""


# A message, or one already in its wire form (the queued reply's bytes, sent as they were made).
Outgoing = EmailMessage | bytes
OnResult = Callable[[int, SendResult], None]
OnStart = Callable[[int], None]


class Transport(Protocol):
    def send(self, messages: list[tuple[Outgoing, list[str]]],
             on_result: OnResult | None = None, on_start: OnStart | None = None,
             keep_open: bool = False) -> list[SendResult]:
        """Send each (message, envelope recipients); one result per message, in order.

        `keep_open`: the session may stay open for the next send (the chunks of one poll cycle);
        close() ends it.

        `on_start(i)` is called just before message i's transaction begins, `on_result(i, result)`
        with its result as soon as it is known, before the next message is sent: the caller
        records both then, so that after a crash it knows which one message may have reached the
        server, and never sends again what the server has already accepted."""

    def close(self) -> None:
        """End a session kept open by send(keep_open=True)."""


def _reporter(results: list[SendResult], on_result: OnResult | None) -> Callable[..., None]:
    def done(*outcomes: SendResult) -> None:
        for result in outcomes:
            results.append(result)
            if on_result is not None:
                on_result(len(results) - 1, result)
    return done


class SmtpTransport:
    def __init__(self, settings: SmtpSettings, token_source: TokenSource | None = None):
        self.settings = settings
        self.token_source = token_source  # OAuth 2.0: XOAUTH2 as [smtp] username (else from) instead of a password
        # A session kept between the sends of one poll cycle (a connection, greeting and login
        # less per chunk), with the event loop it lives in.
        self._runner: asyncio.Runner | None = None
        self._client: aiosmtplib.SMTP | None = None

    def send(self, messages: list[tuple[Outgoing, list[str]]],
             on_result: OnResult | None = None, on_start: OnStart | None = None,
             keep_open: bool = False) -> list[SendResult]:
        if not messages:
            return []
        if self._runner is None:
            self._runner = asyncio.Runner()
        try:
            return self._runner.run(self._send_all(messages, on_result, on_start, keep_open))
        finally:
            if self._client is None:
                self._runner.close()
                self._runner = None

    def close(self) -> None:
        if self._runner is None:
            return
        if self._client is not None:
            self._runner.run(_quit(self._client))
            self._client = None
        self._runner.close()
        self._runner = None

    async def _kept(self) -> aiosmtplib.SMTP | None:
        """The session kept from the last send if it still answers (NOOP), else None."""
        client, self._client = self._client, None
        if client is None:
            return None
        try:
            await client.noop()
            return client
        except (aiosmtplib.SMTPException, OSError):
            client.close()
            return None

    async def _connect(self) -> aiosmtplib.SMTP:
        """A new session, greeted and logged in."""
        s = self.settings
        client = aiosmtplib.SMTP(hostname=s.host, port=s.port, timeout=s.timeout, start_tls=s.starttls or None,
                                 use_tls=False)
        try:
            await client.connect()
            if self.token_source is not None:
                await self._xoauth2(client)
            elif s.username:
                await client.login(s.username, s.password or "")
        except BaseException:
            client.close()  # e.g. after a refused login the connection is still open
            raise
        return client

    async def _xoauth2(self, client: aiosmtplib.SMTP) -> None:
        """SASL XOAUTH2 with the app's token; refused once (expired early), once more with a fresh one."""
        user = self.settings.username or self.settings.sender
        try:
            await client.auth_xoauth2(user, await asyncio.to_thread(self.token_source.token))
        except aiosmtplib.SMTPAuthenticationError:
            await client.auth_xoauth2(user, await asyncio.to_thread(self.token_source.refresh))

    async def _send_all(self, messages: list[tuple[Outgoing, list[str]]],
                        on_result: OnResult | None = None, on_start: OnStart | None = None,
                        keep_open: bool = False) -> list[SendResult]:
        s = self.settings
        results: list[SendResult] = []
        done = _reporter(results, on_result)
        try:
            client = await self._kept() or await self._connect()
        except (aiosmtplib.SMTPException, OSError, AuthError) as e:
            # Nothing was said about any message yet: a refused greeting or login (a wrong
            # password, a locked account) is the relay's or the setup's fault, retried with
            # backoff, not a reason to hold every mail due a reply at once.
            done(*[SendResult(Outcome.TEMPORARY, _failure(e).detail)] * len(messages))
            return results
        lost = False
        try:
            for i, (message, recipients) in enumerate(messages):
                if on_start is not None:
                    on_start(i)
                try:
                    done(await _send_one(client, message, s.sender, recipients))
                except _InDoubt as e:
                    # This one may have gone out; every later message waits for the next try.
                    lost = True
                    done(SendResult(Outcome.IN_DOUBT, _failure(e.__cause__).detail))
                    done(*[_failure(e.__cause__)] * (len(messages) - len(results)))
                    break
                except _CONNECTION_LOST as e:
                    # The connection is gone: this and every later message waits for the next try.
                    lost = True
                    done(*[_failure(e)] * (len(messages) - len(results)))
                    break
                except aiosmtplib.SMTPException as e:
                    done(_failure(e))
                    await _reset(client)
        finally:
            if keep_open and not lost and client.is_connected:
                self._client = client
            else:
                await _quit(client)
        return results


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


_CONNECTION_LOST = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError,
                    OSError)


class _InDoubt(Exception):
    """The connection failed during DATA (the cause): did the server take the message?"""


async def _send_one(client: aiosmtplib.SMTP, message: Outgoing, sender: str,
                    recipients: list[str]) -> SendResult:
    """One SMTP transaction: the message goes to all its recipients, or for now to none.

    A recipient refused for now (4xx at RCPT TO: mailbox busy, greylisting, too many recipients)
    ends the transaction before DATA, and the whole message is tried again later: nobody has it
    yet, so nobody gets it twice.  (aiosmtplib's send_message would send it to the others at once
    and report success: that recipient would never get it.)  A recipient refused for good (5xx)
    is left out and named in the result, which stays SENT unless every recipient was refused.
    """
    if not recipients:
        return SendResult(Outcome.PERMANENT, "no recipients")
    utf8 = not (sender + "".join(recipients)).isascii()
    if utf8 and not client.supports_extension("smtputf8"):
        return SendResult(Outcome.PERMANENT, "non-ASCII address and the server lacks SMTPUTF8")
    # connect() has said EHLO (or HELO), so the extensions are known, as send_message uses them.
    eight_bit = client.supports_extension("8bitmime")
    if isinstance(message, bytes) and not message.isascii():
        message = BytesParser(policy=SMTP_POLICY).parsebytes(message)  # re-encoded for this server
    if isinstance(message, bytes):
        data, eight_bit = message, False  # 7-bit already: any server takes it as it is
    else:
        data = flatten_message(message, utf8=utf8, cte_type="8bit" if eight_bit else "7bit")
    options = ["SMTPUTF8"] if utf8 else []
    if eight_bit:
        options.append("BODY=8BITMIME")
    if client.supports_extension("size"):
        options.insert(0, f"SIZE={len(data)}")
    encoding = "utf-8" if utf8 else "ascii"
    await client.mail(sender, options=options, encoding=encoding)
    later: list[aiosmtplib.SMTPRecipientRefused] = []
    refused: list[aiosmtplib.SMTPRecipientRefused] = []
    for recipient in recipients:
        try:
            await client.rcpt(recipient, encoding=encoding)
        except aiosmtplib.SMTPRecipientRefused as e:
            (refused if 500 <= e.code < 600 else later).append(e)
    if later or len(refused) == len(recipients):
        await _reset(client)
        return _failure(aiosmtplib.SMTPRecipientsRefused(later + refused))
    try:
        await client.data(data)
    except _CONNECTION_LOST as e:
        raise _InDoubt from e
    if refused:
        return SendResult(Outcome.SENT, "refused: " + "; ".join(
            f"{e.recipient} ({e.code} {e.message})" for e in refused)[:300])
    return SendResult(Outcome.SENT)


async def _reset(client: aiosmtplib.SMTP) -> None:
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError):
        pass


def _failure(error: Exception) -> SendResult:
    code = getattr(error, "code", None)
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused) and error.recipients:
        # permanent only if every recipient was refused for good
        code = min(r.code for r in error.recipients)
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        text = "; ".join(f"{r.recipient} ({r.code} {r.message})" for r in error.recipients)
    else:
        text = str(error)
    detail = f"{type(error).__name__}: {text}"[:300]
    if isinstance(code, int) and 500 <= code < 600:
        return SendResult(Outcome.PERMANENT, detail)
    return SendResult(Outcome.TEMPORARY, detail)


class MaildirOutbox:
    """The embedded default: replies land as files in a local Maildir that any mail client opens."""

    def __init__(self, root: Path):
        from mailbot.mailbox.maildir import MaildirMailbox

        self.mailbox = MaildirMailbox(root)

    def send(self, messages: list[tuple[Outgoing, list[str]]],
             on_result: OnResult | None = None, on_start: OnStart | None = None,
             keep_open: bool = False) -> list[SendResult]:
        results: list[SendResult] = []
        done = _reporter(results, on_result)
        for i, (message, _recipients) in enumerate(messages):
            if on_start is not None:
                on_start(i)
            try:
                self.mailbox.append("INBOX", message if isinstance(message, bytes) else message.as_bytes())
                done(SendResult(Outcome.SENT))
            except OSError as e:
                done(SendResult(Outcome.TEMPORARY, str(e)))
        return results

    def close(self) -> None:
        pass  # no session

"""Wake the poll loop as soon as mail arrives: a thread holding an IMAP IDLE on the inbox.

Polling every `[scheduler] poll_interval` seconds stays the safety net (and is all there is for a
Maildir, or a server without IDLE); IDLE only brings the next cycle forward.  The IDLE is renewed
every minute, well within the 29 minutes of RFC 2177, which also lets the thread notice a stop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from mailbot.auth import TokenSource
from mailbot.config import ImapSettings
from mailbot.mailbox import MailboxError
from mailbot.mailbox.imap import IdleUnsupported, ImapMailbox

log = logging.getLogger("mailbot")

_RENEW_S = 60.0
_BACKOFF_MAX_S = 60.0


class IdleWatcher(threading.Thread):
    """Calls `wake()` whenever the server announces a change in `settings.inbox`."""

    def __init__(self, settings: ImapSettings, wake: Callable[[], None], stopping: threading.Event,
                 token_source: TokenSource | None = None):
        super().__init__(name="imap-idle", daemon=True)
        self.settings = settings
        self.token_source = token_source
        self.wake = wake
        self.stopping = stopping

    def run(self) -> None:
        i = self.settings
        mailbox = ImapMailbox(i.host, i.port, i.ssl, i.username, i.password, timeout=i.timeout,
                              token_source=self.token_source)
        backoff = 1.0
        try:
            while not self.stopping.is_set():
                try:
                    if mailbox.wait_for_change(i.inbox, _RENEW_S):
                        self.wake()
                    backoff = 1.0
                except IdleUnsupported as e:
                    log.info("%s: new mail is noticed by polling only", e)
                    return
                except MailboxError as e:  # the poll cycle records outages; here only wait and retry
                    log.warning("IMAP IDLE: %s; again in %.0f s", e, backoff)
                    self.stopping.wait(backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX_S)
        finally:
            mailbox.close()

"""systemd's notify protocol (sd_notify(3)) without a library: one datagram per state change to
the socket systemd names in $NOTIFY_SOCKET (a path, or "@name" in the abstract namespace).

    notifier = Notifier.from_environment()     # does nothing when not run by systemd
    notifier.ready("polling every 60 s")       # after the first successful poll
    notifier.watchdog()                        # after each successful poll (WatchdogSec=)
    notifier.stopping()                        # on SIGTERM

The watchdog is pinged only after a successful poll: a mailbox connection that hangs stops the
pings, and systemd restarts the process after WatchdogSec.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("mailbot")


class Notifier:
    def __init__(self, address: str | None):
        self.address = address

    @classmethod
    def from_environment(cls) -> Notifier:
        return cls(os.environ.get("NOTIFY_SOCKET") or None)

    @property
    def watchdog_seconds(self) -> float | None:
        """WatchdogSec= as systemd passes it ($WATCHDOG_USEC), when meant for this process."""
        usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
        if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
            return None
        return int(usec) / 1e6

    def _send(self, *lines: str) -> None:
        if not self.address:
            return
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto("\n".join(lines).encode("utf-8"), target)
        except OSError as e:  # systemd gone or the socket wrong: the bot goes on
            log.warning("systemd notification failed: %s", e)

    def ready(self, status: str = "") -> None:
        self._send("READY=1", f"STATUS={status}" if status else "STATUS=running")

    def watchdog(self, status: str = "") -> None:
        self._send("WATCHDOG=1", *([f"STATUS={status}"] if status else []))

    def status(self, status: str) -> None:
        self._send(f"STATUS={status}")

    def stopping(self) -> None:
        self._send("STOPPING=1", "STATUS=stopping")

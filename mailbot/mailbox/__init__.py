"""The mailbox: one small interface, served by IMAP (imap.py) or a local Maildir (maildir.py)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Protocol

from mailbot.model import MailRef, RawMail


class MailboxError(Exception):
    """The mailbox could not be reached or refused an operation; the cycle stops and retries later."""


class MailboxUnreachable(MailboxError):
    """Not even a (new) connection could be made: refused, timed out, login failed.  Nothing more
    can be done with the mailbox in this cycle; each further try would only wait out the timeout."""


class Mailbox(Protocol):
    def ensure_folders(self, names: Iterable[str]) -> None:
        """Create each folder that does not exist yet (names may be Japanese)."""

    def uidvalidity(self, folder: str) -> int:
        """The folder's current UIDVALIDITY."""

    def list_uids(self, folder: str) -> list[int]:
        """Every UID in the folder, ascending."""

    def fetch(self, folder: str, uids: Iterable[int]) -> Iterator[RawMail]:
        """Raw mails by UID without marking them read (BODY.PEEK[]), with INTERNALDATE.
        UIDs that vanished meanwhile are skipped."""

    def search_header(self, folder: str, name: str, value: str = "", min_uid: int = 1) -> list[int]:
        """UIDs (≥ min_uid, ascending) of the mails having header `name` containing `value`
        (any value when ""), as IMAP SEARCH HEADER does."""

    def move(self, ref: MailRef, dest: str) -> None:
        """Move one mail to dest: MOVE, else COPY + UID EXPUNGE.  Never deletes otherwise.
        Safe to repeat after a crash: never leaves two copies in dest."""

    def move_many(self, refs: list[MailRef], dest: str) -> None:
        """Move mails of one folder (and UIDVALIDITY) to dest at once, with move's guarantees;
        mails no longer there are skipped."""

    def append(self, folder: str, data: bytes, internaldate: datetime | None = None) -> None:
        """Store a new mail in folder (held-folder notes, tests)."""

    def close(self) -> None: ...

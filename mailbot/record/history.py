"""What mailbot already decided for a customer code: the memory behind DUPLICATE_REQUEST and
CANCEL_AFTER_ORDER (DOMAIN.md §4, §5).

    history.requests_for("988776654") -> [PastRequest(kind, code, action, received), ...]

The bot's history is its state database (`Store.requests_for`); `mailbot check` keeps a
`MemoryHistory` of the mails it checked before in the same run, as if they had arrived in that
order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from mailbot.model import Action, Kind


@dataclass(frozen=True)
class PastRequest:
    kind: Kind
    code: str
    action: Action  # the bot's decision, or the staff's that replaced its hold (DOMAIN.md §9)
    received: datetime  # aware
    decided_at: datetime | None = None  # when staff decided it; None: the bot, on receipt

    @property
    def accepted_on(self) -> datetime:
        """When it was accepted: day N of an order counts from here (by staff: their decision)."""
        return self.decided_at or self.received


class History(Protocol):
    def requests_for(self, code: str) -> list[PastRequest]:
        """The decided requests of this customer code, oldest first."""
        ...

    def made_reply(self, message_id: str) -> bool:
        """Whether the bot made a reply with this Message-ID (a copy of it came back)."""
        ...


class MemoryHistory:
    def __init__(self) -> None:
        self._requests: list[PastRequest] = []

    def add(self, request: PastRequest) -> None:
        self._requests.append(request)

    def made_reply(self, message_id: str) -> bool:
        return False  # `check` sends nothing

    def requests_for(self, code: str) -> list[PastRequest]:
        return sorted((r for r in self._requests if r.code == code), key=lambda r: r.received)

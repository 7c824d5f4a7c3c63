"""The plain values that flow between the stages.

mailbox → RawMail → message → Mail → classify → Request → check → [Finding] → decide → Decision
→ reply → EmailMessage.  Each stage takes and returns these, so it can be tested alone.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property


@dataclass(frozen=True)
class MailRef:
    """Where one mail sits in a mailbox: IMAP's (folder, UIDVALIDITY, UID) or the Maildir equivalent."""

    folder: str
    uidvalidity: int
    uid: int


@dataclass(frozen=True)
class RawMail:
    """A mail as fetched, before any parsing."""

    ref: MailRef
    data: bytes
    internaldate: datetime | None = None  # when the server received it (timezone-aware)

    @cached_property
    def sha256(self) -> str:  # asked for many times per mail: hashed once
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Address:
    name: str  # decoded display name, may be ""
    addr: str  # lower-cased addr-spec, may be "" when unparseable

    @property
    def domain(self) -> str:
        return self.addr.rpartition("@")[2]


@dataclass(frozen=True)
class Attachment:
    filename: str  # decoded (RFC 2047 / RFC 2231), "" when none given
    content_type: str  # lower-case maintype/subtype
    data: bytes


@dataclass(frozen=True)
class Mail:
    """A decoded mail: what every later stage reads."""

    subject: str  # decoded, unfolded; "" when absent
    sender: Address | None  # the first From address
    from_addrs: tuple[Address, ...]  # every address of every From header (spoof checks)
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    message_id: str | None  # with angle brackets, as in the header
    in_reply_to: str | None
    references: tuple[str, ...]
    date: datetime | None  # the Date: header
    received_at: datetime | None  # the date of the topmost Received: header
    headers: dict[str, tuple[str, ...]]  # lower-cased name → every decoded value, in order
    content_type: str  # top-level, lower-case maintype/subtype
    body: str  # the plain part, else the HTML part as text
    attachments: tuple[Attachment, ...] = ()
    defects: tuple[str, ...] = ()  # what was repaired while reading, for the audit trail
    lost_parts: tuple[str, ...] = ()  # parts the MIME structure lost beyond repair (an attachment)

    def header(self, name: str) -> str:
        """The first value of a header, "" when absent."""
        values = self.headers.get(name.lower(), ())
        return values[0] if values else ""


class Kind(str, enum.Enum):
    EQUIPMENT_ORDER = "equipment_order"
    CONTRACT_CHANGE = "contract_change"
    CANCELLATION = "cancellation"
    TERMINATION = "termination"
    ROUTER_NOT_REMOVED = "router_not_removed"
    RELOCATION = "relocation"
    TERMINATION_WITHDRAWAL = "termination_withdrawal"
    REGISTRATION_NOTICE = "registration_notice"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Classification:
    kind: Kind
    code: str | None  # the customer code as written after the kind word (NFKC), None when absent
    subject: str  # the subject as the branch wrote it, without Re:/Fw:/bot prefixes
    resubmission: bool = False  # it answers a remand of the bot: the request again, fixed
    answers: Action | None = None  # the bot's decision this mail answers (DOMAIN.md §2 conversations)


class Action(str, enum.Enum):
    ACCEPT = "accept"
    REMAND = "remand"
    HOLD = "hold"
    DEFER = "defer"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Finding:
    code: str  # a reason code of DOMAIN.md §4, e.g. "CODE_MISSING"
    detail: str = ""  # what exactly was found, shown to the branch or staff
    stop: bool = False  # no further checks make sense (AUTO_REPLY, SENDER_NOT_ALLOWED, …)
    defer: bool = False  # may resolve itself once newer reference data arrives (UNIS deferral)


@dataclass(frozen=True)
class Request:
    """A mail understood as a request: what the checks look at."""

    mail: Mail
    classification: Classification
    received: datetime  # Asia/Tokyo aware
    body_items: dict[str, str] = field(default_factory=dict)  # label → value from the body
    form_reading: object | None = None  # forms.model.PdfReading of the required form, when one is attached
    form: object | None = None  # forms.model.ApplicationForm / TerminationForm read from it
    child_unit_order: bool = False  # an equipment order for a child unit (子機 追加/交換, DOMAIN.md §3a)


@dataclass(frozen=True)
class Decision:
    action: Action
    findings: tuple[Finding, ...]

    @property
    def reasons(self) -> list[str]:
        return [f.code for f in self.findings]

"""What every check is given (`CheckContext`) and how a list of checks runs (`run_checks`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from mailbot.model import Finding, Request
from mailbot.reference.calendar import BusinessCalendar, business_calendar

if TYPE_CHECKING:
    from mailbot.record.history import History
    from mailbot.reference.branches import BranchDirectory
    from mailbot.reference.unis import UnisData

T = TypeVar("T")


@dataclass(frozen=True)
class CheckContext:
    """What checks may consult besides the request itself."""

    rules_dir: Path
    internal_domains: tuple[str, ...]
    own_addresses: tuple[str, ...]  # the bot's own addresses: its mail is never answered
    now: datetime
    unis: UnisData | None = None  # the UNIS extract in use; None: no extract, UNIS checks are skipped
    branches: BranchDirectory | None = None  # None: no directory, branch checks are skipped
    calendar: BusinessCalendar | None = None  # None: loaded from rules_dir
    history: History | None = None  # what was decided before; None: the history checks are skipped
    # What a check worked out about this one mail, for the reply's fields to reuse (a context is
    # made per mail).
    _memo: dict[str, object] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.calendar is None:
            object.__setattr__(self, "calendar", business_calendar(self.rules_dir))

    def once(self, key: str, compute: Callable[[], T]) -> T:
        """compute() the first time `key` is asked for in this context, its value after."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]  # type: ignore[return-value]


Check = Callable[[Request, CheckContext], list[Finding]]


def run_checks(request: Request, ctx: CheckContext, checks: list[Check]) -> list[Finding]:
    findings: list[Finding] = []
    for check in checks:
        found = check(request, ctx)
        findings.extend(found)
        if any(f.stop for f in found):
            break
    return findings

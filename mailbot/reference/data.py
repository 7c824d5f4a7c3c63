"""The reference data the checks consult, built once per poll cycle or `check` run:
the UNIS extract, the branch directory and the business calendar (DOMAIN.md §5, §7).

    ref = ReferenceData.load(settings)                  # poll: errors logged, last good kept
    ref = ReferenceData.load(settings, strict=True, unis_db=tmp / "unis.sqlite3")  # check: errors raise
    ref.refresh()                                       # next cycle: re-import what changed

The UNIS extract is imported into its own SQLite file next to the state database
(`<database>.unis.sqlite3`).  Nothing configured → None → the checks needing it are skipped.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from mailbot.config import Settings
from mailbot.files import DataFileError
from mailbot.reference.branches import BranchDirectory, BranchError
from mailbot.reference.calendar import BusinessCalendar, business_calendar
from mailbot.reference.unis import UnisData, UnisError

log = logging.getLogger("mailbot")


def unis_db_path(settings: Settings) -> Path:
    return settings.database.with_name(settings.database.name + ".unis.sqlite3")


@dataclass
class ReferenceData:
    unis: UnisData | None
    branches: BranchDirectory | None
    calendar: BusinessCalendar
    unis_extract: Path | None = None
    branch_directory: Path | None = None
    errors: list[str] = field(default_factory=list)  # of the last load/refresh
    _branches_stamp: tuple[int, int] | None = None

    @property
    def extract(self) -> UnisData | None:
        """The UNIS extract if one is usable (imported), else None."""
        return self.unis if self.unis is not None and self.unis.info is not None else None

    @property
    def version(self) -> str | None:
        """The UNIS extract in use (recorded with each decision), None without one."""
        return self.extract.version if self.extract is not None else None

    @classmethod
    def load(cls, settings: Settings, *, unis_extract: Path | None = None, branch_directory: Path | None = None,
             unis_db: Path | None = None, strict: bool = False) -> ReferenceData:
        """`strict` (check): a bad extract or directory raises DataFileError.  Else (poll) the
        error is logged and the data needing it is skipped until a good file comes."""
        ref = cls(unis=None, branches=None, calendar=business_calendar(settings.rules_dir),
                  unis_extract=unis_extract or settings.unis_extract,
                  branch_directory=branch_directory or settings.branch_directory)
        if ref.unis_extract is not None:
            try:
                ref.unis = UnisData.open(ref.unis_extract, unis_db or unis_db_path(settings), settings.rules_dir)
                if ref.unis.error is not None:  # a bad new file, the last good extract stays in use
                    ref._report(ref.unis.error)
            except UnisError as e:
                if strict:
                    raise
                ref._report(e)
        ref._load_branches(strict)
        return ref

    def refresh(self) -> None:
        """At each poll: re-import the extract and reload the directory when their files changed;
        a bad file is logged once and the last good data stays in use."""
        self.errors = []
        if self.unis is not None:
            try:
                self.unis.refresh()
            except UnisError as e:
                self._report(e)
        self._load_branches(strict=False)

    def _load_branches(self, strict: bool) -> None:
        path = self.branch_directory
        if path is None:
            return
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp is not None and stamp == self._branches_stamp:
            return
        try:
            self.branches = BranchDirectory.load(path)
            self._branches_stamp = stamp
        except BranchError as e:
            if strict:
                raise
            self._branches_stamp = stamp  # logged once per bad version of the file
            self._report(e)

    def _report(self, e: DataFileError) -> None:
        self.errors.append(str(e))
        log.error("reference data: %s", e)

    def close(self) -> None:
        if self.unis is not None:
            self.unis.close()

"""The branch directory (DOMAIN.md §7): who belongs to which branch, who manages it, and which
branches are corporate sales (法人営業).

A CSV (UTF-8 or CP932, with or without BOM) with the columns, in any order (extra ones ignored):

    支店名, 支店長メール, 所属メール (members' addresses, `;`-separated), 法人営業 (`1`: corporate)

    branches = BranchDirectory.load(settings.branch_directory)
    branches.by_name("渋谷")                       # NFKC, spaces ignored, with or without 支店
    branches.by_member("I-Suzuki@usen.co.jp")      # members and managers, case-insensitive
    branches.requesting_branch(body_branch, sender, unis_branch)

Every problem raises `BranchError`, whose message names the file, the row (header = row 1) and
the column.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path

from mailbot.files import DataFileError
from mailbot.reference.unis import (
    SUPPORTED_ENCODINGS,
    detect_encoding,
    locate_decode_error,
    norm_header,
)
from mailbot.text import compact

COLUMNS = {"name": "支店名", "manager": "支店長メール", "members": "所属メール", "corporate": "法人営業"}
# Accepted spellings of each header (compared after NFKC, spaces removed).
HEADERS = {
    "name": ("支店名", "支店"),
    "manager": ("支店長メール", "支店長メールアドレス", "支店長アドレス"),
    "members": ("所属メール", "所属メールアドレス", "所属アドレス"),
    "corporate": ("法人営業",),
}
BRANCH_SUFFIX = "支店"
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_SEPARATORS = re.compile(r"[;；,、\s]+")


class BranchError(DataFileError):
    """A bad branch directory.  str() names the file, the row and the column."""


@dataclass(frozen=True)
class Branch:
    name: str  # as written in the directory, e.g. "渋谷支店"
    manager: str  # the branch manager's address (lower case)
    members: tuple[str, ...]  # the members' addresses (lower case), in directory order
    corporate: bool  # corporate sales (法人営業)
    row: int  # in the directory CSV

    @property
    def addresses(self) -> frozenset[str]:
        """Everyone in the branch: the manager and the members."""
        return frozenset((self.manager, *self.members))


def name_key(name: str) -> str:
    """A branch name as compared: NFKC, case-folded, no spaces, without a trailing 支店."""
    key = compact(name)
    if key.endswith(BRANCH_SUFFIX) and len(key) > len(BRANCH_SUFFIX):
        key = key[: -len(BRANCH_SUFFIX)]
    return key


def address_key(address: str) -> str:
    """An address as compared: the addr-spec of `Name <addr>` or a bare one, NFKC, lower case."""
    address = unicodedata.normalize("NFKC", address).strip()
    if "<" in address:
        address = parseaddr(address)[1] or address
    return address.strip().strip("<>").lower()


class BranchDirectory:
    def __init__(self, branches: list[Branch], source: Path | None = None):
        self.branches = tuple(branches)
        self.source = source
        self._by_name = {name_key(b.name): b for b in branches}
        self._by_address: dict[str, list[Branch]] = {}
        for b in branches:
            for a in (b.manager, *b.members):
                hits = self._by_address.setdefault(a, [])
                if b not in hits:
                    hits.append(b)

    def __len__(self) -> int:
        return len(self.branches)

    def __iter__(self):
        return iter(self.branches)

    @classmethod
    def load(cls, path: Path) -> BranchDirectory:
        path = Path(path)
        try:
            encoding = detect_encoding(path)
        except OSError as e:
            raise BranchError(path, f"cannot read the file ({e.strerror or e})") from None
        if encoding not in SUPPORTED_ENCODINGS:
            raise BranchError(path, f"{encoding.upper()} is not supported: save the directory as UTF-8 or CP932", 1)
        try:
            with open(path, encoding=encoding, newline="") as f:
                rows = list(csv.reader(f))
        except UnicodeDecodeError:
            row, column, bad = locate_decode_error(path, encoding)
            raise BranchError(path, f"not valid {'UTF-8' if encoding.startswith('utf') else 'CP932'} (bytes {bad})",
                              row or None, column) from None
        except csv.Error as e:
            raise BranchError(path, f"not a readable CSV ({e})") from None
        return cls(_parse(path, rows), path)

    @classmethod
    def from_text(cls, text: str, source: str = "<branches>") -> BranchDirectory:
        return cls(_parse(Path(source), list(csv.reader(io.StringIO(text, newline="")))), None)

    # -- lookups

    def by_name(self, name: str | None) -> Branch | None:
        """The branch of that name: NFKC, case and spaces ignored, with or without 支店."""
        if not name or not name.strip():
            return None
        return self._by_name.get(name_key(name))

    def branches_of(self, address: str | None) -> list[Branch]:
        """Every branch the address belongs to (as manager or member), in directory order."""
        if not address:
            return []
        return list(self._by_address.get(address_key(address), ()))

    def by_member(self, address: str | None) -> Branch | None:
        """The branch the address belongs to (manager or member, case-insensitive); None when it
        belongs to none, or to several (a manager of two branches: see requesting_branch)."""
        hits = self.branches_of(address)
        return hits[0] if len(hits) == 1 else None

    def is_corporate(self, address: str | None) -> bool:
        """The address belongs to a corporate-sales branch (法人営業)."""
        return any(b.corporate for b in self.branches_of(address))

    def requesting_branch(self, body_branch_name: str | None, sender: str,
                          unis_branch: str | None) -> Branch | None:
        """The branch a request comes from (DOMAIN.md §7): the body's 送付支店名; where the body
        names none, the sender's branch in the directory; where the sender is in none, the UNIS
        管轄支店名.  None (BRANCH_UNKNOWN) when the name that decides is not in the directory.

        A body name that is given but unknown decides (None): it is not overridden by the
        sender.  A sender in several branches is resolved by the UNIS branch when that is one of
        them, else falls through to the UNIS branch."""
        if body_branch_name and body_branch_name.strip():
            return self.by_name(body_branch_name)
        hits = self.branches_of(sender)
        if len(hits) == 1:
            return hits[0]
        unis = self.by_name(unis_branch)
        if len(hits) > 1 and unis is not None and unis in hits:
            return unis
        return unis


def _parse(path: Path, rows: list[list[str]]) -> list[Branch]:
    def err(message: str, row: int | None = None, column: str | None = None) -> BranchError:
        return BranchError(path, message, row, column)

    if not rows or not any(c.strip() for c in rows[0]):
        raise err("no header row (the file is empty)", 1)
    header = rows[0]
    where: dict[str, int] = {}
    for i, cell in enumerate(header):
        key = norm_header(cell)
        if key in where and key:
            raise err("the column appears twice", 1, cell)
        where[key] = i
    index: dict[str, int] = {}
    for field, spellings in HEADERS.items():
        hits = [where[norm_header(s)] for s in spellings if norm_header(s) in where]
        if not hits:
            raise err(f"required column missing (header: {' / '.join(header)})", 1, COLUMNS[field])
        index[field] = hits[0]

    branches: list[Branch] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue  # a blank line
        if len(row) != len(header):
            column = header[len(row)] if len(row) < len(header) else f"{len(header) + 1} (extra)"
            raise err(f"{len(row)} columns, the header has {len(header)}", n, column)
        cells = {f: unicodedata.normalize("NFKC", row[i]).strip() for f, i in index.items()}
        col = {f: header[i] for f, i in index.items()}

        name = row[index["name"]].strip()
        if not name:
            raise err("empty, a branch name is required", n, col["name"])
        key = name_key(name)
        if key in seen:
            raise err(f"{name!r} is already on row {seen[key]}", n, col["name"])
        seen[key] = n

        manager = cells["manager"].lower()
        if not manager:
            raise err("empty, the branch manager's address is required", n, col["manager"])
        if not _ADDRESS.match(manager):
            raise err(f"{row[index['manager']]!r} is not a mail address", n, col["manager"])

        members: list[str] = []
        for part in _SEPARATORS.split(cells["members"]):
            if not part:
                continue
            if not _ADDRESS.match(part):
                raise err(f"{part!r} is not a mail address (separate addresses with ';')", n, col["members"])
            if part.lower() not in members:
                members.append(part.lower())

        flag = cells["corporate"]
        if flag not in ("", "0", "1"):
            raise err(f"{row[index['corporate']]!r}: expected 1 (corporate sales), 0 or empty", n, col["corporate"])
        branches.append(Branch(name, manager, tuple(members), flag == "1", n))
    return branches

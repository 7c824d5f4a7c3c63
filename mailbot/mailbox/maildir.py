"""The mailbox on a local Maildir++ tree: the embedded default when no IMAP server is configured.

Layout (Maildir++, as Dovecot and Courier use it, so a mail client can open the same tree):

    root/{cur,new,tmp}             the inbox, named "INBOX"
    root/.処理済/{cur,new,tmp}      folder "処理済" (names stored as UTF-8)
    root/.保留.受付/{cur,new,tmp}   folder "保留/受付" ("/" is the hierarchy separator)

UIDs persist per folder in `mailbot-uidlist` (like Dovecot's dovecot-uidlist):

    1 V<uidvalidity> N<next uid>
    <uid> <base name>
    ...

The base name is the file name without its `:2,FLAGS` info, so a mail keeps its UID when a mail
client moves it from new/ to cur/ or changes its flags.  Files that appear in new/ or cur/ get the
next UIDs in a stable order (their names, which start with the delivery time); entries whose
file is gone are dropped.  Every read-modify-write of the uidlist happens under an exclusive
`flock` on `mailbot-uidlist.lock`, and the list is replaced atomically (temp file + os.replace),
so several processes, or several MaildirMailbox objects, never hand out one UID twice.

Reading never changes a mail: nothing moves from new/ to cur/ and no flag is set.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

from mailbot.files import fsync_dir
from mailbot.mailbox import MailboxError
from mailbot.model import MailRef, RawMail

log = logging.getLogger(__name__)

INBOX = "INBOX"
UIDLIST = "mailbot-uidlist"
LOCKFILE = "mailbot-uidlist.lock"
_UIDLIST_TMP = "mailbot-uidlist.tmp"
_UIDLIST_VERSION = "1"
_SUBDIRS = ("cur", "new", "tmp")
_INFO_SEP = ":"  # Maildir "info" separator: base:2,FLAGS

_seq = itertools.count(1)
_seq_lock = threading.Lock()
_BAD_COMPONENT = re.compile(r"[.\x00-\x1f\x7f]")


@dataclass
class _UidList:
    validity: int
    next_uid: int
    entries: dict[int, str] = field(default_factory=dict)  # uid → base name, ascending uid


def _base(filename: str) -> str:
    return filename.split(_INFO_SEP, 1)[0]


def _order_key(base: str) -> tuple:
    """Natural order of Maildir names: `1718000000.M5P9Q2.host` before `1718000000.M12P9Q3.host`."""
    return tuple(int(p) if i % 2 else p for i, p in enumerate(re.split(r"(\d+)", base)))


def _hostname() -> str:
    host = socket.gethostname() or "localhost"
    # Maildir: "/" and ":" may not appear in a name.
    return host.replace("/", r"\057").replace(":", r"\072")


class MaildirMailbox:
    """The `Mailbox` protocol on a Maildir++ tree at `root`.

    With `create` (the default) the inbox (root/cur,new,tmp) is created when missing; without it
    a missing inbox raises MailboxError.  `lock_timeout` bounds the wait for another process's
    uidlist lock.
    """

    def __init__(self, root: Path | str, *, create: bool = True, lock_timeout: float = 30.0):
        self.root = Path(root)
        self.lock_timeout = lock_timeout
        if create:
            try:
                self._make_folder(self.root, inbox=True)
            except OSError as e:
                raise MailboxError(f"cannot create the Maildir at {self.root}: {e}") from e
        elif not self._is_folder(self.root):
            raise MailboxError(f"no Maildir at {self.root}")

    # ---- the Mailbox protocol ------------------------------------------------------------------

    def ensure_folders(self, names: Iterable[str]) -> None:
        for name in names:
            path = self._path(name)
            try:
                self._make_folder(path, inbox=path == self.root)
                with self._locked(path):
                    self._sync(path)
            except OSError as e:
                raise MailboxError(f"cannot create folder {name!r}: {e}") from e

    def uidvalidity(self, folder: str) -> int:
        path = self._existing(folder)
        with self._guard(folder), self._locked(path):
            return self._sync(path)[0].validity

    def list_uids(self, folder: str) -> list[int]:
        path = self._existing(folder)
        with self._guard(folder), self._locked(path):
            uidlist, _ = self._sync(path)
        return sorted(uidlist.entries)

    def fetch(self, folder: str, uids: Iterable[int]) -> Iterator[RawMail]:
        path = self._existing(folder)
        wanted = sorted(set(uids))
        with self._guard(folder), self._locked(path):
            uidlist, files = self._sync(path)
        name = self._canonical(folder)
        for uid in wanted:
            base = uidlist.entries.get(uid)
            if base is None:
                continue
            with self._guard(folder):
                got = self._read(path, base, files.get(base))
            if got is None:  # vanished meanwhile (moved or deleted by someone else)
                continue
            data, mtime = got
            yield RawMail(ref=MailRef(name, uidlist.validity, uid), data=data, internaldate=mtime)

    def search_header(self, folder: str, name: str, value: str = "", min_uid: int = 1) -> list[int]:
        wanted = [uid for uid in self.list_uids(folder) if uid >= min_uid]
        parser = BytesHeaderParser(policy=compat32)
        found = []
        for raw in self.fetch(folder, wanted):
            head = raw.data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
            values = parser.parsebytes(head).get_all(name) or []
            if any(value.casefold() in " ".join(str(v).split()).casefold() for v in values):
                found.append(raw.ref.uid)
        return found

    def move(self, ref: MailRef, dest: str) -> None:
        src = self._existing(ref.folder)
        dst = self._existing(dest)
        if src == dst:
            return
        with self._guard(ref.folder), self._locked(src):
            uidlist, files = self._sync(src)
            if uidlist.validity != ref.uidvalidity:
                raise MailboxError(
                    f"UIDVALIDITY of {ref.folder!r} is {uidlist.validity}, not {ref.uidvalidity}"
                )
            base = uidlist.entries.get(ref.uid)
            if base is None:
                return  # already moved (a repeat after a crash) or gone: nothing to do
            for _attempt in range(3):
                current = files.get(base)
                if current is None:
                    return
                name = current.name if current.parent.name == "cur" else base + _INFO_SEP + "2,"
                clash = self._find(dst, base)
                if clash is not None:
                    raise MailboxError(f"{dest!r} already holds a mail named {base} ({clash.name})")
                target = dst / "cur" / name
                try:
                    os.rename(current, target)
                except FileNotFoundError:
                    # A mail client renamed it meanwhile (new/ → cur/, flags): look again.
                    files = self._scan(src)
                    continue
                break
            else:
                raise MailboxError(f"mail {base} in {ref.folder!r} keeps changing its name")
            fsync_dir(dst / "cur")
            fsync_dir(current.parent)
            del uidlist.entries[ref.uid]
            self._write_uidlist(src, uidlist)
        with self._guard(dest), self._locked(dst):
            self._sync(dst)  # the moved mail gets its UID in dest now

    def move_many(self, refs: list[MailRef], dest: str) -> None:
        for ref in refs:  # renames are cheap here: one at a time keeps move's guarantees
            self.move(ref, dest)

    def append(self, folder: str, data: bytes, internaldate: datetime | None = None) -> None:
        """Deliver `data` into folder/new (write tmp/, fsync, rename); mtime = internaldate."""
        if internaldate is not None and internaldate.utcoffset() is None:
            raise ValueError("internaldate must be timezone-aware")
        path = self._existing(folder)
        with self._guard(folder):
            tmp = self._create_tmp(path)
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                if internaldate is not None:
                    ns = _to_ns(internaldate)
                    os.utime(tmp, ns=(ns, ns))
                os.rename(tmp, path / "new" / tmp.name)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            fsync_dir(path / "new")

    def close(self) -> None:
        pass  # nothing is held open between calls

    def __enter__(self) -> MaildirMailbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- extras --------------------------------------------------------------------------------

    def folders(self) -> list[str]:
        """Every folder of the tree: "INBOX" first, then the others sorted."""
        names = []
        try:
            entries = list(os.scandir(self.root))
        except OSError as e:
            raise MailboxError(f"cannot list {self.root}: {e}") from e
        for entry in entries:
            if entry.name.startswith(".") and entry.name not in (".", "..") and entry.is_dir():
                if self._is_folder(Path(entry.path)):
                    names.append(entry.name[1:].replace(".", "/"))
        return [INBOX, *sorted(names)]

    def folder_path(self, folder: str) -> Path:
        """The directory of a folder (existing or not)."""
        return self._path(folder)

    # ---- folders -------------------------------------------------------------------------------

    @staticmethod
    def _canonical(folder: str) -> str:
        return INBOX if folder.upper() == INBOX else folder

    def _path(self, folder: str) -> Path:
        if folder.upper() == INBOX:
            return self.root
        parts = folder.split("/")
        for part in parts:
            if not part or _BAD_COMPONENT.search(part):
                raise MailboxError(
                    f"invalid folder name {folder!r}: empty part or '.' or a control character"
                )
        return self.root / ("." + ".".join(parts))

    @staticmethod
    def _is_folder(path: Path) -> bool:
        return all((path / sub).is_dir() for sub in _SUBDIRS)

    def _existing(self, folder: str) -> Path:
        path = self._path(folder)
        if not self._is_folder(path):
            raise MailboxError(f"no such folder: {folder!r}")
        return path

    @staticmethod
    def _make_folder(path: Path, *, inbox: bool) -> None:
        path.mkdir(mode=0o700, parents=inbox, exist_ok=True)
        for sub in _SUBDIRS:
            (path / sub).mkdir(mode=0o700, exist_ok=True)
        if not inbox:
            (path / "maildirfolder").touch(mode=0o600, exist_ok=True)

    @contextmanager
    def _guard(self, folder: str) -> Iterator[None]:
        """OSError → MailboxError, naming the folder."""
        try:
            yield
        except OSError as e:
            raise MailboxError(f"Maildir folder {folder!r}: {e}") from e

    # ---- the uidlist ---------------------------------------------------------------------------

    @contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        fd = os.open(path / LOCKFILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            deadline = time.monotonic() + self.lock_timeout
            delay = 0.001
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        raise MailboxError(f"{path / LOCKFILE} is locked by another process") from e
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
            yield
        finally:
            os.close(fd)  # releases the lock

    @staticmethod
    def _scan(path: Path) -> dict[str, Path]:
        """base name → file, new/ first then cur/ (a file moving new→cur meanwhile is still seen)."""
        files: dict[str, Path] = {}
        for sub in ("new", "cur"):
            with os.scandir(path / sub) as it:
                for entry in it:
                    name = entry.name
                    if name.startswith(".") or "\n" in name or "\r" in name:
                        continue
                    if not entry.is_file():
                        continue
                    base = _base(name)
                    if base in files and sub == "new":
                        continue
                    files[base] = Path(entry.path)
        return files

    @staticmethod
    def _find(path: Path, base: str) -> Path | None:
        for sub in ("new", "cur"):
            with os.scandir(path / sub) as it:
                for entry in it:
                    if _base(entry.name) == base:
                        return Path(entry.path)
        return None

    @staticmethod
    def _read_uidlist(path: Path) -> tuple[_UidList | None, int | None]:
        """The uidlist, or (None, the old UIDVALIDITY if still readable) when missing or broken."""
        try:
            text = (path / UIDLIST).read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            return None, None
        lines = text.split("\n")
        header = lines[0].split()
        validity = next_uid = None
        for tok in header[1:]:
            if tok[:1] == "V" and tok[1:].isdigit():
                validity = int(tok[1:])
            elif tok[:1] == "N" and tok[1:].isdigit():
                next_uid = int(tok[1:])
        if not header or header[0] != _UIDLIST_VERSION or not validity or not next_uid:
            log.warning("%s: unreadable header %r, starting a new UIDVALIDITY", path / UIDLIST, lines[0])
            return None, validity
        entries: dict[int, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            uid_s, _, base = line.partition(" ")
            if not uid_s.isdigit() or not base or int(uid_s) >= next_uid or int(uid_s) in entries:
                log.warning("%s: broken line %r, starting a new UIDVALIDITY", path / UIDLIST, line)
                return None, validity
            entries[int(uid_s)] = base
        if list(entries) != sorted(entries):
            log.warning("%s: UIDs out of order, starting a new UIDVALIDITY", path / UIDLIST)
            return None, validity
        return _UidList(validity, next_uid, entries), validity

    @staticmethod
    def _write_uidlist(path: Path, uidlist: _UidList) -> None:
        lines = [f"{_UIDLIST_VERSION} V{uidlist.validity} N{uidlist.next_uid}"]
        lines += [f"{uid} {base}" for uid, base in uidlist.entries.items()]
        tmp = path / _UIDLIST_TMP
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape", newline="\n") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path / UIDLIST)
        fsync_dir(path)

    def _sync(self, path: Path) -> tuple[_UidList, dict[str, Path]]:
        """Bring the uidlist up to date with new/ and cur/.  Call with the folder's lock held."""
        files = self._scan(path)
        uidlist, old_validity = self._read_uidlist(path)
        changed = False
        if uidlist is None:
            validity = int(time.time())
            if old_validity is not None and validity <= old_validity:
                validity = old_validity + 1
            uidlist = _UidList(validity=validity & 0xFFFFFFFF or 1, next_uid=1)
            changed = True
        for uid, base in list(uidlist.entries.items()):
            if base not in files:
                del uidlist.entries[uid]
                changed = True
        known = set(uidlist.entries.values())
        for base in sorted((b for b in files if b not in known), key=_order_key):
            uidlist.entries[uidlist.next_uid] = base
            uidlist.next_uid += 1
            changed = True
        if changed:
            self._write_uidlist(path, uidlist)
        return uidlist, files

    # ---- files ---------------------------------------------------------------------------------

    def _read(self, path: Path, base: str, known: Path | None) -> tuple[bytes, datetime] | None:
        candidates = [known] if known is not None else []
        for attempt in range(3):
            if attempt or not candidates:
                found = self._find(path, base)
                if found is None:
                    return None
                candidates = [found]
            try:
                with open(candidates[0], "rb") as f:
                    st = os.fstat(f.fileno())
                    data = f.read()
            except FileNotFoundError:
                continue
            return data, _EPOCH + timedelta(microseconds=st.st_mtime_ns // 1000)
        return None

    @staticmethod
    def _create_tmp(path: Path) -> Path:
        host = _hostname()
        while True:
            now = time.time_ns()
            with _seq_lock:
                seq = next(_seq)
            name = f"{now // 1_000_000_000}.M{now // 1000 % 1_000_000}P{os.getpid()}Q{seq}.{host}"
            tmp = path / "tmp" / name
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                continue
            os.close(fd)
            return tmp


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _to_ns(dt: datetime) -> int:
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000

"""The UNIS extract: the daily CSV of USEN SPOT order lines (DOMAIN.md §7), in its own SQLite file.

The CSV (CP932 or UTF-8, with or without BOM) is imported into a fresh SQLite file next to the
one in use; only when the whole file imported without error is it renamed over the old one
(atomic), so a bad extract never replaces a good one.  Which column is which, which values are
accepted and which contract items mean what is `rules/unis.toml`.

    data = UnisData.open(settings.unis_extract, state_dir / "unis.sqlite3", settings.rules_dir)
    data.refresh()          # re-import when the file changed (at every poll: cheap when it did not)
    data.version            # identifies the extract in use (recorded with each decision)
    data.extracted_at       # 抽出日時 (max over rows), else the file's mtime; Asia/Tokyo
    data.lines("988776654") # [OrderLine, ...] in file order
    data.has_order("988776654")

The file holds the rows as the CSV has them (table `raw`), what each distinct typed cell means
(item codes, 契約状態, dates: checked once per distinct value) and the view `lines` that joins
them; see the comment above `_raw_schema`.  The rows are stored by the sqlite3 command line when it
is installed (Debian package `sqlite3`: a million rows in about the time of its own `.import`),
else by this process (about 1.5× slower); both give the same file.

An extract is recognised by (size, mtime, SHA-256 of its first and last 64 KiB) and by the
rules it was imported with; `version` is the SHA-256 of the whole file plus the extraction time,
so the same content extracted again later (no 抽出日時 column, newer mtime) is a new version.
"""

from __future__ import annotations

import codecs
import csv
import fcntl
import gc
import hashlib
import io
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
import unicodedata
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

from mailbot.config import DEFAULT_RULES
from mailbot.files import DataFileError, fsync_dir
from mailbot.rules import unis_rules
from mailbot.rules.unis import (  # noqa: F401 - used by the reference data and the tests
    COLUMNS,
    EXTRACTED_AT,
    FIELD_TYPES,
    FieldSpec,
    Status,
    UnisRules,
)
from mailbot.text import TOKYO, compact

log = logging.getLogger(__name__)

FINGERPRINT_BYTES = 64 * 1024
RULES_FILE = "unis.toml"


class UnisError(DataFileError):
    """A bad extract.  str() names the file, the row and the column."""


# ---------------------------------------------------------------- CSV text (shared with branches.py)


def sniff_encoding(head: bytes, final: bool) -> str:
    """The encoding of a CSV from its first bytes: a BOM says UTF-8 (or UTF-16/32, which are
    returned as such so the caller can refuse them); else strict UTF-8 if the bytes are valid
    UTF-8 (`final`: these are the whole file, so a cut character is an error too); else CP932."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=final)
        return "utf-8"
    except UnicodeDecodeError:
        return "cp932"


SUPPORTED_ENCODINGS = ("utf-8-sig", "utf-8", "cp932")


def detect_encoding(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(FINGERPRINT_BYTES + 1)
    return sniff_encoding(head[:FINGERPRINT_BYTES], final=len(head) <= FINGERPRINT_BYTES)


def norm_header(name: str) -> str:
    """A header cell as compared: NFKC, case folded, no whitespace at all."""
    return compact(name)


def locate_decode_error(path: Path, encoding: str, header: list[str] | None = None) -> tuple[int, str | None, str]:
    """The (row, column, bytes) of the first undecodable bytes: a slow second pass, only taken
    after a strict decode failed.  `header` names the columns (else read from row 1)."""
    with open(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding=encoding, errors="surrogateescape", newline="")
        for n, row in enumerate(csv.reader(text), start=1):
            if n == 1 and header is None:
                header = row
            for i, cell in enumerate(row):
                bad = [c for c in cell if "\udc80" <= c <= "\udcff"]
                if bad:
                    column = header[i] if header and i < len(header) and n > 1 else f"{i + 1}"
                    return n, column, " ".join(f"0x{ord(c) - 0xDC00:02X}" for c in bad[:4])
    return 0, None, "?"


# ---------------------------------------------------------------- rules


# ---------------------------------------------------------------- the order line


@dataclass(frozen=True)
class OrderLine:
    """One order line of the extract.  Text fields are stripped, "" when empty."""

    row: int  # in the CSV, the header being row 1
    customer_code: str  # 顧客CD
    customer_name: str  # 顧客名
    shop_name: str  # 店舗名
    branch: str  # 管轄支店名
    item_code: str  # 契約品目CD
    status: Status  # 契約状態
    order_date: date | None  # 受注日
    termination_date: date | None  # 解約日
    serial: str  # シリアルNo
    acquisition: str  # 獲得区分
    line_kind: str  # 回線種別
    line_type: str  # 回線タイプ
    install_address: str  # 設置先住所
    contract_address: str  # 契約先住所
    billing_address: str  # 請求先住所
    router: bool  # a router item: a USEN SPOT order line
    plus: bool  # a USEN SPOT Plus item (Z100404, 9603030, 9603050)
    fgn1000: bool  # an FGN-1000 router: Plus or Enterprise FGN-1000 (9603032, 9603052)


# ---------------------------------------------------------------- import

SCHEMA_META = "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)"


@dataclass(frozen=True)
class Fingerprint:
    """What says the extract file changed: cheap to take at every poll."""

    size: int
    mtime_ns: int
    head_tail: str  # SHA-256 of the first and last 64 KiB

    @classmethod
    def of(cls, path: Path) -> Fingerprint:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            h = hashlib.sha256(f.read(FINGERPRINT_BYTES))
            if st.st_size > FINGERPRINT_BYTES:
                f.seek(max(FINGERPRINT_BYTES, st.st_size - FINGERPRINT_BYTES))
                h.update(f.read(FINGERPRINT_BYTES))
        return cls(st.st_size, st.st_mtime_ns, h.hexdigest())

    def text(self) -> str:
        return f"{self.size}:{self.mtime_ns}:{self.head_tail}"


@dataclass(frozen=True)
class ExtractInfo:
    """The meta data of one imported extract (the `meta` table)."""

    source: str
    fingerprint: str
    rules: str  # UnisRules.digest
    sha256: str  # of the whole file
    version: str
    extracted_at: datetime
    extracted_from: str  # "抽出日時" or "mtime"
    rows: int
    encoding: str
    imported_at: datetime

    def items(self) -> list[tuple[str, str]]:
        return [(k, v.isoformat() if isinstance(v, datetime) else str(v)) for k, v in self.__dict__.items()]

    @classmethod
    def read(cls, db: sqlite3.Connection) -> ExtractInfo:
        m = dict(db.execute("SELECT key, value FROM meta"))
        return cls(
            source=m["source"], fingerprint=m["fingerprint"], rules=m["rules"], sha256=m["sha256"],
            version=m["version"], extracted_at=datetime.fromisoformat(m["extracted_at"]),
            extracted_from=m["extracted_from"], rows=int(m["rows"]), encoding=m["encoding"],
            imported_at=datetime.fromisoformat(m["imported_at"]),
        )


def _readable(fmt: str) -> str:
    """A strptime format as staff read it: %Y/%m/%d → YYYY/MM/DD."""
    for k, v in (("%Y", "YYYY"), ("%m", "MM"), ("%d", "DD"), ("%H", "hh"), ("%M", "mm"), ("%S", "ss")):
        fmt = fmt.replace(k, v)
    return fmt


_DATE_PARTS = {"%Y": "([0-9]{4})", "%m": "([0-9]{1,2})", "%d": "([0-9]{1,2})"}


@lru_cache(maxsize=64)
def _date_regex(fmt: str) -> re.Pattern[str] | None:
    """A regex for a format made of %Y %m %d and literal characters only (else None: strptime)."""
    parts = re.split(r"(%.)", fmt)
    if any(p.startswith("%") and p not in _DATE_PARTS for p in parts) or [p for p in parts if p in _DATE_PARTS] != [
            "%Y", "%m", "%d"]:
        return None
    return re.compile("".join(_DATE_PARTS.get(p, re.escape(p)) for p in parts))


def _parse_date(s: str, fmt: str) -> date:
    """datetime.strptime(s, fmt).date(), several times faster for the usual formats."""
    rx = _date_regex(fmt)
    if rx is None:
        return datetime.strptime(s, fmt).date()
    m = rx.fullmatch(s)
    if m is None:
        raise ValueError(f"{s!r} does not match {fmt!r}")
    return date(int(m[1]), int(m[2]), int(m[3]))


class _HashingReader(io.RawIOBase):
    """A raw file that hashes what is read through it (the whole-file SHA-256 for free)."""

    def __init__(self, f: io.FileIO):
        self.f, self.sha = f, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self.f.readinto(b)
        if n:
            self.sha.update(memoryview(b)[:n])
        return n


# The rows are stored as the file has them, in `raw` (c0, c1, … in the file's column order; rowid + 1 is
# the CSV row, the header being row 1).  Then every distinct value of a typed column is checked once and
# what it means goes into one of three small tables (item codes, 契約状態, dates) that the view `lines`
# joins, so no row is written twice and no cell is checked twice.  The rows are stored by the sqlite3
# command line's `.import` when the command is installed (C speed, one part of the file per core, fed
# through pipes the UTF-8 text this process decodes), else by executemany here; the checks are the
# same SQL for both.

SQLITE3_COMMAND: str | None = "sqlite3"  # the command line (None: the rows are always stored here)
LOAD_PRAGMAS = ("PRAGMA page_size=65536", "PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF",
                "PRAGMA cache_size=-65536")  # a fresh file, fsynced and renamed only when complete
PIPE_BYTES = 1 << 20  # the pipe's buffer: fewer wake-ups of either side
MAX_PARTS = 4  # commands importing parts of one extract at once (at most one per core)
PART_MIN_BYTES = 8 << 20  # a smaller share is not worth a command of its own
_BLANK_LINE_WARNING = re.compile(r":\d+: expected \d+ columns but found 1 - filling the rest with NULL$")


def _raw_schema(ncols: int) -> str:
    return f"CREATE TABLE raw ({', '.join(f'c{i}' for i in range(ncols))})"


def _code_index(column: int) -> str:
    return f"CREATE INDEX raw_code ON raw (c{column})"


class _LoadFailed(Exception):
    """The command line did not store the rows as Python reads them: they are stored again here."""


class _BadCell(ValueError):
    """A cell that is not what its column needs; str() says why (the row and column are added)."""


@dataclass(frozen=True)
class _Layout:
    """Where the columns are in this file."""

    header: list[str]
    column: dict[str, int]  # stored field name → column index
    specs: dict[str, FieldSpec]
    extracted: int | None  # 抽出日時's column

    @property
    def ncols(self) -> int:
        return len(self.header)


class _PythonLoader:
    """executemany into `raw`, in this process (no sqlite3 command installed, or it read the CSV
    differently).  A row of another length than the header is an error named here."""

    name = "this process"

    def __init__(self, importer: _Importer, db_path: Path, layout: _Layout, text: io.TextIOBase,
                 hashing: _HashingReader, after_header: int):
        """`text`: the file after its header (`after_header` lines), read through `hashing`."""
        self.importer, self.db_path, self.layout = importer, db_path, layout
        self.text, self.reader, self.hashing, self.after_header = text, csv.reader(text), hashing, after_header
        self.blanks: list[int] = []  # rowids of blank lines

    def feed(self) -> None:
        # Only the columns the bot reads are bound (an extract may carry many more); the others stay NULL.
        used = sorted({*self.layout.column.values(), *(() if self.layout.extracted is None else
                                                       (self.layout.extracted,))})
        db = sqlite3.connect(self.db_path, isolation_level=None)
        gc_was = gc.isenabled()
        try:
            for pragma in LOAD_PRAGMAS:
                db.execute(pragma)
            gc.disable()  # a million short-lived rows, no cycles: the collector would only slow it down
            db.execute("BEGIN")
            db.execute(_raw_schema(self.layout.ncols))
            columns, marks = ", ".join(f"c{i}" for i in used), ", ".join("?" * len(used))
            # (at least three columns are required: itemgetter gives a tuple)
            db.executemany(f"INSERT INTO raw ({columns}) VALUES ({marks})", map(itemgetter(*used), self._rows()))
            db.execute("COMMIT")
        finally:
            db.close()
            if gc_was:
                gc.enable()

    def line_num(self) -> int:
        return self.after_header + self.reader.line_num

    def _rows(self) -> Iterator[Sequence[str | None]]:
        """The rows as read; a blank line as a row of NULLs (removed afterwards: rowids stay rows)."""
        header, ncols = self.layout.header, self.layout.ncols
        blank: tuple[None, ...] = (None,) * ncols
        n = 1
        for row in self.reader:
            n += 1
            if len(row) != ncols:
                if not row:
                    self.blanks.append(n - 1)
                    yield blank
                    continue
                where = header[len(row)] if len(row) < ncols else f"{ncols + 1} (extra)"
                raise self.importer.error(f"{len(row)} columns, the header has {ncols}", n, where)
            yield row

    def digest(self) -> str:
        while self.text.read(1 << 20):  # anything csv left unread still counts in the hash
            pass
        return self.hashing.sha.hexdigest()

    def finish(self) -> list[int]:
        return self.blanks

    def abort(self) -> None:
        pass


class _CommandLineLoader:
    """The sqlite3 command line's `.import --csv`, fed through pipes the text after the header as
    UTF-8: on a machine of several cores the file is cut into parts at record boundaries (even quote
    count), each part imported by its own command into its own file, then appended to `raw` in order
    (rowids stay row numbers).  Anything a command warns about except blank lines, and the rows are
    stored again by _PythonLoader (which names a bad row exactly)."""

    name = "sqlite3 .import"

    def __init__(self, command: str, db_path: Path, layout: _Layout, path: Path, encoding: str):
        self.command, self.db_path, self.layout, self.path = command, db_path, layout, path
        self.encoding = "utf-8" if encoding == "utf-8-sig" else encoding  # the BOM is before the header
        self.sha = hashlib.sha256()
        self.hashed_to = 0  # the file's bytes before this offset are in sha
        self.processes: list[subprocess.Popen[bytes]] = []
        self.pipes: list[io.FileIO] = []
        self.warnings: list[IO[bytes]] = []
        self.files = [db_path]
        self.failure: BaseException | None = None

    def _start(self, db_path: Path) -> io.FileIO:
        read_end, write_end = os.pipe()
        try:
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass  # a smaller pipe only costs wake-ups
        warnings = tempfile.TemporaryFile()  # not a pipe: a warning on every row must not stall it
        self.warnings.append(warnings)
        try:
            self.processes.append(subprocess.Popen(
                [self.command, "-init", os.devnull, "-batch", "-bail", str(db_path),
                 *(f"{p};" for p in LOAD_PRAGMAS), f"{_raw_schema(self.layout.ncols)};",
                 f".import --csv /dev/fd/{read_end} raw"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=warnings, pass_fds=(read_end,)))
        except OSError as e:
            os.close(write_end)
            raise _LoadFailed(f"cannot start {self.command} ({e.strerror})") from None
        finally:
            os.close(read_end)
        pipe = io.FileIO(write_end, "wb")
        self.pipes.append(pipe)
        return pipe

    def _record_end(self, f: IO[bytes], quotes: int) -> int | None:
        """Read (and hash) lines up to one after which the quotes read so far are even: a record
        ends there, outside any quoted cell.  The quotes read so far, or None at the end of the file."""
        while line := f.readline():
            self._hash(line)
            quotes += line.count(b'"')
            if quotes % 2 == 0 and line.endswith(b"\n"):
                return quotes
        return None

    def _hash(self, data: bytes) -> None:
        self.sha.update(data)
        self.hashed_to += len(data)

    def _cuts(self, f: IO[bytes], size: int) -> list[int]:
        """Where the parts begin: the first after the header, the others near equal shares of the
        rest.  What is read on the way is hashed (up to `hashed_to`); the last part's feeder hashes on."""
        quotes = self._record_end(f, 0)
        if quotes is None:
            return [size]
        start = self.hashed_to
        cuts = [start]
        parts = max(1, min(os.cpu_count() or 1, MAX_PARTS, (size - start) // PART_MIN_BYTES))
        for k in range(1, parts):
            target = start + (size - start) * k // parts
            while self.hashed_to < target and (chunk := f.read(min(1 << 20, target - self.hashed_to))):
                self._hash(chunk)
                quotes += chunk.count(b'"')
            quotes = self._record_end(f, quotes)
            if quotes is None:
                break  # the rest is one part
            cuts.append(self.hashed_to)
        return cuts

    def _feed_part(self, pipe: io.FileIO, start: int, end: int | None) -> None:
        """Decode [start, end) (None: to the end, hashed) and write it to the pipe as UTF-8."""
        decoder = codecs.getincrementaldecoder(self.encoding)("strict")
        try:
            with open(self.path, "rb", buffering=0) as f:
                f.seek(start)
                pos = start
                while end is None or pos < end:
                    chunk = f.read(1 << 20 if end is None else min(1 << 20, end - pos))
                    if not chunk:
                        break
                    if end is None and pos + len(chunk) > self.hashed_to:  # (_cuts may have read on)
                        self.sha.update(chunk[max(0, self.hashed_to - pos):])
                    pos += len(chunk)
                    pipe.write(decoder.decode(chunk).encode("utf-8"))
                pipe.write(decoder.decode(b"", final=True).encode("utf-8"))
        except BaseException as e:  # a decoding error above all, or a command that stopped: raised by feed()
            self.failure = self.failure or e
        finally:
            pipe.close()

    def feed(self) -> None:
        """Import the parts, read from the file (the header again: to find where the rows begin)."""
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            cuts = self._cuts(f, size)
        self.files += [self.db_path.with_name(f"{self.db_path.name}.part{k}") for k in range(1, len(cuts))]
        self.name = f"sqlite3 .import in {len(cuts)} part{'s' if len(cuts) > 1 else ''}"
        threads = []
        for k, start in enumerate(cuts):
            end = cuts[k + 1] if k + 1 < len(cuts) else None
            threads.append(threading.Thread(target=self._feed_part, args=(self._start(self.files[k]), start, end),
                                            name=f"unis-part{k}", daemon=True))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if isinstance(self.failure, BrokenPipeError):
            self._wait()  # raises _LoadFailed with the command's own words
        if self.failure is not None:
            raise self.failure

    def digest(self) -> str:
        return self.sha.hexdigest()

    def line_num(self) -> int:
        return 0  # csv errors are found by _PythonLoader

    def _wait(self) -> list[str]:
        """Wait for the commands; the warnings they wrote.  _LoadFailed if one failed."""
        said: list[str] = []
        for process, warnings in zip(self.processes, self.warnings, strict=True):
            status = process.wait()
            warnings.seek(0)
            text = warnings.read(64 * 1024).decode("utf-8", "replace").splitlines()
            if status != 0:
                raise _LoadFailed(f"exit status {status}: {' '.join(text[:2]) or 'no message'}")
            said += text
        if self.failure is not None:
            raise _LoadFailed(f"a command stopped reading ({self.failure})")
        return said

    def finish(self) -> list[int]:
        """Wait for the commands, append the parts in order; the rowids of blank lines.
        _LoadFailed unless every part was stored as Python reads it."""
        said = self._wait()
        odd = [s for s in said if not _BLANK_LINE_WARNING.search(s)]
        if odd:
            raise _LoadFailed(f"it read the CSV differently: {odd[0]}")
        db = sqlite3.connect(self.db_path, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            for part in self.files[1:]:  # no index yet: SQLite copies the records as they are
                db.execute("ATTACH DATABASE ? AS part", (str(part),))
                db.execute("INSERT INTO main.raw SELECT * FROM part.raw")
                db.execute("DETACH DATABASE part")
                part.unlink()
            if not said:
                return []
            # rows of one cell: blank lines if that cell is empty, else a short row (an error)
            short = db.execute(f"SELECT rowid, c0 FROM raw WHERE c{self.layout.ncols - 1} IS NULL").fetchall()
        finally:
            db.close()
        if any(cell != "" for _, cell in short):
            raise _LoadFailed("a row of one cell")
        return [rowid for rowid, _ in short]

    def abort(self) -> None:
        for pipe in self.pipes:
            if not pipe.closed:
                pipe.close()
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        for warnings in self.warnings:
            warnings.close()
        for part in self.files[1:]:
            part.unlink(missing_ok=True)


def _loader_command() -> str | None:
    return shutil.which(SQLITE3_COMMAND) if SQLITE3_COMMAND else None


class _Importer:
    """One import of one CSV file into one fresh SQLite file."""

    def __init__(self, path: Path, rules: UnisRules):
        self.path, self.rules = path, rules
        self.count = 0
        self.loader_name = ""
        self.extracted_at: datetime | None = None

    def error(self, message: str, row: int | None = None, column: str | None = None) -> UnisError:
        return UnisError(self.path, message, row, column)

    # -- what one cell means (raises _BadCell)

    def _date(self, cell: str, spec: FieldSpec) -> str | None:
        s = unicodedata.normalize("NFKC", cell).strip()
        if not s:
            if not spec.empty:
                raise _BadCell("empty, a date is required")
            return None
        for fmt in self.rules.date_formats:
            try:
                return _parse_date(s, fmt).isoformat()
            except ValueError:
                continue
        raise _BadCell(f"{cell!r} is not a date ({' or '.join(map(_readable, self.rules.date_formats))})")

    def _datetime(self, cell: str, spec: FieldSpec) -> datetime | None:
        s = unicodedata.normalize("NFKC", cell).strip()
        if not s:
            if not spec.empty:
                raise _BadCell("empty, a date and time is required")
            return None
        for fmt in (*self.rules.datetime_formats, *self.rules.date_formats):
            try:
                return datetime.strptime(s, fmt).replace(tzinfo=TOKYO)
            except ValueError:
                continue
        raise _BadCell(f"{cell!r} is not a date and time")

    def _code(self, cell: str, spec: FieldSpec) -> str:
        s = unicodedata.normalize("NFKC", cell).strip()
        n = self.rules.customer_code_digits
        if len(s) != n or not (s.isascii() and s.isdigit()):
            raise _BadCell(f"{cell!r} is not a customer code ({n} digits)")
        return s

    def _item(self, cell: str, spec: FieldSpec) -> str:
        s = unicodedata.normalize("NFKC", cell).strip().upper()
        if not self.rules.item_code_pattern.search(s):
            raise _BadCell(f"{cell!r} is not a contract item code ({self.rules.item_code_pattern.pattern})")
        return s

    def _status(self, cell: str, spec: FieldSpec) -> str:
        s = self.rules.status.get(norm_header(cell))
        if s is None:
            raise _BadCell(f"{cell!r} is not a 契約状態 ({' / '.join(self.rules.status)})")
        return s.value

    # -- the whole file

    def header(self, row: list[str]) -> _Layout:
        """Which stored field is in which column."""
        where: dict[str, int] = {}
        for i, cell in enumerate(row):
            key = norm_header(cell)
            if key:
                if key in where:
                    raise self.error("the column appears twice", 1, cell)
                where[key] = i
        column, specs, extracted = {}, {}, None
        for spec in self.rules.fields:
            hits = [where[norm_header(h)] for h in spec.headers if norm_header(h) in where]
            if not hits:
                if spec.required:
                    raise self.error(f"required column missing (header: {' / '.join(row)})", 1, spec.headers[0])
                continue
            if len(hits) > 1:
                raise self.error(f"{' and '.join(row[i] for i in hits)} are the same column", 1, row[hits[0]])
            specs[spec.name] = spec
            if spec.name == EXTRACTED_AT:
                extracted = hits[0]
            else:
                column[spec.name] = hits[0]
        return _Layout(row, column, specs, extracted)

    def run(self, db_path: Path, command: str | None) -> tuple[str, str]:
        """Import into the fresh file db_path; (encoding, sha256 of the file).  `command`: the sqlite3
        command line that stores the rows (None: stored by this process)."""
        try:
            raw = io.FileIO(self.path, "rb")
        except OSError as e:
            raise self.error(f"cannot read the file ({e.strerror})") from None
        with raw:
            head = raw.read(FINGERPRINT_BYTES + 1)
            raw.seek(0)
            encoding = sniff_encoding(head[:FINGERPRINT_BYTES], final=len(head) <= FINGERPRINT_BYTES)
            if encoding not in SUPPORTED_ENCODINGS:
                raise self.error(f"{encoding.upper()} is not supported: save the extract as CP932 or UTF-8", 1)
            hashing = _HashingReader(raw)
            text = io.TextIOWrapper(io.BufferedReader(hashing, 1 << 20), encoding=encoding, newline="")
            header_reader = csv.reader(text)
            header: list[str] = []
            loader: _PythonLoader | _CommandLineLoader | None = None
            try:
                header = next(header_reader, [])
                if not any(c.strip() for c in header):
                    raise self.error("no header row (the file is empty)", 1)
                layout = self.header(header)
                if command:
                    loader = _CommandLineLoader(command, db_path, layout, self.path, encoding)
                else:
                    loader = _PythonLoader(self, db_path, layout, text, hashing, header_reader.line_num)
                loader.feed()
                sha = loader.digest()
                blanks = loader.finish()
                self.loader_name = loader.name
            except UnicodeDecodeError:
                row, column, bad = locate_decode_error(self.path, encoding, header or None)
                raise self.error(f"not valid {'UTF-8' if encoding.startswith('utf') else 'CP932'}"
                                 f" (bytes {bad}): save the extract as CP932 or UTF-8",
                                 row or None, column) from None
            except csv.Error as e:
                line = loader.line_num() if loader is not None else header_reader.line_num
                raise self.error(f"not a readable CSV ({e})", line + 1) from None
            finally:
                if loader is not None:
                    loader.abort()
        self.check_and_describe(db_path, layout, blanks)
        return encoding, sha

    def check_and_describe(self, db_path: Path, layout: _Layout, blanks: list[int]) -> None:
        """Check every distinct typed cell once (UnisError: the first bad cell in file order, as a
        reader going row by row would find it), then store what they mean and the view `lines`."""
        db = sqlite3.connect(db_path, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("BEGIN")
            db.executemany("DELETE FROM raw WHERE rowid=?", ((r,) for r in blanks))
            db.execute("COMMIT")  # the readers below see the rows without the blank lines
            self.count = db.execute("SELECT count(*) FROM raw").fetchone()[0]
            meanings, codes = self._check(db_path, layout)
            db.execute("BEGIN")
            db.executemany(f"UPDATE raw SET c{layout.column['customer_code']}=? WHERE rowid=?",
                           ((code, rowid) for rowid, code in codes))
            for table, values in meanings.items():
                db.execute(f"CREATE TABLE {table} (cell TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
                db.executemany(f"INSERT INTO {table} VALUES (?, ?)", values.items())
            db.execute(_lines_view(layout.column))
            db.execute(SCHEMA_META)
            db.execute("COMMIT")
        finally:
            db.close()

    def _check(self, db_path: Path, layout: _Layout) -> tuple[dict[str, dict[str, str]], list[tuple[int, str]]]:
        """({meaning table: {cell: value}}, [(rowid, customer code)] where the cell is not the code)."""
        col, specs = layout.column, layout.specs
        # (what to check, its column, the meaning table) in the order a row's cells are checked
        typed = [("customer_code", self._code, None), ("item_code", self._item, "item_meaning"),
                 ("status", self._status, "status_meaning"), ("order_date", self._date, "date_meaning"),
                 ("termination_date", self._date, "date_meaning")]
        checks = [(name, fn, table, col[name]) for name, fn, table in typed if name in col]
        if layout.extracted is not None:
            checks.append((EXTRACTED_AT, self._datetime, None, layout.extracted))
        digits = self.rules.customer_code_digits

        def index() -> None:
            db = sqlite3.connect(db_path, timeout=600)  # its commit waits for the reads beside it
            try:
                db.execute("PRAGMA journal_mode=OFF")
                db.execute("PRAGMA synchronous=OFF")
                db.execute("PRAGMA cache_size=-65536")
                db.execute(_code_index(col["customer_code"]))
                db.commit()
            finally:
                db.close()

        def cells(order: int) -> list[tuple[str, int]]:
            """The distinct cells of one column (customer codes: only those not plainly N digits)."""
            db = sqlite3.connect(db_path)
            try:
                name, _, _, i = checks[order]
                if name == "customer_code":
                    return db.execute(f"SELECT c{i}, rowid FROM raw WHERE length(c{i}) != ? OR c{i} GLOB '*[^0-9]*'",
                                      (digits,)).fetchall()
                return [(c, 0) for (c,) in db.execute(f"SELECT DISTINCT c{i} FROM raw")]
            finally:
                db.close()

        # Each scan is one SQLite statement that releases the GIL: two at a time use both cores.
        with ThreadPoolExecutor(2) as pool:
            indexed = pool.submit(index)
            found = list(pool.map(cells, range(len(checks))))
            indexed.result()
        meanings: dict[str, dict[str, str]] = {"item_meaning": {}, "status_meaning": {}, "date_meaning": {}}
        codes: list[tuple[int, str]] = []
        bad: list[tuple[int, int, str, str]] = []  # (row, order, column header, why)
        db = sqlite3.connect(db_path)
        try:
            for order, ((name, fn, table, i), values) in enumerate(zip(checks, found, strict=True)):
                for cell, rowid in values:
                    try:
                        value = fn(cell, specs[name])
                    except _BadCell as why:
                        if not rowid:
                            rowid = db.execute(f"SELECT min(rowid) FROM raw WHERE c{i} = ?", (cell,)).fetchone()[0]
                        bad.append((rowid + 1, order, layout.header[i], str(why)))
                        continue
                    if name == "customer_code":
                        codes.append((rowid, value))
                    elif name == EXTRACTED_AT:
                        if value is not None and (self.extracted_at is None or value > self.extracted_at):
                            self.extracted_at = value
                    elif value is not None:
                        meanings[table][cell] = value
        finally:
            db.close()
        if bad:
            row, _, column, why = min(bad)
            raise self.error(why, row, column)
        return meanings, codes


def _lines_view(column: dict[str, int]) -> str:
    """The view `lines`: the columns of COLUMNS (absent ones NULL), typed cells by their meaning,
    plus termination_cell (解約日 as written, to select by date through date_meaning).  CROSS JOIN keeps
    `raw` the outer loop: a lookup by customer code goes through its index."""
    joins, exprs = [], ["raw.rowid + 1 AS row"]
    for name, kind in COLUMNS.items():
        i = column.get(name)
        if i is None:
            exprs.append(f"NULL AS {name}")
        elif kind in ("item_code", "status"):
            table = "item_meaning" if kind == "item_code" else "status_meaning"
            joins.append(f"CROSS JOIN {table} AS m_{name} ON m_{name}.cell = raw.c{i}")
            exprs.append(f"m_{name}.value AS {name}")
        elif kind == "date":
            joins.append(f"LEFT JOIN date_meaning AS m_{name} ON m_{name}.cell = raw.c{i}")
            exprs.append(f"m_{name}.value AS {name}")
        else:
            exprs.append(f"raw.c{i} AS {name}")
    i = column.get("termination_date")
    exprs.append(f"raw.c{i} AS termination_cell" if i is not None else "NULL AS termination_cell")
    return f"CREATE VIEW lines AS SELECT {', '.join(exprs)} FROM raw {' '.join(joins)}"


def import_extract(path: Path, db_path: Path, rules: UnisRules, source: Path | None = None) -> ExtractInfo:
    """Import the CSV at `path` into the new SQLite file `db_path` (which must not exist).

    Raises UnisError for a bad extract (db_path is then removed).  `source` is the name recorded
    (default: path)."""
    fp = Fingerprint.of(path)
    started = time.monotonic()
    command = _loader_command()
    try:
        importer = _Importer(path, rules)
        try:
            encoding, sha = importer.run(db_path, command)
        except _LoadFailed as e:
            log.warning("UNIS extract %s: not stored by the sqlite3 command line (%s): stored by this process",
                        path, e)
            db_path.unlink(missing_ok=True)
            importer = _Importer(path, rules)
            encoding, sha = importer.run(db_path, None)
        if importer.extracted_at is not None:
            extracted_at, extracted_from = importer.extracted_at, "抽出日時"
        else:
            extracted_at = datetime.fromtimestamp(fp.mtime_ns / 1e9, TOKYO).replace(microsecond=0)
            extracted_from = "mtime"
        info = ExtractInfo(
            source=str(source or path), fingerprint=fp.text(), rules=rules.digest, sha256=sha,
            version=f"{sha[:16]}@{extracted_at.strftime('%Y%m%dT%H%M%S')}",
            extracted_at=extracted_at, extracted_from=extracted_from, rows=importer.count, encoding=encoding,
            imported_at=datetime.now(timezone.utc),
        )
        db = sqlite3.connect(db_path, isolation_level=None)
        try:
            db.execute("BEGIN")
            db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", info.items())
            db.execute("COMMIT")
        finally:
            db.close()
        with open(db_path, "rb+") as f:  # on disk before it is renamed into place
            os.fsync(f.fileno())
        log.info("UNIS extract %s: %d rows imported in %.1f s (rows stored by %s)", path, importer.count,
                 time.monotonic() - started, importer.loader_name)
        return info
    except BaseException:
        db_path.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- the extract in use


def _connect_ro(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    db.row_factory = sqlite3.Row
    return db


class UnisData:
    """The extract in use, re-imported when the file changes.

    `open()` raises UnisError only when there is no good extract at all; when the current file
    is bad but an earlier good import exists, that one stays in use and `error` says why.
    `refresh()` raises UnisError the first time a changed file turns out bad (later calls for
    the same bad file return False without trying again)."""

    def __init__(self, extract: Path, db_path: Path, rules_dir: Path = DEFAULT_RULES):
        self.extract, self.db_path = Path(extract), Path(db_path)
        self.rules = unis_rules(rules_dir)
        self.error: UnisError | None = None
        self.info: ExtractInfo | None = None
        self._db: sqlite3.Connection | None = None
        self._failed: str | None = None  # fingerprint of the file that failed to import
        self._by_code: dict[str, tuple[OrderLine, ...]] = {}  # lines() of the extract in use
        self.imports = 0  # imports done by this object
        if self.db_path.exists():
            try:
                db = _connect_ro(self.db_path)
                self.info = ExtractInfo.read(db)
                db.execute("SELECT termination_cell FROM lines LIMIT 1").fetchall()  # else an older layout
                self._db = db
            except (sqlite3.DatabaseError, KeyError, ValueError):
                self.info = None  # unreadable (e.g. cut by a crash): imported again

    @classmethod
    def open(cls, extract: Path, db_path: Path, rules_dir: Path = DEFAULT_RULES) -> UnisData:
        data = cls(extract, db_path, rules_dir)
        try:
            data.refresh()
        except UnisError:
            if data.info is None:
                data.close()
                raise
        return data

    # -- the extract's identity

    @property
    def version(self) -> str:
        return self._need().version

    @property
    def extracted_at(self) -> datetime:
        return self._need().extracted_at

    @property
    def row_count(self) -> int:
        return self._need().rows

    def _need(self) -> ExtractInfo:
        if self.info is None:
            raise self.error or UnisError(self.extract, "no extract imported")
        return self.info

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def refresh(self) -> bool:
        """Import the file again if it changed; True when a new extract is now in use."""
        try:
            fp = Fingerprint.of(self.extract).text()
        except FileNotFoundError:
            err = UnisError(self.extract, "file not found")
            if self._failed == "missing":
                return False
            self._failed, self.error = "missing", err
            raise err from None
        except OSError as e:
            self.error = UnisError(self.extract, f"cannot read the file ({e.strerror})")
            raise self.error from None
        if self.info and self.info.fingerprint == fp and self.info.rules == self.rules.digest:
            self.error = self._failed = None
            return False
        if fp == self._failed:
            return False
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale()
        fresh = self.db_path.with_name(f"{self.db_path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.new")
        try:
            info = import_extract(self.extract, fresh, self.rules, source=self.extract)
        except UnisError as e:
            self._failed, self.error = fp, e
            raise
        if info.fingerprint != Fingerprint.of(self.extract).text():
            fresh.unlink(missing_ok=True)  # written to while we read it: next time
            return False
        os.replace(fresh, self.db_path)
        fsync_dir(self.db_path.parent)
        self.close()
        self._by_code.clear()
        self._db, self.info = _connect_ro(self.db_path), info
        self.error = self._failed = None
        self.imports += 1
        return True

    def _remove_stale(self) -> None:
        """Half-made imports (and their parts) left by a process that died during an import."""
        name = self.db_path.name
        for path in [*self.db_path.parent.glob(f"{name}.*.new"), *self.db_path.parent.glob(f"{name}.*.new.part*")]:
            try:
                pid = int(path.name[len(name) + 1:].split(".")[0])
                os.kill(pid, 0)
                if pid != os.getpid():
                    continue  # another live process is importing
            except ProcessLookupError:
                pass
            except (ValueError, PermissionError):
                continue
            path.unlink(missing_ok=True)

    # -- lookups

    def _query(self, sql: str, *args: object) -> list[sqlite3.Row]:
        self._need()
        assert self._db is not None
        return self._db.execute(sql, args).fetchall()

    def _line(self, r: sqlite3.Row) -> OrderLine:
        item = r["item_code"]
        return OrderLine(
            row=r["row"], customer_code=r["customer_code"],
            customer_name=(r["customer_name"] or "").strip(), shop_name=(r["shop_name"] or "").strip(),
            branch=(r["branch"] or "").strip(), item_code=item, status=Status(r["status"]),
            order_date=date.fromisoformat(r["order_date"]) if r["order_date"] else None,
            termination_date=date.fromisoformat(r["termination_date"]) if r["termination_date"] else None,
            serial=(r["serial"] or "").strip(), acquisition=(r["acquisition"] or "").strip(),
            line_kind=(r["line_kind"] or "").strip(), line_type=(r["line_type"] or "").strip(),
            install_address=(r["install_address"] or "").strip(),
            contract_address=(r["contract_address"] or "").strip(),
            billing_address=(r["billing_address"] or "").strip(),
            router=item in self.rules.routers, plus=item in self.rules.plus,
            fgn1000=item in self.rules.plus or item in self.rules.enterprise_fgn1000,
        )

    def lines(self, code: str) -> list[OrderLine]:
        """Every order line of the customer code, in file order (asked for several times per mail
        by the checks, the reply and the ledger: read once per extract)."""
        found = self._by_code.get(code)
        if found is None:
            found = self._by_code[code] = tuple(
                self._line(r) for r in self._query("SELECT * FROM lines WHERE customer_code=? ORDER BY row", code))
        return list(found)

    def terminations_between(self, first: date, last: date, statuses: frozenset[Status]) -> list[OrderLine]:
        """The router lines in `statuses` whose 解約日 is from `first` to `last`, by code and row."""
        rows = self._query("SELECT * FROM lines WHERE termination_cell IN"
                           " (SELECT cell FROM date_meaning WHERE value >= ? AND value <= ?)"
                           " ORDER BY customer_code, row", first.isoformat(), last.isoformat())
        return [line for line in map(self._line, rows) if line.router and line.status in statuses]

    def router_lines(self, code: str, statuses: frozenset[Status] | None = None) -> list[OrderLine]:
        """The USEN SPOT order lines (router items) of the code, by default those that are ordered
        or confirmed (rules/unis.toml [status_groups] order)."""
        want = self.rules.order if statuses is None else statuses
        return [line for line in self.lines(code) if line.router and line.status in want]

    def corporate_lines(self, code: str) -> list[OrderLine]:
        """The code's lines whose 獲得区分 marks a corporate sales case (rules/unis.toml)."""
        words = self.rules.corporate_acquisition
        return [line for line in self.lines(code) if any(w in line.acquisition for w in words)]

    def has_order(self, code: str) -> bool:
        """A USEN SPOT order line (router item, ordered or confirmed) exists for the code."""
        return bool(self.router_lines(code))

    def has_installed_router(self, code: str) -> bool:
        """A router line in state 確定 (installed)."""
        return bool(self.router_lines(code, frozenset({Status.CONFIRMED})))

    def has_live_contract(self, code: str) -> bool:
        """A router line ordered, confirmed or terminating ([status_groups] live)."""
        return bool(self.router_lines(code, self.rules.live))

    def termination_date(self, code: str) -> date | None:
        """The scheduled 解約日 of the code's terminating router lines (the earliest), else None."""
        days = [x.termination_date for x in self.router_lines(code, self.rules.terminating) if x.termination_date]
        return min(days, default=None)

    def termination_registered(self, code: str) -> bool:
        """UNIS shows the code's termination registered: a router line 解約予定 or 解約
        ([status_groups] registered_termination), the branch's UNIS 解約処理 done."""
        return bool(self.router_lines(code, self.rules.registered_termination))

    def order_date(self, code: str) -> date | None:
        """The earliest 受注日 of the code's USEN SPOT order lines."""
        return min((x.order_date for x in self.router_lines(code) if x.order_date), default=None)

    def latest_order_date(self, code: str) -> date | None:
        """The latest 受注日 of the router lines a cancellation may refer to ([status_groups]
        cancellable: also those UNIS already shows cancelled)."""
        return max((x.order_date for x in self.router_lines(code, self.rules.cancellable) if x.order_date),
                   default=None)

    def branch(self, code: str) -> str | None:
        """管轄支店名 of the code (of its first line that has one)."""
        return next((x.branch for x in self.lines(code) if x.branch), None)



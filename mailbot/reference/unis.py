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

An extract is recognised by (size, mtime, SHA-256 of its first and last 64 KiB) and by the
rules it was imported with; `version` is the SHA-256 of the whole file plus the extraction time,
so the same content extracted again later (no 抽出日時 column, newer mtime) is a new version.
"""

from __future__ import annotations

import codecs
import csv
import gc
import hashlib
import io
import os
import re
import sqlite3
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any

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

SCHEMA_LINES = (
    "CREATE TABLE lines (row INTEGER NOT NULL, "
    + ", ".join(f"{c} TEXT" for c in COLUMNS)
    + ")"
)
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


_MISSING = object()


class _Importer:
    """One import of one CSV file into one fresh SQLite file."""

    def __init__(self, path: Path, rules: UnisRules):
        self.path, self.rules = path, rules
        self.datetimes: dict[str, datetime | None] = {}  # 抽出日時 cell → value
        self.count = 0

    def error(self, message: str, row: int | None = None, column: str | None = None) -> UnisError:
        return UnisError(self.path, message, row, column)

    # -- one cell each, the slow path (the fast path is inline in rows())

    def _date(self, cell: str, row: int, column: str, spec: FieldSpec) -> str | None:
        s = unicodedata.normalize("NFKC", cell).strip()
        if not s:
            if not spec.empty:
                raise self.error("empty, a date is required", row, column)
            return None
        for fmt in self.rules.date_formats:
            try:
                value = _parse_date(s, fmt).isoformat()
                break
            except ValueError:
                continue
        else:
            raise self.error(f"{cell!r} is not a date ({' or '.join(map(_readable, self.rules.date_formats))})",
                             row, column)
        return value

    def _datetime(self, cell: str, row: int, column: str, spec: FieldSpec) -> datetime | None:
        s = unicodedata.normalize("NFKC", cell).strip()
        value = None
        if s:
            for fmt in (*self.rules.datetime_formats, *self.rules.date_formats):
                try:
                    value = datetime.strptime(s, fmt).replace(tzinfo=TOKYO)
                    break
                except ValueError:
                    continue
            else:
                raise self.error(f"{cell!r} is not a date and time", row, column)
        elif not spec.empty:
            raise self.error("empty, a date and time is required", row, column)
        self.datetimes[cell] = value
        return value

    def _code(self, cell: str, row: int, column: str) -> str:
        s = unicodedata.normalize("NFKC", cell).strip()
        n = self.rules.customer_code_digits
        if len(s) != n or not (s.isascii() and s.isdigit()):
            raise self.error(f"{cell!r} is not a customer code ({n} digits)", row, column)
        return s

    def _item(self, cell: str, row: int, column: str) -> str:
        s = unicodedata.normalize("NFKC", cell).strip().upper()
        if not self.rules.item_code_pattern.search(s):
            raise self.error(f"{cell!r} is not a contract item code ({self.rules.item_code_pattern.pattern})",
                             row, column)
        return s

    def _status(self, cell: str, row: int, column: str) -> str:
        s = self.rules.status.get(norm_header(cell))
        if s is None:
            raise self.error(f"{cell!r} is not a 契約状態 ({' / '.join(self.rules.status)})", row, column)
        return s.value

    # -- the whole file

    def header(self, row: list[str]) -> tuple[list[tuple[FieldSpec, int]], int | None]:
        """(stored field, column index) for each column found, and 抽出日時's index."""
        where: dict[str, int] = {}
        for i, cell in enumerate(row):
            key = norm_header(cell)
            if key:
                if key in where:
                    raise self.error("the column appears twice", 1, cell)
                where[key] = i
        found, extracted = [], None
        for spec in self.rules.fields:
            hits = [where[norm_header(h)] for h in spec.headers if norm_header(h) in where]
            if not hits:
                if spec.required:
                    raise self.error(f"required column missing (header: {' / '.join(row)})", 1, spec.headers[0])
                continue
            if len(hits) > 1:
                raise self.error(f"{' and '.join(row[i] for i in hits)} are the same column", 1, row[hits[0]])
            if spec.name == EXTRACTED_AT:
                extracted = hits[0]
            else:
                found.append((spec, hits[0]))
        return found, extracted

    def plan(self, header: list[str], found: list[tuple[FieldSpec, int]]) -> list[str]:
        """The table columns rows() yields, in order."""
        self.text = [spec.name for spec, _ in found if spec.type == "text"]
        return ["row", "customer_code", "item_code", "status", "order_date", "termination_date", *self.text]

    def rows(self, reader: Iterator[list[str]], header: list[str], found: list[tuple[FieldSpec, int]],
             extracted: int | None) -> Iterator[tuple[str | int | None, ...]]:
        """The table rows, validated; raises UnisError at the first bad cell."""
        ncols = len(header)
        index = {spec.name: i for spec, i in found}
        spec_of = {spec.name: spec for spec, _ in found}
        # Text columns are taken as they are by one itemgetter; typed ones are checked and converted,
        # each distinct value once (a cache per column: the same cell may be valid in one, not another).
        text = self.text
        if len(text) > 1:
            pick = itemgetter(*(index[n] for n in text))
        elif text:
            one = itemgetter(index[text[0]])
            pick = lambda r: (one(r),)  # noqa: E731
        else:
            pick = lambda r: ()  # noqa: E731
        i_code, i_item, i_status = index["customer_code"], index["item_code"], index["status"]
        i_od, i_td = index.get("order_date"), index.get("termination_date")
        c_code, c_item, c_status = header[i_code], header[i_item], header[i_status]
        digits = self.rules.customer_code_digits
        statuses = {label: s.value for label, s in self.rules.status.items()}
        items: dict[str, str] = {}
        od_cache: dict[str, str | None] = {}
        td_cache: dict[str, str | None] = {}
        datetimes = self.datetimes
        missing = _MISSING

        n, blanks = 1, 0
        for row in reader:
            n += 1
            if len(row) != ncols:
                if not row:  # a blank line: skipped, but counted as a row
                    blanks += 1
                    continue
                if len(row) < ncols:
                    raise self.error(f"{len(row)} columns, the header has {ncols}", n, header[len(row)])
                raise self.error(f"{len(row)} columns, the header has {ncols}", n, f"{ncols + 1} (extra)")
            code = row[i_code]
            if len(code) != digits or not code.isdigit() or not code.isascii():
                code = self._code(code, n, c_code)
            item = items.get(row[i_item])
            if item is None:
                item = items[row[i_item]] = self._item(row[i_item], n, c_item)
            status = statuses.get(row[i_status])
            if status is None:
                status = self._status(row[i_status], n, c_status)
            od = td = None
            if i_od is not None:
                od = od_cache.get(row[i_od], missing)
                if od is missing:
                    od = od_cache[row[i_od]] = self._date(row[i_od], n, header[i_od], spec_of["order_date"])
            if i_td is not None:
                td = td_cache.get(row[i_td], missing)
                if td is missing:
                    td = td_cache[row[i_td]] = self._date(row[i_td], n, header[i_td],
                                                          spec_of["termination_date"])
            if extracted is not None and row[extracted] not in datetimes:
                self._datetime(row[extracted], n, header[extracted], self.extracted_spec)
            yield (n, code, item, status, od, td, *pick(row))
        self.count = n - 1 - blanks

    def run(self, db_path: Path) -> tuple[str, str, int, datetime | None, str]:
        """Import into the fresh file db_path; (encoding, sha256, rows, max 抽出日時, header text)."""
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
            reader = csv.reader(text)
            header: list[str] = []
            try:
                header = next(reader, [])
                if not any(c.strip() for c in header):
                    raise self.error("no header row (the file is empty)", 1)
                found, extracted = self.header(header)
                self.extracted_spec = next((s for s in self.rules.fields if s.name == EXTRACTED_AT), None)
                order = self.plan(header, found)
                rows = self.rows(reader, header, found, extracted)
                db = sqlite3.connect(db_path, isolation_level=None)
                try:
                    db.execute("PRAGMA journal_mode=OFF")
                    db.execute("PRAGMA synchronous=OFF")
                    db.execute("PRAGMA page_size=65536")  # fewer, larger pages: a faster load
                    db.execute("PRAGMA cache_size=-65536")
                    gc_was = gc.isenabled()
                    gc.disable()  # a million short-lived rows, no cycles: the collector would only slow it down
                    db.execute("BEGIN")
                    db.execute(SCHEMA_LINES)
                    db.execute(SCHEMA_META)
                    db.executemany(f"INSERT INTO lines ({', '.join(order)}) VALUES ({', '.join('?' * len(order))})",
                                   rows)
                    db.execute("CREATE INDEX lines_code ON lines (customer_code)")
                    db.execute("COMMIT")
                finally:
                    db.close()
                    if gc_was:
                        gc.enable()
                while text.read(1 << 20):  # anything csv left unread still counts in the hash
                    pass
            except UnicodeDecodeError:
                row, column, bad = locate_decode_error(self.path, encoding, header or None)
                raise self.error(f"not valid {'UTF-8' if encoding.startswith('utf') else 'CP932'}"
                                 f" (bytes {bad}): save the extract as CP932 or UTF-8",
                                 row or None, column) from None
            except csv.Error as e:
                raise self.error(f"not a readable CSV ({e})", reader.line_num + 1) from None
        extracted_at = max((v for v in self.datetimes.values() if v), default=None)
        return encoding, hashing.sha.hexdigest(), self.count, extracted_at, ",".join(header)


def import_extract(path: Path, db_path: Path, rules: UnisRules, source: Path | None = None) -> ExtractInfo:
    """Import the CSV at `path` into the new SQLite file `db_path` (which must not exist).

    Raises UnisError for a bad extract (db_path is then removed).  `source` is the name recorded
    (default: path)."""
    fp = Fingerprint.of(path)
    importer = _Importer(path, rules)
    try:
        encoding, sha, rows, column_time, _ = importer.run(db_path)
        if column_time is not None:
            extracted_at, extracted_from = column_time, "抽出日時"
        else:
            extracted_at = datetime.fromtimestamp(fp.mtime_ns / 1e9, TOKYO).replace(microsecond=0)
            extracted_from = "mtime"
        info = ExtractInfo(
            source=str(source or path), fingerprint=fp.text(), rules=rules.digest, sha256=sha,
            version=f"{sha[:16]}@{extracted_at.strftime('%Y%m%dT%H%M%S')}",
            extracted_at=extracted_at, extracted_from=extracted_from, rows=rows, encoding=encoding,
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
        self.imports = 0  # imports done by this object
        if self.db_path.exists():
            try:
                db = _connect_ro(self.db_path)
                self.info = ExtractInfo.read(db)
                db.execute("SELECT 1 FROM lines LIMIT 1").fetchall()
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
        self._db, self.info = _connect_ro(self.db_path), info
        self.error = self._failed = None
        self.imports += 1
        return True

    def _remove_stale(self) -> None:
        """Half-made imports left by a process that died during an import."""
        for path in self.db_path.parent.glob(f"{self.db_path.name}.*.new"):
            try:
                pid = int(path.name[len(self.db_path.name) + 1:].split(".")[0])
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
        """Every order line of the customer code, in file order."""
        return [self._line(r) for r in self._query("SELECT * FROM lines WHERE customer_code=? ORDER BY row", code)]

    def terminations_between(self, first: date, last: date, statuses: frozenset[Status]) -> list[OrderLine]:
        """The router lines in `statuses` whose 解約日 is from `first` to `last`, by code and row."""
        rows = self._query("SELECT * FROM lines WHERE termination_date >= ? AND termination_date <= ?"
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



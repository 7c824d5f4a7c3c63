"""How the UNIS extract's rows are stored: the sqlite3 command line in parts (read exactly as
Python's csv reads them, else stored again in this process), the view the lookups use, files left
behind.  tests/test_unis.py runs every extract test with both ways of storing."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import shutil
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from mailbot.config import DEFAULT_RULES
from mailbot.reference import unis
from mailbot.reference.unis import UnisData, UnisError, import_extract
from mailbot.rules import unis_rules
from tests.test_unis import HEADER, line

pytestmark = pytest.mark.skipif(not shutil.which("sqlite3"), reason="the sqlite3 command (make servers installs it)")

RULES = unis_rules(DEFAULT_RULES)


def extract(rows: list[dict[str, str]], notes: list[str] | None = None) -> str:
    """The CSV text of rows, with a 備考 column (any text, quoted newlines and quotes included)."""
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    w.writerow([*HEADER, "備考"])
    for i, r in enumerate(rows):
        w.writerow([*(r[h] for h in HEADER), (notes or [""])[i % len(notes or [""])]])
    return buf.getvalue()


def lines_of(db: Path) -> list[tuple]:
    c = sqlite3.connect(db)
    try:
        return c.execute("SELECT * FROM lines ORDER BY row").fetchall()
    finally:
        c.close()


def import_both(tmp_path: Path, data: bytes, monkeypatch) -> tuple[list[tuple], list[tuple], unis.ExtractInfo]:
    """The extract imported by the command line and in this process: (its lines, these lines, info)."""
    src = tmp_path / "extract.csv"
    src.write_bytes(data)
    info = import_extract(src, tmp_path / "command.sqlite3", RULES)
    with monkeypatch.context() as m:
        m.setattr(unis, "SQLITE3_COMMAND", None)
        here = import_extract(src, tmp_path / "here.sqlite3", RULES)
    assert (info.sha256, info.rows) == (here.sha256, here.rows)
    return lines_of(tmp_path / "command.sqlite3"), lines_of(tmp_path / "here.sqlite3"), info


@pytest.fixture
def small_parts(monkeypatch):
    """Parts of a few hundred bytes on four cores: a small extract is cut as a big one is."""
    monkeypatch.setattr(unis, "PART_MIN_BYTES", 256)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)


def rows(n: int, start: int = 100000000) -> list[dict[str, str]]:
    return [line(f"{start + i * 3}", item=("9603050", "Z200549", "9603040")[i % 3],
                 status=("受注", "確定", "解約予定")[i % 3], ordered=f"2024/{1 + i % 12}/{1 + i % 27}",
                 ended="2026/12/31" if i % 3 == 2 else "", shop=f"店舗{i}") for i in range(n)]


def test_parts_are_cut_between_records_and_read_as_one_file(tmp_path, monkeypatch, small_parts, caplog):
    # 備考 cells with line breaks, quotes and commas everywhere: a cut inside one would split a row
    notes = ['親1台、子2台\r\n"至急"の案件, 二行目', "", '""', "三行の\n備考\r\nです", "a,b,\"c\""]
    text = extract(rows(60), notes)
    blank = text.index("\r\n", len(text) // 2) + 2  # a blank line in a later part
    data = (text[:blank] + "\r\n" + text[blank:]).encode("cp932")
    caplog.set_level(logging.INFO, logger="mailbot.reference.unis")
    command, here, info = import_both(tmp_path, data, monkeypatch)
    assert "rows stored by sqlite3 .import in 4 parts" in caplog.text, caplog.text
    assert "not stored by the sqlite3 command line" not in caplog.text
    assert info.rows == 60 and command == here
    assert [r[0] for r in command][-1] == 62  # rows after the blank line keep their CSV row number
    assert sorted(p.name for p in tmp_path.iterdir()) == ["command.sqlite3", "extract.csv", "here.sqlite3"]


def test_the_file_is_hashed_once_when_a_cut_finds_no_record_end(tmp_path, monkeypatch, small_parts, caplog):
    """The last row, with no line end, holds half of the file: the second cut's search reads
    to the end of the file (hashing it), so the last part begins at the cut before."""
    data = extract(rows(31), [""] * 30 + ["長い備考" * 1000]).rstrip("\r\n").encode("cp932")
    caplog.set_level(logging.INFO, logger="mailbot.reference.unis")
    command, here, info = import_both(tmp_path, data, monkeypatch)
    assert "rows stored by sqlite3 .import in 2 parts" in caplog.text, caplog.text
    assert info.sha256 == hashlib.sha256(data).hexdigest() and command == here and info.rows == 31


def test_what_the_command_line_reads_differently_is_stored_here(tmp_path, monkeypatch, caplog):
    # "ab"cd: Python's csv reads abcd, the command line warns about the stray quote
    text = extract(rows(5)).replace('"新規"', '"新"規', 1)
    caplog.set_level(logging.INFO, logger="mailbot.reference.unis")
    command, here, _ = import_both(tmp_path, text.encode("cp932"), monkeypatch)
    assert "not stored by the sqlite3 command line (it read the CSV differently" in caplog.text, caplog.text
    assert command == here and command[0][10] == "新規"  # acquisition as Python's csv reads it


@pytest.mark.parametrize("fault,row,column", [
    ("short", 40, "備考"), ("long", 40, "17 (extra)"), ("one cell", 40, "顧客名"), ("undecodable", 40, "店舗名"),
])
def test_a_bad_row_in_a_later_part_is_named_exactly(tmp_path, small_parts, fault, row, column):
    text = extract(rows(60))
    lines = text.split("\r\n")
    cells = next(csv.reader([lines[row - 1]]))
    if fault == "short":
        cells = cells[:-1]
    elif fault == "long":
        cells = [*cells, "余分"]
    elif fault == "one cell":
        cells = cells[:1]
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="").writerow(cells)
    lines[row - 1] = buf.getvalue()
    data = "\r\n".join(lines).encode("cp932")
    if fault == "undecodable":
        data = data.replace("店舗38".encode("cp932"), b"\x85\x40\x85\x40")
    src = tmp_path / "extract.csv"
    src.write_bytes(data)
    with pytest.raises(UnisError) as e:
        import_extract(src, tmp_path / "out.sqlite3", RULES)
    assert (e.value.row, e.value.column) == (row, column), str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["extract.csv"]


def test_a_bad_cell_in_a_later_part_is_the_first_in_file_order(tmp_path, small_parts):
    """Checked per distinct value, reported as a reader going row by row would: the earliest row,
    and within it the first column checked."""
    r = rows(60)
    r[50]["受注日"] = "きのう"
    r[45]["契約状態"] = "保留中"
    r[45]["解約日"] = "いつか"
    src = tmp_path / "extract.csv"
    src.write_bytes(extract(r).encode("cp932"))
    with pytest.raises(UnisError) as e:
        import_extract(src, tmp_path / "out.sqlite3", RULES)
    assert (e.value.row, e.value.column) == (47, "契約状態"), str(e.value)


def test_a_failing_or_missing_command_line_leaves_the_work_to_this_process(tmp_path, monkeypatch, caplog):
    src = tmp_path / "extract.csv"
    src.write_bytes(extract(rows(10)).encode("cp932"))
    failing = tmp_path / "sqlite3-broken"
    failing.write_text("#!/bin/sh\necho 'Error: disk I/O error' >&2\nexit 1\n")
    failing.chmod(0o755)
    monkeypatch.setattr(unis, "SQLITE3_COMMAND", str(failing))
    caplog.set_level(logging.INFO, logger="mailbot.reference.unis")
    assert import_extract(src, tmp_path / "a.sqlite3", RULES).rows == 10
    assert "exit status 1: Error: disk I/O error" in caplog.text and "stored by this process" in caplog.text
    monkeypatch.setattr(unis, "SQLITE3_COMMAND", "no-such-sqlite3")
    caplog.clear()
    assert import_extract(src, tmp_path / "b.sqlite3", RULES).rows == 10
    assert "rows stored by this process" in caplog.text and "not stored" not in caplog.text
    assert lines_of(tmp_path / "a.sqlite3") == lines_of(tmp_path / "b.sqlite3")


def test_lookups_by_code_use_the_index_and_terminations_select_by_date(tmp_path):
    src = tmp_path / "extract.csv"
    r = rows(30)
    for i, ended, status in ((4, "2026/11/30", "解約"), (7, "２０２６／１１／０１", "解約予定"),  # full-width too
                             (10, "2026/12/01", "解約"), (13, "2026/10/31", "解約")):
        r[i].update({"解約日": ended, "契約状態": status, "契約品目CD": "9603050"})
    src.write_bytes(extract(r).encode("cp932"))
    data = UnisData.open(src, tmp_path / "unis.sqlite3")
    plan = " ".join(str(tuple(x)) for x in data._db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM lines WHERE customer_code=? ORDER BY row", ("1",)).fetchall())
    assert "USING INDEX raw_code" in plan, plan
    found = data.terminations_between(date(2026, 11, 1), date(2026, 11, 30),
                                      frozenset({unis.Status.TERMINATED, unis.Status.TERMINATING}))
    assert [(x.row, x.termination_date) for x in found] == [(6, date(2026, 11, 30)), (9, date(2026, 11, 1))]
    data.close()


def test_an_extract_stored_in_the_older_layout_is_imported_again(tmp_path):
    src = tmp_path / "extract.csv"
    src.write_bytes(extract(rows(5)).encode("cp932"))
    db = tmp_path / "unis.sqlite3"
    UnisData.open(src, db).close()
    c = sqlite3.connect(db)
    c.executescript("DROP VIEW lines; CREATE TABLE lines (row INTEGER, customer_code TEXT);")
    c.close()
    data = UnisData.open(src, db)
    assert data.imports == 1 and len(data.lines("100000000")) == 1
    data.close()


def test_parts_left_by_a_dead_import_are_removed(tmp_path):
    src = tmp_path / "extract.csv"
    src.write_bytes(extract(rows(5)).encode("cp932"))
    db = tmp_path / "unis.sqlite3"
    left = [tmp_path / f"unis.sqlite3.999999999.deadbeef.new{x}" for x in ("", ".part1", ".part2")]
    for p in left:
        p.write_bytes(b"half")
    UnisData.open(src, db).close()
    assert not any(p.exists() for p in left)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["extract.csv", "unis.sqlite3"]

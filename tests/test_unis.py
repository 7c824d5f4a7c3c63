"""The UNIS extract: encodings, any column order, every kind of bad extract, re-import, lookups."""

from __future__ import annotations

import codecs
import csv
import io
import os
import shutil
import sqlite3
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbot.config import DEFAULT_RULES
from mailbot.reference import unis
from mailbot.reference.unis import (
    Status,
    UnisData,
    UnisError,
    import_extract,
    sniff_encoding,
)
from mailbot.rules import unis_rules

TOKYO = ZoneInfo("Asia/Tokyo")
HEADER = ["顧客CD", "顧客名", "店舗名", "管轄支店名", "契約品目CD", "契約状態", "受注日", "解約日",
          "シリアルNo", "獲得区分", "回線種別", "回線タイプ", "設置先住所", "契約先住所", "請求先住所"]


def line(code: str = "988776654", *, shop: str = "居酒屋さくら 渋谷店", branch: str = "渋谷支店",
         item: str = "9603050", status: str = "受注", ordered: str = "2026/11/20", ended: str = "",
         serial: str = "", kind: str = "フレッツ光ネクスト", ltype: str = "", name: str = "株式会社さくらフーズ",
         address: str = "東京都渋谷区道玄坂2丁目10番7号 髙橋ビル 3F") -> dict[str, str]:
    return {"顧客CD": code, "顧客名": name, "店舗名": shop, "管轄支店名": branch, "契約品目CD": item,
            "契約状態": status, "受注日": ordered, "解約日": ended, "シリアルNo": serial, "獲得区分": "新規",
            "回線種別": kind, "回線タイプ": ltype, "設置先住所": address, "契約先住所": address,
            "請求先住所": "東京都港区南青山1丁目1番1号"}


LINES = [
    line(),
    line("988776654", item="Z200549", status="受注"),  # Original SSID: not a router
    line("123456789", shop="カフェ ひまわり", branch="新宿支店", item="9603023", status="確定",
         ordered="2024/4/1", serial="FB05HFH01703", kind="Bフレッツ", ltype="マンション"),
    line("555000111", shop="美容室 あおば", branch="横浜支店", item="9603030", status="解約予定",
         ordered="2022-06-15", ended="2026/11/27", serial="FB07HFH00042"),
    line("555000111", shop="美容室 あおば", branch="横浜支店", item="9603040", status="解約予定",
         ordered="2022-06-15", ended="2026/11/30", serial="FB07CRH00043"),
    line("777000333", item="9603040", status="キャンセル"),
    line("888000444", item="9603052", status="解約", ordered="20190301", ended="2023/03/31"),
]


def write(path: Path, rows: list[dict[str, str]], *, encoding: str = "cp932", header: list[str] | None = None,
          extra: dict[str, str] | None = None, extracted: str | list[str] | None = None,
          mtime: datetime | None = None) -> Path:
    header = list(header or HEADER) + list(extra or {})
    if extracted is not None:
        header.append("抽出日時")
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    w.writerow(header)
    for i, r in enumerate(rows):
        cells = {**r, **(extra or {})}
        if extracted is not None:
            cells["抽出日時"] = extracted if isinstance(extracted, str) else extracted[i % len(extracted)]
        w.writerow([cells[h] for h in header])
    path.write_bytes(buf.getvalue().encode(encoding))
    if mtime is not None:
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    return path


@pytest.fixture(autouse=True, params=["sqlite3", None], ids=["command-line", "in-process"])
def loader(request, monkeypatch):
    """Every test with the rows stored by the sqlite3 command line and by this process."""
    if request.param and not shutil.which(request.param):
        pytest.skip("the sqlite3 command is not installed (make servers installs it)")
    monkeypatch.setattr(unis, "SQLITE3_COMMAND", request.param)
    return request.param


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "usen_spot_orders.csv", tmp_path / "state" / "unis.sqlite3"


# ------------------------------------------------------------------ encodings and columns


@pytest.mark.parametrize("encoding", ["cp932", "utf-8", "utf-8-sig"])
def test_encodings_read_the_same(paths, encoding):
    csv_path, db = paths
    write(csv_path, LINES, encoding=encoding)
    data = UnisData.open(csv_path, db)
    assert data.info.encoding == encoding
    assert data.row_count == len(LINES)
    [first, ssid] = data.lines("988776654")
    assert first.shop_name == "居酒屋さくら 渋谷店"
    assert first.install_address.endswith("髙橋ビル 3F")  # a CP932 extension character
    assert ssid.item_code == "Z200549" and not ssid.router
    data.close()


def test_sniffing():
    assert sniff_encoding(codecs.BOM_UTF8 + "顧客CD".encode(), True) == "utf-8-sig"
    assert sniff_encoding("顧客CD".encode(), True) == "utf-8"
    assert sniff_encoding("顧客CD".encode("cp932"), True) == "cp932"
    assert sniff_encoding("顧客CD".encode()[:-1], False) == "utf-8"  # a character cut at the chunk's end
    assert sniff_encoding(codecs.BOM_UTF16_LE + "顧客CD".encode("utf-16-le"), True) == "utf-16"


def test_typed_fields(paths):
    csv_path, db = paths
    write(csv_path, LINES)
    data = UnisData.open(csv_path, db)
    [x] = data.lines("123456789")
    assert x.row == 4
    assert (x.customer_code, x.customer_name, x.shop_name, x.branch) == (
        "123456789", "株式会社さくらフーズ", "カフェ ひまわり", "新宿支店")
    assert (x.item_code, x.status, x.order_date, x.termination_date) == (
        "9603023", Status.CONFIRMED, date(2024, 4, 1), None)
    assert (x.serial, x.acquisition, x.line_kind, x.line_type) == ("FB05HFH01703", "新規", "Bフレッツ", "マンション")
    assert x.billing_address == "東京都港区南青山1丁目1番1号"
    assert (x.router, x.plus, x.fgn1000) == (True, False, False)
    a, b = data.lines("555000111")
    assert a.order_date == date(2022, 6, 15) and a.termination_date == date(2026, 11, 27)
    assert a.status is Status.TERMINATING and a.plus and a.fgn1000 and not b.plus
    [e] = data.lines("888000444")
    assert e.order_date == date(2019, 3, 1) and e.fgn1000 and not e.plus
    assert data.lines("000000000") == []


def test_lookups(paths):
    csv_path, db = paths
    write(csv_path, LINES)
    data = UnisData.open(csv_path, db)
    assert data.has_order("988776654")  # 受注
    assert data.has_order("123456789")  # 確定
    assert not data.has_order("777000333")  # cancelled
    assert not data.has_order("888000444")  # terminated
    assert not data.has_order("555000111")  # terminating: no order to fill, but a live contract
    assert not data.has_order("999999999")
    assert [x.item_code for x in data.router_lines("988776654")] == ["9603050"]  # not the Original SSID line
    assert data.has_live_contract("555000111") and not data.has_live_contract("888000444")
    assert data.termination_date("555000111") == date(2026, 11, 27)
    assert data.termination_date("123456789") is None
    assert data.order_date("123456789") == date(2024, 4, 1)
    assert data.branch("555000111") == "横浜支店" and data.branch("999999999") is None


def test_columns_in_any_order_and_extra_columns(paths):
    csv_path, db = paths
    shuffled = HEADER[::-1][:5] + HEADER[::-1][5:][::-1]
    write(csv_path, LINES, encoding="utf-8", header=shuffled, extra={"担当営業CD": "S1234", "備考": "法人一括"})
    data = UnisData.open(csv_path, db)
    [x] = data.lines("123456789")
    assert (x.shop_name, x.branch, x.serial, x.line_type) == ("カフェ ひまわり", "新宿支店", "FB05HFH01703", "マンション")


def test_header_spellings_are_normalised(paths):
    csv_path, db = paths
    header = ["顧客ＣＤ" if h == "顧客CD" else (" シリアル No " if h == "シリアルNo" else h) for h in HEADER]
    rows = [{("顧客ＣＤ" if k == "顧客CD" else " シリアル No " if k == "シリアルNo" else k): v for k, v in r.items()}
            for r in LINES]
    write(csv_path, rows, header=header)
    data = UnisData.open(csv_path, db)
    assert data.lines("123456789")[0].serial == "FB05HFH01703"


def test_padded_and_full_width_codes_are_accepted(paths):
    csv_path, db = paths
    write(csv_path, [line(" 988776654 ", item="９６０３０５０", status=" 受注 ")])
    data = UnisData.open(csv_path, db)
    [x] = data.lines("988776654")
    assert x.item_code == "9603050" and x.status is Status.ORDERED


# ------------------------------------------------------------------ bad extracts


def _drop_last_cell(path: Path, row: int) -> None:
    lines = path.read_bytes().split(b"\r\n")
    lines[row - 1] = lines[row - 1].rsplit(b",", 1)[0]
    path.write_bytes(b"\r\n".join(lines))


BAD = [
    # (what, make the CSV bytes, row, column)
    ("missing required column",
     lambda p: write(p, LINES, header=[h for h in HEADER if h != "契約状態"]), 1, "契約状態"),
    ("too few columns", lambda p: _drop_last_cell(p, 4), 4, "請求先住所"),
    ("too many columns",
     lambda p: p.write_bytes(p.read_bytes().rstrip(b"\r\n") + b',"x"\r\n'), 8, "16 (extra)"),
    ("bad date", lambda p: write(p, LINES[:4] + [line(ordered="2026/02/30")] + LINES[4:]), 6, "受注日"),
    ("bad termination date", lambda p: write(p, LINES[:2] + [line(ended="来月末")]), 4, "解約日"),
    ("bad customer code", lambda p: write(p, LINES[:6] + [line("98877665")]), 8, "顧客CD"),
    ("bad item code", lambda p: write(p, LINES[:1] + [line(item="96-030")]), 3, "契約品目CD"),
    ("bad 契約状態", lambda p: write(p, LINES[:2] + [line(status="保留")]), 4, "契約状態"),
    ("empty customer code", lambda p: write(p, [line(""), *LINES]), 2, "顧客CD"),
]


def _good_then(csv_path: Path, db: Path) -> UnisData:
    write(csv_path, LINES, mtime=datetime(2026, 11, 20, 6, 0, tzinfo=TOKYO))
    return UnisData.open(csv_path, db)


@pytest.mark.parametrize("what,make,row,column", BAD, ids=[b[0] for b in BAD])
def test_bad_extract_names_row_and_column_and_keeps_the_last_good_one(paths, what, make, row, column):
    csv_path, db = paths
    data = _good_then(csv_path, db)
    good = data.version
    if what.startswith("too"):
        write(csv_path, LINES)
    make(csv_path)
    os.utime(csv_path, (1795000000, 1795000000))
    with pytest.raises(UnisError) as e:
        data.refresh()
    assert (e.value.row, e.value.column) == (row, column), str(e.value)
    assert str(csv_path) in str(e.value) and f"row {row}, column {column}" in str(e.value)
    # the last good extract stays in use, and the bad file is not tried again
    assert data.version == good and data.error is e.value
    assert data.has_order("988776654")
    assert data.refresh() is False
    assert not list(db.parent.glob("*.new"))  # the half-made import is gone
    # a fresh process on the same state still has the good one
    again = UnisData.open(csv_path, db)
    assert again.version == good and again.error is not None and again.error.row == row
    again.close()
    # fixed: the new one is taken
    write(csv_path, LINES[:3])
    assert data.refresh() is True and data.error is None and data.row_count == 3


def test_wrong_encoding_names_row_and_column(paths):
    csv_path, db = paths
    data = _good_then(csv_path, db)
    raw = write(csv_path, LINES).read_bytes()
    # an undecodable CP932 sequence in the shop name of row 3
    csv_path.write_bytes(raw.replace("カフェ".encode("cp932"), b"\x85\x40\x85\x40"))
    with pytest.raises(UnisError) as e:
        data.refresh()
    assert (e.value.row, e.value.column) == (4, "店舗名") and "CP932" in str(e.value), str(e.value)
    assert data.row_count == len(LINES)


def test_utf8_file_with_a_cp932_row_far_down(paths):
    """Sniffed as UTF-8 from its first 64 KiB; a CP932 cell further down is an error, not garbage."""
    csv_path, db = paths
    data = _good_then(csv_path, db)
    rows = [line(f"{100000000 + i}") for i in range(400)]
    text = write(csv_path, rows, encoding="utf-8").read_bytes()
    assert len(text) > 64 * 1024
    cut = text.rindex(b"\r\n", 0, len(text) - 2) + 2  # the last row
    csv_path.write_bytes(text[:cut] + text[cut:].decode().encode("cp932"))
    with pytest.raises(UnisError) as e:
        data.refresh()
    assert e.value.row == 401 and e.value.column == "顧客名" and "UTF-8" in str(e.value), str(e.value)


def test_utf16_is_refused(paths):
    csv_path, db = paths
    data = _good_then(csv_path, db)
    csv_path.write_bytes(codecs.BOM_UTF16_LE + ",".join(HEADER).encode("utf-16-le"))
    with pytest.raises(UnisError, match="UTF-16 is not supported") as e:
        data.refresh()
    assert e.value.row == 1


def test_no_good_extract_at_all_raises(paths):
    csv_path, db = paths
    write(csv_path, [line(status="保留")])
    with pytest.raises(UnisError, match="row 2, column 契約状態"):
        UnisData.open(csv_path, db)
    assert not db.exists()
    with pytest.raises(UnisError, match="file not found"):
        UnisData.open(csv_path.with_name("absent.csv"), db)


def test_missing_file_keeps_the_last_good_one(paths):
    csv_path, db = paths
    data = _good_then(csv_path, db)
    csv_path.unlink()
    with pytest.raises(UnisError, match="file not found"):
        data.refresh()
    assert data.refresh() is False and data.has_order("988776654")


# ------------------------------------------------------------------ re-import and version


def test_reimport_on_change_and_not_otherwise(paths):
    csv_path, db = paths
    write(csv_path, LINES, extracted="2026/11/20 06:00:00")
    data = UnisData.open(csv_path, db)
    v1, inode = data.version, db.stat().st_ino
    assert data.imports == 1
    assert data.refresh() is False and data.refresh() is False
    assert data.imports == 1 and db.stat().st_ino == inode

    # a process started later reuses the import
    other = UnisData.open(csv_path, db)
    assert other.imports == 0 and other.version == v1
    other.close()

    # touched only: imported again (the fingerprint changed), same content and 抽出日時 → same version
    os.utime(csv_path, (1795000000, 1795000000))
    assert data.refresh() is True and data.version == v1

    # a new extract: new version, new rows
    write(csv_path, LINES + [line("246813579")], extracted="2026/11/21 06:00:00")
    assert data.refresh() is True
    assert data.version != v1 and data.has_order("246813579") and data.imports == 3
    assert data.refresh() is False


def test_same_size_change_in_the_middle_is_seen(paths):
    csv_path, db = paths
    write(csv_path, LINES, mtime=datetime(2026, 11, 20, 6, 0, tzinfo=TOKYO))
    data = UnisData.open(csv_path, db)
    raw = csv_path.read_bytes()
    csv_path.write_bytes(raw.replace(b"123456789", b"123456780"))
    os.utime(csv_path, (datetime(2026, 11, 20, 6, 0, tzinfo=TOKYO).timestamp(),) * 2)  # same size, same mtime
    assert data.refresh() is True  # the head/tail hash differs
    assert data.has_order("123456780") and not data.has_order("123456789")


def test_extraction_time_from_column_else_mtime(paths):
    csv_path, db = paths
    write(csv_path, LINES, extracted=["2026/11/20 05:59:00", "2026-11-20 06:01:30", ""],
          mtime=datetime(2026, 11, 20, 9, 0, tzinfo=TOKYO))
    data = UnisData.open(csv_path, db)
    assert data.extracted_at == datetime(2026, 11, 20, 6, 1, 30, tzinfo=TOKYO)
    assert data.info.extracted_from == "抽出日時"

    write(csv_path, LINES, mtime=datetime(2026, 11, 21, 6, 30, 15, tzinfo=TOKYO))
    assert data.refresh()
    assert data.extracted_at == datetime(2026, 11, 21, 6, 30, 15, tzinfo=TOKYO)
    assert data.extracted_at.utcoffset().total_seconds() == 9 * 3600 and data.info.extracted_from == "mtime"
    v = data.version
    # the same content extracted again a day later (no 抽出日時): a new extract, a new version
    os.utime(csv_path, (datetime(2026, 11, 22, 6, 30, tzinfo=TOKYO).timestamp(),) * 2)
    assert data.refresh() and data.version != v
    assert data.version.startswith(data.info.sha256[:16])


def test_bad_extraction_time_is_an_error(paths):
    csv_path, db = paths
    write(csv_path, LINES, extracted=["2026/11/20 06:00:00", "きのう"])
    with pytest.raises(UnisError) as e:
        UnisData.open(csv_path, db)
    assert (e.value.row, e.value.column) == (3, "抽出日時")


def test_blank_lines_and_row_numbers(paths):
    csv_path, db = paths
    write(csv_path, LINES)
    raw = csv_path.read_bytes()
    first = raw.index(b"\r\n") + 2
    csv_path.write_bytes(raw[:first] + b"\r\n" + raw[first:] + b"\r\n")
    data = UnisData.open(csv_path, db)
    assert data.row_count == len(LINES)
    assert data.lines("123456789")[0].row == 5  # the blank line still counts as a row


def test_import_extract_leaves_nothing_behind_on_error(tmp_path):
    csv_path = write(tmp_path / "x.csv", [line(ordered="昨日")])
    out = tmp_path / "fresh.sqlite3"
    with pytest.raises(UnisError):
        import_extract(csv_path, out, unis_rules(DEFAULT_RULES))
    assert not out.exists()


def test_many_rows_are_quick(paths):
    """A small stand-in for the benchmark (bench/unis_import.py runs a million)."""
    csv_path, db = paths
    rows = [line(f"{100000000 + i * 7}", ordered=f"2020/{1 + i % 12}/{1 + i % 28}") for i in range(20000)]
    write(csv_path, rows)
    data = UnisData.open(csv_path, db)
    assert data.row_count == 20000
    assert data.lines(f"{100000000 + 7 * 19999}")[0].order_date == date(2020, 1 + 19999 % 12, 1 + 19999 % 28)


def test_half_made_imports_of_dead_processes_are_removed(paths):
    csv_path, db = paths
    data = _good_then(csv_path, db)
    dead = db.with_name(f"{db.name}.999999999.deadbeef.new")
    mine = db.with_name(f"{db.name}.{os.getpid()}.cafebabe.new")
    alive = db.with_name(f"{db.name}.1.cafebabe.new")  # pid 1 is always running
    for p in (dead, mine, alive):
        p.write_bytes(b"half")
    write(csv_path, LINES[:2])
    assert data.refresh()
    assert not dead.exists() and not mine.exists() and alive.exists()

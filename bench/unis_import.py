"""Benchmark: importing a UNIS extract (mailbot.reference.unis) against the sqlite3 command-line `.import`.

    python bench/unis_import.py [--rows 1000000] [--keep DIR]

Writes a realistic, deterministic CP932 extract (every column of DOMAIN.md §7 plus 抽出日時,
every cell quoted as UNIS exports do, in a shuffled column order with two extra columns), then
times
  - mailbot: `UnisData.open` into an empty directory: detect the encoding, decode CP932, store the
    rows (by the sqlite3 command line in one part per core, fed UTF-8 through pipes, when it is
    installed; else in-process), check every distinct 顧客CD / 契約品目CD / 契約状態 / date / 抽出日時
    and name the first bad row, index 顧客CD, fsync, rename into place;
  - sqlite3 CLI: `.import --csv` of the same rows converted to UTF-8 (the CLI reads UTF-8 only)
    into a new database (its defaults: one transaction, no checks, no index), and the same
    followed by `CREATE INDEX` on 顧客CD;
and prints rows, seconds, rows/s and the ratio to the plain CLI import.  Needs the `sqlite3`
command (Debian: apt-get install sqlite3).
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailbot.config import DEFAULT_RULES  # noqa: E402
from mailbot.reference import unis  # noqa: E402
from mailbot.reference.unis import UnisData  # noqa: E402

HEADER = ["顧客CD", "顧客名", "店舗名", "管轄支店名", "契約品目CD", "契約状態", "受注日", "解約日",
          "シリアルNo", "獲得区分", "回線種別", "回線タイプ", "設置先住所", "契約先住所", "請求先住所", "抽出日時"]
EXTRA = ["担当営業CD", "備考"]

BRANCHES = ["渋谷支店", "青山支店", "新宿支店", "池袋支店", "吉祥寺支店", "横浜支店", "梅田支店", "難波支店",
            "福岡支店", "名古屋支店", "札幌支店", "仙台支店", "広島支店", "神戸支店", "京都支店", "千葉支店",
            "大宮支店", "静岡支店", "金沢支店", "那覇支店", "法人営業部"]
ITEMS = [("9603050", 30), ("9603030", 12), ("9603023", 10), ("9603040", 14), ("Z100403", 4), ("Z100404", 3),
         ("9603052", 3), ("9603032", 1), ("9603010", 1), ("Z200549", 8), ("9601310", 1)]
STATUS = [("確定", 70), ("受注", 6), ("キャンセル", 5), ("解約予定", 3), ("解約", 16)]
KINDS = ["フレッツ光ネクスト", "Bフレッツ", "フレッツ光クロス"]
TYPES = ["ファミリー", "マンション", "ビジネス"]
ACQ = ["新規", "法人", "代理店", "既存追加", "付け替え"]
PREFS = [("東京都", ["渋谷区道玄坂", "新宿区西新宿", "港区南青山", "豊島区東池袋", "武蔵野市吉祥寺本町"]),
         ("神奈川県", ["横浜市西区南幸", "川崎市川崎区駅前本町"]), ("大阪府", ["大阪市北区梅田", "大阪市中央区難波"]),
         ("福岡県", ["福岡市博多区博多駅前"]), ("愛知県", ["名古屋市中村区名駅"]), ("北海道", ["札幌市中央区北一条西"])]
SHOPS = ["居酒屋", "カフェ", "美容室", "ラーメン", "焼肉", "歯科医院", "整骨院", "ホテル", "ネイルサロン", "寿司", "バー",
         "ベーカリー", "学習塾", "カラオケ", "ダイニング"]
WORDS = ["さくら", "ひまわり", "あおば", "つばさ", "はなみずき", "ことぶき", "よつば", "みなと", "ひかり", "やまと",
         "はるか", "こもれび", "髙橋", "﨑山", "ｱｲｴｽ", "ABC", "Blue", "Kitchen"]
COMPANY = ["株式会社", "有限会社", "合同会社", "医療法人社団", ""]


def _weighted(rng: random.Random, pairs: list[tuple[str, int]]) -> str:
    return rng.choices([p for p, _ in pairs], [w for _, w in pairs])[0]


def _address(rng: random.Random) -> str:
    pref, towns = rng.choice(PREFS)
    building = rng.choice(["", f" {rng.choice(WORDS)}ビル {rng.randint(1, 12)}F", f" 第{rng.randint(1, 5)}{rng.choice(WORDS)}ハイツ{rng.randint(101, 905)}"])
    return f"{pref}{rng.choice(towns)}{rng.randint(1, 5)}丁目{rng.randint(1, 30)}番{rng.randint(1, 20)}号{building}"


def generate(path: Path, rows: int, seed: int = 20261127) -> None:
    """A deterministic CP932 extract of `rows` order lines."""
    rng = random.Random(seed)
    columns = HEADER + EXTRA
    order = list(range(len(columns)))
    rng.shuffle(order)
    start = date(2014, 4, 1)
    extracted = "2026/11/20 06:00:00"
    with open(path, "w", encoding="cp932", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        w.writerow([columns[i] for i in order])
        n = 0
        code = 100000000
        while n < rows:
            code += rng.randint(1, 40)
            company = f"{rng.choice(COMPANY)}{rng.choice(WORDS)}{rng.choice(['商事', 'フーズ', 'ダイニング', '企画', ''])}"
            shop = f"{rng.choice(WORDS)}{rng.choice(SHOPS)} {rng.choice(['本店', '駅前店', '2号店', ''])}".strip()
            branch = rng.choice(BRANCHES)
            kind = rng.choice(KINDS)
            ltype = "" if kind != "Bフレッツ" else rng.choice(TYPES[:2])
            addr = _address(rng)
            contract_addr = addr if rng.random() < 0.7 else _address(rng)
            billing = contract_addr if rng.random() < 0.8 else _address(rng)
            acq = rng.choice(ACQ)
            for _ in range(min(rows - n, rng.choices([1, 2, 3, 4], [80, 12, 6, 2])[0])):
                status = _weighted(rng, STATUS)
                ordered = start + timedelta(days=rng.randint(0, 4600))
                end = ordered + timedelta(days=rng.randint(30, 1500)) if status in ("解約予定", "解約") else None
                serial = "" if status == "受注" else f"FB{rng.randint(0, 99):02d}{rng.choice('ABCDEFGH')}{rng.choice('FGHJ')}H{rng.randint(0, 99999):05d}"
                cells = [f"{code:09d}", company, shop, branch, _weighted(rng, ITEMS), status,
                         ordered.strftime("%Y/%m/%d"), end.strftime("%Y/%m/%d") if end else "", serial, acq,
                         kind, ltype, addr, contract_addr, billing, extracted,
                         f"S{rng.randint(10000, 99999)}", rng.choice(["", "", "", "親1台、子2台", "法人一括"])]
                w.writerow([cells[i] for i in order])
                n += 1


def to_utf8(src: Path, dst: Path) -> None:
    with open(src, encoding="cp932", newline="") as i, open(dst, "w", encoding="utf-8", newline="") as o:
        shutil.copyfileobj(i, o, 1 << 20)


def mailbot_import(src: Path, db: Path, rows: int, command: bool = True) -> float:
    """Seconds of `UnisData.open` of the extract into a new database; every row must arrive.
    `command` False: the rows stored in-process, as on a machine without the sqlite3 command."""
    db.unlink(missing_ok=True)
    saved = unis.SQLITE3_COMMAND
    unis.SQLITE3_COMMAND = saved if command else None
    try:
        t = time.perf_counter()
        data = UnisData.open(src, db, DEFAULT_RULES)
        elapsed = time.perf_counter() - t
    finally:
        unis.SQLITE3_COMMAND = saved
    assert data.row_count == rows, data.row_count
    data.close()
    return elapsed


def sqlite_cli_import(csv_path: Path, db: Path, index: bool) -> float:
    """Seconds of the sqlite3 CLI's `.import` into a new database (then CREATE INDEX: `index`)."""
    db.unlink(missing_ok=True)
    script = f".import --csv '{csv_path}' lines\n"
    if index:
        script += 'CREATE INDEX lines_code ON lines ("顧客CD");\n'
    t = time.perf_counter()
    subprocess.run(["sqlite3", "-batch", str(db)], input=script.encode(), check=True)
    return time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=3, help="best of N runs (default 3)")
    p.add_argument("--keep", type=Path, help="write the files here and keep them")
    args = p.parse_args()
    if not shutil.which("sqlite3"):
        print("the sqlite3 command is missing: apt-get install sqlite3", file=sys.stderr)
        return 2

    tmp = args.keep or Path(tempfile.mkdtemp(prefix="unis-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        src, utf8 = tmp / "unis_cp932.csv", tmp / "unis_utf8.csv"
        t = time.perf_counter()
        generate(src, args.rows)
        to_utf8(src, utf8)
        print(f"generated {args.rows:,} rows, {src.stat().st_size / 1e6:.0f} MB CP932 "
              f"({utf8.stat().st_size / 1e6:.0f} MB as UTF-8) in {time.perf_counter() - t:.1f} s", file=sys.stderr)

        results = {}
        for name, fn in (("sqlite3 CLI .import", lambda: sqlite_cli_import(utf8, tmp / "cli.sqlite3", False)),
                         ("sqlite3 CLI .import + index", lambda: sqlite_cli_import(utf8, tmp / "cli.sqlite3", True)),
                         ("mailbot UnisData.open (CP932)",
                          lambda: mailbot_import(src, tmp / "mailbot-unis.sqlite3", args.rows)),
                         ("mailbot, stored in-process",
                          lambda: mailbot_import(src, tmp / "mailbot-unis.sqlite3", args.rows, command=False))):
            results[name] = min(fn() for _ in range(args.repeat))
        base = results["sqlite3 CLI .import"]
        print(f"{'import':32} {'rows':>10} {'seconds':>8} {'rows/s':>10} {'ratio':>6}")
        for name, secs in results.items():
            print(f"{name:32} {args.rows:>10,} {secs:>8.2f} {args.rows / secs:>10,.0f} {secs / base:>6.2f}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The USEN SPOT 管理台帳 and its daily share with FiberGate (DOMAIN.md §8, issue 15), on the state the
real bot leaves after the sample morning of Friday 2026-11-20 plus realistic mails around it
(child-unit orders, a corporate case staff accept, a cancellation of an order only ever remanded,
remands and holds that must write nothing).

The share's CSV is read back as CP932, its workbook opened with openpyxl, its mail taken from the
real SMTP sink; exactly once per day, across a second call, a new process (`mailbot ledger
--send`) and `mailbot run`'s due days.  Monday 2026-11-23 is 勤労感謝の日; the 5th business day
of December 2026 is Monday 12-07."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from contextlib import closing
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from email import message_from_bytes, policy
from pathlib import Path

import openpyxl
import pytest
from helpers import ROOT, TOKYO, local_bot, office_config, private_copy, sending
from test_check_situations import SITUATIONS, received, unis, write_extract
from test_loop import NOW

from demo.samples import sample_directory, seed_maildir
from mailbot.config import load
from mailbot.mailbox.maildir import MaildirMailbox
from mailbot.record.ledger import LedgerLine
from mailbot.record.store import Store
from mailbot.reference.calendar import BusinessCalendar
from mailbot.reference.data import ReferenceData
from mailbot.reply.note import HELD_HEADER
from mailbot.reports.ledger import (
    csv_bytes,
    due_share_days,
    send_due_shares,
    send_share,
    share_of,
    xlsx_bytes,
)
from mailbot.rules import load_rules

RULES = load_rules(ROOT / "rules").ledger
CALENDAR = BusinessCalendar.load(ROOT / "rules")
FIBERGATE = "usen-spot@fibergate.co.jp"
CC = "usen_spot@usen.co.jp"
D = date(2026, 11, 20)
# Around the sample morning: the situations' mails the ledger must see (or must not).
EXTRA = ("child_unit_addition", "child_unit_exchange", "order_unis_says_corporate",
         "order_remanded_before_its_cancellation", "cancellation_of_an_order_only_ever_remanded",
         "cancellation_of_an_installed_router", "cancellation_with_no_order_anywhere",
         "child_unit_order_not_saying_what_for")


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=TOKYO)


def write_config(root: Path, sink=None, fibergate=(FIBERGATE,), send_at: str = "17:30") -> Path:
    to = ", ".join(f'"{a}"' for a in fibergate)
    return office_config(root, f'[ledger]\nout_dir = "share"\nfibergate_to = [{to}]\ncc = ["{CC}"]\n'
                               f'send_at = "{send_at}"\n', sink)


def extra_rows() -> list[dict[str, str]]:
    chosen = [s for s in SITUATIONS if s.name in EXTRA]
    rows = [row for s in chosen for row in s.unis]
    # 強制解約 (seed 001 VI): terminated in November without a 解約申請 (a parent and its CR-1 child),
    # and one covered by the morning's accepted 解約申請 of 910987654.
    rows += unis("955443322", "955000001", 契約状態="解約", 解約日="2026/11/16")
    rows += unis("955443322", "955000001", 契約状態="解約", 解約日="2026/11/16", 契約品目CD="9603040",
                 シリアルNo="FB08HCR00042")
    rows += unis("910987654", "910987654", 契約状態="解約", 解約日="2026/11/30", 契約品目CD="9603040",
                 シリアルNo="FB03HCR00871")
    return rows


def staff_accept(mailbox: MaildirMailbox, settings, code: str) -> None:
    """What a person does in Outlook: drag the held note of `code` into the accept folder."""
    folder = settings.folders.held
    for raw in mailbox.fetch(folder, mailbox.list_uids(folder)):
        if code in message_from_bytes(raw.data, policy=policy.default)["Subject"]:
            assert HELD_HEADER.lower() in raw.data.decode("ascii", "replace").lower()
            mailbox.move(raw.ref, settings.folders.held_accept)
            return
    raise AssertionError(f"no held note for {code}")


@pytest.fixture(scope="module")
def office(tmp_path_factory) -> Path:
    """The bot's state after the sample morning and the extra mails, the corporate case accepted by
    staff on Tuesday 11-24; each line's record time set to when it would have been recorded live."""
    root = tmp_path_factory.mktemp("office")
    write_extract(root / "usen_spot_orders.csv", extra_rows())
    (root / "branches.csv").write_bytes(sample_directory())
    settings = load(write_config(root))
    extras = sorted(((s.name, s.build()) for s in SITUATIONS if s.name in EXTRA), key=lambda x: received(x[1]))
    with local_bot(settings) as (bot, mailbox, store):
        seed_maildir(mailbox, NOW)
        for _name, data in extras:
            mailbox.append("INBOX", data, internaldate=received(data))
        report = bot.poll()
        assert len(report.handled) == 19 + len(EXTRA) and not report.errors, report.errors
        staff_accept(mailbox, settings, "988776681")
        assert bot.poll().staff == [(store.mail_rows_with_code("988776681")[0]["subject"], "accepted")]
        with store.transaction() as db:
            for mail_id, at in db.execute("SELECT id, COALESCE(received, first_seen) FROM mails").fetchall():
                db.execute("UPDATE ledger SET created_at=? WHERE mail_id=?",
                           (datetime.fromisoformat(at).astimezone(timezone.utc).isoformat(), mail_id))
            staff_at = jst(2026, 11, 24, 10, 15).astimezone(timezone.utc).isoformat()
            db.execute("UPDATE held SET closed_at=? WHERE outcome='accepted'", (staff_at,))
            db.execute("UPDATE ledger SET created_at=? WHERE category='new' AND data LIKE '%988776681%'", (staff_at,))
    return root


@pytest.fixture
def state(office, tmp_path) -> Path:
    return private_copy(office, tmp_path)


def lines_of(store: Store) -> list[LedgerLine]:
    return [LedgerLine.from_json(r[0]) for r in store.db.execute("SELECT data FROM ledger ORDER BY id")]


def summary(line: LedgerLine) -> tuple:
    return (line.category, line.code, line.parents, line.children, line.plus, line.corporate, line.note)


# ---------------------------------------------------------------- the lines


def test_every_accepted_request_writes_its_line_and_nothing_else_does(state):
    store = Store(state / "state.sqlite3")
    try:
        lines = lines_of(store)
        by_code = {x.code: x for x in lines}
        assert sorted(summary(x) for x in lines) == sorted([
            ("new", "988776654", 1, 0, False, False, ""),
            ("cancellation", "921098765", 1, 0, False, False, "受注日後のキャンセル（費用発生）"),
            ("new", "988123456", 1, 0, False, False, ""),
            ("new", "965432107", 1, 0, False, False, ""),
            ("new", "987650123", 1, 2, True, False, ""),  # 親1台、子2台 in the form's 備考; Plus
            ("termination", "910987654", 1, 1, False, False, ""),  # UNIS: the parent 解約予定, a CR-1 解約
            ("router_not_removed", "909876543", 1, 0, False, False, ""),
            ("new", "976543210", 1, 0, False, False, ""),  # the resubmission, accepted
            ("relocation", "998765432", 1, 0, False, False,
             "移設元: 神奈川県川崎市川崎区駅前本町11-2 川崎フロンティアビル3F"),
            ("termination_withdrawal", "945612378", 1, 0, False, False, ""),
            # 子機の追加（子1台）/ 子機交換（子1台）, for a Plus customer (UNIS 9603050)
            ("child_addition", "943215671", 0, 1, True, False, ""),
            ("child_exchange", "943215672", 0, 1, True, False, ""),
            ("new", "988776681", 1, 0, False, True, ""),  # CORPORATE_CASE held, then accepted by staff
        ])
        # No line for a contract change, remands (registration notice, missing form, a child unit
        # without its purpose, an installed router's cancellation), holds (outsider, unknown,
        # NO_OPEN_ORDER), or a cancellation of an order only ever remanded (nothing was ordered).
        for code in ("932104567", "955443322", "943215678", "943215673", "921098711", "921098712", "988776687"):
            assert code not in by_code, code
        order = by_code["988776654"]
        assert (order.day, order.customer_name, order.shop_name, order.branch) == (
            D, "株式会社ソレイユ", "カフェ・ド・ソレイユ 渋谷店", "渋谷支店")
        assert (order.line_kind, order.line_type, order.ssid, order.mail_addresses) == (
            "フレッツ光ネクスト", "マンション", "Soleil_Free_Wi-Fi", ("soleil-shibuya@uspot.jp",))
        assert order.address == "150-0042 東京都渋谷区宇田川町33番6号渋谷宇田川町ビル1F"
        assert order.message_id.startswith("<") and order.message_id.endswith("@usen.co.jp>")
        relocation = by_code["998765432"]
        assert (relocation.address, relocation.line_kind) == ("神奈川県川崎市川崎区砂子1-4-10 砂子ビル2F", "フレッツ光ネクスト")
        assert by_code["910987654"].termination_date == date(2026, 12, 31)
        child = by_code["943215671"]
        assert (child.customer_name, child.mail_addresses, child.ssid) == ("有限会社こむぎ", (), "")
        # The staff's acceptance: its 受付日 is the day staff decided (the fixture's clock: today).
        corporate = by_code["988776681"]
        assert corporate.day == CALENDAR.day_n(datetime.fromisoformat(
            store.db.execute("SELECT at FROM events WHERE event='staff accepted'").fetchone()[0]))
        # Each line carries the Message-ID of its request; one line per request.
        rows = store.db.execute("SELECT l.key, m.message_id FROM ledger l JOIN mails m ON m.id = l.mail_id").fetchall()
        assert all(LedgerLine.from_json(store.db.execute("SELECT data FROM ledger WHERE key=?", (k,)).fetchone()[0])
                   .message_id == mid for k, mid in rows) and len(rows) == len(lines)
    finally:
        store.close()


def test_the_ledger_line_is_written_in_the_decisions_commit(tmp_path):
    """A decision and its line are one commit: a poll re-deciding nothing writes nothing twice."""
    settings = load(write_config(tmp_path))
    write_extract(tmp_path / "usen_spot_orders.csv", [])
    (tmp_path / "branches.csv").write_bytes(sample_directory())
    with local_bot(settings) as (bot, mailbox, store):
        seed_maildir(mailbox, NOW)
        bot.poll()
        decided = {r[0] for r in store.db.execute("SELECT id FROM mails WHERE action='accept' AND kind != 'contract_change'")}
        assert {r[0] for r in store.db.execute("SELECT mail_id FROM ledger")} == decided
        bot.poll()
        assert store.db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == len(decided)


# ---------------------------------------------------------------- the share and its files


def test_the_share_of_a_day_holds_what_was_accepted_before_its_send_time(state):
    settings = load(write_config(state))
    store = Store(settings.database)
    try:
        share = share_of(settings, store, D, jst(2026, 11, 20, 18, 0))
        assert not share.made and len(share.lines) == 12  # the corporate one was accepted on the 24th
        assert [x.category for x in share.lines] == (
            ["new"] * 5 + ["child_addition", "child_exchange", "cancellation", "relocation", "termination",
                          "termination_withdrawal", "router_not_removed"])
        # Made at 10:00 the same day: only what was recorded by then.
        assert len(share_of(settings, store, D, jst(2026, 11, 20, 8, 0)).lines) == 3
        # Tuesday (Monday a holiday): everything not shared yet, the corporate case last.
        tuesday = share_of(settings, store, date(2026, 11, 24), jst(2026, 11, 24, 18, 0))
        assert len(tuesday.lines) == 13 and tuesday.lines[-1].corporate
    finally:
        store.close()


def test_csv_is_cp932_with_crlf_replacements_counted_and_formulas_escaped():
    lines = [
        LedgerLine("mail:1", "new", D, "988776654", "株式会社𠮷田商店", "𠮷野家 〜新宿店〜", "新宿支店", 1, 2, True,
                   "Bフレッツ", "ファミリー", "東京都新宿区西新宿1-1-1, 3F", ("a@uspot.jp", "b@uspot.jp"), "=cmd|' /C calc'!A0",
                   None, False, "-2台のうち1台", "<x@usen.co.jp>"),
        LedgerLine("mail:2", "termination", D, "910987654", "有限会社ゴール", "@渋谷店", "渋谷支店", 1, 0, False,
                   "フレッツ光ネクスト", "", "+81 3 0000", (), "", date(2026, 12, 31), True, "", "<y@usen.co.jp>"),
    ]
    data, replaced = csv_bytes(lines, RULES)
    assert replaced == 2  # 𠮷 twice (CP932 has no such character)
    assert data.count(b"\r\n") == 3 and b"\n" not in data.replace(b"\r\n", b"")
    rows = list(csv.reader(io.StringIO(data.decode("cp932"), newline="")))
    assert rows[0] == list(RULES.columns.values())
    assert rows[0][:8] == ["区分", "受付日", "顧客CD", "顧客名", "店舗名", "支店名", "親機台数", "子機台数"]
    first, second = (dict(zip(rows[0], r)) for r in rows[1:])
    assert first["区分"] == "新規" and first["受付日"] == "2026/11/20" and first["子機台数"] == "2"
    assert first["顧客名"] == "株式会社〓田商店" and first["店舗名"] == "〓野家 ～新宿店～"  # 〜 as CP932 writes it
    assert first["設置先住所"] == "東京都新宿区西新宿1-1-1, 3F" and first["Plus"] == "Plus"
    assert first["希望メールアドレス"] == "a@uspot.jp / b@uspot.jp"
    assert first["SSID"] == "'=cmd|' /C calc'!A0" and first["備考"] == "'-2台のうち1台"
    assert second["店舗名"] == "'@渋谷店" and second["設置先住所"] == "'+81 3 0000"
    assert second["区分"] == "解約" and second["解約日"] == "2026/12/31" and second["法人"] == "法人"

    book = openpyxl.load_workbook(io.BytesIO(xlsx_bytes(lines, RULES, D)))
    assert book.sheetnames == ["管理台帳", "法人"]
    regional, corporate = book["管理台帳"], book["法人"]
    header = [c.value for c in regional[1]]
    assert header == list(RULES.columns.values()) and regional["A1"].font.b and regional.freeze_panes == "A2"
    assert regional.max_row == 2 and corporate.max_row == 2  # the corporate line on its own sheet
    cells = {h: c for h, c in zip(header, regional[2])}
    assert cells["顧客名"].value == "株式会社𠮷田商店"  # the workbook keeps every character
    assert cells["SSID"].value == "=cmd|' /C calc'!A0" and cells["SSID"].data_type == "s"  # text, never a formula
    assert cells["子機台数"].value == 2
    assert regional.column_dimensions["L"].width > regional.column_dimensions["G"].width  # sized to content
    assert [c.value for c in corporate[2]][:3] == ["解約", "2026/11/20", "910987654"]


def test_forced_terminations_on_the_fifth_business_day(state):
    settings = load(write_config(state))
    store = Store(settings.database)
    reference = ReferenceData.load(settings)
    try:
        assert CALENDAR.nth_business_day(2026, 12, 5) == date(2026, 12, 7)
        fifth = share_of(settings, store, date(2026, 12, 7), jst(2026, 12, 7, 18, 0), reference=reference)
        forced = [x for x in fifth.lines if x.category == "forced_termination"]
        # November's UNIS terminations no 解約申請 covered: 955000001's parent and its CR-1 child;
        # not 910987654's child (its 解約申請 was accepted), not September's 909876543.
        assert [(x.code, x.parents, x.children, x.termination_date) for x in forced] == [
            ("955000001", 1, 0, date(2026, 11, 16)), ("955000001", 0, 1, date(2026, 11, 16))]
        assert forced[0].day == date(2026, 12, 7) and forced[0].message_id == ""
        other = share_of(settings, store, date(2026, 12, 4), jst(2026, 12, 4, 18, 0), reference=reference)
        assert not [x for x in other.lines if x.category == "forced_termination"]
    finally:
        reference.close()
        store.close()


# ---------------------------------------------------------------- sending, once


def record_line(store: Store, line: LedgerLine, at: datetime) -> None:
    """A ledger line recorded at `at`, as a decision then would have (the store's own insert)."""
    with store.transaction() as db:
        store._add_ledger_line(db, None, line, at.astimezone(timezone.utc).isoformat())


def attachments(message) -> dict[str, bytes]:
    return {p.get_filename(): p.get_payload(decode=True) for p in message.iter_attachments()}


def test_the_share_is_mailed_once_and_a_later_change_goes_out_next_time(state, smtp_sink):
    with sending(write_config(state, smtp_sink)) as (settings, store, transport), \
            closing(ReferenceData.load(settings)) as reference:
        evening = jst(2026, 11, 20, 17, 31)
        result = send_share(settings, store, transport, D, evening, reference=reference)
        assert (result.state, result.lines) == ("sent", 12)
        (mail,) = smtp_sink.messages()
        assert sorted(mail.rcpt_tos) == sorted([FIBERGATE, CC])
        assert mail.message["Subject"] == "USEN SPOT 管理台帳 日次共有（2026年11月20日（金））"
        assert mail.message["Message-ID"] == "<ledger.20261120.mailbot@usen.co.jp>"
        assert mail.message["From"].addresses[0].display_name == "USEN SPOT 事務センター"
        body = mail.message.get_body(("plain",)).get_content()
        assert "ファイバーゲート株式会社" in body and "11月20日（金）分" in body and "計 12件" in body
        assert "新規：5件" in body and "子機追加：1件" in body and "キャンセル：1件" in body
        files = attachments(mail.message)
        assert set(files) == {"usen_spot_20261120.csv", "usen_spot_20261120.xlsx"}
        rows = list(csv.reader(io.StringIO(files["usen_spot_20261120.csv"].decode("cp932"), newline="")))
        assert len(rows) == 13 and rows[1][0] == "新規"
        assert openpyxl.load_workbook(io.BytesIO(files["usen_spot_20261120.xlsx"]))["管理台帳"].max_row == 13

        # A second --send of the day sends nothing; the lines belong to that share for good.
        assert send_share(settings, store, transport, D, evening + timedelta(hours=1)).state == "already sent"
        assert len(smtp_sink.messages()) == 1
        assert share_of(settings, store, D, evening).made

        # Shared Friday; the customer cancels on Tuesday: a new line in Tuesday's share, with the
        # corporate order staff accepted that morning; Friday's lines are not shared again.
        cancel = replace(share_of(settings, store, D, evening).lines[0], key="mail:9001", category="cancellation",
                         day=date(2026, 11, 24), note="受注日後のキャンセル（費用発生）")
        record_line(store, cancel, jst(2026, 11, 24, 11, 0))
        tuesday = send_share(settings, store, transport, date(2026, 11, 24), jst(2026, 11, 24, 17, 45),
                             reference=reference)
        assert (tuesday.state, tuesday.lines) == ("sent", 2)
        second = smtp_sink.messages()[1].message
        files = attachments(second)
        book = openpyxl.load_workbook(io.BytesIO(files["usen_spot_20261124.xlsx"]))
        assert [r[0].value for r in book["管理台帳"].iter_rows(min_row=2)] == ["キャンセル"]
        assert [r[2].value for r in book["法人"].iter_rows(min_row=2)] == ["988776681"]
        assert "法人営業案件 1件" in second.get_body(("plain",)).get_content()

        # A day with nothing to share sends nothing (and records nothing).
        assert send_share(settings, store, transport, date(2026, 11, 25), jst(2026, 11, 25, 18, 0)).state == \
            "nothing to share"
        assert len(smtp_sink.messages()) == 2
        assert store.db.execute("SELECT COUNT(*) FROM ledger_shares").fetchone()[0] == 2
        assert store.db.execute("SELECT COUNT(*) FROM ledger WHERE share_day IS NULL").fetchone()[0] == 0


def test_a_failed_send_keeps_the_same_share_and_a_person_retries_it(state, smtp_sink):
    with sending(write_config(state, smtp_sink)) as (settings, store, transport):
        smtp_sink.set_mode("tempfail")
        first = send_share(settings, store, transport, D, jst(2026, 11, 20, 17, 31))
        assert first.state == "queued" and "451" in first.detail
        # Recorded later, this line is not slipped into the queued share.
        record_line(store, replace(share_of(settings, store, D, jst(2026, 11, 20, 18)).lines[0], key="mail:9002"),
                    jst(2026, 11, 20, 17, 40))
        smtp_sink.set_mode("accept")
        again = send_share(settings, store, transport, D, jst(2026, 11, 20, 18, 0))
        assert again.state == "sent" and again.message_id == first.message_id and again.lines == 12
        (mail,) = smtp_sink.messages()
        assert mail.message["Date"] is not None and "計 12件" in mail.message.get_body(("plain",)).get_content()


def test_run_sends_each_business_days_share_at_its_time_once(state, smtp_sink):
    with sending(write_config(state, smtp_sink)) as (settings, store, transport):
        with store.transaction() as db:  # the bot took in its first mail that Friday
            db.execute("UPDATE mails SET first_seen = COALESCE(received, first_seen)")
        assert send_due_shares(settings, store, transport, jst(2026, 11, 20, 17, 29)) == []
        assert [(r.day, r.state, r.lines) for r in send_due_shares(settings, store, transport,
                                                                   jst(2026, 11, 20, 17, 30))] == [(D, "sent", 12)]
        assert send_due_shares(settings, store, transport, jst(2026, 11, 20, 20, 0)) == []
        # Saturday–Monday (a holiday) are no business days; Tuesday's share carries the corporate case.
        assert due_share_days(settings, store, CALENDAR, jst(2026, 11, 23, 18, 0), 10) == []
        results = send_due_shares(settings, store, transport, jst(2026, 11, 24, 17, 30))
        assert [(r.day, r.state, r.lines) for r in results] == [(date(2026, 11, 24), "sent", 1)]
        # Back after two days away: Wednesday and Thursday had nothing; nothing is sent.
        assert send_due_shares(settings, store, transport, jst(2026, 11, 27, 9, 0)) == []
        assert len(smtp_sink.messages()) == 2
        # No FiberGate address configured: the share is never mailed.
        bare = load(write_config(state, smtp_sink, fibergate=()))
        assert send_due_shares(bare, store, transport, jst(2026, 11, 30, 18, 0)) == []


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailbot", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


def test_ledger_command_writes_the_files_and_sends_once(state, smtp_sink):
    config = write_config(state, smtp_sink)
    preview = run_cli("ledger", "--config", str(config), "--date", "2026-11-20", "--out", str(state / "preview"))
    assert preview.returncode == 0, preview.stderr
    out = preview.stdout.splitlines()
    assert out[:2] == [str(state / "preview" / "usen_spot_20261120.csv"), str(state / "preview" / "usen_spot_20261120.xlsx")]
    assert "新規: 5件" in out and "計 12件（未共有：送信するときは、その時点までに受け付けた行が入ります）" in out
    assert smtp_sink.messages() == []

    sent = run_cli("ledger", "--config", str(config), "--date", "2026-11-24", "--send")
    assert sent.returncode == 0, sent.stderr
    assert f"The share of 2026-11-24 was sent to {FIBERGATE} (13 lines, <ledger.20261124.mailbot@usen.co.jp>)." \
        in sent.stdout
    written = state / "share" / "usen_spot_20261124.csv"
    (mail,) = smtp_sink.messages()
    assert written.read_bytes() == attachments(mail.message)["usen_spot_20261124.csv"]  # what FiberGate got
    again = run_cli("ledger", "--config", str(config), "--date", "2026-11-24", "--send")
    assert again.returncode == 0 and "was already sent" in again.stdout and len(smtp_sink.messages()) == 1
    nothing = run_cli("ledger", "--config", str(config), "--date", "2026-11-25")
    assert nothing.returncode == 0 and nothing.stdout.strip() == "Nothing to share for 2026-11-25: no ledger line is waiting."
    holiday = run_cli("ledger", "--config", str(config), "--date", "2026-11-23", "--send")
    assert "not a business day (勤労感謝の日)" in holiday.stdout and len(smtp_sink.messages()) == 1
    bad = run_cli("ledger", "--config", str(config), "--date", "2026-13-01")
    assert bad.returncode == 2 and bad.stderr.strip() == "mailbot: --date: '2026-13-01' is not a date YYYY-MM-DD"


def test_ledger_config_errors_name_the_key(tmp_path):
    from mailbot.config import ConfigError

    for text, error in (
            ('[ledger]\ncc = ["someone@gmail.com"]\n', "ledger.cc[0]: 'someone@gmail.com' is outside policy.internal_domains"),
            ('[ledger]\nfibergate_to = ["fibergate"]\n', "ledger.fibergate_to[0]: 'fibergate' is not a mail address"),
            ('[ledger]\nsend_at = "25:00"\n', "ledger.send_at: '25:00' is not a time of day HH:MM"),
            ('[ledger]\nshare_at = "17:30"\n', "ledger.share_at: unknown setting")):
        path = tmp_path / "c.toml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as e:
            load(path)
        assert str(e.value).startswith(error.split(" (")[0][:40]), str(e.value)


# ---------------------------------------------------------------- the held note staff decide from


def test_a_held_note_carries_what_staff_need_to_decide(state):
    """Issue 16: the note of a held order shows the UNIS lines of its code, what was read from
    the body and the form, the code's earlier mails, and the 受付 / 差戻 replies it would send —
    in the plain-text part and the HTML part, in Japanese."""
    settings = load(write_config(state))
    # An order naming another shop of the customer (SHOP_MISMATCH), held with its form read.
    situation = next(s for s in SITUATIONS if s.name == "order_other_shop")
    data = situation.build()
    write_extract(state / "usen_spot_orders.csv", extra_rows() + list(situation.unis))
    with local_bot(settings) as (bot, mailbox, _store):
        mailbox.append("INBOX", data, internaldate=received(data))
        bot.poll()
        notes = [raw for raw in mailbox.fetch(settings.folders.held, mailbox.list_uids(settings.folders.held))
                 if b"988776629" in raw.data]
    (note,) = notes
    msg = message_from_bytes(note.data, policy=policy.default)
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "申込書の店舗名がUNISの店舗名と一致しません。" in text
    # What was read, named as on the form.
    assert "　申込書：店舗/施設名：カフェ・ド・ソレイユ 原宿店" in text
    assert "　本文：顧客CD：988776629" in text and "　申込書：USEN SPOT Plus：無" in text
    # The UNIS line of the code, as UNIS writes it.
    unis_part = text[text.index("■ UNISの登録内容（顧客コード 988776629）"):]
    assert "受注" in unis_part.splitlines()[1] and "カフェ・ド・ソレイユ　渋谷店" in unis_part.splitlines()[1]
    # The replies staff would send by moving the note.
    accept = text[text.index("■ 受け付けた場合に送られる返信"):text.index("■ 差し戻した場合")]
    remand = text[text.index("■ 差し戻した場合に送られる返信"):]
    assert "件名：【受付】USEN SPOT 器材発注依頼_988776629" in accept and "ファイバーゲート社へ発注します" in accept
    assert "件名：【差戻】USEN SPOT 器材発注依頼_988776629" in remand and "店舗名" in remand
    for part in ("UNISの登録内容", "読み取った内容", "受け付けた場合に送られる返信", "差し戻した場合に送られる返信",
                 "カフェ・ド・ソレイユ 原宿店"):
        assert part in html, part
    assert "SHOP_MISMATCH" not in text and "SHOP_MISMATCH" not in html

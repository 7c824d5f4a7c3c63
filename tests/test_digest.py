"""The supervisors' daily digest and `mailbot history`, on the state the real bot leaves after the
sample morning of Friday 2026-11-20 (tests/test_loop.py NOW), plus rows for what that morning lacks.

Sent to the real SMTP sink; exactly once per business day, across a second call, a new process
and `mailbot run`; a missed day late, once; none on weekends and holidays (Monday 2026-11-23 is
勤労感謝の日)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from datetime import time as daytime
from email import message_from_bytes, policy
from email.utils import format_datetime
from io import BytesIO
from pathlib import Path

import pytest
from helpers import (
    ROOT,
    TOKYO,
    local_bot,
    office_config,
    private_copy,
    running_bot,
    sending,
)
from PIL import Image
from test_loop import NOW
from test_reference_checks import sample_directory, sample_extract

from demo.samples import sample_mails, seed_maildir
from mailbot.config import load
from mailbot.record.store import Store
from mailbot.reference.calendar import BusinessCalendar
from mailbot.reply.send import SmtpTransport
from mailbot.reports.digest import (
    ExtractStatus,
    StateReader,
    build_digest,
    chart_png,
    collect,
    digest_recipients,
    due_days,
    extract_status,
    render_html,
    render_text,
    send_due_digests,
)

D = date(2026, 11, 20)  # the sample morning's Friday
EVENING = datetime(2026, 11, 20, 18, 30, tzinfo=TOKYO)
CALENDAR = BusinessCalendar.load(ROOT / "rules")
ZERO = {"accept": 0, "remand": 0, "hold": 0, "defer": 0, "ignore": 0}


def counts(**kw: int) -> dict[str, int]:
    return ZERO | kw


# ---------------------------------------------------------------- the state the bot leaves


def write_config(root: Path, sink=None, recipients=("sv-team@usen.co.jp",), time_: str = "18:00",
                 extract: str = "usen_spot_orders.csv", poll_interval: int = 60) -> Path:
    return office_config(root, f'[digest]\nrecipients = {json.dumps(list(recipients))}\ntime = "{time_}"\n'
                               f'[scheduler]\npoll_interval = {poll_interval}\n', sink, extract=extract)


@pytest.fixture(scope="module")
def morning(tmp_path_factory) -> Path:
    """The real bot's state after the sample morning, as if it had run live that morning: each
    mail first seen when it arrived, each held mail's item opened then."""
    root = tmp_path_factory.mktemp("morning")
    sample_extract(root)
    sample_directory(root)
    settings = load(write_config(root))
    with local_bot(settings) as (bot, mailbox, store):
        seed_maildir(mailbox, NOW)
        report = bot.poll()
        assert len(report.handled) == 19 and not report.errors
        with store.transaction() as db:
            db.execute("UPDATE mails SET first_seen = received")
            db.execute("UPDATE held SET opened_at = (SELECT received FROM mails WHERE mails.id = held.mail_id)")
            db.execute("INSERT OR IGNORE INTO held (mail_id, note_id, original, opened_at)"
                       " SELECT id, '<held.' || id || '@test>', x'', received FROM mails WHERE action = 'hold'")
    return root


@pytest.fixture
def state(morning, tmp_path) -> Path:
    """A private copy of the morning's state directory."""
    return private_copy(morning, tmp_path)


def add_mail(store: Store, received: str, kind: str, action: str, reasons=(), *, code=None, branch=None,
             state="filed", subject="", sender="x@usen.co.jp") -> int:
    n = store.db.execute("SELECT COUNT(*) FROM mails").fetchone()[0] + 1
    cur = store.db.execute(
        "INSERT INTO mails (sha256, folder, uidvalidity, uid, state, action, kind, code, reasons, subject, sender,"
        " received, branch, first_seen, updated) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (f"extra{n}", "INBOX", 1, 10000 + n, state, action, kind, code, json.dumps(list(reasons)),
         subject or f"USEN SPOT {kind}_{code}", sender, received, branch, received, received))
    return cur.lastrowid


def event(store: Store, mail_id: int | None, at: str, name: str, detail: str = "") -> None:
    store.db.execute("INSERT INTO events (mail_id, at, event, detail) VALUES (?,?,?,?)", (mail_id, at, name, detail))


def collect_at(store: Store, day: date, now: datetime, extract: ExtractStatus | None = None):
    return collect(store, day, now, rules_dir=ROOT / "rules", calendar=CALENDAR,
                   extract=extract or ExtractStatus(configured=False))


def render(data) -> str:
    return render_text(data, ROOT / "templates")


# ---------------------------------------------------------------- content


def test_the_mornings_mails_by_kind_decision_and_branch(state):
    store = Store(state / "state.sqlite3")
    try:
        data = collect_at(store, D, EVENING)
    finally:
        store.close()
    t = data.today
    # Since Thursday's digest (18:00) up to Friday's.
    assert (t.start, t.end) == (datetime(2026, 11, 19, 18, 0, tzinfo=TOKYO), datetime(2026, 11, 20, 18, 0, tzinfo=TOKYO))
    # The out-of-office reply and the bounce are counted apart, not as traffic.
    assert t.auto_replies == 2
    assert [(r.label, r.counts) for r in t.kinds] == [
        ("器材発注依頼", counts(accept=5, remand=3)),
        ("契約変更", counts(accept=1)),
        ("キャンセル申請", counts(accept=1, hold=1)),
        ("解約申請", counts(accept=1)),
        ("ルーター未撤去", counts(accept=1)),
        ("移設依頼", counts(accept=1)),
        ("解約キャンセル依頼", counts(accept=1)),
        ("登録通知書", counts(remand=1)),  # never by mail: the reply is the procedure (REGISTRATION_NOTICE_VIA_DRAGON)
        ("不明", counts(hold=1)),
    ]
    assert t.totals == counts(accept=11, remand=4, hold=2) and t.total == 17
    assert [(r.code, r.label, r.count, r.title) for r in t.remand_reasons] == [
        ("ATTACHMENT_MISSING", "PDF添付なし", 1, "必要なPDFが添付されていません。"),
        ("CODE_INVALID", "顧客コード桁違い", 1, "件名の顧客コードが9桁の数字ではありません。"),
        ("CODE_MISSING", "顧客コードなし", 1, "件名にUNIS顧客コードがありません。"),
        ("REGISTRATION_NOTICE_VIA_DRAGON", "登録通知書（Dragon案内）", 1, "登録通知書の再発行は、メールではお受けしていません。"),
    ]
    assert [(r.label, r.total, r.counts, r.top_reason) for r in t.branches] == [
        ("吉祥寺支店", 2, counts(accept=1, hold=1), ""),  # the cancellation, the same person from Gmail
        ("新宿支店", 2, counts(accept=2), ""),
        ("梅田支店", 2, counts(accept=1, remand=1), "顧客コードなし"),
        ("横浜支店", 2, counts(accept=2), ""),
        ("渋谷支店", 2, counts(accept=2), ""),  # the order, the termination (its manager's out-of-office apart)
        # The 8-digit code and the question no kind matches, both from the same 福岡 member: one
        # branch's mail, never split into （支店不明） (issue 20)
        ("福岡支店", 2, counts(remand=1, hold=1), "顧客コード桁違い"),
        ("名古屋支店", 1, counts(remand=1), "PDF添付なし"),
        ("札幌支店", 1, counts(remand=1), "登録通知書（Dragon案内）"),
        ("池袋支店", 1, counts(accept=1), ""),
        ("難波支店", 1, counts(accept=1), ""),
        ("青山支店", 1, counts(accept=1), ""),
    ]
    assert [round(r.remand_rate, 2) for r in t.branches][:3] == [0.0, 0.0, 0.5]
    assert t.cancel_after_order == 1 and t.withdrawal_too_late == 0
    assert data.month.kinds == t.kinds and data.month.start == datetime(2026, 11, 1, tzinfo=TOKYO)
    # Held: the outsider and the unknown subject, both from this morning.
    assert [(h.mail.kind_label, h.mail.code, h.mail.reason_labels, h.age) for h in data.held] == [
        ("キャンセル申請", "944556677", ["社外・認証不可の送信者"], 0),
        ("不明", None, ["件名の形式違い"], 0),
    ]
    assert [(m.code, m.branch, m.decision_label) for m in data.cancellations] == [("921098765", "吉祥寺支店", "受付")]
    p = data.problems
    assert data.late_withdrawals == data.deferred == p.retried == p.failed == p.unreadable == p.bounced == []
    assert p.alerts == [] and data.problem_count == 0
    # The four weeks end with this period's: 11-13 18:00 to 11-20 18:00.
    assert [(w.label, w.total, w.auto_replies) for w in data.weeks] == [
        ("10月23日〜10月30日", 0, 0), ("10月30日〜11月6日", 0, 0), ("11月6日〜11月13日", 0, 0),
        ("11月13日〜11月20日", 17, 2)]


def test_copies_of_the_bots_own_replies_are_no_mail_received(state):
    """[smtp] copy_to_mailbox brings each reply back to the shared mailbox (filed to 送信済 as
    OWN_COPY): those copies are not counted as mail of the day."""
    store = Store(state / "state.sqlite3")
    try:
        before = collect_at(store, D, EVENING).today.totals
        for minute in range(3):
            add_mail(store, f"2026-11-20T11:0{minute}:00+09:00", "unknown", "ignore", ["OWN_COPY"],
                     sender="usen_spot@usen.co.jp", subject="【受付】USEN SPOT 器材発注依頼_988776654")
        add_mail(store, "2026-11-20T11:05:00+09:00", "unknown", "ignore", ["AUTO_REPLY"])
        after = collect_at(store, D, EVENING).today
    finally:
        store.close()
    assert after.totals == before and after.auto_replies == 3  # the automatic reply apart


def test_held_deferred_problems_alerts_and_the_month(state):
    store = Store(state / "state.sqlite3")
    try:
        # Held since Monday, and one that came after Thursday's cutoff (its day N is Friday).
        old = add_mail(store, "2026-11-16T10:00:00+09:00", "termination", "hold", ["NO_ACTIVE_CONTRACT"],
                       code="910000001", branch="渋谷支店")
        late = add_mail(store, "2026-11-19T17:30:00+09:00", "relocation", "hold", ["LINE_MISMATCH"], code="998000002",
                        branch="横浜支店")
        closed = add_mail(store, "2026-11-17T10:00:00+09:00", "equipment_order", "hold", ["SHOP_MISMATCH"],
                          code="988000003", branch="池袋支店")
        later = add_mail(store, "2026-11-24T10:00:00+09:00", "equipment_order", "hold", ["PLUS_MISMATCH"],
                         code="988000004")
        for mail_id, opened, closed_at in ((old, "2026-11-16T01:00:05+00:00", None),
                                           (late, "2026-11-19T08:30:05+00:00", None),
                                           (closed, "2026-11-17T01:00:05+00:00", "2026-11-18T02:00:00+00:00"),
                                           (later, "2026-11-24T01:00:05+00:00", None)):
            store.db.execute("INSERT INTO held (mail_id, note_id, original, opened_at, closed_at) VALUES (?,?,?,?,?)",
                             (mail_id, f"<held.{mail_id}@test>", b"", opened, closed_at))
        # Waiting for a UNIS extract since Thursday; and one that was deferred, then filed.
        add_mail(store, "2026-11-19T16:00:00+09:00", "equipment_order", "defer", ["UNIS_ORDER_NOT_FOUND"],
                 code="955555555", branch="新宿支店", state="decided")
        add_mail(store, "2026-11-18T16:00:00+09:00", "equipment_order", "defer", ["UNIS_ORDER_NOT_FOUND"],
                 code="955555556", branch="新宿支店", state="vanished")
        # A reply given up today, one sent at the third attempt today, one given up on Thursday.
        failed = add_mail(store, "2026-11-20T11:00:00+09:00", "contract_change", "accept", code="932100000",
                          branch="新宿支店", state="decided")
        retried = add_mail(store, "2026-11-20T11:30:00+09:00", "relocation", "accept", code="998765000",
                           branch="横浜支店", state="sent")
        before = add_mail(store, "2026-11-19T11:00:00+09:00", "termination", "accept", code="910000009",
                          branch="渋谷支店", state="decided")
        for mail_id, state_, attempts, error, sent_at in (
                (failed, "failed", 8, "SMTPResponseException: 554 5.7.1 rejected", None),
                (retried, "sent", 3, None, "2026-11-20T03:40:00+00:00"),
                (before, "failed", 8, "SMTPResponseException: 550 no", None)):
            store.db.execute("INSERT INTO replies (mail_id, message_id, action, recipients, data, state, attempts,"
                             " next_attempt, last_error, sent_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                             (mail_id, f"<accept.{mail_id}@test>", "accept", '["x@usen.co.jp"]', b"", state_,
                              attempts, "2026-11-20T00:00:00+00:00", error, sent_at))
        event(store, failed, "2026-11-20T03:00:00+00:00", "reply failed", "554 5.7.1 rejected")
        event(store, retried, "2026-11-20T03:31:00+00:00", "reply retry", "451; next at …")
        event(store, retried, "2026-11-20T03:35:00+00:00", "reply retry", "451; next at …")
        event(store, before, "2026-11-19T03:00:00+00:00", "reply failed", "550 no")
        # An unreadable mail and a late withdrawal today.
        add_mail(store, "2026-11-20T12:00:00+09:00", "unknown", "hold", ["MAIL_UNREADABLE"], sender="")
        add_mail(store, "2026-11-20T16:00:00+09:00", "termination_withdrawal", "hold", ["WITHDRAWAL_TOO_LATE"],
                 code="945600000", branch="梅田支店", subject="<script>alert('解約キャンセル')</script>")
        # The mailbox could not be reached twice this morning (and once on Thursday).
        for at in ("2026-11-20T00:12:30+00:00", "2026-11-20T00:40:10+00:00", "2026-11-19T05:00:00+00:00"):
            event(store, None, at, "mailbox unreachable", "connection refused")
        # Earlier this month, and last month.
        add_mail(store, "2026-11-05T10:00:00+09:00", "equipment_order", "remand",
                 ["CODE_MISSING", "UNIT_COUNT_MISSING", "PDF_UNREADABLE"], branch="渋谷支店")
        add_mail(store, "2026-10-31T10:00:00+09:00", "equipment_order", "remand", ["CODE_MISSING"], branch="渋谷支店")

        data = collect_at(store, D, EVENING)
    finally:
        store.close()

    # Open at the end of Friday, oldest first; ages in business days from each one's day N.
    assert [(h.mail.code, h.opened_at.strftime("%m-%d %H:%M"), h.age) for h in data.held] == [
        ("910000001", "11-16 10:00", 4),
        ("998000002", "11-19 17:30", 0),
        ("944556677", "11-20 08:12", 0),
        (None, "11-20 10:22", 0),
    ]
    assert [(x.mail.code, x.mail.branch, x.waiting) for x in data.deferred] == [("955555555", "新宿支店", 1)]
    p = data.problems
    assert [(q.mail.code, q.state, q.attempts, q.last_error) for q in p.failed] == [
        ("932100000", "failed", 8, "SMTPResponseException: 554 5.7.1 rejected")]  # not Thursday's
    assert [(q.mail.code, q.state_label, q.attempts, q.retries) for q in p.retried] == [("998765000", "送信済", 3, 2)]
    assert [(m.kind, m.decision_label, m.reason_labels) for m in p.unreadable] == [("unknown", "保留", ["メール読取不可"])]
    assert [(h.mail.code, h.age) for h in p.stale_held] == [("910000001", 4)]  # held longer than 1 business day
    assert [(m.code, m.branch, m.decision_label) for m in data.late_withdrawals] == [("945600000", "梅田支店", "保留")]
    # This period's two failed connections (not Thursday afternoon's).
    assert p.alerts == ["メールボックスに接続できませんでした（2回、11月20日（金）9:12〜11月20日（金）9:40）。"]
    assert data.problem_count == 1 + 1 + 1 + 1 + 1

    t = data.today
    # Thursday 17:30's hold came before Thursday's digest (18:00): it was in that one.
    assert t.totals == counts(accept=13, remand=4, hold=4) and t.auto_replies == 2
    assert t.withdrawal_too_late == 1
    m = data.month
    # This week's holds, defers and accept and the 5th's remand join the month; October and the 24th do not.
    assert m.totals == counts(accept=14, remand=5, hold=7, defer=2) and m.total == 28 and m.auto_replies == 2
    assert [(r.code, r.count) for r in m.remand_reasons] == [
        ("CODE_MISSING", 2), ("ATTACHMENT_MISSING", 1), ("CODE_INVALID", 1), ("REGISTRATION_NOTICE_VIA_DRAGON", 1),
        ("UNIT_COUNT_MISSING", 1)]
    assert [(r.label, r.total) for r in m.branches][:4] == [("新宿支店", 5), ("渋谷支店", 5), ("横浜支店", 4),
                                                          ("梅田支店", 3)]

    text_lines = set(render(data).splitlines())
    assert "【警告】メールボックスに接続できませんでした（2回、11月20日（金）9:12〜11月20日（金）9:40）。" in text_lines
    assert "■ 未処理の保留 4件（古い順、経過は営業日）" in text_lines
    assert "  4営業日  11月16日（月）10:00〜  解約申請  910000001  渋谷支店  有効な契約なし" in text_lines
    assert "  長く保留中: 4営業日  11月16日（月）10:00〜  解約申請  910000001  渋谷支店  有効な契約なし" in text_lines
    assert "■ 問題・要対応 5件" in text_lines
    html = render_html(data, ROOT / "templates", None)
    assert "&lt;script&gt;alert(&#39;解約キャンセル&#39;)&lt;/script&gt;" in html and "<script" not in html


def test_accepted_terminations_unis_does_not_show_two_business_days_later(state):
    """DOMAIN.md §6: the digest lists accepted terminations whose code UNIS still shows without
    解約予定 or 解約 two business days after the acceptance (the branch's UNIS 解約処理 is missing);
    day N of a staff acceptance is the staff's; a termination withdrawn since is no longer listed."""
    settings = load(write_config(state))
    store = Store(settings.database)
    try:
        fields = json.dumps({"form": {"termination_date": "2026-12-31"}})
        with store.transaction() as db:
            # UNIS: 932104567 確定 (not registered) — accepted Tuesday: 3 business days by Friday.
            tuesday = add_mail(store, "2026-11-17T10:00:00+09:00", "termination", "accept", code="932104567",
                               branch="新宿支店", subject="USEN SPOT 解約申請_932104567")
            db.execute("UPDATE mails SET fields=? WHERE id=?", (fields, tuesday))
            # 998765432 確定, accepted Thursday: 1 business day, not yet.
            add_mail(store, "2026-11-19T10:00:00+09:00", "termination", "accept", code="998765432", branch="横浜支店")
            # Accepted after Wednesday's cutoff: day N Thursday, 1 business day, not yet.
            add_mail(store, "2026-11-18T17:30:00+09:00", "termination", "accept", code="955443322", branch="札幌支店")
            # Registered: 910987654 解約予定, 909876543 解約.
            add_mail(store, "2026-11-16T10:00:00+09:00", "termination", "accept", code="910987654", branch="渋谷支店")
            add_mail(store, "2026-11-16T10:00:00+09:00", "termination", "accept", code="909876543", branch="難波支店")
            # 944556677 確定: held Monday, accepted by staff Wednesday → 2 business days by Friday.
            held = add_mail(store, "2026-11-16T11:00:00+09:00", "termination", "accept", code="944556677",
                            branch="吉祥寺支店")
            db.execute("INSERT OR REPLACE INTO held (mail_id, note_id, original, opened_at, closed_at, outcome, decided_in)"
                       " VALUES (?,?,?,?,?,?,?)", (held, f"<held.{held}@test>", b"", "2026-11-16T02:00:05+00:00",
                                                   "2026-11-18T05:00:00+00:00", "accepted", "保留/受付"))
            # Remanded, or withdrawn (accepted withdrawal) since: never listed.
            add_mail(store, "2026-11-16T10:00:00+09:00", "termination", "remand", code="998765432", branch="横浜支店")
            add_mail(store, "2026-11-13T10:00:00+09:00", "termination", "accept", code="955443322", branch="札幌支店")
            add_mail(store, "2026-11-16T15:00:00+09:00", "termination_withdrawal", "accept", code="955443322",
                     branch="札幌支店")
            # Accepted long ago (beyond the lookback): no longer looked at.
            add_mail(store, "2026-08-03T10:00:00+09:00", "termination", "accept", code="932104567", branch="新宿支店")
        from mailbot.reports.digest import collect_for

        data = collect_for(settings, store, D, EVENING)
        listed = [(x.mail.code, x.accepted_on.isoformat(), x.age, x.termination_date) for x in data.unregistered_terminations]
        assert listed == [("932104567", "2026-11-17", 3, date(2026, 12, 31)), ("944556677", "2026-11-18", 2, None)]
        text = render(data)
        assert ("■ UNISに解約予定が未登録の解約申請 2件（受付から2営業日以上。支店のUNIS解約処理（予定登録）を確認してください）"
                in text)
        assert "  3営業日  11月17日（火）受付  932104567  新宿支店  解約日 12月31日（木）" in text
        assert "  2営業日  11月18日（水）受付  944556677  吉祥寺支店  解約日 （不明）" in text
        html = render_html(data, ROOT / "templates", None)
        assert "UNISに解約予定が未登録の解約申請 2件（受付から2営業日以上）" in html and "11月17日（火）" in html
        # The following Tuesday (Monday is a holiday) the Thursday ones are due as well.
        later = collect_for(settings, store, date(2026, 11, 24), datetime(2026, 11, 24, 18, 30, tzinfo=TOKYO))
        assert [(x.mail.code, x.age) for x in later.unregistered_terminations] == [
            ("932104567", 4), ("944556677", 3), ("955443322", 2), ("998765432", 2)]
        # Without an extract nothing can be said.
        assert collect_for(replace(settings, unis_extract=None), store, D, EVENING).unregistered_terminations == []
    finally:
        store.close()


def test_unis_extract_alerts(state):
    settings = load(write_config(state))
    store = Store(settings.database)
    try:
        extract = extract_status(settings)  # the morning's extract, taken Friday 06:00
        assert extract.extracted_at == datetime(2026, 11, 20, 6, 0, tzinfo=TOKYO) and extract.error is None
        tuesday = datetime(2026, 11, 24, 18, 30, tzinfo=TOKYO)
        # Tuesday is one business day after Friday (Monday is a holiday): not old yet.
        assert collect_at(store, date(2026, 11, 24), tuesday, extract).problems.alerts == []
        assert collect_at(store, date(2026, 11, 25), tuesday + timedelta(days=1), extract).problems.alerts == [
            "UNISの抽出データが古くなっています（抽出日時 11月20日（金）6:00、2営業日前）。新しい抽出ファイルを確認してください。"]
        # Configured, but nothing could ever be imported.
        missing = load(write_config(state, extract="nowhere/orders.csv"))
        (state / "state.sqlite3.unis.sqlite3").unlink()
        status = extract_status(missing)
        assert status.configured and status.extracted_at is None
        alerts = collect_at(store, D, EVENING, status).problems.alerts
        assert len(alerts) == 1 and alerts[0].startswith("UNISの抽出データを取り込めていません。")
        assert "file not found" in alerts[0]
        # No extract configured: nothing to judge.
        assert extract_status(replace(settings, unis_extract=None)) == ExtractStatus(configured=False)
    finally:
        store.close()


def test_the_mail_is_html_with_a_chart_and_a_plain_text_alternative(state):
    # (one outside the company is refused when the configuration is read: tests/test_config.py)
    recipients = ["sv-team@usen.co.jp", "boss@tokyo.usen.co.jp", "SV-Team@usen.co.jp", "usen_spot@usen.co.jp"]
    settings = load(write_config(state, recipients=recipients))
    assert digest_recipients(settings) == ["sv-team@usen.co.jp", "boss@tokyo.usen.co.jp"]
    store = Store(settings.database)
    try:
        digest = build_digest(settings, store, D, EVENING)
    finally:
        store.close()
    msg = message_from_bytes(digest.message.as_bytes(), policy=policy.default)
    assert msg["Subject"] == "【USEN SPOT 日次レポート】2026年11月20日"
    assert msg["From"] == "usen_spot@usen.co.jp"
    assert msg["To"] == "sv-team@usen.co.jp, boss@tokyo.usen.co.jp"
    assert msg["Message-ID"] == digest.message_id == "<digest.20261120.mailbot@usen.co.jp>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "multipart/alternative"
    plain, related = msg.get_payload()
    assert plain.get_content_type() == "text/plain" and related.get_content_type() == "multipart/related"
    html_part, png_part = related.get_payload()
    assert html_part.get_content_type() == "text/html" and png_part.get_content_type() == "image/png"

    text = plain.get_content().replace("\r\n", "\n")
    assert text.startswith("USEN SPOT 日次レポート 2026年11月20日（金）\n")
    for line in ("■ 期間の受信 17件（受付 11 / 差戻 4 / 保留 2）　ほかに自動応答 2件（件数に含めず）",
                 "  器材発注依頼: 8件（受付 5 / 差戻 3）",
                 "  1. PDF添付なし 1件 — 必要なPDFが添付されていません。",
                 "  渋谷支店: 2件（受付 2）差戻率 0%",
                 "  梅田支店: 2件（受付 1 / 差戻 1）差戻率 50%　主な差戻理由：顧客コードなし",
                 "  11月13日〜11月20日: 17件（受付 11 / 差戻 4 / 保留 2）差戻率 27%　自動応答 2件",
                 "■ 受注日後のキャンセル 1件"):
        assert line in text.splitlines(), line

    html = html_part.get_content()
    cid = png_part["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in html
    assert "class=" not in html and "<script" not in html.lower() and "<style" not in html.lower()
    assert "<table" in html and "器材発注依頼" in html and "保留中(UNIS待ち)" in html
    image = Image.open(BytesIO(png_part.get_content()))
    assert image.format == "PNG" and image.size == (760, 320)
    # No reason code reaches the reader: labels only (codes stay in logs and JSON).
    import re
    assert not re.search(r"\b[A-Z]+(?:_[A-Z]+)+\b", text + html), re.findall(r"\b[A-Z]+(?:_[A-Z]+)+\b", text + html)

    # Without the Japanese font the chart still draws (ASCII labels).
    ascii_chart = Image.open(BytesIO(chart_png(digest.data, font_path=Path("/nonexistent/font.ttf"))))
    assert ascii_chart.size == image.size


# ---------------------------------------------------------------- once per business day


def test_due_days_are_business_days_after_the_digest_time_back_to_the_first_mail(state):
    store = Store(state / "state.sqlite3")
    try:
        def due(now: datetime, **kw) -> list[str]:
            return [d.isoformat() for d in due_days(store, CALENDAR, now, daytime(18, 0), **kw)]

        assert due(datetime(2026, 11, 20, 17, 59, tzinfo=TOKYO)) == []  # before the digest time
        assert due(EVENING) == ["2026-11-20"]
        # The weekend and Monday's holiday get none: on Monday evening only Friday is due.
        assert due(datetime(2026, 11, 23, 23, 0, tzinfo=TOKYO)) == ["2026-11-20"]
        assert due(datetime(2026, 11, 24, 18, 0, tzinfo=TOKYO)) == ["2026-11-20", "2026-11-24"]
        # Never before the first mail (a fresh install sends no backlog), never more than the cap back.
        assert due(datetime(2026, 12, 4, 18, 0, tzinfo=TOKYO))[:1] == ["2026-11-24"]
        assert due(datetime(2026, 11, 24, 18, 0, tzinfo=TOKYO), catch_up_days=2) == ["2026-11-24"]
        store.db.execute("INSERT INTO digests (day, message_id, state, data, created_at)"
                         " VALUES ('2026-11-20', '<x>', 'sent', x'', 't')")
        assert due(datetime(2026, 11, 24, 18, 0, tzinfo=TOKYO)) == ["2026-11-24"]
        store.db.execute("DELETE FROM mails")
        assert due(datetime(2026, 11, 24, 18, 0, tzinfo=TOKYO)) == []
    finally:
        store.close()


RESTART = """
import sys
from datetime import datetime
from mailbot.config import load
from mailbot.reports.digest import send_due_digests
from mailbot.reply.send import SmtpTransport
from mailbot.record.store import Store

if __name__ == "__main__":
    settings = load(sys.argv[1])
    store = Store(settings.database)
    results = send_due_digests(settings, store, SmtpTransport(settings.smtp), datetime.fromisoformat(sys.argv[2]))
    print(" ".join(f"{r.day}:{r.state}" for r in results))
"""


def restart(config: Path, now: datetime) -> str:
    result = subprocess.run([sys.executable, "-c", RESTART, str(config), now.isoformat()], capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_each_business_day_is_sent_once_a_missed_day_late_and_never_again(state, smtp_sink):
    config = write_config(state, smtp_sink, recipients=["sv-team@usen.co.jp"])
    with sending(config) as (settings, store, transport):
        # Friday's digest was missed (the bot was down that evening): on Tuesday evening it comes
        # late, with Tuesday's own; the weekend and Monday's holiday get none.
        tuesday = datetime(2026, 11, 24, 18, 5, tzinfo=TOKYO)
        results = send_due_digests(settings, store, transport, tuesday)
        assert [(r.day.isoformat(), r.state) for r in results] == [("2026-11-20", "sent"), ("2026-11-24", "sent")]
        sent = smtp_sink.wait_for(2)
        assert [m["Message-ID"] for m in sent] == ["<digest.20261120.mailbot@usen.co.jp>",
                                                   "<digest.20261124.mailbot@usen.co.jp>"]
        assert [m["Subject"] for m in sent] == ["【USEN SPOT 日次レポート】2026年11月20日",
                                                "【USEN SPOT 日次レポート】2026年11月24日"]
        assert all(m.rcpt_tos == ["sv-team@usen.co.jp"] for m in sent)
        assert send_due_digests(settings, store, transport, tuesday + timedelta(minutes=5)) == []
        rows = store.db.execute("SELECT day, state, attempts FROM digests ORDER BY day").fetchall()
        assert [tuple(r) for r in rows] == [("2026-11-20", "sent", 1), ("2026-11-24", "sent", 1)]
    # A restart (a new process) sends nothing more; Wednesday evening, only Wednesday's.
    assert restart(config, datetime(2026, 11, 24, 23, 0, tzinfo=TOKYO)) == ""
    assert restart(config, datetime(2026, 11, 25, 18, 0, tzinfo=TOKYO)) == "2026-11-25:sent"
    assert restart(config, datetime(2026, 11, 25, 18, 1, tzinfo=TOKYO)) == ""
    time.sleep(0.2)
    assert len(smtp_sink.messages()) == 3


def test_a_failed_send_is_retried_with_the_same_message_and_a_permanent_failure_waits(state, smtp_sink):
    with sending(write_config(state, smtp_sink)) as (settings, store, transport):
        smtp_sink.set_mode("tempfail")
        assert [r.state for r in send_due_digests(settings, store, transport, EVENING)] == ["queued"]
        stored = store.db.execute("SELECT data FROM digests WHERE day='2026-11-20'").fetchone()[0]
        smtp_sink.set_mode("accept")
        later = EVENING + timedelta(minutes=10)
        assert [r.state for r in send_due_digests(settings, store, transport, later)] == ["sent"]
        (got,) = smtp_sink.wait_for(1)
        # Sent as built the first time (same Message-ID, same Date), not built again.
        first = message_from_bytes(bytes(stored), policy=policy.default)
        assert got["Message-ID"] == first["Message-ID"] == "<digest.20261120.mailbot@usen.co.jp>"
        assert got["Date"] == first["Date"] == format_datetime(EVENING)
        assert got.raw == bytes(stored)  # byte for byte: the queued mail goes out as stored
        assert tuple(store.db.execute("SELECT state, attempts FROM digests").fetchone()) == ("sent", 2)

        smtp_sink.set_mode("permfail")
        monday = datetime(2026, 11, 24, 18, 0, tzinfo=TOKYO)
        assert [r.state for r in send_due_digests(settings, store, transport, monday)] == ["failed"]
        smtp_sink.set_mode("accept")
        # Not retried automatically (it needs a person); `digest --send` would.
        assert [r.state for r in send_due_digests(settings, store, transport, monday)] == ["skipped"]
        assert len(smtp_sink.messages()) == 1
        events = [r[0] for r in store.db.execute("SELECT event FROM events WHERE event LIKE 'digest %' ORDER BY id")]
        assert events == ["digest retry", "digest sent", "digest failed"]


def test_no_recipients_no_digest(state, smtp_sink):
    settings = load(write_config(state, smtp_sink, recipients=[]))
    store = Store(settings.database)
    try:
        assert send_due_digests(settings, store, SmtpTransport(settings.smtp), EVENING) == []
        assert store.db.execute("SELECT COUNT(*) FROM digests").fetchone()[0] == 0
    finally:
        store.close()
    # A recipient outside the company is refused when the configuration is read (issue 20)
    from mailbot.config import ConfigError
    with pytest.raises(ConfigError, match=r"digest.recipients\[0\]: 'a@gmail.com' is outside policy.internal_domains"):
        load(write_config(state, smtp_sink, recipients=["a@gmail.com"]))
    assert smtp_sink.messages() == []


# ---------------------------------------------------------------- the commands


def mailbot(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailbot", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


def test_digest_command_prints_and_sends_once(state, smtp_sink):
    config = str(write_config(state, smtp_sink))
    printed = mailbot("digest", "--config", config, "--date", "2026-11-20")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("USEN SPOT 日次レポート 2026年11月20日（金）\n")
    assert "■ 期間の受信 17件（受付 11 / 差戻 4 / 保留 2）　ほかに自動応答 2件（件数に含めず）" in printed.stdout.splitlines()
    assert smtp_sink.messages() == []

    for bad in ("2026-11-31", "20261120", "yesterday"):
        result = mailbot("digest", "--config", config, "--date", bad)
        assert result.returncode == 2 and result.stderr == f"mailbot: --date: {bad!r} is not a date YYYY-MM-DD\n"
    # The latest Saturday and business day up to today (whatever today is where the test runs).
    today = datetime.now(TOKYO).date()
    saturday = today - timedelta(days=(today.weekday() - 5) % 7)
    result = mailbot("digest", "--config", config, "--date", saturday.isoformat(), "--send")
    assert result.returncode == 0 and "not a business day (土曜日)" in result.stdout

    day = today
    while not CALENDAR.is_business_day(day):
        day -= timedelta(days=1)
    first = mailbot("digest", "--config", config, "--date", day.isoformat(), "--send")
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"The digest of {day} was sent (<digest.{day:%Y%m%d}.mailbot@usen.co.jp>).\n"
    (got,) = smtp_sink.wait_for(1)
    assert got.rcpt_tos == ["sv-team@usen.co.jp"]
    again = mailbot("digest", "--config", config, "--date", day.isoformat(), "--send")
    assert again.returncode == 0 and "was already sent" in again.stdout and "not sent again" in again.stdout
    time.sleep(0.2)
    assert len(smtp_sink.messages()) == 1


def test_history_of_a_customer_code(state):
    config = str(write_config(state))
    result = mailbot("history", "--config", config, "921098765")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # Japanese for staff: headings, kinds, decisions, reasons, events, reply states.
    assert lines[0] == "顧客コード 921098765：メール 1件"
    assert lines[2].split() == ["No.", "受信日時", "種別", "判定", "理由", "支店", "差出人", "件名"]
    number, *rest = lines[4].split()  # the mail's number depends on the order mails were decided in
    assert number.isdigit() and rest == ["11月20日（金）7:24", "キャンセル申請", "受付", "受注日後のキャンセル",
                                         "吉祥寺支店", "k-ishii@usen.co.jp", "USEN", "SPOT", "キャンセル申請_921098765"]
    assert lines[6].split() == ["日時", "No.", "記録", "詳細"]
    events = [line.split()[1:3] for line in lines[8:lines.index("", 8)]]
    assert events[:3] == [[number, "受信"], [number, "判定：受付"], [number, "返信を作成"]]
    assert any("送信済" in line and "<accept." in line for line in lines)
    assert lines[lines.index("", 8) + 1].split()[:4] == ["No.", "返信", "状態", "送信回数"]

    as_json = json.loads(mailbot("history", "--config", config, "--json", "944556677").stdout)
    (mail,) = as_json["mails"]
    assert (mail["kind"], mail["decision"], mail["reasons"], mail["sender"]) == (
        "cancellation", "hold", ["SENDER_NOT_ALLOWED"], "ken.ishii.0815@gmail.com")
    assert mail["received"] == "2026-11-20T08:12:25+09:00" and mail["replies"] == []
    assert [e["event"] for e in mail["events"]][:2] == ["received", "decided hold"]

    for bad in ("92109876", "abcdefghi", "9210987650"):
        result = mailbot("history", "--config", config, bad)
        assert result.returncode == 2 and result.stderr == f"mailbot: {bad!r} is not a customer code (9 digits)\n"
    assert mailbot("history", "--config", config, "１２３４５６７８９").stdout == "顧客コード 123456789 のメールはありません。\n"


def test_run_sends_the_due_digests_once_across_a_restart(state, smtp_sink):
    """`mailbot run` with the real clock: the mails as if first seen nine days ago, digest time 00:00."""
    store = Store(state / "state.sqlite3")
    first = (datetime.now(TOKYO) - timedelta(days=9)).replace(hour=12)
    store.db.execute("UPDATE mails SET first_seen=?", (first.isoformat(),))
    expected = len(due_days(store, CALENDAR, datetime.now(TOKYO), daytime(0, 0)))
    store.close()
    assert expected >= 1
    config = write_config(state, smtp_sink, time_="00:00", poll_interval=1)

    def run_until(count: int, timeout: float) -> None:
        with running_bot(config):
            smtp_sink.wait_for(count, timeout=timeout)
            time.sleep(1.5)  # another cycle or two

    run_until(expected, timeout=30)
    assert len(smtp_sink.messages()) == expected
    run_until(expected + 1, timeout=3)  # waits in vain: nothing more is sent
    assert len(smtp_sink.messages()) == expected


def test_each_mail_is_in_exactly_one_digest_across_a_weekend_and_a_holiday(state):
    """A digest covers the period since the previous one (digest time 18:00): mail after Friday's
    digest, on Saturday, Sunday and the holiday Monday 11-23 is in Tuesday 11-24's; mail after
    Tuesday's in Wednesday's."""
    store = Store(state / "state.sqlite3")
    try:
        def digest_of(day: date) -> set[int]:
            data = collect_at(store, day, datetime.combine(day, datetime.min.time(), tzinfo=TOKYO) + timedelta(days=3))
            return {m.id for m in StateReader(store, ROOT / "rules").decided(data.start, data.end)}

        friday_before = digest_of(D)
        added = {received: add_mail(store, received, "contract_change", "accept", code="932104567")
                 for received in ("2026-11-20T17:59:00+09:00", "2026-11-20T18:00:00+09:00", "2026-11-20T20:30:00+09:00",
                                  "2026-11-21T10:00:00+09:00", "2026-11-22T23:59:00+09:00", "2026-11-23T09:00:00+09:00",
                                  "2026-11-24T17:59:59+09:00", "2026-11-24T18:00:00+09:00", "2026-11-25T07:00:00+09:00")}
        digests = {day: digest_of(day) for day in (D, date(2026, 11, 24), date(2026, 11, 25))}
        where = {received: [day.isoformat() for day, ids in digests.items() if mail_id in ids]
                 for received, mail_id in added.items()}
        assert where == {
            "2026-11-20T17:59:00+09:00": ["2026-11-20"],
            "2026-11-20T18:00:00+09:00": ["2026-11-24"], "2026-11-20T20:30:00+09:00": ["2026-11-24"],
            "2026-11-21T10:00:00+09:00": ["2026-11-24"], "2026-11-22T23:59:00+09:00": ["2026-11-24"],
            "2026-11-23T09:00:00+09:00": ["2026-11-24"], "2026-11-24T17:59:59+09:00": ["2026-11-24"],
            "2026-11-24T18:00:00+09:00": ["2026-11-25"], "2026-11-25T07:00:00+09:00": ["2026-11-25"]}
        assert digests[D] == friday_before | {added["2026-11-20T17:59:00+09:00"]}
        tuesday = collect_at(store, date(2026, 11, 24), datetime(2026, 11, 24, 18, 30, tzinfo=TOKYO))
        assert (tuesday.start, tuesday.end) == (datetime(2026, 11, 20, 18, 0, tzinfo=TOKYO),
                                                datetime(2026, 11, 24, 18, 0, tzinfo=TOKYO))
        assert tuesday.today.total == 6
        assert "対象: 11月20日（金）18:00〜11月24日（火）18:00（前回のレポート以降）" in render(tuesday)
        # Printed before the digest time, the period ends now.
        noon = collect_at(store, date(2026, 11, 25), datetime(2026, 11, 25, 12, 0, tzinfo=TOKYO))
        assert noon.end == datetime(2026, 11, 25, 12, 0, tzinfo=TOKYO) and noon.today.total == 2
    finally:
        store.close()


def test_two_senders_on_the_same_day_send_one_digest(state, smtp_sink):
    """`mailbot run` and `mailbot digest --send` meeting on one day: the one that claims the day
    sends; the other leaves it.  A claim left by a crash is taken over after a while."""
    from mailbot.reports.digest import send_digest

    settings = load(write_config(state, smtp_sink))
    transport = SmtpTransport(settings.smtp)
    store = Store(settings.database)
    friday = date(2026, 11, 20)
    evening = datetime(2026, 11, 20, 18, 5, tzinfo=TOKYO)
    try:
        message = build_digest(settings, store, friday, evening).message
        store.db.execute("INSERT INTO digests (day, message_id, state, data, created_at, claimed_at)"
                         " VALUES (?,?,'sending',?,?,?)",
                         (friday.isoformat(), message["Message-ID"], message.as_bytes(),
                          datetime.now(timezone.utc).isoformat(), datetime.now(timezone.utc).isoformat()))
        # another process is sending it right now
        assert send_digest(settings, store, transport, friday, evening).state == "being sent elsewhere"
        assert smtp_sink.messages() == []
        # …or it crashed 20 minutes ago: taken over, sent once
        store.db.execute("UPDATE digests SET claimed_at=?",
                         ((datetime.now(timezone.utc) - timedelta(minutes=20)).isoformat(),))
        assert send_digest(settings, store, transport, friday, evening).state == "sent"
        assert send_digest(settings, store, transport, friday, evening).state == "already sent"
        assert len(smtp_sink.wait_for(1)) == 1
    finally:
        store.close()


def postfix_bounce(reply: bytes, rcpt: str, action: str = "failed", status: str = "5.1.1") -> bytes:
    """What the company's Postfix sends back when a reply of the bot cannot be delivered (RFC 3464:
    the notification, the delivery status, the returned message's headers)."""
    headers = reply.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].replace(b"\n", b"\r\n")
    boundary = "4GmQ3x1Jz9z3xyz.1763600000/mx01.usen.co.jp"
    return (
        "Return-Path: <>\r\nDelivered-To: usen_spot@usen.co.jp\r\n"
        "Received: by mx01.usen.co.jp (Postfix)\r\n\tid 4GmQ3x1Jz9z3xyz; Fri, 20 Nov 2026 12:05:02 +0900 (JST)\r\n"
        "Date: Fri, 20 Nov 2026 12:05:02 +0900 (JST)\r\n"
        "From: MAILER-DAEMON@mx01.usen.co.jp (Mail Delivery System)\r\n"
        + ("Subject: Undelivered Mail Returned to Sender\r\n" if action == "failed"
           else "Subject: Delayed Mail (still being retried)\r\n")
        + "To: usen_spot@usen.co.jp\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"\r\n'
        "Content-Transfer-Encoding: 8bit\r\nMessage-Id: <20261120030502.4GmQ3x1Jz9z3xyz@mx01.usen.co.jp>\r\n\r\n"
        "This is a MIME-encapsulated message.\r\n\r\n"
        f"--{boundary}\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "This is the mail system at host mx01.usen.co.jp.\r\n\r\n"
        f"<{rcpt}>: host mbox01.usen.co.jp[10.20.1.21] said: 550 5.1.1 <{rcpt}>:\r\n"
        "    Recipient address rejected: User unknown in local recipient table\r\n\r\n"
        f"--{boundary}\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx01.usen.co.jp\r\nX-Postfix-Queue-ID: 4GmQ3x1Jz9z3xyz\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected\r\n\r\n"
        f"--{boundary}\r\nContent-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode() + headers + f"\r\n\r\n--{boundary}--\r\n".encode()


def test_a_bounce_of_a_reply_is_held_and_a_problem_not_traffic(tmp_path):
    """The branch never got its acceptance (the address left the company): the bounce names the
    reply by its Message-ID; it is held for staff (never answered), recorded on the order it
    answered, and shown in the digest's problems; a delay notice or a bounce of someone else's
    mail stays an automatic reply."""
    sample_extract(tmp_path)
    sample_directory(tmp_path)
    settings = load(write_config(tmp_path))
    samples = dict(sample_mails(NOW))
    with local_bot(settings) as (bot, mailbox, store):
        mailbox.append("INBOX", samples["order_shibuya"], internaldate=datetime(2026, 11, 20, 9, 0, tzinfo=TOKYO))
        bot.poll()
        (reply,) = [p.read_bytes() for p in (settings.outbox / "new").iterdir()]
        for data in (postfix_bounce(reply, "i-suzuki@usen.co.jp"),
                     postfix_bounce(reply, "i-suzuki@usen.co.jp", action="delayed", status="4.4.1"),
                     samples["bounce"]):  # a bounce of a mail this bot never sent
            mailbox.append("INBOX", data, internaldate=datetime(2026, 11, 20, 12, 5, tzinfo=TOKYO))
        report = bot.poll()
        assert [(e.decision.action.value, e.decision.reasons) for _, e, _ in report.handled] == [
            ("hold", ["REPLY_BOUNCED"]), ("ignore", ["AUTO_REPLY"]), ("ignore", ["AUTO_REPLY"])]
        assert len(list((settings.outbox / "new").iterdir())) == 1  # nothing answered
        order = store.mail_rows_with_code("988776654")[0]["id"]
        (bounced,) = [e for e in store.events(order) if e[1] == "reply bounced"]
        assert bounced[2].startswith("<") and bounced[2].endswith("5.1.1")
        data = collect_at(store, D, EVENING)
        assert [(b.mail.code, b.mail.kind_label, b.mail.branch) for b in data.problems.bounced] == [
            ("988776654", "器材発注依頼", "渋谷支店")]
        # Traffic: the order; the bounce is no request, the delay notices are automatic replies.
        assert data.today.total == 1 and data.today.auto_replies == 2
        text = render(data)
        assert ("  返信の不達: 11月20日（金）12:05  器材発注依頼 988776654  渋谷支店  <i-suzuki@usen.co.jp>  "
                "支店に回答が届いていません。電話等で連絡してください。") in text.splitlines()
        # Staff find it in the held folder with what to do.
        assert [m.reasons for m, _ in store.open_held_items()] == [["REPLY_BOUNCED"]]
        note = next(r for r in mailbox.fetch(settings.folders.held, mailbox.list_uids(settings.folders.held)))
        assert "電話などで支店へ判定結果を連絡してください" in message_from_bytes(note.data, policy=policy.default) \
            .get_body(("plain",)).get_content()


def test_staff_outcomes_resubmissions_processing_failures_and_deadlines(state):
    """What staff decided (and how long it took), remands the branches fixed, mails the bot could
    not process, and a termination withdrawal that is too late tomorrow (DOMAIN.md §5: 3 business
    days before 解約日; 12-29 … 01-03 closed)."""
    settings = load(write_config(state))
    store = Store(settings.database)
    try:
        # Staff: a hold of Thursday morning accepted Friday at 11:00; one handled by a person.
        accepted = add_mail(store, "2026-11-19T10:00:00+09:00", "equipment_order", "accept", ["SHOP_MISMATCH"],
                            code="988776629", branch="渋谷支店")
        handled = add_mail(store, "2026-11-20T09:00:00+09:00", "unknown", "hold", ["UNKNOWN_SUBJECT"])
        for mail_id, opened, closed, outcome, folder in (
                (accepted, "2026-11-19T01:00:05+00:00", "2026-11-20T02:00:05+00:00", "accepted", "保留/受付"),
                (handled, "2026-11-20T00:00:05+00:00", "2026-11-20T00:30:05+00:00", "handled", "処理済")):
            store.db.execute("INSERT INTO held (mail_id, note_id, original, opened_at, closed_at, outcome, decided_in)"
                             " VALUES (?,?,?,?,?,?,?)", (mail_id, f"<held.{mail_id}@test>", b"", opened, closed,
                                                          outcome, folder))
        # The morning's resubmitted order (976543210) was remanded on Wednesday for its missing form.
        add_mail(store, "2026-11-18T15:00:00+09:00", "equipment_order", "remand", ["ATTACHMENT_MISSING"],
                 code="976543210", branch="新宿支店")
        # Processing failed twice on one mail (retried), and another was held after three failures.
        retried = add_mail(store, "2026-11-20T13:00:00+09:00", "contract_change", "accept", code="932104567",
                           branch="新宿支店")
        for at in ("2026-11-20T04:00:01+00:00", "2026-11-20T04:01:01+00:00"):
            event(store, retried, at, "processing failed", "ValueError: bad form")
        add_mail(store, "2026-11-20T14:00:00+09:00", "unknown", "hold", ["PROCESSING_FAILED"])
        # A withdrawal waiting for staff since Tuesday 12-22; 解約日 12-31 → too late from 12-24 17:00.
        late = add_mail(store, "2026-12-22T10:00:00+09:00", "termination_withdrawal", "hold", ["NOT_TERMINATING"],
                        code="945612378", branch="梅田支店")
        store.db.execute("INSERT INTO held (mail_id, note_id, original, opened_at) VALUES (?,?,?,?)",
                         (late, f"<held.{late}@test>", b"", "2026-12-22T01:00:05+00:00"))
        from mailbot.reports.digest import collect_for

        friday = collect_for(settings, store, D, EVENING)
        wednesday = collect_for(settings, store, date(2026, 12, 23), datetime(2026, 12, 23, 18, 30, tzinfo=TOKYO))
    finally:
        store.close()

    assert [(s.mail.code, s.outcome_label, s.folder, round(s.hours, 1), s.business_days) for s in friday.staff] == [
        ("988776629", "受付", "保留/受付", 25.0, 1), (None, "処理済（返信なし）", "処理済", 0.5, 0)]
    assert friday.staff_counts == [("受付", 1), ("処理済（返信なし）", 1)]
    assert [(r.mail.code, r.remanded_at.strftime("%m-%d"), r.business_days, r.reasons) for r in friday.resubmissions] \
        == [("976543210", "11-18", 2, ["PDF添付なし"])]
    assert [(p.mail.kind, p.failures, p.last_error) for p in friday.problems.processing] == [
        ("contract_change", 2, "ValueError: bad form"), ("unknown", 0, "")]
    assert friday.problems.deadlines == []
    (deadline,) = wednesday.problems.deadlines
    assert (deadline.mail.code, deadline.termination_date, deadline.deadline) == (
        "945612378", date(2026, 12, 31), datetime(2026, 12, 24, 17, 0, tzinfo=TOKYO))
    text = render(wednesday).splitlines()
    assert ("  期限間近の解約キャンセル: 945612378  梅田支店  解約日 12月31日（木）、期限 12月24日（木）17:00まで（保留）"
            in text)
    friday_text = render(friday).splitlines()
    assert "■ 担当者の判断 2件（受付 1 / 処理済（返信なし） 1）" in friday_text
    assert ("  器材発注依頼  976543210  新宿支店  差戻 11月18日（水） → 受付 11月20日（金）（2営業日）  差戻理由：PDF添付なし"
            in friday_text)


def test_every_time_people_read_is_japan_time_in_the_japanese_form(state):
    """Digest (text and HTML), `held` and `history`: 12月4日（金）9:34, never 2026-12-04T00:34 or
    11/20 10:00 (issue 20)."""
    import re

    from mailbot.reports.digest import render_html

    iso_or_slashed = re.compile(r"\d{4}-\d{2}-\d{2}|\b\d{1,2}/\d{1,2}\b|\d{2}:\d{2}:\d{2}")
    store = Store(state / "state.sqlite3")
    try:
        data = collect_at(store, D, EVENING)
    finally:
        store.close()
    text, html = render(data), render_html(data, ROOT / "templates", "cid:chart")
    html_text = re.sub(r"<[^>]+>", " ", re.sub(r"<style.*?</style>|style=\"[^\"]*\"", "", html, flags=re.S))
    config = str(write_config(state))
    held = mailbot("held", "--config", config)
    history = mailbot("history", "--config", config, "921098765")
    for name, shown in (("digest", text), ("digest.html", html_text), ("held", held.stdout),
                        ("history", history.stdout)):
        found = [m for m in iso_or_slashed.findall(shown)]
        assert found == [], (name, found)
        assert re.search(r"\d{1,2}月\d{1,2}日（[月火水木金土日]）\d{1,2}:\d{2}", shown), name

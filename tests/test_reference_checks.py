"""The checks against reference data (DOMAIN.md §4, §7): branch directory, UNIS extract, calendar."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from helpers import RULES, TOKYO, mail
from test_branches import CSV as DIRECTORY_CSV
from test_loop import EXPECTED, NOW
from test_unis import LINES, write

from demo import samples
from demo.samples import BRANCHES, sample_mails
from mailbot.checks import CheckContext, run_checks
from mailbot.checks import reference as ref_checks
from mailbot.classify import classify
from mailbot.config import embedded_default
from mailbot.decide import decide
from mailbot.model import Action, Request
from mailbot.pipeline import evaluate
from mailbot.reference.branches import BranchDirectory
from mailbot.reference.data import ReferenceData
from mailbot.reference.unis import UnisData

CHECKS = [ref_checks.corporate_case, ref_checks.branch_known, ref_checks.manager_in_cc,
          ref_checks.unis_order_found, ref_checks.active_contract, ref_checks.withdrawal_possible]
EXTRACTED = "2026/11/20 06:00:00"
RECEIVED = datetime(2026, 11, 20, 10, 0, tzinfo=TOKYO)


def extract(tmp_path: Path, extracted: str = EXTRACTED, rows=LINES, name: str = "orders.csv") -> UnisData:
    csv_path = write(tmp_path / name, rows, encoding="cp932", extracted=extracted)
    return UnisData.open(csv_path, tmp_path / f"{name}.sqlite3", RULES)


@pytest.fixture
def unis(tmp_path):
    data = extract(tmp_path)
    yield data
    data.close()


@pytest.fixture
def branches(tmp_path):
    path = tmp_path / "branches.csv"
    path.write_bytes(DIRECTORY_CSV.replace("\n", "\r\n").encode("cp932"))
    return BranchDirectory.load(path)


def findings(subject: str, unis, branches, *, sender: str = "i-suzuki@usen.co.jp",
             cc: tuple[str, ...] = ("m-tanaka@usen.co.jp",), items: dict[str, str] | None = None,
             received: datetime = RECEIVED):
    request = Request(mail=mail(subject, sender=sender, cc=cc), classification=classify(subject, RULES),
                      received=received, body_items=items or {})
    ctx = CheckContext(rules_dir=RULES, internal_domains=("usen.co.jp",), own_addresses=(), now=received,
                       unis=unis, branches=branches)
    found = run_checks(request, ctx, CHECKS)
    return found, decide(found, RULES)


def codes(found) -> set[str]:
    return {f.code for f in found}


ORDER = "USEN SPOT 器材発注依頼_{}"


@pytest.mark.parametrize("subject, kwargs, expected, action", [
    # clean: a Shibuya order known to UNIS, the manager in CC
    (ORDER.format("988776654"), {}, set(), Action.ACCEPT),
    ("USEN SPOT 契約変更_123456789", {}, set(), Action.ACCEPT),
    ("USEN SPOT 解約申請_555000111", {}, set(), Action.ACCEPT),
    # corporate sales: held, and no order lookup (777000333 has none)
    (ORDER.format("777000333"), {"sender": "c-corp@usen.co.jp", "cc": ("h-houjin@usen.co.jp",)},
     {"CORPORATE_CASE"}, Action.HOLD),
    # the body's 送付支店名 decides the branch, and it is not in the directory
    (ORDER.format("988776654"), {"items": {"sending_branch": "札幌支店"}}, {"BRANCH_UNKNOWN"}, Action.HOLD),
    # the body names a known branch whose manager is not in CC
    (ORDER.format("988776654"), {"items": {"sending_branch": "新宿支店"}}, {"CC_MANAGER_MISSING"}, Action.REMAND),
    (ORDER.format("988776654"), {"cc": ()}, {"CC_MANAGER_MISSING"}, Action.REMAND),
    # a sender in no branch: the UNIS 管轄支店名 (新宿支店) decides
    ("USEN SPOT 契約変更_123456789", {"sender": "x-nobody@usen.co.jp", "cc": ("k-ito@usen.co.jp",)},
     set(), Action.ACCEPT),
    ("USEN SPOT 解約申請_777000333", {}, {"NO_ACTIVE_CONTRACT"}, Action.HOLD),  # cancelled only
    ("USEN SPOT 移設依頼_888000444", {}, {"NO_ACTIVE_CONTRACT"}, Action.HOLD),  # terminated only
    ("USEN SPOT 契約変更_999999999", {}, {"NO_ACTIVE_CONTRACT"}, Action.HOLD),  # unknown code
    ("USEN SPOT 解約キャンセル依頼_988776654", {}, {"NOT_TERMINATING"}, Action.HOLD),
    # no code or an invalid code: no UNIS check at all
    ("USEN SPOT 器材発注依頼_98877665", {}, set(), Action.ACCEPT),
    ("USEN SPOT 器材発注依頼", {}, set(), Action.ACCEPT),
])
def test_reason_codes_and_decisions(unis, branches, subject, kwargs, expected, action):
    found, decision = findings(subject, unis, branches, **kwargs)
    assert codes(found) == expected
    assert decision.action is action


def test_several_findings_together(unis, branches):
    found, decision = findings("USEN SPOT 解約申請_777000333", unis, branches, cc=(),
                               items={"sending_branch": "横浜"})
    assert codes(found) == {"CC_MANAGER_MISSING", "NO_ACTIVE_CONTRACT"}
    assert decision.action is Action.REMAND


def test_order_not_found_is_deferred_when_the_extract_is_older_than_the_mail(tmp_path, branches):
    older = extract(tmp_path, "2026/11/20 06:00:00", name="older.csv")
    newer = extract(tmp_path, "2026/11/20 12:00:00", name="newer.csv")
    try:
        found, decision = findings(ORDER.format("777000333"), older, branches)
        assert codes(found) == {"UNIS_ORDER_NOT_FOUND"} and found[0].defer
        assert decision.action is Action.DEFER
        found, decision = findings(ORDER.format("777000333"), newer, branches)
        assert codes(found) == {"UNIS_ORDER_NOT_FOUND"} and not found[0].defer
        assert decision.action is Action.REMAND and decision.reasons == ["UNIS_ORDER_NOT_FOUND"]
        # A firm finding beside a deferred one: remanded now, for the firm reason only.
        found, decision = findings(ORDER.format("777000333"), older, branches, cc=())
        assert decision.action is Action.REMAND and decision.reasons == ["CC_MANAGER_MISSING"]
    finally:
        older.close()
        newer.close()


@pytest.mark.parametrize("received, expected", [
    (datetime(2026, 11, 24, 16, 59, tzinfo=TOKYO), set()),
    (datetime(2026, 11, 24, 17, 0, tzinfo=TOKYO), {"WITHDRAWAL_TOO_LATE"}),
    (datetime(2026, 11, 20, 18, 0, tzinfo=TOKYO), set()),
    (datetime(2026, 11, 25, 9, 0, tzinfo=TOKYO), {"WITHDRAWAL_TOO_LATE"}),
])
def test_withdrawal_deadline_worked_example(unis, branches, received, expected):
    # 555000111: 解約日 Friday 2026-11-27 (and 11-30 on the child line: the earliest counts);
    # Monday 11-23 is a holiday, so Tuesday 11-24 before 17:00 is the last moment.
    found, decision = findings("USEN SPOT 解約キャンセル依頼_555000111", unis, branches, received=received)
    assert codes(found) == expected
    assert decision.action is (Action.HOLD if expected else Action.ACCEPT)


def test_without_reference_data_the_checks_are_skipped():
    found, decision = findings(ORDER.format("777000333"), None, None, cc=())
    assert found == [] and decision.action is Action.ACCEPT


# ------------------------------------------------------------------ the sample morning, end to end


def sample_extract(tmp_path: Path, *, without: tuple[str, ...] = ()) -> Path:
    """The samples' own extract (every code they use), less the lines of `without`."""
    text = samples.sample_extract(NOW).decode("cp932")
    kept = [row for row in text.splitlines(keepends=True) if row.split(",", 1)[0] not in without]
    path = tmp_path / "usen_spot_orders.csv"
    path.write_bytes("".join(kept).encode("cp932"))
    return path


def sample_directory(tmp_path: Path) -> Path:
    path = tmp_path / "branches.csv"
    path.write_bytes(samples.sample_directory())
    return path


# With the morning's extract and directory: the reasons of each sample (none for the others).
SAMPLE_REASONS = {
    "auto_reply": ["AUTO_REPLY"], "bounce": ["AUTO_REPLY"], "outside_gmail": ["SENDER_NOT_ALLOWED"],
    "order_no_code": ["CODE_MISSING"], "order_8digit": ["CODE_INVALID"], "order_no_pdf": ["ATTACHMENT_MISSING"],
    "unknown_subject": ["UNKNOWN_SUBJECT"],
    "cancellation": ["CANCEL_AFTER_ORDER"],  # ordered four weekdays before: accepted, flagged
    "registration_notice": ["REGISTRATION_NOTICE_VIA_DRAGON"],  # never by mail: the procedure (seed 000)
}


def test_sample_morning_with_reference_data(tmp_path):
    settings = embedded_default(tmp_path / "root")
    reference = ReferenceData.load(settings, unis_extract=sample_extract(tmp_path),
                                   branch_directory=sample_directory(tmp_path),
                                   unis_db=tmp_path / "unis.sqlite3", strict=True)
    try:
        for name, data in sample_mails(NOW):
            e = evaluate(data, None, settings, reference=reference)
            assert e.decision.action.value == EXPECTED[name][0], (name, e.decision.reasons)
            assert e.decision.reasons == SAMPLE_REASONS.get(name, []), name
            assert e.data_version == reference.version
    finally:
        reference.close()


def test_check_command_with_extract_and_directory(tmp_path):
    mails = dict(sample_mails(NOW))
    files = []
    for name in ("order_shibuya", "contract_change"):
        path = tmp_path / f"{name}.eml"
        path.write_bytes(mails[name])
        files.append(str(path))
    unis = sample_extract(tmp_path, without=("988776654",))
    branches = sample_directory(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = subprocess.run([sys.executable, "-m", "mailbot", "check", "--json", "--unis", str(unis),
                             "--branches", str(branches), *files], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = {Path(o["file"]).stem: o for o in map(json.loads, result.stdout.splitlines())}
    # The order was received after the 06:00 extract: deferred until the next one.
    assert out["order_shibuya"]["decision"] == "defer"
    assert out["order_shibuya"]["reasons"] == ["UNIS_ORDER_NOT_FOUND"]
    assert out["contract_change"]["decision"] == "accept" and out["contract_change"]["reasons"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no side effects

    bad = tmp_path / "bad.csv"
    bad.write_text("支店名,支店長メール,所属メール,法人営業\n渋谷支店,not-an-address,,\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "mailbot", "check", "--branches", str(bad), files[0]],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "bad.csv: row 2, column 支店長メール" in result.stderr


# ------------------------------------------------------------------ the poll cycle: deferral and data_version


@contextmanager
def order_not_in_the_extract(tmp_path):
    """A bot on a local Maildir holding the sample order, whose line the UNIS extract lacks:
    (bot, settings, mailbox, store, the extract's path)."""
    from mailbot.config import from_dict
    from mailbot.mailbox.maildir import MaildirMailbox
    from mailbot.pipeline import Bot
    from mailbot.record.store import Store
    from mailbot.reply.send import MaildirOutbox

    csv_path = sample_extract(tmp_path, without=("988776654",))
    settings = from_dict({"maildir": {"path": "mailbox"}, "outbox": {"path": "outbox"},
                          "state": {"database": "state.sqlite3"}, "unis": {"extract": str(csv_path)},
                          "branches": {"directory": str(sample_directory(tmp_path))}}, base=tmp_path)
    mailbox = MaildirMailbox(settings.maildir)
    mailbox.append("INBOX", dict(sample_mails(NOW))["order_shibuya"], NOW)
    store = Store(settings.database)
    bot = Bot(settings, mailbox, MaildirOutbox(settings.outbox), store)
    try:
        yield bot, settings, mailbox, store, csv_path
    finally:
        if bot.reference is not None:
            bot.reference.close()
        mailbox.close()
        store.close()


def test_deferred_mail_is_checked_again_only_after_a_new_extract(tmp_path):
    with order_not_in_the_extract(tmp_path) as (bot, settings, mailbox, store, csv_path):
        report = bot.poll()
        assert [e.decision.action for _, e, _ in report.handled] == [Action.DEFER]
        first_version = bot.reference.version
        assert (tmp_path / "state.sqlite3.unis.sqlite3").exists()
        (row,) = store.unfinished("INBOX")
        assert row.action == "defer" and row.data_version == first_version and row.attempts == 1

        # Same extract: the deferred mail is not looked at again.
        assert bot.poll().handled == []
        assert store.get(row.id).attempts == 1 and mailbox.list_uids("INBOX")

        # The next day's extract has the order: checked again, accepted and filed.
        csv_path.write_bytes(samples.sample_extract(NOW + timedelta(days=1)))
        report = bot.poll()
        assert [e.decision.action for _, e, _ in report.handled] == [Action.ACCEPT]
        after = store.get(row.id)
        assert after.data_version == bot.reference.version != first_version
        assert mailbox.list_uids("INBOX") == [] and report.filed == 1


def test_a_deferred_mail_deleted_by_a_person_is_recorded_vanished_and_the_cycles_go_on(tmp_path):
    from mailbot.record.states import MailState

    with order_not_in_the_extract(tmp_path) as (bot, settings, _mailbox, store, _csv):
        assert [e.decision.action for _, e, _ in bot.poll().handled] == [Action.DEFER]
        for path in (settings.maildir / "cur").iterdir():  # a person deletes it in the mail client
            path.unlink()
        for path in (settings.maildir / "new").iterdir():
            path.unlink()
        for _ in range(3):  # seen missing at every cycle: no error, it stays vanished
            report = bot.poll()
            assert report.errors == [] and report.handled == []
        (row,) = store.unfinished("INBOX")
        assert row.state == MailState.VANISHED
        assert [e for _, e, _ in store.events(row.id)].count("left the inbox outside mailbot") == 3


def test_poll_keeps_going_with_a_bad_extract_and_logs_it(tmp_path, caplog):
    bad = tmp_path / "orders.csv"
    bad.write_bytes("顧客CD\n1\n".encode("cp932"))
    settings = embedded_default(tmp_path)
    from dataclasses import replace as dc_replace
    settings = dc_replace(settings, unis_extract=bad)
    reference = ReferenceData.load(settings)
    assert reference.unis is None and reference.version is None
    assert reference.errors and "orders.csv" in reference.errors[0]
    assert "orders.csv" in caplog.text


def test_refresh_keeps_the_last_good_extract_and_directory(tmp_path):
    settings = embedded_default(tmp_path / "root")
    csv_path, dir_path = sample_extract(tmp_path), sample_directory(tmp_path)
    reference = ReferenceData.load(settings, unis_extract=csv_path, branch_directory=dir_path)
    try:
        version, directory = reference.version, reference.branches
        assert version and reference.errors == [] and len(directory) == len(BRANCHES)
        csv_path.write_bytes("顧客CD,契約状態\n12,受注\n".encode("cp932"))
        dir_path.write_text("支店名\n渋谷\n", encoding="utf-8")
        reference.refresh()
        assert len(reference.errors) == 2
        assert reference.version == version and reference.branches is directory
        assert reference.unis.has_order("988776654")
    finally:
        reference.close()


def test_check_command_bad_extract_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "a.eml"
    path.write_bytes(dict(sample_mails(NOW))["order_shibuya"])
    bad = tmp_path / "orders.csv"
    bad.write_bytes("顧客CD,契約状態\n12,受注\n".encode("cp932"))
    result = subprocess.run([sys.executable, "-m", "mailbot", "check", "--unis", str(bad), str(path)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("mailbot: ") and "orders.csv" in result.stderr


def test_the_same_order_sent_again_is_held_as_a_duplicate_by_the_bot(tmp_path):
    """The store is the bot's history: a second, re-sent copy of an accepted order is held."""
    from mailbot.config import from_dict
    from mailbot.mailbox.maildir import MaildirMailbox
    from mailbot.pipeline import Bot
    from mailbot.record.store import Store
    from mailbot.reply.send import MaildirOutbox

    settings = from_dict({"maildir": {"path": "mailbox"}, "outbox": {"path": "outbox"},
                          "state": {"database": "state.sqlite3"},
                          "unis": {"extract": str(sample_extract(tmp_path))},
                          "branches": {"directory": str(sample_directory(tmp_path))}}, base=tmp_path)
    order = dict(sample_mails(NOW))["order_shibuya"]
    # Outlook's "resend": the same mail with a new Message-ID, an hour later.
    resent = order.replace(b"Message-ID: <", b"Message-ID: <resent.", 1)
    assert resent != order
    mailbox = MaildirMailbox(settings.maildir)
    mailbox.append("INBOX", order, NOW)
    mailbox.append("INBOX", resent, NOW + timedelta(hours=1))
    store = Store(settings.database)
    bot = Bot(settings, mailbox, MaildirOutbox(settings.outbox), store)
    try:
        report = bot.poll()
        assert [e.decision.reasons for _, e, _ in report.handled] == [[], ["DUPLICATE_REQUEST"]]
        assert [e.decision.action for _, e, _ in report.handled] == [Action.ACCEPT, Action.HOLD]
        assert [p.action for p in store.requests_for("988776654")] == [Action.ACCEPT, Action.HOLD]
    finally:
        bot.reference.close()
        mailbox.close()
        store.close()


def test_a_state_database_of_an_earlier_version_gains_the_received_column(tmp_path):
    import sqlite3

    from mailbot.record.store import SCHEMA, Store

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA.replace("    received      TEXT,\n", ""))
    db.execute("INSERT INTO mails (sha256, folder, uidvalidity, uid, state, action, kind, code, first_seen, updated)"
               " VALUES ('x', 'INBOX', 1, 1, 'filed', 'accept', 'equipment_order', '988776654', 't', 't')")
    db.commit()
    db.close()
    store = Store(path)
    try:
        assert store.requests_for("988776654") == []  # no received time recorded: not in the history
        store.db.execute("UPDATE mails SET received='2026-11-20T10:00:00+09:00'")
        assert [p.kind.value for p in store.requests_for("988776654")] == ["equipment_order"]
    finally:
        store.close()

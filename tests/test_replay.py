"""Rule changes that can be explained and replayed before they go live (issue 17): `mailbot
explain`, `mailbot replay` over the demo mailbox with a changed rule, a broken rules file stopping
the start, and the shadow trial (decide and record, send and file nothing)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, local_config

from mailbot.config import load
from mailbot.record.store import Store


def mailbot(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailbot", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The embedded default after its sample morning (as `make demo` leaves it)."""
    root = tmp_path_factory.mktemp("demo")
    assert mailbot("poll", cwd=root).returncode == 0
    return root


def changed_rules(root: Path, code: str, old: str, new: str) -> Path:
    rules = root / "rules-trial"
    shutil.rmtree(rules, ignore_errors=True)
    shutil.copytree(ROOT / "rules", rules)
    path = rules / "reasons.toml"
    text = path.read_text("utf-8")
    start = text.index(f"[{code}]")
    at = text.index(old, start)
    path.write_text(text[:at] + new + text[at + len(old):], encoding="utf-8")
    return rules


def test_replay_with_the_rules_in_force_changes_nothing(demo):
    result = mailbot("replay", cwd=demo)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("19通を判定し直し、0通の判定が変わります。UNIS抽出データ：")


def test_replay_lists_exactly_the_mails_a_rule_change_changes(demo):
    """A policy turning the remand of a missing customer code into a hold: only the order without a
    code changes (remand → hold); the table has one line, the JSON one object."""
    rules = changed_rules(demo, "CODE_MISSING", 'decision = "remand"', 'decision = "hold"')
    result = mailbot("replay", "--rules", str(rules), cwd=demo)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["受信日時", "顧客CD", "種別", "判定（現在", "→"]
    (changed,) = lines[2:-1]
    assert re.fullmatch(r"\d+月\d+日（[月火水木金土日]）\d+:\d\d", changed.split()[0])  # Japan time, as people read it
    assert changed.split()[1:] == ["-", "器材発注依頼", "差戻", "→", "保留", "顧客コードなし"]
    assert lines[-1].startswith("19通を判定し直し、1通の判定が変わります。")
    as_json = mailbot("replay", "--rules", str(rules), "--json", cwd=demo)
    (obj,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert (obj["before"], obj["after"], obj["reasons_after"]) == ("remand", "hold", ["CODE_MISSING"])
    # Above --max-changes: exit 1 (a gate before deploying the rules).
    assert mailbot("replay", "--rules", str(rules), "--max-changes", "0", cwd=demo).returncode == 1
    assert mailbot("replay", "--rules", str(rules), "--max-changes", "1", cwd=demo).returncode == 0
    # Nothing was sent or recorded by the replay.
    store = Store(load_demo(demo).database)
    try:
        assert store.db.execute("SELECT COUNT(*) FROM mails WHERE action='hold'").fetchone()[0] == 2
    finally:
        store.close()


def test_replay_of_a_wording_change_changes_no_decision(demo):
    rules = changed_rules(demo, "CANCEL_AFTER_ORDER", 'label = "受注日後のキャンセル"', 'label = "発注後キャンセル"')
    assert '"発注後キャンセル"' in (rules / "reasons.toml").read_text("utf-8")
    result = mailbot("replay", "--rules", str(rules), "--max-changes", "0", cwd=demo)
    assert result.returncode == 0 and "19通を判定し直し、0通の判定が変わります。" in result.stdout


def test_a_broken_rules_file_stops_replay_and_the_start_with_one_line(demo):
    rules = changed_rules(demo, "CODE_MISSING", 'decision = "remand"', 'decision = "maybe"')
    result = mailbot("replay", "--rules", str(rules), cwd=demo)
    assert result.returncode == 2
    assert re.fullmatch(r"mailbot: .*rules-trial/reasons\.toml:\d+: CODE_MISSING\.decision: 'maybe' is none of "
                        r"accept, remand, hold, defer, ignore\n", result.stderr), result.stderr
    config = local_config(demo, f'[paths]\nrules = "{rules}"\n', name="trial.toml", base="mailbot-demo/",
                          poll_interval=None)
    for command in ("poll", "run"):
        started = mailbot(command, "--config", str(config), cwd=demo)
        assert started.returncode == 2 and started.stderr.count("\n") == 1, started.stderr
        assert "reasons.toml:" in started.stderr and "'maybe'" in started.stderr


def load_demo(root: Path):
    from mailbot.config import embedded_default

    return embedded_default((root / "mailbot-demo").resolve())


def test_explain_says_why_in_japanese(demo):
    result = mailbot("explain", "921098765", cwd=demo)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "キャンセル申請　顧客コード 921098765" in text
    assert "mailbotの判定：受付" in text
    assert "1. 受注日後のキャンセル — " in text and "根拠：UNIS受注日 " in text
    assert "規則：この理由の判定は「受付」" in text and "判定に使った規則の版：" in text
    assert "返信：受付　送信済" in text and "件名 【受付】USEN SPOT キャンセル申請_921098765" in text
    assert not re.search(r"\b[A-Z]+(?:_[A-Z]+)+\b", text)  # no reason code for staff
    # times in Japan time's Japanese form, as everywhere staff read
    assert re.search(r"■ メール No\.\d+　\d+月\d+日（.）\d+:\d\d　キャンセル申請", text)
    assert re.search(r"返信：受付　送信済（\d+月\d+日（.）\d+:\d\d）", text) and not re.search(r"\d{4}-\d\d-\d\d", text)
    store = Store(load_demo(demo).database)
    try:
        message_id = store.db.execute("SELECT message_id FROM mails WHERE code='944556677'").fetchone()[0]
    finally:
        store.close()
    by_id = mailbot("explain", message_id.strip("<>"), cwd=demo)
    assert "差出人が社外 ken.ishii.0815@gmail.com" in by_id.stdout and "mailbotの判定：保留" in by_id.stdout
    missing = mailbot("explain", "123456789", cwd=demo)
    assert missing.returncode == 1 and missing.stdout == "「123456789」のメールはありません。\n"


def test_shadow_trial_decides_and_records_but_sends_and_files_nothing(tmp_path):
    from test_loop import NOW

    from demo.samples import seed_maildir
    from mailbot.mailbox.maildir import MaildirMailbox

    config = local_config(tmp_path, "[policy]\nshadow = true\n", name="shadow.toml", poll_interval=None)
    settings = load(config)
    seed_maildir(MaildirMailbox(settings.maildir), NOW)
    for _ in range(2):
        result = mailbot("poll", "--config", str(config), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    store = Store(settings.database)
    try:
        actions = [r[0] for r in store.db.execute("SELECT action FROM mails ORDER BY id")]
        assert len(actions) == 19 and set(actions) == {"accept", "remand", "hold", "ignore"}
        assert store.db.execute("SELECT COUNT(*) FROM replies").fetchone()[0] == 0
        assert store.db.execute("SELECT COUNT(*) FROM held").fetchone()[0] == 0
    finally:
        store.close()
    assert not (settings.outbox / "new").exists() or not list((settings.outbox / "new").iterdir())
    inbox = MaildirMailbox(settings.maildir)
    try:
        assert len(inbox.list_uids("INBOX")) == 19  # nothing filed
    finally:
        inbox.close()


def test_rules_check_loads_every_file_and_renders_every_template(tmp_path):
    ok = mailbot("rules", "check", cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout.startswith("OK: "), ok.stdout + ok.stderr
    rules = changed_rules(tmp_path, "CODE_MISSING", 'decision = "remand"', 'decision = "maybe"')
    broken = mailbot("rules", "check", str(rules), cwd=tmp_path)
    assert broken.returncode == 1
    assert re.fullmatch(r".*rules-trial/reasons\.toml:\d+: CODE_MISSING\.decision: 'maybe' is none of .*\n",
                        broken.stdout), broken.stdout
    # A template naming a value that does not exist: found by rendering it, with its file and line.
    templates = tmp_path / "templates-trial"
    shutil.copytree(ROOT / "templates", templates)
    note = templates / "accept" / "termination.txt.j2"
    text = note.read_text("utf-8")
    note.write_text(text.replace("{{ termination_date", "{{ termination_day", 1), encoding="utf-8")
    assert "termination_day" in note.read_text("utf-8")
    bad = mailbot("rules", "check", "--templates", str(templates), cwd=tmp_path)
    assert bad.returncode == 1
    (line,) = bad.stdout.splitlines()
    assert re.fullmatch(r".*templates-trial/accept/termination\.txt\.j2:\d+: UndefinedError: .*termination_day.*"
                        r"\(accept reply of termination\)", line), line
    # poll and run refuse to start with it: one line, exit 2, nothing touched.
    config = local_config(tmp_path, f'[paths]\ntemplates = "{templates}"\n', name="bad.toml", database="s.sqlite3",
                          poll_interval=None)
    for command in ("poll", "run"):
        refused = mailbot(command, "--config", str(config), cwd=tmp_path)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "termination_day" in refused.stderr
    assert not (tmp_path / "s.sqlite3").exists() and not (tmp_path / "s.sqlite3.rules-checked").exists()
    # The rules and templates in force are checked once per version, then remembered.
    good = local_config(tmp_path, name="good.toml", database="s.sqlite3", poll_interval=None)
    assert mailbot("poll", "--config", str(good), cwd=tmp_path).returncode == 0
    mark = tmp_path / "s.sqlite3.rules-checked"
    assert mark.exists()
    # …and a changed template is checked again before the next poll (refused, the mark kept).
    refused = mailbot("poll", "--config", str(config), cwd=tmp_path)
    assert refused.returncode == 2 and "termination_day" in refused.stderr


@pytest.mark.parametrize("command", [("history", "921098765"), ("held",), ("explain", "921098765"),
                                     ("digest",), ("rules", "check")])
def test_a_reader_going_away_is_no_traceback(demo, command):
    """`mailbot held | head -1` through a real pipe: the reader closes it, the command stops
    quietly (issue 20), whatever it was printing."""
    args = " ".join(command)
    result = subprocess.run(["bash", "-c", f"{sys.executable} -m mailbot {args} 2>err.txt | head -c 1 >/dev/null;"
                                           " echo ${PIPESTATUS[0]}"],
                            capture_output=True, text=True, cwd=demo, timeout=120)
    assert (demo / "err.txt").read_text() == "", (demo / "err.txt").read_text()
    assert result.stdout.strip() in ("0", "141")


def test_run_on_the_embedded_default_says_what_it_does(tmp_path):
    """Issue 20: `mailbot run` without --config uses the embedded default, as `poll` does, and
    says at start what it runs on, then one line per cycle — in Japan time."""
    import os
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "mailbot", "run"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (tmp_path / "mailbot-demo" / "outbox" / "new").exists():
            time.sleep(0.3)
        time.sleep(2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = err.splitlines()
    start = next(line for line in lines if "starting:" in line)
    assert "+09:00 INFO mailbot: mailbot " in start and "config embedded default; Maildir " in start
    assert "poll every 60 s; IDLE off (local Maildir); UNIS extract " in start and "抽出日時 " in start
    assert any("cycle: 19 decided, 15 sent, 19 filed, 0 errors" in line for line in lines)
    assert "apscheduler" not in err and os.path.exists(tmp_path / "mailbot-demo" / "state.sqlite3")


def test_already_sent_says_when_in_japan_time():
    from mailbot.cli import _when

    when = _when("2026-12-04T00:34:55.942654+00:00")
    assert when == "12月4日（金）9:34"

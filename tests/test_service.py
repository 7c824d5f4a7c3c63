"""Running it for real (issue 17): systemd notifications against a fake NOTIFY_SOCKET (READY after
the first successful poll, the watchdog pinged only while polls succeed, STOPPING on SIGTERM),
`mailbot health`, the Prometheus endpoint and the two log formats."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from faults import FaultProxy
from helpers import ROOT, TOKYO, local_config, running_bot
from test_faults import config as faults_config
from test_loop import appended

from mailbot.config import load
from mailbot.record.store import Store


class NotifySocket:
    """What systemd listens on: a Unix datagram socket; the messages the bot sent, in order."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[list[str]] = []

    def read(self, seconds: float) -> list[list[str]]:
        """Everything that arrives within `seconds`."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.messages.append(self.sock.recv(4096).decode().split("\n"))
            except TimeoutError:
                pass
        return self.messages

    def wait_for(self, line: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not any(line in m for m in self.messages):
            self.read(0.2)
        assert any(line in m for m in self.messages), self.messages

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    s = NotifySocket(tmp_path / "notify")
    yield s
    s.close()


def lines(messages: list[list[str]]) -> list[str]:
    return [line for m in messages for line in m]


def test_ready_after_the_first_poll_watchdog_after_each_and_stopping_on_sigterm(notify_socket, tmp_path):
    config = local_config(tmp_path)
    with running_bot(config, env={"NOTIFY_SOCKET": str(notify_socket.path)}):
        notify_socket.wait_for("READY=1", timeout=30)
        notify_socket.read(2.5)
        polled = load(config)
        store = Store(polled.database)
        try:
            assert store.status("poll ok") is not None  # READY came after a poll that went through
        finally:
            store.close()
    notify_socket.read(0.5)
    said = lines(notify_socket.messages)
    assert said.index("READY=1") == 0
    assert said.count("READY=1") == 1 and said.count("WATCHDOG=1") >= 2  # one per later successful poll
    assert said[-2:] == ["STOPPING=1", "STATUS=stopping"]
    assert any(line.startswith("STATUS=polled ") for line in said)


def test_a_hung_mailbox_stops_the_watchdog_so_systemd_restarts_the_bot(notify_socket, imap_account, smtp_sink,
                                                                       tmp_path):
    """The mailbox stops answering mid-run (the server accepts, then stays silent): no more
    WATCHDOG=1, so systemd's WatchdogSec restarts the process; and when it answers again, the
    pings come back."""
    appended(imap_account, "order_shibuya")
    with FaultProxy(imap_account.port, "imap") as proxy:
        config = faults_config(tmp_path, imap_account, smtp_sink, imap=proxy, imap_timeout=1.0, poll_interval=1)
        with running_bot(config, env={"NOTIFY_SOCKET": str(notify_socket.path)}):
            notify_socket.wait_for("READY=1", timeout=30)
            notify_socket.read(2.5)
            before = lines(notify_socket.messages).count("WATCHDOG=1")
            assert before >= 1
            proxy.freeze()  # new connections accepted and silent, open ones fall silent
            notify_socket.read(1.5)  # a ping of a poll that had just finished may still come
            frozen_at = len(lines(notify_socket.messages))
            notify_socket.read(5)
            assert "WATCHDOG=1" not in lines(notify_socket.messages)[frozen_at:]
            proxy.resume()
            end = time.monotonic() + 20
            while time.monotonic() < end and "WATCHDOG=1" not in lines(notify_socket.messages)[frozen_at:]:
                notify_socket.read(0.5)
            assert "WATCHDOG=1" in lines(notify_socket.messages)[frozen_at:]


# ---------------------------------------------------------------- health


def mailbot(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailbot", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


def test_health_fails_with_one_line_per_problem_and_passes_when_well(tmp_path):
    config = local_config(tmp_path, '[health]\nmax_poll_age = 300\nmax_held_age = 1\n')
    never = mailbot("health", "--config", str(config))
    assert never.returncode == 1 and never.stdout.startswith("POLL_STALE: ")
    poll = mailbot("poll", "--config", str(config))  # an empty local mailbox: a successful poll
    assert poll.returncode == 0, poll.stderr
    well = mailbot("health", "--config", str(config), "--json")
    assert well.returncode == 0 and json.loads(well.stdout) == {"ok": True, "problems": []}
    assert mailbot("health", "--config", str(config)).stdout == "OK\n"

    settings = load(config)
    store = Store(settings.database)
    try:
        old = (datetime.now(timezone.utc) - timedelta(minutes=20)).isoformat()
        store.db.execute("UPDATE status SET at=? WHERE key='poll ok'", (old,))
        store.db.execute("INSERT INTO mails (sha256, folder, uidvalidity, uid, state, action, kind, reasons,"
                         " first_seen, updated) VALUES ('x', 'INBOX', 1, 1, 'filed', 'hold', 'unknown',"
                         " '[\"UNKNOWN_SUBJECT\"]', ?, ?)", (old, old))
        store.db.execute("INSERT INTO held (mail_id, note_id, original, opened_at) VALUES (1, '<n@x>', x'', ?)",
                         ((datetime.now(TOKYO) - timedelta(days=10)).isoformat(),))
        store.db.execute("INSERT INTO replies (mail_id, message_id, action, recipients, data, state, attempts,"
                         " next_attempt, sending_at, last_error) VALUES (1, '<r@x>', 'accept', '[]', x'', 'failed', 8,"
                         " ?, ?, '554 rejected')", (old, old))
        store.db.execute("INSERT INTO digests (day, message_id, state, data, attempts, last_error, created_at)"
                         " VALUES ('2026-12-03', '<d@x>', 'queued', x'', 2, '451 try later', ?)", (old,))
    finally:
        store.close()
    sick = mailbot("health", "--config", str(config), "--json")
    assert sick.returncode == 1
    report = json.loads(sick.stdout)
    assert report["ok"] is False
    assert [p["code"] for p in report["problems"]] == ["POLL_STALE", "REPLY_FAILING", "DIGEST_FAILING", "HELD_STALE"]
    assert "\\u" not in sick.stdout and "上限300秒" in report["problems"][0]["detail"]
    text = mailbot("health", "--config", str(config))
    assert text.returncode == 1 and [line.split(":")[0] for line in text.stdout.splitlines()] == [
        "POLL_STALE", "REPLY_FAILING", "DIGEST_FAILING", "HELD_STALE"]


def test_health_sees_a_stale_unis_extract(tmp_path):
    from test_reference_checks import sample_extract

    sample_extract(tmp_path)  # the samples' extract: taken 2026-11-20 06:00
    config = local_config(tmp_path, '[unis]\nextract = "usen_spot_orders.csv"\n')
    assert mailbot("poll", "--config", str(config)).returncode == 0
    result = mailbot("health", "--config", str(config))
    assert result.returncode == 1 and result.stdout.startswith("UNIS_STALE: UNISの抽出データが")


# ---------------------------------------------------------------- metrics and logs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_and_json_logs_of_a_running_bot(tmp_path):
    from test_loop import NOW
    from test_reference_checks import sample_directory, sample_extract

    from demo.samples import sample_mails, seed_maildir
    from mailbot.mailbox.maildir import MaildirMailbox

    sample_extract(tmp_path)
    sample_directory(tmp_path)
    port = free_port()
    config = local_config(tmp_path, textwrap.dedent(f"""
        [unis]
        extract = "usen_spot_orders.csv"
        [branches]
        directory = "branches.csv"
        [metrics]
        listen = "127.0.0.1:{port}"
        [logging]
        format = "json"
        """))
    seed_maildir(MaildirMailbox(load(config).maildir), NOW)
    assert len(sample_mails(NOW)) == 19
    with running_bot(config, env={}) as proc:
        end = time.monotonic() + 60
        page = ""
        while time.monotonic() < end:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            except OSError:
                page = ""
            if "mailbot_polls_total{result=\"ok\"} 2.0" in page:
                break
            time.sleep(0.3)
    _out, err = proc.communicate()
    assert 'mailbot_mails_total{decision="accept",kind="equipment_order"} 5.0' in page
    assert 'mailbot_mails_total{decision="remand",kind="registration_notice"} 1.0' in page
    assert 'mailbot_reasons_total{reason="CANCEL_AFTER_ORDER"} 1.0' in page
    assert 'mailbot_replies_total{outcome="sent"} 15.0' in page
    assert "mailbot_poll_duration_seconds_count 2.0" in page or "mailbot_poll_duration_seconds_count 3.0" in page
    assert "mailbot_held_open 2.0" in page and "mailbot_mailbox_reachable 1.0" in page
    for series in ("mailbot_last_successful_poll_timestamp_seconds", "mailbot_unis_extract_age_seconds"):
        value = float(next(line for line in page.splitlines() if line.startswith(series + " ")).split()[1])
        assert value > 0, series
    # JSON lines on stderr: one object per line, the decisions with the mail's fields, Japanese readable.
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    decisions = [r for r in records if "decision" in r]
    assert len(decisions) == 19
    remand = next(r for r in decisions if r["code"] == "955443322")
    assert (remand["kind"], remand["decision"], remand["reasons"]) == (
        "registration_notice", "remand", ["REGISTRATION_NOTICE_VIA_DRAGON"])
    assert remand["message_id"].startswith("<") and isinstance(remand["mail_id"], int)
    assert remand["time"].endswith("+09:00")
    assert "\\u" not in err


def test_text_logs_carry_japan_time_and_the_decision(tmp_path):
    config = local_config(tmp_path)
    from test_loop import NOW

    from demo.samples import seed_maildir
    from mailbot.mailbox.maildir import MaildirMailbox

    seed_maildir(MaildirMailbox(load(config).maildir), NOW)
    result = subprocess.run([sys.executable, "-m", "mailbot", "-v", "poll", "--config", str(config)],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    decided = [line for line in result.stderr.splitlines() if " INFO mailbot: mail " in line]
    assert len(decided) == 19
    assert decided[0][:25].endswith("+09:00") and "apscheduler" not in result.stderr
    assert any(" remand registration_notice 955443322 REGISTRATION_NOTICE_VIA_DRAGON" in line for line in decided)


def test_a_bad_service_setting_is_one_line_naming_the_key(tmp_path):
    for extra, error in (('[metrics]\nlisten = "9464"\n', 'metrics.listen: \'9464\' is not HOST:PORT'),
                         ('[logging]\nformat = "xml"\n', 'logging.format: \'xml\' is neither "text" nor "json"'),
                         ('[health]\nmax_poll_age = 0\n', "health.max_poll_age: 0 must be greater than 0")):
        result = mailbot("health", "--config", str(local_config(tmp_path, extra)))
        assert result.returncode == 2 and result.stderr.startswith(f"mailbot: {error}"), result.stderr

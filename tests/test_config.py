"""Configuration: valid files load; each wrong or missing value gives one line naming the key."""

import textwrap
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.config import ConfigError, embedded_default, load

GOOD = """
[imap]
host = "127.0.0.1"
port = 1143
ssl = false
username = "usen_spot"
password_env = "MAILBOT_TEST_PW"
inbox = "INBOX"

[folders]
processed = "処理済"
held = "保留"
ignored = "対象外"

[smtp]
host = "127.0.0.1"
port = 2525
starttls = false
from = "usen_spot@usen.co.jp"

[unis]
extract = "unis.csv"

[branches]
directory = "branches.csv"

[digest]
recipients = ["sv@usen.co.jp"]
time = "18:00"

[scheduler]
poll_interval = 30

[state]
database = "state.sqlite3"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "mailbot.toml"
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def test_good_config_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("MAILBOT_TEST_PW", "s3cret")
    s = load(write(tmp_path, GOOD))
    assert s.imap.password == "s3cret" and s.imap.port == 1143 and not s.imap.ssl
    assert s.folders.processed == "処理済"
    assert s.smtp.sender == "usen_spot@usen.co.jp"
    assert s.unis_extract == tmp_path / "unis.csv"
    assert s.poll_interval == 30
    assert s.internal_domains == ("usen.co.jp",)
    assert "s3cret" not in repr(s)


def test_example_config_loads(monkeypatch):
    monkeypatch.setenv("MAILBOT_IMAP_PASSWORD", "x")
    s = load(Path(__file__).resolve().parent.parent / "config.example.toml")
    assert s.smtp.copy_to_mailbox and s.smtp.copy_wait == 300 and s.folders.sent == "送信済"


def test_embedded_default_needs_no_servers(tmp_path):
    s = embedded_default(tmp_path)
    assert s.imap is None and s.smtp is None
    assert s.maildir == tmp_path / "mailbox" and s.outbox == tmp_path / "outbox"


@pytest.mark.parametrize("old,new,message", [
    ('port = 1143', 'port = "1143"', "imap.port: expected an integer"),
    ('port = 1143', 'port = 70000', "imap.port: 70000 is not a port number"),
    ('ssl = false', 'ssl = "no"', "imap.ssl: expected true or false"),
    ('host = "127.0.0.1"\nport = 1143', 'port = 1143', "imap.host: missing"),
    ('password_env = "MAILBOT_TEST_PW"', 'password_env = "NOT_SET_ANYWHERE"', "imap.password_env: environment variable NOT_SET_ANYWHERE is not set"),
    ('password_env = "MAILBOT_TEST_PW"', '', "imap.password: missing"),
    ('from = "usen_spot@usen.co.jp"', 'from = "usen_spot"', "smtp.from: 'usen_spot' is not a mail address"),
    ('time = "18:00"', 'time = "25:00"', "digest.time: '25:00' is not a time of day"),
    ('poll_interval = 30', 'poll_interval = 0', "scheduler.poll_interval: 0 must be at least 1"),
    ('poll_interval = 30', 'poll_intervall = 30', "scheduler.poll_intervall: unknown setting"),
    ('held = "保留"', 'held = "処理済"', "folders: processed, held, ignored, held_accept, held_remand, held_originals and sent must be different folders"),
    ('recipients = ["sv@usen.co.jp"]', 'recipients = ["nobody"]', "digest.recipients[0]: 'nobody' is not a mail address"),
    ('recipients = ["sv@usen.co.jp"]', 'recipients = ["sv@usen.co.jp", "boss@gmail.com"]',
     "digest.recipients[1]: 'boss@gmail.com' is outside policy.internal_domains"),
    ('[state]', '[forms]\ntimeout = 0\n[state]', "forms.timeout: 0 must be greater than 0"),
    ('from = "usen_spot@usen.co.jp"', 'from = "usen_spot@usen.co.jp"\ncopy_to_mailbox = 1',
     "smtp.copy_to_mailbox: expected true or false"),
    ('from = "usen_spot@usen.co.jp"', 'from = "usen_spot@usen.co.jp"\ncopy_wait = 0',
     "smtp.copy_wait: 0 must be greater than 0"),
    ('held = "保留"', 'held = "保留"\nsent = "処理済"', "must be different folders"),
    ('[state]', '[forms]\nmax_pages = "many"\n[state]', "forms.max_pages: expected an integer"),
])
def test_each_error_names_the_key(tmp_path, monkeypatch, old, new, message):
    monkeypatch.setenv("MAILBOT_TEST_PW", "s3cret")
    assert old in GOOD
    with pytest.raises(ConfigError) as e:
        load(write(tmp_path, GOOD.replace(old, new)))
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_not_toml(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(write(tmp_path, "[imap\nhost="))


def test_cli_reports_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MAILBOT_TEST_PW", "s3cret")
    path = write(tmp_path, GOOD.replace("poll_interval = 30", "poll_interval = -5"))
    assert main(["poll", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "mailbot: scheduler.poll_interval: -5 must be at least 1 second"


def test_cli_missing_file(tmp_path, capsys):
    assert main(["poll", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "configuration file not found" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["poll"], ["run"]])
@pytest.mark.parametrize("key, section, present", [("unis.extract", "[unis]\nextract", "branches"),
                                                    ("branches.directory", "[branches]\ndirectory", "unis")])
def test_a_missing_unis_extract_or_branch_directory_stops_the_start_naming_the_key(tmp_path, command, key, section,
                                                                                    present):
    """Checked at start like every other setting (issue 20): one line naming the key, exit 2,
    nothing polled; not an error logged every cycle while polling goes on."""
    import subprocess
    import sys

    from helpers import ROOT, local_config
    from test_reference_checks import sample_directory, sample_extract

    existing = {"unis": f'[unis]\nextract = "{sample_extract(tmp_path).name}"\n',
                "branches": f'[branches]\ndirectory = "{sample_directory(tmp_path).name}"\n'}[present]
    config = local_config(tmp_path, existing + f'{section} = "daily/missing.csv"\n')
    run = subprocess.run([sys.executable, "-m", "mailbot", *command, "--config", str(config)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"mailbot: {key}: {tmp_path / 'daily/missing.csv'} does not exist "
        "(fix the path, or remove the setting to run without it)"]
    assert not (tmp_path / "state.sqlite3").exists()

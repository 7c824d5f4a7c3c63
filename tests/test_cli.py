"""The console commands: the embedded default, `check`, and `run` stopping cleanly on SIGTERM."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import CORPORA, running_bot
from test_loop import EXPECTED, NOW, crlf, write_config

from demo.samples import SAMPLES, sample_mails


def mailbot(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailbot", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def test_embedded_default_runs_the_whole_job_without_servers(tmp_path):
    first = mailbot("poll", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    n = len(SAMPLES)
    assert f"{n} mails decided" in first.stdout
    demo = tmp_path / "mailbot-demo"
    outbox = list((demo / "outbox" / "new").iterdir())
    assert len(outbox) == sum(1 for e in EXPECTED.values() if e[2])
    inbox = [p for d in ("new", "cur") for p in (demo / "mailbox" / d).iterdir()]
    assert inbox == []
    # Each reply readable with `cat` beside the Maildir (its body is base64 there) (issue 20)
    readable = sorted((demo / "outbox-text").iterdir())
    assert len(readable) == len(outbox) and f"(readable copies: {demo / 'outbox-text'})" in first.stdout
    texts = [p.read_text(encoding="utf-8") for p in readable]
    assert all(t.startswith("差出人: USEN SPOT 事務センター <") and "\n件名: 【" in t for t in texts)
    assert any("のご依頼を受け付けました。" in t for t in texts)
    assert all(re.search(r"送信日時: \d+月\d+日（.）\d+:\d\d", t) for t in texts)
    second = mailbot("poll", cwd=tmp_path)
    assert "0 mails decided, 0 replies sent, 0 mails filed" in second.stdout
    assert len(list((demo / "outbox" / "new").iterdir())) == len(outbox)

    # What `make demo` shows besides: the HTML digest with its chart, the held notes as .eml.
    page = mailbot("digest", "--html", "mailbot-demo/digest.html", cwd=tmp_path)
    assert page.returncode == 0, page.stderr
    assert "(with its chart) is in mailbot-demo/digest.html." in page.stdout
    html = (demo / "digest.html").read_text("utf-8")
    assert '<img src="data:image/png;base64,' in html and "4週間の推移" in html and "問題・要対応" in html
    held = mailbot("held", "--save", "mailbot-demo/held", cwd=tmp_path)
    assert held.returncode == 0, held.stderr
    assert "保留メモ 2通を mailbot-demo/held に保存しました" in held.stdout
    notes = sorted((demo / "held").iterdir())
    assert len(notes) == 2 and all(p.suffix == ".eml" for p in notes)
    import email
    from email import policy
    note = email.message_from_bytes(notes[0].read_bytes(), policy=policy.default)
    assert note["Subject"].startswith("【保留】") and "保留の理由" in note.get_body(("plain",)).get_content()


def test_check_json_gives_one_object_per_mail(tmp_path):
    files = []
    for name, data in sample_mails(NOW):
        path = tmp_path / f"{name}.eml"
        path.write_bytes(data)
        files.append(path)
    result = mailbot("check", "--json", *map(str, files), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(o["file"]).stem for o in lines] == [p.stem for p in files]
    for o in lines:
        name = Path(o["file"]).stem
        assert set(o) == {"file", "kind", "customer_code", "decision", "reasons", "fields"}
        assert o["decision"] == EXPECTED[name][0], name
        if SAMPLES[name].kind is not None:
            assert o["kind"] == SAMPLES[name].kind.value
    by_name = {Path(o["file"]).stem: o for o in lines}
    assert by_name["order_no_code"]["reasons"] == ["CODE_MISSING"]
    assert by_name["order_8digit"]["reasons"] == ["CODE_INVALID"]
    assert by_name["order_no_pdf"]["reasons"] == ["ATTACHMENT_MISSING"]
    assert by_name["outside_gmail"]["reasons"] == ["SENDER_NOT_ALLOWED"]
    assert by_name["auto_reply"]["reasons"] == ["AUTO_REPLY"]
    assert by_name["order_shibuya"]["fields"]["body"]["shop_name"]
    assert by_name["order_shibuya"]["customer_code"] == "988776654"
    # Nothing was written: check has no side effects.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in files)


def test_check_table_and_bad_arguments(tmp_path):
    path = tmp_path / "a.eml"
    path.write_bytes(dict(sample_mails(NOW))["order_no_code"])
    table = mailbot("check", str(path), cwd=tmp_path)
    assert table.returncode == 0 and "remand" in table.stdout and "CODE_MISSING" in table.stdout
    missing = mailbot("check", str(tmp_path / "nope.eml"), cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.strip().startswith("mailbot:") and "nope.eml" in missing.stderr
    bad_unis = mailbot("check", "--unis", "nope.csv", str(path), cwd=tmp_path)
    assert bad_unis.returncode == 2 and "nope.csv: no such file" in bad_unis.stderr
    usage = mailbot("frobnicate", cwd=tmp_path)
    assert usage.returncode == 2


def test_unreadable_mail_is_held_with_the_reason(tmp_path):
    path = tmp_path / "garbage.eml"
    path.write_bytes(b"\x00\x01\x02 not a mail at all \xff\xfe")
    o = json.loads(mailbot("check", "--json", str(path), cwd=tmp_path).stdout)
    assert o["decision"] == "hold" and o["reasons"] == ["MAIL_UNREADABLE"]


def test_run_polls_until_sigterm(imap_account, smtp_sink, tmp_path):
    config = write_config(tmp_path, imap_account, smtp_sink)
    text = config.read_text(encoding="utf-8") + "\n[scheduler]\npoll_interval = 1\n"
    config.write_text(text, encoding="utf-8")
    with running_bot(config):
        mails = dict(sample_mails(NOW))
        imap_account.append("INBOX", crlf(mails["order_shibuya"]))
        smtp_sink.wait_for(1, timeout=30)
        imap_account.append("INBOX", crlf(mails["termination"]))  # arrives while it runs
        smtp_sink.wait_for(2, timeout=30)
        deadline = time.monotonic() + 10
        while imap_account.messages("INBOX") and time.monotonic() < deadline:
            time.sleep(0.1)
    assert len(smtp_sink.messages()) == 2
    assert len(imap_account.messages("処理済")) == 2


@pytest.mark.parametrize("path", sorted(p for p in (CORPORA / "email").rglob("*") if p.is_file()),
                         ids=lambda p: str(p.relative_to(CORPORA / "email")))
def test_every_corpus_mail_gets_a_decision_and_outsiders_no_reply(path):
    """Each hostile or malformed mail ends decided; none of them may be answered."""
    from mailbot.config import embedded_default
    from mailbot.model import Action
    from mailbot.pipeline import evaluate

    settings = embedded_default(Path("/nonexistent"))
    e = evaluate(path.read_bytes(), None, settings)
    assert e.decision.action in set(Action)
    sender = e.mail.sender.addr if e.mail and e.mail.sender else ""
    if not sender.endswith("usen.co.jp"):
        assert e.decision.action in (Action.HOLD, Action.IGNORE), (sender, e.decision)


def test_run_answers_new_mail_at_once_through_imap_idle(imap_account, smtp_sink, tmp_path):
    """With polling every 5 minutes, a new mail is still answered within seconds: IDLE wakes the loop."""
    config = write_config(tmp_path, imap_account, smtp_sink)
    config.write_text(config.read_text(encoding="utf-8") + "\n[scheduler]\npoll_interval = 300\n", encoding="utf-8")
    with running_bot(config):
        deadline = time.monotonic() + 60  # the first cycle creates the folders
        while "処理済" not in imap_account.folders() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # the IDLE is in place
        mails = dict(sample_mails(NOW))
        waits = []
        for n, name in enumerate(("contract_change", "order_shibuya"), start=1):
            started = time.monotonic()
            imap_account.append("INBOX", crlf(mails[name]))
            smtp_sink.wait_for(n, timeout=60)
            waits.append(time.monotonic() - started)
    print(f"APPEND → reply: {', '.join(f'{w:.2f} s' for w in waits)}")
    assert max(waits) < 30, waits  # far below the 300 s poll interval

"""Small builders shared by the tests."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from mailbot.model import Address, Attachment, Mail

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
TEMPLATES = ROOT / "templates"
CORPORA = ROOT.parent / "shared" / "corpora"
TOKYO = ZoneInfo("Asia/Tokyo")


def mail(subject: str = "USEN SPOT 器材発注依頼_988776654", *, sender: str = "i-suzuki@usen.co.jp",
         name: str = "鈴木 一郎", cc: tuple[str, ...] = ("shibuya-mgr@usen.co.jp",), body: str = "",
         headers: dict[str, tuple[str, ...]] | None = None, attachments: tuple[Attachment, ...] = (),
         content_type: str = "text/plain", reply_to: tuple[str, ...] = (),
         from_addrs: tuple[str, ...] | None = None) -> Mail:
    sender_address = Address(name, sender)
    return Mail(
        subject=subject, sender=sender_address,
        from_addrs=tuple(Address("", a) for a in from_addrs) if from_addrs else (sender_address,),
        reply_to=tuple(Address("", a) for a in reply_to), to=(Address("", "usen_spot@usen.co.jp"),),
        cc=tuple(Address("", a) for a in cc), message_id="<abc.123@mail.usen.co.jp>", in_reply_to=None,
        references=(), date=datetime(2026, 11, 20, 10, 0, tzinfo=TOKYO), received_at=None,
        headers={k.lower(): v for k, v in (headers or {}).items()}, content_type=content_type, body=body,
        attachments=attachments,
    )


@contextmanager
def running_bot(config: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """`mailbot run --config F` as its own process while the block runs (with `env` added to the
    environment); then SIGTERM, and it must stop cleanly (exit 0)."""
    import os

    proc = subprocess.Popen([sys.executable, "-m", "mailbot", "run", "--config", str(config)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    try:
        yield proc
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err


@contextmanager
def local_bot(settings) -> Iterator[tuple]:
    """(bot, mailbox, store) of settings with a local Maildir and outbox, closed afterwards: the
    real pipeline without servers."""
    from mailbot.mailbox.maildir import MaildirMailbox
    from mailbot.pipeline import Bot
    from mailbot.record.store import Store
    from mailbot.reply.send import MaildirOutbox

    mailbox = MaildirMailbox(settings.maildir)
    store = Store(settings.database)
    bot = Bot(settings, mailbox, MaildirOutbox(settings.outbox), store)
    try:
        yield bot, mailbox, store
    finally:
        if bot.reference is not None:
            bot.reference.close()
        mailbox.close()
        store.close()


def local_config(root: Path, extra: str = "", *, name: str = "mailbot.toml", base: str = "",
                 database: str = "state.sqlite3", poll_interval: int | None = 1) -> Path:
    """A configuration of a local Maildir and outbox (under `base`, relative to `root`), plus
    `extra` TOML; written to root/name."""
    scheduler = f"[scheduler]\npoll_interval = {poll_interval}\n" if poll_interval is not None else ""
    path = root / name
    path.write_text(f'[maildir]\npath = "{base}mailbox"\n[outbox]\npath = "{base}outbox"\n'
                    f'[state]\ndatabase = "{base}{database}"\n{scheduler}{extra}', encoding="utf-8")
    return path


def private_copy(state: Path, tmp_path: Path) -> Path:
    """A copy of a module's state directory (made once, shared) for one test to change."""
    import shutil

    root = tmp_path / "state"
    shutil.copytree(state, root)
    return root


@contextmanager
def sending(config: Path) -> Iterator[tuple]:
    """(settings, store, SMTP transport) of `config`, the store closed afterwards: what the digest
    and the ledger share send with."""
    from mailbot.config import load
    from mailbot.record.store import Store
    from mailbot.reply.send import SmtpTransport

    settings = load(config)
    store = Store(settings.database)
    try:
        yield settings, store, SmtpTransport(settings.smtp)
    finally:
        store.close()


def office_config(root: Path, extra: str, sink=None, *, extract: str = "usen_spot_orders.csv") -> Path:
    """root/mailbot.toml: a local Maildir and state, the UNIS extract and branch directory in
    root, replies to the SMTP sink (else a local outbox), and `extra` TOML."""
    mail_out = (f'[smtp]\nhost = "{sink.host}"\nport = {sink.port}\nfrom = "usen_spot@usen.co.jp"\n' if sink
                else '[outbox]\npath = "outbox"\n')
    path = root / "mailbot.toml"
    path.write_text(f'[maildir]\npath = "mailbox"\n[state]\ndatabase = "state.sqlite3"\n[unis]\nextract = "{extract}"\n'
                    f'[branches]\ndirectory = "branches.csv"\n{mail_out}{extra}', encoding="utf-8")
    return path

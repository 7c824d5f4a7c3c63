"""Real mail servers on loopback for the tests: Debian's Dovecot (IMAP) and an aiosmtpd sink (SMTP).

Both run as separate processes, each in its own temporary directory, on a free port of
127.0.0.1; nothing touches /etc, /var/run or systemd.

    with Dovecot() as imap:                     # started; stopped and removed on exit
        acct = imap.add_user()                  # a fresh, empty mailbox
        acct.append("INBOX", raw_bytes)
        with acct.mailbox() as mb: ...          # mailbot.mailbox.imap.ImapMailbox for it
        acct.messages("処理済")                  # {uid: bytes}, read over IMAP

    with SmtpSink() as sink:
        ... send to sink.host, sink.port ...
        sink.messages()                         # [SinkMessage], oldest first
        sink.set_mode("tempfail")               # 451 to DATA from now on

Dovecot runs as root here (the mail user is ``nobody``, since Dovecot refuses uid 0 for mail);
as any other user everything runs as that user instead.
"""

from __future__ import annotations

import atexit
import email
import email.policy
import grp
import itertools
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

DOVECOT_BIN = os.environ.get("MAILBOT_TEST_DOVECOT", "/usr/sbin/dovecot")
SINK_SCRIPT = Path(__file__).with_name("smtp_sink.py")
LOOPBACK = "127.0.0.1"

# What Dovecot 2.3 advertises after login; imap_capability is set to this minus what a test
# server should lack (Dovecot still understands the commands, but well-behaved clients won't use them).
DOVECOT_CAPABILITIES = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
    "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN "
    "NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES "
    "WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW "
    "STATUS=SIZE SAVEDATE LITERAL+ NOTIFY"
).split()

_running: set = set()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_running):
        try:
            server.stop()
        except Exception:  # noqa: BLE001
            pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _wait_greeting(port: int, prefix: bytes, proc: subprocess.Popen, timeout: float, what: str, log) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting:\n{log()}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0) as s:
                if s.recv(200).startswith(prefix):
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not greet on port {port} within {timeout}s ({last}):\n{log()}")


def _terminate(proc: subprocess.Popen | None) -> None:
    """End a server started with start_new_session=True: its whole process group, by its id."""
    if proc is None:
        return
    pgid = proc.pid
    if proc.poll() is None:
        try:
            os.killpg(pgid, signal.SIGTERM)  # master and children at once: Dovecot exits in ms
        except ProcessLookupError:
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # stragglers of the group (e.g. an imap process)
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.01)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------------------- IMAP


@dataclass
class ImapAccount:
    """One user of a Dovecot: its credentials and helpers to look at the store over IMAP."""

    server: Dovecot
    username: str
    password: str

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    def client(self):
        """A logged-in imapclient.IMAPClient (aware INTERNALDATEs); the caller logs out."""
        return self.server.client(self.username, self.password)

    def mailbox(self, **kwargs):
        """A mailbot ImapMailbox for this account (not yet connected)."""
        from mailbot.mailbox.imap import ImapMailbox

        kwargs.setdefault("timeout", 10.0)
        return ImapMailbox(self.host, self.port, False, self.username, self.password, **kwargs)

    def append(self, folder: str, data: bytes, internaldate: datetime | None = None, flags=()) -> int | None:
        """APPEND a mail; returns its UID (from APPENDUID), None if the server gave none."""
        c = self.client()
        try:
            resp = c.append(folder, data, flags=flags, msg_time=internaldate)
        finally:
            c.logout()
        text = resp.decode("ascii", "replace") if isinstance(resp, bytes) else str(resp)
        if "APPENDUID" in text:
            return int(text.split("APPENDUID", 1)[1].split("]", 1)[0].split()[1])
        return None

    def create_folder(self, folder: str) -> None:
        c = self.client()
        try:
            c.create_folder(folder)
        finally:
            c.logout()

    def folders(self) -> list[str]:
        """Every selectable folder, by its server name."""
        c = self.client()
        try:
            return sorted(
                name for flags, _d, name in c.list_folders() if b"\\Noselect" not in flags and b"\\NonExistent" not in flags
            )
        finally:
            c.logout()

    def uids(self, folder: str = "INBOX") -> list[int]:
        c = self.client()
        try:
            c.select_folder(folder, readonly=True)
            return sorted(c.search(["ALL"]))
        finally:
            c.logout()

    def fetch(self, folder: str = "INBOX", items=("BODY.PEEK[]", "FLAGS", "INTERNALDATE")) -> dict[int, dict]:
        """{uid: imapclient fetch dict} of every mail in the folder, read without setting \\Seen."""
        c = self.client()
        try:
            c.select_folder(folder, readonly=True)
            uids = c.search(["ALL"])
            return dict(sorted(c.fetch(uids, list(items)).items())) if uids else {}
        finally:
            c.logout()

    def messages(self, folder: str = "INBOX") -> dict[int, bytes]:
        """{uid: raw bytes} of every mail in the folder, oldest UID first."""
        return {uid: item[b"BODY[]"] for uid, item in self.fetch(folder, ("BODY.PEEK[]",)).items()}

    def flags(self, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        return {uid: tuple(item[b"FLAGS"]) for uid, item in self.fetch(folder, ("FLAGS",)).items()}

    def uidvalidity(self, folder: str = "INBOX") -> int:
        c = self.client()
        try:
            return int(c.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])
        finally:
            c.logout()


class Dovecot:
    """A private Dovecot IMAP server on 127.0.0.1 (plain text, LOGIN/PLAIN auth, Maildir).

    without: capabilities not to advertise (e.g. ("MOVE",) for the COPY fallback).
    separator / prefix: the personal namespace's hierarchy separator and prefix, e.g. "." and
        "INBOX." for a Courier-style server.
    """

    _names = itertools.count(1)

    def __init__(
        self,
        *,
        without: tuple[str, ...] | list[str] = (),
        separator: str = "/",
        prefix: str = "",
        start: bool = True,
        oauth2_introspection: str | None = None,
        max_mail_size: str | None = None,
    ) -> None:
        if not os.path.exists(DOVECOT_BIN):
            raise FileNotFoundError(f"{DOVECOT_BIN} not found (apt-get install dovecot-imapd)")
        self.host = LOOPBACK
        self.port = 0
        self.without = tuple(c.upper() for c in without)
        self.separator = separator
        self.prefix = prefix
        # SASL XOAUTH2 too: each token is checked by POSTing it to this introspection URL (the
        # local identity platform of tests/oauth_server.py), which names the mailbox it may open.
        self.oauth2_introspection = oauth2_introspection
        self.max_mail_size = max_mail_size  # e.g. "1M": a bigger APPEND is refused (as Exchange's 35 MB limit)
        self.root = Path(tempfile.mkdtemp(prefix="mailbot-dovecot-"))
        os.chmod(self.root, 0o711)  # the mail user (nobody) must reach root/mail
        self.proc: subprocess.Popen | None = None
        self._users: dict[str, str] = {}
        self._lock = threading.Lock()
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self.mail_uid, self.mail_gid = nobody.pw_uid, nobody.pw_gid
            self.internal_user, self.login_user = "dovecot", "dovenull"
        else:
            me = pwd.getpwuid(os.geteuid())
            self.mail_uid, self.mail_gid = me.pw_uid, me.pw_gid
            self.internal_user = self.login_user = me.pw_name
        (self.root / "mail").mkdir(mode=0o700)
        os.chown(self.root / "mail", self.mail_uid, self.mail_gid)
        (self.root / "users").mkdir()  # one passwd-file per user: Dovecot re-reads a changed
        # file at most once a second, but opens a new one at once
        if start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Dovecot:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Dovecot({self.host}:{self.port}, root={self.root})"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def log_path(self) -> Path:
        return self.root / "dovecot.log"

    def log(self) -> str:
        """Dovecot's log and stderr so far (for failure messages)."""
        parts = []
        for p in (self.log_path, self.root / "stderr.log"):
            if p.exists():
                parts.append(p.read_text("utf-8", "replace"))
        return "\n".join(parts)[-5000:]

    def start(self) -> None:
        if self.running:
            return
        fixed = bool(self.port)
        for attempt in range(5):
            if not fixed:
                self.port = free_port()
            self._write_config()
            with open(self.root / "stderr.log", "ab") as err:
                self.proc = subprocess.Popen(
                    [DOVECOT_BIN, "-F", "-c", str(self.root / "dovecot.conf")],
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=err,
                    start_new_session=True,
                )
            try:
                _wait_greeting(self.port, b"* OK", self.proc, 15.0, "dovecot", self.log)
            except RuntimeError:
                _terminate(self.proc)
                self.proc = None
                if fixed or "in use" not in self.log() or attempt == 4:
                    raise
                continue
            _running.add(self)
            return

    def stop(self) -> None:
        _terminate(self.proc)
        self.proc = None
        _running.discard(self)

    def restart(self) -> None:
        """Stop and start again on the same port, keeping every mailbox."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and delete the server's directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _write_config(self) -> None:
        r = self.root
        caps = [c for c in DOVECOT_CAPABILITIES if c.upper() not in self.without]
        capability_line = f"  imap_capability = {' '.join(caps)}\n" if self.without else ""
        not_root = os.geteuid() != 0
        services_as_me = (
            f"""
default_internal_group = {grp.getgrgid(self.mail_gid).gr_name}
service imap-login {{
  chroot =
  user = {self.login_user}
}}
service anvil {{
  chroot =
}}
service auth-worker {{
  user = {self.internal_user}
}}
"""
            if not_root
            else ""
        )
        oauth2 = ""
        mechanisms = "plain login"
        if self.oauth2_introspection:
            (r / "dovecot-oauth2.conf.ext").write_text(
                f"introspection_mode = post\nintrospection_url = {self.oauth2_introspection}\n"
                "username_attribute = username\nactive_attribute = active\nactive_value = true\n"
                "force_introspection = yes\n")
            oauth2 = f"""passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {r}/dovecot-oauth2.conf.ext
}}
"""
            mechanisms = "plain login xoauth2 oauthbearer"
        size_limit = ""
        if self.max_mail_size:
            size_limit = f"""mail_plugins = $mail_plugins quota
plugin {{
  quota = maildir:User quota
  quota_rule = *:storage=0
  quota_max_mail_size = {self.max_mail_size}
}}
"""
        conf = f"""# written by tests/servers.py
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
protocols = imap
listen = {LOOPBACK}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_failure_delay = 0
default_internal_user = {self.internal_user}
default_login_user = {self.login_user}
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{r}/mail/%u:LAYOUT=fs:UTF-8
mail_fsync = never
namespace inbox {{
  inbox = yes
  separator = {self.separator}
  prefix = {self.prefix}
}}
{oauth2}passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN {r}/users/%u
}}
userdb {{
  driver = passwd-file
  args = {r}/users/%u
}}
service imap-login {{
  inet_listener imap {{
    address = {LOOPBACK}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service auth {{
  user = {"$default_internal_user" if not_root else "root"}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0  # no growing delays after failed logins from 127.0.0.1
  }}
}}
protocol imap {{
{capability_line}  mail_max_userip_connections = 100
}}
{services_as_me}{size_limit}"""
        (r / "dovecot.conf").write_text(conf)

    # -- users ----------------------------------------------------------------------------

    def add_user(self, name: str | None = None, password: str = "secret") -> ImapAccount:
        """Add a user (a fresh empty mailbox); name defaults to a new unique one."""
        with self._lock:
            if name is None:
                name = f"user{next(self._names)}"
                while name in self._users:
                    name = f"user{next(self._names)}"
            if not name or any(ch in name for ch in ":\n/ %") or name.startswith(".") or name in self._users:
                raise ValueError(f"bad or duplicate user name {name!r}")
            if ":" in password or "\n" in password:
                raise ValueError("password must not contain ':' or newlines")
            self._users[name] = password
            home = self.root / "mail" / name
            line = f"{name}:{{PLAIN}}{password}:{self.mail_uid}:{self.mail_gid}::{home}::\n"
            (self.root / "users" / name).write_text(line, encoding="utf-8")
        return ImapAccount(self, name, password)

    def account(self, name: str) -> ImapAccount:
        return ImapAccount(self, name, self._users[name])

    def client(self, user: str, password: str | None = None):
        """A logged-in imapclient.IMAPClient (normalise_times off: aware datetimes)."""
        from imapclient import IMAPClient

        c = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        c.normalise_times = False
        c.login(user, self._users[user] if password is None else password)
        return c

    def mailbox(self, user: str, **kwargs):
        return self.account(user).mailbox(**kwargs)

    def maildir(self, user: str) -> Path:
        """Where the user's Maildir lives on disk (owned by the mail uid)."""
        return self.root / "mail" / user


# --------------------------------------------------------------------------------------- SMTP


@dataclass
class SinkMessage:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    auth_user: str | None = None
    session: tuple[str, int] | None = None  # the client's address: one per SMTP connection
    message: EmailMessage = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.message = email.message_from_bytes(self.raw, policy=email.policy.default)

    def __getitem__(self, header: str):
        return self.message[header]


class SmtpSink:
    """An SMTP server (tests/smtp_sink.py) in its own process, storing what it accepts.

    mode: the answer to DATA — "accept", "tempfail" (451), "permfail" (554) or "hang" (no answer
        until the mode changes); changeable at run time with set_mode().  reject_rcpt() and
        tempfail_rcpt() make chosen recipients refused at RCPT TO (550 / 450).
    auth: (user, password) to accept with AUTH PLAIN/LOGIN (advertised without TLS); without it
        no AUTH is offered.  auth_required: refuse mail before AUTH.
    """

    def __init__(
        self,
        *,
        mode: str = "accept",
        auth: tuple[str, str] | None = None,
        auth_required: bool = False,
        oauth_key: str | None = None,
        start: bool = True,
    ) -> None:
        self.host = LOOPBACK
        self.port = 0
        self.mode = mode
        self.auth = auth
        self.auth_required = auth_required
        self.oauth_key = oauth_key  # AUTH XOAUTH2 with tokens signed by this HS256 key (tests/oauth_server.py)
        self.root = Path(tempfile.mkdtemp(prefix="mailbot-smtp-"))
        self.proc: subprocess.Popen | None = None
        self.set_control(mode=mode, reject_rcpt=(), tempfail_rcpt=())
        if start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise

    def __enter__(self) -> SmtpSink:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SmtpSink({self.host}:{self.port}, mode={self.mode})"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        p = self.root / "sink.log"
        return p.read_text("utf-8", "replace")[-5000:] if p.exists() else ""

    def start(self) -> None:
        if self.running:
            return
        port_file = self.root / "port"
        port_file.unlink(missing_ok=True)
        cmd = [sys.executable, str(SINK_SCRIPT), "--dir", str(self.root), "--port", str(self.port)]
        if self.auth:
            cmd += ["--auth", f"{self.auth[0]}:{self.auth[1]}"]
        if self.auth_required:
            cmd.append("--auth-required")
        if self.oauth_key:
            cmd += ["--oauth-key", self.oauth_key]
        with open(self.root / "sink.log", "ab") as err:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True
            )
        deadline = time.monotonic() + 15.0
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                _terminate(self.proc)
                raise RuntimeError(f"smtp sink did not start:\n{self.log()}")
            time.sleep(0.01)
        self.port = int(port_file.read_text())
        _wait_greeting(self.port, b"220", self.proc, 15.0, "smtp sink", self.log)
        _running.add(self)

    def stop(self) -> None:
        _terminate(self.proc)
        self.proc = None
        _running.discard(self)

    def restart(self) -> None:
        """Stop and start again on the same port, keeping stored messages and the mode."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- behaviour ------------------------------------------------------------------------

    def set_control(self, *, mode: str | None = None, reject_rcpt=None, tempfail_rcpt=None,
                    deliver=None) -> None:
        control = self._control()
        if deliver is not None:
            control["deliver"] = dict(deliver)
        if mode is not None:
            if mode not in ("accept", "tempfail", "permfail", "hang"):
                raise ValueError(f"unknown sink mode {mode!r}")
            control["mode"] = self.mode = mode
        if reject_rcpt is not None:
            control["reject_rcpt"] = list(reject_rcpt)
        if tempfail_rcpt is not None:
            control["tempfail_rcpt"] = list(tempfail_rcpt)
        tmp = self.root / ".control.json.tmp"
        tmp.write_text(json.dumps(control))
        os.replace(tmp, self.root / "control.json")

    def set_mode(self, mode: str) -> None:
        """"accept", "tempfail" (451 to DATA), "permfail" (554) or "hang" (no answer)."""
        self.set_control(mode=mode)

    def reject_rcpt(self, *addresses: str) -> None:
        """Answer 550 to RCPT TO for these addresses (none: accept every recipient again)."""
        self.set_control(reject_rcpt=addresses)

    def tempfail_rcpt(self, *addresses: str) -> None:
        """Answer 450 to RCPT TO for these addresses (none: accept every recipient again)."""
        self.set_control(tempfail_rcpt=addresses)

    def deliver_to(self, address: str, account: ImapAccount) -> None:
        """Deliver what is accepted for `address` into the account's INBOX as well (as a relay
        delivers to a local mailbox), before answering DATA."""
        self.set_control(deliver={address.lower(): {"host": account.host, "port": account.port,
                                                    "user": account.username, "password": account.password}})

    def _control(self) -> dict:
        try:
            return json.loads((self.root / "control.json").read_text())
        except (OSError, ValueError):
            return {"mode": "accept", "reject_rcpt": [], "tempfail_rcpt": []}

    # -- what arrived ---------------------------------------------------------------------

    def messages(self) -> list[SinkMessage]:
        """Every accepted message, oldest first."""
        out = []
        folder = self.root / "messages"
        if not folder.exists():
            return out
        for meta_path in sorted(folder.glob("*.json")):
            eml = meta_path.with_suffix(".eml")
            if not eml.exists():
                continue
            meta = json.loads(meta_path.read_text("utf-8"))
            out.append(
                SinkMessage(
                    mail_from=meta["mail_from"],
                    rcpt_tos=meta["rcpt_tos"],
                    raw=eml.read_bytes(),
                    auth_user=meta.get("auth_user"),
                    session=tuple(meta["session"]) if meta.get("session") else None,
                )
            )
        return out

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[SinkMessage]:
        """Wait until at least count messages arrived; returns them all."""
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.messages()
            if len(msgs) >= count or time.monotonic() > deadline:
                return msgs
            time.sleep(0.02)

    def clear(self) -> None:
        """Forget every stored message."""
        folder = self.root / "messages"
        if folder.exists():
            for p in folder.iterdir():
                p.unlink(missing_ok=True)

    def reset(self) -> None:
        """Back to a fresh sink: accept mode, no rejected recipients, no delivery, no messages."""
        self.set_control(mode="accept", reject_rcpt=(), tempfail_rcpt=(), deliver={})
        self.clear()
        if not self.running:
            self.start()

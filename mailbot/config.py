"""TOML configuration → typed settings.

Every problem stops the bot with one line that names the key and what is wrong
(`ConfigError`).  With no file at all the embedded default is used: a local Maildir
and a local outbox under one directory, no servers.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Any

from mailbot.auth import OAuthSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES = PROJECT_ROOT / "rules"
DEFAULT_TEMPLATES = PROJECT_ROOT / "templates"
DEFAULT_FROM_NAME = "USEN SPOT 事務センター"  # the name branches see on every reply


class ConfigError(Exception):
    """A configuration problem; str() is the one line shown to the user."""


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    ssl: bool
    username: str
    password: str = field(repr=False)
    inbox: str = "INBOX"
    timeout: float = 30.0


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    starttls: bool
    sender: str  # the [smtp] from address
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    # Each reply also goes (Bcc) to the shared mailbox itself: filed to [folders] sent, where staff
    # see what the bot sent, and the proof after a crash mid-send that a reply went out already.
    copy_to_mailbox: bool = False
    copy_wait: float = 300.0  # seconds an interrupted reply waits for its copy before it is sent again


@dataclass(frozen=True)
class Folders:
    processed: str = "処理済"
    held: str = "保留"
    ignored: str = "対象外"
    # Staff decide on a held mail by moving its note (defaults: subfolders of `held`).
    held_accept: str = ""  # → the acceptance is sent
    held_remand: str = ""  # → the remand is sent
    held_originals: str = ""  # the held originals themselves, untouched
    sent: str = "送信済"  # the copies of the bot's replies ([smtp] copy_to_mailbox)

    def __post_init__(self) -> None:
        for name, sub in (("held_accept", "受付"), ("held_remand", "差戻"), ("held_originals", "原本")):
            if not getattr(self, name):
                object.__setattr__(self, name, f"{self.held}/{sub}")

    @property
    def all(self) -> list[str]:
        return [self.processed, self.held, self.ignored, self.held_accept, self.held_remand, self.held_originals,
                self.sent]


@dataclass(frozen=True)
class FormSettings:
    """Opening attached PDFs: the agreed password and the limits of the sandbox."""

    password: str = "uspot"
    max_bytes: int = 20 * 1024 * 1024
    max_pages: int = 30
    timeout_s: float = 20.0
    memory_mb: int = 1024


@dataclass(frozen=True)
class LedgerSettings:
    """The 管理台帳's daily share with FiberGate (DOMAIN.md §8)."""

    out_dir: Path  # where `mailbot ledger` writes usen_spot_<YYYYMMDD>.csv / .xlsx
    fibergate_to: tuple[str, ...] = ()  # none: the share is written, never mailed
    cc: tuple[str, ...] = ()  # inside the internal domains
    send_at: time = time(17, 30)  # Asia/Tokyo, on business days, by `mailbot run`


@dataclass(frozen=True)
class ServiceSettings:
    """Running it as a service: health limits, the metrics endpoint, the log format."""

    max_poll_age: int = 600  # seconds since the last successful poll before `health` fails
    max_held_age: int = 2  # business days a held item may wait before `health` fails
    metrics_listen: tuple[str, int] | None = None  # (host, port) of the Prometheus endpoint; None: off
    log_format: str = "text"  # text | json


@dataclass(frozen=True)
class Settings:
    imap: ImapSettings | None  # None: the local Maildir below
    maildir: Path | None
    smtp: SmtpSettings | None  # None: replies are written to the outbox Maildir below
    outbox: Path | None
    reply_from: str
    reply_from_name: str  # the display name of the bot's From (DOMAIN.md §6)
    folders: Folders
    unis_extract: Path | None
    branch_directory: Path | None
    digest_recipients: tuple[str, ...]
    digest_time: time  # Asia/Tokyo
    poll_interval: int
    database: Path
    internal_domains: tuple[str, ...]
    acknowledge_held: bool
    rules_dir: Path
    templates_dir: Path
    forms: FormSettings = FormSettings()
    ledger: LedgerSettings = LedgerSettings(out_dir=Path("ledger"))  # from_dict: relative to the config file
    service: ServiceSettings = ServiceSettings()
    oauth: OAuthSettings | None = None  # [auth] method = "oauth2": IMAP and SMTP log in with XOAUTH2
    shadow: bool = False  # decide and record, but send, file and share nothing (a trial beside staff)
    max_send_attempts: int = 8
    max_processing_attempts: int = 3  # a mail whose processing failed this often is held (poison)
    max_replies_per_sender_per_day: int = 30  # more from one sender in a day: held (REPLY_LIMIT)
    max_replies_per_hour: int = 200  # circuit breaker: replies beyond this wait for the next hour
    source: Path | None = None  # the file these came from


# ---------------------------------------------------------------- reading values


class _Table:
    """One TOML table with the path of its keys, so errors can name them."""

    def __init__(self, data: dict[str, Any], name: str):
        self.data, self.name = data, name

    def key(self, k: str) -> str:
        return f"{self.name}.{k}" if self.name else k

    def has(self, k: str) -> bool:
        return k in self.data

    def get(self, k: str, kind: type | tuple[type, ...], default: Any = ..., *, allow_empty: bool = False) -> Any:
        if k not in self.data:
            if default is ...:
                raise ConfigError(f"{self.key(k)}: missing (required)")
            return default
        value = self.data[k]
        # TOML booleans are ints in Python; keep them apart.
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise ConfigError(f"{self.key(k)}: expected {_kind_name(kind)}, got a boolean")
        if not isinstance(value, kind):
            shown = "" if "password" in k else f" {value!r}"  # a secret is never echoed
            raise ConfigError(f"{self.key(k)}: expected {_kind_name(kind)}, got {type(value).__name__}{shown}")
        if isinstance(value, str) and not allow_empty and not value.strip():
            raise ConfigError(f"{self.key(k)}: must not be empty")
        return value

    def port(self, k: str, default: Any = ...) -> int:
        value = self.get(k, int, default)
        if not 1 <= value <= 65535:
            raise ConfigError(f"{self.key(k)}: {value} is not a port number (1-65535)")
        return value

    def path(self, k: str, base: Path, default: Any = ..., *, must_exist: bool = False) -> Path | None:
        value = self.get(k, str, default)
        if value is None:
            return None
        p = Path(os.path.expanduser(value))
        p = p if p.is_absolute() else base / p
        if must_exist and not p.exists():
            raise ConfigError(f"{self.key(k)}: {p} does not exist")
        return p

    def table(self, k: str) -> _Table:
        value = self.data.get(k, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.key(k)}: expected a table [{self.key(k)}]")
        return _Table(value, self.key(k))

    def secret(self, k: str, required: bool) -> str | None:
        """A password from the file, or from the environment variable named by `<k>_env`."""
        env_key = f"{k}_env"
        if self.has(k) and self.has(env_key):
            raise ConfigError(f"{self.key(k)}: give either {k} or {env_key}, not both")
        if self.has(env_key):
            var = self.get(env_key, str)
            if var not in os.environ:
                raise ConfigError(f"{self.key(env_key)}: environment variable {var} is not set")
            return os.environ[var]
        if self.has(k):
            return self.get(k, str, allow_empty=True)
        if required:
            raise ConfigError(f"{self.key(k)}: missing (give {k} or {env_key})")
        return None

    def unknown(self, known: set[str]) -> None:
        extra = sorted(set(self.data) - known)
        if extra:
            raise ConfigError(f"{self.key(extra[0])}: unknown setting")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list", float: "a number"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _is_address(value: object) -> bool:
    if not isinstance(value, str):
        return False
    local, at, domain = value.rpartition("@")
    return bool(at and local) and "." in domain and not any(c.isspace() for c in value)


def _address(table: _Table, k: str, default: Any = ...) -> str:
    value = table.get(k, str, default)
    if not _is_address(value):
        raise ConfigError(f"{table.key(k)}: {value!r} is not a mail address")
    return value


def _addresses(table: _Table, k: str, internal_domains: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """A list of mail addresses (or one); with `internal_domains`, each must be inside them."""
    value = table.get(k, (list, str), [])
    values = [value] if isinstance(value, str) else value
    for i, v in enumerate(values):
        if not _is_address(v):
            raise ConfigError(f"{table.key(k)}[{i}]: {v!r} is not a mail address")
        domain = v.rpartition("@")[2].lower()
        if internal_domains is not None and not any(domain == d or domain.endswith("." + d) for d in internal_domains):
            raise ConfigError(f"{table.key(k)}[{i}]: {v!r} is outside policy.internal_domains")
    return tuple(values)


def _oauth(t: _Table, base: Path) -> OAuthSettings | None:
    """[auth]: password (default) or oauth2 (Microsoft 365: an app registration's certificate or secret)."""
    if t.has("client_secret"):
        raise ConfigError(f"{t.key('client_secret')}: never the secret itself here: give client_secret_env or "
                          "client_secret_file")
    t.unknown({"method", "tenant_id", "client_id", "certificate_path", "certificate_thumbprint",
               "client_secret_env", "client_secret_file", "secret_expires", "authority", "ca_file"})
    method = t.get("method", str, "password")
    if method not in ("password", "oauth2"):
        raise ConfigError(f"{t.key('method')}: {method!r} is neither \"password\" nor \"oauth2\"")
    if method == "password":
        return None
    cert = t.path("certificate_path", base, None, must_exist=True)
    secret = None
    if cert is not None:
        thumbprint = t.get("certificate_thumbprint", str, "").replace(":", "").strip()
        if not re.fullmatch(r"[0-9A-Fa-f]{40}", thumbprint):
            raise ConfigError(f"{t.key('certificate_thumbprint')}: expected the certificate's SHA-1 thumbprint "
                              "(40 hex digits)")
    elif t.has("client_secret_env"):
        var = t.get("client_secret_env", str)
        if not os.environ.get(var):
            raise ConfigError(f"{t.key('client_secret_env')}: environment variable {var} is not set")
        secret = os.environ[var]
    elif t.has("client_secret_file"):
        path = t.path("client_secret_file", base, None, must_exist=True)
        try:
            secret = path.read_text("utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{t.key('client_secret_file')}: {path} cannot be read ({e})") from None
        if not secret:
            raise ConfigError(f"{t.key('client_secret_file')}: {path} is empty")
    else:
        raise ConfigError(f"{t.key('method')}: oauth2 needs certificate_path (preferred), client_secret_env "
                          "or client_secret_file")
    expires = t.get("secret_expires", (str, date), None)
    if isinstance(expires, str):
        try:
            expires = date.fromisoformat(expires)
        except ValueError:
            raise ConfigError(f"{t.key('secret_expires')}: {expires!r} is not a date YYYY-MM-DD") from None
    authority = t.get("authority", str, None)
    if authority is not None and not authority.startswith("https://"):
        raise ConfigError(f"{t.key('authority')}: {authority!r} must be an https:// URL")
    return OAuthSettings(tenant_id=t.get("tenant_id", str), client_id=t.get("client_id", str), certificate_path=cert,
                         certificate_thumbprint=t.get("certificate_thumbprint", str, None) if cert else None,
                         client_secret=secret, secret_expires=expires, authority=authority.rstrip("/") if authority else None,
                         ca_file=t.path("ca_file", base, None, must_exist=True))


def _service(top: _Table) -> ServiceSettings:
    health = top.table("health")
    health.unknown({"max_poll_age", "max_held_age"})
    metrics = top.table("metrics")
    metrics.unknown({"listen"})
    logging_t = top.table("logging")
    logging_t.unknown({"format"})
    listen = None
    if metrics.has("listen"):
        value = metrics.get("listen", str)
        host, _, port = value.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{metrics.key('listen')}: {value!r} is not HOST:PORT (e.g. \"127.0.0.1:9464\")")
        listen = (host, int(port))
    log_format = logging_t.get("format", str, "text")
    if log_format not in ("text", "json"):
        raise ConfigError(f"{logging_t.key('format')}: {log_format!r} is neither \"text\" nor \"json\"")
    return ServiceSettings(max_poll_age=_positive(health, "max_poll_age", int, ServiceSettings.max_poll_age),
                           max_held_age=_positive(health, "max_held_age", int, ServiceSettings.max_held_age),
                           metrics_listen=listen, log_format=log_format)


def _positive(table: _Table, k: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = table.get(k, kind, default)
    if value <= 0:
        raise ConfigError(f"{table.key(k)}: {value} must be greater than 0")
    return value


def _time_of_day(table: _Table, k: str, default: time) -> time:
    value = table.get(k, str, f"{default:%H:%M}")
    hh, _, mm = value.partition(":")
    if not (hh.isdigit() and mm.isdigit() and len(mm) == 2 and int(hh) < 24 and int(mm) < 60):
        raise ConfigError(f"{table.key(k)}: {value!r} is not a time of day HH:MM")
    return time(int(hh), int(mm))


# ---------------------------------------------------------------- loading

_TOP_LEVEL = {"auth", "imap", "maildir", "folders", "smtp", "outbox", "unis", "branches", "digest",
              "scheduler", "state", "policy", "paths", "forms", "ledger", "health", "metrics", "logging"}


def load(path: str | os.PathLike[str]) -> Settings:
    """Read and validate a configuration file."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read configuration ({e})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    return from_dict(data, base=path.parent, source=path)


def embedded_default(root: Path) -> Settings:
    """The settings of the embedded default: everything local under `root`."""
    return from_dict({"maildir": {"path": "mailbox"}, "outbox": {"path": "outbox"},
                      "state": {"database": "state.sqlite3"},
                      "unis": {"extract": "unis/usen_spot_orders.csv"},
                      "branches": {"directory": "branches.csv"}}, base=root)


def from_dict(data: dict[str, Any], base: Path, source: Path | None = None) -> Settings:
    top = _Table(data, "")
    top.unknown(_TOP_LEVEL)

    oauth = _oauth(top.table("auth"), base)
    imap = None
    maildir = None
    if top.has("imap"):
        t = top.table("imap")
        t.unknown({"host", "port", "ssl", "username", "password", "password_env", "inbox", "timeout"})
        ssl = t.get("ssl", bool, True)
        imap = ImapSettings(host=t.get("host", str), port=t.port("port", 993 if ssl else 143), ssl=ssl,
                            username=t.get("username", str),
                            password=t.secret("password", required=oauth is None) or "",
                            inbox=t.get("inbox", str, "INBOX"),
                            timeout=float(t.get("timeout", (int, float), 30.0)))
    else:
        t = top.table("maildir")
        t.unknown({"path"})
        maildir = t.path("path", base, "mailbox")

    smtp = None
    outbox = None
    if top.has("smtp"):
        t = top.table("smtp")
        t.unknown({"host", "port", "starttls", "username", "password", "password_env", "from", "from_name", "timeout",
                   "copy_to_mailbox", "copy_wait"})
        username = t.get("username", str, None)
        smtp = SmtpSettings(host=t.get("host", str), port=t.port("port", 25), starttls=t.get("starttls", bool, False),
                            sender=_address(t, "from"), username=username,
                            password=t.secret("password", required=False),
                            timeout=float(t.get("timeout", (int, float), 30.0)),
                            copy_to_mailbox=t.get("copy_to_mailbox", bool, False),
                            copy_wait=float(_positive(t, "copy_wait", (int, float), SmtpSettings.copy_wait)))
        if smtp.password is not None and username is None:
            raise ConfigError("smtp.username: missing (a password is given)")
    else:
        t = top.table("outbox")
        t.unknown({"path", "from", "from_name"})
        outbox = t.path("path", base, "outbox")

    folders_t = top.table("folders")
    folders_t.unknown({"processed", "held", "ignored", "held_accept", "held_remand", "held_originals",
                       "sent"})
    folders = Folders(processed=folders_t.get("processed", str, Folders.processed),
                      held=folders_t.get("held", str, Folders.held),
                      ignored=folders_t.get("ignored", str, Folders.ignored),
                      held_accept=folders_t.get("held_accept", str, ""),
                      held_remand=folders_t.get("held_remand", str, ""),
                      held_originals=folders_t.get("held_originals", str, ""),
                      sent=folders_t.get("sent", str, Folders.sent))
    names = folders.all
    if len(set(names)) != len(names):
        raise ConfigError("folders: processed, held, ignored, held_accept, held_remand, held_originals "
                          "and sent must be different folders")
    inbox_name = imap.inbox if imap else "INBOX"
    if inbox_name in names:
        raise ConfigError(f"folders: the inbox {inbox_name!r} cannot also be a target folder")

    unis = top.table("unis")
    unis.unknown({"extract"})
    branches = top.table("branches")
    branches.unknown({"directory"})

    digest = top.table("digest")
    digest.unknown({"recipients", "time"})

    scheduler = top.table("scheduler")
    scheduler.unknown({"poll_interval"})
    poll_interval = scheduler.get("poll_interval", int, 60)
    if poll_interval < 1:
        raise ConfigError(f"scheduler.poll_interval: {poll_interval} must be at least 1 second")

    state = top.table("state")
    state.unknown({"database"})

    policy = top.table("policy")
    policy.unknown({"internal_domains", "acknowledge_held", "max_send_attempts", "max_processing_attempts",
                    "max_replies_per_sender_per_day", "max_replies_per_hour", "shadow"})
    domains = policy.get("internal_domains", list, ["usen.co.jp"])
    if not domains or not all(isinstance(d, str) and d.strip() for d in domains):
        raise ConfigError("policy.internal_domains: must be a non-empty list of domain names")
    max_attempts = policy.get("max_send_attempts", int, 8)
    if max_attempts < 1:
        raise ConfigError(f"policy.max_send_attempts: {max_attempts} must be at least 1")
    limits = {}
    for key, default in (("max_processing_attempts", 3), ("max_replies_per_sender_per_day", 30),
                         ("max_replies_per_hour", 200)):
        limits[key] = policy.get(key, int, default)
        if limits[key] < 1:
            raise ConfigError(f"policy.{key}: {limits[key]} must be at least 1")

    forms_t = top.table("forms")
    forms_t.unknown({"password", "max_mb", "max_pages", "timeout", "memory_mb"})
    forms = FormSettings(
        password=forms_t.get("password", str, FormSettings.password),
        max_bytes=int(_positive(forms_t, "max_mb", (int, float), FormSettings.max_bytes / 2**20) * 2**20),
        max_pages=_positive(forms_t, "max_pages", int, FormSettings.max_pages),
        timeout_s=float(_positive(forms_t, "timeout", (int, float), FormSettings.timeout_s)),
        memory_mb=_positive(forms_t, "memory_mb", int, FormSettings.memory_mb),
    )

    paths = top.table("paths")
    paths.unknown({"rules", "templates"})

    internal_domains = tuple(d.strip().lower().lstrip("@") for d in domains)
    # The digest goes to supervisors inside the company only: refused here, not at send time.
    recipients = _addresses(digest, "recipients", internal_domains)
    service = _service(top)
    ledger_t = top.table("ledger")
    ledger_t.unknown({"out_dir", "fibergate_to", "cc", "send_at"})
    ledger = LedgerSettings(out_dir=ledger_t.path("out_dir", base, "ledger"),
                            fibergate_to=_addresses(ledger_t, "fibergate_to"),
                            cc=_addresses(ledger_t, "cc", internal_domains),
                            send_at=_time_of_day(ledger_t, "send_at", LedgerSettings.send_at))

    outbox_t = top.table("outbox")
    reply_from = smtp.sender if smtp else _address(outbox_t, "from", "usen_spot@usen.co.jp")
    name_t = top.table("smtp") if smtp else outbox_t
    reply_from_name = name_t.get("from_name", str, DEFAULT_FROM_NAME).strip()

    return Settings(
        imap=imap, maildir=maildir, smtp=smtp, outbox=outbox, reply_from=reply_from,
        reply_from_name=reply_from_name, folders=folders,
        unis_extract=unis.path("extract", base, None),
        branch_directory=branches.path("directory", base, None),
        digest_recipients=tuple(recipients), digest_time=_time_of_day(digest, "time", time(18, 0)),
        poll_interval=poll_interval,
        database=state.path("database", base, "mailbot-state.sqlite3"),
        internal_domains=internal_domains, ledger=ledger, service=service, oauth=oauth,
        shadow=policy.get("shadow", bool, False),
        acknowledge_held=policy.get("acknowledge_held", bool, False),
        rules_dir=paths.path("rules", base, str(DEFAULT_RULES), must_exist=True),
        templates_dir=paths.path("templates", base, str(DEFAULT_TEMPLATES), must_exist=True),
        forms=forms,
        max_send_attempts=max_attempts, **limits,
        source=source,
    )

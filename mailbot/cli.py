"""Command line: poll, run, check, digest, history (held comes with the held-folder work)."""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

from mailbot import __version__
from mailbot.auth import AuthError
from mailbot.config import ConfigError, Settings, embedded_default, load
from mailbot.logs import configure as configure_logs
from mailbot.logs import log_failure
from mailbot.mailbox import MailboxError
from mailbot.rules import RulesError, check_templates, load_rules
from mailbot.text import TOKYO, japanese_time

log = logging.getLogger("mailbot")
DEMO_DIR = Path("mailbot-demo")


class UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mailbot", description="USEN SPOT mailbox automation")
    p.add_argument("--version", action="version", version=f"mailbot {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log every step")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    poll = sub.add_parser("poll", help="one cycle: read new mail, decide, reply, file; then exit")
    poll.add_argument("--config", type=Path, help="configuration file (default: the embedded local demo)")
    poll.add_argument("--demo-dir", type=Path, default=DEMO_DIR,
                      help="where the embedded default keeps its mailbox, outbox and state (without --config)")

    run = sub.add_parser("run", help="poll every [scheduler] poll_interval seconds until SIGTERM/SIGINT")
    run.add_argument("--config", type=Path, help="configuration file (default: the embedded local demo)")
    run.add_argument("--demo-dir", type=Path, default=DEMO_DIR,
                     help="where the embedded default keeps its mailbox, outbox and state (without --config)")

    check = sub.add_parser("check", help="run the pipeline on mail files, without side effects")
    check.add_argument("--config", type=Path, help="configuration file (for rules and reference data)")
    check.add_argument("--unis", type=Path, help="UNIS extract CSV (overrides [unis] extract)")
    check.add_argument("--branches", type=Path, help="branch directory CSV (overrides [branches] directory)")
    check.add_argument("--json", action="store_true", help="one JSON object per mail and line")
    check.add_argument("mails", nargs="+", type=Path, metavar="MAIL.eml")

    digest = sub.add_parser("digest", help="the supervisors' daily digest: print it, or send it (once per day)")
    digest.add_argument("--config", type=Path, help="configuration file (default: the embedded local demo)")
    digest.add_argument("--date", help="the day, YYYY-MM-DD (default: today, Asia/Tokyo)")
    digest.add_argument("--send", action="store_true", help="send it to [digest] recipients unless already sent")
    digest.add_argument("--html", type=Path, metavar="FILE", help="also write it as HTML with its chart to FILE")

    ledger = sub.add_parser("ledger", help="the day's 管理台帳 share with FiberGate: write its CSV and workbook, "
                                           "or send it (once per day)")
    ledger.add_argument("--config", type=Path, help="configuration file (default: the embedded local demo)")
    ledger.add_argument("--date", help="the business day, YYYY-MM-DD (default: today, Asia/Tokyo)")
    ledger.add_argument("--out", type=Path, help="where to write the files (default: [ledger] out_dir)")
    ledger.add_argument("--send", action="store_true", help="mail it to [ledger] fibergate_to unless already sent")

    held = sub.add_parser("held", help="the held items staff have not decided yet, oldest first")
    held.add_argument("--config", type=Path, help="configuration file (default: the embedded local demo)")
    held.add_argument("--save", type=Path, metavar="DIR", help="also write each open item's note to DIR as .eml")

    replay = sub.add_parser("replay", help="decide the recorded mails again with other rules; list what changes")
    replay.add_argument("--config", type=Path, help="configuration file (default: the embedded local demo)")
    replay.add_argument("--since", help="only mails received from this day on, YYYY-MM-DD")
    replay.add_argument("--rules", type=Path, metavar="DIR", help="the rules to try (default: those in force)")
    replay.add_argument("--templates", type=Path, metavar="DIR", help="the templates to try")
    replay.add_argument("--max-changes", type=int, metavar="N", help="exit 1 when more than N decisions change")
    replay.add_argument("--json", action="store_true", help="one JSON object per changed mail")

    explain = sub.add_parser("explain", help="why mailbot decided what it did, for a Message-ID or a customer code")
    explain.add_argument("--config", type=Path, help="configuration file (default: the embedded local demo)")
    explain.add_argument("key", metavar="MESSAGE-ID|CODE")

    rules_cmd = sub.add_parser("rules", help="the rules and templates: check them before they are used")
    rules_sub = rules_cmd.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    rules_check = rules_sub.add_parser("check", help="load every rules file and render every template with sample data")
    rules_check.add_argument("dir", nargs="?", type=Path, metavar="DIR", help="the rules (default: those in force)")
    rules_check.add_argument("--templates", type=Path, metavar="DIR", help="the templates (default: those in force)")
    rules_check.add_argument("--config", type=Path, help="configuration file (default: the embedded local demo)")

    health = sub.add_parser("health", help="is the bot alive and well? exit 1 with one line per problem")
    health.add_argument("--config", type=Path, help="configuration file (default: the embedded local demo)")
    health.add_argument("--json", action="store_true", help='one JSON object {"ok": …, "problems": […]}')

    history = sub.add_parser("history", help="everything mailbot did for a customer code")
    history.add_argument("--config", type=Path, help="configuration file (default: the embedded local demo)")
    history.add_argument("--json", action="store_true", help="one JSON object")
    history.add_argument("code", metavar="CODE", help="the customer code (9 digits)")
    return p


_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def _big_buffers_in_their_own_mappings() -> None:
    """Big mails (15 MB and more) are fetched, parsed and freed one after another.  glibc raises
    its mmap threshold to the size of each such buffer freed, so the next ones come from the heap,
    whose holes stay mapped: the poll's memory grew by ~60 MB over six such mails.  A fixed
    threshold keeps each big buffer in a mapping of its own, returned when it is freed."""
    try:
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
    except (OSError, AttributeError):
        pass  # not glibc: its own policy


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logs("text", args.verbose)
    _big_buffers_in_their_own_mappings()
    try:
        return {"poll": cmd_poll, "run": cmd_run, "check": cmd_check, "digest": cmd_digest,
                "history": cmd_history, "held": cmd_held, "ledger": cmd_ledger,
                "health": cmd_health, "replay": cmd_replay, "explain": cmd_explain,
                "rules": cmd_rules}[args.command](args)
    except (ConfigError, RulesError, UsageError, AuthError) as e:
        print(f"mailbot: {e}", file=sys.stderr)
        return 2
    except MailboxError as e:
        print(f"mailbot: mailbox: {e}", file=sys.stderr)
        if args.command == "poll":
            record_unreachable(_settings(args), e)
        return 1
    except BrokenPipeError:
        # The reader went away (`mailbot held | head -1`): stop quietly, as Unix tools do; what is
        # still buffered goes nowhere instead of raising again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, the status a shell reports for a tool its pipe stopped


# ---------------------------------------------------------------- wiring


def _configured(args: argparse.Namespace) -> Settings:
    """The settings of --config, else the embedded default in --demo-dir (nothing validated yet)."""
    return load(args.config) if args.config else embedded_default(Path(getattr(args, "demo_dir", DEMO_DIR)).resolve())


def _settings(args: argparse.Namespace) -> Settings:
    """The settings, with every rules file and template validated: a broken one stops the command
    here, before any mail is touched, with one line naming its file and line."""
    settings = _configured(args)
    configure_logs(settings.service.log_format, getattr(args, "verbose", False))
    load_rules(settings.rules_dir)
    check_templates(settings.templates_dir)
    if getattr(args, "command", None) in ("poll", "run"):  # before any mail is touched
        from mailbot.forms.sandbox import prestart_in_background

        prestart_in_background()  # the PDF readers' forkserver starts beside the checks below
        _check_rules_once(settings)
        source = token_source(settings)
        if source is not None:
            source.check()  # a wrong tenant, client, secret or certificate: one line, before any mail
            from mailbot.auth import expiry_warning

            warning = expiry_warning(settings.oauth, datetime.now(TOKYO),
                                     load_rules(settings.rules_dir).digest.credential_warning_days)
            if warning:
                log.warning("auth: %s", warning)
    return settings


def _check_rules_once(settings: Settings) -> None:
    """Render every template with sample data (reports/rulecheck.py) — once per version of the
    rules, templates and mailbot: the version that passed is remembered beside the database."""
    import hashlib

    from mailbot.reports.rulecheck import check_rules
    from mailbot.rules import rules_version

    code = hashlib.sha256()  # the program too: an update that renders differently is checked again
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        st = path.stat()
        code.update(f"{path.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    key = f"{__version__} {code.hexdigest()[:16]} {rules_version(settings.rules_dir, settings.templates_dir)}"
    mark = settings.database.with_name(settings.database.name + ".rules-checked")
    try:
        if mark.read_text("utf-8") == key:
            return
    except OSError:
        pass
    problems = check_rules(settings.rules_dir, settings.templates_dir)
    if problems:
        raise RulesError(problems[0] + (f" (and {len(problems) - 1} more: mailbot rules check)"
                                        if len(problems) > 1 else ""))
    try:
        mark.write_text(key, encoding="utf-8")
    except OSError:
        pass  # a read-only place: checked again next time


def _open(settings: Settings):
    """The mailbox, transport and store these settings describe."""
    from mailbot.record.store import Store

    if settings.imap:
        from mailbot.mailbox.imap import ImapMailbox

        i = settings.imap
        mailbox = ImapMailbox(i.host, i.port, i.ssl, i.username, i.password, timeout=i.timeout,
                              token_source=token_source(settings))
    else:
        from mailbot.mailbox.maildir import MaildirMailbox

        mailbox = MaildirMailbox(settings.maildir)
    return mailbox, _transport(settings), Store(settings.database)


def _transport(settings: Settings):
    from mailbot.reply.send import MaildirOutbox, SmtpTransport

    return SmtpTransport(settings.smtp, token_source(settings)) if settings.smtp else MaildirOutbox(settings.outbox)


_token_sources: dict[object, object] = {}


def token_source(settings: Settings):
    """The process's one token source for [auth] oauth2 (IMAP, IDLE and SMTP share its token); None
    with passwords."""
    if settings.oauth is None:
        return None
    from mailbot.auth import TokenSource

    return _token_sources.setdefault(settings.oauth, TokenSource(settings.oauth))


def record_unreachable(settings: Settings, error: Exception) -> None:
    """The digest alerts on it: recorded in the audit trail without a mail."""
    from mailbot.record.store import Store

    store = Store(settings.database)
    try:
        store.event(None, "mailbox unreachable", str(error))
    finally:
        store.close()


def _seed_demo(settings: Settings) -> bool:
    """The embedded default starts with a morning's worth of realistic mail, and the UNIS
    extract and branch directory of that morning."""
    if settings.imap or settings.maildir.exists():
        return False
    from demo.samples import sample_directory, sample_extract, seed_maildir
    from mailbot.mailbox.maildir import MaildirMailbox

    now = datetime.now().astimezone()
    for path, data in ((settings.unis_extract, sample_extract(now)), (settings.branch_directory, sample_directory())):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    seed_maildir(MaildirMailbox(settings.maildir), now)
    return True


# ---------------------------------------------------------------- commands


def cmd_poll(args: argparse.Namespace) -> int:
    from mailbot.pipeline import Bot

    settings = _settings(args)
    if not args.config and _seed_demo(settings):
        print(f"Embedded default: seeded the local mailbox {settings.maildir} with sample mails.")
    _require_reference_files(settings)
    mailbox, transport, store = _open(settings)
    try:
        report = Bot(settings, mailbox, transport, store).poll()
    finally:
        mailbox.close()
        store.close()
    _print_report(report, settings)
    return 0


def _require_reference_files(settings: Settings) -> None:
    """The UNIS extract and the branch directory, when configured, must be there at start (a
    wrong path would otherwise skip every check that needs them, cycle after cycle).  Later,
    a missing or bad new file only keeps the last good data in use."""
    for key, path in (("unis.extract", settings.unis_extract), ("branches.directory", settings.branch_directory)):
        if path is not None and not path.is_file():
            problem = "is not a file" if path.exists() else "does not exist"
            raise ConfigError(f"{key}: {path} {problem} (fix the path, or remove the setting to run without it)")


def _print_report(report, settings: Settings) -> None:
    rows = [(e.decision.action.value if e else "-", e.classification.kind.value if e else "-",
             (e.classification.code or "") if e else "", folder or "(stays in inbox)",
             " ".join(e.decision.reasons) if e else "", subject) for subject, e, folder in report.handled]
    if rows:
        _print_table(("decision", "kind", "code", "folder", "reasons", "subject"), rows)
    print(f"{len(report.handled)} mails decided, {report.sent} replies sent, {report.filed} mails filed"
          + (f", {report.send_failures} sends to retry" if report.send_failures else "")
          + (f", {len(report.errors)} errors" if report.errors else ""))
    if not settings.smtp:
        readable = _readable_outbox(settings.outbox) if settings.outbox else None
        print(f"Replies are in the outbox Maildir {settings.outbox}"
              + (f" (readable copies: {readable})" if readable else "") + f"; mailbox folders under {settings.maildir}.")


def _readable_outbox(outbox: Path) -> Path | None:
    """Beside the local outbox Maildir, each reply as the branch reads it (its base64 body decoded),
    in <outbox>-text/<file>.txt; the Maildir itself stays a Maildir."""
    from email import message_from_bytes
    from email.policy import default

    files = sorted(p for sub in ("new", "cur") for p in (outbox / sub).glob("*") if p.is_file()) \
        if outbox.is_dir() else []
    if not files:
        return None
    out = outbox.with_name(outbox.name + "-text")
    out.mkdir(exist_ok=True)
    for path in files:
        target = out / (path.name.split(":")[0] + ".txt")
        if target.exists():  # written after an earlier cycle: a reply never changes
            continue
        msg = message_from_bytes(path.read_bytes(), policy=default)
        body = msg.get_body(("plain",))
        text = "".join(f"{label}: {msg[name]}\n" for name, label in (("From", "差出人"), ("To", "宛先"), ("Cc", "CC"),
                                                                      ("Subject", "件名")) if msg[name])
        if msg["Date"] is not None and msg["Date"].datetime is not None:
            text += f"送信日時: {japanese_time(msg['Date'].datetime)}\n"
        target.write_text(
            text + "\n" + (body.get_content() if body is not None else ""), encoding="utf-8")
    return out


def cmd_run(args: argparse.Namespace) -> int:
    # First of all: a SIGTERM while starting up stops the bot cleanly too.
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())

    from apscheduler.schedulers.background import BackgroundScheduler

    from mailbot.pipeline import Bot
    from mailbot.service.notify import Notifier

    settings = _settings(args)
    configure_logs(settings.service.log_format, verbose=True)  # a service says what it decides
    if not args.config and _seed_demo(settings):
        log.info("embedded default: seeded the local mailbox %s with sample mails", settings.maildir)
    _require_reference_files(settings)
    log.info("%s", _startup_line(settings, args.config))
    shared: dict[str, object] = {}  # the reference data, kept (and refreshed) across cycles
    notifier = Notifier.from_environment()
    metrics = None
    if settings.service.metrics_listen is not None:
        from mailbot.service.metrics import Metrics

        metrics = Metrics()
        metrics.serve(*settings.service.metrics_listen)
    watchdog = notifier.watchdog_seconds
    if watchdog is not None and settings.poll_interval * 2 > watchdog:
        log.warning("scheduler.poll_interval %d s is more than half of WatchdogSec %.0f s: "
                    "systemd may restart a healthy bot", settings.poll_interval, watchdog)

    def cycle() -> None:
        try:
            ok = poll()
        finally:
            if not stopping.is_set() and not settings.shadow:
                send_due_mails(settings, shared.get("reference"))
        if ok and not stopping.is_set():
            # Only a poll that went through tells systemd the bot is alive: a hung mailbox
            # connection stops the pings and gets the process restarted after WatchdogSec.
            status = f"polled {datetime.now(TOKYO):%Y-%m-%d %H:%M:%S}"
            if "ready" not in shared:
                shared["ready"] = True
                notifier.ready(status)
            else:
                notifier.watchdog(status)

    def poll() -> bool:
        started = time.monotonic()
        try:
            mailbox, transport, store = _open(settings)
        except MailboxError as e:
            log.warning("mailbox unreachable: %s", e)
            record_unreachable(settings, e)
            if metrics is not None:
                metrics.unreachable()
            return False
        try:
            bot = Bot(settings, mailbox, transport, store, reference=shared.get("reference"))
            report = bot.poll(stop=stopping.is_set)
            shared["reference"] = bot.reference
            log.info("cycle: %d decided, %d sent, %d filed, %d errors (%.1f s)", len(report.handled), report.sent,
                     report.filed, len(report.errors), time.monotonic() - started)
            if metrics is not None:
                metrics.cycle(report, time.monotonic() - started, store, bot.reference)
            return True
        except MailboxError as e:
            log.warning("mailbox error, retrying next cycle: %s", e)
            store.event(None, "mailbox unreachable", str(e))
            if metrics is not None:
                metrics.unreachable()
            return False
        finally:
            mailbox.close()
            store.close()

    scheduler = BackgroundScheduler(timezone=TOKYO)
    scheduler.add_job(cycle, "interval", seconds=settings.poll_interval, next_run_time=datetime.now().astimezone(),
                      max_instances=1, coalesce=True, misfire_grace_time=None, id="poll")
    if stopping.is_set():
        return 0
    scheduler.start()
    if settings.imap:  # new mail wakes the next cycle at once; polling stays the safety net
        from mailbot.mailbox.idle import IdleWatcher

        def wake() -> None:
            if not stopping.is_set():
                scheduler.modify_job("poll", next_run_time=datetime.now().astimezone())

        IdleWatcher(settings.imap, wake, stopping, token_source=token_source(settings)).start()
    stopping.wait()
    notifier.stopping()
    # The mail in hand is finished first: poll() checks `stopping` only between mails.
    scheduler.shutdown(wait=True)
    if metrics is not None:
        metrics.close()
    return 0


def _startup_line(settings: Settings, config: Path | None) -> str:
    """What `run` is about to do, in one line: the configuration, the mailbox, the rhythm, the
    UNIS extract and its 抽出日時."""
    mailbox = (f"IMAP {settings.imap.username}@{settings.imap.host}:{settings.imap.port}"
               + (" (OAuth 2.0)" if settings.oauth else "") if settings.imap else f"Maildir {settings.maildir}")
    extract = "no UNIS extract configured"
    if settings.unis_extract is not None:
        from mailbot.reports.digest import extract_status

        status = extract_status(settings)
        extract = (f"UNIS extract {settings.unis_extract} (抽出日時 {status.extracted_at.astimezone(TOKYO):%Y-%m-%d %H:%M})"
                   if status.extracted_at else f"UNIS extract {settings.unis_extract}: none usable yet")
    return (f"mailbot {__version__} starting: config {config or 'embedded default'}; {mailbox}; "
            f"poll every {settings.poll_interval} s; IDLE {'on' if settings.imap else 'off (local Maildir)'}; "
            f"{extract}" + ("; SHADOW trial: nothing is sent or filed" if settings.shadow else ""))


def send_due_mails(settings: Settings, reference=None) -> None:
    """After each poll cycle (also when the mailbox was unreachable): the digests and the ledger
    shares that are due.  Whatever goes wrong is logged; it never stops the polling."""
    from mailbot.record.store import Store
    from mailbot.reports.digest import send_due_digests
    from mailbot.reports.ledger import send_due_shares

    for name, send in (("digest", send_due_digests), ("ledger share", send_due_shares)):
        try:
            store = Store(settings.database)
            try:
                for r in send(settings, store, _transport(settings), datetime.now(TOKYO), reference=reference):
                    log.info("%s of %s: %s %s", name, r.day, r.state, r.detail)
            finally:
                store.close()
        except Exception as e:  # noqa: BLE001 - the polling must go on
            log_failure(log, f"{name} failed, tried again after the next poll", e)


def _existing(path: Path | None) -> Path | None:
    return path if path is not None and path.exists() else None


def cmd_check(args: argparse.Namespace) -> int:
    import tempfile

    from mailbot.files import DataFileError
    from mailbot.reference.data import ReferenceData

    settings = _settings(args)
    for option in (args.unis, args.branches):
        if option and not option.is_file():
            raise UsageError(f"{option}: no such file")
    if not args.config:  # the embedded default's reference data exists once `poll` has seeded it
        settings = replace(settings, unis_extract=_existing(settings.unis_extract),
                           branch_directory=_existing(settings.branch_directory))
    # check has no side effects: the extract is imported into a temporary directory.
    with tempfile.TemporaryDirectory(prefix="mailbot-check-") as tmp:
        try:
            reference = ReferenceData.load(settings, unis_extract=args.unis, branch_directory=args.branches,
                                           unis_db=Path(tmp) / "unis.sqlite3", strict=True)
        except DataFileError as e:
            raise UsageError(str(e)) from None
        try:
            return _check_mails(args, settings, reference)
        finally:
            reference.close()


def _check_mails(args: argparse.Namespace, settings: Settings, reference) -> int:
    from mailbot.pipeline import evaluate
    from mailbot.record.history import MemoryHistory, PastRequest

    history = MemoryHistory()  # the mails are checked as if they arrived in the order given
    rows = []
    for path in args.mails:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise UsageError(f"{path}: cannot read ({e.strerror})") from None
        e = evaluate(data, None, settings, reference=reference, history=history)
        if e.classification.code and e.received is not None:
            history.add(PastRequest(e.classification.kind, e.classification.code, e.decision.action, e.received))
        result = {"file": str(path), "kind": e.classification.kind.value, "customer_code": e.classification.code,
                  "decision": e.decision.action.value, "reasons": e.decision.reasons, "fields": e.fields}
        if args.json:
            print(json.dumps(result, ensure_ascii=False, default=str), flush=True)
        else:
            rows.append((str(path), result["kind"], result["customer_code"] or "", result["decision"],
                         " ".join(result["reasons"])))
    if rows:
        _print_table(("file", "kind", "code", "decision", "reasons"), rows)
    return 0


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    from unicodedata import east_asian_width

    def width(s: str) -> int:
        return sum(2 if east_asian_width(c) in "WF" else 1 for c in s)

    def cut(s: str, n: int = 48) -> str:
        out, w = "", 0
        for c in s:
            w += width(c)
            if w > n:
                return out + "…"
            out += c
        return out

    table = [tuple(cut(str(c)) for c in header)] + [tuple(cut(str(c)) for c in r) for r in rows]
    widths = [max(width(r[i]) for r in table) for i in range(len(header))]
    for n, r in enumerate(table):
        print("  ".join(c + " " * (widths[i] - width(c)) for i, c in enumerate(r)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


# ---------------------------------------------------------------- digest and history


def _state(settings: Settings):
    """The state database, which these read-only commands never create."""
    from mailbot.record.store import Store

    if not settings.database.exists():
        raise UsageError(f"{settings.database}: no state database yet (mailbot has not polled)")
    return Store(settings.database)


def _when(iso: str | None) -> str:
    """A recorded UTC time as people read it: 12月4日（金）9:34 (Japan time)."""
    if not iso:
        return "-"
    try:
        return japanese_time(datetime.fromisoformat(iso))
    except ValueError:
        return iso


def _date_option(text: str | None, now: datetime, no_future: str | None) -> date:
    """--date (default: today); with `no_future`, a later day is refused with that reason."""
    day = _day(text) if text is not None else now.date()
    if no_future and day > now.date():
        raise UsageError(f"--date: {day} is in the future; {no_future}")
    return day


def _day(text: str) -> date:
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise UsageError(f"--date: {text!r} is not a date YYYY-MM-DD")


def cmd_digest(args: argparse.Namespace) -> int:
    from mailbot.record.states import SendState
    from mailbot.reference.calendar import business_calendar
    from mailbot.reports.digest import (
        TOKYO,
        digest_recipients,
        digest_row,
        digest_text,
        send_digest,
    )

    settings = _settings(args)
    now = datetime.now(TOKYO)
    day = _date_option(args.date, now, "its digest is sent on the day" if args.send else None)
    store = _state(settings)
    try:
        if args.html is not None:
            from mailbot.reports.digest import html_page

            args.html.parent.mkdir(parents=True, exist_ok=True)
            args.html.write_text(html_page(settings, store, day, now), encoding="utf-8")
            print(f"The HTML digest of {day} (with its chart) is in {args.html}.")
            if not args.send:
                return 0
        if not args.send:
            print(digest_text(settings, store, day, now), end="")
            return 0
        calendar = business_calendar(settings.rules_dir)
        closed = calendar.closed_reason(day)
        if closed:
            print(f"{day} is not a business day ({closed}): no digest is sent.")
            return 0
        if not digest_recipients(settings):
            print("No [digest] recipients (inside the internal domains) are configured: no digest is sent.")
            return 0
        row = digest_row(store, day)
        if row is not None and row["state"] == SendState.SENT:
            print(f"The digest of {day} was already sent ({row['message_id']}, {_when(row['sent_at'])}): "
                  "not sent again.")
            return 0
        result = send_digest(settings, store, _transport(settings), day, now, calendar=calendar)
        if result.state != SendState.SENT:
            print(f"mailbot: the digest of {day} was not sent ({result.state}): {result.detail}", file=sys.stderr)
            return 1
        print(f"The digest of {day} was sent ({result.message_id}).")
        return 0
    finally:
        store.close()


def cmd_ledger(args: argparse.Namespace) -> int:
    from mailbot.reference.calendar import business_calendar
    from mailbot.reference.data import ReferenceData
    from mailbot.reports.ledger import (
        category_counts,
        files_of_share,
        send_share,
        write_files,
    )

    settings = _settings(args)
    now = datetime.now(TOKYO)
    day = _date_option(args.date, now, "its share is made on the day")
    calendar = business_calendar(settings.rules_dir)
    closed = calendar.closed_reason(day)
    if closed and args.date is None:  # today is closed: what waits goes out on the next business day
        day = calendar.next_business_day(day)
        print(f"Today is not a business day ({closed}): the share of {day}.")
        if args.send:
            raise UsageError(f"the share of {day} is sent on that day (--send)")
    elif closed:
        print(f"{day} is not a business day ({closed}): there is no share of that day.")
        return 0
    store = _state(settings)
    reference = ReferenceData.load(settings) if settings.unis_extract is not None else None
    try:
        status = 0
        if args.send:
            result = send_share(settings, store, _transport(settings), day, now, reference=reference, calendar=calendar)
            if result.state == "no recipients":
                print("No [ledger] fibergate_to is configured: the share is not sent.")
            elif result.state == "already sent":
                print(f"The share of {day} was already sent ({result.message_id}, {_when(result.detail)}): "
                      "not sent again.")
            elif result.state == "sent":
                print(f"The share of {day} was sent to {', '.join(settings.ledger.fibergate_to)} "
                      f"({result.lines} lines, {result.message_id}).")
            elif result.state != "nothing to share":
                print(f"mailbot: the share of {day} was not sent ({result.state}): {result.detail}", file=sys.stderr)
                status = 1
        share, files = files_of_share(settings, store, day, now, reference=reference, calendar=calendar)
        if files is None:
            print(f"Nothing to share for {day}: no ledger line is waiting.")
            return status
        for path in write_files(files, args.out or settings.ledger.out_dir):
            print(path)
        rules = load_rules(settings.rules_dir).ledger
        for label, n in category_counts(share.lines, rules):
            print(f"{label}: {n}件")
        corporate = sum(x.corporate for x in share.lines)
        print(f"計 {len(share.lines)}件" + (f"（うち法人 {corporate}件）" if corporate else "")
              + (f"、CSVで置き換えた文字 {files.replaced}字（{rules.replacement}）" if files.replaced else "")
              + ("" if share.made else "（未共有：送信するときは、その時点までに受け付けた行が入ります）"))
        return status
    finally:
        if reference is not None:
            reference.close()
        store.close()


def cmd_rules(args: argparse.Namespace) -> int:
    """`mailbot rules check [DIR]`: one line `file:line: problem` each; exit 1 on any."""
    from mailbot.reports.rulecheck import check_rules

    settings = _configured(args)
    rules_dir = (args.dir or settings.rules_dir).resolve()
    templates_dir = (args.templates or settings.templates_dir).resolve()
    for option, path in (("DIR", rules_dir), ("--templates", templates_dir)):
        if not path.is_dir():
            raise UsageError(f"{option}: {path} is not a directory")
    problems = check_rules(rules_dir, templates_dir)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"OK: {rules_dir} and {templates_dir}")
    return 1 if problems else 0


def cmd_explain(args: argparse.Namespace) -> int:
    import unicodedata

    from mailbot.reports.explain import explain, find_mails

    settings = _settings(args)
    key = unicodedata.normalize("NFKC", args.key).strip()
    if not key:
        raise UsageError("MESSAGE-ID|CODE: give a Message-ID or a customer code")
    store = _state(settings)
    try:
        rows = find_mails(store, key)
        if not rows:
            print(f"「{key}」のメールはありません。")
            return 1
        print("\n".join(explain(store, rows, settings.rules_dir)).rstrip())
    finally:
        store.close()
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from dataclasses import replace as with_changes

    from mailbot.reference.data import ReferenceData
    from mailbot.reports.replay import replay

    settings = _settings(args)
    for option, path in (("--rules", args.rules), ("--templates", args.templates)):
        if path is not None and not path.is_dir():
            raise UsageError(f"{option}: {path} is not a directory")
    if args.max_changes is not None and args.max_changes < 0:
        raise UsageError(f"--max-changes: {args.max_changes} must be 0 or more")
    trial = with_changes(settings, rules_dir=(args.rules or settings.rules_dir).resolve(),
                         templates_dir=(args.templates or settings.templates_dir).resolve())
    load_rules(trial.rules_dir)  # a broken rules file: one line, exit 2
    check_templates(trial.templates_dir)
    since = _day(args.since) if args.since else None
    store = _state(settings)
    reference = ReferenceData.load(settings) if settings.unis_extract is not None else None
    try:
        result = replay(trial, store, since=since, reference=reference)
    finally:
        if reference is not None:
            reference.close()
        store.close()
    if args.json:
        for c in result.changes:
            print(json.dumps({"mail_id": c.mail_id, "received": c.received.isoformat(), "customer_code": c.code,
                              "kind": c.kind_label, "before": c.before_action, "after": c.after_action,
                              "reasons_before": c.codes_before, "reasons_after": c.codes_after}, ensure_ascii=False))
    else:
        if result.changes:
            _print_table(("受信日時", "顧客CD", "種別", "判定（現在 → 新）", "理由（新）"),
                         [(japanese_time(c.received), c.code or "-", c.kind_label, f"{c.before} → {c.after}",
                           "、".join(c.reasons_after) or "-") for c in result.changes])
        print(f"{result.replayed}通を判定し直し、{len(result.changes)}通の判定が変わります。"
              f"UNIS抽出データ：{result.extract}"
              + (f"。受信時のメールが保存されていない{result.without_bytes}通は対象外です。" if result.without_bytes else ""))
    return 1 if args.max_changes is not None and len(result.changes) > args.max_changes else 0


def cmd_health(args: argparse.Namespace) -> int:
    from mailbot.record.store import Store
    from mailbot.reports.health import Problem, health

    settings = _settings(args)
    if settings.database.exists():
        store = Store(settings.database)
        try:
            problems = health(settings, store, datetime.now(TOKYO))
        finally:
            store.close()
    else:
        problems = [Problem("POLL_STALE", f"状態データベース {settings.database} がありません（まだ一度もポーリングしていません）。")]
    if args.json:
        print(json.dumps({"ok": not problems, "problems": [{"code": p.code, "detail": p.detail} for p in problems]},
                         ensure_ascii=False))
    else:
        for p in problems:
            print(f"{p.code}: {p.detail}")
        if not problems:
            print("OK")
    return 1 if problems else 0


def cmd_history(args: argparse.Namespace) -> int:
    import unicodedata

    from mailbot.reports.history import code_history
    from mailbot.rules import load_rules

    settings = _settings(args)
    digits = load_rules(settings.rules_dir).subjects.code_digits
    code = unicodedata.normalize("NFKC", args.code).strip()
    if not (len(code) == digits and code.isascii() and code.isdigit()):
        raise UsageError(f"{args.code!r} is not a customer code ({digits} digits)")
    store = _state(settings)
    try:
        mails = code_history(store, code, settings.rules_dir)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"code": code, "mails": mails}, ensure_ascii=False,
                         default=lambda v: v.isoformat() if isinstance(v, (date, datetime)) else str(v)))
        return 0
    if not mails:
        print(f"顧客コード {code} のメールはありません。")
        return 0

    def when(t: datetime | None) -> str:
        return japanese_time(t) if t else "-"

    print(f"顧客コード {code}：メール {len(mails)}件")
    print()
    _print_table(("No.", "受信日時", "種別", "判定", "理由", "支店", "差出人", "件名"),
                 [(str(m["id"]), when(m["received"]), m["kind_label"], m["decision_label"],
                   "、".join(m["reason_labels"]) or "-", m["branch"] or "-", m["sender"] or "-", m["subject"] or "-")
                  for m in mails])
    print()
    _print_table(("日時", "No.", "記録", "詳細"),
                 [(when(e["at"]), str(m["id"]), e["event_label"], e["detail"]) for m in mails for e in m["events"]])
    replies = [(str(m["id"]), r["action_label"], r["state_label"], str(r["attempts"]), when(r["sent_at"]),
                r["last_error"] or "-", r["message_id"]) for m in mails for r in m["replies"]]
    if replies:
        print()
        _print_table(("No.", "返信", "状態", "送信回数", "送信日時", "エラー", "Message-ID"), replies)
    return 0


def cmd_held(args: argparse.Namespace) -> int:
    """What waits for staff in the held folder: the note to move, and why it is there."""
    from mailbot.reports.held import open_held

    settings = _settings(args)
    if not settings.database.exists():
        print("未処理の保留はありません（0件）。")
        return 0
    rows = [(japanese_time(h.held_since), str(h.age), h.kind_label, h.code or "-", "、".join(h.reason_labels),
             h.subject) for h in open_held(settings.database, settings.rules_dir, datetime.now().astimezone())]
    if rows:
        _print_table(("保留日時", "経過営業日", "種別", "顧客CD", "理由", "件名"), rows)
    f = settings.folders
    print(f"未処理の保留 {len(rows)}件（「{f.held}」のメモを「{f.held_accept}」「{f.held_remand}」"
          f"「{f.processed}」のいずれかへ移動してください）")
    if args.save is not None and rows:
        saved = _save_notes(settings, args.save)
        print(f"保留メモ {saved}通を {args.save} に保存しました（.eml：メールソフトで開けます）。")
    return 0


def _save_notes(settings: Settings, out: Path) -> int:
    """The notes of the open held items, from the held folder, as .eml files named by time and code."""
    from mailbot.reply.note import HELD_HEADER, held_original_sha

    mailbox, _transport, store = _open(settings)
    try:
        wanted = {m.sha256: m for m, _ in store.open_held_items()}
        out.mkdir(parents=True, exist_ok=True)
        folder = settings.folders.held
        saved = 0
        for raw in mailbox.fetch(folder, mailbox.search_header(folder, HELD_HEADER, "")):
            row = wanted.get(held_original_sha(raw.data) or "")
            if row is None:
                continue
            stamp = (row.received or row.internaldate or datetime.now(TOKYO)).astimezone(TOKYO)
            name = f"{stamp:%Y%m%d-%H%M%S}_{row.code or row.kind or 'unknown'}_{row.id}.eml"
            (out / name).write_bytes(raw.data)
            saved += 1
        return saved
    finally:
        mailbox.close()
        store.close()

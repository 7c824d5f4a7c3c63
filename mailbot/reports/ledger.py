"""The daily 管理台帳 share with FiberGate (DOMAIN.md §8; seed 001 業務フロー: 日次共有).

    share = share_of(settings, store, day, now)           # the lines of business day `day`
    files = share_files(share, rules)                     # CSV (CP932, CRLF) + xlsx, as bytes
    write_files(files, out_dir)                           # usen_spot_<YYYYMMDD>.csv / .xlsx
    send_share(settings, store, transport, day, now)      # to [ledger] fibergate_to, once
    send_due_shares(settings, store, transport, now)      # `mailbot run`: at [ledger] send_at

The share of business day D holds the ledger lines recorded before D's `send_at` (or before the
moment it is made, when that is earlier) that no earlier share holds, and on the month's 5th
business day the 強制解約 of the previous month.  Made once: when its mail is queued, the lines
are marked as D's in the same commit, so a line is never shared twice and one recorded later
goes out with the next share.  The mail goes through the once-only states the digest uses
(record/sendonce.py): a crash resends the same bytes with the same Message-ID.  A day with
nothing to share sends nothing.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path

from mailbot.config import Settings
from mailbot.files import write_atomically
from mailbot.model import Action, Kind
from mailbot.record.ledger import LedgerLine, forced_terminations
from mailbot.record.sendonce import SendOnce
from mailbot.record.states import SendState
from mailbot.record.store import Store
from mailbot.reference.calendar import BusinessCalendar, business_calendar
from mailbot.reference.data import ReferenceData
from mailbot.reply.render import environment, header_text, japanese_date
from mailbot.reply.send import Transport
from mailbot.reports.digest import first_mail_day
from mailbot.reports.once import deliver
from mailbot.rules import load_rules
from mailbot.rules.ledger import LedgerRules
from mailbot.text import TOKYO, jis_to_cp932

log = logging.getLogger("mailbot")
TABLE = "ledger_shares"
CSV_TYPE = ("text", "csv")
XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


# ---------------------------------------------------------------- the lines of a day


@dataclass(frozen=True)
class Share:
    day: date
    lines: list[LedgerLine]  # corporate lines last, each part in the order of [categories]
    made: bool  # queued (frozen) already; False: what it would hold if made now
    state: str | None = None  # its send state when made
    message_id: str | None = None


def send_moment(settings: Settings, day: date) -> datetime:
    return datetime.combine(day, settings.ledger.send_at, tzinfo=TOKYO)


def _ordered(lines: list[LedgerLine], rules: LedgerRules) -> list[LedgerLine]:
    rank = {c: i for i, c in enumerate(rules.category_labels)}
    return sorted(lines, key=lambda x: (x.corporate, rank.get(x.category, len(rank))))


def share_of(settings: Settings, store: Store, day: date, now: datetime, *,
             reference: ReferenceData | None = None, calendar: BusinessCalendar | None = None) -> Share:
    """The share of `day`: as made, or as it would be made at `now`."""
    rules = load_rules(settings.rules_dir).ledger
    row = SendOnce(store, TABLE).row(day.isoformat())
    if row is not None:
        return Share(day, _ordered(store.ledger_lines_of_share(day.isoformat()), rules), True, row["state"],
                     row["message_id"])
    until = min(send_moment(settings, day), now.astimezone(TOKYO))
    lines = store.ledger_lines_unshared(until.astimezone(timezone.utc).isoformat())
    unis = reference.extract if reference is not None else None
    if unis is not None:
        calendar = calendar or business_calendar(settings.rules_dir)
        forced = forced_terminations(unis, rules, calendar, day, lambda code: _termination_requested(store, code))
        lines += [x for x in forced if not store.ledger_has_key(x.key)]
    return Share(day, _ordered(lines, rules), False)


def _termination_requested(store: Store, code: str) -> bool:
    """A 解約申請 for the code was accepted (it is no 強制解約)."""
    return any(p.kind is Kind.TERMINATION and p.action is Action.ACCEPT for p in store.requests_for(code))


# ---------------------------------------------------------------- the files


@dataclass(frozen=True)
class ShareFiles:
    csv_name: str
    csv: bytes
    xlsx_name: str
    xlsx: bytes
    replaced: int  # characters CP932 lacks, written as the replacement in the CSV


def cell_texts(line: LedgerLine, rules: LedgerRules) -> list[str]:
    """The line's cells in the order of [columns], as text."""
    v = rules.values
    value = {
        "category": rules.category_labels.get(line.category, line.category),
        "day": line.day.strftime("%Y/%m/%d"), "code": line.code, "customer_name": line.customer_name,
        "shop_name": line.shop_name, "branch": line.branch, "parents": str(line.parents),
        "children": str(line.children), "plus": v["plus"] if line.plus else "", "line_kind": line.line_kind,
        "line_type": line.line_type, "address": line.address,
        "mail_addresses": v["address_separator"].join(line.mail_addresses), "ssid": line.ssid,
        "termination_date": line.termination_date.strftime("%Y/%m/%d") if line.termination_date else "",
        "corporate": v["corporate"] if line.corporate else "", "note": line.note, "message_id": line.message_id,
    }
    return [value[c] for c in rules.columns]


def _safe(text: str, rules: LedgerRules) -> str:
    """A cell no spreadsheet takes for a formula (OWASP CSV injection: a leading ')."""
    return "'" + text if text.startswith(rules.formula_starts) else text


def _cp932(text: str, replacement: str) -> tuple[str, int]:
    """The text as CP932 can carry it (JIS variants mapped first), each character it lacks replaced."""
    text = jis_to_cp932(text)
    fitted = text.encode("cp932", errors="replace").decode("cp932")  # "?" where it has no character
    if fitted == text:
        return text, 0
    # A mismatch is a character CP932 lacks, or one it writes and reads back as another (kept).
    missing = [i for i, (a, b) in enumerate(zip(text, fitted)) if a != b and b == "?" and not _fits(a)]
    chars = list(text)
    for i in missing:
        chars[i] = replacement
    return "".join(chars), len(missing)


def _fits(ch: str) -> bool:
    try:
        ch.encode("cp932")
        return True
    except UnicodeEncodeError:
        return False


def _csv_field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text


def csv_bytes(lines: list[LedgerLine], rules: LedgerRules) -> tuple[bytes, int]:
    """CP932, CRLF, one header row; (bytes, characters replaced)."""
    replaced = 0
    rows = []
    for cells in [list(rules.columns.values())] + [cell_texts(x, rules) for x in lines]:
        out = []
        for cell in cells:
            text, n = _cp932(_safe(cell.replace("\r\n", " ").replace("\n", " "), rules), rules.replacement)
            replaced += n
            out.append(_csv_field(text))
        rows.append(",".join(out))
    return ("\r\n".join(rows) + "\r\n").encode("cp932"), replaced


def xlsx_bytes(lines: list[LedgerLine], rules: LedgerRules, day: date) -> bytes:
    """A workbook: the regional lines on one sheet, the corporate ones on their own; the header
    styled and frozen, columns sized to their content; every cell text (never a formula)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter

    book = Workbook()
    made = datetime.combine(day, time(0))
    book.properties.creator = "mailbot"
    book.properties.created = book.properties.modified = made
    header_font = Font(bold=True, color="FFFFFF")
    header_fill = PatternFill("solid", fgColor="1F4E79")
    thin = Side(style="thin", color="C8C8C8")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    numbers = {i for i, c in enumerate(rules.columns) if c in ("parents", "children")}
    for sheet, part in ((book.active, [x for x in lines if not x.corporate]),
                        (book.create_sheet(), [x for x in lines if x.corporate])):
        sheet.title = rules.sheet if sheet is book.active else rules.corporate_sheet
        rows = [list(rules.columns.values())] + [cell_texts(x, rules) for x in part]
        widths = [0] * len(rules.columns)
        for r, cells in enumerate(rows, 1):
            for c, text in enumerate(cells, 1):
                cell = sheet.cell(row=r, column=c)
                if r > 1 and c - 1 in numbers and text.isdigit():
                    cell.value = int(text)
                else:
                    cell.value = text
                    cell.data_type = "s"  # a text starting with = stays text
                cell.border = border
                if r == 1:
                    cell.font, cell.fill = header_font, header_fill
                    cell.alignment = Alignment(horizontal="center", vertical="center")
                # East Asian characters take two columns of width.
                widths[c - 1] = max(widths[c - 1], sum(2 if ord(ch) > 0x2E7F else 1 for ch in text))
        for c, width in enumerate(widths, 1):
            sheet.column_dimensions[get_column_letter(c)].width = min(max(width + 2, 6), 60)
        sheet.freeze_panes = "A2"
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(rules.columns))}{max(len(rows), 1)}"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def share_files(share: Share, rules: LedgerRules) -> ShareFiles:
    name = f"{rules.file_prefix}{share.day:%Y%m%d}"
    csv, replaced = csv_bytes(share.lines, rules)
    return ShareFiles(f"{name}.csv", csv, f"{name}.xlsx", xlsx_bytes(share.lines, rules, share.day), replaced)


def files_of_message(data: bytes) -> ShareFiles:
    """The files a queued or sent share mail carries (exactly what FiberGate got)."""
    message = BytesParser(policy=SMTP).parsebytes(data)
    found = {part.get_filename(): part.get_payload(decode=True) for part in message.iter_attachments()}
    csv_name = next(n for n in found if n.endswith(".csv"))
    xlsx_name = next(n for n in found if n.endswith(".xlsx"))
    replaced = int(message.get("X-Mailbot-Replaced-Characters", "0"))
    return ShareFiles(csv_name, found[csv_name], xlsx_name, found[xlsx_name], replaced)


def files_of_share(settings: Settings, store: Store, day: date, now: datetime, *,
                   reference: ReferenceData | None = None, calendar: BusinessCalendar | None = None
                   ) -> tuple[Share, ShareFiles | None]:
    """The share of `day` and its files: those of the mail when it was made (exactly what
    FiberGate gets), else as they would be made now; None when there is nothing to share."""
    share = share_of(settings, store, day, now, reference=reference, calendar=calendar)
    if share.made:
        return share, files_of_message(SendOnce(store, TABLE).row(day.isoformat())["data"])
    if not share.lines:
        return share, None
    return share, share_files(share, load_rules(settings.rules_dir).ledger)


def write_files(files: ShareFiles, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = out_dir / files.csv_name, out_dir / files.xlsx_name
    write_atomically(paths[0], files.csv)
    write_atomically(paths[1], files.xlsx)
    return paths


def category_counts(lines: list[LedgerLine], rules: LedgerRules) -> list[tuple[str, int]]:
    """(区分, lines) of the categories present, in the order of [categories]."""
    counts = Counter(x.category for x in lines)
    return [(label, counts[c]) for c, label in rules.category_labels.items() if counts[c]]


# ---------------------------------------------------------------- the mail


def share_message_id(day: date, sender: str) -> str:
    return f"<ledger.{day:%Y%m%d}.mailbot@{sender.rpartition('@')[2]}>"


def compose(share: Share, files: ShareFiles, settings: Settings, now: datetime) -> EmailMessage:
    rules = load_rules(settings.rules_dir).ledger
    lg = settings.ledger
    msg = EmailMessage(policy=SMTP)
    msg["From"] = header_text(f"{settings.reply_from_name} <{settings.reply_from}>" if settings.reply_from_name
                              else settings.reply_from)
    msg["To"] = ", ".join(lg.fibergate_to)
    if lg.cc:
        msg["Cc"] = ", ".join(lg.cc)
    msg["Subject"] = header_text(rules.subject.format(date=f"{share.day.year}年{japanese_date(share.day)}"))
    msg["Date"] = format_datetime(now.astimezone(TOKYO))
    msg["Message-ID"] = share_message_id(share.day, settings.reply_from)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Mailbot-Replaced-Characters"] = str(files.replaced)
    body = environment(settings.templates_dir, trim_blocks=True).get_template("ledger/share.txt.j2").render(
        day=share.day, counts=category_counts(share.lines, rules), total=len(share.lines),
        corporate=sum(x.corporate for x in share.lines), corporate_sheet=rules.corporate_sheet,
        replaced=files.replaced, replacement=rules.replacement, files=[files.csv_name, files.xlsx_name],
        sender_name=settings.reply_from_name or "USEN SPOT 事務センター")
    msg.set_content(body, charset="utf-8")
    msg.add_attachment(files.csv, *CSV_TYPE, filename=files.csv_name, params={"charset": "Shift_JIS"})
    msg.add_attachment(files.xlsx, *XLSX_TYPE, filename=files.xlsx_name)
    return msg


# ---------------------------------------------------------------- once per business day


@dataclass(frozen=True)
class ShareResult:
    day: date
    state: str  # sent | queued (to retry) | failed | already sent | being sent elsewhere | nothing to share | no recipients | skipped
    lines: int = 0
    message_id: str | None = None
    detail: str = ""


def send_share(settings: Settings, store: Store, transport: Transport, day: date, now: datetime, *,
               reference: ReferenceData | None = None, calendar: BusinessCalendar | None = None,
               retry_failed: bool = True) -> ShareResult:
    """Make the share of `day` (unless made) and send it to FiberGate unless it was sent."""
    once = SendOnce(store, TABLE)
    key = day.isoformat()
    row = once.row(key)
    if row is not None and row["state"] == SendState.SENT:
        return ShareResult(day, "already sent", message_id=row["message_id"], detail=row["sent_at"] or "")
    if not settings.ledger.fibergate_to:
        return ShareResult(day, "no recipients")
    if row is not None and row["state"] == SendState.FAILED and not retry_failed:
        return ShareResult(day, "skipped", message_id=row["message_id"], detail=row["last_error"] or "")
    if row is None:
        share = share_of(settings, store, day, now, reference=reference, calendar=calendar)
        if not share.lines:
            return ShareResult(day, "nothing to share")
        files = share_files(share, load_rules(settings.rules_dir).ledger)
        message = compose(share, files, settings, now)
        row = once.queue(key, message["Message-ID"], message.as_bytes(),
                         along=lambda db: store.share_ledger_lines(db, key, share.lines))
        if row["state"] == SendState.SENT:  # another process was quicker
            return ShareResult(day, "already sent", message_id=row["message_id"])
    sent = deliver(once, key, transport, "ledger share")
    return ShareResult(day, sent.state, len(store.ledger_lines_of_share(key)), sent.message_id, sent.detail)


def due_share_days(settings: Settings, store: Store, calendar: BusinessCalendar, now: datetime,
                   catch_up_days: int) -> list[date]:
    """Business days whose send_at has passed and whose share was not sent, oldest first, at most
    `catch_up_days` back and not before the first mail mailbot took in."""
    first = first_mail_day(store)
    if first is None:
        return []
    return SendOnce(store, TABLE).due_days(calendar, now.astimezone(TOKYO), first,
                                           lambda day: send_moment(settings, day), catch_up_days)


def send_due_shares(settings: Settings, store: Store, transport: Transport, now: datetime, *,
                    reference: ReferenceData | None = None) -> list[ShareResult]:
    """Each due business day's share, once, oldest first (a missed day late, with what was
    recorded before its send_at); days with nothing to share are left out.  No FiberGate
    address: nothing."""
    if not settings.ledger.fibergate_to:
        return []
    calendar = business_calendar(settings.rules_dir)
    days = due_share_days(settings, store, calendar, now, load_rules(settings.rules_dir).digest.catch_up_days)
    owned = None
    if days and reference is None and settings.unis_extract is not None:
        reference = owned = ReferenceData.load(settings)  # the 強制解約 come from the UNIS extract
    try:
        results = [send_share(settings, store, transport, day, now, reference=reference, calendar=calendar,
                              retry_failed=False) for day in days]
    finally:
        if owned is not None:
            owned.close()
    return [r for r in results if r.state != "nothing to share"]

"""The held folder as office-center staff see it (DOMAIN.md §6): one note per held mail.

    note = build_note(original_bytes, NoteFacts(...), settings)   → HeldNote(message_id, data)

The note shows, at the top, in plain Japanese why the mail was held and how to decide; the
original travels with it byte for byte as an attached message (`message/rfc822`, or base64
`application/octet-stream` when its bytes could not travel as 8-bit text).  The note carries
`X-Mailbot-Held: <SHA-256 of the original>` so that, when staff move it into the accept or remand
folder, the bot knows which mail it is.  Its Message-ID is derived from the original, so filing
the same mail twice finds the note already there instead of adding a second one.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import format_datetime

from mailbot.config import Settings
from mailbot.message import UnreadableMail, parse_mail
from mailbot.message.compose import base64_text, header_field, text_mail
from mailbot.reference.unis import OrderLine
from mailbot.reply.render import environment, header_text
from mailbot.rules import kind_labels, load_rules, reasons
from mailbot.text import TOKYO

HELD_HEADER = "X-Mailbot-Held"
_LONG_LINE = re.compile(rb"[^\n]{999}")


@dataclass(frozen=True)
class HeldNote:
    message_id: str
    data: bytes


NOTE_HISTORY = 10  # the code's latest mails a note lists


@dataclass(frozen=True)
class EarlierMail:
    """One of the code's earlier mails, as a held note lists it."""

    received: datetime
    kind: str
    action: str
    reasons: tuple[str, ...]  # codes
    subject: str


@dataclass(frozen=True)
class NoteFacts:
    """What the bot knows of the held mail: its state row, the code's other mails, its UNIS lines."""

    sha256: str
    kind: str | None
    code: str | None
    findings: list[tuple[str, str]]  # (reason code, detail)
    received: datetime | None
    held_at: datetime
    earlier: tuple[EarlierMail, ...] = ()  # the code's other mails, newest first
    unis_lines: tuple[OrderLine, ...] = ()  # the code's lines in the UNIS extract in use
    fields: dict | None = None  # what was read: {"body": {...}, "form": {...}, …}
    previews: dict | None = None  # {"accept"|"remand": {"subject", "to", "body"} | None}
    # The original's subject, sender ("name <addr>") and Message-ID, as the pipeline read them; when
    # not given, the original is parsed for them.
    subject: str | None = None
    sender: str | None = None
    message_id: str | None = None


def note_message_id(sha256: str, sender: str) -> str:
    return f"<held.{sha256[:32]}.mailbot@{sender.rpartition('@')[2]}>"


def build_note(original: bytes, facts: NoteFacts, settings: Settings, attach: bool = True) -> HeldNote:
    """The note; `attach=False` when the server refuses a message as big as the original (the
    original stays in the held originals folder, which the note names)."""
    subject, sender, original_id = facts.subject, facts.sender, facts.message_id
    if subject is None or sender is None:
        try:
            mail = parse_mail(original)
        except UnreadableMail:
            mail = None
        subject = mail.subject if mail else ""
        sender = f"{mail.sender.name} <{mail.sender.addr}>" if mail and mail.sender else ""
        original_id = mail.message_id if mail else None
    table = reasons(settings.rules_dir)
    findings = []
    for code, detail in facts.findings:
        reason = table.get(code)
        technical = reason is not None and reason.technical
        findings.append({"code": code, "title": reason.title if reason else code, "fix": reason.fix if reason else "",
                         "detail": "" if technical else detail, "technical": detail if technical else ""})
    folders = settings.folders
    rules = load_rules(settings.rules_dir)
    labels, decisions = rules.kind_labels, rules.digest.decision_labels
    context = dict(
        subject=header_text(subject, 200), sender=header_text(sender, 200),
        received=facts.received, code=facts.code or "", findings=findings,
        kind=kind_labels(settings.rules_dir).get(facts.kind or "unknown", facts.kind or "unknown"),
        earlier=[{"received": e.received, "kind": labels.get(e.kind, e.kind),
                  "decision": decisions.get(e.action, e.action), "subject": header_text(e.subject, 120),
                  "reasons": "、".join(table[c].label if c in table else c for c in e.reasons)}
                 for e in facts.earlier],
        unis=[_unis_row(line, rules) for line in facts.unis_lines],
        read=_read_fields(facts.fields or {}, rules),
        previews=facts.previews or {},
        accept_folder=folders.held_accept, remand_folder=folders.held_remand,
        processed_folder=folders.processed, attached=attach, originals_folder=folders.held_originals,
    )
    text = environment(settings.templates_dir, trim_blocks=True).get_template("held/note.txt.j2").render(**context)
    html = environment(settings.templates_dir).get_template("held/note.html.j2").render(**context)

    message_id = note_message_id(facts.sha256, settings.reply_from)
    replies = load_rules(settings.rules_dir).replies
    # Written byte by byte (no MIME round trip): the headers, the two renderings as base64
    # alternatives, then the original untouched.
    head = _to_the_office(settings, replies.held_note_prefix + (context["subject"] or replies.no_subject),
                          facts.held_at, message_id)
    if original_id:
        head += [("In-Reply-To", header_text(original_id, 250)), ("References", header_text(original_id, 250))]
    head += [("Auto-Submitted", "auto-generated"), (HELD_HEADER, facts.sha256),
             ("X-Mailbot-Reasons", " ".join(code for code, _ in facts.findings))]
    boundary = f"=_mailbot_held_{facts.sha256[:24]}"
    while boundary.encode() in original:
        boundary += "_"
    alternative = f"=_mailbot_alt_{facts.sha256[:24]}"
    head += [("MIME-Version", "1.0"), ("Content-Type", f'multipart/mixed; boundary="{boundary}"')]
    summary = (f'Content-Type: multipart/alternative; boundary="{alternative}"\r\n\r\n'.encode()
               + _text_part(alternative, "plain", text) + _text_part(alternative, "html", html)
               + f"--{alternative}--\r\n".encode())
    parts = [summary] + ([_attachment(original)] if attach else [])
    b = boundary.encode()
    body = b"".join(b"--" + b + b"\r\n" + p + b"\r\n" for p in parts) + b"--" + b + b"--\r\n"
    return HeldNote(message_id, b"".join(header_field(n, v) for n, v in head) + b"\r\n" + body)


def _to_the_office(settings: Settings, subject: str, date: datetime, message_id: str) -> list[tuple[str, str]]:
    """The first fields of a mail the bot files for staff: from and to the shared mailbox."""
    return [("From", settings.reply_from), ("To", settings.reply_from), ("Subject", subject),
            ("Date", format_datetime(date)), ("Message-ID", message_id)]


def _text_part(boundary: str, subtype: str, text: str) -> bytes:
    return (f"--{boundary}\r\nContent-Type: text/{subtype}; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode("ascii") + base64_text(text)


def _unis_row(line: OrderLine, rules) -> dict[str, str]:
    """A UNIS line as the extract writes it (契約状態 in UNIS's own word)."""
    status = next((label for label, value in rules.unis.status.items() if value is line.status), line.status.value)
    return {"item": line.item_code, "status": status,
            "ordered": f"{line.order_date:%Y/%m/%d}" if line.order_date else "",
            "ends": f"{line.termination_date:%Y/%m/%d}" if line.termination_date else "",
            "serial": line.serial, "shop": line.shop_name, "branch": line.branch,
            "line": " ".join(x for x in (line.line_kind, line.line_type) if x), "address": line.install_address,
            "acquisition": line.acquisition}


def _read_fields(fields: dict, rules) -> list[tuple[str, str]]:
    """(name, value) of what was read from the body and the form, in the order of the rules."""
    out: list[tuple[str, str]] = []
    yes, no = rules.replies.note_flags
    for key, value in (fields.get("body") or {}).items():
        if value:
            out.append((f"本文：{rules.requests.display.get(key, key)}", str(value)))
    form = fields.get("form") or {}
    names = rules.replies.note_fields
    for key in sorted(form, key=lambda k: (list(names).index(k) if k in names else len(names), k)):
        value = form[key]
        if value in (None, "", [], ()):
            continue
        text = (yes if value else no) if isinstance(value, bool) else (
            "、".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value))
        out.append((f"申込書：{names.get(key, key)}", text))
    return out


def _attachment(original: bytes) -> bytes:
    """The original, unaltered: as an attached message when it can travel as 8-bit text,
    else base64 (NUL, bare CR, or lines over 998 octets would not survive IMAP APPEND)."""
    name = 'filename="original.eml"'
    if b"\x00" not in original and b"\r" not in original.replace(b"\r\n", b"") \
            and not _LONG_LINE.search(original):
        cte = "7bit" if original.isascii() else "8bit"
        return (f"Content-Type: message/rfc822\r\nContent-Disposition: attachment; {name}\r\n"
                f"Content-Transfer-Encoding: {cte}\r\n\r\n").encode() + original
    encoded = base64.encodebytes(original).replace(b"\n", b"\r\n")
    return (f"Content-Type: application/octet-stream; name=\"original.eml\"\r\n"
            f"Content-Disposition: attachment; {name}\r\nContent-Transfer-Encoding: base64\r\n\r\n").encode() + encoded


def held_original_sha(note: bytes) -> str | None:
    """The SHA-256 of the original a note carries (its X-Mailbot-Held header), None for any
    other mail."""
    head = note.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    value = BytesHeaderParser(policy=compat32).parsebytes(head).get(HELD_HEADER)
    value = "".join(str(value).split()).lower() if value else ""
    return value if re.fullmatch(r"[0-9a-f]{64}", value) else None


def original_of(note: bytes) -> bytes | None:
    """The original carried by a note (the inverse of build_note's attachment)."""
    msg = message_from_bytes(note, policy=compat32)
    boundary = msg.get_boundary()
    if boundary is None:
        return None
    marker = b"\r\n--" + boundary.encode()
    for chunk in note.split(marker)[1:]:
        head, _, body = chunk.partition(b"\r\n\r\n")
        if b"Content-Disposition: attachment" not in head:
            continue
        if b"Content-Transfer-Encoding: base64" in head:
            return base64.decodebytes(body)
        return body  # the CRLF before the closing boundary belongs to the boundary
    return None


def returned_notice(row, why: str, outcome: str, count: int, settings: Settings) -> HeldNote:
    """The notice filed beside a note that came back to the held folder: staff asked for 受付 or
    差戻, but nobody can be answered automatically (why: "outside", "automatic", "unreadable").
    `count`: how often this happened before (each time a notice of its own)."""
    rules = load_rules(settings.rules_dir)
    folders = settings.folders
    subject = header_text(row.subject or "", 200) or rules.replies.no_subject
    context = dict(why=why, asked=folders.held_accept if outcome == "accepted" else folders.held_remand,
                   held_folder=folders.held, processed_folder=folders.processed, subject=subject,
                   sender=header_text(f"{row.sender_name} <{row.sender}>" if row.sender else "", 200))
    text = environment(settings.templates_dir, trim_blocks=True).get_template("held/returned.txt.j2").render(**context)
    domain = settings.reply_from.rpartition("@")[2]
    message_id = f"<returned.{row.sha256[:32]}.{count + 1}.mailbot@{domain}>"
    subject_line, _, body = text.partition("\n")
    head = _to_the_office(settings, rules.replies.held_note_prefix + subject_line, datetime.now(TOKYO), message_id)
    head += [("In-Reply-To", note_message_id(row.sha256, settings.reply_from)), ("Auto-Submitted", "auto-generated")]
    return HeldNote(message_id, text_mail([header_field(n, v) for n, v in head], body.lstrip("\n")))

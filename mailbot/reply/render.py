"""Decision → reply mail, rendered from templates/ and written byte by byte (message.compose).

Header values taken from the incoming mail pass through `header_text`, so nothing in them can
add a header to the reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime
from functools import cache
from pathlib import Path

import jinja2

from mailbot.checks.sender import is_internal
from mailbot.classify import bot_reply_id
from mailbot.message.compose import address_field, header_field, text_mail
from mailbot.model import Action, Address, Classification, Decision, Kind, Mail
from mailbot.reference.calendar import business_calendar
from mailbot.rules import load_rules, reasons
from mailbot.text import TOKYO, drop_invisible, japanese_date, japanese_time

# Control characters, line and paragraph separators: a header value must stay one line.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


def header_text(value: str, limit: int = 200) -> str:
    """One line, no control or invisible characters; other spacing (e.g. full-width spaces) kept."""
    value = re.sub(r" {2,}", " ", _UNSAFE.sub(" ", drop_invisible(value))).strip(" ")[:limit]
    # Text that looks like an RFC 2047 encoded word would be decoded again on its way out (and by
    # the reader's client): a literal "=?utf-8?Q?=00?=" must stay text.
    return value.replace("=?", "=？")


@dataclass(frozen=True)
class ReplySettings:
    sender: str  # the From of every reply
    internal_domains: tuple[str, ...]
    acknowledge_held: bool
    templates_dir: Path
    rules_dir: Path
    sender_name: str = ""  # the display name of the From


@dataclass(frozen=True)
class Reply:
    data: bytes  # the mail as sent
    message_id: str
    recipients: list[str]
    subject: str
    text: str  # the body

    @property
    def message(self) -> EmailMessage:
        """The mail parsed back, for reading it (tests, `explain`)."""
        return message_from_bytes(self.data, policy=default)  # type: ignore[return-value]


@cache
def environment(templates_dir: Path, *, trim_blocks: bool = False) -> jinja2.Environment:
    """The templates of `templates_dir`; `trim_blocks` for templates written with block tags on
    lines of their own (the digest)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        # plain-text mail; HTML templates (*.html.j2: held notes, the digest) are escaped
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        trim_blocks=trim_blocks, lstrip_blocks=trim_blocks,
        # loaded once per process, as the rules are (rules_version names what was in force): no
        # stat of every template at every use
        auto_reload=False,
    )
    env.filters["jdate"] = japanese_date
    env.filters["jtime"] = japanese_time
    return env


@cache
def _first_template(templates_dir: Path, names: tuple[str, ...]) -> jinja2.Template:
    """The first of `names` that exists, looked for once (jinja looks for the missing ones on
    disk at every select_template)."""
    return environment(templates_dir).select_template(list(names))


def next_steps(classification: Classification, decision: Decision, received: datetime | None,
               rules_dir: Path, fields: dict[str, object] | None = None) -> dict[str, object]:
    """What the acceptance says will happen when (DOMAIN.md §5): the equipment order's dates, the
    termination's 解約日 as its form gives it."""
    if decision.action is not Action.ACCEPT or received is None:
        return {}
    calendar = business_calendar(rules_dir)
    day_n = calendar.day_n(received)
    context: dict[str, object] = {"day_n": day_n}
    if classification.kind is Kind.EQUIPMENT_ORDER:
        context["schedule"] = calendar.equipment_schedule(day_n)
    cancellation = (fields or {}).get("cancellation")
    if classification.kind is Kind.CANCELLATION and isinstance(cancellation, dict):
        context["cancellation_case"] = cancellation.get("case", "")
    termination = (fields or {}).get("termination")
    if classification.kind is Kind.TERMINATION and isinstance(termination, dict):
        context["unis_scheduled"] = bool(termination.get("unis_scheduled"))
    form = (fields or {}).get("form")
    ends = form.get("termination_date") if isinstance(form, dict) else None
    if classification.kind is Kind.TERMINATION and isinstance(ends, str):
        try:
            context["termination_date"] = date.fromisoformat(ends)
        except ValueError:
            pass  # an unreadable date is no date to promise
    return context


def wants_reply(decision: Decision, settings: ReplySettings) -> bool:
    table = reasons(settings.rules_dir)
    if any(table[f.code].silent for f in decision.findings):
        return False
    if decision.action is Action.HOLD:
        return settings.acknowledge_held
    return decision.action in (Action.ACCEPT, Action.REMAND)


def unanswerable(mail: Mail, decision: Decision, settings: ReplySettings) -> str | None:
    """Why `build_reply` makes no reply to this mail: "outside" (nobody inside the company to
    answer), "automatic" (a finding that is never answered: automatic mail, a conversation with
    the bot), None when it makes one."""
    if not _recipients(mail, settings)[0]:
        return "outside"
    return None if wants_reply(decision, settings) else "automatic"


def _recipients(mail: Mail, settings: ReplySettings) -> tuple[list[Address], list[Address]]:
    """To the sender, CC as the original CC; internal addresses only, none twice, never ourselves."""
    own = settings.sender.lower()
    seen = {own}
    to, cc = [], []
    for target, addresses in ((to, [mail.sender] if mail.sender else []), (cc, [*mail.to, *mail.cc])):
        for a in addresses:
            if a.addr and a.addr not in seen and is_internal(a, settings.internal_domains):
                seen.add(a.addr)
                target.append(a)
    return to, cc


def _header_address(a: Address) -> tuple[str, str]:
    return header_text(a.name, 80), a.addr


def build_reply(mail: Mail, sha256: str, classification: Classification, decision: Decision,
                settings: ReplySettings, context: dict[str, object] | None = None) -> Reply | None:
    to, cc = _recipients(mail, settings)
    if not to or not wants_reply(decision, settings):
        return None
    table = reasons(settings.rules_dir)
    # A hold's detail is for staff (technical, maybe English); a branch reads its title and fix.
    findings = [{"code": f.code, "title": table[f.code].title, "fix": table[f.code].fix_for(decision.action),
                 "detail": f.detail if table[f.code].action is not Action.HOLD else ""} for f in decision.findings]
    template = _first_template(settings.templates_dir, (
        f"{decision.action.value}/{classification.kind.value}.txt.j2", f"{decision.action.value}/default.txt.j2",
        f"{decision.action.value}.txt.j2"))
    body = template.render(
        kind=classification.kind.value, code=classification.code, subject=classification.subject,
        sender_name=header_text(mail.sender.name if mail.sender else "", 80), findings=findings,
        **(context or {}),
    )

    message_id = bot_reply_id(sha256, decision.action, settings.sender)
    subject = load_rules(settings.rules_dir).replies.subject_prefix[decision.action] + header_text(
        classification.subject)
    # Written byte by byte (mailbot.message.compose): the stdlib's header registry was most of a
    # reply's cost.
    head = [address_field("From", [(settings.sender_name, settings.sender)]),
            address_field("To", [_header_address(a) for a in to])]
    if cc:
        head.append(address_field("Cc", [_header_address(a) for a in cc]))
    fields = [("Subject", subject), ("Date", format_datetime(datetime.now(TOKYO))), ("Message-ID", message_id)]
    original = header_text(mail.message_id or "", 250)
    if original:
        refs = [header_text(r, 250) for r in mail.references[-10:]] + [original]
        fields += [("In-Reply-To", original), ("References", " ".join(dict.fromkeys(r for r in refs if r)))]
    fields += [("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All"),
               ("X-Mailbot-Decision", " ".join([decision.action.value, *decision.reasons]))]
    head += [header_field(name, value) for name, value in fields]
    return Reply(text_mail(head, body), message_id, [a.addr for a in (*to, *cc)], subject, body)
